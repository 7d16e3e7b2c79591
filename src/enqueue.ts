/**
 * The one way to put a run on a queue: validate the payload against the job's schema,
 * work out its partition and give it the deterministic id `<name>@<partition>`.
 */
import type { Job } from 'bullmq';
import { BadInputError, describeZodError } from './errors.ts';
import type { JobDefinition } from './job-definition.ts';
import { createJobId, type QueueMap } from './queues.ts';

export interface EnqueueOptions {
  /** Run even if ops.job_runs says the partition already succeeded. */
  force?: boolean;
  /** The tick this run stands for. @defaultValue now */
  scheduledFor?: Date;
  now?: Date;
  /** See ContextEnqueueOptions.deduplicationId. */
  deduplicationId?: string;
  /** See ContextEnqueueOptions.delayMs. */
  delayMs?: number;
}

export interface Enqueued {
  job: Job;
  jobId: string;
  partition: string;
  /** False when a job with this id was already stored in Redis (BullMQ returned it instead). */
  created: boolean;
}

/** Parses a payload for a job; a bad one is a BadInputError naming each field. */
export function parsePayload(definition: JobDefinition, data: unknown): Record<string, unknown> {
  const result = definition.payload.safeParse(data);
  if (!result.success) throw new BadInputError(`bad payload for ${definition.name}: ${describeZodError(result.error)}`, { cause: result.error });
  return result.data as Record<string, unknown>;
}

export async function enqueueRun(
  queues: QueueMap,
  definition: JobDefinition,
  data: Record<string, unknown>,
  options: EnqueueOptions = {},
): Promise<Enqueued> {
  const now = options.now ?? new Date();
  const withMeta: Record<string, unknown> = {
    ...data,
    scheduledFor: data.scheduledFor ?? (options.scheduledFor ?? now).toISOString(),
    ...(options.force ? { force: true } : {}),
  };
  const payload = parsePayload(definition, withMeta);
  const partition = definition.partition(payload);
  // A forced re-run needs an id of its own: BullMQ would hand back the stored earlier job.
  const jobId = options.force ? `${createJobId(definition.name, partition)}@force-${now.getTime()}` : createJobId(definition.name, partition);
  const queue = queues.get(definition.queue);
  if (!queue) throw new Error(`no queue ${definition.queue} for job ${definition.name}`);
  const job = await queue.add(definition.name, withMeta, {
    jobId,
    ...(options.deduplicationId ? { deduplication: { id: options.deduplicationId, keepLastIfActive: true } } : {}),
    ...(options.delayMs ? { delay: options.delayMs } : {}),
  });
  return { job, jobId, partition, created: job.timestamp >= now.getTime() - 1000 };
}
