/**
 * trade-etl: incremental load of new and amended executions from the OLTP source into the
 * warehouse star schema, with FIFO realized PnL, restatement of late fills and quarantine of
 * bad rows (src/trade-loader.ts does the work). Partition: the tick it stands for; the
 * watermark in ops.etl_watermarks, not the tick, decides what is read, so a rerun or a forced
 * run reads only what is new and an unchanged row is recognised by its hash and left alone.
 * Reads oltp.*; writes warehouse.*, ops.etl_watermarks, ops.etl_rejects, ops.etl_amendments,
 * ops.rollup_requests; then enqueues one pending build-rollups (deduplicated).
 */
import { z } from 'zod';
import { tickPartition } from '../src/cron.ts';
import { basePayload, defineJob, scheduledInstant } from '../src/job-definition.ts';
import { hasPendingRollups } from '../src/queries/trades.ts';
import { DEFAULT_BATCH_SIZE, loadTrades } from '../src/trade-loader.ts';

const payload = basePayload.extend({
  /** Executions per batch transaction. */
  batchSize: z.number().int().min(1).max(1_000_000).optional(),
  /** Stop after this many batches; the rest waits for the next run. */
  maxBatches: z.number().int().min(1).optional(),
});

/**
 * While one rebuild waits, more ETL runs add nothing; while one runs, one more is kept. The
 * rebuild waits ROLLUP_DEBOUNCE_MS first, so a burst of ETL runs (a backfill, a replay)
 * costs one or two rebuilds, not one each.
 */
export const ROLLUPS_DEDUPLICATION_ID = 'build-rollups.pending';

export const tradeEtl = defineJob({
  name: 'trade-etl',
  queue: 'etl',
  description: 'Incremental load of executions into the warehouse star schema, FIFO realized PnL, rejects to quarantine',
  payload,
  schedule: { cron: '*/5 * * * *', tz: 'America/New_York', calendar: 'all', overlap: 'skip' },
  partition: (p) => tickPartition(scheduledInstant(p)),
  // The watermark makes any later run pick up what a missed one would have: only the latest matters.
  catchup: { mode: 'latest', windowHours: 1 },
  process: async (ctx) => {
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    let extracted = 0;
    try {
      const summary = await loadTrades({
        db: ctx.db,
        sourceDb: ctx.sourceDb,
        tz: ctx.config.exchangeTz,
        runPartition: ctx.partition,
        batchSize: ctx.payload.batchSize ?? DEFAULT_BATCH_SIZE,
        ...(ctx.payload.maxBatches !== undefined ? { maxBatches: ctx.payload.maxBatches } : {}),
        signal: ctx.signal,
        logger: ctx.logger,
        onBatch: async (batch, totals) => {
          extracted = totals.extracted;
          ctx.metrics.etlRows.inc({ stage: 'extracted' }, batch.extracted);
          ctx.metrics.etlRows.inc({ stage: 'loaded' }, batch.loaded);
          ctx.metrics.etlRows.inc({ stage: 'rejected' }, batch.counts.rejected + batch.counts.removed);
          if (batch.counts.rejected + batch.counts.removed > 0) {
            ctx.metrics.etlErrors.inc({ kind: 'rejected' }, batch.counts.rejected + batch.counts.removed);
          }
          await ctx.progress({ batches: totals.batches, extracted: totals.extracted, loaded: totals.loaded, rejected: totals.rejected });
        },
      });
      let rollups: string | null = null;
      // Also when this run changed nothing: an earlier one may have died between commit and enqueue.
      if (summary.rollupPartitions > 0 || (await hasPendingRollups(ctx.db))) {
        // Named by this run's job id: a forced re-run of the partition has an id of its own, and
        // its rollups must not be handed the first run's finished job (or its done partition).
        rollups = await ctx.enqueue(
          'build-rollups',
          { pending: true, trigger: ctx.jobId },
          { deduplicationId: ROLLUPS_DEDUPLICATION_ID, delayMs: ctx.config.rollupDebounceMs },
        );
      }
      ctx.metrics.etlDuration.observe({ outcome: 'succeeded' }, seconds());
      return {
        extracted: summary.extracted,
        loaded: summary.loaded,
        new: summary.new,
        amended: summary.amended,
        unchanged: summary.unchanged,
        removed: summary.removed,
        rejected: summary.rejected,
        rejects_by_reason: summary.rejectsByReason,
        restated_pairs: summary.restatedPairs,
        restated_fills: summary.restatedFills,
        reassigned: summary.reassigned,
        batches: summary.batches,
        partitions_created: summary.partitionsCreated,
        dimensions: summary.dimensions.filter((d) => d.added + d.changed + d.repointed > 0),
        dates_touched: summary.datesTouched,
        rollup_partitions: summary.rollupPartitions,
        rollups_job: rollups,
        watermark: summary.watermark,
        stopped_early: summary.stoppedEarly,
        phase_ms: Object.fromEntries(Object.entries(summary.phaseMs).map(([phase, ms]) => [phase, Math.round(ms)])),
      };
    } catch (error) {
      ctx.metrics.etlDuration.observe({ outcome: 'failed' }, seconds());
      ctx.metrics.etlErrors.inc({ kind: 'failed' });
      ctx.logger.debug({ extracted }, 'trade-etl failed after extracting rows');
      throw error;
    }
  },
});
