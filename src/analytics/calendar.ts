/**
 * A pure NYSE trading calendar: no I/O and no clock, every date is passed in.
 *
 * Dates are calendar dates written as ISO strings `YYYY-MM-DD`; they carry no time zone.
 * Only `tradingDateOf` deals with instants, and it converts with luxon rather than doing
 * arithmetic on local times. Every function validates its date strings and throws a
 * `BadInputError` naming the bad value ('not-a-date', '2026-02-30', ...). Years 1583–9999 are
 * accepted; outside 1990–2100 the modern rules are simply extrapolated.
 *
 * Rules (NYSE Rule 7.2 and historical practice), applied to every year but meant to be
 * accurate for 1990–2100:
 *  - New Year's Day, Jan 1; on a Sunday it is observed Monday Jan 2; on a Saturday it is
 *    not observed at all (the preceding Friday, Dec 31, is a normal trading day).
 *  - Martin Luther King Jr. Day, 3rd Monday of January, from 1998.
 *  - Washington's Birthday (Presidents' Day), 3rd Monday of February.
 *  - Good Friday, the Friday before Western (Gregorian) Easter.
 *  - Memorial Day, last Monday of May.
 *  - Juneteenth National Independence Day, June 19, from 2022 (Saturday → Friday,
 *    Sunday → Monday).
 *  - Independence Day, July 4 (Saturday → Friday, Sunday → Monday).
 *  - Labor Day, 1st Monday of September.
 *  - Thanksgiving Day, 4th Thursday of November.
 *  - Christmas Day, December 25 (Saturday → Friday, Sunday → Monday).
 *  - One-off closures listed in `SPECIAL_CLOSURES`.
 *
 * Observed holidays are named with an " (observed)" suffix, e.g. 2026-07-03 is
 * "Independence Day (observed)".
 *
 * Early closes (13:00 New York time) follow the simple modern pattern: July 3 when it is
 * a trading day, the day after Thanksgiving, and December 24 when it is a trading day.
 * Occasional historical exceptions are not modelled.
 */
import { DateTime, IANAZone } from 'luxon';
import { BadInputError } from '../errors.ts';

/** An ISO calendar date, `YYYY-MM-DD`. */
export type IsoDate = string;

export interface DateDescription {
  date: IsoDate;
  /** The date as the number yyyymmdd, e.g. 20260703. */
  dateKey: number;
  /** ISO day of week: 1 = Monday … 7 = Sunday. */
  dayOfWeek: number;
  isWeekend: boolean;
  isTradingDay: boolean;
  /** The holiday or closure name when NYSE is closed on that weekday, else null. */
  holidayName: string | null;
  /** '13:00' on early-close days, else null. */
  earlyClose: string | null;
}

/** One-off full-day closures (not the regular holidays). */
export const SPECIAL_CLOSURES: Readonly<Record<IsoDate, string>> = Object.freeze({
  '1994-04-27': 'Richard Nixon national day of mourning',
  '2001-09-11': 'September 11 attacks',
  '2001-09-12': 'September 11 attacks',
  '2001-09-13': 'September 11 attacks',
  '2001-09-14': 'September 11 attacks',
  '2004-06-11': 'Ronald Reagan national day of mourning',
  '2007-01-02': 'Gerald Ford national day of mourning',
  '2012-10-29': 'Hurricane Sandy',
  '2012-10-30': 'Hurricane Sandy',
  '2018-12-05': 'George H. W. Bush national day of mourning',
  '2025-01-09': 'Jimmy Carter national day of mourning',
});

/** The time NYSE closes on early-close days, New York time. */
export const EARLY_CLOSE_TIME = '13:00';

const MS_PER_DAY = 86_400_000;
const MIN_YEAR = 1583; // first full Gregorian year, so Easter is defined
const MAX_YEAR = 9999;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

// ISO weekdays
const MONDAY = 1;
const THURSDAY = 4;
const SATURDAY = 6;
const SUNDAY = 7;

// ---------------------------------------------------------------------------
// Day numbers: whole days since 1970-01-01, so arithmetic is plain integer maths.
// ---------------------------------------------------------------------------

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function dayNumberOf(year: number, month: number, day: number): number {
  return Math.round(Date.UTC(year, month - 1, day) / MS_PER_DAY);
}

/** Parses and validates `YYYY-MM-DD`, returning its day number. */
function parseDate(date: unknown, what = 'date'): number {
  if (typeof date !== 'string') {
    throw new BadInputError(`Invalid ${what} ${JSON.stringify(date)}: expected a 'YYYY-MM-DD' string`);
  }
  const match = ISO_DATE.exec(date);
  if (match === null) {
    throw new BadInputError(`Invalid ${what} '${date}': expected 'YYYY-MM-DD'`);
  }
  const year = Number(match[1]);
  const month = Number(match[2]);
  const day = Number(match[3]);
  if (year < MIN_YEAR || year > MAX_YEAR) {
    throw new BadInputError(`Invalid ${what} '${date}': year must be between ${MIN_YEAR} and ${MAX_YEAR}`);
  }
  if (month < 1 || month > 12) {
    throw new BadInputError(`Invalid ${what} '${date}': month ${month} does not exist`);
  }
  if (day < 1 || day > daysInMonth(year, month)) {
    throw new BadInputError(`Invalid ${what} '${date}': ${year}-${match[2]} has no day ${day}`);
  }
  return dayNumberOf(year, month, day);
}

function formatDayNumber(dayNumber: number): IsoDate {
  const iso = new Date(dayNumber * MS_PER_DAY).toISOString();
  const year = Number(iso.slice(0, 4));
  if (!/^\d{4}-/.test(iso) || year < MIN_YEAR || year > MAX_YEAR) {
    throw new RangeError(`Date out of supported range (${MIN_YEAR}–${MAX_YEAR})`);
  }
  return iso.slice(0, 10);
}

/** ISO day of week, 1 = Monday … 7 = Sunday (1970-01-01 was a Thursday). */
function isoWeekday(dayNumber: number): number {
  return (((dayNumber + 3) % 7) + 7) % 7 + 1;
}

function yearOf(dayNumber: number): number {
  return new Date(dayNumber * MS_PER_DAY).getUTCFullYear();
}

// ---------------------------------------------------------------------------
// Holiday rules
// ---------------------------------------------------------------------------

/** The nth (1-based) given ISO weekday of a month. */
function nthWeekday(year: number, month: number, weekday: number, n: number): number {
  const first = dayNumberOf(year, month, 1);
  return first + ((weekday - isoWeekday(first) + 7) % 7) + 7 * (n - 1);
}

/** The last given ISO weekday of a month. */
function lastWeekday(year: number, month: number, weekday: number): number {
  const last = dayNumberOf(year, month, daysInMonth(year, month));
  return last - ((isoWeekday(last) - weekday + 7) % 7);
}

/** Western Easter Sunday of `year`: the anonymous Gregorian algorithm (Meeus/Jones/Butcher). */
export function easterSunday(year: number): IsoDate {
  if (!Number.isInteger(year) || year < MIN_YEAR || year > MAX_YEAR) {
    throw new BadInputError(`Invalid year ${String(year)}: expected an integer ${MIN_YEAR}–${MAX_YEAR}`);
  }
  return formatDayNumber(easterDayNumber(year));
}

function easterDayNumber(year: number): number {
  const a = year % 19;
  const b = Math.floor(year / 100);
  const c = year % 100;
  const d = Math.floor(b / 4);
  const e = b % 4;
  const f = Math.floor((b + 8) / 25);
  const g = Math.floor((b - f + 1) / 3);
  const h = (19 * a + b - d - g + 15) % 30;
  const i = Math.floor(c / 4);
  const k = c % 4;
  const l = (32 + 2 * e + 2 * i - h - k) % 7;
  const m = Math.floor((a + 11 * h + 22 * l) / 451);
  const month = Math.floor((h + l - 7 * m + 114) / 31);
  const day = ((h + l - 7 * m + 114) % 31) + 1;
  return dayNumberOf(year, month, day);
}

/**
 * Adds a fixed-date holiday with weekend observance: Saturday → Friday (unless
 * `observeSaturdayOnFriday` is false), Sunday → Monday.
 */
function addFixed(
  out: Map<number, string>,
  year: number,
  month: number,
  day: number,
  name: string,
  observeSaturdayOnFriday = true,
): void {
  const actual = dayNumberOf(year, month, day);
  const weekday = isoWeekday(actual);
  if (weekday === SATURDAY) {
    if (observeSaturdayOnFriday) out.set(actual - 1, `${name} (observed)`);
  } else if (weekday === SUNDAY) {
    out.set(actual + 1, `${name} (observed)`);
  } else {
    out.set(actual, name);
  }
}

const holidayCache = new Map<number, ReadonlyMap<number, string>>();

/** Every weekday closure of a year, by day number. Memoised; the result never changes. */
function closuresOf(year: number): ReadonlyMap<number, string> {
  const cached = holidayCache.get(year);
  if (cached !== undefined) return cached;

  const out = new Map<number, string>();
  // NYSE does not close on Friday Dec 31 when Jan 1 is a Saturday (year-end accounting).
  addFixed(out, year, 1, 1, "New Year's Day", false);
  if (year >= 1998) out.set(nthWeekday(year, 1, MONDAY, 3), 'Martin Luther King Jr. Day');
  out.set(nthWeekday(year, 2, MONDAY, 3), "Washington's Birthday");
  out.set(easterDayNumber(year) - 2, 'Good Friday');
  out.set(lastWeekday(year, 5, MONDAY), 'Memorial Day');
  if (year >= 2022) addFixed(out, year, 6, 19, 'Juneteenth National Independence Day');
  addFixed(out, year, 7, 4, 'Independence Day');
  out.set(nthWeekday(year, 9, MONDAY, 1), 'Labor Day');
  out.set(nthWeekday(year, 11, THURSDAY, 4), 'Thanksgiving Day');
  addFixed(out, year, 12, 25, 'Christmas Day');

  for (const [date, name] of Object.entries(SPECIAL_CLOSURES)) {
    if (date.startsWith(`${year}-`)) out.set(parseDate(date), name);
  }

  holidayCache.set(year, out);
  return out;
}

function holidayOfDayNumber(dayNumber: number): string | null {
  if (isoWeekday(dayNumber) >= SATURDAY) return null;
  return closuresOf(yearOf(dayNumber)).get(dayNumber) ?? null;
}

function isTradingDayNumber(dayNumber: number): boolean {
  return isoWeekday(dayNumber) < SATURDAY && holidayOfDayNumber(dayNumber) === null;
}

function earlyCloseOfDayNumber(dayNumber: number): string | null {
  if (!isTradingDayNumber(dayNumber)) return null;
  const year = yearOf(dayNumber);
  if (
    dayNumber === dayNumberOf(year, 7, 3) ||
    dayNumber === nthWeekday(year, 11, THURSDAY, 4) + 1 ||
    dayNumber === dayNumberOf(year, 12, 24)
  ) {
    return EARLY_CLOSE_TIME;
  }
  return null;
}

function stepToTradingDay(dayNumber: number, step: 1 | -1): number {
  let current = dayNumber + step;
  while (!isTradingDayNumber(current)) current += step;
  return current;
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/** Throws unless `date` is a valid `YYYY-MM-DD` calendar date; returns it unchanged. */
export function assertIsoDate(date: string): IsoDate {
  parseDate(date);
  return date;
}

/**
 * The holiday or closure name when NYSE is closed on that weekday, else null.
 * Weekends return null (even 2022-01-01, New Year's Day on a Saturday: NYSE was shut
 * for the weekend, not for a holiday, and did not observe it).
 */
export function nyseHoliday(date: string): string | null {
  return holidayOfDayNumber(parseDate(date));
}

/** Saturday or Sunday. */
export function isWeekend(date: string): boolean {
  return isoWeekday(parseDate(date)) >= SATURDAY;
}

/** A weekday on which NYSE is not closed for a holiday or special closure. */
export function isTradingDay(date: string): boolean {
  return isTradingDayNumber(parseDate(date));
}

/** The first trading day strictly after `date`. */
export function nextTradingDay(date: string): IsoDate {
  return formatDayNumber(stepToTradingDay(parseDate(date), 1));
}

/** The last trading day strictly before `date`. */
export function previousTradingDay(date: string): IsoDate {
  return formatDayNumber(stepToTradingDay(parseDate(date), -1));
}

/**
 * Every trading day from `from` to `to`, both inclusive, in ascending order.
 * Returns [] when `from` is after `to`.
 */
export function tradingDaysBetween(from: string, to: string): IsoDate[] {
  const start = parseDate(from, 'from date');
  const end = parseDate(to, 'to date');
  const days: IsoDate[] = [];
  for (let d = start; d <= end; d++) {
    if (isTradingDayNumber(d)) days.push(formatDayNumber(d));
  }
  return days;
}

/**
 * Moves `n` trading days from `date`: n > 0 forwards, n < 0 backwards. `date` itself need
 * not be a trading day (addTradingDays('2026-07-04', 1) is '2026-07-06').
 *
 * n = 0 returns `date` when it is a trading day and throws a BadInputError otherwise,
 * since "zero trading days from a holiday" has no sensible answer; use nextTradingDay or
 * previousTradingDay to roll a non-trading day explicitly.
 */
export function addTradingDays(date: string, n: number): IsoDate {
  const start = parseDate(date);
  if (!Number.isSafeInteger(n)) {
    throw new BadInputError(`Invalid trading-day count ${String(n)}: expected an integer`);
  }
  if (n === 0) {
    if (!isTradingDayNumber(start)) {
      throw new BadInputError(`addTradingDays('${date}', 0): ${date} is not a trading day`);
    }
    return date;
  }
  const step = n > 0 ? 1 : -1;
  let current = start;
  for (let remaining = Math.abs(n); remaining > 0; remaining--) {
    current = stepToTradingDay(current, step);
  }
  return formatDayNumber(current);
}

/**
 * '13:00' (New York time) on NYSE early-close days, else null: July 3 when it is a trading
 * day (i.e. Independence Day falls Tuesday–Friday), the Friday after Thanksgiving, and
 * December 24 when it is a trading day. Historical one-offs (e.g. some pre-2000 Dec 26 or
 * Dec 31 early closes) are not modelled.
 */
export function earlyClose(date: string): string | null {
  return earlyCloseOfDayNumber(parseDate(date));
}

/** Everything a dim_date row needs to know about a date. */
export function describeDate(date: string): DateDescription {
  const dayNumber = parseDate(date);
  const dayOfWeek = isoWeekday(dayNumber);
  const holidayName = holidayOfDayNumber(dayNumber);
  const weekend = dayOfWeek >= SATURDAY;
  return {
    date,
    dateKey: Number(date.replaceAll('-', '')),
    dayOfWeek,
    isWeekend: weekend,
    isTradingDay: !weekend && holidayName === null,
    holidayName,
    earlyClose: earlyCloseOfDayNumber(dayNumber),
  };
}

const OFFSET_SUFFIX = /(?:Z|[+-]\d{2}(?::?\d{2})?)$/i;

/**
 * The calendar date of an instant in the IANA zone `tz`, e.g. the trading date of a fill.
 * `instant` is a Date or an ISO 8601 string that carries an offset ('Z' or '±hh:mm');
 * strings without one are rejected, because their instant would depend on the machine's
 * zone. `tz` must be an IANA zone name ('America/New_York', 'UTC').
 */
export function tradingDateOf(instant: Date | string, tz: string): IsoDate {
  if (typeof tz !== 'string' || !IANAZone.isValidZone(tz)) {
    throw new BadInputError(`Invalid time zone ${JSON.stringify(tz)}: expected an IANA zone name`);
  }
  let dateTime: DateTime;
  if (instant instanceof Date) {
    if (Number.isNaN(instant.getTime())) {
      throw new BadInputError('Invalid instant: the Date is invalid');
    }
    dateTime = DateTime.fromJSDate(instant, { zone: tz });
  } else if (typeof instant === 'string') {
    const trimmed = instant.trim();
    if (!trimmed.includes('T') || !OFFSET_SUFFIX.test(trimmed)) {
      throw new BadInputError(
        `Invalid instant '${instant}': expected an ISO 8601 date-time with an offset, e.g. '2026-03-08T06:30:00Z'`,
      );
    }
    const parsed = DateTime.fromISO(trimmed, { setZone: true });
    if (!parsed.isValid) {
      throw new BadInputError(`Invalid instant '${instant}': ${parsed.invalidExplanation ?? parsed.invalidReason}`);
    }
    dateTime = parsed.setZone(tz);
  } else {
    throw new BadInputError(`Invalid instant ${JSON.stringify(instant)}: expected a Date or an ISO string`);
  }
  const date = dateTime.toISODate();
  if (date === null) {
    throw new BadInputError(`Invalid instant ${String(instant)} in zone ${tz}`);
  }
  return date;
}
