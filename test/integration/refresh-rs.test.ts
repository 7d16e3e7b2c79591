/**
 * refresh-rs against hand-built bars: RS, ratings (ties included) and sector leaders worked out
 * by hand for a small universe; a sector with fewer than five members; a symbol listed
 * mid-window; an idempotent rerun; missing benchmark data fetched first, or failing retryably
 * naming the benchmark, asking again on the retry for every member still without the day's bar;
 * a stock without the day's bar asked for, then left unscored with its current rating kept; a
 * member without bars for 5 sessions (stale) neither asked for nor rated; one no bar ever came for
 * asked for on 3 dates, then no more; a coin the universe lists as a stock taken as the coin
 * bullpen tracks it as; a sector ETF stopped trading, or missing on the last attempt, leaving its
 * members without rs_sector_score instead of failing the run; a session not closed yet refused;
 * SPY not in the universe; lookbacks on SPY's sessions whatever gaps a symbol has; crypto members
 * left unscored; a score too large for sector_mapping's old numeric(10,4); a benchmark without a
 * year of history; history kept when an older date is scored again.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { addTradingDays, earlyClose, nextTradingDay, tradingDateOf, tradingDaysBetween } from '../../src/analytics/calendar.ts';
import { addCalendarDays, dayNumberOfIsoDate, utcMsOfLocal } from '../../src/analytics/timeframes.ts';
import type { Sql } from '../../src/db.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { enrichmentBackfill } from '../../jobs/enrichment-backfill.ts';
import { refreshRs } from '../../jobs/refresh-rs.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let runtime: TestRuntime | undefined;
const dirs: string[] = [];

afterEach(async () => {
  await runtime?.close();
  runtime = undefined;
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

const AS_OF = '2026-11-20';

/** The session `back` 1d bars before `end` (AS_OF), at midnight New York (bullpen's 1d stamp). */
function sessionTs(back: number, end = AS_OF): Date {
  const date = back === 0 ? end : addTradingDays(end, -back);
  return new Date(utcMsOfLocal(dayNumberOfIsoDate(date) * 86_400_000, 'nyse'));
}

/**
 * Bars whose closes are 100 except at the sessions the returns read: `points` maps sessions back
 * (0, 21, 63, 126, 189, 252) to closes. `sessions` bars in all, ending at AS_OF.
 */
async function insertBars(sql: Sql, symbol: string, points: Record<number, number>, sessions = 260): Promise<void> {
  const ts: Date[] = [];
  const closes: number[] = [];
  for (let back = 0; back < sessions; back++) {
    ts.push(sessionTs(back));
    closes.push(points[back] ?? 100);
  }
  await sql`
    insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source)
    select ${symbol}, '1d', t, c, c, c, c, 1000, 'test' from unnest(${ts.map((d) => d.toISOString())}::timestamptz[], ${closes}::float8[]) as u(t, c)`;
}

async function universe(sql: Sql, rows: [string, string, string | null, string][]): Promise<void> {
  await sql`delete from market.sector_mapping`;
  for (const [symbol, sector, etf, assetClass] of rows) {
    await sql`insert into market.sector_mapping (symbol, sector_name, sector_etf, asset_class) values (${symbol}, ${sector}, ${etf}, ${assetClass})`;
  }
}

async function runJob(rt: TestRuntime, date = AS_OF): Promise<{ status: string; summary: Record<string, unknown> | null; error: string | null }> {
  const run = await enqueueRun(rt.queues, refreshRs, { date }, { force: true });
  let row: { status: string; summary: Record<string, unknown> | null; error: string | null } | undefined;
  await waitFor(
    async () => {
      [row] = await rt.db.sql<{ status: string; summary: Record<string, unknown> | null; error: string | null }[]>`
        select status, summary, error from ops.job_runs where job = 'refresh-rs' and partition = ${run.partition} and job_id = ${run.jobId}`;
      return row?.status === 'succeeded' || row?.status === 'failed';
    },
    60_000,
    () => `refresh-rs to end: ${JSON.stringify(row)}`,
  );
  return row as { status: string; summary: Record<string, unknown> | null; error: string | null };
}

/** 1d bars at every session `back` = 0 … sessions − 1 before `end` (AS_OF) whose close `closeAt` gives (null: no bar). */
async function insertSeries(sql: Sql, symbol: string, closeAt: (back: number) => number | null, sessions = 260, end = AS_OF): Promise<void> {
  const ts: string[] = [];
  const closes: number[] = [];
  for (let back = 0; back < sessions; back++) {
    const close = closeAt(back);
    if (close === null) continue;
    ts.push(sessionTs(back, end).toISOString());
    closes.push(close);
  }
  await sql`
    insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source)
    select ${symbol}, '1d', t, c, c, c, c, 1000, 'test' from unnest(${ts}::timestamptz[], ${closes}::float8[]) as u(t, c)`;
}

interface ScoreRow {
  symbol: string;
  close: number | null;
  return_63d: number | null;
  return_252d: number | null;
  rs_score: number | null;
  rs_rating: number | null;
  note: string | null;
}

async function loadScores(sql: Sql, date = AS_OF): Promise<Record<string, ScoreRow>> {
  const rows = await sql<ScoreRow[]>`
    select symbol, close, return_63d, return_252d, rs_score, rs_rating, note from market.rs_scores where as_of_date = ${date} order by symbol`;
  return Object.fromEntries(rows.map((r) => [r.symbol, r]));
}

const UP = { 0: 120, 21: 110, 63: 100, 126: 90, 189: 80, 252: 60 };

describe('refresh-rs', () => {
  it('scores a small universe as worked out by hand: RS vs SPY and sector ETF, ratings with ties, leaders, a short history', async () => {
    runtime = await createTestRuntime('rs', [refreshRs]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['XLK', 'Information Technology', null, 'etf'],
      ['AAA', 'Information Technology', 'XLK', 'stock'],
      ['BBB', 'Information Technology', 'XLK', 'stock'],
      ['CCC', 'Information Technology', 'XLK', 'stock'],
      ['DDD', 'Information Technology', 'XLK', 'stock'],
      ['EEE', 'Energy', 'XLE', 'stock'], // XLE is not in the universe: scored against SPY only
      ['NEW', 'Energy', 'XLE', 'stock'], // listed 100 sessions ago
    ]);
    // SPY: +10% over every lookback. XLK: flat but +5% over 3 months.
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertBars(sql, 'XLK', { 0: 105, 21: 105, 126: 105, 189: 105, 252: 105, 63: 100 });
    // AAA: 120 vs 100/90/80/60 → returns 20%, 33.3%, 50%, 100%.
    await insertBars(sql, 'AAA', UP);
    await insertBars(sql, 'BBB', { 0: 100 }); // flat: −10 points against SPY everywhere
    await insertBars(sql, 'CCC', { 0: 100 }); // the same as BBB: a tie
    await insertBars(sql, 'DDD', { 0: 121 }); // +21% everywhere
    await insertBars(sql, 'EEE', { 0: 110 }); // exactly SPY
    await insertBars(sql, 'NEW', { 0: 150 }, 100);

    const run = await runJob(runtime);
    expect(run.status).toBe('succeeded');
    expect(run.summary).toMatchObject({ asOf: AS_OF, symbols: 8, scored: 7, rated: 5, leaders: 2, unscored: 1 });
    expect(run.summary?.unscoredSymbols).toEqual([{ symbol: 'NEW', reason: `history: 100 sessions up to ${AS_OF}, 253 needed for the 12-month return` }]);

    const rows = await sql<{ symbol: string; rs_score: number | null; rs_sector_score: number | null; rs_63d_vs_spy: number | null; rs_rating: number | null; is_sector_leader: boolean | null; return_21d: number | null }[]>`
      select symbol, rs_score, rs_sector_score, rs_63d_vs_spy, rs_rating, is_sector_leader, return_21d from market.rs_scores where as_of_date = ${AS_OF} order by symbol`;
    const by = Object.fromEntries(rows.map((r) => [r.symbol, r]));
    // AAA vs SPY: 0.4·(20−10) + 0.2·(33.33…−10) + 0.2·(50−10) + 0.2·(100−10) = 4 + 4.667 + 8 + 18.
    expect(by.AAA?.rs_score).toBeCloseTo(4 + 0.2 * (100 * (120 / 90 - 1) - 10) + 8 + 18, 9);
    // AAA vs XLK (+5% over 3 months, 0% over 6, 9 and 12): 0.4·15 + 0.2·33.33… + 0.2·50 + 0.2·100.
    expect(by.AAA?.rs_sector_score).toBeCloseTo(6 + 0.2 * 100 * (120 / 90 - 1) + 10 + 20, 9);
    expect(by.AAA?.rs_63d_vs_spy).toBeCloseTo(10, 9);
    expect(by.AAA?.return_21d).toBeCloseTo(120 / 110 - 1, 12);
    expect(by.BBB?.rs_score).toBeCloseTo(-10, 9);
    expect(by.DDD?.rs_score).toBeCloseTo(11, 9);
    expect(by.EEE?.rs_score).toBeCloseTo(0, 9);
    expect(by.EEE?.rs_sector_score).toBeNull();
    expect(by.SPY?.rs_score).toBeCloseTo(0, 9);
    // Ratings among the five stocks scored: BBB = CCC (tied, percent_rank 0) < EEE < DDD < AAA.
    expect([by.BBB?.rs_rating, by.CCC?.rs_rating, by.EEE?.rs_rating, by.DDD?.rs_rating, by.AAA?.rs_rating]).toEqual([1, 1, 50, 75, 99]);
    expect(by.SPY?.rs_rating).toBeNull();
    expect(by.XLK?.rs_rating).toBeNull();
    // Leaders: the top 20% of each sector; with four (IT) or one (Energy) members, the top one.
    expect(rows.filter((r) => r.is_sector_leader).map((r) => r.symbol)).toEqual(['AAA', 'EEE']);
    expect(by.NEW).toMatchObject({ rs_score: null, rs_rating: null, is_sector_leader: null });

    const current = await sql<{ symbol: string; rs_rating: number | null; is_sector_leader: boolean | null }[]>`
      select symbol, rs_rating, is_sector_leader from market.sector_mapping where last_updated is not null order by symbol`;
    expect(current).toHaveLength(8);
    expect(current.find((c) => c.symbol === 'AAA')).toMatchObject({ rs_rating: 99, is_sector_leader: true });

    // The same date again: the same rows, nothing added.
    const before = await sql`select symbol, rs_score, rs_rating, is_sector_leader, note from market.rs_scores order by symbol`;
    expect((await runJob(runtime)).status).toBe('succeeded');
    expect(await sql`select symbol, rs_score, rs_rating, is_sector_leader, note from market.rs_scores order by symbol`).toEqual(before);

    // An older date scored later (catch-up) adds history but leaves the current values alone.
    const older = addTradingDays(AS_OF, -1);
    expect((await runJob(runtime, older)).status).toBe('succeeded');
    const [count] = await sql<{ dates: number }[]>`select count(distinct as_of_date)::int as dates from market.rs_scores`;
    expect(count?.dates).toBe(2);
    expect((await sql<{ rs_rating: number }[]>`select rs_rating from market.sector_mapping where symbol = 'AAA'`)[0]?.rs_rating).toBe(99);
  });

  it('fetches missing benchmark bars through the enrichment pipeline first, then scores', async () => {
    runtime = await createTestRuntime('rs-fresh', [refreshRs, enrichmentBackfill]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['XLK', 'Information Technology', null, 'etf'],
      ['AAPL', 'Information Technology', 'XLK', 'stock'],
      ['MSFT', 'Information Technology', 'XLK', 'stock'],
    ]);
    const run = await runJob(runtime);
    expect(run.status).toBe('succeeded');
    expect(run.summary).toMatchObject({ symbols: 4, scored: 4, rated: 2, leaders: 1, unscored: 0 });
    const [request] = await sql<{ status: string; from_date: string }[]>`select status, from_date::text from enrichment.backfills where requested_by = ${`refresh-rs@${AS_OF}`}`;
    expect(request).toEqual({ status: 'completed', from_date: '2025-10-16' });
    const sessions = tradingDaysBetween('2025-01-01', AS_OF).length;
    const [bars] = await sql<{ n: number }[]>`select count(*)::int as n from market.bars where symbol = 'SPY' and timeframe = '1d'`;
    expect(bars?.n).toBe(sessions);
  });

  /** Workers running refresh-rs and enrichment whose market data is an empty CSV directory (`dir`). */
  async function withCsvSource(name: string, env: Record<string, string>): Promise<{ rt: TestRuntime; dir: string }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-rs-csv-'));
    dirs.push(dir);
    const rt = await createTestRuntime(name, [refreshRs, enrichmentBackfill], { MARKET_DATA_SOURCE: 'csv', MARKET_DATA_CSV_DIR: dir, ...env });
    runtime = rt;
    rt.startWorkers();
    return { rt, dir };
  }

  /**
   * SPY and AAA (bars stored) on workers whose market data is an empty CSV directory, two attempts
   * per run: SPY's bar has to come from there.
   */
  async function withoutSpyBars(name: string, env: Record<string, string> = {}): Promise<{ rt: TestRuntime; dir: string }> {
    const { rt, dir } = await withCsvSource(name, { JOB_ATTEMPTS: '2', ...env });
    await universe(rt.db.sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
    ]);
    await insertBars(rt.db.sql, 'AAA', UP);
    return { rt, dir };
  }

  it('fails retryably naming the benchmark when the enrichment cannot bring its bar', async () => {
    const { rt } = await withoutSpyBars('rs-missing');
    const sql = rt.db.sql;
    const run = await runJob(rt);
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(new RegExp(`no 1d bar for ${AS_OF} of SPY \\(enrichment request .* ended failed without it\\); the data may arrive later`));
    // Retryable: the first attempt was retried, not failed for good at once.
    const events = await sql<{ outcome: string }[]>`select outcome from ops.job_run_events where job = 'refresh-rs' order by event_id`;
    expect(events.map((e) => e.outcome)).toEqual(['retrying', 'failed']);
    // Each attempt asked the enrichment pipeline again.
    const requests = await sql<{ status: string }[]>`select status from enrichment.backfills where requested_by = ${`refresh-rs@${AS_OF}`} order by created_at`;
    expect(requests.map((r) => r.status)).toEqual(['failed', 'failed']);
  });

  it("asks again on its retry, for the members still without the day's bar, fetched anew, and scores with the bar the vendor published since", async () => {
    const { rt, dir } = await withoutSpyBars('rs-later', { JOB_BACKOFF_MS: '3000' });
    const sql = rt.db.sql;
    // The vendor's SPY file holds the year but not yet the day (AAA has none: its chunk fails).
    const line = (back: number) => `${sessionTs(back).getTime()},100,100,100,100,1000`;
    const spyFile = path.join(dir, 'SPY', '1d.csv');
    fs.mkdirSync(path.dirname(spyFile));
    fs.writeFileSync(spyFile, ['timestamp,open,high,low,close,volume', ...Array.from({ length: 259 }, (_, i) => line(259 - i))].join('\n') + '\n');
    const run = enqueueRun(rt.queues, refreshRs, { date: AS_OF });
    await waitFor(
      async () => (await sql`select 1 from ops.job_run_events where job = 'refresh-rs' and outcome = 'retrying'`).length > 0,
      30_000,
      () => 'the first attempt to fail',
    );
    // SPY's chunk was fetched whole as far as its ledger knows: only a fetch anew brings the day.
    const [chunk] = await sql<{ status: string }[]>`select status from enrichment.chunks where symbol = 'SPY' and timeframe = '1d' order by chunk_start desc limit 1`;
    expect(chunk?.status).toBe('completed');
    // The day's bar is published while the run backs off.
    fs.appendFileSync(spyFile, `${line(0)}\n`);
    const { partition, jobId } = await run;
    let row: { status: string; summary: Record<string, unknown> | null } | undefined;
    await waitFor(
      async () => {
        [row] = await sql<{ status: string; summary: Record<string, unknown> | null }[]>`
          select status, summary from ops.job_runs where job = 'refresh-rs' and partition = ${partition} and job_id = ${jobId}`;
        return row?.status === 'succeeded' || row?.status === 'failed';
      },
      30_000,
      () => `the retry to end: ${JSON.stringify(row)}`,
    );
    expect(row).toMatchObject({ status: 'succeeded', summary: { symbols: 2, scored: 2 } });
    // One request per attempt, for the member without the day's bar only (AAA has it): over the
    // scoring window (its stored chunk skipped, so nothing new), then from the date, fetched anew:
    // the chunk holding it is fetched whole.
    const requests = await sql<{ status: string; symbols: string[]; reprocess: string; from_date: string }[]>`
      select status, symbols, reprocess, from_date::text from enrichment.backfills where requested_by = ${`refresh-rs@${AS_OF}`} order by created_at`;
    expect(requests.map((r) => ({ ...r }))).toEqual([
      { status: 'completed', symbols: ['SPY'], reprocess: 'missing', from_date: '2025-10-16' },
      { status: 'completed', symbols: ['SPY'], reprocess: 'all', from_date: AS_OF },
    ]);
    const [spy] = await sql<{ n: number }[]>`select count(*)::int as n from market.bars where symbol = 'SPY' and timeframe = '1d' and source = 'csv'`;
    expect(spy?.n).toBe(260);
  });

  /** The refresh-rs run `jobId` of `partition` once it has ended. */
  async function endedRun(rt: TestRuntime, partition: string, jobId: string): Promise<{ status: string; summary: Record<string, unknown> | null; error: string | null }> {
    let row: { status: string; summary: Record<string, unknown> | null; error: string | null } | undefined;
    await waitFor(
      async () => {
        [row] = await rt.db.sql<{ status: string; summary: Record<string, unknown> | null; error: string | null }[]>`
          select status, summary, error from ops.job_runs where job = 'refresh-rs' and partition = ${partition} and job_id = ${jobId}`;
        return row?.status === 'succeeded' || row?.status === 'failed';
      },
      30_000,
      () => `refresh-rs to end: ${JSON.stringify(row)}`,
    );
    return row as { status: string; summary: Record<string, unknown> | null; error: string | null };
  }

  it("re-asks on its retry for every member still without the day's bar, not for the benchmarks alone, and scores them", async () => {
    const { rt, dir } = await withCsvSource('rs-late-stock', { JOB_ATTEMPTS: '2', JOB_BACKOFF_MS: '3000' });
    const sql = rt.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
    ]);
    // The vendor's files hold the year but not yet the day, for SPY and for AAA alike.
    const line = (back: number, close: number) => `${sessionTs(back).getTime()},${close},${close},${close},${close},1000`;
    const files: Record<string, string> = {};
    for (const symbol of ['SPY', 'AAA']) {
      const file = path.join(dir, symbol, '1d.csv');
      fs.mkdirSync(path.dirname(file));
      fs.writeFileSync(file, ['timestamp,open,high,low,close,volume', ...Array.from({ length: 259 }, (_, i) => line(259 - i, 100))].join('\n') + '\n');
      files[symbol] = file;
    }
    const run = enqueueRun(rt.queues, refreshRs, { date: AS_OF });
    await waitFor(
      async () => (await sql`select 1 from ops.job_run_events where job = 'refresh-rs' and outcome = 'retrying'`).length > 0,
      30_000,
      () => 'the first attempt to fail',
    );
    // The day's bars are published while the run backs off: SPY +10%, AAA +30%.
    fs.appendFileSync(files.SPY as string, `${line(0, 110)}\n`);
    fs.appendFileSync(files.AAA as string, `${line(0, 130)}\n`);
    const { partition, jobId } = await run;
    const row = await endedRun(rt, partition, jobId);
    expect(row.status).toBe('succeeded');
    expect(row.summary).toMatchObject({ scored: 2, unscored: 0, current: true });
    const by = await loadScores(sql);
    expect(by.AAA?.note).toBeNull();
    expect(by.AAA?.rs_score).toBeCloseTo(20, 9);
    const [current] = await sql<{ rs_rating: number | null }[]>`select rs_rating from market.sector_mapping where symbol = 'AAA'`;
    expect(current?.rs_rating).toBe(1);
    const requests = await sql<{ symbols: string[]; reprocess: string; from_date: string }[]>`
      select symbols, reprocess, from_date::text from enrichment.backfills where requested_by = ${`refresh-rs@${AS_OF}`} order by created_at`;
    expect(requests.map((r) => ({ ...r }))).toEqual([
      { symbols: ['AAA', 'SPY'], reprocess: 'missing', from_date: '2025-10-16' },
      { symbols: ['AAA', 'SPY'], reprocess: 'all', from_date: AS_OF },
    ]);
  });

  it("asks for a stock's missing bar even when the benchmarks have theirs, then leaves it unscored with its current rating kept", async () => {
    // An empty CSV directory: the request for the day's bars ends failed, bringing nothing.
    const { rt } = await withCsvSource('rs-halted', { JOB_ATTEMPTS: '1' });
    const sql = rt.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
      ['BBB', 'Information Technology', null, 'stock'],
      ['BTC-USD', 'Crypto', null, 'crypto'],
    ]);
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertBars(sql, 'AAA', UP);
    // BBB: halted on the date (no bar), a strong close the session before.
    await insertSeries(sql, 'BBB', (back) => (back === 0 ? null : back === 1 ? 200 : 100));
    const older = addTradingDays(AS_OF, -1);
    expect((await runJob(rt, older)).status).toBe('succeeded');
    const [before] = await sql<{ rs_rating: number | null; is_sector_leader: boolean | null; last_updated: Date | null }[]>`
      select rs_rating, is_sector_leader, last_updated from market.sector_mapping where symbol = 'BBB'`;
    expect(before).toMatchObject({ rs_rating: 99, is_sector_leader: true });

    const run = await runJob(rt);
    expect(run.status, run.error ?? '').toBe('succeeded');
    expect(run.summary).toMatchObject({ symbols: 4, scored: 2, unscored: 2, current: true });
    const by = await loadScores(sql);
    expect(by.BBB).toMatchObject({ rs_score: null, note: `no 1d bar on ${AS_OF} (last ${older})` });
    // Asked for once, alone (the coin is not scored, so never waited for), then scored without it.
    const requests = await sql<{ status: string; symbols: string[] }[]>`select status, symbols from enrichment.backfills where requested_by = ${`refresh-rs@${AS_OF}`}`;
    expect(requests.map((r) => ({ ...r }))).toEqual([{ status: 'failed', symbols: ['BBB'] }]);
    // A missing bar says nothing of BBB's strength: its current values stay those of its last scored date.
    const current = await sql<{ symbol: string; rs_rating: number | null; is_sector_leader: boolean | null; last_updated: Date | null }[]>`
      select symbol, rs_rating, is_sector_leader, last_updated from market.sector_mapping order by symbol`;
    expect(current.find((c) => c.symbol === 'BBB')).toEqual({ symbol: 'BBB', ...before });
    expect(current.find((c) => c.symbol === 'AAA')).toMatchObject({ rs_rating: 1, is_sector_leader: true });
  });

  it('neither asks for nor waits on a member without a bar for 5 sessions, drops its rating and names it for removal; one 4 sessions behind is still asked for', async () => {
    const { rt } = await withCsvSource('rs-stale', { JOB_ATTEMPTS: '1' });
    const sql = rt.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
      ['DEAD', 'Information Technology', null, 'stock'],
      ['SLOW', 'Information Technology', null, 'stock'],
    ]);
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertBars(sql, 'AAA', UP);
    // DEAD: delisted, its last bar 5 sessions back (a strong close); SLOW: 4 sessions back.
    await insertSeries(sql, 'DEAD', (back) => (back < 5 ? null : back === 5 ? 300 : 100));
    await insertSeries(sql, 'SLOW', (back) => (back < 4 ? null : back === 4 ? 250 : 100));
    const lastDead = addTradingDays(AS_OF, -5);
    expect((await runJob(rt, lastDead)).status).toBe('succeeded');
    const [rated] = await sql<{ rs_rating: number | null; is_sector_leader: boolean | null }[]>`select rs_rating, is_sector_leader from market.sector_mapping where symbol = 'DEAD'`;
    expect(rated).toEqual({ rs_rating: 99, is_sector_leader: true });
    const [slowBefore] = await sql<{ rs_rating: number | null }[]>`select rs_rating from market.sector_mapping where symbol = 'SLOW'`;

    const run = await runJob(rt);
    expect(run.status, run.error ?? '').toBe('succeeded');
    // Only the member 4 sessions behind was asked for: the stale one is not waited on.
    const requests = await sql<{ symbols: string[] }[]>`select symbols from enrichment.backfills where requested_by = ${`refresh-rs@${AS_OF}`}`;
    expect(requests.map((r) => r.symbols)).toEqual([['SLOW']]);
    const by = await loadScores(sql);
    expect(by.DEAD).toMatchObject({ rs_score: null, rs_rating: null });
    expect(by.DEAD?.note).toBe(`stale: no 1d bar since ${lastDead} (5 sessions or more); not waited for or rated; delisted? bullpen universe remove DEAD`);
    expect(by.SLOW?.note).toBe(`no 1d bar on ${AS_OF} (last ${addTradingDays(AS_OF, -4)})`);
    // The stale member's rating is dropped from the current values; the one merely late keeps its.
    const current = await sql<{ symbol: string; rs_rating: number | null; is_sector_leader: boolean | null }[]>`
      select symbol, rs_rating, is_sector_leader from market.sector_mapping order by symbol`;
    expect(current.find((c) => c.symbol === 'DEAD')).toEqual({ symbol: 'DEAD', rs_rating: null, is_sector_leader: null });
    expect(current.find((c) => c.symbol === 'SLOW')?.rs_rating).toBe(slowBefore?.rs_rating);
    expect(current.find((c) => c.symbol === 'AAA')).toMatchObject({ rs_rating: 1, is_sector_leader: true });
    // The summary names it, with the command that removes it.
    expect(run.summary).toMatchObject({
      symbols: 4,
      scored: 2,
      stale: 1,
      staleSymbols: [{ symbol: 'DEAD', lastBar: lastDead, sessionsWithoutBar: 5 }],
    });
    expect(run.summary?.staleHint).toBe('remove members that no longer trade: bullpen universe remove DEAD');
  });

  it('stops asking for a member no bar ever came for once 3 dates have asked, clears it and names it to fix or remove; scores it again once bars come', async () => {
    const { rt } = await withCsvSource('rs-never', { JOB_ATTEMPTS: '1' });
    const sql = rt.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
      ['TYPO', 'Information Technology', null, 'stock'],
    ]);
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertBars(sql, 'AAA', UP);
    // TYPO: a ticker the vendor does not know (the CSV directory has no file for it).
    const dates = [-3, -2, -1].map((back) => addTradingDays(AS_OF, back));
    for (const date of dates) expect((await runJob(rt, date)).status).toBe('succeeded');

    const run = await runJob(rt);
    expect(run.status, run.error ?? '').toBe('succeeded');
    // Asked for on three dates, not on the fourth.
    const requests = await sql<{ requested_by: string; symbols: string[] }[]>`
      select requested_by, symbols from enrichment.backfills where requested_by like 'refresh-rs@%' order by created_at`;
    expect(requests.map((r) => ({ ...r }))).toEqual(dates.map((date) => ({ requested_by: `refresh-rs@${date}`, symbols: ['TYPO'] })));
    const by = await loadScores(sql);
    expect(by.TYPO).toMatchObject({ rs_score: null, rs_rating: null });
    expect(by.TYPO?.note).toBe(
      'no bar ever: no 1d bar came for any of the 3 dates refresh-rs asked enrichment for (a typo, or a ticker the data source does not know?); ' +
        'not asked for or waited on any more; fix the symbol or remove it: bullpen universe remove TYPO',
    );
    expect(run.summary).toMatchObject({ symbols: 3, scored: 2, stale: 0, neverFound: 1, neverFoundSymbols: [{ symbol: 'TYPO', datesAsked: 3 }] });
    expect(run.summary?.warnings).toEqual([
      '1 member never had a 1d bar, though refresh-rs asked enrichment for it on 3 dates or more (a typo, or a ticker the data source does not know?): ' +
        'not asked for or rated any more; fix or remove it: bullpen universe remove TYPO',
    ]);
    const [current] = await sql<{ rs_rating: number | null }[]>`select rs_rating from market.sector_mapping where symbol = 'TYPO'`;
    expect(current?.rs_rating).toBeNull();

    // The symbol's bars come after all (enrichment-daily still fetches it): scored, nothing said.
    await insertBars(sql, 'TYPO', { 0: 130 });
    const again = await runJob(rt);
    expect(again.status).toBe('succeeded');
    expect(again.summary).toMatchObject({ scored: 3, neverFound: 0 });
    expect(again.summary?.warnings).toBeUndefined();
    expect((await loadScores(sql)).TYPO?.note).toBeNull();
  });

  it("takes each member's asset class as bullpen tracks it: a coin the universe lists as a stock is neither asked for as a stock nor scored", async () => {
    const { rt } = await withCsvSource('rs-tracked', { JOB_ATTEMPTS: '1' });
    const sql = rt.db.sql;
    // Both added with the default class; the trading system knows them as coins.
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
      ['BTCUSD', 'Crypto', null, 'stock'],
      ['ETHUSD', 'Crypto', null, 'stock'],
    ]);
    await sql`
      insert into warehouse.dim_instrument (instrument_id, symbol, instrument_type, effective_from, is_current)
      values (9001, 'BTCUSD', 'crypto', '-infinity', true), (9002, 'ETHUSD', 'crypto_spot', '-infinity', true)`;
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertBars(sql, 'AAA', UP);
    // ETHUSD: a 1d bar every UTC midnight, through the day after the date; BTCUSD: none yet.
    const days = Array.from({ length: 402 }, (_, i) => addCalendarDays(AS_OF, i - 400));
    await sql`
      insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source)
      select 'ETHUSD', '1d', (d || 'T00:00:00Z')::timestamptz, 100, 100, 100, 100, 1000, 'test' from unnest(${days}::text[]) as u(d)`;

    const run = await runJob(rt);
    expect(run.status, run.error ?? '').toBe('succeeded');
    // A coin is not scored, so never asked for: as a stock, its request would name the wrong ticker and sessions.
    expect(await sql`select symbols from enrichment.backfills where requested_by = ${`refresh-rs@${AS_OF}`}`).toEqual([]);
    const by = await loadScores(sql);
    for (const coin of ['BTCUSD', 'ETHUSD']) {
      expect(by[coin]).toMatchObject({ close: null, rs_score: null, rs_rating: null });
      expect(by[coin]?.note).toMatch(/^crypto: not scored/);
    }
    expect(run.summary).toMatchObject({ symbols: 4, scored: 2, rated: 1 });
    expect(run.summary?.warnings).toEqual([
      '2 members are stock in market.sector_mapping but crypto in warehouse.dim_instrument: taken as crypto (not scored); ' +
        'set the class to silence this: bullpen universe add BTCUSD --asset-class crypto; bullpen universe add ETHUSD --asset-class crypto',
    ]);
  });

  it('scores the members of a sector whose ETF stopped trading without their sector score, and succeeds naming the ETF', async () => {
    const { rt } = await withCsvSource('rs-dead-etf', { JOB_ATTEMPTS: '1' });
    const sql = rt.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['XLX', 'Information Technology', null, 'etf'],
      ['AAA', 'Information Technology', 'XLX', 'stock'],
      ['BBB', 'Information Technology', 'XLX', 'stock'],
    ]);
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertBars(sql, 'AAA', UP);
    await insertBars(sql, 'BBB', { 0: 100 });
    // XLX: delisted, its last bar 10 sessions back.
    await insertSeries(sql, 'XLX', (back) => (back < 10 ? null : 100));
    const lastBar = addTradingDays(AS_OF, -10);

    const run = await runJob(rt);
    expect(run.status, run.error ?? '').toBe('succeeded');
    // Not asked for: its bar will not come.
    expect(await sql`select symbols from enrichment.backfills where requested_by = ${`refresh-rs@${AS_OF}`}`).toEqual([]);
    const rows = await sql<{ symbol: string; rs_score: number | null; rs_sector_score: number | null; rs_rating: number | null; note: string | null }[]>`
      select symbol, rs_score, rs_sector_score, rs_rating, note from market.rs_scores where as_of_date = ${AS_OF} and symbol in ('AAA', 'BBB') order by symbol`;
    const etfNote = `stale: no 1d bar since ${lastBar} (5 sessions or more); not waited for or rated; delisted? bullpen universe remove XLX`;
    for (const row of rows) {
      expect(row.rs_score).not.toBeNull();
      expect(row.rs_sector_score).toBeNull();
      expect(row.note).toBe(`sector ETF XLX unavailable (${etfNote}): rs_sector_score not computed`);
    }
    expect(rows.map((r) => r.rs_rating)).toEqual([99, 1]);
    expect(run.summary).toMatchObject({ symbols: 4, scored: 3, rated: 2, unscored: 1, sectorEtfsUnavailable: [{ etf: 'XLX', members: 2, reason: etfNote }] });
    expect(run.summary?.warnings).toEqual([
      `sector ETF XLX unavailable (${etfNote}): 2 members scored without rs_sector_score; point them at a live ETF (bullpen universe add SYMBOL --etf TICKER) or clear it (--no-etf)`,
    ]);
  });

  it('retries while a sector ETF lacks the day\'s bar, then on the last attempt scores its members without their sector score instead of failing', async () => {
    const { rt } = await withCsvSource('rs-typo-etf', { JOB_ATTEMPTS: '2' });
    const sql = rt.db.sql;
    // XLKK: a typo in the universe; the vendor has no such ticker.
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['XLKK', 'Information Technology', null, 'etf'],
      ['AAA', 'Information Technology', 'XLKK', 'stock'],
    ]);
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertBars(sql, 'AAA', UP);

    const run = await runJob(rt);
    expect(run.status, run.error ?? '').toBe('succeeded');
    const events = await sql<{ outcome: string }[]>`select outcome from ops.job_run_events where job = 'refresh-rs' order by event_id`;
    expect(events.map((e) => e.outcome)[0]).toBe('retrying');
    const requests = await sql<{ symbols: string[] }[]>`select symbols from enrichment.backfills where requested_by = ${`refresh-rs@${AS_OF}`} order by created_at`;
    expect(requests.map((r) => r.symbols)).toEqual([['XLKK'], ['XLKK']]);
    const by = await loadScores(sql);
    expect(by.AAA?.rs_score).toBeCloseTo(4 + 0.2 * (100 * (120 / 90 - 1) - 10) + 8 + 18, 9);
    expect(by.AAA?.note).toBe(`sector ETF XLKK unavailable (no 1d bars in the year before ${AS_OF}): rs_sector_score not computed`);
    expect(run.summary).toMatchObject({ scored: 2, rated: 1, sectorEtfsUnavailable: [{ etf: 'XLKK', members: 1 }] });
    expect(run.summary?.warnings).toEqual([
      `sector ETF XLKK unavailable (no 1d bars in the year before ${AS_OF}): 1 member scored without rs_sector_score; point it at a live ETF (bullpen universe add SYMBOL --etf TICKER) or clear it (--no-etf)`,
    ]);
  });

  it('refuses a run for a session that has not closed yet, naming its close (early closes too), without retries or writes', async () => {
    runtime = await createTestRuntime('rs-open', [refreshRs]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
    ]);
    // The session after today's has not closed whenever this runs. Its bars are what a vendor
    // serves mid-session (a partial bar), as enrichment would have stored them.
    const open = nextTradingDay(tradingDateOf(new Date(), 'America/New_York'));
    await insertSeries(sql, 'SPY', (back) => (back === 0 ? 104 : 100), 260, open);
    await insertSeries(sql, 'AAA', (back) => (back === 0 ? 90 : 100), 260, open);

    const run = await runJob(runtime, open);
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(new RegExp(`^refresh-rs ${open}: the NYSE session has not closed yet \\(it closes at ${earlyClose(open) ?? '16:00'} America/New_York, \\d{4}-\\d{2}-\\d{2}T\\d{2}:00:00\\.000Z\\); `));
    expect(run.error).toContain('RS is scored from closing bars: the scheduled evening run scores this session');
    // Bad input: failed for good at once, nothing scored or published.
    const events = await sql<{ outcome: string }[]>`select outcome from ops.job_run_events where job = 'refresh-rs' and partition = ${open}`;
    expect(events.map((e) => e.outcome)).toEqual(['failed']);
    expect(await loadScores(sql, open)).toEqual({});
    expect(await sql`select 1 from market.sector_mapping where last_updated is not null`).toHaveLength(0);

    // The day after Thanksgiving closes at 13:00 New York (18:00 UTC in November).
    const early = await runJob(runtime, '2099-11-27');
    expect(early.status).toBe('failed');
    expect(early.error).toMatch(/^refresh-rs 2099-11-27: the NYSE session has not closed yet \(it closes at 13:00 America\/New_York, 2099-11-27T18:00:00\.000Z\); /);
  });

  it('with SPY not in the universe, writes the NULL rows naming it instead of waiting on enrichment and failing as if the data were late', async () => {
    const { rt } = await withCsvSource('rs-no-spy', { JOB_ATTEMPTS: '1' });
    const sql = rt.db.sql;
    // `bullpen universe remove SPY`: enrichment-daily no longer fetches it, so it has no bar for the day.
    await universe(sql, [['AAA', 'Information Technology', null, 'stock']]);
    await insertBars(sql, 'AAA', UP);

    const run = await runJob(rt);
    expect(run.error).toBeNull();
    expect(run.status).toBe('succeeded');
    expect(run.summary).toMatchObject({ symbols: 1, scored: 0, current: false });
    expect((await loadScores(sql)).AAA?.note).toBe('benchmark SPY is not in market.sector_mapping');
    expect(await sql`select 1 from enrichment.backfills where requested_by = ${`refresh-rs@${AS_OF}`}`).toHaveLength(0);
  });

  it("starts every lookback at SPY's session, whatever bars a symbol lacks: the close on or before that date", async () => {
    runtime = await createTestRuntime('rs-gaps', [refreshRs]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
      ['BBB', 'Information Technology', null, 'stock'],
    ]);
    const drift = (back: number) => 200 * 1.002 ** -back;
    await insertSeries(sql, 'SPY', drift);
    // AAA: SPY's closes, but no bar 10 sessions back (a halt, a chunk enrichment failed to store).
    await insertSeries(sql, 'AAA', (back) => (back === 10 ? null : drift(back)));
    // BBB: no bar on the 3-month lookback's own session: its 3-month return starts from the close before.
    await insertSeries(sql, 'BBB', (back) => (back === 63 ? null : drift(back)));

    const run = await runJob(runtime);
    expect(run.status).toBe('succeeded');
    const by = await loadScores(sql);
    expect(by.SPY?.return_63d).toBeCloseTo(1.002 ** 63 - 1, 12);
    expect(by.AAA?.return_63d).toBeCloseTo(1.002 ** 63 - 1, 12);
    expect(by.AAA?.return_252d).toBeCloseTo(1.002 ** 252 - 1, 12);
    expect(by.AAA?.rs_score).toBeCloseTo(0, 9);
    expect(by.BBB?.return_63d).toBeCloseTo(1.002 ** 64 - 1, 12);
    expect(by.BBB?.return_252d).toBeCloseTo(1.002 ** 252 - 1, 12);
    expect(by.AAA?.note).toBeNull();
  });

  it('leaves crypto members unscored with a note, never reading the next UTC day\'s bar', async () => {
    runtime = await createTestRuntime('rs-crypto', [refreshRs]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
      ['BTC-USD', 'Crypto', null, 'crypto'],
    ]);
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertBars(sql, 'AAA', { 0: 120 });
    // 24x7: a 1d bar every UTC midnight, through the day after the as-of date (close 999 then).
    const days = Array.from({ length: 402 }, (_, i) => addCalendarDays(AS_OF, i - 400));
    const closes = days.map((d) => (d > AS_OF ? 999 : 100));
    await sql`
      insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source)
      select 'BTC-USD', '1d', (d || 'T00:00:00Z')::timestamptz, c, c, c, c, 1000, 'test' from unnest(${days}::text[], ${closes}::float8[]) as u(d, c)`;

    const run = await runJob(runtime);
    expect(run.status).toBe('succeeded');
    expect(run.summary).toMatchObject({ symbols: 3, scored: 2, unscored: 1 });
    const by = await loadScores(sql);
    expect(by['BTC-USD']).toMatchObject({ close: null, return_63d: null, rs_score: null, rs_rating: null });
    expect(by['BTC-USD']?.note).toMatch(/^crypto: not scored/);
    expect(by.AAA?.rs_score).toBeCloseTo(10, 9);
  });

  it('publishes a score too large for numeric(10,4) instead of failing the run', async () => {
    runtime = await createTestRuntime('rs-overflow', [refreshRs]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['ZZZ', 'Information Technology', null, 'stock'],
    ]);
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertSeries(sql, 'ZZZ', (back) => (back === 0 ? 50 : 0.001)); // +4,999,900%

    const run = await runJob(runtime);
    expect(run.status, run.error ?? '').toBe('succeeded');
    const [scored] = await sql<{ rs_score: number }[]>`select rs_score from market.rs_scores where symbol = 'ZZZ' and as_of_date = ${AS_OF}`;
    expect(scored?.rs_score).toBeCloseTo((49_999 - 0.1) * 100, 6);
    const [current] = await sql<{ rs_score: string }[]>`select rs_score::text from market.sector_mapping where symbol = 'ZZZ'`;
    expect(current?.rs_score).toBe('4999890.0000');
  });

  it('names the benchmark when SPY lacks a year of history, and keeps the current values instead of publishing NULLs', async () => {
    runtime = await createTestRuntime('rs-short-spy', [refreshRs]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
    ]);
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertBars(sql, 'AAA', UP);
    // The session before first (AS_OF is the newest closed session the tests may name).
    expect((await runJob(runtime, addTradingDays(AS_OF, -1))).status).toBe('succeeded');
    const before = await sql`select symbol, rs_score, rs_rating, is_sector_leader from market.sector_mapping order by symbol`;
    expect(before.find((r) => r.symbol === 'AAA')?.rs_rating).toBe(1);

    // The next session: SPY's stored history now starts 100 sessions back.
    await sql`delete from market.bars where symbol = 'SPY' and ts < ${sessionTs(99).toISOString()}::timestamptz`;

    const run = await runJob(runtime);
    expect(run.status).toBe('succeeded');
    expect(run.summary).toMatchObject({ scored: 0, current: false });
    const by = await loadScores(sql);
    const note = `benchmark SPY: 100 sessions up to ${AS_OF}, 253 needed for the 12-month return`;
    expect(by.AAA).toMatchObject({ rs_score: null, note });
    expect(by.SPY).toMatchObject({ rs_score: null, note });
    expect(await sql`select symbol, rs_score, rs_rating, is_sector_leader from market.sector_mapping order by symbol`).toEqual(before);
  });

  it("keeps an older date's rows of a symbol removed since when that date is scored again", async () => {
    runtime = await createTestRuntime('rs-removed', [refreshRs]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    await universe(sql, [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAA', 'Information Technology', null, 'stock'],
      ['BBB', 'Information Technology', null, 'stock'],
    ]);
    await insertBars(sql, 'SPY', { 0: 110 });
    await insertBars(sql, 'AAA', UP);
    await insertBars(sql, 'BBB', { 0: 100 });
    const older = addTradingDays(AS_OF, -1);
    expect((await runJob(runtime, older)).status).toBe('succeeded');
    expect((await runJob(runtime)).status).toBe('succeeded');
    await sql`delete from market.sector_mapping where symbol = 'BBB'`;

    // The older date again (a retry, a catch-up): BBB was in the universe then; its row is history.
    expect((await runJob(runtime, older)).status).toBe('succeeded');
    expect(Object.keys(await loadScores(sql, older))).toEqual(['AAA', 'BBB', 'SPY']);
    // The newest date again: the current table lists the universe as it is.
    expect((await runJob(runtime)).status).toBe('succeeded');
    expect(Object.keys(await loadScores(sql))).toEqual(['AAA', 'SPY']);
  });
});
