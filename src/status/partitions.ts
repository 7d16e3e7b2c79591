/**
 * The partition grid of the status page and GET /api/v1/partitions (issue 8): weekdays ×
 * the partitioned jobs, each cell `done | failed | missing | running | not_expected`, judged
 * from ops.job_runs and the NYSE calendar, as Airflow's grid and Dagster's partition view show
 * them. `buildPartitionGrid` is pure (runs, schedules and "now" are arguments);
 * `loadPartitionGrid` reads the runs through src/queries/partitions.ts and calls it.
 *
 * A cell, in this order of rules:
 * - Evidence from the runs (below) decides it: done, failed or running.
 * - Except on a day NYSE is closed, for the jobs on the NYSE calendar (trade-etl, build-rollups,
 *   refresh-rs): the every-five-minutes ETL and the nightly rebuild do run on Thanksgiving,
 *   but a closed day is `not_expected` whatever succeeded; only a failed or running run there
 *   is still shown (an operator should see it). enrichment-daily and nightly-report run every
 *   day, so their holidays are expected.
 * - Without evidence: `not_expected` when no tick of the job's schedule for that date has
 *   come yet (a future date; today before 18:00 New York for refresh-rs; before 23:50 UTC for
 *   nightly-report; enrichment-daily's date D is due at 01:30 on D+1), or when the job has no
 *   schedule (SCHEDULE_<JOB>=off); otherwise `missing`.
 *
 * Evidence:
 * - Date-partitioned jobs (build-rollups, refresh-rs, enrichment-daily, nightly-report): the
 *   row whose partition is the date. succeeded/skipped → done, failed → failed,
 *   running/retrying/buffered → running. build-rollups is also done when a succeeded run's
 *   summary covers the date (its from..to; a `a..b` range run; a `full` run up to its as-of
 *   date), and a covering run that finished after a failed one heals it.
 * - trade-etl, by date touched (its partition is a tick, not a date): done when a succeeded
 *   run was scheduled on that date (in EXCHANGE_TZ), even if it touched nothing, or a
 *   succeeded run lists the date in `dates_touched` (late fills loaded days later); running
 *   when one scheduled that day runs; failed when the latest run scheduled that day failed.
 *   A failed or missing day is healed (done) by any later succeeded run that did not stop
 *   early: the ETL reads by watermark, so that run loaded everything ingested before it
 *   started, the failed day's rows included. This is what makes the page's re-run of an ETL
 *   day (a normal run now) turn the cell done.
 */
import { DateTime } from 'luxon';
import { isTradingDay, nyseHoliday } from '../analytics/calendar.ts';
import { nextTicks, tickPartition } from '../cron.ts';
import type { Sql } from '../db.ts';
import { BadInputError } from '../errors.ts';
import type { JobDefinition } from '../job-definition.ts';
import {
  loadDatePartitionRuns,
  loadEtlDayRuns,
  loadEtlTouchingRuns,
  loadLatestCompleteEtlRun,
  loadRollupCoverageRuns,
  type GridRun,
} from '../queries/partitions.ts';
import { expectedPartitions, type Schedule } from '../scheduler.ts';

export type { GridRun } from '../queries/partitions.ts';

export type CellState = 'done' | 'failed' | 'missing' | 'running' | 'not_expected';

/** One (job, date) cell. */
export interface PartitionCell {
  /** The column's date, `YYYY-MM-DD`. */
  date: string;
  state: CellState;
  /** The ops.job_runs partition the cell reflects (for trade-etl a tick, `2026-11-21T062500Z`), or the date. */
  partition: string;
  /** BullMQ id of that run (for a link to Bull Board), or null. */
  job_id: string | null;
  error: string | null;
  /** ISO instant the run finished, or null. */
  finished_at: string | null;
  /** Attempts of that run's BullMQ job (0 without a run). */
  attempts: number;
  /** Whether POST /api/v1/partitions/rerun accepts it: failed or missing. */
  can_rerun: boolean;
  /** Why, in a few words, for a tooltip: "NYSE closed: Thanksgiving Day", "not yet: due 2026-11-20T23:00:00.000Z", "covered by build-rollups 2025-11-01..2025-11-30". */
  note: string | null;
}

export interface PartitionGridRow {
  job: string;
  label: string;
  queue: string;
  /** `nyse`: the job's cells on NYSE holidays are not_expected. */
  calendar: 'nyse' | 'all';
  /** The effective schedule (after SCHEDULE_<JOB>), or null when it is off. */
  schedule: { cron: string; tz: string } | null;
  cells: PartitionCell[];
}

/** The answer of GET /api/v1/partitions. */
export interface PartitionGrid {
  from: string;
  to: string;
  /** The columns: every weekday from `from` to `to`, oldest first. */
  dates: string[];
  /** Today in `tz`. */
  today: string;
  tz: string;
  jobs: PartitionGridRow[];
  generated_at: string;
}

/** How a job's cells are judged. */
export interface GridJobSpec {
  readonly job: string;
  readonly label: string;
  /** `date`: partition = the date; `touched`: trade-etl, by the dates its runs touched. */
  readonly kind: 'date' | 'touched';
  /** On the NYSE calendar: closed days are not expected. */
  readonly nyse: boolean;
}

/** The grid's rows, in order. */
export const GRID_JOBS: readonly GridJobSpec[] = [
  { job: 'trade-etl', label: 'ETL', kind: 'touched', nyse: true },
  { job: 'build-rollups', label: 'Rollups', kind: 'date', nyse: true },
  { job: 'refresh-rs', label: 'RS', kind: 'date', nyse: true },
  { job: 'enrichment-daily', label: 'Enrichment', kind: 'date', nyse: false },
  { job: 'nightly-report', label: 'Report', kind: 'date', nyse: false },
];

/** Columns when neither `from` is given. */
export const DEFAULT_GRID_WEEKDAYS = 30;
/** Most columns one request may ask for. */
export const MAX_GRID_WEEKDAYS = 120;

const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ACTIVE: ReadonlySet<string> = new Set(['running', 'retrying', 'buffered']);
const TICK_PARTITION = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

// ---------------------------------------------------------------------------------------------
// Dates

function utcDay(date: string): Date {
  return new Date(`${date}T00:00:00Z`);
}

function shiftDate(date: string, days: number): string {
  return new Date(utcDay(date).getTime() + days * 86_400_000).toISOString().slice(0, 10);
}

function isWeekday(date: string): boolean {
  const day = utcDay(date).getUTCDay();
  return day >= 1 && day <= 5;
}

/** Today's date in `tz`. */
export function todayIn(tz: string, now: Date): string {
  return DateTime.fromJSDate(now).setZone(tz).toISODate() as string;
}

/** Weekdays from `from` to `to` inclusive, oldest first; stops after `limit`. */
export function listWeekdays(from: string, to: string, limit = Number.MAX_SAFE_INTEGER): string[] {
  const dates: string[] = [];
  // By timestamp, not by string: after 9999-12-31 the ISO string is "+010000-…", which sorts
  // before "9999-…", so `to=9999-12-31` never ended the loop (and blocked the process).
  const end = utcDay(to).getTime();
  for (let t = utcDay(from).getTime(); t <= end && dates.length < limit; t += 86_400_000) {
    const d = new Date(t).toISOString().slice(0, 10);
    if (isWeekday(d)) dates.push(d);
  }
  return dates;
}

/**
 * The grid's range: `to` defaults to today, `from` to the `DEFAULT_GRID_WEEKDAYS`th weekday
 * back from `to`. BadInputError naming the field when from is after to or the range holds
 * more than `MAX_GRID_WEEKDAYS` weekdays. Dates must already be valid `YYYY-MM-DD`.
 */
export function resolveGridRange(asked: { from?: string | undefined; to?: string | undefined }, today: string): { from: string; to: string; dates: string[] } {
  const to = asked.to ?? today;
  let from = asked.from;
  if (from === undefined) {
    from = to;
    for (let n = isWeekday(to) ? 1 : 0; n < DEFAULT_GRID_WEEKDAYS; ) {
      from = shiftDate(from, -1);
      if (isWeekday(from)) n++;
    }
  }
  if (from > to) throw new BadInputError(`from: ${from} is after to (${to}${asked.to === undefined ? ', today' : ''})`);
  const dates = listWeekdays(from, to, MAX_GRID_WEEKDAYS + 1);
  if (dates.length > MAX_GRID_WEEKDAYS) throw new BadInputError(`from: ${from}..${to} holds more than ${MAX_GRID_WEEKDAYS} weekdays; ask for at most ${MAX_GRID_WEEKDAYS}`);
  return { from, to, dates };
}

// ---------------------------------------------------------------------------------------------
// Expected or not

interface Expectation {
  due: boolean;
  note: string | null;
}

function partitionOfTick(schedule: Schedule, tick: Date): string {
  const payload = schedule.definition.payload.parse({ scheduledFor: tick.toISOString() });
  return schedule.definition.partition(payload as never);
}

/** A date partition's tick lies within a couple of days of the date (enrichment-daily: the next morning; nightly-report: the UTC date). */
const TICK_REACH_BEFORE_MS = 2 * 86_400_000;
const TICK_REACH_AFTER_MS = 3 * 86_400_000;
/** Whether a date is due never changes once every tick that could name it has passed: remembered across requests. */
const settledDue = new Map<string, boolean>();
const SETTLED_MAX = 50_000;

/** Which of `dates` a tick of `schedule` has named by `now`. cron-parser walks zoned ticks at ~0.3 ms each, hence the memo. */
function computeDue(spec: GridJobSpec, schedule: Schedule, dates: readonly string[], now: Date, tz: string): Map<string, boolean> {
  const due = new Map<string, boolean>();
  if (spec.kind === 'touched') {
    // Every tick is its own partition: a date is due once its first tick (in tz) has come.
    for (const date of dates) {
      const start = DateTime.fromISO(date, { zone: tz }).startOf('day');
      const [first] = nextTicks(schedule.cron, schedule.tz, new Date(start.toMillis() - 1), 1);
      due.set(date, first !== undefined && first.getTime() < start.plus({ days: 1 }).toMillis() && first.getTime() <= now.getTime());
    }
    return due;
  }
  const sorted = [...dates].sort();
  const windowStart = new Date(utcDay(sorted[0] as string).getTime() - TICK_REACH_BEFORE_MS);
  const windowEnd = new Date(Math.min(now.getTime(), utcDay(sorted[sorted.length - 1] as string).getTime() + TICK_REACH_AFTER_MS));
  const named = new Set(windowEnd > windowStart ? expectedPartitions(schedule, windowStart, windowEnd).map((e) => e.partition) : []);
  for (const date of dates) due.set(date, named.has(date));
  return due;
}

/** Whether a tick of `schedule` for each date has come by `now` ("not yet" otherwise), and why not. */
function createExpectation(spec: GridJobSpec, schedule: Schedule | null, dates: readonly string[], now: Date, tz: string): (date: string) => Expectation {
  if (!schedule) return () => ({ due: false, note: 'not scheduled (its schedule is off)' });
  const keyOf = (date: string) => [spec.kind, schedule.id, schedule.cron, schedule.tz, tz, date].join('\u0000');
  const due = new Map<string, boolean>();
  const unknown: string[] = [];
  for (const date of dates) {
    const known = settledDue.get(keyOf(date));
    if (known === undefined) unknown.push(date);
    else due.set(date, known);
  }
  if (unknown.length > 0) {
    for (const [date, value] of computeDue(spec, schedule, unknown, now, tz)) {
      due.set(date, value);
      if (utcDay(date).getTime() + TICK_REACH_AFTER_MS + 86_400_000 <= now.getTime()) {
        if (settledDue.size >= SETTLED_MAX) settledDue.clear();
        settledDue.set(keyOf(date), value);
      }
    }
  }
  let upcoming: Map<string, Date> | undefined;
  const upcomingTicks = () => {
    if (upcoming) return upcoming;
    upcoming = new Map();
    for (const tick of nextTicks(schedule.cron, schedule.tz, now, 8)) {
      const partition = spec.kind === 'touched' ? todayIn(tz, tick) : partitionOfTick(schedule, tick);
      if (!upcoming.has(partition)) upcoming.set(partition, tick);
    }
    return upcoming;
  };
  const today = todayIn(tz, now);
  return (date) => {
    if (due.get(date)) return { due: true, note: null };
    const tick = upcomingTicks().get(date);
    if (tick) return { due: false, note: `not yet: due ${tick.toISOString()}` };
    return { due: false, note: date > today ? 'not yet: a future date' : `no tick of ${schedule.cron} for this date` };
  };
}

// ---------------------------------------------------------------------------------------------
// Evidence from the runs

interface Evidence {
  state: 'done' | 'failed' | 'running';
  run: GridRun;
  note: string | null;
}

function instantOfTickPartition(partition: string): Date | null {
  const m = TICK_PARTITION.exec(partition);
  return m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]))) : null;
}

/** When a trade-etl run was scheduled: its tick, else the instant its partition names. */
function scheduledAt(run: GridRun): Date | null {
  return run.scheduled_for ?? instantOfTickPartition(run.partition);
}

function latestBy<T>(items: readonly T[], key: (item: T) => number): T | undefined {
  let best: T | undefined;
  for (const item of items) if (best === undefined || key(item) > key(best)) best = item;
  return best;
}

const finishedMs = (run: GridRun) => run.finished_at?.getTime() ?? 0;
const scheduledMs = (run: GridRun) => scheduledAt(run)?.getTime() ?? 0;

function datesTouched(run: GridRun): string[] {
  const touched = run.summary?.dates_touched;
  return Array.isArray(touched) ? touched.filter((d): d is string => typeof d === 'string') : [];
}

/** The date ranges a succeeded build-rollups run rebuilt, inclusive ('' and '9999-12-31' as open ends). */
function coverageOf(run: GridRun, tz: string): [string, string][] {
  const ranges: [string, string][] = [];
  const s = run.summary ?? {};
  const asOf = typeof s.as_of === 'string' ? s.as_of : run.finished_at ? todayIn(tz, run.finished_at) : '';
  if (typeof s.from === 'string' && typeof s.to === 'string') ranges.push([s.from, s.to]);
  // A restatement's partition is its scope, then when it was asked for (`full@…`, `a..b@…`).
  const scope = run.partition.split('@')[0] as string;
  if (s.scope === 'full' || scope === 'full') ranges.push(['', asOf]);
  const named = /^(\d{4}-\d{2}-\d{2}|start)\.\.(\d{4}-\d{2}-\d{2}|end)$/.exec(scope);
  if (named) ranges.push([named[1] === 'start' ? '' : (named[1] as string), named[2] === 'end' ? asOf : (named[2] as string)]);
  return ranges;
}

interface RunIndex {
  byPartition: Map<string, Map<string, GridRun>>;
  rollupCovers: { run: GridRun; ranges: [string, string][] }[];
  /** trade-etl runs by the day (in tz) they were scheduled on. */
  etlByDay: Map<string, GridRun[]>;
  /** The latest succeeded trade-etl run that touched each date. */
  etlTouching: Map<string, GridRun>;
  /** The latest complete trade-etl run and its day. */
  etlHealer: { run: GridRun; day: string } | undefined;
}

function indexRuns(runs: readonly GridRun[], tz: string): RunIndex {
  const byPartition = new Map<string, Map<string, GridRun>>();
  const rollupCovers: RunIndex['rollupCovers'] = [];
  const etlByDay = new Map<string, GridRun[]>();
  const etlTouching = new Map<string, GridRun>();
  let etlHealer: RunIndex['etlHealer'];
  for (const run of runs) {
    if (run.job === 'trade-etl') {
      const at = scheduledAt(run);
      const day = at ? todayIn(tz, at) : null;
      if (day !== null) {
        const list = etlByDay.get(day);
        if (list) list.push(run);
        else etlByDay.set(day, [run]);
      }
      if (run.status !== 'succeeded') continue;
      for (const date of datesTouched(run)) {
        const known = etlTouching.get(date);
        if (!known || finishedMs(run) > finishedMs(known)) etlTouching.set(date, run);
      }
      if (day !== null && run.summary?.stopped_early !== true && (!etlHealer || scheduledMs(run) > scheduledMs(etlHealer.run))) etlHealer = { run, day };
      continue;
    }
    if (ISO_DATE.test(run.partition)) {
      let rows = byPartition.get(run.job);
      if (!rows) byPartition.set(run.job, (rows = new Map()));
      rows.set(run.partition, run);
    }
    if (run.job === 'build-rollups' && run.status === 'succeeded') {
      const ranges = coverageOf(run, tz);
      if (ranges.length > 0) rollupCovers.push({ run, ranges });
    }
  }
  return { byPartition, rollupCovers, etlByDay, etlTouching, etlHealer };
}

function dateEvidence(job: string, date: string, index: RunIndex): Evidence | null {
  const own = index.byPartition.get(job)?.get(date);
  if (own && (own.status === 'succeeded' || own.status === 'skipped')) return { state: 'done', run: own, note: own.status === 'skipped' ? 'skipped' : null };
  if (own && ACTIVE.has(own.status)) return { state: 'running', run: own, note: own.status === 'running' ? null : own.status };
  if (job === 'build-rollups') {
    const covering = latestBy(
      index.rollupCovers.filter((c) => c.run !== own && c.ranges.some(([lo, hi]) => lo <= date && date <= hi)),
      (c) => finishedMs(c.run),
    );
    // A failed nightly rebuild of a date is healed by any later rebuild that covered it.
    if (covering && (!own || finishedMs(covering.run) > finishedMs(own))) {
      return { state: 'done', run: covering.run, note: `covered by build-rollups ${covering.run.partition}` };
    }
  }
  if (own?.status === 'failed') return { state: 'failed', run: own, note: null };
  return null;
}

function etlEvidence(date: string, index: RunIndex): Evidence | null {
  const sameDay = index.etlByDay.get(date) ?? [];
  const succeeded = latestBy(sameDay.filter((r) => r.status === 'succeeded'), scheduledMs);
  if (succeeded) return { state: 'done', run: succeeded, note: null };
  const touching = index.etlTouching.get(date);
  if (touching) return { state: 'done', run: touching, note: `touched by trade-etl ${touching.partition}` };
  const active = latestBy(sameDay.filter((r) => ACTIVE.has(r.status)), scheduledMs);
  if (active) return { state: 'running', run: active, note: active.status === 'running' ? null : active.status };
  const healer = index.etlHealer;
  if (healer && healer.day > date) return { state: 'done', run: healer.run, note: `caught up by trade-etl ${healer.run.partition} (watermark)` };
  const latest = latestBy(sameDay.filter((r) => r.status !== 'skipped'), scheduledMs);
  if (latest?.status === 'failed') return { state: 'failed', run: latest, note: null };
  return null;
}

// ---------------------------------------------------------------------------------------------
// The grid

export interface GridJobInput {
  spec: GridJobSpec;
  queue: string;
  /** The effective schedule, or null when it is off. */
  schedule: Schedule | null;
}

export interface GridInput {
  /** The columns. */
  dates: readonly string[];
  now: Date;
  /** EXCHANGE_TZ: "today", and the day a trade-etl run belongs to. */
  tz: string;
  jobs: readonly GridJobInput[];
  /** ops.job_runs rows (every row, or the reduced set src/queries/partitions.ts reads). */
  runs: readonly GridRun[];
}

function createCell(date: string, state: CellState, run: GridRun | undefined, note: string | null): PartitionCell {
  return {
    date,
    state,
    partition: run?.partition ?? date,
    job_id: run?.job_id ?? null,
    error: state === 'done' ? null : (run?.error ?? null),
    finished_at: run?.finished_at ? run.finished_at.toISOString() : null,
    attempts: run?.attempts ?? 0,
    can_rerun: state === 'failed' || state === 'missing',
    note,
  };
}

/** The rows of the grid: one per job, one cell per date. Pure. */
export function buildPartitionGrid(input: GridInput): PartitionGridRow[] {
  const index = indexRuns(input.runs, input.tz);
  return input.jobs.map(({ spec, queue, schedule }) => {
    const expectation = createExpectation(spec, schedule, input.dates, input.now, input.tz);
    const cells = input.dates.map((date) => {
      const evidence = spec.kind === 'touched' ? etlEvidence(date, index) : dateEvidence(spec.job, date, index);
      if (spec.nyse && !isTradingDay(date)) {
        if (evidence && evidence.state !== 'done') return createCell(date, evidence.state, evidence.run, evidence.note);
        return createCell(date, 'not_expected', undefined, `NYSE closed: ${nyseHoliday(date) ?? 'weekend'}`);
      }
      if (evidence) return createCell(date, evidence.state, evidence.run, evidence.note);
      const expected = expectation(date);
      return expected.due ? createCell(date, 'missing', undefined, null) : createCell(date, 'not_expected', undefined, expected.note);
    });
    return {
      job: spec.job,
      label: spec.label,
      queue,
      calendar: spec.nyse ? 'nyse' : 'all',
      schedule: schedule ? { cron: schedule.cron, tz: schedule.tz } : null,
      cells,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Loading

export interface LoadPartitionGridOptions {
  from?: string | undefined;
  to?: string | undefined;
  /** Only this job's row. */
  job?: string | undefined;
  now: Date;
  /** The job definitions this process knows; grid jobs missing from them are left out. */
  definitions: readonly JobDefinition[];
  /** Effective schedules (resolveSchedules). */
  schedules: readonly Schedule[];
  /** EXCHANGE_TZ. */
  tz: string;
}

/** The grid jobs this process knows, with their queue and effective schedule. */
export function gridJobsOf(definitions: readonly JobDefinition[], schedules: readonly Schedule[], only?: string): GridJobInput[] {
  const byName = new Map(definitions.map((d) => [d.name, d]));
  return GRID_JOBS.filter((spec) => byName.has(spec.job) && (only === undefined || spec.job === only)).map((spec) => ({
    spec,
    queue: (byName.get(spec.job) as JobDefinition).queue,
    schedule: schedules.find((s) => s.id === spec.job) ?? null,
  }));
}

/**
 * Reads what the cells of `jobs` × `dates` need from ops.job_runs, in two rounds: a date's own
 * row (or a trade-etl success that day) settles most cells, so build-rollups coverage and
 * trade-etl's dates touched are read only for the dates still open.
 */
export async function loadGridRuns(db: Sql, jobs: readonly GridJobInput[], dates: readonly string[], tz: string): Promise<GridRun[]> {
  if (dates.length === 0 || jobs.length === 0) return [];
  const sorted = [...new Set(dates)].sort();
  const names = new Set(jobs.map((j) => j.spec.job));
  const dayStart = (date: string) => DateTime.fromISO(date, { zone: tz }).startOf('day');
  const dateJobs = jobs.filter((j) => j.spec.kind === 'date').map((j) => j.spec.job);
  const wantsEtl = names.has('trade-etl');
  const [own, etlDays, healer] = await Promise.all([
    loadDatePartitionRuns(db, dateJobs, sorted),
    wantsEtl
      ? loadEtlDayRuns(db, sorted.map((d) => ({ lo: tickPartition(dayStart(d).toJSDate()), hi: tickPartition(dayStart(d).plus({ days: 1 }).toJSDate()) })))
      : Promise.resolve([]),
    wantsEtl ? loadLatestCompleteEtlRun(db) : Promise.resolve(undefined),
  ]);

  const settled = (run: GridRun) => run.status === 'succeeded' || run.status === 'skipped' || ACTIVE.has(run.status);
  const rollupsSettled = new Set(own.filter((r) => r.job === 'build-rollups' && settled(r)).map((r) => r.partition));
  const rollupsOpen = names.has('build-rollups') ? sorted.filter((d) => !rollupsSettled.has(d)) : [];
  const etlSucceeded = new Set(etlDays.filter((r) => r.status === 'succeeded').map((r) => todayIn(tz, scheduledAt(r) as Date)));
  const etlOpen = wantsEtl ? sorted.filter((d) => !etlSucceeded.has(d)) : [];
  // A run cannot rebuild or load a date before that date begins: older runs are not read.
  const [covering, touching] = await Promise.all([
    rollupsOpen.length > 0
      ? loadRollupCoverageRuns(db, { from: rollupsOpen[0] as string, to: rollupsOpen[rollupsOpen.length - 1] as string, since: dayStart(rollupsOpen[0] as string).toJSDate() })
      : Promise.resolve([]),
    etlOpen.length > 0 ? loadEtlTouchingRuns(db, { dates: etlOpen, since: dayStart(etlOpen[0] as string).toJSDate() }) : Promise.resolve([]),
  ]);
  return [...own, ...etlDays, ...(healer ? [healer] : []), ...covering, ...touching];
}

/** The grid for a range (default: the last 30 weekdays up to today in `tz`); BadInputError for a bad range. */
export async function loadPartitionGrid(db: Sql, options: LoadPartitionGridOptions): Promise<PartitionGrid> {
  const today = todayIn(options.tz, options.now);
  const range = resolveGridRange({ from: options.from, to: options.to }, today);
  const jobs = gridJobsOf(options.definitions, options.schedules, options.job);
  const runs = await loadGridRuns(db, jobs, range.dates, options.tz);
  return {
    from: range.from,
    to: range.to,
    dates: range.dates,
    today,
    tz: options.tz,
    jobs: buildPartitionGrid({ dates: range.dates, now: options.now, tz: options.tz, jobs, runs }),
    generated_at: options.now.toISOString(),
  };
}

/** One cell (any date, weekends included), as the grid would show it: what a re-run is judged by. */
export async function loadPartitionCell(
  db: Sql,
  options: { job: string; date: string; now: Date; definitions: readonly JobDefinition[]; schedules: readonly Schedule[]; tz: string },
): Promise<{ row: PartitionGridRow; cell: PartitionCell } | undefined> {
  const jobs = gridJobsOf(options.definitions, options.schedules, options.job);
  if (jobs.length === 0) return undefined;
  const runs = await loadGridRuns(db, jobs, [options.date], options.tz);
  const [row] = buildPartitionGrid({ dates: [options.date], now: options.now, tz: options.tz, jobs, runs });
  return row ? { row, cell: row.cells[0] as PartitionCell } : undefined;
}
