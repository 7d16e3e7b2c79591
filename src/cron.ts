/**
 * Schedule arithmetic with the same cron parser BullMQ's Job Schedulers use, so the ticks
 * bullpen expects (catch-up, lag, `schedules --next`) are the ticks BullMQ fires. Pure: "now"
 * is always an argument. DST: a 02:30 tick on a spring-forward day fires at 03:30 local
 * (the hour does not exist); on fall-back day it fires once.
 */
import { CronExpressionParser } from 'cron-parser';
import { DateTime } from 'luxon';

/** Ticks t with from < t ≤ to, oldest first, at most `limit`. */
export function listTicks(cron: string, tz: string, from: Date, to: Date, limit = 10_000): Date[] {
  const interval = CronExpressionParser.parse(cron, { currentDate: from, endDate: to, tz });
  const ticks: Date[] = [];
  while (ticks.length < limit && interval.hasNext()) {
    const tick = interval.next().toDate();
    if (tick.getTime() > to.getTime()) break;
    ticks.push(tick);
  }
  return ticks;
}

/** The next `count` ticks strictly after `after`. */
export function nextTicks(cron: string, tz: string, after: Date, count: number): Date[] {
  const interval = CronExpressionParser.parse(cron, { currentDate: after, tz });
  return interval.take(count).map((tick) => tick.toDate());
}

/** The latest tick at or before `at`, if any within a year. */
export function previousTick(cron: string, tz: string, at: Date): Date | undefined {
  const interval = CronExpressionParser.parse(cron, { currentDate: new Date(at.getTime() + 1), tz });
  if (!interval.hasPrev()) return undefined;
  return interval.prev().toDate();
}

/** Rough period of a schedule (gap between its next two ticks), for lag thresholds. */
export function schedulePeriodMs(cron: string, tz: string, at: Date): number {
  const [a, b] = nextTicks(cron, tz, at, 2);
  return a && b ? b.getTime() - a.getTime() : 24 * 3600 * 1000;
}

/** A tick as the schedule's zone shows it, with its UTC offset: "2026-03-08 03:30 EDT (-04:00)". */
export function formatTick(tick: Date, tz: string): string {
  const local = DateTime.fromJSDate(tick, { zone: tz });
  return `${local.toFormat('yyyy-MM-dd HH:mm:ss ZZZZ')} (${local.toFormat('ZZ')})`;
}

/** The calendar date of an instant in a zone, shifted by whole days: a tick's partition date. */
export function tickDate(instant: Date | string, tz: string, offsetDays = 0): string {
  const dt = typeof instant === 'string' ? DateTime.fromISO(instant, { setZone: true }) : DateTime.fromJSDate(instant);
  if (!dt.isValid) throw new Error(`not a valid instant: ${String(instant)}`);
  return dt.setZone(tz).plus({ days: offsetDays }).toISODate() as string;
}

/** A colon-free partition for jobs whose every tick is its own partition: 2026-11-21T062500Z. */
export function tickPartition(instant: Date | string): string {
  const dt = typeof instant === 'string' ? DateTime.fromISO(instant, { setZone: true }) : DateTime.fromJSDate(instant);
  if (!dt.isValid) throw new Error(`not a valid instant: ${String(instant)}`);
  return dt.toUTC().toFormat("yyyy-MM-dd'T'HHmmss'Z'");
}
