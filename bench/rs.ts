/**
 * rs: symbols per second through one relative-strength refresh, what refresh-rs does in its
 * transaction — scoreRelativeStrength (returns over 21–252 sessions, RS vs SPY and the sector
 * ETF, weighted score, rating, sector leaders, written to market.rs_scores) then
 * publishCurrentScores (the current values into market.sector_mapping) — against its floor.
 *
 * The floor (DESIGN.md: "one bare SQL query that computes only the 63-day return for every
 * symbol"): one statement over the same bars, every row fetched to the client. For each symbol
 * of the universe, one probe of market.bars' primary key (symbol, timeframe, ts) read backwards
 * from the as-of date collects the newest 64 closes (ARRAY(… ORDER BY ts DESC LIMIT 64)), and
 * the return is the first over the last − 1: 64 bars a symbol, nothing sorted. Of the forms
 * tried it was the fastest: two probes (LIMIT 1, and OFFSET 63 LIMIT 1) took ~30% longer, and a
 * window function (lag(close, 63) over the last ~100 calendar days, then the newest row per
 * symbol) reads every bar of that span and sorts, ~3× longer; BENCH_VERBOSE=1 times that one.
 *
 * Data (seeded, untimed, in a fresh database): market.sector_mapping emptied, then SPY, the 11
 * Select Sector SPDR ETFs and BENCH_SYMBOLS synthetic stocks spread evenly over the 11
 * sectors, each naming its sector's ETF; 300 NYSE sessions of 1d bars per symbol ending on a
 * fixed trading date, from a seeded random walk with a per-symbol drift (so returns and
 * ratings spread), loaded with binary COPY (one per symbol, one transaction), then VACUUM
 * ANALYZE. Before each refresh market.rs_scores is emptied (untimed): the nightly run scores a
 * new date, so it inserts every row.
 *
 * Knobs: BENCH_SYMBOLS (default 5000), BENCH_RUNS (default 3), BENCH_DATABASE_URL,
 * BENCH_VERBOSE (also times the window-function form of the floor).
 */
import { addTradingDays, tradingDaysBetween } from '../src/analytics/calendar.ts';
import type { Bar } from '../src/analytics/bars.ts';
import { dayNumberOfIsoDate, utcMsOfLocal } from '../src/analytics/timeframes.ts';
import { createDb, type Sql } from '../src/db.ts';
import { SECTOR_ETFS } from '../src/demo/synthetic.ts';
import { migrate } from '../src/migrate.ts';
import { copyBars } from '../src/queries/enrichment.ts';
import { MARKET_BENCHMARK, publishCurrentScores, scoreRelativeStrength, type RsRunCounts } from '../src/queries/rs.ts';
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
/** A Friday; every bar series ends on it. */
const AS_OF = '2026-11-20';
const SESSIONS = 300;
/** The target: the whole refresh within 5× the bare query (throughput ratio ≥ 0.2). */
const TARGET_RATIO = 0.2;

/** mulberry32: a tiny seeded generator, so every run of the bench scores the same bars. */
function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A random walk of `ts.length` daily bars: drift −0.1%..+0.1% a session, ±2% noise. */
function walk(seed: number, ts: readonly number[]): Bar[] {
  const random = createRandom(seed);
  const drift = (random() - 0.5) * 0.002;
  let close = 20 + random() * 200;
  const bars: Bar[] = new Array<Bar>(ts.length);
  for (let i = 0; i < ts.length; i++) {
    const open = close;
    close = Math.max(0.5, close * (1 + drift + (random() - 0.5) * 0.04));
    const spread = Math.abs(close - open) + close * 0.005 * random();
    bars[i] = { ts: ts[i] as number, open, high: Math.max(open, close) + spread, low: Math.max(0.01, Math.min(open, close) - spread), close, volume: Math.round(1e5 + random() * 1e7) };
  }
  return bars;
}

export interface Member {
  symbol: string;
  sector: string;
  etf: string | null;
  assetClass: 'stock' | 'etf';
}

/** SPY, the 11 sector ETFs and `stocks` synthetic stocks spread over the 11 sectors. */
export function universeOf(stocks: number): Member[] {
  const sectors = Object.entries(SECTOR_ETFS);
  const members: Member[] = [{ symbol: MARKET_BENCHMARK, sector: 'Benchmark', etf: null, assetClass: 'etf' }];
  for (const [sector, etf] of sectors) members.push({ symbol: etf, sector, etf: null, assetClass: 'etf' });
  for (let i = 0; i < stocks; i++) {
    const [sector, etf] = sectors[i % sectors.length] as [string, string];
    members.push({ symbol: `S${String(i + 1).padStart(5, '0')}`, sector, etf, assetClass: 'stock' });
  }
  return members;
}

/** Seeds the universe and its bars (see the header); returns the bars written. */
export async function seed(sql: Sql, members: readonly Member[]): Promise<number> {
  const sessions = tradingDaysBetween(addTradingDays(AS_OF, -(SESSIONS - 1)), AS_OF);
  // 1d bars open at midnight New York of their session date (bullpen's 1d stamp).
  const ts = sessions.map((d) => utcMsOfLocal(dayNumberOfIsoDate(d) * 86_400_000, 'nyse'));
  await sql`delete from market.sector_mapping`;
  await sql`
    insert into market.sector_mapping (symbol, sector_name, industry, sector_etf, asset_class)
    select * from unnest(${members.map((m) => m.symbol)}::text[], ${members.map((m) => m.sector)}::text[],
      ${members.map((m) => (m.assetClass === 'etf' ? 'Sector ETF' : 'Synthetic'))}::text[], ${members.map((m) => m.etf)}::text[],
      ${members.map((m) => m.assetClass)}::text[])`;
  let bars = 0;
  await sql.begin(async (tx) => {
    for (const [i, m] of members.entries()) {
      const series = walk(i + 1, ts);
      await copyBars(tx as unknown as Sql, m.symbol, '1d', 'bench', series);
      bars += series.length;
    }
  });
  await sql`vacuum analyze`;
  return bars;
}

/** The nightly refresh as refresh-rs runs it: score and publish in one transaction (also timed apart). */
async function refresh(sql: Sql): Promise<{ ms: number; scoreMs: number; publishMs: number; counts: RsRunCounts }> {
  await sql`truncate market.rs_scores`;
  await sql`vacuum analyze market.sector_mapping`;
  let scoreMs = 0;
  let publishMs = 0;
  const { result, ms } = await timed(() =>
    sql.begin(async (tx) => {
      const score = await timed(() => scoreRelativeStrength(tx as unknown as Sql, AS_OF, TZ));
      const publish = await timed(() => publishCurrentScores(tx as unknown as Sql, AS_OF, TZ));
      scoreMs = score.ms;
      publishMs = publish.ms;
      return score.result;
    }),
  );
  return { ms, scoreMs, publishMs, counts: result };
}

/** The floor: the 63-session return of every symbol from one primary-key probe each (see the header). */
async function floor(sql: Sql): Promise<{ ms: number; rows: number }> {
  const { result, ms } = await timed(
    () => sql`
      select m.symbol, p.closes[1] / nullif(p.closes[64], 0) - 1 as return_63d
      from market.sector_mapping m
      cross join lateral (
        select array(
          select b.close from market.bars b
          where b.symbol = m.symbol and b.timeframe = '1d' and b.ts < ((${AS_OF}::date + 1)::timestamp at time zone ${TZ})
          order by b.ts desc
          limit 64) as closes
        offset 0) p`,
  );
  return { ms, rows: result.length };
}

/** The window-function form of the floor, for reference (BENCH_VERBOSE). */
async function windowFloor(sql: Sql): Promise<{ ms: number; rows: number }> {
  const { result, ms } = await timed(
    () => sql`
      select distinct on (symbol) symbol, return_63d from (
        select b.symbol, b.ts, b.close / nullif(lag(b.close, 63) over (partition by b.symbol order by b.ts), 0) - 1 as return_63d
        from market.bars b
        where b.timeframe = '1d'
          and b.ts >= ((${AS_OF}::date - 100)::timestamp at time zone ${TZ})
          and b.ts < ((${AS_OF}::date + 1)::timestamp at time zone ${TZ})) x
      order by symbol, ts desc`,
  );
  return { ms, rows: result.length };
}

const seconds = (ms: number) => (ms / 1000).toFixed(3);

export async function run(): Promise<void> {
  const stocks = envInt('BENCH_SYMBOLS', 5000);
  const runs = envInt('BENCH_RUNS', 3);
  const verbose = Boolean(process.env.BENCH_VERBOSE);
  const loadAtStart = loadAverage();
  const database = await createBenchDatabase();
  const sql = createDb(database.url, { max: 2, applicationName: 'bullpen-bench' });
  onCleanup(() => sql.end({ timeout: 5 }));
  try {
    await migrate(sql);
    const members = universeOf(stocks);
    console.log(`rs: seeding ${formatCount(members.length)} symbols (${formatCount(stocks)} stocks, SPY, 11 sector ETFs) × ${SESSIONS} sessions of 1d bars to ${AS_OF} (not timed)…`);
    const seeded = await timed(() => seed(sql, members));
    console.log(`rs: ${formatCount(seeded.result)} bars in ${seconds(seeded.ms)} s (COPY + VACUUM ANALYZE)`);

    // Warm-up (untimed): caches, plans.
    await refresh(sql);
    await floor(sql);

    const oursMs: number[] = [];
    const floorMs: number[] = [];
    const windowMs: number[] = [];
    const scoreMs: number[] = [];
    const publishMs: number[] = [];
    let counts: RsRunCounts | undefined;
    let floorRows = 0;
    const table: string[][] = [['run', 'refresh s', 'score ms', 'publish ms', 'floor s', ...(verbose ? ['window floor s'] : []), 'refresh / floor']];
    for (let i = 0; i < runs; i++) {
      const ours = await refresh(sql);
      const bare = await floor(sql);
      const win = verbose ? await windowFloor(sql) : undefined;
      counts = ours.counts;
      floorRows = bare.rows;
      oursMs.push(ours.ms);
      scoreMs.push(ours.scoreMs);
      publishMs.push(ours.publishMs);
      floorMs.push(bare.ms);
      if (win) windowMs.push(win.ms);
      table.push([String(i + 1), seconds(ours.ms), ours.scoreMs.toFixed(0), ours.publishMs.toFixed(0), seconds(bare.ms), ...(win ? [seconds(win.ms)] : []), `${(ours.ms / bare.ms).toFixed(1)}×`]);
    }
    table.push([
      'median',
      seconds(median(oursMs)),
      median(scoreMs).toFixed(0),
      median(publishMs).toFixed(0),
      seconds(median(floorMs)),
      ...(verbose ? [seconds(median(windowMs))] : []),
      `${(median(oursMs) / median(floorMs)).toFixed(1)}×`,
    ]);
    console.log(formatTable(table));
    if (floorRows !== members.length) throw new Error(`the floor returned ${floorRows} rows for ${members.length} symbols`);
    if (counts && counts.symbols !== members.length) throw new Error(`the refresh scored ${counts.symbols} rows for ${members.length} symbols`);

    const symbols = members.length;
    const oursRate = symbols / (median(oursMs) / 1000);
    const floorRate = symbols / (median(floorMs) / 1000);
    console.log(`refresh (score + publish, one transaction): ${counts?.scored ?? 0} scored, ${counts?.rated ?? 0} rated, ${counts?.leaders ?? 0} sector leaders of ${formatCount(symbols)} symbols`);
    console.log(
      `refresh takes ${(median(oursMs) / median(floorMs)).toFixed(1)}× the floor (target ≤ 5×, ratio ≥ ${TARGET_RATIO}): ${oursRate / floorRate >= TARGET_RATIO ? 'met' : 'NOT met'}`,
    );
    console.log(formatHostLoad(loadAtStart));
    console.log(formatPeakRss());
    console.log(finalLine('rs', 'symbols', oursRate, floorRate));
  } finally {
    await runCleanups();
  }
}
