/**
 * Backfills under trouble, against the fake Polygon server: a worker SIGKILLed mid-chunk and
 * resumed equals an uninterrupted run bar for bar; a shutdown mid-fetch is no failure; 429s slow
 * a backfill without failing it and hold polygon's series only, and 5xx use the attempts of one
 * chunk only; each source keeps to its own budget, whichever is the default; garbage fails one chunk with a clear error
 * while the rest go on; cancel, then resume; a resume leaves no stale error.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { computeFeatures, createFeatureState } from '../../src/analytics/features.ts';
import { dayNumberOf, type Timeframe } from '../../src/analytics/timeframes.ts';
import { cancelBackfill, createBackfill, createFlowEnqueuer, describeBackfill, finishBackfill, planBackfill, resumeBackfill, type BackfillReport } from '../../src/enrichment/backfills.ts';
import { createPolygonProvider } from '../../src/enrichment/providers/polygon.ts';
import { generateSyntheticBars } from '../../src/enrichment/providers/synthetic.ts';
import { runSeriesStep, type StepDeps } from '../../src/enrichment/series-step.ts';
import type { Sql } from '../../src/db.ts';
import { createLogger } from '../../src/logger.ts';
import { enrichmentBackfill } from '../../jobs/enrichment-backfill.ts';
import { fakePolygonBars, startFakePolygon, type FakePolygon } from '../helpers/fake-polygon.ts';
import { startWorkerProcess, waitFor, type Child } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let runtime: TestRuntime | undefined;
let fake: FakePolygon | undefined;
let child: Child | undefined;
let proxy: Server | undefined;

afterEach(async () => {
  child?.kill('SIGKILL');
  await child?.exited;
  child = undefined;
  await runtime?.close();
  runtime = undefined;
  await fake?.close();
  fake = undefined;
  if (proxy) {
    const server = proxy;
    proxy = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

const NOW = Date.parse('2026-11-20T15:00:00Z');
const TERMINAL = ['completed', 'failed', 'cancelled'];

function polygonEnv(f: FakePolygon, extra: Record<string, string> = {}): Record<string, string> {
  return { MARKET_DATA_SOURCE: 'polygon', POLYGON_API_KEY: f.apiKey, POLYGON_BASE_URL: f.url, ENRICHMENT_RATE_MAX: '0', ENRICHMENT_RETRY_BASE_MS: '20', ...extra };
}

async function request(rt: TestRuntime, input: Record<string, unknown>, source = 'polygon'): Promise<string> {
  const enqueue = createFlowEnqueuer(rt.workerRuntime.flows, enrichmentBackfill, rt.workerRuntime.jobOptions);
  const plan = planBackfill(input, { defaultSource: source as never, maxBars: 50_000_000, now: NOW });
  return (await createBackfill({ db: rt.db.sql, enqueue }, plan)).backfillId;
}

async function waitForStatus(sql: Sql, id: string, statuses: string[], timeoutMs = 60_000): Promise<BackfillReport> {
  let report: BackfillReport | undefined;
  await waitFor(
    async () => {
      report = await describeBackfill(sql, id);
      return statuses.includes(String(report?.status));
    },
    timeoutMs,
    () => `backfill ${id} to be ${statuses.join('/')}: ${JSON.stringify(report)}`,
  );
  return report as BackfillReport;
}

async function storedBars(sql: Sql, symbol: string, timeframe: string) {
  const rows = await sql<{ ts: Date; open: number; high: number; low: number; close: number; volume: number }[]>`
    select ts, open, high, low, close, volume from market.bars where symbol = ${symbol} and timeframe = ${timeframe} order by ts`;
  return rows.map((b) => ({ ts: b.ts.getTime(), open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume }));
}

async function storedFeatureKeys(sql: Sql, symbol: string, timeframe: string) {
  const rows = await sql<{ ts: Date; ema_50: number | null; rsi_14: number | null; atr_14: number | null; volatility_50: number | null; vsa_no_demand: boolean }[]>`
    select ts, ema_50, rsi_14, atr_14, volatility_50, vsa_no_demand from market.features where symbol = ${symbol} and timeframe = ${timeframe} order by ts`;
  return rows.map((f) => [f.ts.getTime(), f.ema_50, f.rsi_14, f.atr_14, f.volatility_50, f.vsa_no_demand]);
}

function wholeSeriesFeatureKeys(bars: ReturnType<typeof fakePolygonBars>, timeframe: Timeframe) {
  return computeFeatures(bars, bars.map((b) => dayNumberOf(b.ts, 'nyse')), timeframe, createFeatureState()).rows.map((f) => [
    f.ts,
    f.ema_50,
    f.rsi_14,
    f.atr_14,
    f.volatility_50,
    f.vsa_no_demand,
  ]);
}

describe('backfills under trouble', () => {
  it('SIGKILL mid-chunk, then another worker resumes: bars and features equal an uninterrupted run, none twice, none missing', async () => {
    fake = await startFakePolygon({ delayMs: 150 });
    const env = polygonEnv(fake, { LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000' });
    runtime = await createTestRuntime('enrich-kill', [enrichmentBackfill], env);
    const sql = runtime.db.sql;
    const id = await request(runtime, { symbols: 'AAPL,MSFT', timeframes: '1m', from: '2024-01-01', to: '2024-04-30' });
    child = await startWorkerProcess({ ...runtime.env, JOBS: 'catalogue' });
    // Kill once some chunks are committed and a fetch is in flight: the worker is inside a chunk.
    await waitFor(
      async () => {
        const [row] = await sql<{ done: number }[]>`select coalesce(sum(chunks_done), 0)::int as done from enrichment.backfill_state where backfill_job_id = ${id}`;
        return (row?.done ?? 0) >= 3 && fake!.requests.some((r) => r.status === 0);
      },
      30_000,
      () => 'three chunks committed and a fetch in flight',
    );
    child.kill('SIGKILL');
    await child.exited;
    child = undefined;
    const before = await describeBackfill(sql, id);
    expect(before?.status).toBe('in_progress');
    expect(Number(before?.chunks_done)).toBeLessThan(8);

    runtime.startWorkers();
    const report = await waitForStatus(sql, id, TERMINAL);
    expect(report).toMatchObject({ status: 'completed', chunks_total: 8, chunks_done: 8, chunks_failed: 0 });

    for (const symbol of ['AAPL', 'MSFT']) {
      const expected = fakePolygonBars({ symbol, assetClass: 'stock', timeframe: '1m', from: '2024-01-01', to: '2024-04-30' });
      expect(expected.length).toBeGreaterThan(30_000);
      expect(await storedBars(sql, symbol, '1m')).toEqual(expected);
      expect(await storedFeatureKeys(sql, symbol, '1m')).toEqual(wholeSeriesFeatureKeys(expected, '1m'));
    }
    // Each month was stored once; the chunk the kill interrupted was fetched again, nothing else.
    const [stored] = await sql<{ n: number }[]>`select count(*)::int as n from enrichment.fetch_log where success and backfill_job_id = ${id}`;
    expect(stored?.n).toBe(8);
    const quality = await sql<{ d: string; total_records: number; gaps_detected: number }[]>`
      select metric_date::text as d, total_records, gaps_detected from enrichment.data_quality_metrics where symbol = 'AAPL' and timeframe = '1m' order by 1`;
    expect(quality.filter((q) => q.total_records !== 390 || q.gaps_detected !== 0)).toEqual([]);
    expect(quality).toHaveLength(83); // NYSE sessions January–April 2024
  });

  it('a worker shutting down during a fetch records no failed fetch, retry or error, and stops at once', async () => {
    // The answer takes 2 s; the worker shuts down (abort reason "shutdown", as stopWorkers gives it) while it is out.
    fake = await startFakePolygon({ delayMs: 2000 });
    runtime = await createTestRuntime('enrich-abort', [enrichmentBackfill], polygonEnv(fake));
    const sql = runtime.db.sql;
    // Queued but never taken (no worker runs here): the series' step is run in this process.
    const id = await request(runtime, { symbols: 'AAPL', timeframes: '1d', from: '2024-01-01', to: '2024-03-28' });
    const controller = new AbortController();
    const deps: StepDeps = {
      db: sql,
      provider: () => createPolygonProvider({ apiKey: fake!.apiKey, baseUrl: fake!.url }),
      logger: createLogger({ level: 'silent', pretty: false }),
      retries: 3,
      retryBaseMs: 5000,
      exchangeTz: 'America/New_York',
      signal: controller.signal,
    };
    const step = runSeriesStep(deps, { backfillId: id, symbol: 'AAPL', timeframe: '1d' }).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await waitFor(() => fake!.requests.length > 0, 10_000, () => 'the fetch to reach the fake');
    const aborted = Date.now();
    controller.abort('shutdown');
    // It ends with the abort, without finishing the step or sitting out a retry delay (2.5–5 s here).
    expect(await step).toBe('shutdown');
    expect(Date.now() - aborted).toBeLessThan(1000);
    // An interrupted fetch is no failure of the source: none in the fetch log (its failures feed
    // GET /enrichment/metrics' success rate), no retry counted, no error on the series.
    expect(await sql`select error from enrichment.fetch_log where not success`).toEqual([]);
    const [state] = await sql<{ retry_count: number; error_message: string | null }[]>`
      select retry_count, error_message from enrichment.backfill_state where backfill_job_id = ${id}`;
    expect(state).toEqual({ retry_count: 0, error_message: null });
  });

  it("a long backfill's attempts are per chunk: one transient 5xx in every chunk does not fail it", async () => {
    // Every chunk's first fetch gets a 503, its retry succeeds. With ENRICHMENT_CHUNK_RETRIES=0
    // each 503 uses one of the job's attempts (JOB_ATTEMPTS 3): three yearly chunks, one series
    // job, three 503s. Each chunk succeeded at its retry, so the request completes.
    fake = await startFakePolygon();
    const upstream = fake.url;
    const seen = new Set<string>();
    proxy = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://proxy').pathname;
      if (!seen.has(path)) {
        seen.add(path);
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: 'ERROR', request_id: 'x', error: 'Service temporarily unavailable' }));
        return;
      }
      fetch(`${upstream}${req.url ?? '/'}`)
        .then(async (answer) => {
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
          res.end(await answer.text());
        })
        .catch(() => {
          res.writeHead(502);
          res.end();
        });
    });
    await new Promise<void>((resolve) => proxy!.listen(0, '127.0.0.1', () => resolve()));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    runtime = await createTestRuntime('enrich-5xx', [enrichmentBackfill], polygonEnv(fake, { POLYGON_BASE_URL: proxyUrl, ENRICHMENT_CHUNK_RETRIES: '0', JOB_ATTEMPTS: '3' }));
    runtime.startWorkers();
    const id = await request(runtime, { symbols: 'AAPL', timeframes: '1d', from: '2021-01-01', to: '2023-12-31' });
    expect(await waitForStatus(runtime.db.sql, id, TERMINAL)).toMatchObject({ status: 'completed', chunks_total: 3, chunks_done: 3, chunks_failed: 0 });
    expect(seen.size).toBe(3);
  });

  it('429s slow a backfill down without failing it or using its attempts', async () => {
    fake = await startFakePolygon({ fail: [{ kind: '429', times: 3, retryAfterSeconds: 1 }] });
    runtime = await createTestRuntime('enrich-429', [enrichmentBackfill], polygonEnv(fake));
    runtime.startWorkers();
    const started = Date.now();
    const id = await request(runtime, { symbols: 'AAPL', timeframes: '1h', from: '2023-06-01', to: '2024-02-01' });
    const report = await waitForStatus(runtime.db.sql, id, TERMINAL);
    expect(report).toMatchObject({ status: 'completed', chunks_done: 2, chunks_failed: 0 });
    // Each 429 paused polygon for its Retry-After (1 s).
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
    const log = await runtime.db.sql<{ success: boolean; error: string | null }[]>`select success, error from enrichment.fetch_log order by id`;
    expect(log.filter((l) => !l.success)).toHaveLength(3);
    expect(log.filter((l) => !l.success).every((l) => /exceeded the maximum requests/.test(l.error ?? ''))).toBe(true);
    // The series paused for each 429 and went on chunk by chunk: one run, one attempt.
    const runs = await runtime.db.sql<{ status: string; attempts: number; run_count: number }[]>`
      select status, attempts, run_count from ops.job_runs where job = 'enrichment-backfill' and partition like '%AAPL%'`;
    expect(runs).toEqual([{ status: 'succeeded', attempts: 1, run_count: 1 }]);
    expect(await storedBars(runtime.db.sql, 'AAPL', '1h')).toEqual(fakePolygonBars({ symbol: 'AAPL', assetClass: 'stock', timeframe: '1h', from: '2023-01-01', to: '2024-02-01' }));
  });

  it('a 429 with Retry-After: 0 (or a date already past) pauses polygon for a moment, without using an attempt', async () => {
    fake = await startFakePolygon({ fail: [{ kind: '429', times: 3, retryAfterSeconds: 0 }] });
    runtime = await createTestRuntime('enrich-429-zero', [enrichmentBackfill], polygonEnv(fake));
    runtime.startWorkers();
    const id = await request(runtime, { symbols: 'AAPL', timeframes: '1d', from: '2024-01-02', to: '2024-03-28' });
    const report = await waitForStatus(runtime.db.sql, id, TERMINAL);
    expect(report).toMatchObject({ status: 'completed', chunks_done: 1, chunks_failed: 0 });
    expect(fake.requests.map((r) => r.status)).toEqual([429, 429, 429, 200]);
    const runs = await runtime.db.sql<{ status: string; attempts: number }[]>`select status, attempts from ops.job_runs where job = 'enrichment-backfill' and partition like '%AAPL%'`;
    expect(runs).toEqual([{ status: 'succeeded', attempts: 1 }]);
  });

  it("a 429 holds every polygon series, but no other source's: a synthetic backfill asked for during the pause runs through it", async () => {
    fake = await startFakePolygon({ fail: [{ ticker: 'AAPL', kind: '429', retryAfterSeconds: 5 }] });
    runtime = await createTestRuntime('enrich-429-provider', [enrichmentBackfill], polygonEnv(fake));
    runtime.startWorkers();
    const sql = runtime.db.sql;
    // AAPL's first fetch is refused; MSFT has ten yearly chunks to fetch one after another.
    const polygonId = await request(runtime, { symbols: 'AAPL,MSFT', timeframes: '1d', from: '2015-01-01', to: '2024-12-31' });
    await waitFor(() => fake!.requests.some((r) => r.status === 429), 30_000, () => 'the 429');
    const refused = fake.requests.find((r) => r.status === 429)!;
    const syntheticId = await request(runtime, { symbols: 'IBM', timeframes: '1d', from: '2014-01-01', to: '2023-12-31' }, 'synthetic');
    const synthetic = await waitForStatus(sql, syntheticId, TERMINAL);
    expect(synthetic).toMatchObject({ status: 'completed', chunks_done: 10 });
    // Done before polygon's pause ended: polygon's 429 did not hold the queue.
    expect(Date.parse(String(synthetic.finished_at))).toBeLessThan(refused.at + 5000);

    expect(await waitForStatus(sql, polygonId, TERMINAL)).toMatchObject({ status: 'completed', chunks_failed: 0 });
    // Every polygon series was held, MSFT too: fetches already under way when the pause began may
    // land just after it; none later, until it ends.
    const during = fake.requests.filter((r) => r.at > refused.at + 300 && r.at < refused.at + 4900);
    expect(during.map((r) => r.path)).toEqual([]);
    expect(fake.requests.filter((r) => r.status === 200)).toHaveLength(20);
  });

  it("where polygon is the default source, ENRICHMENT_RATE_MAX meters polygon's fetches only: a synthetic backfill is not held to it", async () => {
    fake = await startFakePolygon();
    runtime = await createTestRuntime('enrich-default-budget', [enrichmentBackfill], polygonEnv(fake, { ENRICHMENT_RATE_MAX: '2', ENRICHMENT_RATE_WINDOW_MS: '60000' }));
    runtime.startWorkers();
    const sql = runtime.db.sql;
    // Three one-chunk polygon series: two are fetched, the third waits a minute for the budget.
    const polygonId = await request(runtime, { symbols: 'AAPL,MSFT,IBM', timeframes: '1d', from: '2024-01-02', to: '2024-03-28' });
    await waitFor(() => fake!.requests.length >= 2, 30_000, () => 'two polygon fetches');
    // Twenty synthetic chunks, each its own step on the same queue.
    const syntheticId = await request(runtime, { symbols: 'KO,PEP', timeframes: '1d', from: '2014-01-01', to: '2023-12-31', source: 'synthetic' });
    expect(await waitForStatus(sql, syntheticId, TERMINAL, 30_000)).toMatchObject({ status: 'completed', chunks_done: 20 });
    expect(fake.requests).toHaveLength(2);
    expect(await describeBackfill(sql, polygonId)).toMatchObject({ status: 'in_progress', chunks_done: 2 });
  });

  it("a polygon backfill on a deployment whose default source is synthetic keeps to polygon's budget across worker processes; synthetic series go unmetered", async () => {
    // The fake refuses a third request within 2.7 s; the budget allows two per 3 s (the margin
    // is the time a granted request takes to arrive). A 503 makes one fetch retry in its step:
    // the retry is a request too, so seven requests take four windows.
    fake = await startFakePolygon({ maxPerWindow: 2, windowMs: 2700, fail: [{ ticker: 'MSFT', kind: '503' }] });
    runtime = await createTestRuntime('enrich-budget', [enrichmentBackfill], {
      POLYGON_API_KEY: fake.apiKey,
      POLYGON_BASE_URL: fake.url,
      POLYGON_RATE_MAX: '2',
      POLYGON_RATE_WINDOW_MS: '3000',
      ENRICHMENT_RETRY_BASE_MS: '20',
    });
    expect(runtime.config.marketDataSource).toBe('synthetic');
    runtime.startWorkers();
    child = await startWorkerProcess({ ...runtime.env, JOBS: 'catalogue' });
    const sql = runtime.db.sql;
    const polygonId = await request(runtime, { symbols: 'AAPL,MSFT', timeframes: '1d', from: '2021-01-01', to: '2023-12-31', source: 'polygon' }, 'synthetic');
    const syntheticId = await request(runtime, { symbols: 'IBM,KO', timeframes: '1d', from: '2019-01-01', to: '2023-12-31' }, 'synthetic');
    const polygon = await waitForStatus(sql, polygonId, TERMINAL);
    expect(polygon).toMatchObject({ status: 'completed', chunks_done: 6, chunks_failed: 0 });
    expect(fake.requests.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 503]);
    const synthetic = await waitForStatus(sql, syntheticId, TERMINAL);
    expect(synthetic).toMatchObject({ status: 'completed', chunks_done: 10 });
    // Ten synthetic chunks did not wait behind six polygon ones: synthetic has no budget to ask.
    expect(Date.parse(String(synthetic.finished_at))).toBeLessThan(Date.parse(String(polygon.finished_at)));
    expect(await sql`select provider from enrichment.provider_budget`).toEqual([{ provider: 'polygon' }]);
  });

  it('a chunk another source stored is fetched again from the source asked for, whose bars replace the others', async () => {
    fake = await startFakePolygon();
    runtime = await createTestRuntime('enrich-source', [enrichmentBackfill], polygonEnv(fake));
    runtime.startWorkers();
    const sql = runtime.db.sql;
    const input = { symbols: 'AAPL', timeframes: '1d', from: '2023-01-01', to: '2023-12-31' };
    expect(await waitForStatus(sql, await request(runtime, input, 'synthetic'), TERMINAL)).toMatchObject({ status: 'completed', chunks_done: 1 });
    const synthetic = generateSyntheticBars({ symbol: 'AAPL', assetClass: 'stock', timeframe: '1d', from: '2023-01-01', to: '2023-12-31' });
    expect(await storedBars(sql, 'AAPL', '1d')).toEqual(synthetic);
    // A bar the next source will not send (a Saturday's): it goes too, kept as a correction.
    const saturday = new Date('2023-07-08T04:00:00Z');
    await sql`insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source) values ('AAPL', '1d', ${saturday}, 1, 1, 1, 1, 1, 'synthetic')`;

    const again = await waitForStatus(sql, await request(runtime, input, 'polygon'), TERMINAL);
    expect(again).toMatchObject({ status: 'completed', chunks_skipped: 0, chunks_failed: 0 });
    expect(fake.requests.filter((r) => r.status === 200)).toHaveLength(1);
    const polygon = fakePolygonBars({ symbol: 'AAPL', assetClass: 'stock', timeframe: '1d', from: '2023-01-01', to: '2023-12-31' });
    expect(await storedBars(sql, 'AAPL', '1d')).toEqual(polygon);
    expect(await sql`select distinct source from market.bars where symbol = 'AAPL'`).toEqual([{ source: 'polygon' }]);
    expect(await storedFeatureKeys(sql, 'AAPL', '1d')).toEqual(wholeSeriesFeatureKeys(polygon, '1d'));
    const [removed] = await sql<{ old_value: string; new_value: string | null }[]>`
      select old_value, new_value from enrichment.data_corrections where field_corrected = 'bar' and ts = ${saturday}`;
    expect(removed).toEqual({ old_value: JSON.stringify({ open: 1, high: 1, low: 1, close: 1, volume: 1, source: 'synthetic' }), new_value: null });
    const [changed] = await sql<{ n: number }[]>`select count(*)::int as n from enrichment.data_corrections where reason = 'source_updated' and field_corrected = 'close'`;
    expect(changed?.n).toBeGreaterThan(200);
    const [ledger] = await sql<{ source: string; covered_to: string }[]>`select source, covered_to::text from enrichment.chunks where symbol = 'AAPL' and timeframe = '1d'`;
    expect(ledger).toEqual({ source: 'polygon', covered_to: '2023-12-31' });

    // The same request from polygon again: its ledger row now holds, nothing is fetched.
    const requestsBefore = fake.requests.length;
    expect(await waitForStatus(sql, await request(runtime, input, 'polygon'), TERMINAL)).toMatchObject({ status: 'completed', chunks_skipped: 1 });
    expect(fake.requests.length).toBe(requestsBefore);
  });

  it('a source that answers a chunk with no bars leaves the bars another source stored there', async () => {
    fake = await startFakePolygon({ fail: [{ kind: 'empty' }] });
    runtime = await createTestRuntime('enrich-empty-source', [enrichmentBackfill], polygonEnv(fake));
    runtime.startWorkers();
    const sql = runtime.db.sql;
    const input = { symbols: 'AAPL', timeframes: '1d', from: '2023-01-01', to: '2023-12-31' };
    expect(await waitForStatus(sql, await request(runtime, input, 'synthetic'), TERMINAL)).toMatchObject({ status: 'completed', chunks_done: 1 });
    const synthetic = await storedBars(sql, 'AAPL', '1d');
    expect(synthetic.length).toBeGreaterThan(200);

    // polygon has nothing for the range: no evidence against the bars already there.
    expect(await waitForStatus(sql, await request(runtime, input, 'polygon'), TERMINAL)).toMatchObject({ status: 'completed', chunks_failed: 0 });
    expect(fake.requests.map((r) => r.status)).toEqual([200]);
    expect(await storedBars(sql, 'AAPL', '1d')).toEqual(synthetic);
    expect(await sql`select distinct source from market.bars where symbol = 'AAPL'`).toEqual([{ source: 'synthetic' }]);
    expect(await sql`select count(*)::int as n from market.features where symbol = 'AAPL' and timeframe = '1d'`).toEqual([{ n: synthetic.length }]);
    expect(await sql`select count(*)::int as n from enrichment.data_corrections`).toEqual([{ n: 0 }]);
  });

  it('a parent of a flow the request no longer runs changes nothing', async () => {
    runtime = await createTestRuntime('enrich-stale-parent', [enrichmentBackfill]);
    const sql = runtime.db.sql;
    const plan = planBackfill({ symbols: 'AAPL', timeframes: '1d', from: '2024-01-02', to: '2024-03-28' }, { defaultSource: 'synthetic', maxBars: 50_000_000, now: NOW });
    const { backfillId } = await createBackfill({ db: sql, enqueue: async () => ({ jobId: 'current-parent' }) }, plan);
    // An earlier flow's parent, run again (a retry in Bull Board) while the current flow's series are pending.
    expect(await finishBackfill(sql, backfillId, 'earlier-parent')).toMatchObject({ status: 'queued', summary: { superseded: true } });
    expect(await describeBackfill(sql, backfillId)).toMatchObject({ status: 'queued', series: [{ status: 'pending' }] });
    // The current parent closes it.
    expect((await finishBackfill(sql, backfillId, 'current-parent')).status).toBe('failed');
  });

  it('a chunk of garbage fails with a clear error while the other chunks and series go on; reprocess "failed" fetches only it', async () => {
    fake = await startFakePolygon({ fail: [{ ticker: 'AAPL', kind: 'garbage', times: 1 }] });
    runtime = await createTestRuntime('enrich-garbage', [enrichmentBackfill], polygonEnv(fake));
    runtime.startWorkers();
    const sql = runtime.db.sql;
    const input = { symbols: 'AAPL,MSFT', timeframes: '1d', from: '2022-03-01', to: '2024-06-28' };
    const report = await waitForStatus(sql, await request(runtime, input), TERMINAL);
    expect(report).toMatchObject({ status: 'failed', chunks_total: 6, chunks_done: 6, chunks_failed: 1 });
    expect(String(report.error)).toMatch(/AAPL 1d: polygon AAPL 1d 2022-01-01\.\.2022-12-31: results is not an array/);
    const chunks = await sql<{ symbol: string; chunk_start: string; status: string }[]>`
      select symbol, chunk_start::text, status from enrichment.chunks order by symbol, chunk_start`;
    expect(chunks).toEqual([
      { symbol: 'AAPL', chunk_start: '2022-01-01', status: 'failed' },
      { symbol: 'AAPL', chunk_start: '2023-01-01', status: 'completed' },
      { symbol: 'AAPL', chunk_start: '2024-01-01', status: 'completed' },
      { symbol: 'MSFT', chunk_start: '2022-01-01', status: 'completed' },
      { symbol: 'MSFT', chunk_start: '2023-01-01', status: 'completed' },
      { symbol: 'MSFT', chunk_start: '2024-01-01', status: 'completed' },
    ]);
    // Later chunks succeeding do not make the symbol healthy while its 2022 chunk is a hole.
    const [status] = await sql<{ status: string; error_message: string | null }[]>`select status, error_message from enrichment.status where symbol = 'AAPL'`;
    expect(status).toMatchObject({ status: 'error', error_message: expect.stringMatching(/results is not an array/) });

    const requestsBefore = fake.requests.length;
    const retry = await waitForStatus(sql, await request(runtime, { ...input, reprocess: 'failed' }), TERMINAL);
    expect(retry).toMatchObject({ status: 'completed', chunks_skipped: 5, chunks_failed: 0 });
    expect(fake.requests.length - requestsBefore).toBe(1);
    const [after] = await sql<{ status: string; error_message: string | null }[]>`select status, error_message from enrichment.status where symbol = 'AAPL'`;
    expect(after?.status).not.toBe('error');
    expect(after?.error_message).toBeNull();
    const bars = fakePolygonBars({ symbol: 'AAPL', assetClass: 'stock', timeframe: '1d', from: '2022-01-01', to: '2024-06-28' });
    expect(await storedBars(sql, 'AAPL', '1d')).toEqual(bars);
    // 2023 and 2024 were stored while 2022 was missing; filling it recomputed what follows it.
    const whole = computeFeatures(bars, bars.map((b) => dayNumberOf(b.ts, 'nyse')), '1d', createFeatureState()).rows;
    const features = await sql<{ ts: Date; sma_50: number | null; ema_50: number | null; rsi_14: number | null }[]>`
      select ts, sma_50, ema_50, rsi_14 from market.features where symbol = 'AAPL' and timeframe = '1d' order by ts`;
    expect(features.map((f) => [f.ts.getTime(), f.sma_50, f.ema_50, f.rsi_14])).toEqual(whole.map((f) => [f.ts, f.sma_50, f.ema_50, f.rsi_14]));
  });

  it('a failed refetch of a complete chunk keeps its bars and leaves the symbol out of error ("reprocess failed" has nothing to clear)', async () => {
    fake = await startFakePolygon();
    runtime = await createTestRuntime('enrich-refetch-403', [enrichmentBackfill], polygonEnv(fake));
    runtime.startWorkers();
    const sql = runtime.db.sql;
    const input = { symbols: 'AAPL', timeframes: '1d', from: '2024-01-01', to: '2024-12-31' };
    expect(await waitForStatus(sql, await request(runtime, input), TERMINAL)).toMatchObject({ status: 'completed' });
    // Refetched, the stored chunk gets a 403: the request fails, the chunk stays complete.
    fake.addFaults({ kind: '403' });
    expect(await waitForStatus(sql, await request(runtime, { ...input, reprocess: 'all' }), TERMINAL)).toMatchObject({ status: 'failed', chunks_failed: 1 });
    const [ledger] = await sql<{ status: string }[]>`select status from enrichment.chunks where symbol = 'AAPL' and timeframe = '1d'`;
    expect(ledger?.status).toBe('completed');
    // Nothing is missing, so the symbol is not in error, which nothing would clear: --reprocess
    // failed (the README's remedy) finds no failed chunk and fetches nothing.
    const [status] = await sql<{ status: string }[]>`select status from enrichment.status where symbol = 'AAPL'`;
    expect(status?.status).not.toBe('error');
    const requestsBefore = fake.requests.length;
    expect(await waitForStatus(sql, await request(runtime, { ...input, reprocess: 'failed' }), TERMINAL)).toMatchObject({ status: 'completed', chunks_skipped: 1 });
    expect(fake.requests.length).toBe(requestsBefore);
  });

  it('cancel stops at a chunk boundary keeping the state; resume finishes without fetching a chunk twice', async () => {
    // Two chunk steps a second across the queue, so the backfill is still running when cancelled.
    runtime = await createTestRuntime('enrich-cancel', [enrichmentBackfill], { ENRICHMENT_RATE_MAX: '2', ENRICHMENT_RATE_WINDOW_MS: '1000' });
    runtime.startWorkers();
    const sql = runtime.db.sql;
    const id = await request(runtime, { symbols: 'AAPL,MSFT', timeframes: '5m', from: '2022-01-01', to: '2024-06-30' }, 'synthetic');
    await waitFor(async () => Number((await describeBackfill(sql, id))?.chunks_done) >= 2, 30_000, () => 'two chunks done');
    await cancelBackfill(sql, id);
    const cancelled = await waitForStatus(sql, id, TERMINAL);
    expect(cancelled.status).toBe('cancelled');
    const done = Number(cancelled.chunks_done);
    expect(done).toBeGreaterThanOrEqual(2);
    expect(done).toBeLessThan(Number(cancelled.chunks_total));

    await resumeBackfill({ db: sql, enqueue: createFlowEnqueuer(runtime.workerRuntime.flows, enrichmentBackfill, runtime.workerRuntime.jobOptions) }, id);
    const report = await waitForStatus(sql, id, TERMINAL);
    expect(report).toMatchObject({ status: 'completed', chunks_done: cancelled.chunks_total, chunks_failed: 0, resumes: 1 });
    const [fetches] = await sql<{ n: number }[]>`select count(*)::int as n from enrichment.fetch_log where backfill_job_id = ${id}`;
    expect(fetches?.n).toBe(Number(report.chunks_total));
    for (const symbol of ['AAPL', 'MSFT']) {
      expect(await storedBars(sql, symbol, '5m')).toEqual(generateSyntheticBars({ symbol, assetClass: 'stock', timeframe: '5m', from: '2022-01-01', to: '2024-06-30' }));
    }
  });

  it("resume clears the errors of the series it restarts: one that completes shows none, one that fails again shows why it fails now", async () => {
    // AAPL: its 2021 chunk is garbage (a hole for good), then a 503 on 2022 fails its job (one
    // attempt, no in-step retry). MSFT: a 503 on its first chunk fails its job.
    fake = await startFakePolygon({
      fail: [
        { ticker: 'AAPL', kind: 'garbage' },
        { ticker: 'AAPL', kind: '503' },
        { ticker: 'MSFT', kind: '503' },
      ],
    });
    runtime = await createTestRuntime('enrich-resume-errors', [enrichmentBackfill], polygonEnv(fake, { ENRICHMENT_CHUNK_RETRIES: '0', JOB_ATTEMPTS: '1' }));
    runtime.startWorkers();
    const sql = runtime.db.sql;
    const input = { symbols: 'AAPL,MSFT', timeframes: '1d', from: '2021-01-01', to: '2023-12-31' };
    const id = await request(runtime, input);
    const failed = await waitForStatus(sql, id, TERMINAL);
    expect(failed).toMatchObject({ status: 'failed', chunks_failed: 1 });
    expect(failed.errors.map((e) => [e.symbol, e.error])).toEqual([
      ['AAPL', expect.stringMatching(/HTTP 503/)],
      ['MSFT', expect.stringMatching(/HTTP 503/)],
    ]);
    // Meanwhile another request stores MSFT's chunks: the resumed series finds them all done.
    expect(await waitForStatus(sql, await request(runtime, { ...input, symbols: 'MSFT' }), TERMINAL)).toMatchObject({ status: 'completed' });

    await resumeBackfill({ db: sql, enqueue: createFlowEnqueuer(runtime.workerRuntime.flows, enrichmentBackfill, runtime.workerRuntime.jobOptions) }, id);
    const report = await waitForStatus(sql, id, TERMINAL);
    expect(report).toMatchObject({ status: 'failed', resumes: 1, chunks_failed: 1 });
    const series = Object.fromEntries(report.series.map((s) => [s.symbol, s]));
    expect(series.MSFT).toMatchObject({ status: 'completed', error: null });
    // AAPL fails again for its 2021 hole, which the resumed run did not fill: that, not the 503
    // its earlier run died of, is why.
    expect(series.AAPL).toMatchObject({ status: 'failed', error: expect.stringMatching(/results is not an array/) });
    expect(report.errors.map((e) => [e.symbol, e.error])).toEqual([['AAPL', expect.stringMatching(/results is not an array/)]]);
    expect(report.error).toMatch(/^AAPL 1d: polygon AAPL 1d 2021-01-01\.\.2021-12-31: results is not an array/);
  });

  it('keeps invalid bars out with their reasons while the chunk goes on, and records a refetch that changes a stored bar', async () => {
    fake = await startFakePolygon({ fail: [{ ticker: 'AAPL', kind: 'bad-values', times: 1 }] });
    runtime = await createTestRuntime('enrich-rejects', [enrichmentBackfill], polygonEnv(fake));
    runtime.startWorkers();
    const sql = runtime.db.sql;
    const input = { symbols: 'AAPL', timeframes: '1d', from: '2024-01-02', to: '2024-03-28' };
    const report = await waitForStatus(sql, await request(runtime, input), TERMINAL);
    expect(report).toMatchObject({ status: 'completed', chunks_failed: 0, bars_rejected: 4 });
    const rejects = await sql<{ reason: string; detail: string }[]>`select reason, detail from enrichment.bar_rejects order by ts nulls first, id`;
    expect(rejects.map((r) => r.reason).sort()).toEqual(['non_finite', 'non_finite', 'non_finite', 'ohlc_relation']);
    expect(rejects.find((r) => r.reason === 'ohlc_relation')?.detail).toMatch(/^o .* h .* l .* c /);
    expect(rejects.filter((r) => r.reason === 'non_finite').map((r) => r.detail).sort()).toEqual(['high not a finite number', 'open not a finite number', 'volume not a finite number']);
    const expected = fakePolygonBars({ symbol: 'AAPL', assetClass: 'stock', timeframe: '1d', from: '2024-01-01', to: '2024-03-28' });
    expect(await storedBars(sql, 'AAPL', '1d')).toHaveLength(expected.length - 4);
    const [day] = await sql<{ validation_rate: string; gaps_detected: number }[]>`
      select validation_rate, gaps_detected from enrichment.data_quality_metrics where symbol = 'AAPL' and timeframe = '1d' and total_records > validated_records limit 1`;
    expect(Number(day?.validation_rate)).toBe(0);
    expect(day?.gaps_detected).toBe(1);

    // A stored close that differs from the source: refetching everything restores it and says so.
    await sql`update market.bars set close = close + 1 where symbol = 'AAPL' and timeframe = '1d' and ts = ${new Date(expected[10]!.ts)}`;
    const again = await waitForStatus(sql, await request(runtime, { ...input, reprocess: 'all' }), TERMINAL);
    expect(again).toMatchObject({ status: 'completed', bars_rejected: 0 });
    expect(await storedBars(sql, 'AAPL', '1d')).toEqual(expected);
    const corrections = await sql<{ field_corrected: string; old_value: string; new_value: string; reason: string }[]>`
      select field_corrected, old_value, new_value, reason from enrichment.data_corrections`;
    expect(corrections).toEqual([{ field_corrected: 'close', old_value: String(expected[10]!.close + 1), new_value: String(expected[10]!.close), reason: 'source_updated' }]);
  });
});
