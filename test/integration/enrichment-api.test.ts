/**
 * The enrichment API as a client sees it: trigger (the seed's query-string form and JSON), the
 * backfill report and list, cancel/resume answers, and the seed's status, metrics and quality
 * shapes after small synthetic backfills run by real workers. Last, figures that must agree with
 * each other: rates against their own record counts, and the report against the list.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DateTime } from 'luxon';
import { JOBS } from '../../jobs/index.ts';
import { enrichmentBackfill } from '../../jobs/enrichment-backfill.ts';
import { loadConfig } from '../../src/config.ts';
import { createBackfill, createFlowEnqueuer, planBackfill } from '../../src/enrichment/backfills.ts';
import { createHttpApp, startHttpServer, type HttpDeps, type HttpServer } from '../../src/http/app.ts';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { createLogger } from '../../src/logger.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const CREDENTIALS = { user: 'ops', password: 'enrich-me' };
const AUTH = { authorization: formatBasicAuthorization(CREDENTIALS) };
const MONTH = 'from=2024-03-01&to=2024-03-31';

let rt: TestRuntime;
let server: HttpServer;
/** An app whose enqueuer queues nothing: its backfills stay queued, for cancel/resume answers. */
let idle: HttpServer;

function deps(overrides: Partial<HttpDeps> = {}): HttpDeps {
  return {
    config: rt.config,
    logger: createLogger({ level: 'silent', pretty: false }),
    metrics: rt.metrics,
    queues: rt.queues,
    db: rt.db.sql,
    redis: rt.redis,
    credentials: CREDENTIALS,
    mode: 'full',
    definitions: JOBS,
    listSchedules: async () => [],
    beforeScrape: async () => {},
    enqueueBackfill: createFlowEnqueuer(rt.workerRuntime.flows, enrichmentBackfill, rt.workerRuntime.jobOptions),
    ...overrides,
  };
}

beforeAll(async () => {
  // A small request limit, so "range too large" is cheap to ask for.
  rt = await createTestRuntime('enrichapi', [enrichmentBackfill], { ENRICHMENT_MAX_BARS: '100000' });
  rt.startWorkers();
  server = await startHttpServer(createHttpApp(deps()), '127.0.0.1', 0);
  idle = await startHttpServer(createHttpApp(deps({ enqueueBackfill: async () => ({ jobId: 'not-queued' }) })), '127.0.0.1', 0);
});

afterAll(async () => {
  await server?.close();
  await idle?.close();
  await rt?.close();
});

async function call(method: 'GET' | 'POST', path: string, options: { body?: unknown; auth?: boolean; base?: HttpServer } = {}) {
  const headers: Record<string, string> = options.auth === false ? {} : { ...AUTH };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${(options.base ?? server).url}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function waitForBackfill(id: string): Promise<Record<string, unknown>> {
  let report: Record<string, unknown> = {};
  await waitFor(
    async () => {
      const { status, body } = await call('GET', `/api/v1/backfills/${id}`);
      expect(status).toBe(200);
      report = body;
      return ['completed', 'failed', 'cancelled'].includes(String(report.status));
    },
    60_000,
    () => `backfill ${id} to finish: ${JSON.stringify(report)}`,
  );
  return report;
}

const ids: Record<string, string> = {};

describe('POST /api/v1/enrichment/trigger', () => {
  it('takes the seed’s query-string form and answers 202 with the plan', async () => {
    const { status, body } = await call('POST', `/api/v1/enrichment/trigger?symbol=AAPL&asset_class=stock&timeframes=1d&timeframes=1h&${MONTH}`);
    expect(status).toBe(202);
    expect(body).toMatchObject({
      symbol: 'AAPL',
      symbols: ['AAPL'],
      asset_class: 'stock',
      timeframes: ['1d', '1h'],
      from: '2024-03-01',
      to: '2024-03-31',
      source: 'synthetic',
      status: 'queued',
      // 20 sessions (Good Friday closed): one 1d bar and seven 1h bars each.
      total_records_to_process: 488, // whole chunks: 61 sessions of 2024 through March × (1 + 7) bars
      chunks_total: 2,
    });
    expect(body.backfill_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.job_id).toBe(`enrichment-backfill@${String(body.backfill_id)}`);
    expect(body.estimated_duration_seconds).toBeGreaterThanOrEqual(1);
    expect(Date.parse(String(body.timestamp))).not.toBeNaN();
    ids.aapl = String(body.backfill_id);

    const report = await waitForBackfill(ids.aapl);
    expect(report).toMatchObject({ status: 'completed', chunks_total: 2, chunks_done: 2, chunks_failed: 0, bars_rejected: 0, requested_by: 'api:ops' });
    expect(report.bars_written).toBeGreaterThan(160);
  });

  it('takes a JSON body, which wins over the query string field by field', async () => {
    const { status, body } = await call('POST', `/api/v1/enrichment/trigger?symbol=IGNORED&timeframes=1h&${MONTH}`, {
      body: { symbols: 'MSFT,NVDA', timeframes: ['1d'] },
    });
    expect(status).toBe(202);
    expect(body).toMatchObject({ symbol: 'MSFT', symbols: ['MSFT', 'NVDA'], timeframes: ['1d'], from: '2024-03-01', to: '2024-03-31', total_records_to_process: 122, chunks_total: 2 });
    ids.json = String(body.backfill_id);
    expect(await waitForBackfill(ids.json)).toMatchObject({ status: 'completed', chunks_done: 2 });
  });

  it("estimates a request's duration at its own source's budget: on a polygon deployment, a synthetic request is not paced as polygon", async () => {
    const config = loadConfig({ ...rt.env, MARKET_DATA_SOURCE: 'polygon', POLYGON_API_KEY: 'k', LOG_LEVEL: 'silent' });
    const polygonDeployment = await startHttpServer(createHttpApp(deps({ config, enqueueBackfill: async () => ({ jobId: 'not-queued' }) })), '127.0.0.1', 0);
    const asked: string[] = [];
    try {
      // Ten yearly chunks: ten fetches, at polygon's 5 a minute two minutes at least.
      const range = 'symbol=AAPL&timeframes=1d&from=2014-01-01&to=2023-12-31';
      const synthetic = await call('POST', `/api/v1/enrichment/trigger?${range}&source=synthetic`, { base: polygonDeployment });
      asked.push(String(synthetic.body.backfill_id));
      expect(synthetic.body).toMatchObject({ source: 'synthetic', chunks_total: 10 });
      expect(synthetic.body.estimated_duration_seconds).toBeLessThan(10);
      const polygon = await call('POST', `/api/v1/enrichment/trigger?${range}`, { base: polygonDeployment });
      asked.push(String(polygon.body.backfill_id));
      expect(polygon.body).toMatchObject({ source: 'polygon', chunks_total: 10 });
      expect(polygon.body.estimated_duration_seconds).toBeGreaterThanOrEqual(120);
    } finally {
      await polygonDeployment.close();
      // Never queued: left, they would count as pending in the metrics below.
      await rt.db.sql`delete from enrichment.backfills where backfill_id = any(${asked}::uuid[])`;
    }
  });

  it('asks for credentials', async () => {
    const { status } = await call('POST', `/api/v1/enrichment/trigger?symbol=AAPL`, { auth: false });
    expect(status).toBe(401);
    expect((await call('GET', '/api/v1/enrichment/metrics', { auth: false })).status).toBe(401);
    expect((await call('GET', `/api/v1/backfills/${ids.aapl}`, { auth: false })).status).toBe(401);
  });

  it.each([
    ['unknown timeframes, all of them listed', `symbol=AAPL&timeframes=1d&timeframes=2h&timeframes=3d`, /^Invalid timeframes: \['2h', '3d'\]/],
    ['a missing symbol', `timeframes=1d`, /^symbol: required/],
    ['a malformed symbol', `symbol=AA$PL`, /^symbols\.0: must be/],
    ['an unknown asset class', `symbol=AAPL&asset_class=bond`, /^asset_class: must be one of stock, etf, crypto/],
    ['a malformed date', `symbol=AAPL&from=2024-13-01`, /^from: must be a date YYYY-MM-DD/],
    ['an impossible date', `symbol=AAPL&to=2024-02-30`, /^to: must be a date YYYY-MM-DD/],
    ['from after to', `symbol=AAPL&from=2024-03-02&to=2024-03-01`, /^from: 2024-03-02 is after to 2024-03-01/],
    ['a range too large', `symbol=AAPL&timeframes=1m&from=2023-01-01&to=2024-12-31`, /^range too large: about [\d,]+ bars/],
    ['an unknown source', `symbol=AAPL&source=yahoo`, /^source: must be one of synthetic, csv, polygon/],
    ['a source this deployment cannot reach', `symbol=AAPL&source=polygon&${MONTH}`, /^source: polygon needs POLYGON_API_KEY/],
    ['an unknown reprocess rule', `symbol=AAPL&reprocess=some`, /^reprocess: must be one of missing, failed, all/],
  ])('answers 400 naming the field for %s', async (_label, query, detail) => {
    const { status, body } = await call('POST', `/api/v1/enrichment/trigger?${query}`);
    expect(status).toBe(400);
    expect(Object.keys(body)).toEqual(['detail']);
    expect(body.detail).toMatch(detail);
  });

  it('plans a symbol bullpen tracks as crypto as crypto unless asset_class says otherwise, which wins with a warning', async () => {
    await rt.db.sql`insert into enrichment.status (symbol, asset_class, status) values ('DOGEUSD', 'crypto', 'healthy')`;
    const implicit = await call('POST', `/api/v1/enrichment/trigger?symbol=DOGEUSD&${MONTH}`, { base: idle });
    expect(implicit).toMatchObject({ status: 202, body: { asset_class: 'crypto', warnings: [] } });
    const explicit = await call('POST', `/api/v1/enrichment/trigger?symbol=DOGEUSD&asset_class=stock&${MONTH}`, { base: idle });
    expect(explicit).toMatchObject({
      status: 202,
      body: { asset_class: 'stock', warnings: [expect.stringMatching(/^asked for as stock, but bullpen tracks DOGEUSD as crypto \(enrichment\.status\): planned as stock as asked/)] },
    });
    const ids = [implicit.body.backfill_id, explicit.body.backfill_id].map(String);
    expect(await rt.db.sql`select asset_class from enrichment.backfill_state where backfill_job_id = any(${ids}::uuid[]) order by asset_class`).toEqual([
      { asset_class: 'crypto' },
      { asset_class: 'stock' },
    ]);
    // Gone again, so the metrics below count only the other tests' requests.
    await rt.db.sql`delete from enrichment.backfills where backfill_id = any(${ids}::uuid[])`;
    await rt.db.sql`delete from enrichment.status where symbol = 'DOGEUSD'`;
  });

  it('answers 400 for a JSON body that is not an object, and for bad fields in a body', async () => {
    expect(await call('POST', '/api/v1/enrichment/trigger', { body: ['AAPL'] })).toMatchObject({ status: 400, body: { detail: 'body: must be a JSON object' } });
    const bad = await call('POST', '/api/v1/enrichment/trigger', { body: { symbol: 'AAPL', timeframes: ['1d', '2h', 5] } });
    expect(bad).toMatchObject({ status: 400, body: { detail: expect.stringMatching(/^Invalid timeframes: \['2h', 5\]/) } });
  });
});

describe('backfill requests', () => {
  it('answers 400 for an id that is not a UUID and 404 for an unknown one', async () => {
    expect(await call('GET', '/api/v1/backfills/not-a-uuid')).toMatchObject({ status: 400, body: { detail: expect.stringMatching(/^id: must be a backfill id/) } });
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect(await call('GET', `/api/v1/backfills/${unknown}`)).toMatchObject({ status: 404, body: { detail: `backfill ${unknown} does not exist` } });
    expect((await call('POST', `/api/v1/backfills/${unknown}/cancel`)).status).toBe(404);
    expect((await call('POST', `/api/v1/backfills/${unknown}/resume`)).status).toBe(404);
  });

  it('refuses to cancel or resume a completed backfill with 409', async () => {
    const cancel = await call('POST', `/api/v1/backfills/${ids.aapl}/cancel`);
    expect(cancel).toMatchObject({ status: 409, body: { detail: expect.stringContaining('only a queued or running backfill can be cancelled') } });
    const resume = await call('POST', `/api/v1/backfills/${ids.aapl}/resume`);
    expect(resume).toMatchObject({ status: 409, body: { detail: expect.stringContaining('nothing left to run') } });
  });

  it('cancels a queued backfill with 202, then refuses to resume it while it is cancelling', async () => {
    const created = await call('POST', `/api/v1/enrichment/trigger?symbol=TSLA&timeframes=1d&${MONTH}`, { base: idle });
    expect(created.status).toBe(202);
    const id = String(created.body.backfill_id);
    expect(await call('POST', `/api/v1/backfills/${id}/cancel`, { base: idle })).toMatchObject({ status: 202, body: { backfill_id: id, status: 'cancelling' } });
    expect((await call('POST', `/api/v1/backfills/${id}/resume`, { base: idle })).status).toBe(409);
    expect((await call('POST', `/api/v1/backfills/${id}/cancel`, { base: idle })).status).toBe(409);
  });

  it('of two resumes at once, one is queued (202) and the other refused (409)', async () => {
    const created = await call('POST', `/api/v1/enrichment/trigger?symbol=AMD&timeframes=1d,1h&${MONTH}`, { base: idle });
    expect(created.status).toBe(202);
    const id = String(created.body.backfill_id);
    // Stopped with its series unfinished, as a cancel leaves it.
    await rt.db.sql`update enrichment.backfills set status = 'cancelled', finished_at = now() where backfill_id = ${id}`;
    await rt.db.sql`update enrichment.backfill_state set status = 'cancelled' where backfill_job_id = ${id}`;
    const answers = await Promise.all([1, 2, 3].map(() => call('POST', `/api/v1/backfills/${id}/resume`, { base: idle })));
    expect(answers.map((a) => a.status).sort()).toEqual([202, 409, 409]);
    expect(answers.find((a) => a.status === 409)?.body.detail).toMatch(/is queued: cancel it first, or let it finish/);
    expect(await call('GET', `/api/v1/backfills/${id}`)).toMatchObject({ status: 200, body: { status: 'queued', resumes: 1 } });
    // Gone again, so the metrics below count only the other tests' requests.
    await rt.db.sql`delete from enrichment.backfill_state where backfill_job_id = ${id}`;
    await rt.db.sql`delete from enrichment.backfills where backfill_id = ${id}`;
  });

  it('GET /backfills/:id says why a series whose job failed for good did not end, not only that it failed', async () => {
    // A web process (or CLI) with POLYGON_API_KEY accepts the request; these workers have none,
    // so every step of its series throws a ConfigError naming the setting.
    const plan = planBackfill(
      { symbols: 'NOKEY', timeframes: '1d', from: '2024-01-01', to: '2024-03-28', source: 'polygon' },
      { defaultSource: 'synthetic', maxBars: 50_000_000, now: Date.now() },
    );
    const { backfillId } = await createBackfill({ db: rt.db.sql, enqueue: createFlowEnqueuer(rt.workerRuntime.flows, enrichmentBackfill, rt.workerRuntime.jobOptions) }, plan);
    const report = await waitForBackfill(backfillId);
    expect(report).toMatchObject({ status: 'failed', error: expect.stringMatching(/^NOKEY 1d: .*POLYGON_API_KEY/) });
    expect(report.errors).toEqual([expect.objectContaining({ error: expect.stringMatching(/POLYGON_API_KEY/) })]);
    // Gone again, so the metrics below count only the other tests' requests.
    await rt.db.sql`delete from enrichment.backfill_state where backfill_job_id = ${backfillId}`;
    await rt.db.sql`delete from enrichment.backfills where backfill_id = ${backfillId}`;
  });

  it('lists recent requests, newest first, filtered by status', async () => {
    const { status, body } = await call('GET', '/api/v1/backfills?limit=10');
    expect(status).toBe(200);
    const list = body.backfills as Record<string, unknown>[];
    expect(list.length).toBeGreaterThanOrEqual(3);
    expect(list.find((b) => b.backfill_id === ids.aapl)).toMatchObject({
      status: 'completed',
      symbols: ['AAPL'],
      timeframes: ['1d', '1h'],
      from: '2024-03-01',
      to: '2024-03-31',
      chunks_total: 2,
      chunks_done: 2,
      progress_pct: 100,
    });
    const created = list.map((b) => String(b.created_at));
    expect(created).toEqual([...created].sort().reverse());
    const completed = await call('GET', '/api/v1/backfills?status=completed&limit=1');
    expect((completed.body.backfills as unknown[]).length).toBe(1);
    expect(await call('GET', '/api/v1/backfills?status=done')).toMatchObject({ status: 400, body: { detail: expect.stringMatching(/^status: must be one of/) } });
    expect((await call('GET', '/api/v1/backfills?limit=0')).status).toBe(400);
    // An empty parameter (a blank form field) is absent, as on every route: the defaults apply.
    const blank = await call('GET', '/api/v1/backfills?status=&limit=');
    expect(blank.status).toBe(200);
    expect(blank.body.backfills).toEqual((await call('GET', '/api/v1/backfills?limit=20')).body.backfills);
  });
});

describe('the seed’s read endpoints', () => {
  it('GET /enrichment/status/:symbol reports a historical backfill as stale, with its numbers', async () => {
    const { status, body } = await call('GET', '/api/v1/enrichment/status/aapl');
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(
      [
        'symbol',
        'asset_class',
        'status',
        'last_enrichment_time',
        'data_age_seconds',
        'records_available',
        'quality_score',
        'validation_rate',
        'timeframes_available',
        'next_enrichment',
        'error_message',
        'timestamp',
      ].sort(),
    );
    expect(body).toMatchObject({ symbol: 'AAPL', asset_class: 'stock', status: 'stale', timeframes_available: ['1d', '1h'], validation_rate: 100, error_message: null });
    expect(body.records_available).toBeGreaterThan(160);
    expect(body.quality_score).toBeGreaterThan(0.5);
    expect(body.quality_score).toBeLessThanOrEqual(1);
    // The newest bar is the 1h bar opening 15:00 New York time on 2024-03-28.
    const latest = Date.parse('2024-03-28T19:00:00Z');
    expect(Math.abs(Number(body.data_age_seconds) - (Date.parse(String(body.timestamp)) - latest) / 1000)).toBeLessThan(2);
    const next = DateTime.fromISO(String(body.next_enrichment), { zone: 'America/New_York' });
    expect(next.toFormat('HH:mm')).toBe('01:30');
    expect(next.toMillis()).toBeGreaterThan(Date.now());
    expect(next.toMillis() - Date.now()).toBeLessThanOrEqual(25 * 3600 * 1000);
  });

  it('GET /enrichment/status/:symbol: never enriched is 200 not_enriched; a malformed symbol is 400', async () => {
    expect(await call('GET', '/api/v1/enrichment/status/ZZZZ')).toMatchObject({
      status: 200,
      body: { symbol: 'ZZZZ', status: 'not_enriched', records_available: 0, quality_score: null, data_age_seconds: null, timeframes_available: [] },
    });
    expect(await call('GET', `/api/v1/enrichment/status/${encodeURIComponent('AA$PL')}`)).toMatchObject({ status: 400, body: { detail: expect.stringMatching(/^symbol: /) } });
  });

  it('GET /enrichment/metrics sums the pipeline over the last day', async () => {
    // A recent one too, so the 7-day quality window has days in it.
    const recent = await call('POST', '/api/v1/enrichment/trigger', {
      body: { symbol: 'SPY', asset_class: 'etf', timeframes: '1d', from: DateTime.utc().minus({ days: 10 }).toISODate() },
    });
    expect(recent.status).toBe(202);
    await waitForBackfill(String(recent.body.backfill_id));

    const { status, body } = await call('GET', '/api/v1/enrichment/metrics');
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(['backfill_progress', 'compute_pipeline', 'data_quality', 'fetch_pipeline', 'timestamp']);
    // One fetch per chunk: AAPL 1d + 1h, MSFT 1d, NVDA 1d, and SPY's (one, two early in January).
    const fetches = 4 + Number(recent.body.chunks_total);
    expect(body.fetch_pipeline).toMatchObject({ total_fetches: fetches, successful: fetches, success_rate: 100, api_quota_remaining: null });
    expect(typeof (body.fetch_pipeline as Record<string, unknown>).avg_response_time_ms).toBe('number');
    expect(body.compute_pipeline).toMatchObject({ total_computations: fetches, successful: fetches, success_rate: 100 });
    expect(typeof (body.compute_pipeline as Record<string, unknown>).avg_computation_time_ms).toBe('number');
    const quality = body.data_quality as Record<string, number>;
    expect(quality.symbols_tracked).toBe(4);
    expect(quality.avg_validation_rate).toBeGreaterThan(0);
    expect(quality.avg_validation_rate).toBeLessThanOrEqual(100);
    expect(quality.avg_quality_score).toBeGreaterThan(0);
    expect(quality.avg_quality_score).toBeLessThanOrEqual(1);
    expect(body.backfill_progress).toEqual({ in_progress: 1, completed: 3, failed: 0, pending: 0, cancelled: 0 });
  });

  it('GET /data/quality/:symbol reports the days up to the symbol’s newest metric date, newest first', async () => {
    const { status, body } = await call('GET', '/api/v1/data/quality/AAPL?days=7');
    expect(status).toBe(200);
    expect(body).toMatchObject({ symbol: 'AAPL', period_days: 7, period_end: '2024-03-28' });
    const daily = body.daily_metrics as Record<string, unknown>[];
    // 2024-03-22 … 2024-03-28: five sessions (weekends have no expected bars).
    expect(daily.map((d) => d.date)).toEqual(['2024-03-28', '2024-03-27', '2024-03-26', '2024-03-25', '2024-03-22']);
    for (const day of daily) {
      expect(day).toMatchObject({ total_records: 8, validated_records: 8, validation_rate: 100, gaps_detected: 0, data_completeness: 1 });
      expect(day.avg_quality_score).toBeGreaterThan(0.5);
    }
    expect(body.summary).toMatchObject({ avg_validation_rate: 100, total_gaps_detected: 0 });
    expect(typeof (body.summary as Record<string, unknown>).total_anomalies).toBe('number');
    const logs = body.recent_fetch_logs as Record<string, unknown>[];
    expect(logs).toHaveLength(2);
    for (const log of logs) {
      expect(log).toMatchObject({ source: 'synthetic', success: true });
      expect(['1d', '1h']).toContain(log.timeframe);
      expect(log.records_inserted).toBe(log.records_fetched);
    }
  });

  it('GET /data/quality/:symbol checks days and the symbol', async () => {
    for (const days of ['0', '400', '1.5', 'week']) {
      expect(await call('GET', `/api/v1/data/quality/AAPL?days=${days}`)).toMatchObject({ status: 400, body: { detail: expect.stringMatching(/^days: must be a whole number from 1 to 365/) } });
    }
    expect((await call('GET', '/api/v1/data/quality/AAPL?days=365')).status).toBe(200);
    expect((await call('GET', '/api/v1/data/quality/AAPL?days=')).status).toBe(200);
    expect(await call('GET', '/api/v1/data/quality/QQQQ')).toMatchObject({ status: 200, body: { daily_metrics: [], recent_fetch_logs: [], period_end: null } });
  });
});

// After the metrics above, which count every request, symbol and fetch made before them.
describe('figures that agree with each other', () => {
  it("GET /data/quality/:symbol: a rate is validated over delivered records, over every timeframe and day; so is the status's", async () => {
    // Two days of one symbol: each day's 1d bar valid; 6, then 7, of its 7 1h bars valid (rates as the pipeline stores them).
    await rt.db.sql`
      insert into enrichment.data_quality_metrics (symbol, timeframe, metric_date, total_records, validated_records, validation_rate,
        gaps_detected, anomalies_detected, avg_quality_score, data_completeness, features_rate, freshness)
      values ('QLTY', '1d', '2024-06-03', 1, 1, 100.00, 0, 0, 0.95, 1.00, 1.00, 1.00),
             ('QLTY', '1h', '2024-06-03', 7, 6, 85.71, 0, 0, 0.90, 1.00, 1.00, 1.00),
             ('QLTY', '1d', '2024-06-04', 1, 1, 100.00, 0, 0, 0.95, 1.00, 1.00, 1.00),
             ('QLTY', '1h', '2024-06-04', 7, 7, 100.00, 0, 0, 0.95, 1.00, 1.00, 1.00)`;
    await rt.db.sql`
      insert into enrichment.status (symbol, asset_class, status, last_enrichment_time, latest_bar_ts, records_available, timeframes_available)
      values ('QLTY', 'stock', 'healthy', now(), '2024-06-04T19:00:00Z', 16, ${['1d', '1h']})`;

    const { status, body } = await call('GET', '/api/v1/data/quality/QLTY?days=7');
    expect(status).toBe(200);
    const daily = body.daily_metrics as Record<string, unknown>[];
    expect(daily.map((d) => d.date)).toEqual(['2024-06-04', '2024-06-03']);
    // 7 / 8 = 87.5 %, not 92.86, the mean of 100 and 85.71.
    expect(daily[1]).toMatchObject({ total_records: 8, validated_records: 7, validation_rate: 87.5 });
    expect(daily[0]).toMatchObject({ total_records: 8, validated_records: 8, validation_rate: 100 });
    // 15 / 16 = 93.75 %, not 96.43, the mean of the four rows.
    expect(body.summary).toMatchObject({ avg_validation_rate: 93.75 });
    expect((await call('GET', '/api/v1/enrichment/status/QLTY')).body).toMatchObject({ validation_rate: 93.75 });
  });

  it('GET /backfills/:id: a request whose chunks were all stored already is through its last date', async () => {
    const query = 'symbol=INTC&timeframes=1d&from=2024-03-01&to=2024-03-28';
    const run = async () => {
      const { status, body } = await call('POST', `/api/v1/enrichment/trigger?${query}`);
      expect(status).toBe(202);
      return waitForBackfill(String(body.backfill_id));
    };
    expect(await run()).toMatchObject({ status: 'completed', chunks_skipped: 0, last_successful_date: '2024-03-28' });
    const again = await run();
    expect(again).toMatchObject({ status: 'completed', chunks_failed: 0, last_successful_date: '2024-03-28' });
    expect(again.chunks_skipped).toBe(again.chunks_total); // nothing fetched twice
    expect((again.series as Record<string, unknown>[])[0]).toMatchObject({ last_successful_date: '2024-03-28' });
  });

  it('GET /backfills/:id: a failed chunk passed over (reprocess missing) is no successful date', async () => {
    await rt.db.sql`
      insert into enrichment.chunks (symbol, timeframe, chunk_start, chunk_end, status, covered_to, source, error)
      values ('HOLE', '1d', '2024-01-01', '2024-12-31', 'failed', null, 'synthetic', 'HTTP 500')`;
    const { status, body } = await call('POST', '/api/v1/enrichment/trigger?symbol=HOLE&timeframes=1d&from=2024-03-01&to=2024-03-28');
    expect(status).toBe(202);
    expect(await waitForBackfill(String(body.backfill_id))).toMatchObject({ status: 'completed', chunks_skipped: 1, last_successful_date: null });
  });

  it('GET /backfills and GET /backfills/:id answer the same pace, resumed or not', async () => {
    // Ran 50 of 100 chunks in its first minute, a day ago; cancelled; resumed just now and running.
    const id = randomUUID();
    const sql = rt.db.sql;
    await sql`
      insert into enrichment.backfills (backfill_id, symbols, timeframes, asset_class, from_date, to_date, source, reprocess, requested_by,
        status, job_id, resumes, created_at, started_at)
      values (${id}, ${['ZZZ']}, ${['1m']}, 'stock', '2016-01-01', '2024-04-30', 'synthetic', 'missing', 'test',
        'in_progress', ${`enrichment-backfill@${id}`}, 1, now() - interval '1 day 1 minute', now() - interval '1 day')`;
    const chunks = Array.from({ length: 100 }, (_, i) => ({ start: `2016-01-${String((i % 28) + 1).padStart(2, '0')}`, end: '2016-01-28' }));
    await sql`
      insert into enrichment.backfill_state (backfill_job_id, symbol, asset_class, timeframe, status, chunks, next_chunk, chunks_done, bars_written, last_successful_date)
      values (${id}, 'ZZZ', 'stock', '1m', 'in_progress', ${sql.json(chunks)}, 50, 50, 390000, '2020-01-31')`;

    const list = (await call('GET', '/api/v1/backfills?limit=100')).body.backfills as Record<string, unknown>[];
    // Its elapsed time includes the day it stood still: ~4.5 bars/s and an ETA of a day would be made up.
    expect((await call('GET', `/api/v1/backfills/${id}`)).body.bars_per_second).toBeNull();
    expect(list.find((b) => b.backfill_id === id)).toMatchObject({ bars_per_second: null, eta_seconds: null });
    // One that ran in one go and finished: the same figure from both.
    const finished = (await call('GET', `/api/v1/backfills/${ids.aapl}`)).body.bars_per_second;
    expect(finished).toBeGreaterThan(0);
    expect(list.find((b) => b.backfill_id === ids.aapl)?.bars_per_second).toBe(finished);
  });
});

// Last: it adds a completed request, which the pipeline figures above count.
describe('POST /api/v1/enrichment/trigger, blank fields', () => {
  it('counts a query parameter left empty (a blank form field) as not given: its default applies', async () => {
    const { status, body } = await call('POST', `/api/v1/enrichment/trigger?symbol=AMD&timeframes=&timeframes=&asset_class=&source=&reprocess=&${MONTH}`);
    expect(status, JSON.stringify(body)).toBe(202);
    expect(body).toMatchObject({ symbols: ['AMD'], timeframes: ['1d'], asset_class: 'stock', source: 'synthetic', from: '2024-03-01', to: '2024-03-31' });
    expect(await waitForBackfill(String(body.backfill_id))).toMatchObject({ status: 'completed' });
  });
});
