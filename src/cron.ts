/**
 * Schedule arithmetic with the same cron parser BullMQ's Job Schedulers use, so the ticks
 * bullpen expects (catch-up, lag, `schedules --next`) are the ticks BullMQ fires. Pure: "now"
 * is always an argument. DST: a 02:30 tick on a spring-forward day fires at 03:30 local
 * (the hour does not exist); on fall-back day it fires once.
 */
import { CronExpressionParser } from 'cron-parser';
import { DateTime } from 'luxon';

const DAY_MS = 86_400_000;
/** Each UTC day's ticks of a schedule, by cron, zone and day: walking zoned ticks costs ~0.3 ms each. */
const ticksByDay = new Map<string, readonly number[]>();
const TICK_DAYS_KEPT = 4096;

/** Ticks t with from < t ≤ to, oldest first, without the memo. */
export function walkTicks(cron: string, tz: string, from: Date, to: Date, limit = 10_000): Date[] {
  const interval = CronExpressionParser.parse(cron, { currentDate: from, endDate: to, tz });
  const ticks: Date[] = [];
  while (ticks.length < limit && interval.hasNext()) {
    const tick = interval.next().toDate();
    if (tick.getTime() > to.getTime()) break;
    ticks.push(tick);
  }
  return ticks;
}

/** The ticks in the UTC day starting at `dayStart` (ms), remembered: a day's ticks never change. */
function ticksOfDay(cron: string, tz: string, dayStart: number): readonly number[] {
  const key = `${cron}\u0000${tz}\u0000${dayStart}`;
  let ticks = ticksByDay.get(key);
  if (!ticks) {
    ticks = walkTicks(cron, tz, new Date(dayStart - 1), new Date(dayStart + DAY_MS - 1)).map((tick) => tick.getTime());
    if (ticksByDay.size >= TICK_DAYS_KEPT) ticksByDay.clear();
    ticksByDay.set(key, ticks);
  }
  return ticks;
}

/**
 * Ticks t with from < t ≤ to, oldest first, at most `limit`. Read day by day from a memo, so
 * that the status page, catch-up and lag, which ask for the same recent days again and again,
 * walk each day once per process (at most 1,440 ticks a day for a five-field pattern).
 */
export function listTicks(cron: string, tz: string, from: Date, to: Date, limit = 10_000): Date[] {
  // A pattern with a seconds field may tick tens of thousands of times a day: walk the window only.
  if (cron.trim().split(/\s+/).length > 5) return walkTicks(cron, tz, from, to, limit);
  const ticks: Date[] = [];
  const start = from.getTime();
  const end = to.getTime();
  for (let day = Math.floor((start + 1) / DAY_MS) * DAY_MS; day <= end && ticks.length < limit; day += DAY_MS) {
    for (const tick of ticksOfDay(cron, tz, day)) {
      if (tick <= start) continue;
      if (tick > end || ticks.length >= limit) break;
      ticks.push(new Date(tick));
    }
  }
  return ticks;
}

/** The next `count` ticks strictly after `after`. */
export function nextTicks(cron: string, tz: string, after: Date, count: number): Date[] {
  const interval = CronExpressionParser.parse(cron, { currentDate: after, tz });
  return interval.take(count).map((tick) => tick.toDate());
}

/** Rough period of a schedule (the shortest gap between its next ticks), for lag thresholds. */
export function schedulePeriodMs(cron: string, tz: string, at: Date): number {
  // The shortest gap among the next ticks, not the next one: a weekday schedule's gap from Friday
  // to Monday (72 h) would otherwise triple the lag alert's threshold every Thursday evening.
  const ticks = nextTicks(cron, tz, at, PERIOD_TICKS);
  let shortest = Infinity;
  for (let i = 1; i < ticks.length; i++) shortest = Math.min(shortest, (ticks[i] as Date).getTime() - (ticks[i - 1] as Date).getTime());
  return Number.isFinite(shortest) ? shortest : 24 * 3600 * 1000;
}

/** Ticks schedulePeriodMs looks at: a week of a weekday schedule. */
const PERIOD_TICKS = 8;

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
