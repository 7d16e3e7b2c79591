/**
 * The one way to put a run on a queue: validate the payload against the job's schema,
 * work out its partition and give it the deterministic id `<name>@<partition>`.
 */
import type { DefaultJobOptions, FlowProducer, Job } from 'bullmq';
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
  /** See ContextEnqueueOptions.priority. */
  priority?: number;
  /**
   * Gives the run the id `<name>@<partition>@tick-<ms>` of the tick it stands for: a tick whose
   * partition was run ahead of it, under the plain id, is owed a run of its own.
   */
  ownTickId?: boolean;
}

/** The id of a run standing for the tick at `tick` of a partition whose plain id is taken (see EnqueueOptions.ownTickId). */
export function tickRunId(name: string, partition: string, tick: Date): string {
  return `${createJobId(name, partition)}@tick-${tick.getTime()}`;
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
  if (!result.success) {
    const shape = (definition.payload as { shape?: Record<string, unknown> }).shape;
    const known = shape && result.error.issues.some((issue) => issue.code === 'unrecognized_keys') ? ` (known keys: ${Object.keys(shape).join(', ')})` : '';
    throw new BadInputError(`bad payload for ${definition.name}: ${describeZodError(result.error)}${known}`, { cause: result.error });
  }
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
  const jobId = options.force
    ? `${createJobId(definition.name, partition)}@force-${now.getTime()}`
    : options.ownTickId
      ? tickRunId(definition.name, partition, new Date(String(withMeta.scheduledFor)))
      : createJobId(definition.name, partition);
  const queue = queues.get(definition.queue);
  if (!queue) throw new Error(`no queue ${definition.queue} for job ${definition.name}`);
  const added = await queue.add(definition.name, withMeta, {
    jobId,
    ...(options.deduplicationId ? { deduplication: { id: options.deduplicationId, keepLastIfActive: true } } : {}),
    ...(options.delayMs ? { delay: options.delayMs } : {}),
    ...(options.priority ? { priority: options.priority } : {}),
  });
  // queue.add answers with the job it built here, whatever Redis kept: a job already stored under
  // the id (or the one a deduplication id pointed to) is read back, and told apart by its timestamp.
  const stored = added.id === undefined ? undefined : await queue.getJob(added.id);
  const job = stored ?? added;
  return { job, jobId: job.id ?? jobId, partition, created: stored === undefined || stored.timestamp === added.timestamp };
}

/**
 * Runs a job that failed for good again, with a fresh budget of attempts as a new run would get;
 * answers whether it had failed. For a run asked for again (same id) after its cause was fixed:
 * BullMQ would otherwise hand back that old failure for as long as it keeps the job.
 */
export async function retryIfFailed(job: Job): Promise<boolean> {
  if ((await job.getState()) !== 'failed') return false;
  await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
  return true;
}

export interface FlowNode {
  definition: JobDefinition;
  data: Record<string, unknown>;
}

export interface EnqueuedFlow {
  /** The parent's job id. */
  jobId: string;
  childJobIds: string[];
}

/**
 * Puts a parent and its children on their queues as one BullMQ flow: the children run (in
 * parallel, each on its own queue), the parent once every child has finished, failed ones
 * included, so it can summarise. Ids are deterministic as in enqueueRun; `force` gives every
 * node a fresh id (a resumed flow must not be handed back the finished one).
 */
export async function enqueueFlow(
  flows: FlowProducer,
  parent: FlowNode,
  children: readonly FlowNode[],
  options: { force?: boolean; now?: Date; /** A FlowProducer does not apply the queues' defaults: pass them. */ jobOptions?: DefaultJobOptions } = {},
): Promise<EnqueuedFlow> {
  const now = options.now ?? new Date();
  const node = ({ definition, data }: FlowNode) => {
    const withMeta: Record<string, unknown> = { ...data, scheduledFor: data.scheduledFor ?? now.toISOString(), ...(options.force ? { force: true } : {}) };
    const payload = parsePayload(definition, withMeta);
    const base = createJobId(definition.name, definition.partition(payload));
    return { name: definition.name, queueName: definition.queue, data: withMeta, jobId: options.force ? `${base}@force-${now.getTime()}` : base };
  };
  const top = node(parent);
  const kids = children.map(node);
  await flows.add({
    name: top.name,
    queueName: top.queueName,
    data: top.data,
    opts: { ...options.jobOptions, jobId: top.jobId },
    children: kids.map((kid) => ({
      name: kid.name,
      queueName: kid.queueName,
      data: kid.data,
      // A child that fails for good is recorded by its own job; the parent still runs and reports it.
      opts: { ...options.jobOptions, jobId: kid.jobId, ignoreDependencyOnFailure: true },
    })),
  });
  return { jobId: top.jobId, childJobIds: kids.map((kid) => kid.jobId) };
}
