/**
 * maintain-partitions: creates the coming months' warehouse.fact_trades partitions ahead of
 * time, and extends warehouse.dim_date through the end of next year, so loads never wait on
 * DDL in the common case (the ETL still creates any month it meets). Partition: the UTC date
 * of the tick. Creating what exists is a no-op, so a rerun is harmless. A month is created as its
 * own table and attached (sql/011), which never waits for the ETL's reads and writes of
 * fact_trades.
 */
import { z } from 'zod';
import { tickDate } from '../src/cron.ts';
import { basePayload, defineJob, scheduledInstant } from '../src/job-definition.ts';
import { ensureDimDates } from '../src/queries/dimensions.ts';
import { ensurePartitions } from '../src/queries/trades.ts';

const payload = basePayload.extend({
  /** Months after the current one to create. */
  monthsAhead: z.number().int().min(0).max(36).optional(),
});

/** @defaultValue 3 */
export const DEFAULT_MONTHS_AHEAD = 3;

/** First days of the month of `date` and of the `ahead` months after it. */
export function monthsFrom(date: string, ahead: number): string[] {
  const [year, month] = date.split('-').map(Number) as [number, number];
  return Array.from({ length: ahead + 1 }, (_, i) => {
    const index = year * 12 + (month - 1) + i;
    return `${String(Math.floor(index / 12)).padStart(4, '0')}-${String((index % 12) + 1).padStart(2, '0')}-01`;
  });
}

export const maintainPartitions = defineJob({
  name: 'maintain-partitions',
  queue: 'maintenance',
  description: 'Creates the next months of fact partitions and dim_date years ahead of time',
  payload,
  schedule: { cron: '15 0 * * *', tz: 'UTC', calendar: 'all', overlap: 'skip' },
  partition: (p) => tickDate(scheduledInstant(p), 'UTC'),
  catchup: { mode: 'latest', windowHours: 48 },
  process: async (ctx) => {
    const today = ctx.partition;
    const months = monthsFrom(today, ctx.payload.monthsAhead ?? DEFAULT_MONTHS_AHEAD);
    const nextYearEnd = `${Number(today.slice(0, 4)) + 1}-12-31`;
    // Two short transactions, partitions first. The partition advisory lock is held to the end
    // of its transaction, and a trade ETL batch that inserted dim_date rows waits for that lock
    // to create a month: were the dates added under it, they could wait on the batch's rows.
    const created = await ctx.db.begin((tx) => ensurePartitions(tx, months));
    const datesAdded = await ctx.db.begin((tx) => ensureDimDates(tx, today, nextYearEnd));
    ctx.logger.info({ created, datesAdded }, 'partitions and dates ensured');
    return { months_checked: months, partitions_created: created, dim_dates_added: datesAdded };
  },
});
