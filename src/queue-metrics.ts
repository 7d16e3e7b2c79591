/**
 * Gauges refreshed just before Prometheus scrapes /metrics: queue depth and pauses from Redis,
 * schedule gauges from both, and enrichment status counts and deadline misses from PostgreSQL.
 */
import { ENRICHMENT_STATUSES, enrichmentStatus, type EnrichmentStatus } from './analytics/data-quality.ts';
import { calendarOf, type AssetClass } from './analytics/timeframes.ts';
import type { Sql } from './db.ts';
import { sessionsBehind } from './enrichment/series-step.ts';
import type { Metrics } from './metrics.ts';
import type { QueueMap } from './queues.ts';
import { recordDeadlineMetrics, recordScheduleMetrics, type Schedule, type ScheduleStatus } from './scheduler.ts';

/** States reported under `bullpen_queue_depth{state}`, every one always set (0 when empty). */
export const QUEUE_DEPTH_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'paused', 'waiting-children'] as const;

export type QueueDepthState = (typeof QUEUE_DEPTH_STATES)[number];

/**
 * Sets `metrics.queueDepth` for every queue and state, and `metrics.queuePaused` for every
 * queue. BullMQ 6 has no paused job state (a paused queue keeps its jobs in the wait list), so
 * while a queue is paused its waiting jobs are reported as `paused` and `waiting` is 0, as
 * BullMQ ≤ 4 did: each job counts in exactly one state, and "waiting" keeps meaning "waiting
 * for a worker".
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
      metrics.queuePaused.set({ queue: name }, isPaused ? 1 : 0);
    }),
  );
}

/**
 * Symbols per enrichment status, every status present (0 when none). Each symbol's status is
 * derived at `now` as GET /api/v1/enrichment/status/:symbol derives it (stored error flag,
 * sessions behind, mean quality of its last 7 metric days), so a symbol turns stale while
 * nothing enriches it; the status stored at its last enrichment says only how it was then.
 * One query: two index probes per symbol.
 */
export async function loadEnrichmentStatusCounts(db: Sql, now: number): Promise<Map<EnrichmentStatus, number>> {
  const rows = await db<{ asset_class: AssetClass; status: string; latest_bar_ts: Date | null; quality_score: number | null }[]>`
    select s.asset_class, s.status, s.latest_bar_ts, q.quality_score
    from enrichment.status s
    left join lateral (
      select avg(d.avg_quality_score)::float8 as quality_score
      from enrichment.data_quality_metrics d
      where d.symbol = s.symbol
        and d.metric_date > (select max(m.metric_date) from enrichment.data_quality_metrics m where m.symbol = s.symbol) - 7
    ) q on true`;
  const counts = new Map<EnrichmentStatus, number>(ENRICHMENT_STATUSES.map((status) => [status, 0]));
  for (const row of rows) {
    const latest = row.latest_bar_ts?.getTime() ?? null;
    const status = enrichmentStatus({
      failed: row.status === 'error',
      qualityScore: row.quality_score === null ? null : Math.round(row.quality_score * 100) / 100,
      sessionsBehind: latest === null ? null : sessionsBehind(latest, now, calendarOf(row.asset_class)),
    });
    counts.set(status, (counts.get(status) ?? 0) + 1);
  }
  return counts;
}

/** Sets `bullpen_enrichment_symbols{status}` for every status (0 when none), as derived at `now`. */
export async function recordEnrichmentStatus(metrics: Metrics, db: Sql, now: number): Promise<void> {
  for (const [status, n] of await loadEnrichmentStatusCounts(db, now)) metrics.enrichmentSymbols.set({ status }, n);
}

export interface GaugeSources {
  metrics: Metrics;
  queues: QueueMap;
  db: Sql;
  schedules: readonly Schedule[];
  /** The schedules listing (Redis and PostgreSQL), shared with the status page and the API. */
  listSchedules(): Promise<ScheduleStatus[]>;
}

/**
 * What runs before each /metrics scrape in every process that serves it. Each gauge is set as
 * soon as its own reads answer, and a failure of one does not keep the others from being set:
 * the deadline gauge needs only PostgreSQL, and a Redis in trouble is when a report is most
 * likely not made. Rejects once all have settled if any failed (the scrape then logs it).
 */
export function createGaugeRefresher(sources: GaugeSources): () => Promise<void> {
  const { metrics, queues, db, schedules } = sources;
  return async () => {
    const now = new Date();
    const results = await Promise.allSettled([
      recordQueueDepth(metrics, queues),
      sources.listSchedules().then((statuses) => recordScheduleMetrics(metrics, statuses, now)),
      recordEnrichmentStatus(metrics, db, now.getTime()),
      recordDeadlineMetrics(metrics, db, schedules, now),
    ]);
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `refreshing gauges: ${errors.length} sources failed`);
  };
}
