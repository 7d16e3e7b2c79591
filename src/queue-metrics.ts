/**
 * Queue depth gauges, refreshed from Redis just before Prometheus scrapes /metrics.
 */
import type { Metrics } from './metrics.ts';
import type { QueueMap } from './queues.ts';

/** States reported under `bullpen_queue_depth{state}`, every one always set (0 when empty). */
export const QUEUE_DEPTH_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'paused', 'waiting-children'] as const;

export type QueueDepthState = (typeof QUEUE_DEPTH_STATES)[number];

/**
 * Sets `metrics.queueDepth` for every queue and state. BullMQ 6 has no paused job state
 * (a paused queue keeps its jobs in the wait list), so while a queue is paused its waiting
 * jobs are reported as `paused` and `waiting` is 0, as BullMQ ≤ 4 did: each job counts
 * in exactly one state, and "waiting" keeps meaning "waiting for a worker".
 */
export async function recordQueueDepth(metrics: Metrics, queues: QueueMap): Promise<void> {
  await Promise.all(
    [...queues].map(async ([name, queue]) => {
      const [counts, isPaused] = await Promise.all([
        queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children'),
        queue.isPaused(),
      ]);
      const waiting = counts.waiting ?? 0;
      const depth: Record<QueueDepthState, number> = {
        waiting: isPaused ? 0 : waiting,
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        failed: counts.failed ?? 0,
        completed: counts.completed ?? 0,
        prioritized: counts.prioritized ?? 0,
        paused: isPaused ? waiting : 0,
        'waiting-children': counts['waiting-children'] ?? 0,
      };
      for (const state of QUEUE_DEPTH_STATES) metrics.queueDepth.set({ queue: name, state }, depth[state]);
    }),
  );
}
