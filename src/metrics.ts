/**
 * Prometheus metrics (prom-client). The warehousing seed's names are kept as they are;
 * bullpen's own carry the `bullpen_` prefix. One registry per process, created by app.ts.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  /** Seed name: seconds per trade-etl run. */
  readonly etlDuration: Histogram<'outcome'>;
  /** Seed name: rollup rows written. */
  readonly rollupsBuilt: Counter;
  /** Seed name: ETL failures and rejected rows. */
  readonly etlErrors: Counter<'kind'>;
  readonly jobDuration: Histogram<'queue' | 'job' | 'outcome'>;
  readonly jobsTotal: Counter<'queue' | 'job' | 'outcome'>;
  readonly etlRows: Counter<'stage'>;
  readonly backfillChunks: Counter<'outcome'>;
  readonly ticksSkipped: Counter<'schedule' | 'reason'>;
  readonly catchupEnqueued: Counter<'schedule'>;
  readonly scheduleRepairs: Counter<'schedule' | 'kind'>;
  readonly deadlineMisses: Counter<'schedule'>;
  readonly deadlineMissed: Gauge<'schedule'>;
  readonly queueDepth: Gauge<'queue' | 'state'>;
  readonly queuePaused: Gauge<'queue'>;
  readonly schedulePaused: Gauge<'schedule'>;
  readonly scheduleLastSuccess: Gauge<'schedule'>;
  readonly scheduleLag: Gauge<'schedule'>;
  readonly scheduleInterval: Gauge<'schedule'>;
  readonly enrichmentSymbols: Gauge<'status'>;
}

const DURATION_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600];

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    etlDuration: new Histogram({
      name: 'etl_duration_seconds',
      help: 'Duration of trade-etl runs in seconds',
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    }),
    rollupsBuilt: new Counter({ name: 'analytics_rollups_built_total', help: 'Rollup rows written', registers }),
    etlErrors: new Counter({ name: 'analytics_etl_errors_total', help: 'ETL failures and rejected rows', labelNames: ['kind'], registers }),
    jobDuration: new Histogram({
      name: 'bullpen_job_duration_seconds',
      help: 'Duration of job runs by queue, job and outcome',
      labelNames: ['queue', 'job', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    }),
    jobsTotal: new Counter({
      name: 'bullpen_jobs_total',
      help: 'Job runs by queue, job and outcome (succeeded, failed, retrying, skipped: a partition already done or running elsewhere)',
      labelNames: ['queue', 'job', 'outcome'],
      registers,
    }),
    etlRows: new Counter({ name: 'bullpen_etl_rows_total', help: 'ETL rows by stage (extracted, loaded, rejected)', labelNames: ['stage'], registers }),
    backfillChunks: new Counter({ name: 'bullpen_backfill_chunks_total', help: 'Backfill chunks by outcome', labelNames: ['outcome'], registers }),
    ticksSkipped: new Counter({
      name: 'bullpen_schedule_ticks_skipped_total',
      help: 'Scheduled ticks dropped (overlap with an active run, non-trading day, already done)',
      labelNames: ['schedule', 'reason'],
      registers,
    }),
    catchupEnqueued: new Counter({ name: 'bullpen_catchup_enqueued_total', help: 'Missed ticks enqueued by catch-up', labelNames: ['schedule'], registers }),
    scheduleRepairs: new Counter({
      name: 'bullpen_schedule_repairs_total',
      help: 'Job Schedulers repaired by the reconciler (missing, no next job, duplicate next jobs, drifted pattern)',
      labelNames: ['schedule', 'kind'],
      registers,
    }),
    // Counted by the scheduler process whose ops.deadline_misses row reported the miss, once in all;
    // a process that only serves /metrics does not count it again (sum over processes is the total).
    deadlineMisses: new Counter({
      name: 'bullpen_deadline_misses_total',
      help: 'Partitions not done by their deadline, counted once by the scheduler process that reported each',
      labelNames: ['schedule'],
      registers,
    }),
    // Derived from ops.job_runs at scrape time by every process serving /metrics (recordDeadlineMetrics).
    deadlineMissed: new Gauge({ name: 'bullpen_deadline_missed', help: '1 while the latest due partition of a schedule is past its deadline and not done', labelNames: ['schedule'], registers }),
    queueDepth: new Gauge({ name: 'bullpen_queue_depth', help: 'Jobs per queue and state', labelNames: ['queue', 'state'], registers }),
    // A paused queue with no job waiting shows nothing in bullpen_queue_depth{state="paused"}: the
    // pause itself needs a series of its own, so that a forgotten one can be alerted on.
    queuePaused: new Gauge({ name: 'bullpen_queue_paused', help: '1 while the queue is paused (Bull Board pause, queue.pause()), else 0', labelNames: ['queue'], registers }),
    // The lag and deadline gauges are labelled by schedule only; this is what their alerts join on
    // to leave out schedules whose work is held by a pause on purpose.
    schedulePaused: new Gauge({
      name: 'bullpen_schedule_paused',
      help: '1 while the queue a schedule runs on is paused, else 0 (its lag and deadline alerts are held meanwhile)',
      labelNames: ['schedule'],
      registers,
    }),
    scheduleLastSuccess: new Gauge({
      name: 'bullpen_schedule_last_success_timestamp_seconds',
      help: 'Unix time of the last successful run of each schedule (from ops.job_runs)',
      labelNames: ['schedule'],
      registers,
    }),
    scheduleLag: new Gauge({
      name: 'bullpen_schedule_lag_seconds',
      help: 'Seconds since the oldest expected tick without a successful run (0 when up to date)',
      labelNames: ['schedule'],
      registers,
    }),
    scheduleInterval: new Gauge({
      name: 'bullpen_schedule_interval_seconds',
      help: "Gap between a schedule's next two ticks (its period, for lag alerts)",
      labelNames: ['schedule'],
      registers,
    }),
    enrichmentSymbols: new Gauge({
      name: 'bullpen_enrichment_symbols',
      help: 'Symbols by enrichment status (healthy, warning, stale, error, not_enriched), derived now from enrichment.status',
      labelNames: ['status'],
      registers,
    }),
  };
}
