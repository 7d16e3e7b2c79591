/**
 * etl: executions per second through the trade ETL (dimension sync, classification and
 * quarantine, dimension keys as of executed_at, FIFO in TypeScript with exact decimals, the
 * ledger, monthly partitions, facts, positions, rollup requests) loading N executions from
 * `oltp` into an empty warehouse, against its floor: COPY of the very same fact rows into a
 * bare table shaped like fact_trades with the same indexes, in the same run.
 *
 * Also timed: a rerun over the N already-loaded executions (watermark reset; every row is
 * recognised as unchanged), which should take at most half the cold load's time.
 *
 * The source is generated in SQL (not timed, seeded): 20 accounts × 200 instruments, 5
 * strategies, three fills per order of a random side, 250 weekdays, ~0.1% bad rows.
 *
 * Knobs: BENCH_ROWS (default 1000000), BENCH_RUNS (default 3), BENCH_BATCH (ETL batch size,
 * default the job's), BENCH_DATABASE_URL.
 */
import { createWriteStream, createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createDb, type Sql } from '../src/db.ts';
import { migrate } from '../src/migrate.ts';
import { DEFAULT_BATCH_SIZE, loadTrades } from '../src/trade-loader.ts';
import {
  createBenchDatabase,
  envInt,
  finalLine,
  formatHostLoad,
  formatPeakRss,
  formatRate,
  formatRatio,
  formatTable,
  loadAverage,
  median,
  onCleanup,
  runCleanups,
  timed,
} from './lib.ts';

const ACCOUNTS = 20;
const INSTRUMENTS = 200;
const STRATEGIES = 5;

/** Seeds `oltp` with `rows` executions; `instruments` sets how many instruments the accounts trade. */
export async function seedSource(sql: Sql, rows: number, instruments = INSTRUMENTS): Promise<void> {
  await sql`insert into oltp.accounts select a, 'ACC-' || a, 'Account ' || a, 'margin', 'BENCH', 'USD', 'medium', '2020-01-01' from generate_series(1, ${ACCOUNTS}) a`;
  await sql`
    insert into oltp.instruments
    select i, 'SYM' || i, 'NYSE', 'stock', 'Instrument ' || i, 'Sector ' || (i % 11), 'Industry ' || (i % 40), 'USD', 0.01, 1, true, '2020-01-01'
    from generate_series(1, ${instruments}) i`;
  await sql`insert into oltp.strategies select s, 'strategy-' || s, 'bench', 'medium', 1, true, '2020-01-01' from generate_series(1, ${STRATEGIES}) s`;
  const orders = Math.ceil(rows / 3);
  // Seeded, so every run loads the same data; random sides make each lot queue a random walk.
  await sql.begin(async (tx) => {
    await tx`select setseed(0.42)`;
    await tx`
      insert into oltp.orders
      select o, 1 + floor(random() * ${ACCOUNTS}), 1 + floor(random() * ${instruments}), 1 + o % ${STRATEGIES},
             case when random() < 0.5 then 'BUY' else 'SELL' end, 300, null, '2025-11-01'
      from generate_series(1::bigint, ${orders}) o`;
  });
  // 250 weekdays from 2025-06-02 (all in the past), fills spread evenly over each 09:30–16:00
  // New York session; fills of one order share its account, instrument and side.
  const perDay = Math.ceil(rows / 250);
  await sql`
    insert into oltp.executions
    select e, o.order_id, o.account_id, o.instrument_id, t.executed_at, t.executed_at + interval '1 second',
           o.side,
           case when e % 1000 = 7 then -1 else 1 + (e * 48271) % 200 end,
           round((20 + o.instrument_id * 1.5 + ((e * 16807) % 1000) / 100.0)::numeric, 2),
           round(((1 + (e * 48271) % 200) * 0.0035)::numeric, 4), 0.01, 'REMOVE', 'NYSE',
           t.executed_at + interval '20 milliseconds'
    from generate_series(1::bigint, ${rows}) e
    join oltp.orders o on o.order_id = (e + 2) / 3
    cross join lateral (select (e - 1) / ${perDay} as day, (e - 1) % ${perDay} as slot) d
    cross join lateral (
      select timestamptz '2025-06-02 13:30:00+00'
             + make_interval(days => ((d.day / 5) * 7 + d.day % 5)::int)
             + make_interval(secs => d.slot * 23400.0 / ${perDay}) as executed_at
    ) t`;
  await sql`analyze`;
}

/** The physical limit: COPY of the same fact rows into a plain table with fact_trades' indexes. */
async function copyFloor(sql: Sql, file: string): Promise<{ ms: number; rows: number }> {
  await sql`drop table if exists bench_fact_copy`;
  await sql`create table bench_fact_copy (like warehouse.fact_trades including defaults)`;
  await sql`alter table bench_fact_copy add primary key (trade_date, execution_id)`;
  await sql`create index on bench_fact_copy (account_key, trade_date)`;
  await sql`create index on bench_fact_copy (instrument_key, trade_date)`;
  await sql`create index on bench_fact_copy (strategy_key, trade_date)`;
  const { ms } = await timed(async () => {
    const target = await sql`copy bench_fact_copy from stdin`.writable();
    await pipeline(createReadStream(file), target);
  });
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from bench_fact_copy`;
  return { ms, rows: row?.n ?? 0 };
}

async function resetWarehouse(sql: Sql): Promise<void> {
  await sql`truncate warehouse.fact_trades, warehouse.fact_trade_keys, warehouse.fifo_positions, ops.etl_watermarks, ops.etl_rejects, ops.rollup_requests, ops.etl_amendments`;
  await sql`delete from warehouse.dim_account`;
  await sql`delete from warehouse.dim_instrument`;
  await sql`delete from warehouse.dim_strategy where strategy_key <> 0`;
  const parts = await sql<{ name: string }[]>`
    select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'warehouse.fact_trades'::regclass`;
  for (const p of parts) await sql.unsafe(`drop table warehouse.${p.name}`);
  await sql`vacuum analyze`;
}

export async function run(): Promise<void> {
  const rows = envInt('BENCH_ROWS', 1_000_000);
  const runs = envInt('BENCH_RUNS', 3);
  const batchSize = envInt('BENCH_BATCH', DEFAULT_BATCH_SIZE);
  const loadAtStart = loadAverage();
  const database = await createBenchDatabase();
  const sql = createDb(database.url, { max: 4, applicationName: 'bullpen-bench' });
  onCleanup(() => sql.end({ timeout: 5 }));
  const dir = await mkdtemp(path.join(tmpdir(), 'bullpen-bench-etl-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'facts.copy');
  try {
    await migrate(sql);
    console.log(`etl: generating ${rows.toLocaleString('en-US')} executions in oltp (not timed)…`);
    await seedSource(sql, rows);

    const cold: number[] = [];
    const rerun: number[] = [];
    const floor: number[] = [];
    let loaded = 0;
    let rejected = 0;
    const verbose = (message: string) => {
      if (process.env.BENCH_VERBOSE) console.log(`  ${message}`);
    };
    for (let i = 0; i < runs; i++) {
      verbose('resetting the warehouse');
      await resetWarehouse(sql);
      verbose('cold load');
      const coldRun = await timed(() => loadTrades({ db: sql, sourceDb: sql, tz: 'America/New_York', runPartition: `bench-${i}`, batchSize }));
      loaded = coldRun.result.loaded;
      rejected = coldRun.result.rejected;
      cold.push(coldRun.ms);
      await sql`delete from ops.etl_watermarks`;
      verbose('rerun');
      const again = await timed(() => loadTrades({ db: sql, sourceDb: sql, tz: 'America/New_York', runPartition: `bench-${i}-again`, batchSize }));
      if (again.result.loaded !== 0) throw new Error(`rerun loaded ${again.result.loaded} rows; expected none`);
      rerun.push(again.ms);
      if (i === 0) {
        // A connection of its own, closed after: postgres.js can leave a COPY TO connection unusable (porsager/postgres#499).
        const copier = createDb(database.url, { max: 1, applicationName: 'bullpen-bench-copy' });
        const out = await copier`copy (select * from warehouse.fact_trades) to stdout`.readable();
        await pipeline(out, createWriteStream(file));
        await copier.end({ timeout: 1 });
      }
      verbose('COPY floor');
      const copy = await copyFloor(sql, file);
      floor.push(copy.ms);
      if (process.env.BENCH_VERBOSE) console.log('  phases (ms):', coldRun.result.phaseMs, 'rerun:', again.result.phaseMs);
      console.log(`  run ${i + 1}: cold ${(coldRun.ms / 1000).toFixed(1)} s, rerun ${(again.ms / 1000).toFixed(1)} s, COPY ${(copy.ms / 1000).toFixed(1)} s`);
    }
    const oursRate = rows / (median(cold) / 1000);
    const floorRate = loaded / (median(floor) / 1000);
    const rerunRate = rows / (median(rerun) / 1000);
    console.log(
      formatTable([
        ['', 'executions/s', 'seconds (median)'],
        ['trade ETL, cold load', formatRate(oursRate), (median(cold) / 1000).toFixed(2)],
        ['trade ETL, rerun (all unchanged)', formatRate(rerunRate), (median(rerun) / 1000).toFixed(2)],
        ['COPY into bare fact_trades-shaped table', formatRate(floorRate), (median(floor) / 1000).toFixed(2)],
      ]),
    );
    console.log(`loaded ${loaded.toLocaleString('en-US')}, rejected ${rejected.toLocaleString('en-US')}, batch size ${batchSize.toLocaleString('en-US')}, ${runs} run(s)`);
    console.log(`rerun / cold time: ${formatRatio(median(rerun), median(cold))} (target ≤ 0.50)`);
    console.log(formatHostLoad(loadAtStart));
    console.log(formatPeakRss());
    console.log(finalLine('etl', 'executions', oursRate, floorRate));
  } finally {
    await runCleanups();
  }
}
