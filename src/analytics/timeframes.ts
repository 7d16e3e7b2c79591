/**
 * Bars in time: the timeframes bullpen enriches, which session a bar belongs to, where a bar
 * of a timeframe opens, which bar slots a session is expected to have, and the chunk grid
 * backfills are cut into. Pure; instants are epoch milliseconds.
 *
 * Two market calendars: `nyse` (stocks and ETFs: NYSE sessions 09:30–16:00 America/New_York,
 * 13:00 on early closes) and `24x7` (crypto: every UTC day, all day). Intraday bars open on
 * clock boundaries of the market's zone (a 1h bar of a stock covering 09:30–10:00 opens at
 * 09:00, as the aggregates APIs stamp it); a 1d bar opens at midnight of its session date, a
 * 1w bar at midnight of the Monday of its week.
 */
import { DateTime } from 'luxon';
import { earlyClose, isTradingDay } from './calendar.ts';

export const TIMEFRAMES = ['1m', '5m', '15m', '30m', '1h', '4h', '1d', '1w'] as const;
export type Timeframe = (typeof TIMEFRAMES)[number];

export const MARKET_CALENDARS = ['nyse', '24x7'] as const;
export type MarketCalendar = (typeof MARKET_CALENDARS)[number];

export const ASSET_CLASSES = ['stock', 'etf', 'crypto'] as const;
export type AssetClass = (typeof ASSET_CLASSES)[number];

export function isTimeframe(value: string): value is Timeframe {
  return (TIMEFRAMES as readonly string[]).includes(value);
}

export function calendarOf(assetClass: AssetClass): MarketCalendar {
  return assetClass === 'crypto' ? '24x7' : 'nyse';
}

/** Minutes in one bar of an intraday timeframe; null for 1d and 1w. */
export function intradayMinutes(timeframe: Timeframe): number | null {
  switch (timeframe) {
    case '1m':
      return 1;
    case '5m':
      return 5;
    case '15m':
      return 15;
    case '30m':
      return 30;
    case '1h':
      return 60;
    case '4h':
      return 240;
    default:
      return null;
  }
}

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
const NYSE_ZONE = 'America/New_York';
const SESSION_OPEN_MINUTE = 9 * 60 + 30;
const SESSION_CLOSE_MINUTE = 16 * 60;
const EARLY_CLOSE_MINUTE = 13 * 60;

const offsetCache = new Map<number, number>();

/**
 * The New York UTC offset (ms) in force at noon UTC of UTC day `utcDay`. DST switches at 02:00
 * local, hours before any session, so one offset per day is exact for every session bar.
 */
function nyOffsetMs(utcDay: number): number {
  let offset = offsetCache.get(utcDay);
  if (offset === undefined) {
    offset = DateTime.fromMillis(utcDay * DAY_MS + DAY_MS / 2, { zone: NYSE_ZONE }).offset * MINUTE_MS;
    offsetCache.set(utcDay, offset);
  }
  return offset;
}

/** The market's local time of an instant, as ms since 1970-01-01 local (so a day is a plain division). */
export function localMs(ts: number, calendar: MarketCalendar): number {
  return calendar === '24x7' ? ts : ts + nyOffsetMs(Math.floor(ts / DAY_MS));
}

/** Inverse of localMs for local instants during a session (not across a DST switch hour). */
export function utcMsOfLocal(local: number, calendar: MarketCalendar): number {
  if (calendar === '24x7') return local;
  // The offset of the local day is the offset of the UTC day with the same number at noon.
  return local - nyOffsetMs(Math.floor(local / DAY_MS));
}

/** Days since 1970-01-01 of the market-local date of an instant. */
export function dayNumberOf(ts: number, calendar: MarketCalendar): number {
  return Math.floor(localMs(ts, calendar) / DAY_MS);
}

export function isoDateOfDayNumber(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

export function dayNumberOfIsoDate(date: string): number {
  return Math.floor(Date.parse(`${date}T00:00:00Z`) / DAY_MS);
}

/** The calendar date `days` days after `date` (before, when negative). */
export function addCalendarDays(date: string, days: number): string {
  return isoDateOfDayNumber(dayNumberOfIsoDate(date) + days);
}

/** Whether the market trades on day number `day`. */
export function isSessionDay(day: number, calendar: MarketCalendar): boolean {
  return calendar === '24x7' || isTradingDay(isoDateOfDayNumber(day));
}

export interface Session {
  readonly open: number;
  readonly close: number;
}
const ALL_DAY: Session = Object.freeze({ open: 0, close: 24 * 60 });
// Validation asks for every bar; the calendar's string work is done once per day.
const sessionCache = new Map<number, Session | null>();

/** Session [open, close) in local minutes of the day; null when the market is closed that day. */
export function sessionMinutes(day: number, calendar: MarketCalendar): Session | null {
  if (calendar === '24x7') return ALL_DAY;
  let session = sessionCache.get(day);
  if (session === undefined) {
    const date = isoDateOfDayNumber(day);
    session = isTradingDay(date) ? { open: SESSION_OPEN_MINUTE, close: earlyClose(date) ? EARLY_CLOSE_MINUTE : SESSION_CLOSE_MINUTE } : null;
    sessionCache.set(day, session);
  }
  return session;
}

/** The instant (UTC ms) day number `day`'s session closes, an early close included; null when the market is closed that day. */
export function sessionCloseMs(day: number, calendar: MarketCalendar): number | null {
  const session = sessionMinutes(day, calendar);
  return session ? utcMsOfLocal(day * DAY_MS + session.close * 60_000, calendar) : null;
}

/** The day number of the Monday of the ISO week holding day number `day`. */
export function mondayOf(day: number): number {
  // 1970-01-01 was a Thursday: day 0 has ISO weekday 4. Days before 1970 are negative, and
  // JS % keeps the sign, hence the + 7.
  const weekday = ((((day + 3) % 7) + 7) % 7) + 1;
  return day - (weekday - 1);
}

/** The open (UTC ms) of the bar of `timeframe` that contains instant `ts`. */
export function barOpen(ts: number, timeframe: Timeframe, calendar: MarketCalendar): number {
  const local = localMs(ts, calendar);
  const day = Math.floor(local / DAY_MS);
  const minutes = intradayMinutes(timeframe);
  if (minutes !== null) {
    const minuteOfDay = Math.floor((local - day * DAY_MS) / MINUTE_MS);
    return utcMsOfLocal(day * DAY_MS + Math.floor(minuteOfDay / minutes) * minutes * MINUTE_MS, calendar);
  }
  return utcMsOfLocal((timeframe === '1w' ? mondayOf(day) : day) * DAY_MS, calendar);
}

/**
 * The opens (UTC ms, ascending) of the bars a session day is expected to have. A 1w bar is
 * expected on the Monday of a week with any session (whether or not that Monday trades), so
 * only that Monday lists it.
 */
export function expectedBarOpens(day: number, timeframe: Timeframe, calendar: MarketCalendar): number[] {
  if (timeframe === '1w') {
    if (mondayOf(day) !== day) return [];
    for (let d = day; d < day + 7; d++) if (isSessionDay(d, calendar)) return [utcMsOfLocal(day * DAY_MS, calendar)];
    return [];
  }
  const session = sessionMinutes(day, calendar);
  if (!session) return [];
  if (timeframe === '1d') return [utcMsOfLocal(day * DAY_MS, calendar)];
  const minutes = intradayMinutes(timeframe) as number;
  const opens: number[] = [];
  const first = Math.floor(session.open / minutes) * minutes;
  for (let m = first; m < session.close; m += minutes) opens.push(utcMsOfLocal(day * DAY_MS + m * MINUTE_MS, calendar));
  return opens;
}

/**
 * Whether an instant is a bar open of the timeframe (aligned in the market's local time) and,
 * if so, whether a session covers it. Validation asks this of every bar, so the local time is
 * worked out once.
 */
export function checkBarOpen(ts: number, timeframe: Timeframe, calendar: MarketCalendar): 'ok' | 'misaligned' | 'outside_session' {
  const local = localMs(ts, calendar);
  const day = Math.floor(local / DAY_MS);
  const intoDay = local - day * DAY_MS;
  const minutes = intradayMinutes(timeframe);
  if (minutes !== null) {
    if (intoDay % (minutes * MINUTE_MS) !== 0) return 'misaligned';
    const session = sessionMinutes(day, calendar);
    const minuteOfDay = intoDay / MINUTE_MS;
    return session && minuteOfDay + minutes > session.open && minuteOfDay < session.close ? 'ok' : 'outside_session';
  }
  if (intoDay !== 0 || (timeframe === '1w' && mondayOf(day) !== day)) return 'misaligned';
  if (timeframe === '1w') return expectedBarOpens(day, timeframe, calendar).length > 0 ? 'ok' : 'outside_session';
  return sessionMinutes(day, calendar) ? 'ok' : 'outside_session';
}

/** Whether an instant is a valid bar open for the timeframe: aligned and inside a session. */
export function isExpectedBarOpen(ts: number, timeframe: Timeframe, calendar: MarketCalendar): boolean {
  return checkBarOpen(ts, timeframe, calendar) === 'ok';
}

/** How many calendar months one backfill chunk spans: about 10,000 bars of a stock, at most 45,000 of a coin. */
export function chunkMonths(timeframe: Timeframe): number {
  switch (timeframe) {
    case '1m':
      return 1;
    case '5m':
      return 3;
    case '15m':
      return 6;
    default:
      return 12;
  }
}

export interface ChunkSpan {
  /** First date of the chunk, inclusive (YYYY-MM-DD). */
  start: string;
  /** Last date of the chunk, inclusive. */
  end: string;
}

/**
 * The chunks covering dates `from`..`to` (inclusive): cells of a fixed grid of `chunkMonths`
 * months starting at each January, so every request cuts the same symbol's history the same
 * way and a chunk done for one request counts as done for the next.
 */
export function planChunks(from: string, to: string, timeframe: Timeframe): ChunkSpan[] {
  if (from > to) return [];
  const months = chunkMonths(timeframe);
  const [fromYear, fromMonth] = from.split('-').map(Number) as [number, number];
  let index = fromYear * 12 + (fromMonth - 1);
  index -= index % months;
  const chunks: ChunkSpan[] = [];
  for (;;) {
    const startYear = Math.floor(index / 12);
    const startMonth = (index % 12) + 1;
    const start = `${String(startYear).padStart(4, '0')}-${String(startMonth).padStart(2, '0')}-01`;
    if (start > to) break;
    const next = index + months;
    const endDay = new Date(Date.UTC(Math.floor(next / 12), next % 12, 1) - DAY_MS).toISOString().slice(0, 10);
    chunks.push({ start, end: endDay });
    index = next;
  }
  return chunks;
}
