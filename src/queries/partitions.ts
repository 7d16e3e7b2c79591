/**
 * Reads of ops.job_runs behind the partition grid (GET /api/v1/partitions, the status page).
 * Every query returns rows in one shape, `GridRun`; src/status/partitions.ts decides the cells.
 * trade-etl fires every five minutes and build-rollups after each load, so those queries keep
 * only the rows the grid's rules can pick (the latest of each kind), never a row that would
 * change a cell. Nothing here writes.
 */
import type { Sql } from '../db.ts';
import type { RunStatus } from '../runs.ts';

/** The parts of a run's summary the grid reads (every other key is left in the database). */
export interface GridRunSummary {
  /** trade-etl: trading dates whose facts the run changed. */
  dates_touched?: unknown;
  /** trade-etl: the run left rows behind its watermark (abort or maxBatches). */
  stopped_early?: unknown;
  /** build-rollups: first and last trading date rebuilt, its scope and as-of date. */
  from?: unknown;
  to?: unknown;
  scope?: unknown;
  as_of?: unknown;
}

/** One ops.job_runs row as the grid sees it. */
export interface GridRun {
  job: string;
  partition: string;
  status: RunStatus;
  job_id: string | null;
  attempts: number;
  error: string | null;
  scheduled_for: Date | null;
  finished_at: Date | null;
  summary: GridRunSummary | null;
}

const COLUMNS = (sql: Sql) => sql`job, partition, status, job_id, attempts, error, scheduled_for, finished_at`;

/** Rows whose partition is one of `dates`, for the date-partitioned jobs (the (job, partition) key). */
export async function loadDatePartitionRuns(sql: Sql, jobs: readonly string[], dates: readonly string[]): Promise<GridRun[]> {
  if (jobs.length === 0 || dates.length === 0) return [];
  return sql<GridRun[]>`
    select ${COLUMNS(sql)},
      jsonb_strip_nulls(jsonb_build_object('from', summary->'from', 'to', summary->'to', 'scope', summary->'scope', 'as_of', summary->'as_of')) as summary
    from ops.job_runs
    where job = any(${jobs as string[]}) and partition = any(${dates as string[]})`;
}

/**
 * Succeeded build-rollups runs finished since `since` whose summary's from..to overlaps
 * from..to (or whose scope was everything), the latest run of each distinct range only.
 * A run cannot rebuild a date before it exists, so older runs cannot cover the window.
 */
export async function loadRollupCoverageRuns(sql: Sql, window: { from: string; to: string; since: Date }): Promise<GridRun[]> {
  // A range or full run also covers what its partition names, whatever its summary says.
  return sql<GridRun[]>`
    select distinct on (named, summary->>'from', summary->>'to', summary->>'scope') ${COLUMNS(sql)}, summary
    from (
      select ${COLUMNS(sql)}, run_id,
        -- A restatement's partition names its scope, then when it was asked for (full@…, a..b@…).
        case when partition = 'full' or partition like 'full@%' or partition like '%..%' then split_part(partition, '@', 1) else '' end as named,
        jsonb_strip_nulls(jsonb_build_object('from', summary->'from', 'to', summary->'to', 'scope', summary->'scope', 'as_of', summary->'as_of')) as summary
      from ops.job_runs
      where job = 'build-rollups' and status = 'succeeded' and finished_at >= ${window.since}
    ) r
    where named <> '' or summary->>'scope' = 'full' or (summary->>'from' <= ${window.to} and summary->>'to' >= ${window.from})
    order by named, summary->>'from', summary->>'to', summary->>'scope', finished_at desc, run_id desc`;
}

/**
 * trade-etl runs of each day: the latest succeeded and the latest not skipped of the ticks in
 * [lo, hi) (its partition is the tick, `2026-11-21T062500Z`, sortable as text, so the
 * (job, partition) key finds them), plus every run still running, retrying or buffered.
 * That is all the grid's rules ("a success that day", "one running", "the latest one") read.
 */
export async function loadEtlDayRuns(sql: Sql, days: readonly { lo: string; hi: string }[]): Promise<GridRun[]> {
  if (days.length === 0) return [];
  const summary = sql`jsonb_strip_nulls(jsonb_build_object('stopped_early', summary->'stopped_early')) as summary`;
  return sql<GridRun[]>`
    select r.* from unnest(${days.map((d) => d.lo)}::text[], ${days.map((d) => d.hi)}::text[]) as d(lo, hi)
    cross join lateral (
      (select ${COLUMNS(sql)}, ${summary} from ops.job_runs
       where job = 'trade-etl' and partition >= d.lo and partition < d.hi and status = 'succeeded'
       order by partition desc limit 1)
      union all
      (select ${COLUMNS(sql)}, ${summary} from ops.job_runs
       where job = 'trade-etl' and partition >= d.lo and partition < d.hi and status <> 'skipped'
       order by partition desc limit 1)
    ) r
    union all
    select ${COLUMNS(sql)}, ${summary} from ops.job_runs
    where job = 'trade-etl' and status in ('running', 'retrying', 'buffered')`;
}

/**
 * For each of `dates`, the latest succeeded trade-etl run (finished since `since`) whose
 * summary lists it in `dates_touched`; the row's summary lists only that date. Each date is
 * looked up by containment in job_runs_etl_dates_touched_idx (sql/016), not by unpacking
 * every run's summary since `since`.
 */
export async function loadEtlTouchingRuns(sql: Sql, window: { dates: readonly string[]; since: Date }): Promise<GridRun[]> {
  if (window.dates.length === 0) return [];
  return sql<GridRun[]>`
    select r.job, r.partition, r.status, r.job_id, r.attempts, r.error, r.scheduled_for, r.finished_at,
      jsonb_build_object('dates_touched', jsonb_build_array(t.date)) as summary
    from unnest(${window.dates as string[]}::text[]) as t(date)
    cross join lateral (
      select * from ops.job_runs r
      where r.job = 'trade-etl' and r.status = 'succeeded' and r.summary->'dates_touched' @> jsonb_build_array(t.date)
        and r.finished_at >= ${window.since}
      order by r.finished_at desc, r.run_id desc
      limit 1
    ) r
    order by t.date`;
}

/** The newest succeeded trade-etl run that did not stop early: it loaded everything ingested before it started. */
export async function loadLatestCompleteEtlRun(sql: Sql): Promise<GridRun | undefined> {
  const [row] = await sql<GridRun[]>`
    select ${COLUMNS(sql)}, jsonb_strip_nulls(jsonb_build_object('stopped_early', summary->'stopped_early')) as summary
    from ops.job_runs
    where job = 'trade-etl' and status = 'succeeded' and coalesce((summary->>'stopped_early')::boolean, false) = false
    order by partition desc
    limit 1`;
  return row;
}
