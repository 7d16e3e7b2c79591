/**
 * Schedules: BullMQ Job Schedulers (one fire per tick across any number of processes),
 * plus what BullMQ does not do on its own:
 * - catch-up: ticks missed while nothing ran, judged from ops.job_runs (Redis may have
 *   lost everything), enqueued once each with their deterministic job id;
 * - a reconciler that repairs schedulers left with no next job or with two (BullMQ
 *   #3272, #3085, #2988, #2889 under concurrent upserts);
 * - deadlines ("partition D done by HH:MM"): each miss logged and counted once (ops.deadline_misses),
 *   none while the schedule's queue is paused, and the gauge the alert reads, derived from
 *   ops.job_runs by whichever process serves /metrics (recordDeadlineMetrics);
 * - the status that `bullpen schedules` and GET /api/v1/schedules show.
 */
import type { Job, Queue } from 'bullmq';
import { DateTime } from 'luxon';
import { isTradingDay } from './analytics/calendar.ts';
import type { Config } from './config.ts';
import { listTicks, nextTicks, schedulePeriodMs } from './cron.ts';
import type { Sql } from './db.ts';
import { enqueueRun, tickRunId } from './enqueue.ts';
import { ConfigError } from './errors.ts';
import type { CatchupPolicy, Deadline, JobDefinition, OverlapPolicy } from './job-definition.ts';
import type { Logger } from './logger.ts';
import { installedAt } from './migrate.ts';
import type { Metrics } from './metrics.ts';
import { createJobId, PENDING_STATES, type QueueMap } from './queues.ts';
import { withTimeout } from './timeout.ts';
import { closeStaleRun, dropBufferedRun, loadJobHistory, loadOldBufferedRuns, loadStaleRuns, loadTickStatuses, type PartitionTick, type RunAhead, type RunStatus } from './runs.ts';

/** A tick younger than this is not "missed" yet: its own job may still be on its way. */
const MISSED_GRACE_MS = 60_000;
/** How far back lag looks. */
const HISTORY_WINDOW_MS = 7 * 24 * 3600 * 1000;
/** How far back deadlines look: the ticks of the last two days, whose deadlines fall in the last day or so. */
const DEADLINE_WINDOW_MS = 2 * 24 * 3600 * 1000;

/** A job's schedule after `SCHEDULE_<JOB>` overrides. */
export interface Schedule {
  readonly id: string;
  readonly definition: JobDefinition;
  readonly cron: string;
  readonly tz: string;
  readonly calendar: 'all' | 'nyse';
  readonly overlap: OverlapPolicy;
  readonly catchup: CatchupPolicy;
  readonly deadline: Deadline | undefined;
  readonly overridden: boolean;
}

/** Applies `SCHEDULE_<JOB>` overrides; unknown names and ad-hoc jobs are configuration errors. */
export function resolveSchedules(definitions: readonly JobDefinition[], config: Pick<Config, 'scheduleOverrides'>): Schedule[] {
  const byName = new Map(definitions.map((d) => [d.name, d]));
  const problems: string[] = [];
  for (const name of Object.keys(config.scheduleOverrides)) {
    const envName = `SCHEDULE_${name.toUpperCase().replace(/-/g, '_')}`;
    const definition = byName.get(name);
    if (!definition) problems.push(`${envName}: no job named "${name}"; jobs are ${[...byName.keys()].join(', ')}`);
    else if (!definition.schedule && config.scheduleOverrides[name] !== 'off') problems.push(`${envName}: ${name} runs ad hoc and takes no schedule`);
  }
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);

  const schedules: Schedule[] = [];
  for (const definition of definitions) {
    if (!definition.schedule) continue;
    const override = config.scheduleOverrides[definition.name];
    if (override === 'off') continue;
    schedules.push({
      id: definition.name,
      definition,
      cron: override ?? definition.schedule.cron,
      tz: definition.schedule.tz,
      calendar: definition.schedule.calendar,
      overlap: definition.schedule.overlap,
      catchup: definition.catchup,
      deadline: definition.schedule.deadline,
      overridden: override !== undefined,
    });
  }
  return schedules;
}

function queueOf(queues: QueueMap, schedule: Schedule): Queue {
  const queue = queues.get(schedule.definition.queue);
  if (!queue) throw new Error(`no queue ${schedule.definition.queue} for schedule ${schedule.id}`);
  return queue;
}

async function upsertScheduler(queues: QueueMap, schedule: Schedule): Promise<void> {
  await queueOf(queues, schedule).upsertJobScheduler(
    schedule.id,
    { pattern: schedule.cron, tz: schedule.tz },
    { name: schedule.definition.name, data: {} },
  );
}

/**
 * Upserts every configured schedule and removes schedulers that are no longer configured
 * (a job switched off with SCHEDULE_<JOB>=off, renamed, or moved to another queue).
 */
export async function registerSchedules(queues: QueueMap, schedules: readonly Schedule[], logger: Logger): Promise<{ removed: string[] }> {
  for (const schedule of schedules) await upsertScheduler(queues, schedule);
  const wanted = new Map(schedules.map((s) => [s.id, s.definition.queue]));
  const removed: string[] = [];
  for (const [queueName, queue] of queues) {
    for (const scheduler of await queue.getJobSchedulers(0, -1)) {
      const id = scheduler.id ?? scheduler.key;
      if (wanted.get(id) === queueName) continue;
      await queue.removeJobScheduler(id);
      removed.push(`${queueName}/${id}`);
    }
  }
  logger.info({ schedules: schedules.map((s) => `${s.id} ${s.cron} ${s.tz}`), removed }, 'schedules registered');
  return { removed };
}

/** A partition a schedule's ticks name: its first tick in the window, and every one. */
export interface ExpectedPartition {
  partition: string;
  /** The first tick naming it (from when it is owed). */
  tick: Date;
  /** Every tick naming it, in order (more than one when a schedule ticks several times a partition). */
  ticks: Date[];
}

/** The latest tick naming a partition: the one a run of it must not be ahead of (the tick rule). */
export const lastTick = (e: ExpectedPartition): Date => e.ticks[e.ticks.length - 1] as Date;

/** Partitions expected for a schedule's ticks in (from, to], in order of their first tick. */
export function expectedPartitions(schedule: Schedule, from: Date, to: Date): ExpectedPartition[] {
  const result = new Map<string, ExpectedPartition>();
  for (const tick of listTicks(schedule.cron, schedule.tz, from, to)) {
    const payload = schedule.definition.payload.parse({ scheduledFor: tick.toISOString() });
    const partition = schedule.definition.partition(payload as never);
    // A missed Saturday is not a missed trading day.
    if (schedule.calendar === 'nyse' && /^\d{4}-\d{2}-\d{2}$/.test(partition) && !isTradingDay(partition)) continue;
    const seen = result.get(partition);
    if (seen) seen.ticks.push(tick);
    else result.set(partition, { partition, tick, ticks: [tick] });
  }
  return [...result.values()];
}

/** The partitions a schedule owes, each with the latest tick naming it (what a run must not be ahead of). */
const owedTicks = (expected: readonly ExpectedPartition[]): PartitionTick[] => expected.map((e) => ({ partition: e.partition, tick: lastTick(e) }));

/** The recorded status of one schedule's expected partitions as their latest tick sees it (see loadTickStatuses). */
async function loadScheduleTickStatuses(
  db: Sql,
  schedule: Schedule,
  expected: readonly ExpectedPartition[],
): Promise<{ statuses: Map<string, RunStatus>; ahead: Map<string, RunAhead> }> {
  const { statuses, ahead } = await loadTickStatuses(db, new Map([[schedule.id, owedTicks(expected)]]));
  return { statuses: statuses.get(schedule.id) ?? new Map(), ahead: ahead.get(schedule.id) ?? new Map() };
}

const DONE: ReadonlySet<RunStatus> = new Set(['succeeded', 'skipped']);

/** Picks what catch-up should enqueue from expected ticks and their recorded statuses. Pure. */
export function selectMissed<E extends { partition: string }>(expected: readonly E[], statuses: ReadonlyMap<string, RunStatus>, policy: CatchupPolicy): E[] {
  if (policy.mode === 'none' || expected.length === 0) return [];
  if (policy.mode === 'latest') {
    const latest = expected[expected.length - 1]!;
    return statuses.has(latest.partition) ? [] : [latest];
  }
  const missed = expected.filter((e) => !statuses.has(e.partition));
  // Dagster's max_catchup_runs: keep the most recent `max`, run them oldest first.
  return missed.slice(-policy.max);
}

export interface CatchupRuntime {
  readonly db: Sql;
  readonly queues: QueueMap;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/**
 * Whether a job under one of these ids is still to run or running. A finished one (BullMQ keeps
 * them for days) is not: a tick that overlap `skip` dropped completed without running its
 * partition, and that partition is what catch-up is for.
 */
async function isPendingInRedis(queue: Queue, ids: string[]): Promise<boolean> {
  for (const id of ids) if (PENDING_STATES.has(await queue.getJobState(id))) return true;
  return false;
}

/**
 * Enqueues missed ticks of every schedule with catch-up `latest` or `all`, oldest first.
 * A tick counts as missed when ops.job_runs has no row for its partition, or only a run ahead of
 * the tick: a success before it, or a failure whose last attempt started before it (see
 * loadTickStatuses). A failure of the tick's own run is not missed (BullMQ retries it, and ops
 * retry it from Bull Board).
 */
export async function catchUp(runtime: CatchupRuntime, schedules: readonly Schedule[], now: Date): Promise<{ schedule: string; partition: string; jobId: string }[]> {
  const enqueued: { schedule: string; partition: string; jobId: string }[] = [];
  for (const schedule of schedules) {
    const policy = schedule.catchup;
    if (policy.mode === 'none') continue;
    const from = new Date(now.getTime() - policy.windowHours * 3600 * 1000);
    const expected = expectedPartitions(schedule, from, new Date(now.getTime() - MISSED_GRACE_MS));
    // A partition run ahead of its latest tick, whether it succeeded or failed, does not stand in
    // for it: the tick is still owed, under an id of its own (the plain one is the early run's,
    // which Bull Board keeps showing, failed or completed).
    const { statuses, ahead } = await loadScheduleTickStatuses(runtime.db, schedule, expected);
    const queue = queueOf(runtime.queues, schedule);
    for (const missed of selectMissed(expected, statuses, policy)) {
      const tick = lastTick(missed);
      const tickId = `repeat:${schedule.id}:${tick.getTime()}`;
      const ownTickId = ahead.has(missed.partition);
      const runId = ownTickId ? tickRunId(schedule.id, missed.partition, tick) : createJobId(schedule.id, missed.partition);
      if (await isPendingInRedis(queue, [tickId, runId])) continue;
      // Read again after Redis: a run that finished since the statuses were read has written its
      // row (a claim precedes every run) and is done, not missed.
      if ((await loadScheduleTickStatuses(runtime.db, schedule, [missed])).statuses.has(missed.partition)) continue;
      // A finished job under the run's id would be handed back instead of a new run.
      await queue.remove(runId);
      const result = await enqueueRun(runtime.queues, schedule.definition, { catchup: true }, { scheduledFor: tick, ownTickId });
      runtime.metrics.catchupEnqueued.inc({ schedule: schedule.id });
      runtime.logger.info({ schedule: schedule.id, partition: result.partition, jobId: result.jobId, tick: tick.toISOString() }, 'missed tick enqueued by catch-up');
      enqueued.push({ schedule: schedule.id, partition: result.partition, jobId: result.jobId });
    }
  }
  return enqueued;
}

/**
 * A Job Scheduler's job that has not started: its next tick. A tick that has (a retry waiting
 * out its backoff, a buffered tick, a re-run waiting for the active run) is also delayed and also
 * carries the scheduler's key, but it is a run in progress, not a second next job.
 */
export function isNextTickJob(job: Job): boolean {
  return job.repeatJobKey !== undefined && job.attemptsStarted === 0 && job.attemptsMade === 0;
}

export interface Repair {
  schedule: string;
  kind: 'missing' | 'drifted' | 'no-next-job' | 'duplicate-next-job';
  detail: string;
}

/**
 * Checks that each configured schedule exists with its pattern and zone and has exactly
 * one pending next job, and repairs it when not. Every repair is logged and counted.
 */
export async function reconcileSchedules(runtime: CatchupRuntime, schedules: readonly Schedule[]): Promise<Repair[]> {
  const repairs: Repair[] = [];
  for (const schedule of schedules) {
    const queue = queueOf(runtime.queues, schedule);
    const scheduler = await queue.getJobScheduler(schedule.id);
    if (!scheduler || scheduler.pattern !== schedule.cron || (scheduler.tz ?? 'UTC') !== schedule.tz) {
      await upsertScheduler(runtime.queues, schedule);
      repairs.push({
        schedule: schedule.id,
        kind: scheduler ? 'drifted' : 'missing',
        detail: scheduler ? `was ${scheduler.pattern} ${scheduler.tz ?? ''}` : 'scheduler not found in Redis',
      });
      continue;
    }
    const pending = (await queue.getJobs(['delayed', 'waiting', 'prioritized'], 0, -1)).filter(
      (job): job is Job => Boolean(job) && isNextTickJob(job) && job.repeatJobKey === schedule.id,
    );
    if (pending.length === 0) {
      // Re-creating the scheduler makes BullMQ compute and add the next job again.
      await queue.removeJobScheduler(schedule.id);
      await upsertScheduler(runtime.queues, schedule);
      repairs.push({ schedule: schedule.id, kind: 'no-next-job', detail: `next was ${scheduler.next ?? 'unknown'}` });
    } else if (pending.length > 1) {
      const keepId = `repeat:${schedule.id}:${scheduler.next}`;
      const keep = pending.find((job) => job.id === keepId) ?? pending.reduce((a, b) => ((a.opts.prevMillis ?? 0) <= (b.opts.prevMillis ?? 0) ? a : b));
      const extras = pending.filter((job) => job !== keep);
      for (const job of extras) await job.remove();
      repairs.push({ schedule: schedule.id, kind: 'duplicate-next-job', detail: `kept ${keep.id}, removed ${extras.map((j) => j.id).join(', ')}` });
    }
  }
  for (const repair of repairs) {
    runtime.metrics.scheduleRepairs.inc({ schedule: repair.schedule, kind: repair.kind });
    runtime.logger.warn(repair, 'schedule repaired');
  }
  return repairs;
}

/** A running row with no heartbeat for this long belongs to a worker that is gone; a retrying row untouched as long is looked for in BullMQ. */
const REAP_AFTER_SECONDS = 180;

/**
 * Settles ops.job_runs rows left "running" by a worker that died, or "retrying" for a retry
 * Redis lost: a success whose record was still buffered takes BullMQ's outcome; a job Redis no
 * longer has is marked failed, so the partition shows up as failed (and can be re-run) instead
 * of running or retrying forever. A job still active, waiting or delayed in BullMQ is left
 * alone: its stall recovery or its retry runs it. Also drops the rows of buffered ticks whose
 * jobs BullMQ lost.
 */
export async function reapStaleRuns(runtime: CatchupRuntime, staleAfterSeconds = REAP_AFTER_SECONDS): Promise<{ job: string; partition: string; status: string }[]> {
  const reaped: { job: string; partition: string; status: string }[] = [];
  for (const run of await loadStaleRuns(runtime.db, staleAfterSeconds)) {
    const queue = runtime.queues.get(run.queue as never);
    const job = queue && run.job_id ? await queue.getJob(run.job_id) : undefined;
    let outcome: Parameters<typeof closeStaleRun>[2] | undefined;
    if (!job) {
      const error = run.status === 'retrying' ? 'its retry is no longer in Redis; re-run the partition' : 'worker lost and the job is no longer in Redis; re-run the partition';
      outcome = { status: 'failed', summary: null, error, finishedAt: null };
    } else if (await job.isCompleted()) {
      const value = job.returnvalue as Record<string, unknown> | null;
      outcome = { status: 'succeeded', summary: value && typeof value === 'object' ? value : null, error: null, finishedAt: job.finishedOn ? new Date(job.finishedOn) : null };
    } else if (await job.isFailed()) {
      outcome = { status: 'failed', summary: null, error: job.failedReason || 'failed', finishedAt: job.finishedOn ? new Date(job.finishedOn) : null };
    }
    if (outcome && (await closeStaleRun(runtime.db, run, outcome))) {
      reaped.push({ job: run.job, partition: run.partition, status: outcome.status });
      runtime.logger.warn({ job: run.job, partition: run.partition, jobId: run.job_id, status: outcome.status }, 'stale run settled from BullMQ');
    }
  }
  // A buffered tick whose job BullMQ no longer holds waiting (Redis lost it, or it ended without
  // running) would keep its partition from catch-up for good, a row being there: the row goes.
  for (const run of await loadOldBufferedRuns(runtime.db, staleAfterSeconds)) {
    const queue = runtime.queues.get(run.queue as never);
    const job = queue && run.job_id ? await queue.getJob(run.job_id) : undefined;
    if (job && !(await job.isCompleted()) && !(await job.isFailed())) continue;
    if (await dropBufferedRun(runtime.db, run)) {
      reaped.push({ job: run.job, partition: run.partition, status: 'dropped' });
      runtime.logger.warn({ job: run.job, partition: run.partition, jobId: run.job_id }, 'buffered tick lost from BullMQ: its row is dropped, so catch-up can run it');
    }
  }
  return reaped;
}

/** When partition `date` is due under a deadline. Pure. */
export function deadlineFor(date: string, deadline: Deadline): Date {
  const [hour, minute] = deadline.by.split(':').map(Number);
  return DateTime.fromISO(date, { zone: deadline.tz })
    .plus({ days: deadline.dayOffset })
    .set({ hour: hour ?? 0, minute: minute ?? 0, second: 0, millisecond: 0 })
    .toJSDate();
}

export interface DeadlineMiss {
  schedule: string;
  partition: string;
  dueAt: Date;
  /** Whether this call logged and counted it: once per miss, whichever scheduler process gets there first. */
  reported: boolean;
}

/**
 * How long a reported miss is remembered in ops.deadline_misses. Far longer than the two days of
 * ticks deadlines look at, so a miss still in that window is never forgotten and reported again;
 * the rest is a month of "which nights were late" to look back on.
 */
export const DEADLINE_MISS_RETENTION_MS = 30 * 24 * 3600 * 1000;

/** How long a deadline check waits to learn whether a queue is paused before checking it as not paused. */
const PAUSE_CHECK_TIMEOUT_MS = 5_000;

/**
 * Which of these schedules' queues are paused. Deadlines must page when Redis is in
 * trouble (that is when a report is most likely not made), so a queue whose state cannot be
 * read in time counts as not paused: a page too many, never a page lost.
 */
async function loadPausedQueues(runtime: CatchupRuntime, schedules: readonly Schedule[]): Promise<Set<string>> {
  const paused = new Set<string>();
  const names = [...new Set(schedules.map((s) => s.definition.queue))];
  await Promise.all(
    names.map(async (name) => {
      try {
        const queue = runtime.queues.get(name);
        if (!queue) throw new Error(`no queue ${name}`);
        if (await withTimeout(queue.isPaused(), PAUSE_CHECK_TIMEOUT_MS, `whether queue ${name} is paused`)) paused.add(name);
      } catch (err) {
        runtime.logger.warn({ err, queue: name }, 'could not tell whether the queue is paused; its deadlines are checked as if it were not');
      }
    }),
  );
  return paused;
}

/**
 * Records these misses of a schedule as reported and answers the partitions whose row this call
 * made: the ones it is to report. Concurrent scheduler processes race on the primary key, and
 * exactly one insert of each row lands.
 */
async function claimDeadlineMisses(db: Sql, schedule: string, misses: readonly { partition: string; dueAt: Date }[]): Promise<Set<string>> {
  if (misses.length === 0) return new Set();
  const rows = await db<{ partition: string }[]>`
    insert into ops.deadline_misses (schedule, partition, due_at)
    select ${schedule}, m.partition, m.due_at
    from unnest(${misses.map((m) => m.partition)}::text[], ${misses.map((m) => m.dueAt.toISOString())}::timestamptz[]) as m(partition, due_at)
    on conflict (schedule, partition) do nothing
    returning partition`;
  return new Set(rows.map((r) => r.partition));
}

/** Schedules whose deadlines some partition's ticks all come after, already warned of by this process. */
const warnedUnreachable = new Set<string>();

type ScheduleWithDeadline = Schedule & { deadline: Deadline };
const hasDeadline = (s: Schedule): s is ScheduleWithDeadline => s.deadline !== undefined;

/** A partition past its deadline, with the ticks naming it that came before the deadline. */
type DuePartition = ExpectedPartition & { dueAt: Date };

/** One schedule's partitions past their deadline (ticks of the last two days), and those of them not done. */
interface DueDeadlines {
  schedule: ScheduleWithDeadline;
  /** In order of their first tick: the last is the latest due partition. */
  due: DuePartition[];
  late: DuePartition[];
  /** A partition whose every tick comes after its deadline: not judged. */
  unreachable: DuePartition | undefined;
}

/**
 * The partitions of these schedules past their deadline and which of them are not done, from
 * ops.job_runs alone (one query): what checkDeadlines reports and bullpen_deadline_missed shows.
 * `installed` is when the deployment began (its database's first migration).
 */
async function loadDueDeadlines(db: Sql, schedules: readonly ScheduleWithDeadline[], now: Date, installed: Date | null): Promise<DueDeadlines[]> {
  const forgetBefore = now.getTime() - DEADLINE_MISS_RETENTION_MS;
  // A tick from before the deployment began was never owed to anyone: a first start past a
  // deadline catches that partition up without paging for it.
  const since = installed?.getTime() ?? -Infinity;
  const judged = schedules.map((schedule) => {
    const deadline = schedule.deadline;
    // Only the last two days' deadlines page: older misses are history, not alerts. (A miss whose
    // row has been pruned must not come back: only a deadline set absurdly far before its tick could.)
    const all = expectedPartitions(schedule, new Date(now.getTime() - DEADLINE_WINDOW_MS), now)
      .filter((e) => /^\d{4}-\d{2}-\d{2}$/.test(e.partition) && e.tick.getTime() > since)
      .map((e): DuePartition => {
        const dueAt = deadlineFor(e.partition, deadline);
        // Judged by the ticks due before the deadline: a later refresh (a schedule overridden to tick
        // several times a partition) does not make a partition done in time late again, and a
        // partition whose every tick comes after its deadline (an override moved the tick past it)
        // cannot be done in time, so it is not judged.
        return { ...e, ticks: e.ticks.filter((t) => t <= dueAt), dueAt };
      })
      .filter((e) => e.dueAt.getTime() <= now.getTime() && e.dueAt.getTime() >= forgetBefore);
    return { schedule, due: all.filter((e) => e.ticks.length > 0), unreachable: all.find((e) => e.ticks.length === 0) };
  });
  // A success ahead of the tick (a report run by hand at noon) is not the partition done.
  const { statuses } = await loadTickStatuses(db, new Map(judged.map((j) => [j.schedule.id, owedTicks(j.due)])));
  return judged.map((j) => {
    const recorded = statuses.get(j.schedule.id);
    return { ...j, late: j.due.filter((d) => !DONE.has(recorded?.get(d.partition) as RunStatus)) };
  });
}

/**
 * Finds partitions past their deadline without a successful run (ticks of the last two days).
 * Each miss is logged and counted once in all, across restarts and scheduler processes
 * (ops.deadline_misses is the record), and not while its schedule's queue is paused: an operator
 * is holding that work on purpose. A partition still late once the queue is resumed is reported
 * then. The gauge is not set here but where /metrics is served (recordDeadlineMetrics): a
 * scheduler process often serves no HTTP.
 */
export async function checkDeadlines(runtime: CatchupRuntime, schedules: readonly Schedule[], now: Date): Promise<DeadlineMiss[]> {
  const misses: DeadlineMiss[] = [];
  const withDeadline = schedules.filter(hasDeadline);
  if (withDeadline.length === 0) return misses;
  const forgetBefore = new Date(now.getTime() - DEADLINE_MISS_RETENTION_MS);
  const [installed, paused] = await Promise.all([
    installedAt(runtime.db),
    loadPausedQueues(runtime, withDeadline),
    runtime.db`delete from ops.deadline_misses where due_at < ${forgetBefore}`,
  ]);
  for (const { schedule, late, unreachable } of await loadDueDeadlines(runtime.db, withDeadline, now, installed)) {
    const deadline = schedule.deadline;
    if (unreachable && !warnedUnreachable.has(schedule.id)) {
      warnedUnreachable.add(schedule.id);
      runtime.logger.warn(
        { schedule: schedule.id, partition: unreachable.partition, dueAt: unreachable.dueAt.toISOString(), cron: schedule.cron, tz: schedule.tz },
        `${schedule.id} ticks for a partition only after its deadline (${deadline.by} ${deadline.tz}): such partitions' deadlines are not checked; move SCHEDULE_${schedule.id.toUpperCase().replace(/-/g, '_')} before the deadline to have them checked`,
      );
    }
    // Nothing is claimed while paused, so that the miss is reported if it outlasts the pause.
    const toReport = paused.has(schedule.definition.queue) ? new Set<string>() : await claimDeadlineMisses(runtime.db, schedule.id, late);
    for (const miss of late) {
      const reported = toReport.has(miss.partition);
      misses.push({ schedule: schedule.id, partition: miss.partition, dueAt: miss.dueAt, reported });
      if (!reported) continue;
      // Reported after its row is committed: a crash in between loses this line and count (the
      // gauge, which the alert reads, does not depend on them), where the other order would repeat them.
      runtime.metrics.deadlineMisses.inc({ schedule: schedule.id });
      runtime.logger.error(
        { schedule: schedule.id, partition: miss.partition, dueAt: miss.dueAt.toISOString(), alert: 'deadline-missed' },
        `deadline missed: ${schedule.id} partition ${miss.partition} was not done by ${deadline.by} ${deadline.tz}`,
      );
    }
  }
  return misses;
}

/**
 * Sets `bullpen_deadline_missed{schedule}`: 1 while the latest due partition of the schedule is
 * past its deadline and not done, else 0. Derived from ops.job_runs at scrape time, as lag is, in
 * whichever process serves /metrics, so it needs no scheduler process to be scraped; it clears as
 * soon as the partition succeeds (a catch-up run, a re-run), and needs only PostgreSQL, so a Redis
 * in trouble (when a report is most likely not made) does not hold it back. Not from
 * ops.deadline_misses: that records which misses have been reported (never while paused, and not
 * undone by a later success), not whether a partition is late now. The gauge keeps its meaning
 * while the queue is paused: the alert leaves paused schedules out (bullpen_schedule_paused), so
 * dashboards still show the partition late.
 */
export async function recordDeadlineMetrics(metrics: Metrics, db: Sql, schedules: readonly Schedule[], now: Date): Promise<void> {
  const withDeadline = schedules.filter(hasDeadline);
  if (withDeadline.length === 0) return;
  for (const { schedule, due, late } of await loadDueDeadlines(db, withDeadline, now, await installedAt(db))) {
    const latest = due[due.length - 1];
    metrics.deadlineMissed.set({ schedule: schedule.id }, latest && late.includes(latest) ? 1 : 0);
  }
}

/** One line of `bullpen schedules` / GET /api/v1/schedules. */
export interface ScheduleStatus {
  name: string;
  queue: string;
  cron: string;
  tz: string;
  calendar: 'all' | 'nyse';
  overlap: OverlapPolicy;
  catchup: CatchupPolicy;
  deadline: Deadline | null;
  overridden: boolean;
  registered: boolean;
  paused: boolean;
  next_run: string | null;
  last_success: string | null;
  last_success_partition: string | null;
  last_failure: string | null;
  last_failure_partition: string | null;
  last_failure_error: string | null;
  running: number;
  /** Seconds since the oldest expected tick, after the last done one, that has no successful run; 0 when up to date. */
  lag_seconds: number;
}

/** Lag in seconds: how long the oldest not-done expected tick (after the newest done one) has waited. Pure. */
export function computeLagSeconds(expected: readonly PartitionTick[], statuses: ReadonlyMap<string, RunStatus>, now: Date): number {
  let oldestPending: Date | undefined;
  for (const e of expected) {
    if (DONE.has(statuses.get(e.partition) as RunStatus)) oldestPending = undefined;
    else if (oldestPending === undefined || e.tick < oldestPending) oldestPending = e.tick;
  }
  return oldestPending ? Math.max(0, Math.round((now.getTime() - oldestPending.getTime()) / 1000)) : 0;
}

/**
 * When each expected partition became owed: its first tick, or for one done ahead of its latest
 * tick (a success in `ahead`, done at `doneAt`), the first tick after that run. A failure ahead of
 * the tick did not do the partition: it is owed from its first tick.
 */
function owedSince(expected: readonly ExpectedPartition[], ahead: ReadonlyMap<string, RunAhead> | undefined): PartitionTick[] {
  return expected.map((e) => {
    const run = ahead?.get(e.partition);
    const doneAt = run?.status === 'succeeded' ? run.doneAt : undefined;
    return { partition: e.partition, tick: doneAt === undefined ? e.tick : (e.ticks.find((t) => t > doneAt) ?? lastTick(e)) };
  });
}

/**
 * Lag is measured over the window's expected partitions; where none of them is done, from the
 * first tick after the schedule's last success (or its installation), which comes before them:
 * lag keeps growing while a schedule stays broken for longer than its window.
 */
function owedBeforeWindow(
  schedule: Schedule,
  owed: PartitionTick[],
  statuses: ReadonlyMap<string, RunStatus>,
  since: Date | null,
): PartitionTick[] {
  const first = owed[0];
  if (!first || since === null || since >= first.tick || owed.some((e) => DONE.has(statuses.get(e.partition) as RunStatus))) return owed;
  // The first tick after `since` is within a period of it; a week bounds the walk.
  const until = new Date(Math.min(first.tick.getTime(), since.getTime() + HISTORY_WINDOW_MS));
  const before = expectedPartitions(schedule, since, until)[0];
  return before && before.tick < first.tick ? [{ partition: before.partition, tick: before.tick }, ...owed] : owed;
}

export async function listScheduleStatus(runtime: CatchupRuntime, schedules: readonly Schedule[], now: Date): Promise<ScheduleStatus[]> {
  const expected = new Map(
    schedules.map((schedule) => {
      // Lag looks back over the catch-up window (at least two periods, at most a week).
      const lookback = schedule.catchup.mode === 'none' ? 48 * 3600 * 1000 : Math.min(HISTORY_WINDOW_MS, schedule.catchup.windowHours * 3600 * 1000);
      return [schedule.id, expectedPartitions(schedule, new Date(now.getTime() - Math.max(lookback, 3600 * 1000)), new Date(now.getTime() - MISSED_GRACE_MS))];
    }),
  );
  // Every read at once: under load each waits its turn for a pooled connection, and in a row
  // those waits added up to seconds.
  const [history, statuses, redisState, installed] = await Promise.all([
    loadJobHistory(runtime.db, schedules.map((s) => s.id)),
    // As deadlines and catch-up see them: a partition done ahead of its tick is still owed.
    loadTickStatuses(runtime.db, new Map([...expected].map(([job, list]) => [job, owedTicks(list)]))),
    Promise.all(
      schedules.map((schedule) => {
        const queue = queueOf(runtime.queues, schedule);
        return Promise.all([queue.getJobScheduler(schedule.id), queue.isPaused()]);
      }),
    ),
    installedAt(runtime.db),
  ]);
  return schedules.map((schedule, i) => {
    const [scheduler, paused] = redisState[i]!;
    const h = history.get(schedule.id);
    const next = scheduler?.next ?? nextTicks(schedule.cron, schedule.tz, now, 1)[0]?.getTime() ?? null;
    return {
      name: schedule.id,
      queue: schedule.definition.queue,
      cron: schedule.cron,
      tz: schedule.tz,
      calendar: schedule.calendar,
      overlap: schedule.overlap,
      catchup: schedule.catchup,
      deadline: schedule.deadline ?? null,
      overridden: schedule.overridden,
      registered: Boolean(scheduler),
      paused,
      next_run: next === null ? null : new Date(next).toISOString(),
      last_success: h?.last_success_at?.toISOString() ?? null,
      last_success_partition: h?.last_success_partition ?? null,
      last_failure: h?.last_failure_at?.toISOString() ?? null,
      last_failure_partition: h?.last_failure_partition ?? null,
      last_failure_error: h?.last_failure_error ?? null,
      running: h?.running ?? 0,
      lag_seconds: (() => {
        const done = statuses.statuses.get(schedule.id) ?? new Map<string, RunStatus>();
        // As for deadlines, a tick from before the deployment began was owed to no one: a first
        // start catches those up (catch-up's window) without a lag alert.
        const owed = owedSince(expected.get(schedule.id) ?? [], statuses.ahead.get(schedule.id)).filter((e) => installed === null || e.tick >= installed);
        return computeLagSeconds(owedBeforeWindow(schedule, owed, done, h?.last_success_at ?? installed ?? null), done, now);
      })(),
    };
  });
}

/** Sets the schedule gauges from a status listing (at scrape time). */
export function recordScheduleMetrics(metrics: Metrics, statuses: readonly ScheduleStatus[], now: Date = new Date()): void {
  for (const s of statuses) {
    if (s.last_success) metrics.scheduleLastSuccess.set({ schedule: s.name }, Date.parse(s.last_success) / 1000);
    metrics.scheduleLag.set({ schedule: s.name }, s.lag_seconds);
    metrics.scheduleInterval.set({ schedule: s.name }, schedulePeriodMs(s.cron, s.tz, now) / 1000);
    metrics.schedulePaused.set({ schedule: s.name }, s.paused ? 1 : 0);
  }
}

export interface SchedulerLoop {
  /** Runs one pass now (catch-up, reconcile, deadlines); resolves when it is done. */
  runOnce(): Promise<void>;
  stop(): Promise<void>;
}

/** The least a scheduler step is waited for before the pass goes on without it. */
const STEP_TIMEOUT_FLOOR_MS = 30_000;

/** Runs deadline checks, the reconciler, the reaper and catch-up at start and every `intervalMs`. */
export function startSchedulerLoop(runtime: CatchupRuntime, schedules: readonly Schedule[], intervalMs: number, clock: () => Date = () => new Date()): SchedulerLoop {
  let current: Promise<void> | null = null;
  let stopped = false;
  // Each step on its own: one that fails, or hangs on a Redis that does not answer (its commands
  // wait for it to come back), must not keep the others from running. Deadlines go first: they
  // need only PostgreSQL, and a Redis in trouble is when a report is most likely not made.
  const stepTimeoutMs = Math.max(intervalMs, STEP_TIMEOUT_FLOOR_MS);
  const step = async (name: string, work: () => Promise<unknown>): Promise<void> => {
    try {
      await withTimeout(work(), stepTimeoutMs, `scheduler ${name}`);
    } catch (err) {
      runtime.logger.error({ err, step: name }, `scheduler ${name} failed; trying again next interval`);
    }
  };
  const pass = async (): Promise<void> => {
    const now = clock();
    await step('deadlines', () => checkDeadlines(runtime, schedules, now));
    await step('reconcile', () => reconcileSchedules(runtime, schedules));
    await step('reap', () => reapStaleRuns(runtime));
    await step('catch-up', () => catchUp(runtime, schedules, now));
  };
  const runOnce = (): Promise<void> => {
    current ??= pass().finally(() => {
      current = null;
    });
    return current;
  };
  void runOnce();
  const timer = setInterval(() => {
    if (!stopped) void runOnce();
  }, intervalMs);
  return {
    runOnce,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await current;
    },
  };
}

