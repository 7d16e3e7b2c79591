/**
 * Routes each BullMQ job to its definition and wraps the run: payload validation, the
 * partition claim in ops.job_runs, overlap and calendar rules, heartbeat, metrics, logging,
 * and the retryable/permanent decision on failure.
 */
import os from 'node:os';
import { DelayedError, RateLimitError, UnrecoverableError, Worker, type ConnectionOptions, type DefaultJobOptions, type FlowProducer, type Job } from 'bullmq';
import { isTradingDay, nyseHoliday } from './analytics/calendar.ts';
import type { Config } from './config.ts';
import type { Sql } from './db.ts';
import { enqueueFlow, enqueueRun, parsePayload } from './enqueue.ts';
import { classifyError, coerceError } from './errors.ts';
import type { JobContext, JobDefinition, JobSummary } from './job-definition.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { BACKOFF_TYPE, DEFAULT_CONCURRENCY, computeBackoffMs, type QueueMap, type QueueName } from './queues.ts';
import { redactError } from './redact.ts';
import { recordSkippedRun, TICK_SKEW_MS, type RunRecorder } from './runs.ts';

/** Stalls (worker crashes) a backfill series survives over its whole life before it fails. */
const ENRICHMENT_MAX_STALLS = 25;

/** How long a tick held back by overlap `buffer-one` waits before looking again. */
const BUFFER_POLL_MS = 2000;

export interface WorkerRuntime {
  readonly config: Config;
  readonly db: Sql;
  readonly sourceDb: Sql;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly recorder: RunRecorder;
  readonly queues: QueueMap;
  readonly definitions: ReadonlyMap<string, JobDefinition>;
  /** Adds flows (a parent waiting on its children), e.g. a backfill's per-series children. */
  readonly flows: FlowProducer;
  /** The queues' default job options, which a FlowProducer does not apply by itself. */
  readonly jobOptions: DefaultJobOptions;
}

/** The abort reason a shutting-down worker gives its active jobs. */
const SHUTDOWN = 'shutdown';

/** BullMQ's own signals that a job was put back on its queue rather than finished or failed. */
function isRequeue(error: Error): boolean {
  return error instanceof DelayedError || error instanceof RateLimitError || error.name === 'DelayedError' || error.message === 'bullmq:rateLimitExceeded';
}

export function createDefinitionMap(definitions: readonly JobDefinition[]): ReadonlyMap<string, JobDefinition> {
  const map = new Map<string, JobDefinition>();
  for (const definition of definitions) {
    if (map.has(definition.name)) throw new Error(`two job definitions are named ${definition.name}`);
    map.set(definition.name, definition);
  }
  return map;
}

/** `scheduledFor` of a run: the tick of a Job Scheduler's job, else when the job was created. */
function scheduledForOf(job: Job): string {
  const data = job.data as { scheduledFor?: unknown } | undefined;
  if (typeof data?.scheduledFor === 'string') return data.scheduledFor;
  const tick = job.repeatJobKey ? job.opts.prevMillis : undefined;
  return new Date(tick ?? job.timestamp).toISOString();
}

function isDatePartition(partition: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(partition);
}

/** A job's validated payload and the partition it runs. Throws on a payload that does not validate. */
function runIdentity(definition: JobDefinition, job: Job, scheduledFor: string): { payload: Record<string, unknown>; partition: string } {
  const payload = parsePayload(definition, { ...(job.data as object), scheduledFor });
  return { payload, partition: definition.partition(payload as never) };
}

export type JobProcessor = (job: Job, token?: string, signal?: AbortSignal) => Promise<JobSummary>;

/**
 * The processor every worker runs. It declares three parameters because BullMQ passes the
 * abort signal only to processors that do.
 */
export function createProcessor(runtime: WorkerRuntime): JobProcessor {
  const { metrics, recorder } = runtime;
  // Well inside the recorder's stale threshold (at least 90 s), so a live run never looks dead,
  // however long the BullMQ lock is.
  const heartbeatIntervalMs = Math.max(10_000, Math.min(30_000, Math.floor(runtime.config.lockDurationMs / 2)));

  return async function processJob(job: Job, token?: string, signal?: AbortSignal): Promise<JobSummary> {
    const definition = runtime.definitions.get(job.name);
    if (!definition) throw new UnrecoverableError(`no job definition named "${job.name}" (known: ${[...runtime.definitions.keys()].join(', ')})`);
    const labels = { queue: definition.queue, job: definition.name };
    const jobId = job.id ?? 'unknown';
    const attempt = job.attemptsMade + 1;
    const scheduledFor = scheduledForOf(job);

    let payload: Record<string, unknown>;
    let partition: string;
    try {
      ({ payload, partition } = runIdentity(definition, job, scheduledFor));
    } catch (thrown) {
      const error = redactError(coerceError(thrown));
      // Not retried even when it cannot be recorded: the payload would fail the same way again.
      await recordSkippedRun(runtime.db, {
        job: definition.name,
        partition: `bad-payload.${jobId}`,
        queue: definition.queue,
        jobId,
        scheduledFor,
        status: 'failed',
        summary: null,
        error: error.message,
      }).catch((err: unknown) => runtime.logger.error({ job: definition.name, jobId, err }, 'could not record a bad payload in ops.job_runs'));
      metrics.jobsTotal.inc({ ...labels, outcome: 'failed' });
      runtime.logger.error({ job: definition.name, jobId, attempt, err: error }, 'bad payload: failed without retries');
      throw new UnrecoverableError(error.message);
    }
    const runLog = runtime.logger.child({ job: definition.name, jobId, attempt, partition });

    // A run standing for a tick: the scheduler's own job, or one catch-up made or a promoted tick was deferred to.
    const standsForTick = Boolean(job.repeatJobKey) || payload.catchup === true;
    const early = standsForTick ? Date.parse(scheduledFor) - Date.now() : 0;
    if (early > TICK_SKEW_MS) {
      // A tick promoted before its time would build its partition on partial data and mark it
      // done, so the tick itself would never run. It is put off to its instant instead, under the
      // id catch-up would give it (the scheduler has already made the schedule's next job).
      const defer = (ownTickId: boolean) =>
        enqueueRun(runtime.queues, definition, { catchup: true }, { scheduledFor: new Date(scheduledFor), delayMs: early, ownTickId });
      let deferred = await defer(false);
      // The plain id is taken by a run of the partition made by hand ahead of the tick (or is this
      // deferred run itself, promoted again): the tick still is owed one.
      if (!deferred.created) deferred = await defer(true);
      if (!deferred.created) {
        // Both ids are this job's or pending ones': none can hold the tick. Catch-up owes it once its instant is past.
        runLog.warn({ scheduledFor, heldBy: deferred.jobId }, 'run for a tick started before its time (promoted?): not run now; catch-up runs the tick after its time');
        return { deferred: 'started before its tick', partition, scheduledFor, jobId: null };
      }
      runLog.warn({ scheduledFor, deferredJobId: deferred.jobId }, 'run for a tick started before its time (promoted?): deferred to its time, not run now');
      return { deferred: 'started before its tick', partition, scheduledFor, jobId: deferred.jobId };
    }

    // How a failed attempt ends: for good (a permanent error, or the last attempt), or retried.
    const failureOf = (error: Error): { permanent: boolean; status: 'failed' | 'retrying' } => {
      const permanent = classifyError(error) === 'permanent';
      return { permanent, status: permanent || attempt >= (job.opts.attempts ?? 1) ? 'failed' : 'retrying' };
    };
    // Hands the failure to BullMQ: a permanent one is not retried.
    const rethrow = (error: Error, permanent: boolean): never => {
      throw permanent ? new UnrecoverableError(error.message) : error;
    };

    // What is written before the run starts (a skip, the claim) can fail too (PostgreSQL down):
    // counted like a failed run, retried by BullMQ, or failed for good after the last attempt.
    const beforeStart = async <T>(write: () => Promise<T>): Promise<T> => {
      try {
        return await write();
      } catch (thrown) {
        const error = redactError(coerceError(thrown));
        const { permanent, status } = failureOf(error);
        metrics.jobsTotal.inc({ ...labels, outcome: status });
        if (status === 'failed') runLog.error({ err: error, permanent }, 'run failed before it started: its ops.job_runs row could not be written');
        else runLog.warn({ err: error }, 'run failed before it started (its ops.job_runs row could not be written): will retry');
        return rethrow(error, permanent);
      }
    };

    if (definition.schedule?.calendar === 'nyse' && isDatePartition(partition) && !isTradingDay(partition)) {
      const reason = nyseHoliday(partition) ?? 'weekend';
      await beforeStart(() => recordSkippedRun(runtime.db, {
        job: definition.name,
        partition,
        queue: definition.queue,
        jobId,
        scheduledFor,
        status: 'skipped',
        summary: { skipped: 'not an NYSE session', reason },
        error: null,
      }));
      metrics.ticksSkipped.inc({ schedule: definition.name, reason: 'not-a-session' });
      runLog.info({ reason }, 'not an NYSE trading day: nothing to do');
      return { skipped: 'not an NYSE session', partition, reason };
    }

    const request = {
      job: definition.name,
      partition,
      queue: definition.queue,
      jobId,
      attempt,
      scheduledFor,
      force: payload.force === true,
      tick: Boolean(job.repeatJobKey) || payload.catchup === true,
    };
    // A schedule's overlap policy is for its ticks. Any other run of a scheduled job (enqueued by
    // hand or by another job, or caught up) waits for the active run instead of being dropped;
    // so does a tick that runs again (a retry, a stall, Bull Board): claimScheduled knows it by
    // its partition's row. Under `allow` runs of different partitions never wait for each other.
    const policy = definition.schedule?.overlap ?? 'allow';
    const overlap = policy === 'allow' ? 'allow' : job.repeatJobKey && payload.catchup !== true ? policy : 'wait';
    const claim = await beforeStart(() => recorder.claimScheduled(request, overlap));
    if (!claim.claimed) {
      if (claim.status === 'overlap-buffered' || claim.status === 'overlap-waiting') {
        runLog.info({ active: claim.activePartition }, `previous run still active: ${claim.status === 'overlap-buffered' ? 'tick buffered' : 'this run waits for it'}`);
        await job.moveToDelayed(Date.now() + BUFFER_POLL_MS, token);
        throw new DelayedError();
      }
      if (claim.status === 'running' && request.force) {
        // A forced run is asked for because the partition's inputs changed (restated fills, a
        // re-run by hand): the live run may have read them before the change, so this one is
        // still owed. It waits for the partition instead of being dropped as running elsewhere.
        runLog.info({ owner: claim.jobId }, 'forced run: partition running elsewhere, this run waits for it');
        await job.moveToDelayed(Date.now() + BUFFER_POLL_MS, token);
        throw new DelayedError();
      }
      if (claim.status === 'overlap-skipped') {
        metrics.ticksSkipped.inc({ schedule: definition.name, reason: 'overlap' });
        runLog.warn({ active: claim.activePartition }, 'previous run still active: tick skipped (overlap policy skip)');
        return { skipped: 'overlap', partition, activePartition: claim.activePartition };
      }
      const reason = claim.status === 'succeeded' || claim.status === 'skipped' ? 'already done' : 'running elsewhere';
      metrics.jobsTotal.inc({ ...labels, outcome: 'skipped' });
      runLog.info({ status: claim.status, owner: claim.jobId }, `partition ${reason}: not run again`);
      return { skipped: reason, partition, status: claim.status };
    }

    runLog.info('run started');
    if (attempt > 1) {
      // Off the run's path: history only. Each earlier attempt recorded its own failure unless PostgreSQL was down then.
      recorder
        .recordMissedFailures(definition.name, partition, jobId, attempt - 1, job.failedReason ?? null)
        .catch((err: unknown) => runLog.warn({ err }, 'could not check ops.job_run_events for earlier attempts'));
    }
    const started = process.hrtime.bigint();
    const heartbeat = setInterval(() => {
      recorder.heartbeat(definition.name, partition, jobId).catch((err: unknown) => runLog.warn({ err }, 'heartbeat failed'));
    }, heartbeatIntervalMs);
    heartbeat.unref();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;

    const context: JobContext<unknown> = {
      payload,
      partition,
      db: runtime.db,
      sourceDb: runtime.sourceDb,
      config: runtime.config,
      logger: runLog,
      signal: signal ?? new AbortController().signal,
      jobId,
      attempt,
      progress: async (progress) => {
        await job.updateProgress(progress);
      },
      metrics,
      enqueue: async (name, data, options) => {
        const target = runtime.definitions.get(name);
        if (!target) throw new Error(`cannot enqueue unknown job ${name}`);
        const enqueued = await enqueueRun(runtime.queues, target, data, { deduplicationId: options?.deduplicationId, delayMs: options?.delayMs, force: options?.force, priority: options?.priority });
        // A deduplicated add hands back the job already waiting (or active) under that id.
        return enqueued.job.id ?? enqueued.jobId;
      },
      enqueueFlow: async (parent, children, options) => {
        const node = (spec: { job: string; payload: Record<string, unknown> }) => {
          const target = runtime.definitions.get(spec.job);
          if (!target) throw new Error(`cannot enqueue unknown job ${spec.job}`);
          return { definition: target, data: spec.payload };
        };
        return enqueueFlow(runtime.flows, node(parent), children.map(node), { force: options?.force, jobOptions: runtime.jobOptions });
      },
      // Puts the job back to go on later: its row is marked first, before another worker can take it.
      requeue: async (delayMs = 0, options) => {
        await recorder.suspend(definition.name, partition, jobId);
        if (options?.resetAttempts && job.attemptsMade > 0 && job.id !== undefined) {
          // BullMQ keeps the attempts made in field `atm` of the job's hash, and a move to delayed
          // leaves it be. Written before the move, while this worker still holds the job's lock.
          const queue = runtime.queues.get(definition.queue);
          if (!queue) throw new Error(`no queue ${definition.queue}`);
          const client = await queue.getBackend().client;
          await client.hset(queue.toKey(job.id), { atm: 0 });
        }
        await job.moveToDelayed(Date.now() + delayMs, token);
        throw new DelayedError();
      },
    };

    try {
      const summary = await definition.process(context as never);
      clearInterval(heartbeat);
      // Not awaited for unscheduled jobs: the job slot is free at once, and successes are written in
      // groups; should the process die before the group is written, the reaper completes the row
      // from BullMQ. Awaited where an overlap check reads it: the schedule's next run must not find
      // this one still 'running' and be dropped.
      const settled = recorder
        .finish({ job: definition.name, partition, jobId, attempt, status: 'succeeded', summary, error: null })
        .catch((err: unknown) => runLog.error({ err }, 'could not record the success in ops.job_runs'));
      if (overlap !== 'allow') await settled;
      metrics.jobDuration.observe({ ...labels, outcome: 'succeeded' }, seconds());
      metrics.jobsTotal.inc({ ...labels, outcome: 'succeeded' });
      runLog.info({ summary, seconds: seconds() }, 'run succeeded');
      return summary;
    } catch (thrown) {
      clearInterval(heartbeat);
      // Its message goes to ops.job_runs, the logs and BullMQ's failedReason (Bull Board):
      // a connection URL or an apiKey parameter quoted in it is masked first, in place, so
      // retry decisions still see the same error.
      const error = redactError(coerceError(thrown));
      if (signal?.aborted && signal.reason === SHUTDOWN) {
        // Cut short by this worker's shutdown, not failed: back on its queue without using an
        // attempt (its row stays running), for the next worker to claim again under the same id.
        runLog.warn('interrupted by the worker shutting down: put back on its queue');
        await job.moveToDelayed(Date.now(), token).catch((err: unknown) => runLog.warn({ err }, 'could not put the job back: it is re-run once its lock lapses'));
        throw new DelayedError();
      }
      if (isRequeue(error)) {
        // The run goes on in a later step: its ops.job_runs row stays running, and the step that
        // finishes the work records the outcome.
        runLog.debug({ reason: error.message }, 'run put back on its queue');
        throw error;
      }
      const { permanent, status } = failureOf(error);
      await recorder
        .finish({ job: definition.name, partition, jobId, attempt, status, summary: null, error: error.message })
        .catch((err: unknown) => runLog.error({ err }, 'could not record the failure in ops.job_runs'));
      metrics.jobDuration.observe({ ...labels, outcome: status }, seconds());
      metrics.jobsTotal.inc({ ...labels, outcome: status });
      if (status === 'failed') runLog.error({ err: error, permanent }, 'run failed');
      else runLog.warn({ err: error }, 'run failed: will retry');
      return rethrow(error, permanent);
    }
  };
}

/**
 * A job whose worker died more often than maxStalledCount is failed by BullMQ on its next
 * pick-up, without the processor running: its ops.job_runs row, claimed by the first of those
 * runs, is closed here, or it would say running until the reaper settles it minutes later.
 */
async function recordStallFailure(runtime: WorkerRuntime, job: Job): Promise<void> {
  const definition = runtime.definitions.get(job.name);
  if (!definition || job.id === undefined) return;
  const error = `${job.deferredFailure}: its worker died while running it ${job.stalledCounter} times (JOB_MAX_STALLS is ${runtime.config.jobMaxStalls}); a job that keeps killing its worker fails instead of being re-run`;
  try {
    const { partition } = runIdentity(definition, job, scheduledForOf(job));
    await runtime.recorder.finish({ job: definition.name, partition, jobId: job.id, attempt: job.attemptsMade, status: 'failed', summary: null, error });
    runtime.metrics.jobsTotal.inc({ queue: definition.queue, job: definition.name, outcome: 'failed' });
    runtime.logger.error({ job: definition.name, jobId: job.id, partition, stalls: job.stalledCounter }, 'run failed: its worker died too often');
  } catch (err) {
    runtime.logger.error({ err, job: definition.name, jobId: job.id }, 'could not record a stalled-too-often failure in ops.job_runs');
  }
}

/**
 * BullMQ counts a job's stalls over its whole life, and a retry (Bull Board's included) does
 * not reset the count: a job failed for stalling would fail again at its next crash. Its
 * count starts over here, once it has failed, so a retry gets the whole JOB_MAX_STALLS again.
 */
async function resetStallCount(worker: Worker, job: Job): Promise<void> {
  if (job.id === undefined) return;
  const client = await worker.getBackend().client;
  await client.hset(worker.toKey(job.id), { stc: 0 });
}

export interface StartWorkersOptions {
  connection: ConnectionOptions;
  /** Queues this process works; @defaultValue every queue a definition uses */
  queues?: readonly QueueName[];
}

/** One BullMQ Worker per queue, with the configured concurrency and bullpen's backoff. */
export function startWorkers(runtime: WorkerRuntime, options: StartWorkersOptions): Worker[] {
  const processor = createProcessor(runtime);
  const used = new Set([...runtime.definitions.values()].map((d) => d.queue));
  const names = (options.queues ?? [...used]).filter((name) => used.has(name));
  const workerName = `${os.hostname()}:${process.pid}`;
  return names.map((name) => {
    const worker = new Worker(name, processor, {
      connection: options.connection,
      prefix: runtime.config.prefix,
      concurrency: runtime.config.concurrency[name] ?? DEFAULT_CONCURRENCY[name],
      lockDuration: runtime.config.lockDurationMs,
      stalledInterval: runtime.config.stalledIntervalMs,
      // A stall is a crash; a job whose workers keep dying is probably what kills them, and it fails. A backfill
      // series is one job over many chunk steps, and BullMQ counts its stalls over all of them:
      // each step commits or not as a whole, so re-running one after a crash is always safe.
      maxStalledCount: name === 'enrichment' ? ENRICHMENT_MAX_STALLS : runtime.config.jobMaxStalls,
      name: workerName,
      // No BullMQ limiter on the enrichment queue: it would meter every source's series alike, and
      // a 429's pause would hold them all. Each source's budget and pause are its own (src/enrichment/source-gate.ts).
      settings: {
        backoffStrategy: (attemptsMade, type, err) =>
          type === BACKOFF_TYPE ? computeBackoffMs(attemptsMade, runtime.config.jobBackoffMs, err) : runtime.config.jobBackoffMs,
      },
    });
    worker.on('error', (err) => runtime.logger.error({ err, queue: name }, 'worker error'));
    worker.on('failed', (job, err) => {
      if (job?.deferredFailure === undefined || err.message !== job.deferredFailure) return;
      void recordStallFailure(runtime, job);
      void resetStallCount(worker, job).catch((error: unknown) =>
        runtime.logger.warn({ err: error, jobId: job.id }, 'could not reset the stall count of a job failed for stalling'),
      );
    });
    return worker;
  });
}

/**
 * Stops taking work, lets active jobs finish for up to `timeoutMs`, then signals them to
 * abort and closes anyway. A job that stops at the signal goes back on its queue without using
 * an attempt; one that does not stays active in Redis, its lock lapses and another worker
 * re-runs it as stalled. Nothing is lost.
 */
export async function stopWorkers(workers: readonly Worker[], timeoutMs: number, logger: Logger): Promise<void> {
  if (workers.length === 0) return;
  const graceful = Promise.all(workers.map((worker) => worker.close()));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    graceful.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!timedOut) return;
  logger.warn({ timeoutMs }, 'active jobs did not finish in time: aborting them; they will be retried or re-run as stalled');
  for (const worker of workers) worker.cancelAllJobs(SHUTDOWN);
  await Promise.race([graceful, new Promise((resolve) => setTimeout(resolve, 2000))]);
  await Promise.all(workers.map((worker) => worker.close(true)));
}
