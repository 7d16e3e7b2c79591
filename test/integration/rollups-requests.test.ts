/**
 * Rollup requests that a dimension change leaves, acted on as a full rebuild would:
 *
 *  1. A range restatement ({"from", "to"}, or the nightly {"date"}) takes the pending requests
 *     inside its range with the (date, account) pairs that have facts or daily rows there: the
 *     request an account's new version leaves (the day before it starts, usually a day without
 *     fills) still restates that account's curve under the new version.
 *  2. An instrument's new version (a ticker rename) re-points facts and requests their rollups:
 *     fact_instrument_daily is keyed by the version of each fill; positions by the version in
 *     force each date, marked at its symbol's bars, so the accounts holding it are restated too.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rebuildRollups, type RollupScope } from '../../src/rollups.ts';
import { loadTrades } from '../../src/trade-loader.ts';
import type { Sql } from '../../src/db.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { insertExecutions, seedReference } from '../helpers/oltp.ts';

const TZ = 'America/New_York';
const at = (date: string, time = '15:00:00') => `${date}T${time}Z`;
const load = (sql: Sql) => loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'requests' });
const rebuild = (sql: Sql, scope: RollupScope, asOf?: string) =>
  rebuildRollups({ db: sql, tz: TZ, startingCapital: 100000, scope, ...(asOf ? { asOf } : {}) });

let db: TestDatabase | undefined;
afterEach(async () => {
  await db?.drop();
  db = undefined;
});

describe('rollup requests of dimension changes', () => {
  it("a range rebuild covering an account-version request restates that account's curve under its new version, as a full rebuild does", async () => {
    db = await createTestDatabase();
    await seedReference(db.sql);
    await insertExecutions(db.sql, [
      { execution_id: 1, executed_at: at('2026-03-02'), side: 'BUY', quantity: '100', price: '10' },
      { execution_id: 2, order_id: 300, account_id: 2, instrument_id: 2, executed_at: at('2026-03-04'), side: 'BUY', quantity: '10', price: '50' },
      { execution_id: 3, executed_at: at('2026-03-05'), side: 'SELL', quantity: '20', price: '12' },
    ]);
    await load(db.sql);
    await rebuild(db.sql, { kind: 'full' }, '2026-03-09');
    // Account 2 (last fill 03-04) is renamed on Friday 03-06: the ETL requests (03-05, account 2).
    await db.sql`update oltp.accounts set account_name = 'Beta Prime', updated_at = '2026-03-06T17:00:00Z' where account_id = 2`;
    await load(db.sql);
    expect(await db.sql`select trade_date::text, account_id::int from ops.rollup_requests`).toEqual([{ trade_date: '2026-03-05', account_id: 2 }]);
    // An operator restates 03-05..03-09 (or the nightly run for 03-05 runs again): the request is inside the range.
    await rebuild(db.sql, { kind: 'range', from: '2026-03-05', to: '2026-03-09' });
    const names = (sql: Sql) => sql`
      select e.date::text, d.account_name from warehouse.equity_curve e join warehouse.dim_account d using (account_key)
      where e.account_id = 2 order by e.date`;
    const afterRange = await names(db.sql);
    await rebuild(db.sql, { kind: 'full' });
    const afterFull = await names(db.sql);
    expect(afterFull).toEqual([
      { date: '2026-03-04', account_name: 'Beta' },
      { date: '2026-03-05', account_name: 'Beta' },
      { date: '2026-03-06', account_name: 'Beta Prime' },
      { date: '2026-03-09', account_name: 'Beta Prime' },
    ]);
    expect(afterRange).toEqual(afterFull);
  });

  it('an instrument version change (a ticker rename) restates fact_instrument_daily and the positions as a full rebuild would', async () => {
    db = await createTestDatabase();
    await seedReference(db.sql);
    await insertExecutions(db.sql, [
      { execution_id: 1, executed_at: at('2026-03-02'), side: 'BUY', quantity: '100', price: '10' },
      { execution_id: 2, executed_at: at('2026-03-04'), side: 'SELL', quantity: '50', price: '11' },
    ]);
    // Bars are fetched under the symbol the instrument has now.
    await db.sql`insert into market.bars values ('AAPX', '1d', '2026-03-05 00:00:00-05', 11, 12, 10, 11.5, 1000, 'test')`;
    await load(db.sql);
    await rebuild(db.sql, { kind: 'full' }, '2026-03-06');
    // AAPL becomes AAPX on 03-03: the 03-04 fill is re-pointed to the new version.
    await db.sql`update oltp.instruments set symbol = 'AAPX', updated_at = '2026-03-03T12:00:00Z' where instrument_id = 1`;
    const summary = await load(db.sql);
    expect(summary.dimensions.find((d) => d.dimension === 'warehouse.dim_instrument')).toMatchObject({ changed: 1, repointed: 1 });
    await rebuild(db.sql, { kind: 'pending' });
    const read = async (sql: Sql) => ({
      instrumentDaily: await sql`
        select i.trade_date::text, d.symbol, i.trade_count from warehouse.fact_instrument_daily i join warehouse.dim_instrument d using (instrument_key)
        order by 1`,
      positions: await sql`
        select p.trade_date::text, d.symbol, p.quantity::float8, p.close_price::float8
        from warehouse.fact_positions_daily p join warehouse.dim_instrument d using (instrument_key) order by 1`,
    });
    const incremental = await read(db.sql);
    await rebuild(db.sql, { kind: 'full' });
    const full = await read(db.sql);
    expect(full.instrumentDaily).toEqual([
      { trade_date: '2026-03-02', symbol: 'AAPL', trade_count: 1 },
      { trade_date: '2026-03-04', symbol: 'AAPX', trade_count: 1 },
    ]);
    expect(full.positions).toContainEqual({ trade_date: '2026-03-05', symbol: 'AAPX', quantity: 50, close_price: 11.5 });
    expect(incremental).toEqual(full);
  });

  it('a position held through a ticker rename, with no fill after it, is the new symbol and marked at its bars from the rename on', async () => {
    db = await createTestDatabase();
    await seedReference(db.sql);
    await insertExecutions(db.sql, [{ execution_id: 1, executed_at: at('2026-03-02'), side: 'BUY', quantity: '100', price: '10' }]);
    // Closes under the old ticker up to the rename, under the new one after it (as a provider serves them).
    await db.sql`
      insert into market.bars values
        ('AAPL', '1d', '2026-03-02 00:00:00-05', 10, 10, 10, 10.1, 1000, 'test'),
        ('AAPL', '1d', '2026-03-03 00:00:00-05', 10, 10, 10, 10.2, 1000, 'test'),
        ('AAPX', '1d', '2026-03-04 00:00:00-05', 10, 10, 10, 10.4, 1000, 'test'),
        ('AAPX', '1d', '2026-03-05 00:00:00-05', 10, 10, 10, 10.5, 1000, 'test')`;
    await load(db.sql);
    await rebuild(db.sql, { kind: 'full' }, '2026-03-05');
    // AAPL becomes AAPX at midnight New York on 03-04, seen by the ETL after the rollups were built.
    await db.sql`update oltp.instruments set symbol = 'AAPX', updated_at = '2026-03-04T05:00:00Z' where instrument_id = 1`;
    await load(db.sql);
    await rebuild(db.sql, { kind: 'pending' });
    const positions = (sql: Sql) => sql`
      select p.trade_date::text, d.symbol, p.close_price::float8
      from warehouse.fact_positions_daily p join warehouse.dim_instrument d using (instrument_key) order by 1`;
    const incremental = await positions(db.sql);
    await rebuild(db.sql, { kind: 'full' });
    expect(await positions(db.sql)).toEqual([
      { trade_date: '2026-03-02', symbol: 'AAPL', close_price: 10.1 },
      { trade_date: '2026-03-03', symbol: 'AAPL', close_price: 10.2 },
      { trade_date: '2026-03-04', symbol: 'AAPX', close_price: 10.4 },
      { trade_date: '2026-03-05', symbol: 'AAPX', close_price: 10.5 },
    ]);
    expect(incremental).toEqual(await positions(db.sql));
  });
});
