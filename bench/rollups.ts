/**
 * rollups: fact rows per second through a full build-rollups rebuild (src/rollups.ts: every
 * rollup table — performance daily, time buckets, instrument daily, equity curve, metrics,
 * positions, months — and the materialized view refresh, timed end to end) against its
 * floor: the seed's single daily-performance statement over the same facts in the same run,
 * one `INSERT … SELECT … FROM warehouse.fact_trades GROUP BY trade_date, account_key,
 * strategy_key … ON CONFLICT DO UPDATE` into a bare table with fact_performance_daily's
 * columns and aggregates (primary key only; truncated before each run, so every run inserts
 * every row), under the session settings rebuildRollups uses (work_mem 128MB, jit off).
 *
 * Each run times two full rebuilds: into emptied rollup tables (the ratio's figure: every row
 * written) and again over the rows that one wrote (each row replaced in one MVCC transaction).
 * Also timed: an incremental rebuild of the last trading date (target: at most 1/50 of the
 * full rebuild), first right after the VACUUM ANALYZE below (PostgreSQL plans its statements
 * anew with the new statistics; in the first run it is also their first use on the connection:
 * postgres.js has PostgreSQL describe each new statement, a round trip each, and parse it) and
 * then three times more, as a worker repeats it after each ETL load; one of the median date of the history (it restates the equity curve,
 * metrics and positions of every day after it, so it is expected to be slower); and the
 * floor's aggregate as a plain SELECT with every row fetched to the client (PostgreSQL may
 * scan in parallel there; INSERT … SELECT never does), shown for reference only.
 * Incremental rebuilds run after a VACUUM ANALYZE of the rollup tables, whose dead rows the full
 * rebuild left: the state autovacuum keeps a live database in.
 *
 * Data (not timed, seeded): bench/etl.ts's source with 20 accounts × 10 instruments (200
 * lot queues, a desk's book) × 5 strategies over 250 weekdays, loaded into the warehouse by
 * the real trade ETL; at 1M rows that is 25,000 date × account × strategy rows. Every
 * account starts with 10,000,000 (warehouse.account_capital): the random walk would wipe
 * out the default 100,000.
 *
 * Knobs: BENCH_ROWS (default 1000000), BENCH_RUNS (default 3), BENCH_DATABASE_URL.
 */
import { createDb, type Sql } from '../src/db.ts';
import { migrate } from '../src/migrate.ts';
import { rebuildRollups, type RollupSummary } from '../src/rollups.ts';
import { loadTrades } from '../src/trade-loader.ts';
import { seedSource } from './etl.ts';
import {
  createBenchDatabase,
  envInt,
  finalLine,
  formatCount,
  formatHostLoad,
  formatPeakRss,
  formatTable,
  loadAverage,
  median,
  onCleanup,
  runCleanups,
  timed,
} from './lib.ts';

const TZ = 'America/New_York';
const INSTRUMENTS = 10;
const CAPITAL = 10_000_000;
/** Repeats of the last-day rebuild timed after its first run (see run()). */
const WARM_RUNS = 3;
/** The seed implementation's figure (the issue): daily rollups (date × account × strategy) per second. */
const SEED_ROLLUPS_PER_SECOND = 125;

const AGGREGATES = `
  count(*)::int as total_trades,
  count(*) filter (where t.realized_pnl > 0)::int as winning_trades,
  count(*) filter (where t.realized_pnl < 0)::int as losing_trades,
  sum(t.quantity) as total_volume,
  sum(t.notional_value) as total_notional,
  coalesce(sum(t.realized_pnl) filter (where t.realized_pnl > 0), 0) as gross_profit,
  coalesce(-sum(t.realized_pnl) filter (where t.realized_pnl < 0), 0) as gross_loss,
  sum(t.realized_pnl) as realized_pnl,
  sum(t.commission) as commissions,
  sum(t.fees) as fees,
  sum(t.realized_pnl) - sum(t.commission) - sum(t.fees) as net_pnl,
  (count(*) filter (where t.realized_pnl > 0))::numeric / nullif(count(*) filter (where t.realized_pnl <> 0), 0) as win_rate,
  sum(t.realized_pnl) filter (where t.realized_pnl > 0) / nullif(-sum(t.realized_pnl) filter (where t.realized_pnl < 0), 0) as profit_factor,
  avg(t.realized_pnl) filter (where t.realized_pnl > 0) as avg_win,
  avg(t.realized_pnl) filter (where t.realized_pnl < 0) as avg_loss,
  max(t.realized_pnl) filter (where t.realized_pnl > 0) as largest_win,
  min(t.realized_pnl) filter (where t.realized_pnl < 0) as largest_loss`;

/** The same date × account × strategy aggregate, grouped on the three keys (date_key and account_id follow from them). */
const SELECT_DAILY = `
  select min(t.date_key) as date_key, t.account_key, t.strategy_key, t.trade_date, min(t.account_id) as account_id,
  ${AGGREGATES}
  from warehouse.fact_trades t
  group by t.trade_date, t.account_key, t.strategy_key`;

const COLUMNS = `date_key, account_key, strategy_key, trade_date, account_id, total_trades, winning_trades, losing_trades,
  total_volume, total_notional, gross_profit, gross_loss, realized_pnl, commissions, fees, net_pnl, win_rate, profit_factor,
  avg_win, avg_loss, largest_win, largest_loss`;

const UPDATE_SET = COLUMNS.split(',')
  .map((c) => c.trim())
  .filter((c) => !['date_key', 'account_key', 'strategy_key'].includes(c))
  .map((c) => `${c} = excluded.${c}`)
  .join(', ');

async function createFloorTable(sql: Sql): Promise<void> {
  await sql`create table bench_performance_daily (like warehouse.fact_performance_daily including defaults)`;
  await sql`alter table bench_performance_daily add primary key (date_key, account_key, strategy_key)`;
}

/** The floor: the seed's one statement, INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE into the bare table. */
async function floorInsert(sql: Sql): Promise<{ ms: number; rows: number }> {
  await sql`truncate bench_performance_daily`;
  const { result, ms } = await timed(() =>
    sql.begin(async (tx) => {
      await tx`set local work_mem = '128MB'`;
      await tx`set local jit = off`;
      return tx.unsafe(`
        insert into bench_performance_daily (${COLUMNS})
        ${SELECT_DAILY}
        on conflict (date_key, account_key, strategy_key) do update set ${UPDATE_SET}`);
    }),
  );
  return { ms, rows: result.count };
}

/** The same aggregate as a plain SELECT, every row fetched (a count(*) around it would let PostgreSQL skip the aggregates). */
async function floorSelect(sql: Sql): Promise<{ ms: number; rows: number }> {
  const { result, ms } = await timed(() =>
    sql.begin(async (tx) => {
      await tx`set local work_mem = '128MB'`;
      await tx`set local jit = off`;
      return tx.unsafe(SELECT_DAILY);
    }),
  );
  return { ms, rows: result.length };
}

/** Every table a rebuild writes, and the views it refreshes. */
const ROLLUP_TABLES = [
  'warehouse.fact_performance_daily', 'warehouse.fact_performance_buckets', 'warehouse.fact_instrument_daily',
  'warehouse.agg_performance_monthly', 'warehouse.equity_curve', 'warehouse.performance_metrics', 'warehouse.fact_positions_daily',
];
const ROLLUP_VIEWS = ['warehouse.mv_top_performing_strategies', 'warehouse.mv_instrument_statistics'];

/** Empties every rollup table, so a full rebuild writes every row (untimed). */
async function clearRollups(sql: Sql): Promise<void> {
  await sql`truncate ${sql.unsafe(ROLLUP_TABLES.join(', '))}`;
}

function rebuild(sql: Sql, scope: { kind: 'full' } | { kind: 'range'; from: string; to: string }): Promise<{ result: RollupSummary; ms: number }> {
  return timed(() => rebuildRollups({ db: sql, tz: TZ, startingCapital: CAPITAL, scope }));
}

/** Index of the value closest to the median (the median run itself for an odd count). */
function medianIndex(values: readonly number[]): number {
  const m = median(values);
  let best = 0;
  values.forEach((v, i) => {
    if (Math.abs(v - m) < Math.abs((values[best] as number) - m)) best = i;
  });
  return best;
}

/** 57965.2, 'fact rows' → "57,965 fact rows/s". */
const perSecond = (rate: number, unit: string) => `${formatCount(rate)} ${unit}/s`;
const seconds = (ms: number) => (ms / 1000).toFixed(2);
const millis = (ms: number) => ms.toFixed(0);

export async function run(): Promise<void> {
  const rows = envInt('BENCH_ROWS', 1_000_000);
  const runs = envInt('BENCH_RUNS', 3);
  const loadAtStart = loadAverage();
  const database = await createBenchDatabase();
  const sql = createDb(database.url, { max: 4, applicationName: 'bullpen-bench' });
  onCleanup(() => sql.end({ timeout: 5 }));
  // Rebuilds run on a connection of their own. A pool hands out its idle connections in turn
  // (postgres.js), so repeats on the pool above would each land on a connection that has not
  // yet prepared the rebuild's statements: not what a worker that has run a few rebuilds does.
  const rollupsSql = createDb(database.url, { max: 1, applicationName: 'bullpen-bench-rollups' });
  onCleanup(() => rollupsSql.end({ timeout: 5 }));
  try {
    await migrate(sql);
    console.log(`rollups: generating ${formatCount(rows)} executions in oltp (not timed)…`);
    await seedSource(sql, rows, INSTRUMENTS);
    await sql`insert into warehouse.account_capital (account_id, starting_capital) select account_id, ${CAPITAL} from oltp.accounts`;
    const load = await timed(() => loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'bench' }));
    console.log(
      `rollups: trade ETL loaded ${formatCount(load.result.loaded)} facts (${formatCount(load.result.rejected)} rejected) in ${seconds(load.ms)} s (not timed)`,
    );
    await sql`analyze`;
    await createFloorTable(sql);

    const [facts] = await sql<{ n: number; last: string; mid: string; days: number }[]>`
      select count(*)::int as n, max(trade_date)::text as last, count(distinct trade_date)::int as days,
             (select percentile_disc(0.5) within group (order by d)::text from (select distinct trade_date as d from warehouse.fact_trades) x) as mid
      from warehouse.fact_trades`;
    if (facts === undefined || facts.n === 0) throw new Error('the trade ETL loaded no facts');
    const factRows = facts.n;
    console.log(
      `rollups: ${formatCount(factRows)} fact rows over ${facts.days} trading dates; incremental dates: last ${facts.last}, median ${facts.mid}`,
    );

    const floorMs: number[] = [];
    const selectMs: number[] = [];
    const buildMs: number[] = [];
    const fullMs: number[] = [];
    const lastMs: number[] = [];
    const lastWarmMs: number[] = [];
    const midMs: number[] = [];
    const summaries: RollupSummary[] = [];
    let floorRows = 0;
    let selectRows = 0;
    const table: string[][] = [['run', 'floor INSERT s', 'floor SELECT s', 'full, empty s', 'full, over rows s', 'last day ms', 'again ms', 'median day ms']];
    for (let i = 0; i < runs; i++) {
      const floor = await floorInsert(sql);
      floorRows = floor.rows;
      floorMs.push(floor.ms);
      const select = await floorSelect(sql);
      selectRows = select.rows;
      selectMs.push(select.ms);
      await clearRollups(sql);
      const build = await rebuild(rollupsSql, { kind: 'full' });
      buildMs.push(build.ms);
      summaries.push(build.result);
      await sql`vacuum analyze`;
      const full = await rebuild(rollupsSql, { kind: 'full' });
      fullMs.push(full.ms);
      // A full rebuild rewrites every rollup row; on a live database autovacuum clears the dead
      // versions within a minute. Incremental rebuilds are timed against that steady state:
      // the tables it rewrote vacuumed and analyzed, as autovacuum leaves them. (Each run plans
      // its statements anyway, with its own arrays: the ANALYZE adds nothing measurable to it.)
      await sql`vacuum analyze ${sql.unsafe([...ROLLUP_TABLES, ...ROLLUP_VIEWS].join(', '))}`;
      const last = await rebuild(rollupsSql, { kind: 'range', from: facts.last, to: facts.last });
      lastMs.push(last.ms);
      // The same rebuild again, as a worker runs it after each ETL load: its statements are now
      // prepared on the pool's connections.
      const warm: number[] = [];
      for (let w = 0; w < WARM_RUNS; w++) {
        const again = await rebuild(rollupsSql, { kind: 'range', from: facts.last, to: facts.last });
        warm.push(again.ms);
        if (process.env.BENCH_VERBOSE) console.log('  last day again:', again.result.phaseMs);
      }
      lastWarmMs.push(median(warm));
      const mid = await rebuild(rollupsSql, { kind: 'range', from: facts.mid, to: facts.mid });
      midMs.push(mid.ms);
      if (process.env.BENCH_VERBOSE) console.log('  last day:', last.result.phaseMs, last.result.rows, 'median day:', mid.result.phaseMs, mid.result.rows);
      table.push([String(i + 1), seconds(floor.ms), seconds(select.ms), seconds(build.ms), seconds(full.ms), millis(last.ms), millis(median(warm)), millis(mid.ms)]);
    }
    table.push([
      'median', seconds(median(floorMs)), seconds(median(selectMs)), seconds(median(buildMs)), seconds(median(fullMs)),
      millis(median(lastMs)), millis(median(lastWarmMs)), millis(median(midMs)),
    ]);
    console.log(formatTable(table));

    const medianRun = summaries[medianIndex(buildMs)] as RollupSummary;
    const fullS = median(buildMs) / 1000;
    const oursRate = factRows / fullS;
    const floorRate = factRows / (median(floorMs) / 1000);
    const selectRate = factRows / (median(selectMs) / 1000);
    const phases = Object.entries(medianRun.phaseMs)
      .map(([phase, ms]) => `${phase} ${ms.toFixed(0)}`)
      .join(', ');
    const written = Object.entries(medianRun.rows)
      .map(([name, n]) => `${name} ${formatCount(n)}`)
      .join(', ');
    console.log(`full rebuild into empty tables, phases (ms, median run): ${phases}`);
    console.log(`full rebuild rows written: ${written} (Σ ${formatCount(medianRun.rowsWritten)})`);
    console.log(
      `full rebuild into empty tables: ${fullS.toFixed(2)} s, ${perSecond(oursRate, 'fact rows')}, ${perSecond(medianRun.rowsWritten / fullS, 'rollup rows written')}, ` +
        `${perSecond(medianRun.rows.performanceDaily / fullS, 'daily rollups')} (date × account × strategy rows of fact_performance_daily; seed: ${SEED_ROLLUPS_PER_SECOND} rollups/s)`,
    );
    console.log(
      `floor (INSERT … SELECT … GROUP BY … ON CONFLICT into a bare table): ${(median(floorMs) / 1000).toFixed(2)} s, ${perSecond(floorRate, 'fact rows')}, ${formatCount(floorRows)} rows; ` +
        `the full rebuild into empty tables takes ${(median(buildMs) / median(floorMs)).toFixed(1)}× the floor (target ≤ 4×)`,
    );
    console.log(
      `full rebuild over existing rows (each replaced in one MVCC transaction, readers never blocked): ${(median(fullMs) / 1000).toFixed(2)} s, ` +
        `${(median(fullMs) / median(floorMs)).toFixed(1)}× the floor`,
    );
    console.log(
      `floor as a bare SELECT (parallel, rows to the client): ${(median(selectMs) / 1000).toFixed(2)} s, ${perSecond(selectRate, 'fact rows')}, ${formatCount(selectRows)} rows fetched (reference only, not in the ratio)`,
    );
    console.log(
      `incremental, last day (${facts.last}), first after VACUUM ANALYZE: ${median(lastMs).toFixed(0)} ms, 1/${(median(buildMs) / median(lastMs)).toFixed(0)} of the full rebuild into empty tables ` +
        `(target ≥ 50), 1/${(median(fullMs) / median(lastMs)).toFixed(0)} of the one over existing rows`,
    );
    console.log(
      `incremental, last day again (median of the next ${WARM_RUNS}, statements already prepared): ${median(lastWarmMs).toFixed(0)} ms, ` +
        `1/${(median(buildMs) / median(lastWarmMs)).toFixed(0)} of the full rebuild into empty tables`,
    );
    console.log(
      `incremental, median day (${facts.mid}): ${median(midMs).toFixed(0)} ms, 1/${(median(buildMs) / median(midMs)).toFixed(0)} of full ` +
        `(restates every later day's equity curve, metrics and positions: expected slower)`,
    );
    console.log(`${formatCount(factRows)} fact rows, ${runs} run(s)`);
    console.log(formatHostLoad(loadAtStart));
    console.log(formatPeakRss());
    console.log(finalLine('rollups', 'fact rows', oursRate, floorRate));
  } finally {
    await runCleanups();
  }
}
