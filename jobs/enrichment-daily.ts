/**
 * enrichment-daily: brings every tracked symbol (market.sector_mapping) up to yesterday as one
 * backfill request. Each symbol starts from the date of its last stored 1d bar (a symbol never
 * enriched from ENRICHMENT_DAILY_LOOKBACK_DAYS back); chunks the ledger already holds are
 * skipped, so only the open chunk is fetched again. Not the day after: a last bar fetched before
 * its session closed is partial, and its chunk (the ledger does not count that day) must be
 * fetched again even when the days that follow fall in the next chunk. Partition: the date it
 * completes (the day before the 01:30 tick). A rerun of a partition finds it recorded and does nothing.
 */
import { z } from 'zod';
import { addCalendarDays, TIMEFRAMES } from '../src/analytics/timeframes.ts';
import { tickDate } from '../src/cron.ts';
import { createBackfill, createContextEnqueuer, loadTrackedAssetClasses, planBackfill } from '../src/enrichment/backfills.ts';
import { basePayload, defineJob, payloadDate, scheduledInstant } from '../src/job-definition.ts';

/** How far back a tracked symbol without any bars is enriched from. */
const LOOKBACK_DAYS = 730;

const payload = basePayload.extend({
  date: payloadDate.optional(),
  timeframes: z.array(z.enum(TIMEFRAMES)).min(1).default(['1d']),
});

export const enrichmentDaily = defineJob({
  name: 'enrichment-daily',
  queue: 'enrichment',
  description: 'Incremental enrichment of every tracked symbol up to yesterday',
  payload,
  schedule: { cron: '30 1 * * *', tz: 'America/New_York', calendar: 'all', overlap: 'skip' },
  partition: (p) => p.date ?? tickDate(scheduledInstant(p), 'America/New_York', -1),
  catchup: { mode: 'latest', windowHours: 72 },
  process: async (ctx) => {
    const to = ctx.partition;
    const tracked = await ctx.db<{ symbol: string; last: string | null }[]>`
      select m.symbol,
             (select max(b.ts at time zone 'America/New_York')::date::text from market.bars b where b.symbol = m.symbol and b.timeframe = '1d') as last
      from market.sector_mapping m order by m.symbol`;
    if (tracked.length === 0) {
      ctx.logger.info('no tracked symbols in market.sector_mapping: nothing to enrich');
      return { symbols: 0, note: 'market.sector_mapping is empty' };
    }
    const starts = new Map(tracked.map((t) => [t.symbol, t.last ?? addCalendarDays(to, -LOOKBACK_DAYS)]));
    const from = [...starts.values()].sort()[0] as string;
    if (from > to) return { symbols: tracked.length, upToDate: true, to };
    const plan = planBackfill(
      { symbols: tracked.map((t) => t.symbol), timeframes: ctx.payload.timeframes, from, to, requested_by: 'enrichment-daily' },
      {
        defaultSource: ctx.config.marketDataSource,
        maxBars: Number.MAX_SAFE_INTEGER,
        now: Date.now(),
        // As `bullpen backfill` and the API plan them: a coin the trading system knows as one is
        // enriched as one even where the universe took the default class.
        assetClasses: await loadTrackedAssetClasses(ctx.db, tracked.map((t) => t.symbol)),
        startBySymbol: starts,
      },
    );
    const created = await createBackfill(
      { db: ctx.db, enqueue: createContextEnqueuer(ctx.enqueueFlow) },
      plan,
    );
    return { backfillId: created.backfillId, symbols: plan.symbols.length, from: plan.from, to: plan.to, chunks: plan.chunksTotal };
  },
});
