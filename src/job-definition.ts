/**
 * The contract every file in jobs/ fulfils (DESIGN.md "A job"): what a job is called, where
 * it runs, what it accepts, when it runs, which partition a run owns, what happens to missed
 * ticks, and the work itself.
 */
import type { Sql } from 'postgres';
import { z } from 'zod';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { QueueName } from './queues.ts';

/** What happens to ticks missed while nothing ran (Airflow's catchup, graphile-worker's fill). */
export type CatchupPolicy =
  | { readonly mode: 'none' }
  /** Only the most recent missed tick inside the window is run. */
  | { readonly mode: 'latest'; readonly windowHours: number }
  /** Every missed tick inside the window, oldest first, at most `max` per pass. */
  | { readonly mode: 'all'; readonly windowHours: number; readonly max: number };

/** What a tick does while the previous run of the same schedule is still active (Temporal's overlap policies). */
export type OverlapPolicy = 'skip' | 'buffer-one' | 'allow';

/** "Partition D must be done by HH:MM in tz", D being the partition's date plus `dayOffset` days. */
export interface Deadline {
  readonly by: string;
  readonly tz: string;
  readonly dayOffset: number;
}

export interface ScheduleSpec {
  /** Cron pattern (5 fields, or 6 with seconds), evaluated in `tz`. */
  readonly cron: string;
  /** IANA zone the pattern is read in; DST handled by BullMQ's cron parser. */
  readonly tz: string;
  /** `nyse`: a tick whose partition date is not an NYSE session is not expected (not run, not caught up). */
  readonly calendar: 'all' | 'nyse';
  readonly overlap: OverlapPolicy;
  readonly deadline?: Deadline;
}

/** Reports progress to BullMQ (Bull Board shows it) and keeps the run's heartbeat fresh. */
export type ProgressReporter = (progress: number | Record<string, unknown>) => Promise<void>;

export interface JobContext<P> {
  readonly payload: P;
  readonly partition: string;
  readonly db: Sql;
  /** The OLTP source; the same connection as `db` unless SOURCE_DATABASE_URL differs. */
  readonly sourceDb: Sql;
  readonly config: Config;
  /** Child logger bound to job, id, partition and attempt. */
  readonly logger: Logger;
  readonly progress: ProgressReporter;
  /** Aborted when the worker is shutting down and the job should stop at a safe point. */
  readonly signal: AbortSignal;
  /** The process's Prometheus metrics, for counts only the job knows (rows loaded, rejected…). */
  readonly metrics: Metrics;
  /** Enqueue another job by name (with its deterministic id); returns the job id. */
  readonly enqueue: (job: string, payload: Record<string, unknown>, options?: ContextEnqueueOptions) => Promise<string>;
  /**
   * Adds a flow: `parent` runs once every child has finished (or failed for good). `force` gives
   * the nodes fresh ids, for a flow that runs again (a resumed backfill). Returns the parent's id.
   */
  readonly enqueueFlow: (
    parent: { job: string; payload: Record<string, unknown> },
    children: readonly { job: string; payload: Record<string, unknown> }[],
    options?: { force?: boolean },
  ) => Promise<{ jobId: string; childJobIds: string[] }>;
  /**
   * Ends this step and puts the job back on its queue (after `delayMs`, without using an
   * attempt), where other jobs get their turn before the next step. Never returns.
   */
  readonly requeue: (delayMs?: number, options?: RequeueOptions) => Promise<never>;
  readonly jobId: string;
  readonly attempt: number;
}

export interface RequeueOptions {
  /**
   * The next step starts with every attempt (JOB_ATTEMPTS) again: this one's work is done, and
   * the attempts a job of many steps used on earlier ones must not count against later ones.
   */
  resetAttempts?: boolean;
}

export interface ContextEnqueueOptions {
  /**
   * BullMQ deduplication id: while a job with this id waits, further adds are dropped; while
   * one is active, one more is kept to run after it (at most one active and one waiting).
   */
  deduplicationId?: string;
  /** Milliseconds before the job may start (a delayed job still deduplicates further adds). */
  delayMs?: number;
  /**
   * Runs it even when its partition already succeeded, under an id of its own
   * (`<job>@<partition>@force-<ms>`): the plain id would hand back the finished earlier run.
   */
  force?: boolean;
  /**
   * BullMQ priority, 1 (soonest) to 2,097,151: the job waits on its queue behind every job
   * without one, which is how scheduled ticks, catch-up and runs asked for by hand are added,
   * so background work given one never holds them up. Jobs with priorities go lowest number
   * first, then in the order added. It is kept through retries, delays and a deduplicated
   * add kept for after the active job. @defaultValue none
   */
  priority?: number;
}

/** What a run returns; stored as `ops.job_runs.summary`. Keep it small. */
export type JobSummary = Record<string, unknown>;

export interface JobDefinition<S extends z.ZodType = z.ZodType> {
  /** kebab-case; also the BullMQ job name and the jobs/ file name. */
  readonly name: string;
  readonly queue: QueueName;
  readonly description: string;
  /** A payload failing this schema fails the job without retries. */
  readonly payload: S;
  readonly schedule: ScheduleSpec | null;
  /** The logical partition a run covers; the deterministic job id is built from it. */
  readonly partition: (payload: z.output<S>) => string;
  readonly catchup: CatchupPolicy;
  readonly process: (ctx: JobContext<z.output<S>>) => Promise<JobSummary>;
}

/** Type helper so each job file gets inference from its schema. */
export function defineJob<S extends z.ZodType>(definition: JobDefinition<S>): JobDefinition<S> {
  return definition;
}

/**
 * Fields every payload may carry: `scheduledFor` (the tick a run stands for, filled in by the
 * runtime for scheduled and caught-up runs) and `force` (run again even if the partition is
 * already recorded as succeeded).
 */
/** Strict: a key a job does not know (a typo such as `dat` for `date`) is refused, not dropped. */
export const basePayload = z.strictObject({
  scheduledFor: z.iso.datetime({ offset: true }).optional(),
  force: z.boolean().optional(),
  /** Set by catch-up on missed ticks: they wait for an active run of their schedule instead of being dropped by overlap `skip`. */
  catchup: z.boolean().optional(),
});

const isoDate = z.iso.date();
/** A `YYYY-MM-DD` date field for payloads. */
export const payloadDate = isoDate;

/** The tick a run stands for; the runtime fills `scheduledFor` before a payload reaches a job. */
export function scheduledInstant(payload: { scheduledFor?: string | undefined }): string {
  if (!payload.scheduledFor) throw new Error('payload has no scheduledFor; the runtime fills it before a job runs');
  return payload.scheduledFor;
}
