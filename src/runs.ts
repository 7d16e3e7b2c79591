/**
 * ops.job_runs: the record of what ran. One row per (job, partition), updated by every
 * attempt; ops.job_run_events keeps each attempt's outcome. Claiming a partition is the
 * guard against running it twice: a BullMQ job id dedupes only while the job is stored,
 * and Redis may lose its data.
 */
import type { PendingQuery, Row } from 'postgres';
import { createDb, type Sql } from './db.ts';
import type { OverlapPolicy } from './job-definition.ts';
import { createBatcher } from './batcher.ts';

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'retrying' | 'skipped' | 'buffered';

export interface ClaimRequest {
  job: string;
  partition: string;
  queue: string;
  jobId: string;
  attempt: number;
  scheduledFor: string | null;
  /** Run even when the partition already succeeded. */
  force: boolean;
  /**
   * The run stands for its schedule's tick at `scheduledFor` (fired, caught up, or that tick run
   * again). It also runs a partition that succeeded before that instant: done ahead of its time
   * (`bullpen run` of today's report at noon), on data not yet complete.
   */
  tick?: boolean;
}

export type ClaimResult =
  | { claimed: true }
  | { claimed: false; status: RunStatus; jobId: string | null };

export interface FinishRequest {
  job: string;
  partition: string;
  jobId: string;
  attempt: number;
  status: 'succeeded' | 'failed' | 'retrying' | 'skipped';
  summary: Record<string, unknown> | null;
  error: string | null;
}

export type ScheduledClaimResult =
  | ClaimResult
  | { claimed: false; status: 'overlap-skipped'; activePartition: string }
  | { claimed: false; status: 'overlap-buffered'; activePartition: string }
  | { claimed: false; status: 'overlap-waiting'; activePartition: string };

export interface RunRecorder {
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /** Claim honouring an overlap policy under a per-job advisory lock; `allow` (every unscheduled job) is a plain claim. */
  claimScheduled(request: ClaimRequest, overlap: OverlapPolicy | 'wait'): Promise<ScheduledClaimResult>;
  finish(request: FinishRequest): Promise<void>;
  heartbeat(job: string, partition: string, jobId: string): Promise<void>;
  /**
   * Marks a running row as held by no worker, before its job puts itself back on its queue to
   * go on later: the claim of its next step continues the run instead of counting a new one.
   */
  suspend(job: string, partition: string, jobId: string): Promise<void>;
  /**
   * Events for failed attempts 1…`failedAttempts` of a job that ops.job_run_events lacks: a
   * failure that could not be written (PostgreSQL was down) is recorded by the attempt after
   * it, with BullMQ's reason for the last one.
   */
  recordMissedFailures(job: string, partition: string, jobId: string, failedAttempts: number, lastError: string | null): Promise<void>;
  /** Waits for buffered writes. */
  drain(): Promise<void>;
}

export interface RunRecorderOptions {
  /** host:pid of this process, stored with each run. */
  worker: string;
  /** A running row whose heartbeat is older than this belongs to a dead worker. @defaultValue 90 */
  staleAfterSeconds?: number;
}

/**
 * How far a tick may run ahead of its instant and still be that tick, not a run ahead of it:
 * room for clock skew between PostgreSQL and the hosts of Redis' clients.
 */
export const TICK_SKEW_MS = 60_000;

/**
 * The tick rule, as SQL: the run row `row` succeeded more than TICK_SKEW_MS before the instant
 * `tick`, i.e. ahead of that tick (ClaimRequest.tick). A run that stood for that tick or a later
 * one (its scheduled_for, on the clock that fired the tick) is never ahead of it, whatever
 * PostgreSQL's clock said when it finished: a database clock running behind the workers' must
 * not make a tick's own run look early and owe the tick again.
 */
function succeededAhead(sql: Sql, row: string, tick: PendingQuery<Row[]>): PendingQuery<Row[]> {
  const r = sql.unsafe(row);
  return sql`${r}.status = 'succeeded' and greatest(${r}.finished_at, ${r}.scheduled_for) < ${tick} - make_interval(secs => ${TICK_SKEW_MS / 1000})`;
}

/**
 * The tick rule for a failure, as SQL: the run row `row` failed, and its last attempt started more
 * than TICK_SKEW_MS before the instant `tick` without standing for that tick or a later one. Such a
 * run (by hand in the afternoon, refused because the session had not closed) read the partition
 * before the tick and says nothing of how the tick's run would fare, so the tick is still owed, as
 * after a success ahead of it. By when it started, not when it failed: one started before the tick
 * that failed after it (the tick found it running and stood down, or its worker died and the reaper
 * settled it later) is no more the tick's run. A failure of an attempt started at or after the tick
 * is the tick's own: BullMQ retries it and ops re-run it, and catch-up does not run it again.
 */
function failedAhead(sql: Sql, row: string, tick: PendingQuery<Row[]>): PendingQuery<Row[]> {
  const r = sql.unsafe(row);
  return sql`${r}.status = 'failed' and greatest(${r}.started_at, ${r}.scheduled_for) < ${tick} - make_interval(secs => ${TICK_SKEW_MS / 1000})`;
}

/** One statement claims every request of a batch that shares its `force` and `tick` flags. */
async function claimGroup(sql: Sql, requests: ClaimRequest[], worker: string, staleAfterSeconds: number, { force, tick }: ClaimFlags): Promise<Set<string>> {
  if (requests.length === 0) return new Set();
  // A job that put itself back on its queue between steps (see suspend) goes on with its run: a
  // backfill series chunk by chunk is one run, from its first step.
  const continuing = sql`r.status = 'running' and r.job_id = excluded.job_id and r.worker is null`;
  const rows = await sql<{ job: string; partition: string }[]>`
    insert into ops.job_runs as r
      (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, heartbeat_at, worker)
    select job, partition, queue, job_id, 'running', attempt, 1, scheduled_for, now(), now(), ${worker}
    from unnest(
      ${requests.map((r) => r.job)}::text[], ${requests.map((r) => r.partition)}::text[], ${requests.map((r) => r.queue)}::text[],
      ${requests.map((r) => r.jobId)}::text[], ${requests.map((r) => r.attempt)}::int[], ${requests.map((r) => r.scheduledFor)}::timestamptz[]
    ) as t(job, partition, queue, job_id, attempt, scheduled_for)
    on conflict (job, partition) do update set
      status = 'running', queue = excluded.queue, job_id = excluded.job_id, attempts = excluded.attempts,
      run_count = case when ${continuing} then r.run_count else r.run_count + 1 end,
      scheduled_for = case when ${tick}::boolean then coalesce(excluded.scheduled_for, r.scheduled_for) else coalesce(r.scheduled_for, excluded.scheduled_for) end,
      started_at = case when ${continuing} then r.started_at else now() end,
      finished_at = null, heartbeat_at = now(), worker = excluded.worker,
      summary = null, error = null, updated_at = now()
    where (r.status not in ('succeeded', 'skipped') or ${force}::boolean
           or (${tick}::boolean and ${succeededAhead(sql, 'r', sql`excluded.scheduled_for`)}))
      -- A live run of another BullMQ job owns the partition; the same job id is its own retry or stall recovery.
      and (r.status <> 'running' or r.job_id = excluded.job_id
           or r.heartbeat_at < now() - make_interval(secs => ${staleAfterSeconds}))
    returning r.job, r.partition`;
  return new Set(rows.map((row) => `${row.job}\u0000${row.partition}`));
}

interface ClaimFlags {
  force: boolean;
  tick: boolean;
}
const CLAIM_GROUPS: readonly ClaimFlags[] = [false, true].flatMap((force) => [false, true].map((tick) => ({ force, tick })));

async function claimBatch(sql: Sql, requests: ClaimRequest[], worker: string, staleAfterSeconds: number): Promise<ClaimResult[]> {
  // Two claims of one partition in a batch would make ON CONFLICT touch a row twice: send the first only.
  const keyOf = (r: ClaimRequest) => `${r.job}\u0000${r.partition}`;
  const first = new Map<string, ClaimRequest>();
  for (const r of requests) if (!first.has(keyOf(r))) first.set(keyOf(r), r);
  const unique = [...first.values()];
  const groups = await Promise.all(
    CLAIM_GROUPS.map((flags) =>
      claimGroup(sql, unique.filter((r) => r.force === flags.force && (r.tick ?? false) === flags.tick), worker, staleAfterSeconds, flags),
    ),
  );
  const claimed = new Set(groups.flatMap((group) => [...group]));
  // Why a claim failed is only needed on the rare path where one did.
  const lost = unique.filter((r) => !claimed.has(keyOf(r)));
  const prior = new Map<string, { status: RunStatus; job_id: string | null }>();
  if (lost.length > 0) {
    const rows = await sql<{ job: string; partition: string; status: RunStatus; job_id: string | null }[]>`
      select job, partition, status, job_id from ops.job_runs
      where (job, partition) in (select * from unnest(${lost.map((r) => r.job)}::text[], ${lost.map((r) => r.partition)}::text[]))`;
    for (const row of rows) prior.set(`${row.job}\u0000${row.partition}`, row);
  }
  return requests.map((r) => {
    const key = keyOf(r);
    const winner = first.get(key) as ClaimRequest;
    if (claimed.has(key)) {
      // A second claim of the same partition in one batch loses to the first, now running it.
      return winner === r ? { claimed: true } : { claimed: false, status: 'running', jobId: winner.jobId };
    }
    // Where the first lost, the second loses to what the first lost to.
    const row = prior.get(key);
    return { claimed: false, status: row?.status ?? 'running', jobId: row?.job_id ?? null };
  });
}

/** PostgreSQL's text and jsonb cannot hold U+0000 (a binary error page quoted in a message can). */
function storable(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
}

async function finishBatch(sql: Sql, requests: FinishRequest[]): Promise<void[]> {
  await sql`
    with input as (
      select * from unnest(
        ${requests.map((r) => r.job)}::text[], ${requests.map((r) => r.partition)}::text[], ${requests.map((r) => r.jobId)}::text[],
        ${requests.map((r) => r.attempt)}::int[], ${requests.map((r) => r.status)}::text[],
        ${requests.map((r) => (r.summary === null ? null : JSON.stringify(r.summary, (_key, value: unknown) => (typeof value === 'string' ? storable(value) : value))))}::text[]::jsonb[],
        ${requests.map((r) => (r.error === null ? null : storable(r.error)))}::text[]
      ) as t(job, partition, job_id, attempt, status, summary, error)
    ), updated as (
      update ops.job_runs r set
        status = i.status, summary = i.summary, error = i.error, finished_at = now(), heartbeat_at = null, updated_at = now()
      from input i
      -- Only the job that holds the partition may close it.
      where r.job = i.job and r.partition = i.partition and r.job_id = i.job_id
      returning r.run_id
    )
    -- A success is fully described by its job_runs row; events keep the attempts that did not succeed.
    insert into ops.job_run_events (job, partition, job_id, attempt, outcome, error)
    select job, partition, job_id, attempt, status, error from input where status <> 'succeeded'
  `;
  return requests.map(() => undefined);
}

/**
 * The pool run records are written through. Commits stay synchronous: a claim is the guard
 * against running a partition twice and must survive a crash of PostgreSQL. Plans are cached
 * (planning costs as much as running a batch), and sequential scans are off: ops.job_runs
 * grows from empty, and a generic plan made then would scan it; every statement here has an
 * index to use.
 */
export function createRunsDb(databaseUrl: string): Sql {
  return createDb(databaseUrl, { max: 4, applicationName: 'bullpen-runs', planCacheMode: 'auto', settings: { enable_seqscan: 'off' } });
}

export function createRunRecorder(sql: Sql, options: RunRecorderOptions): RunRecorder {
  const stale = options.staleAfterSeconds ?? 90;
  const claim = createBatcher<ClaimRequest, ClaimResult>((batch) => claimBatch(sql, batch, options.worker, stale));
  const finish = createBatcher<FinishRequest, void>((batch) => finishBatch(sql, batch));

  /** `wait` (caught-up ticks): never dropped for an overlap; the caller retries later. */
  async function claimScheduled(request: ClaimRequest, overlap: OverlapPolicy | 'wait'): Promise<ScheduledClaimResult> {
    if (overlap === 'allow') return claim(request);
    return sql.begin(async (tx) => {
      // Serialises the "is another run of this schedule active?" check with the claim itself.
      await tx`select pg_advisory_xact_lock(hashtextextended(${`bullpen.overlap.${request.job}`}, 0))`;
      const [active] = await tx<{ partition: string }[]>`
        select partition from ops.job_runs
        where job = ${request.job} and status = 'running' and partition <> ${request.partition}
          and heartbeat_at >= now() - make_interval(secs => ${stale})
        limit 1`;
      if (!active) {
        const [result] = await claimBatch(tx as unknown as Sql, [request], options.worker, stale);
        return result as ClaimResult;
      }
      // Only a tick's first run may be dropped or buffered. A partition that already has a row is
      // run again (a retry, a stall, a re-run, a buffered tick's next look): it waits, unless it
      // is done and not forced, which it will not be run again for anyway.
      const tq = tx as unknown as Sql;
      const [existing] = await tx<{ status: RunStatus; job_id: string | null; early: boolean }[]>`
        select r.status, r.job_id, coalesce(${succeededAhead(tq, 'r', tq`${request.scheduledFor}::timestamptz`)}, false) as early
        from ops.job_runs r where r.job = ${request.job} and r.partition = ${request.partition}`;
      const done = existing && (existing.status === 'succeeded' || existing.status === 'skipped') && !(request.tick === true && existing.early);
      if (done && !request.force) {
        return { claimed: false, status: existing.status, jobId: existing.job_id };
      }
      if (overlap === 'wait' || existing) return { claimed: false, status: 'overlap-waiting', activePartition: active.partition };
      if (overlap === 'buffer-one') {
        const [buffered] = await tx<{ partition: string }[]>`
          select partition from ops.job_runs
          where job = ${request.job} and status = 'buffered' and partition <> ${request.partition} limit 1`;
        if (!buffered) {
          await tx`
            insert into ops.job_runs (job, partition, queue, job_id, status, attempts, scheduled_for, worker)
            values (${request.job}, ${request.partition}, ${request.queue}, ${request.jobId}, 'buffered',
                    ${request.attempt}, ${request.scheduledFor}, ${options.worker})
            on conflict (job, partition) do nothing`;
          return { claimed: false, status: 'overlap-buffered', activePartition: active.partition };
        }
      }
      // Dropped without a row: the partition has not run, so it shows as missing, catch-up (where
      // the schedule has it) runs it once the active run is over, and it can be re-run by hand.
      return { claimed: false, status: 'overlap-skipped', activePartition: active.partition };
    });
  }

  return {
    claim,
    claimScheduled,
    finish,
    async heartbeat(job, partition, jobId) {
      await sql`update ops.job_runs set heartbeat_at = now() where job = ${job} and partition = ${partition} and job_id = ${jobId} and status = 'running'`;
    },
    async suspend(job, partition, jobId) {
      await sql`update ops.job_runs set worker = null where job = ${job} and partition = ${partition} and job_id = ${jobId} and status = 'running'`;
    },
    async recordMissedFailures(job, partition, jobId, failedAttempts, lastError) {
      await sql`
        insert into ops.job_run_events (job, partition, job_id, attempt, outcome, error)
        select ${job}, ${partition}, ${jobId}, k, 'retrying', case when k = ${failedAttempts}::int then ${lastError === null ? null : storable(lastError)}::text end
        from generate_series(1, ${failedAttempts}::int) k
        where not exists (
          select 1 from ops.job_run_events e where e.job = ${job} and e.partition = ${partition} and e.job_id = ${jobId} and e.attempt = k)`;
    },
    async drain() {
      await Promise.all([claim.drain(), finish.drain()]);
    },
  };
}

/** Records a tick that was not run (a non-trading day, a bad payload) so catch-up and the status page see it. */
export async function recordSkippedRun(
  sql: Sql,
  run: { job: string; partition: string; queue: string; jobId: string; scheduledFor: string | null; status: 'skipped' | 'failed'; summary: Record<string, unknown> | null; error: string | null },
): Promise<void> {
  await sql`
    insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at, summary, error)
    values (${run.job}, ${run.partition}, ${run.queue}, ${run.jobId}, ${run.status}, 1, 0, ${run.scheduledFor}, now(), now(),
            ${run.summary === null ? null : sql.json(run.summary as never)}, ${run.error === null ? null : storable(run.error)})
    on conflict (job, partition) do nothing`;
}

export interface RunRow {
  job: string;
  partition: string;
  status: RunStatus;
  job_id: string | null;
  attempts: number;
  run_count: number;
  scheduled_for: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
  summary: Record<string, unknown> | null;
  error: string | null;
}

export async function loadRun(sql: Sql, job: string, partition: string): Promise<RunRow | undefined> {
  const [row] = await sql<RunRow[]>`select * from ops.job_runs where job = ${job} and partition = ${partition}`;
  return row;
}

/** A partition of a job, with the latest tick that names it. */
export interface PartitionTick {
  partition: string;
  tick: Date;
}

/** A partition's run that came ahead of the tick asking about it (see loadTickStatuses): a success, done at `doneAt`, or a failure. */
export type RunAhead = { status: 'succeeded'; doneAt: Date } | { status: 'failed' };

/**
 * The recorded status of some jobs' partitions as each one's tick sees it, by job, in one query
 * (absent: never recorded). A run ahead of the tick is left out of `statuses`, as not done for the
 * tick, which is still owed: a success before it (run by hand before it, or at an earlier tick of a
 * schedule ticking several times a partition), or a failure whose last attempt started before it
 * (see failedAhead). `ahead` names those partitions, with how their run ended and, for a success,
 * when it was done.
 */
export async function loadTickStatuses(
  sql: Sql,
  wanted: ReadonlyMap<string, readonly PartitionTick[]>,
): Promise<{ statuses: Map<string, Map<string, RunStatus>>; ahead: Map<string, Map<string, RunAhead>> }> {
  const jobs: string[] = [];
  const partitions: string[] = [];
  const ticks: string[] = [];
  for (const [job, list] of wanted) {
    for (const { partition, tick } of list) {
      jobs.push(job);
      partitions.push(partition);
      ticks.push(tick.toISOString());
    }
  }
  const statuses = new Map<string, Map<string, RunStatus>>();
  const ahead = new Map<string, Map<string, RunAhead>>();
  if (jobs.length === 0) return { statuses, ahead };
  const rows = await sql<{ job: string; partition: string; status: RunStatus; succeeded_ahead: boolean | null; failed_ahead: boolean | null; done_at: Date | null }[]>`
    select r.job, r.partition, r.status,
           ${succeededAhead(sql, 'r', sql`t.tick`)} as succeeded_ahead,
           ${failedAhead(sql, 'r', sql`t.tick`)} as failed_ahead,
           greatest(r.finished_at, r.scheduled_for) as done_at
    from unnest(${jobs}::text[], ${partitions}::text[], ${ticks}::timestamptz[]) as t(job, partition, tick)
    join ops.job_runs r on r.job = t.job and r.partition = t.partition`;
  const add = <V>(byJob: Map<string, Map<string, V>>, job: string, partition: string, value: V) => {
    let byPartition = byJob.get(job);
    if (!byPartition) byJob.set(job, (byPartition = new Map()));
    byPartition.set(partition, value);
  };
  for (const row of rows) {
    if (row.succeeded_ahead) add(ahead, row.job, row.partition, { status: 'succeeded', doneAt: row.done_at as Date });
    else if (row.failed_ahead) add(ahead, row.job, row.partition, { status: 'failed' });
    else add(statuses, row.job, row.partition, row.status);
  }
  return { statuses, ahead };
}

export interface JobHistory {
  job: string;
  last_success_at: Date | null;
  last_success_partition: string | null;
  last_failure_at: Date | null;
  last_failure_partition: string | null;
  last_failure_error: string | null;
  running: number;
}

/** Last success and last failure of each job, for `bullpen schedules` and the metrics. */
export async function loadJobHistory(sql: Sql, jobs: string[]): Promise<Map<string, JobHistory>> {
  const rows = await sql<JobHistory[]>`
    select j.job,
      s.finished_at as last_success_at, s.partition as last_success_partition,
      f.finished_at as last_failure_at, f.partition as last_failure_partition, f.error as last_failure_error,
      (select count(*)::int from ops.job_runs r where r.job = j.job and r.status = 'running') as running
    from unnest(${jobs}::text[]) as j(job)
    left join lateral (
      select finished_at, partition from ops.job_runs where job = j.job and status = 'succeeded'
      order by finished_at desc nulls last limit 1) s on true
    left join lateral (
      select finished_at, partition, error from ops.job_runs where job = j.job and status in ('failed', 'retrying')
      order by finished_at desc nulls last limit 1) f on true`;
  return new Map(rows.map((r) => [r.job, r]));
}

export interface StaleRun {
  job: string;
  partition: string;
  queue: string;
  job_id: string | null;
  /** `running`, or `retrying` for a run waiting out a backoff. */
  status: RunStatus;
}

/**
 * Rows whose job is to be looked for in BullMQ: those still marked running whose heartbeat
 * stopped more than `staleAfterSeconds` ago, and those retrying untouched for as long (their
 * retry waits in BullMQ's delayed set, which Redis may have lost).
 */
export async function loadStaleRuns(sql: Sql, staleAfterSeconds: number, limit = 200): Promise<StaleRun[]> {
  return sql<StaleRun[]>`
    (select job, partition, queue, job_id, status from ops.job_runs
     where status = 'running' and heartbeat_at < now() - make_interval(secs => ${staleAfterSeconds})
     order by heartbeat_at limit ${limit})
    union all
    (select job, partition, queue, job_id, status from ops.job_runs
     where status = 'retrying' and updated_at < now() - make_interval(secs => ${staleAfterSeconds})
     order by updated_at limit ${limit})`;
}

/** Buffered ticks untouched for this long: their jobs are to be looked for in BullMQ. */
export async function loadOldBufferedRuns(sql: Sql, olderThanSeconds: number, limit = 200): Promise<StaleRun[]> {
  return sql<StaleRun[]>`
    select job, partition, queue, job_id, status from ops.job_runs
    where status = 'buffered' and updated_at < now() - make_interval(secs => ${olderThanSeconds})
    order by updated_at limit ${limit}`;
}

/** Deletes a buffered tick's row, if it is still that job's and still buffered. */
export async function dropBufferedRun(sql: Sql, run: StaleRun): Promise<boolean> {
  const rows = await sql`
    delete from ops.job_runs
    where job = ${run.job} and partition = ${run.partition} and status = 'buffered' and job_id is not distinct from ${run.job_id}
    returning run_id`;
  return rows.length > 0;
}

/** Closes a stale row with what BullMQ knows of its job, if the row still belongs to that job. */
export async function closeStaleRun(
  sql: Sql,
  run: StaleRun,
  outcome: { status: 'succeeded' | 'failed'; summary: Record<string, unknown> | null; error: string | null; finishedAt: Date | null },
): Promise<boolean> {
  const rows = await sql`
    update ops.job_runs set status = ${outcome.status}, summary = ${outcome.summary === null ? null : sql.json(outcome.summary as never)},
      error = ${outcome.error}, finished_at = coalesce(${outcome.finishedAt}, now()), heartbeat_at = null, updated_at = now()
    where job = ${run.job} and partition = ${run.partition} and status = ${run.status} and job_id is not distinct from ${run.job_id}
    returning run_id`;
  return rows.length > 0;
}
