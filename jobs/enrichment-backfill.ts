/**
 * enrichment-backfill: a backfill request as a BullMQ flow. Each child is one series (symbol ×
 * timeframe) and works in steps of one chunk (fetch → validate → features → store, committed
 * with its checkpoint), going back on the queue between chunks. Each fetch takes a request from
 * its source's own budget (PostgreSQL, shared by every worker; src/enrichment/source-gate.ts); a
 * source out of budget or answering 429 puts off its own series only, and the other sources'
 * series on the queue go on. The parent runs once every child has ended and closes the request.
 * Partitions: `<backfillId>` (parent) and `<backfillId>.<symbol>.<timeframe>` (child). A rerun
 * continues from the checkpoint in enrichment.backfill_state; a chunk already stored is never
 * fetched again unless the request asked to reprocess it. A 1d chunk marks the positions its bars
 * price (their close was NULL) and asks for the stored nightly reports from the first marked date on again.
 */
import { z } from 'zod';
import { TIMEFRAMES } from '../src/analytics/timeframes.ts';
import { finishBackfill, SYMBOL_PATTERN } from '../src/enrichment/backfills.ts';
import { createProviderRegistry } from '../src/enrichment/providers/index.ts';
import type { MarketDataProvider, ProviderName } from '../src/enrichment/providers/types.ts';
import { runSeriesStep } from '../src/enrichment/series-step.ts';
import { createSourceGate } from '../src/enrichment/source-gate.ts';
import { coerceError } from '../src/errors.ts';
import { basePayload, defineJob } from '../src/job-definition.ts';
import { recordSeriesError } from '../src/queries/enrichment.ts';
import { askForReportRemakes } from '../src/reports/remakes.ts';
import { redactSecrets } from '../src/redact.ts';

const payload = basePayload.extend({
  backfillId: z.uuid({ error: 'must be a backfill id (a UUID)' }),
  symbol: z.string().regex(SYMBOL_PATTERN, 'must be an upper-case symbol').optional(),
  timeframe: z.enum(TIMEFRAMES).optional(),
});

// One registry per configuration (a process has one; tests run several side by side).
const registries = new WeakMap<object, (name: ProviderName) => MarketDataProvider>();

export const enrichmentBackfill = defineJob({
  name: 'enrichment-backfill',
  queue: 'enrichment',
  description: 'Ad-hoc resumable market-data backfill for symbols × timeframes × date range',
  payload: payload.refine((p) => (p.symbol === undefined) === (p.timeframe === undefined), { message: 'symbol and timeframe go together', path: ['timeframe'] }),
  schedule: null,
  partition: (p) => (p.symbol ? `${p.backfillId}.${p.symbol}.${p.timeframe}` : p.backfillId),
  catchup: { mode: 'none' },
  process: async (ctx) => {
    const { backfillId, symbol, timeframe } = ctx.payload;
    if (!symbol || !timeframe) {
      const { summary } = await finishBackfill(ctx.db, backfillId, ctx.jobId);
      ctx.logger.info(summary, `backfill ${String(summary.status)}`);
      return summary;
    }
    let providers = registries.get(ctx.config);
    if (!providers) registries.set(ctx.config, (providers = createProviderRegistry(ctx.config)));
    const outcome = await runSeriesStep(
      {
        db: ctx.db,
        provider: providers,
        logger: ctx.logger,
        retries: ctx.config.enrichmentChunkRetries,
        retryBaseMs: ctx.config.enrichmentRetryBaseMs,
        exchangeTz: ctx.config.exchangeTz,
        signal: ctx.signal,
        onChunk: (outcome) => ctx.metrics.backfillChunks.inc({ outcome }),
        gate: createSourceGate(ctx.db, ctx.config),
        onPositionsMarked: async (from) => {
          const reports = await askForReportRemakes(ctx.db, ctx.enqueue, from);
          if (reports.length > 0) ctx.logger.info({ reports: reports.length, from: reports[0], to: reports.at(-1) }, 'stored reports showing the newly marked positions asked for again');
        },
      },
      { backfillId, symbol, timeframe },
    ).catch(async (thrown: unknown) => {
      // A step that throws (a provider it cannot make, a fetch out of retries, PostgreSQL) ends
      // its series' job should its attempts run out: the request's report must say why, not only
      // that the job failed. A worker shutting down is no error: the job is put back as it was.
      if (!ctx.signal.aborted) {
        const message = redactSecrets(coerceError(thrown).message);
        await recordSeriesError(ctx.db, backfillId, symbol, timeframe, message).catch((err: unknown) =>
          ctx.logger.warn({ err }, "could not record the series' error"),
        );
      }
      throw thrown;
    });
    // This series only: the queue, and the other sources' series on it, go on.
    if (outcome.kind === 'wait') return ctx.requeue(outcome.delayMs);
    if (outcome.kind === 'more') {
      await ctx.progress({ chunksDone: outcome.chunksHandled, chunksTotal: outcome.chunksTotal, barsWritten: outcome.barsWritten });
      // The chunk is handled: the retries it took are its own, the next chunk gets every attempt.
      return ctx.requeue(0, { resetAttempts: true });
    }
    await ctx.progress(100);
    return outcome.summary;
  },
});
