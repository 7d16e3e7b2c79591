import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOltpEmpty, listOltpTablesWithRows, seedDemoHistory } from '../../src/demo/seed.ts';
import { generateDemoHistory, type DemoHistory, type ExecutionRow } from '../../src/demo/synthetic.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

const NOW = new Date('2026-03-20T14:00:00Z');

let db: TestDatabase;
let history: DemoHistory;

beforeAll(async () => {
  db = await createTestDatabase();
  // 25 days: more than one 5,000-row chunk of executions.
  history = generateDemoHistory({ days: 25, now: NOW });
});

afterAll(async () => {
  await db?.drop();
});

function badRow(kind: DemoHistory['manifest']['badExecutions'][number]['kind']): ExecutionRow {
  const id = history.manifest.badExecutions.find((b) => b.kind === kind)?.execution_id;
  const row = history.executions.find((e) => e.execution_id === id);
  if (row === undefined) throw new Error(`no ${kind} row`);
  return row;
}

describe('seedDemoHistory', () => {
  it('fills an empty oltp with every row of the history in one go', async () => {
    expect(await isOltpEmpty(db.sql)).toBe(true);

    const counts = await seedDemoHistory(db.sql, history);

    const expected = {
      accounts: history.accounts.length,
      instruments: history.instruments.length,
      strategies: history.strategies.length,
      orders: history.orders.length,
      executions: history.executions.length,
    };
    expect(counts).toEqual(expected);
    expect(history.executions.length).toBeGreaterThan(5_000);
    const [stored] = await db.sql<Array<Record<keyof typeof expected, number>>>`
      select (select count(*)::int from oltp.accounts) as accounts,
             (select count(*)::int from oltp.instruments) as instruments,
             (select count(*)::int from oltp.strategies) as strategies,
             (select count(*)::int from oltp.orders) as orders,
             (select count(*)::int from oltp.executions) as executions`;
    expect(stored).toEqual(expected);
    expect(await isOltpEmpty(db.sql)).toBe(false);
  });

  it('stores the NaN quantity as numeric NaN and the other bad values as written', async () => {
    const nan = badRow('quantity_nan');
    const [row] = await db.sql<Array<{ is_nan: boolean; type: string }>>`
      select quantity = 'NaN'::numeric as is_nan, pg_typeof(quantity)::text as type
      from oltp.executions where execution_id = ${nan.execution_id}`;
    expect(row).toEqual({ is_nan: true, type: 'numeric' });

    const ids = ['quantity_null', 'price_null', 'executed_null', 'account_null', 'side_lowercase'].map((k) => badRow(k as never).execution_id);
    const stored = await db.sql<Array<{ execution_id: string; quantity: string | null; price: string | null; executed_at: Date | null; account_id: string | null; side: string }>>`
      select execution_id, quantity, price, executed_at, account_id, side from oltp.executions
      where execution_id = any(${ids}::bigint[]) order by execution_id`;
    expect(stored.find((r) => Number(r.execution_id) === ids[0])?.quantity).toBeNull();
    expect(stored.find((r) => Number(r.execution_id) === ids[1])?.price).toBeNull();
    expect(stored.find((r) => Number(r.execution_id) === ids[2])?.executed_at).toBeNull();
    expect(stored.find((r) => Number(r.execution_id) === ids[3])?.account_id).toBeNull();
    expect(stored.find((r) => Number(r.execution_id) === ids[4])?.side).toBe('buy');
  });

  it('keeps exact decimals, microsecond timestamps and text with quotes and commas', async () => {
    const sample = history.executions.filter((e) => /\.\d{4}$/.test(e.price ?? '') && (e.fees ?? '').startsWith('-')).slice(0, 5);
    expect(sample.length).toBeGreaterThan(0);
    const stored = await db.sql<Array<{ execution_id: string; price: string; fees: string; commission: string; executed_at: string; ingested_at: string }>>`
      select execution_id, price::text as price, fees::text as fees, commission::text as commission,
             to_char(executed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as executed_at,
             to_char(ingested_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as ingested_at
      from oltp.executions where execution_id = any(${sample.map((e) => e.execution_id)}::bigint[]) order by execution_id`;
    expect(stored.map((r) => ({ ...r, execution_id: Number(r.execution_id) }))).toEqual(
      sample.map((e) => ({ execution_id: e.execution_id, price: e.price, fees: e.fees, commission: e.commission, executed_at: e.executed_at, ingested_at: e.ingested_at })),
    );

    const names = await db.sql<Array<{ full_name: string }>>`select full_name from oltp.instruments where symbol in ('MCD', 'QQQ') order by symbol`;
    expect(names.map((n) => n.full_name)).toEqual(["McDonald's Corporation", 'Invesco QQQ Trust, Series 1']);
    const [instrument] = await db.sql<Array<{ tick_size: string; lot_size: number; is_active: boolean }>>`
      select tick_size, lot_size, is_active from oltp.instruments where symbol = 'SPY'`;
    expect(instrument).toEqual({ tick_size: '0.01', lot_size: 1, is_active: true });
  });

  it('writes nothing when a later table collides with rows already there', async () => {
    // New accounts insert fine; the executions then collide and the whole seed rolls back.
    const clashing = { ...history, accounts: history.accounts.map((a) => ({ ...a, account_id: a.account_id + 1_000 })), instruments: [], strategies: [], orders: [] };

    await expect(seedDemoHistory(db.sql, clashing)).rejects.toThrow(/duplicate key/);

    const [row] = await db.sql<Array<{ n: number }>>`select count(*)::int as n from oltp.accounts`;
    expect(row?.n).toBe(history.accounts.length);
  });
});

describe('isOltpEmpty', () => {
  let empty: TestDatabase;

  beforeAll(async () => {
    empty = await createTestDatabase();
  });

  afterAll(async () => {
    await empty?.drop();
  });

  it.each([
    ['accounts', 'account_id'],
    ['instruments', 'instrument_id'],
    ['strategies', 'strategy_id'],
    ['orders', 'order_id'],
    ['executions', 'execution_id'],
  ])('a row in oltp.%s alone makes oltp non-empty', async (table, key) => {
    expect(await isOltpEmpty(empty.sql)).toBe(true);
    await empty.sql.unsafe(`insert into oltp.${table} (${key}) values (1)`);
    try {
      expect(await listOltpTablesWithRows(empty.sql)).toEqual([`oltp.${table}`]);
      expect(await isOltpEmpty(empty.sql)).toBe(false);
    } finally {
      await empty.sql.unsafe(`delete from oltp.${table}`);
    }
  });

  it('counts a table of the source the demo does not write', async () => {
    await empty.sql`create table oltp.positions (position_id bigint primary key)`;
    await empty.sql`insert into oltp.positions values (1)`;
    try {
      expect(await listOltpTablesWithRows(empty.sql)).toEqual(['oltp.positions']);
    } finally {
      await empty.sql`drop table oltp.positions`;
    }
  });
});
