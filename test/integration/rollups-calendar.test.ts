/**
 * Rollups where the calendar matters (New York exchange time zone): a coin's positions priced
 * at the 1d bar of their own (UTC) date, sessions of time buckets on a half day and a holiday,
 * and the nightly build-rollups run restating the date its partition names in another zone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRollups } from '../../jobs/build-rollups.ts';
import type { Config } from '../../src/config.ts';
import type { Sql } from '../../src/db.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { rebuildRollups } from '../../src/rollups.ts';
import { loadTrades } from '../../src/trade-loader.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { insertExecutions, seedReference } from '../helpers/oltp.ts';

const TZ = 'America/New_York';
const load = (sql: Sql) => loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'calendar', now: () => new Date('2026-11-21T12:00:00Z') });
const rebuild = (sql: Sql, asOf: string) => rebuildRollups({ db: sql, tz: TZ, startingCapital: 100000, scope: { kind: 'full' }, asOf });

let db: TestDatabase;

async function seedFixture(sql: Sql): Promise<void> {
  await seedReference(sql);
  await sql`
    insert into oltp.instruments (instrument_id, symbol, exchange, instrument_type, full_name, sector, industry, currency, tick_size, lot_size, is_active, updated_at)
    values (4, 'BTC-USD', 'COINBASE', 'crypto', 'Bitcoin', null, null, 'USD', 0.01, 0.0001, true, '2020-01-01T00:00:00Z')`;
  await insertExecutions(sql, [
    // A crypto position opened Tuesday 2026-03-10 11:00 New York and held.
    { execution_id: 1, account_id: 1, order_id: 100, instrument_id: 4, executed_at: '2026-03-10T15:00:00Z', side: 'BUY', quantity: '1', price: '60000' },
    // Friday 2025-11-28, the day after Thanksgiving: NYSE closes at 13:00. This fill is at 14:00 EST.
    { execution_id: 2, account_id: 2, order_id: 300, instrument_id: 2, executed_at: '2025-11-28T19:00:00Z', side: 'BUY', quantity: '1', price: '50' },
    // Thanksgiving 2025-11-27 (NYSE closed all day), 10:00 EST.
    { execution_id: 3, account_id: 2, order_id: 300, instrument_id: 2, executed_at: '2025-11-27T15:00:00Z', side: 'BUY', quantity: '1', price: '50' },
  ]);
  // BTC-USD 1d bars as every source stamps a 24x7 series (timeframes.ts: a coin's day is the UTC
  // day, its 1d bar opens at 00:00 UTC of that date): the bar of 03-10 closes 61,000, of 03-11 65,000.
  await sql`insert into market.bars values
    ('BTC-USD', '1d', '2026-03-10 00:00:00+00', 60000, 62000, 59000, 61000, 100, 'test'),
    ('BTC-USD', '1d', '2026-03-11 00:00:00+00', 61000, 66000, 60000, 65000, 100, 'test')`;
}

beforeAll(async () => {
  db = await createTestDatabase();
  await seedFixture(db.sql);
  await load(db.sql);
  await rebuild(db.sql, '2026-11-20');
});

afterAll(async () => {
  await db?.drop();
});

describe('positions: bar matching', () => {
  it('marks a 24x7 (crypto) position at the 1d bar of its own date, not at the next day\'s close', async () => {
    const rows = await db.sql<{ trade_date: string; close_price: string | null }[]>`
      select trade_date::text, close_price::text from warehouse.fact_positions_daily
      where instrument_id = 4 and trade_date in ('2026-03-10', '2026-03-11') order by trade_date`;
    // 2026-03-10 is marked with the close of the 2026-03-10 bar (61,000, known by 20:00 New York
    // that day), not with the 2026-03-11 bar's close (65,000, a price from the following day).
    expect(rows).toEqual([
      { trade_date: '2026-03-10', close_price: '61000' },
      { trade_date: '2026-03-11', close_price: '65000' },
    ]);
  });

  it("marks a coin's later position at the bar of its UTC date when that bar arrives after the rollup", async () => {
    const other = await createTestDatabase();
    try {
      await seedFixture(other.sql);
      await load(other.sql);
      await rebuild(other.sql, '2026-03-12');
      await other.sql`insert into market.bars values ('BTC-USD', '1d', '2026-03-12 00:00:00+00', 65000, 70000, 64000, 69000, 100, 'test')`;
      // A pending run with nothing to rebuild marks the last days' positions.
      await rebuildRollups({ db: other.sql, tz: TZ, startingCapital: 100000, scope: { kind: 'pending' } });
      const rows = await other.sql`
        select trade_date::text, close_price::text from warehouse.fact_positions_daily where instrument_id = 4 and trade_date >= '2026-03-10' order by trade_date`;
      expect(rows).toEqual([
        { trade_date: '2026-03-10', close_price: '61000' },
        { trade_date: '2026-03-11', close_price: '65000' },
        { trade_date: '2026-03-12', close_price: '69000' },
      ]);
    } finally {
      await other.drop();
    }
  });
});

describe('time buckets: market session', () => {
  const sessionOf = async (date: string) => {
    const [row] = await db.sql<{ market_session: string }[]>`
      select market_session from warehouse.fact_performance_buckets where trade_date = ${date}::date and account_id = 2`;
    return row?.market_session;
  };

  it('a fill at 14:00 on a 13:00 early-close day is after the regular session', async () => {
    // 2025-11-28 is an early close in dim_date (calendar.ts); the bucket still says 'regular'.
    expect(await sessionOf('2025-11-28')).toBe('after-hours');
  });

  it('a fill at 10:00 on an NYSE holiday is not in a regular session (there is none that day)', async () => {
    expect(await sessionOf('2025-11-27')).toBe('overnight');
  });
});

describe('build-rollups nightly: partition vs the date it rebuilds', () => {
  it('with EXCHANGE_TZ=Europe/London the nightly run rebuilds the date its partition names', async () => {
    const other = await createTestDatabase();
    try {
      // The nightly tick of Friday 2026-11-20, 23:30 New York = Saturday 04:30 London.
      const payload = buildRollups.payload.parse({ scheduledFor: '2026-11-21T04:30:00.000Z' });
      const partition = buildRollups.partition(payload);
      const summary = await buildRollups.process({
        payload,
        partition,
        db: other.sql,
        sourceDb: other.sql,
        config: { exchangeTz: 'Europe/London', startingCapital: 100000 } as Config,
        logger: createLogger({ level: 'silent', pretty: false }),
        metrics: createMetrics({ defaultMetrics: false }),
      } as never);
      // The run recorded as build-rollups@<partition> must be the run of that date.
      expect({ partition, as_of: summary.as_of }).toEqual({ partition, as_of: partition });
    } finally {
      await other.drop();
    }
  });
});
