/**
 * Queue names, default job options and the deterministic job-id helper. One queue per
 * kind of work, so each gets its own concurrency and a slow backfill never holds up the ETL.
 */
import { Queue, type ConnectionOptions, type DefaultJobOptions, type JobType } from 'bullmq';
import { RateLimitedError } from './errors.ts';

export const QUEUE_NAMES = ['etl', 'rollups', 'rs', 'enrichment', 'reports', 'maintenance'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

/** Concurrency per queue unless `CONCURRENCY_<QUEUE>` says otherwise. */
export const DEFAULT_CONCURRENCY: Readonly<Record<QueueName, number>> = {
  etl: 1,
  rollups: 1,
  rs: 1,
  // Mostly waiting on a provider or on PostgreSQL's COPY: more in flight keeps both busy.
  enrichment: 8,
  reports: 1,
  maintenance: 1,
};

/** Name of the custom backoff strategy registered on every worker. */
export const BACKOFF_TYPE = 'bullpen';

export interface JobOptionSettings {
  attempts: number;
  backoffMs: number;
}

/** Options every enqueued job gets: retries with our backoff, bounded history in Redis. */
export function createDefaultJobOptions(settings: JobOptionSettings): DefaultJobOptions {
  return {
    attempts: settings.attempts,
    backoff: { type: BACKOFF_TYPE, delay: settings.backoffMs },
    // Redis keeps recent history for Bull Board; PostgreSQL (ops.job_runs) keeps all of it.
    removeOnComplete: { age: 7 * 24 * 3600, count: 1000 },
    removeOnFail: { age: 30 * 24 * 3600, count: 5000 },
  };
}

/**
 * Exponential backoff with full jitter between 50% and 100% of the step, capped at one
 * hour; a 429's Retry-After wins when it is longer.
 */
export function computeBackoffMs(attemptsMade: number, baseMs: number, error: unknown, random: () => number = Math.random): number {
  const step = Math.min(baseMs * 2 ** Math.max(0, attemptsMade - 1), 3_600_000);
  const jittered = Math.round(step * (0.5 + 0.5 * random()));
  if (error instanceof RateLimitedError && error.retryAfterMs !== undefined) {
    return Math.max(jittered, error.retryAfterMs);
  }
  return jittered;
}

/**
 * The deterministic BullMQ job id of a job's partition: `<name>@<partition>`.
 * BullMQ refuses ids with a single ':' and all-digit ids, so the contract's
 * `<name>:<partition>` is written with '@', and any ':' in a partition becomes '.'.
 */
export function createJobId(name: string, partition: string): string {
  if (partition.length === 0) throw new Error(`empty partition for job ${name}`);
  return `${name}@${partition.replace(/:/g, '.')}`;
}

/** BullMQ states in which a job will still run (or runs): adding the run again would duplicate it. */
export const PENDING_STATE_LIST = ['waiting', 'delayed', 'active', 'prioritized', 'waiting-children'] as const satisfies readonly JobType[];
export const PENDING_STATES: ReadonlySet<string> = new Set(PENDING_STATE_LIST);

export type QueueMap = ReadonlyMap<QueueName, Queue>;

/** One BullMQ Queue per queue name, sharing a connection; close them with `closeQueues`. */
export function createQueues(connection: ConnectionOptions, prefix: string, defaultJobOptions: DefaultJobOptions): QueueMap {
  return new Map(QUEUE_NAMES.map((name) => [name, new Queue(name, { connection, prefix, defaultJobOptions })]));
}

/**
 * Closes the queues. Each first finishes its start-up (BullMQ's version check, an INFO on the
 * shared connection): a queue closed before that, then the connection quit, had the INFO
 * written to a closed socket, and ioredis printed "Unhandled error event: Error: write EPIPE"
 * with its stack (`bullpen backfill --all` refused at once, the fuzz test found).
 */
export async function closeQueues(queues: QueueMap): Promise<void> {
  await Promise.all(
    [...queues.values()].map(async (queue) => {
      await queue.waitUntilReady().catch(() => undefined);
      await queue.close();
    }),
  );
}
