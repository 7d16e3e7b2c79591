/**
 * Rows of warehouse.dim_date: the calendar attributes of each date plus NYSE sessions and
 * closures from calendar.ts. Fiscal periods follow the calendar year (no offset is
 * configured). Pure: dates in, rows out.
 */
import { DateTime } from 'luxon';
import { BadInputError } from '../errors.ts';
import { assertIsoDate, describeDate, type IsoDate } from './calendar.ts';

export interface DimDateRow {
  dateKey: number;
  date: IsoDate;
  year: number;
  quarter: number;
  month: number;
  monthName: string;
  dayOfMonth: number;
  dayOfWeek: number;
  dayName: string;
  weekOfYear: number;
  isWeekend: boolean;
  isTradingDay: boolean;
  isHoliday: boolean;
  holidayName: string | null;
  earlyClose: string | null;
  fiscalYear: number;
  fiscalQuarter: number;
  fiscalMonth: number;
}

/**
 * The date ranges to add so dim_date, which covers `coverage` (nulls: empty), covers `from`..`to`:
 * whole calendar years, with no gap next to what is already there.
 */
export function missingDimDateRanges(coverage: { from: string | null; to: string | null }, from: string, to: string): Array<[IsoDate, IsoDate]> {
  const yearStart = `${from.slice(0, 4)}-01-01`;
  const yearEnd = `${to.slice(0, 4)}-12-31`;
  if (coverage.from === null || coverage.to === null) return [[yearStart, yearEnd]];
  const ranges: Array<[IsoDate, IsoDate]> = [];
  if (from < coverage.from) ranges.push([yearStart, shiftDays(coverage.from, -1)]);
  if (to > coverage.to) ranges.push([shiftDays(coverage.to, 1), yearEnd]);
  return ranges;
}

function shiftDays(date: string, days: number): IsoDate {
  return DateTime.fromISO(date, { zone: 'UTC' }).plus({ days }).toISODate() as IsoDate;
}

/** Every date from `from` to `to` inclusive, in order. */
export function createDimDateRows(from: string, to: string): DimDateRow[] {
  assertIsoDate(from);
  assertIsoDate(to);
  if (from > to) throw new BadInputError(`dim_date range: from ${from} is after to ${to}`);
  const rows: DimDateRow[] = [];
  const last = DateTime.fromISO(to, { zone: 'UTC' });
  for (let day = DateTime.fromISO(from, { zone: 'UTC' }); day <= last; day = day.plus({ days: 1 })) {
    const date = day.toISODate() as string;
    const described = describeDate(date);
    const quarter = Math.ceil(day.month / 3);
    rows.push({
      dateKey: described.dateKey,
      date,
      year: day.year,
      quarter,
      month: day.month,
      monthName: day.setLocale('en-US').toFormat('LLLL'),
      dayOfMonth: day.day,
      dayOfWeek: described.dayOfWeek,
      dayName: day.setLocale('en-US').toFormat('cccc'),
      weekOfYear: day.weekNumber,
      isWeekend: described.isWeekend,
      isTradingDay: described.isTradingDay,
      // A closure only counts as a holiday on a weekday: weekends are closed anyway.
      isHoliday: !described.isWeekend && described.holidayName !== null,
      holidayName: described.holidayName,
      earlyClose: described.earlyClose,
      fiscalYear: day.year,
      fiscalQuarter: quarter,
      fiscalMonth: day.month,
    });
  }
  return rows;
}
