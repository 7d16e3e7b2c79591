/**
 * Fills loaded while their order had no strategy, once the order's strategy appears: the
 * source row is the same execution. A rerun after the reassign pass moved the fact finds it
 * unchanged (its hash was taken with no strategy), and a rejected fill keeps its one reject
 * (README: reported once; a retried reject takes the new reason) although its raw row now
 * carries the order's strategy.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadTrades, type LoadTradesOptions } from '../../src/trade-loader.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { insertExecutions, loadFacts, seedReference } from '../helpers/oltp.ts';

const NOW = new Date('2026-11-20T21:00:00Z');
let db: TestDatabase;
beforeEach(async () => {
  db = await createTestDatabase();
  await seedReference(db.sql);
});
afterEach(async () => {
  await db.drop();
});
function load(extra: Partial<LoadTradesOptions> = {}) {
  return loadTrades({ db: db.sql, sourceDb: db.sql, tz: 'America/New_York', runPartition: 'test', now: () => NOW, ...extra });
}

const addOrder999 = () => db.sql`insert into oltp.orders (order_id, account_id, instrument_id, strategy_id) values (999, 1, 1, 2)`;
const openRejects = async () =>
  (await db.sql`select source_key, reason from ops.etl_rejects where resolved_at is null order by reject_id`).map((r) => [r.source_key, r.reason]);

describe('reassigned facts and reruns', () => {
  it('a reset-watermark rerun after a reassign finds the fill unchanged and writes nothing', async () => {
    await insertExecutions(db.sql, [
      { execution_id: 1, order_id: 999, side: 'BUY', quantity: '10', price: '10', executed_at: '2026-03-02T15:00:00Z' },
      { execution_id: 2, order_id: 999, side: 'SELL', quantity: '10', price: '12', executed_at: '2026-03-03T15:00:00Z' },
    ]);
    await load();
    // The order lands at the source after its fills; the next run moves them to its strategy.
    await db.sql`insert into oltp.orders (order_id, account_id, instrument_id, strategy_id) values (999, 1, 1, 2)`;
    expect(await load()).toMatchObject({ reassigned: 2 });
    expect((await loadFacts(db.sql)).map((f) => f.strategy_name)).toEqual(['mean-reversion', 'mean-reversion']);
    await db.sql`delete from ops.rollup_requests`;

    // Nothing changed at the source: a rerun over the same window must find both rows unchanged.
    await db.sql`delete from ops.etl_watermarks`;
    const rerun = await load();
    expect({ amended: rerun.amended, unchanged: rerun.unchanged, rollupPartitions: rerun.rollupPartitions }).toEqual({
      amended: 0,
      unchanged: 2,
      rollupPartitions: 0,
    });
    expect(await db.sql`select count(*)::int as n from ops.etl_amendments`).toEqual([{ n: 0 }]);
  });
});

describe('rejects of fills whose order appears later', () => {
  it('reports a row ingested at +infinity once, even after its order appears', async () => {
    await insertExecutions(db.sql, [{ execution_id: 1, order_id: 999, executed_at: '2026-03-02T15:00:00Z' }]);
    await db.sql`update oltp.executions set ingested_at = 'infinity' where execution_id = 1`;
    expect(await load()).toMatchObject({ rejected: 1, rejectsByReason: { ingested_at_not_finite: 1 } });
    await addOrder999();
    const second = await load();
    expect(second.rejected).toBe(0);
    expect(await db.sql`select count(*)::int as n from ops.etl_rejects`).toEqual([{ n: 1 }]);
  });

  it('a retried account_unknown row that now fails on its fees keeps its one reject, even after its order appears', async () => {
    await insertExecutions(db.sql, [{ execution_id: 2, account_id: 3, order_id: 999, fees: 'NaN', executed_at: '2026-03-02T15:00:00Z' }]);
    expect(await load()).toMatchObject({ rejected: 1, rejectsByReason: { account_unknown: 1 } });
    await db.sql`
      insert into oltp.accounts (account_id, account_number, account_name, account_type, broker, currency, risk_tier, updated_at)
      values (3, 'ACC-003', 'Gamma', 'cash', 'IBKR', 'USD', 'low', '2026-03-03T00:00:00Z')`;
    await addOrder999();
    // As the existing suite expects without the order: same row, new reason, not a new reject.
    expect(await load()).toMatchObject({ extracted: 0, rejected: 0 });
    expect(await openRejects()).toEqual([['2', 'fees_not_a_number']]);
    expect(await db.sql`select count(*)::int as n from ops.etl_rejects`).toEqual([{ n: 1 }]);
  });
});
