/**
 * `bullpen demo` as a user runs it, and the decision `bullpen start` makes about seeding the
 * demo history (embedded default with an empty oltp only).
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { loadConfig } from '../../src/config.ts';
import type { Sql } from '../../src/db.ts';
import { seedDemoIfEmbeddedAndEmpty, seedDemoIfEmpty } from '../../src/demo/seed-if-empty.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { spawnNode } from '../helpers/processes.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const NOW = new Date('2026-03-20T14:00:00Z');

async function countRows(sql: Sql, table: 'oltp.executions' | 'warehouse.fact_trades' | 'ops.etl_rejects' | 'warehouse.equity_curve' | 'warehouse.performance_metrics' | 'ops.reports'): Promise<number> {
  const [row] = await sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table}`);
  return row?.n ?? 0;
}

describe('bullpen demo', () => {
  let rt: TestRuntime;

  beforeAll(async () => {
    rt = await createTestRuntime('demo', JOBS);
  });

  afterAll(async () => {
    await rt?.close();
  });

  async function bullpen(args: string[], env: Record<string, string> = {}) {
    const child = spawnNode('bin/bullpen.js', args, { ...rt.env, ...env });
    const { code } = await child.exited;
    return { code, output: child.output() };
  }

  it('seeds an empty oltp, runs trade-etl and build-rollups, and says where to look', async () => {
    const { code, output } = await bullpen(['demo', '--days', '5']);
    expect(code, output).toBe(0);

    const executions = await countRows(rt.db.sql, 'oltp.executions');
    const trades = await countRows(rt.db.sql, 'warehouse.fact_trades');
    const rejects = await countRows(rt.db.sql, 'ops.etl_rejects');
    expect(executions).toBeGreaterThan(0);
    expect(trades).toBeGreaterThan(0);
    expect(rejects).toBeGreaterThan(0);
    expect(trades + rejects).toBe(executions);

    expect(output).toContain('seeded 5 trading days of demo history into oltp');
    expect(output).toMatch(new RegExp(`10 accounts, 46 instruments, 5 strategies, \\d+ orders, ${executions} executions`));
    expect(output).toMatch(/planted: \d+ bad rows/);
    expect(output).toContain(`trade-etl succeeded: extracted ${executions}, loaded ${trades}`);
    expect(output).toMatch(new RegExp(`rejected ${rejects}\\b`));
    expect(output).toMatch(/rejected \d+ × \w+/);
    expect(output).toMatch(/build-rollups succeeded: rebuilt \d+ \(date, account\) partitions/);
    expect(await countRows(rt.db.sql, 'warehouse.equity_curve')).toBeGreaterThan(0);
    expect(await countRows(rt.db.sql, 'warehouse.performance_metrics')).toBe(4 * (await countRows(rt.db.sql, 'warehouse.equity_curve')));
    expect(output).toMatch(/nightly-report succeeded: \d{4}-\d{2}-\d{2}, 10 accounts, \d+ trades, firm net PnL -?[\d.]+/);
    expect(await countRows(rt.db.sql, 'ops.reports')).toBe(1);
    expect(output).toMatch(/Bull Board: http:\/\/127\.0\.0\.1:\d+\/admin\/queues/);
    expect(output).toContain('from warehouse.fact_trades t');
    expect(output).not.toContain(':***@'); // the test database has no password to redact
    expect(output).toContain(rt.db.name);
  });

  it('a second run does not seed again, says --days is ignored, and still exits 0', async () => {
    const before = await countRows(rt.db.sql, 'oltp.executions');
    const { code, output } = await bullpen(['demo', '--days', '7']);
    expect(code, output).toBe(0);
    expect(output).toContain('oltp already holds rows (oltp.accounts, oltp.executions, oltp.instruments, oltp.orders, oltp.strategies): not seeding');
    expect(output).toContain('--days 7 is ignored');
    expect(output).not.toContain('seeded');
    expect(output).toContain('trade-etl succeeded');
    expect(output).toMatch(/build-rollups succeeded: (rebuilt|nothing was stale)/);
    expect(await countRows(rt.db.sql, 'oltp.executions')).toBe(before);
  });

  it('writes nothing into an oltp holding reference data but no executions, even where the demo’s ids collide', async () => {
    const db = await createTestDatabase();
    const prefix = createTestPrefix('demo-accounts');
    try {
      // A source with its accounts loaded but no fills yet; the demo's accounts are 101–110.
      await db.sql`insert into oltp.accounts (account_id, account_number, account_name) values (101, 'REAL-101', 'A real account')`;
      const { code, output } = await bullpen(['demo', '--days', '2'], { DATABASE_URL: db.url, BULLPEN_PREFIX: prefix });
      expect(code, output).toBe(0);
      expect(output).toContain('oltp already holds rows (oltp.accounts): not seeding');
      expect(output).toContain('--days 2 is ignored');
      expect(output).not.toMatch(/^\s+at /m);
      const [counts] = await db.sql<{ accounts: number; instruments: number; strategies: number; orders: number; executions: number }[]>`
        select (select count(*)::int from oltp.accounts) as accounts, (select count(*)::int from oltp.instruments) as instruments,
               (select count(*)::int from oltp.strategies) as strategies, (select count(*)::int from oltp.orders) as orders,
               (select count(*)::int from oltp.executions) as executions`;
      expect(counts).toEqual({ accounts: 1, instruments: 0, strategies: 0, orders: 0, executions: 0 });
    } finally {
      await db.drop();
      await cleanupPrefix(TEST_REDIS_URL, prefix);
    }
  });

  it('refuses a bad --days', async () => {
    const { code, output } = await bullpen(['demo', '--days', 'many']);
    expect(code).not.toBe(0);
    expect(output).toContain('must be a whole number from 1 to 1000');
  });
});

describe('seeding at start (seedDemoIfEmbeddedAndEmpty)', () => {
  let db: TestDatabase;
  let logLines: string[];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(chunk.toString());
        done();
      },
    }),
  );

  beforeEach(async () => {
    db = await createTestDatabase();
    logLines = [];
  });

  afterEach(async () => {
    await db?.drop();
  });

  it('on the embedded default with an empty oltp, seeds and logs one info line with the counts', async () => {
    const seeded = await seedDemoIfEmbeddedAndEmpty({ config: loadConfig({}), sourceDb: db.sql, logger }, { days: 5, now: NOW });
    expect(seeded?.executions).toBeGreaterThan(0);
    expect(await countRows(db.sql, 'oltp.executions')).toBe(seeded?.executions);
    expect(logLines).toHaveLength(1);
    expect(JSON.parse(logLines[0]!)).toMatchObject({ level: 30, executions: seeded?.executions, accounts: 10, msg: expect.stringContaining('seeded 5 trading days') });
  });

  it('with DATABASE_URL set, never seeds, even an empty oltp', async () => {
    expect(await seedDemoIfEmbeddedAndEmpty({ config: loadConfig({ DATABASE_URL: db.url }), sourceDb: db.sql, logger }, { days: 5, now: NOW })).toBeUndefined();
    expect(await countRows(db.sql, 'oltp.executions')).toBe(0);
    expect(logLines).toHaveLength(0);
  });

  it('with only SOURCE_DATABASE_URL set, never seeds (someone else’s OLTP)', async () => {
    expect(await seedDemoIfEmbeddedAndEmpty({ config: loadConfig({ SOURCE_DATABASE_URL: db.url }), sourceDb: db.sql, logger }, { days: 5, now: NOW })).toBeUndefined();
    expect(await countRows(db.sql, 'oltp.executions')).toBe(0);
  });

  it('on the embedded default with a non-empty oltp, does not seed', async () => {
    await seedDemoIfEmpty(db.sql, { days: 5, now: NOW });
    const before = await countRows(db.sql, 'oltp.executions');
    expect(await seedDemoIfEmbeddedAndEmpty({ config: loadConfig({}), sourceDb: db.sql, logger }, { days: 5, now: NOW })).toBeUndefined();
    expect(await countRows(db.sql, 'oltp.executions')).toBe(before);
    expect(logLines).toHaveLength(0);
  });

  it('on the embedded default with accounts but no executions, does not seed', async () => {
    await db.sql`insert into oltp.accounts (account_id, account_number) values (101, 'REAL-101')`;
    expect(await seedDemoIfEmbeddedAndEmpty({ config: loadConfig({}), sourceDb: db.sql, logger }, { days: 5, now: NOW })).toBeUndefined();
    expect(await countRows(db.sql, 'oltp.executions')).toBe(0);
    expect(logLines).toHaveLength(0);
  });

  it('two processes starting together seed once', async () => {
    const results = await Promise.all([seedDemoIfEmpty(db.sql, { days: 5, now: NOW }), seedDemoIfEmpty(db.sql, { days: 5, now: NOW })]);
    expect(results.filter((r) => r !== undefined)).toHaveLength(1);
    expect(await countRows(db.sql, 'oltp.executions')).toBe(results.find((r) => r !== undefined)?.executions);
  });
});
