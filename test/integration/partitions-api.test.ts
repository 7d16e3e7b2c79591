import { QueueEvents, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { refreshRs } from '../../jobs/refresh-rs.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import type { Sql } from '../../src/db.ts';
import { createHttpApp, startHttpServer, type HttpDeps, type HttpServer } from '../../src/http/app.ts';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { CSRF_HEADER } from '../../src/http/partitions.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { closeQueues, createDefaultJobOptions, createQueues, type QueueMap } from '../../src/queues.ts';
import { createRedis, type Redis } from '../../src/redis.ts';
import type { PartitionGrid } from '../../src/status/partitions.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';
import { createTestRuntime } from '../helpers/runtime.ts';

const CREDENTIALS = { user: 'ops', password: 'partitions-test' };
const AUTH = { authorization: formatBasicAuthorization(CREDENTIALS) };
const TOKEN = 'csrf-token-of-this-test';
const RANGE = 'from=2025-11-17&to=2025-11-28';

const prefix = createTestPrefix('partitions-api');
const logger = createLogger({ level: 'silent', pretty: false });
let testDb: TestDatabase;
let db: Sql;
let config: Config;
let redis: Redis;
let queues: QueueMap;
let server: HttpServer;
let defaultTokenApp: ReturnType<typeof createHttpApp>;

function deps(overrides: Partial<HttpDeps> = {}): HttpDeps {
  return {
    config,
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    queues,
    db,
    redis,
    credentials: CREDENTIALS,
    mode: 'full',
    definitions: JOBS,
    listSchedules: async () => [],
    beforeScrape: async () => {},
    csrfToken: TOKEN,
    ...overrides,
  };
}

interface Row {
  job: string;
  partition: string;
  status: string;
  job_id?: string;
  attempts?: number;
  error?: string | null;
  scheduled_for?: string | null;
  finished_at?: string | null;
  summary?: Record<string, unknown> | null;
}

async function insertRuns(rows: Row[]): Promise<void> {
  const queueOf = new Map(JOBS.map((j) => [j.name, j.queue]));
  for (const r of rows) {
    await db`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at, summary, error)
      values (${r.job}, ${r.partition}, ${queueOf.get(r.job) ?? 'etl'}, ${r.job_id ?? `${r.job}@${r.partition}`}, ${r.status}, ${r.attempts ?? 1}, 1,
              ${r.scheduled_for ?? null}, ${r.finished_at ?? r.scheduled_for ?? null}, ${r.status === 'running' ? null : (r.finished_at ?? `${r.partition.slice(0, 10)}T23:40:00Z`)},
              ${r.summary ? db.json(r.summary as never) : null}, ${r.error ?? (r.status === 'failed' ? `${r.job} broke` : null)})`;
  }
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = testDb.sql;
  config = loadConfig({ BULLPEN_PREFIX: prefix, REDIS_URL: TEST_REDIS_URL, DATABASE_URL: testDb.url, LOG_LEVEL: 'silent' });
  redis = createRedis(TEST_REDIS_URL);
  queues = createQueues(redis, prefix, createDefaultJobOptions({ attempts: 3, backoffMs: 100 }));
  const dates = (...ds: string[]) => ds;
  await insertRuns([
    { job: 'refresh-rs', partition: '2025-11-17', status: 'succeeded' },
    { job: 'refresh-rs', partition: '2025-11-18', status: 'failed', attempts: 3 },
    { job: 'refresh-rs', partition: '2025-11-19', status: 'running' },
    // 2025-11-20: missing
    ...dates('2025-11-21', '2025-11-24', '2025-11-25', '2025-11-26', '2025-11-28').map((d) => ({ job: 'refresh-rs', partition: d, status: 'succeeded' })),
    ...dates('2025-11-17', '2025-11-18', '2025-11-19', '2025-11-21', '2025-11-24', '2025-11-25', '2025-11-26', '2025-11-28').map((d) => ({ job: 'nightly-report', partition: d, status: 'succeeded' })),
    { job: 'nightly-report', partition: '2025-11-20', status: 'failed' },
    { job: 'build-rollups', partition: '2025-11-17', status: 'succeeded', summary: { scope: 'range', from: '2025-11-17', to: '2025-11-17' } },
    { job: 'build-rollups', partition: '2025-11-18..2025-11-21', status: 'succeeded', finished_at: '2025-11-22T12:00:00Z', summary: { scope: 'range', from: '2025-11-18', to: '2025-11-21', as_of: '2025-11-21' } },
    { job: 'trade-etl', partition: '2025-11-24T150000Z', status: 'succeeded', scheduled_for: '2025-11-24T15:00:00Z', summary: { dates_touched: ['2025-11-20', '2025-11-24'], stopped_early: false, loaded: 3 } },
    { job: 'trade-etl', partition: '2025-11-26T150000Z', status: 'failed', scheduled_for: '2025-11-26T15:00:00Z' },
  ]);
  server = await startHttpServer(createHttpApp(deps()), '127.0.0.1', 0);
  defaultTokenApp = createHttpApp(deps({ csrfToken: undefined }));
});

afterAll(async () => {
  await server?.close();
  if (queues) await closeQueues(queues);
  await cleanupPrefix(TEST_REDIS_URL, prefix);
  await redis?.quit();
  await testDb?.drop();
});

function get(path: string, headers: Record<string, string> = AUTH): Promise<Response> {
  return fetch(`${server.url}${path}`, { headers });
}

function rerun(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}/api/v1/partitions/rerun`, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/json', [CSRF_HEADER]: TOKEN, 'sec-fetch-site': 'same-origin', ...headers },
    body: JSON.stringify(body),
  });
}

async function jobsIn(queueName: string): Promise<{ id: string | undefined; name: string; state: string }[]> {
  const queue = queues.get(queueName as never)!;
  const jobs = await queue.getJobs(['waiting', 'delayed', 'active', 'prioritized', 'failed', 'completed'], 0, -1);
  return Promise.all(jobs.filter(Boolean).map(async (j) => ({ id: j.id, name: j.name, state: await j.getState() })));
}

function statesOf(grid: PartitionGrid, job: string): Record<string, string> {
  const row = grid.jobs.find((r) => r.job === job);
  return Object.fromEntries((row?.cells ?? []).map((c) => [c.date, c.state]));
}

describe('GET /api/v1/partitions', () => {
  it('answers the grid of a range from ops.job_runs and the calendar', async () => {
    const response = await get(`/api/v1/partitions?${RANGE}`);
    expect(response.status).toBe(200);
    const grid = (await response.json()) as PartitionGrid;
    expect(Object.keys(grid).sort()).toEqual(['dates', 'from', 'generated_at', 'jobs', 'to', 'today', 'tz']);
    expect(grid).toMatchObject({ from: '2025-11-17', to: '2025-11-28', tz: 'America/New_York' });
    expect(grid.dates).toEqual(['2025-11-17', '2025-11-18', '2025-11-19', '2025-11-20', '2025-11-21', '2025-11-24', '2025-11-25', '2025-11-26', '2025-11-27', '2025-11-28']);
    expect(grid.jobs.map((j) => [j.job, j.label, j.queue])).toEqual([
      ['trade-etl', 'ETL', 'etl'],
      ['build-rollups', 'Rollups', 'rollups'],
      ['refresh-rs', 'RS', 'rs'],
      ['enrichment-daily', 'Enrichment', 'enrichment'],
      ['nightly-report', 'Report', 'reports'],
    ]);
    expect(grid.jobs[0]?.schedule).toEqual({ cron: '*/5 * * * *', tz: 'America/New_York' });

    expect(statesOf(grid, 'refresh-rs')).toEqual({
      '2025-11-17': 'done',
      '2025-11-18': 'failed',
      '2025-11-19': 'running',
      '2025-11-20': 'missing',
      '2025-11-21': 'done',
      '2025-11-24': 'done',
      '2025-11-25': 'done',
      '2025-11-26': 'done',
      '2025-11-27': 'not_expected',
      '2025-11-28': 'done',
    });
    // Every day for the report, Thanksgiving included.
    expect(statesOf(grid, 'nightly-report')).toMatchObject({ '2025-11-20': 'failed', '2025-11-27': 'missing' });
    expect(statesOf(grid, 'build-rollups')).toMatchObject({ '2025-11-17': 'done', '2025-11-19': 'done', '2025-11-21': 'done', '2025-11-24': 'missing', '2025-11-27': 'not_expected' });
    expect(statesOf(grid, 'trade-etl')).toEqual({
      '2025-11-17': 'done', // caught up by the complete run of the 24th
      '2025-11-18': 'done',
      '2025-11-19': 'done',
      '2025-11-20': 'done', // touched by it
      '2025-11-21': 'done',
      '2025-11-24': 'done',
      '2025-11-25': 'missing',
      '2025-11-26': 'failed',
      '2025-11-27': 'not_expected',
      '2025-11-28': 'missing',
    });
    expect(Object.values(statesOf(grid, 'enrichment-daily')).every((s) => s === 'missing')).toBe(true);

    const rs = grid.jobs.find((j) => j.job === 'refresh-rs')!;
    expect(rs.cells[1]).toEqual({
      date: '2025-11-18',
      state: 'failed',
      partition: '2025-11-18',
      job_id: 'refresh-rs@2025-11-18',
      error: 'refresh-rs broke',
      finished_at: '2025-11-18T23:40:00.000Z',
      attempts: 3,
      can_rerun: true,
      note: null,
    });
    const rollups = grid.jobs.find((j) => j.job === 'build-rollups')!;
    expect(rollups.cells[2]).toMatchObject({ state: 'done', partition: '2025-11-18..2025-11-21', job_id: 'build-rollups@2025-11-18..2025-11-21', can_rerun: false });
    const etl = grid.jobs.find((j) => j.job === 'trade-etl')!;
    expect(etl.cells[3]).toMatchObject({ state: 'done', partition: '2025-11-24T150000Z', note: 'touched by trade-etl 2025-11-24T150000Z' });
    expect(etl.cells[7]).toMatchObject({ state: 'failed', partition: '2025-11-26T150000Z', job_id: 'trade-etl@2025-11-26T150000Z', can_rerun: true });
  });

  it('filters one job, and takes empty parameters as absent', async () => {
    const grid = (await (await get(`/api/v1/partitions?job=refresh-rs&${RANGE}`)).json()) as PartitionGrid;
    expect(grid.jobs.map((j) => j.job)).toEqual(['refresh-rs']);
    const all = (await (await get('/api/v1/partitions?job=&from=&to=')).json()) as PartitionGrid;
    expect(all.jobs).toHaveLength(5);
    expect(all.dates).toHaveLength(30);
    expect(all.to).toBe(all.today);
  });

  it.each([
    ['from=2025-13-01', /^from: must be a date YYYY-MM-DD/],
    ['to=yesterday', /^to: must be a date YYYY-MM-DD/],
    ['from=2025-11-28&to=2025-11-17', /^from: 2025-11-28 is after to \(2025-11-17\)/],
    ['from=2025-01-01&to=2025-12-31', /^from: 2025-01-01\.\.2025-12-31 holds more than 120 weekdays/],
    ['job=nope', /^job: unknown job "nope"; the grid's jobs are trade-etl, build-rollups, refresh-rs, enrichment-daily, nightly-report/],
    ['job=enrichment-backfill', /^job: unknown job "enrichment-backfill"/],
    ['job=refresh-rs&job=nightly-report', /^job: give it once/],
  ])('?%s answers 400 naming the field', async (query, detail) => {
    const response = await get(`/api/v1/partitions?${query}`);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toMatch(detail);
  });

  it('answers 401 without credentials', async () => {
    const response = await get(`/api/v1/partitions?${RANGE}`, {});
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Basic realm="bullpen"');
  });
});

describe('POST /api/v1/partitions/rerun', () => {
  it('enqueues a failed partition once, with its deterministic id; a second POST answers 409', async () => {
    const response = await rerun({ job: 'refresh-rs', date: '2025-11-18' });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ job: 'refresh-rs', date: '2025-11-18', partition: '2025-11-18', job_id: 'refresh-rs@2025-11-18', action: 'enqueued' });
    expect(await jobsIn('rs')).toEqual([{ id: 'refresh-rs@2025-11-18', name: 'refresh-rs', state: 'waiting' }]);
    const job = await queues.get('rs')!.getJob('refresh-rs@2025-11-18');
    expect(job?.data).toMatchObject({ date: '2025-11-18' });

    const again = await rerun({ job: 'refresh-rs', date: '2025-11-18' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { detail: string }).detail).toMatch(/already queued or running \(refresh-rs@2025-11-18, waiting\)/);
    expect(await jobsIn('rs')).toHaveLength(1);
  });

  it('retries a failed job still held by BullMQ instead of adding another', async () => {
    const queue = queues.get('reports')!;
    await queue.add('nightly-report', { date: '2025-11-20', scheduledFor: '2025-11-20T23:50:00.000Z' }, { jobId: 'nightly-report@2025-11-20', attempts: 1 });
    const worker = new Worker('reports', null, { connection: redis, prefix, autorun: false });
    try {
      const taken = await worker.getNextJob('test-lock');
      expect(taken?.id).toBe('nightly-report@2025-11-20');
      await taken!.moveToFailed(new Error('nightly-report broke'), 'test-lock');
    } finally {
      await worker.close();
    }
    expect(await queue.getJobState('nightly-report@2025-11-20')).toBe('failed');

    const response = await rerun({ job: 'nightly-report', date: '2025-11-20' });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ job: 'nightly-report', date: '2025-11-20', partition: '2025-11-20', job_id: 'nightly-report@2025-11-20', action: 'retried' });
    expect(await jobsIn('reports')).toEqual([{ id: 'nightly-report@2025-11-20', name: 'nightly-report', state: 'waiting' }]);
    expect((await queue.getJob('nightly-report@2025-11-20'))?.attemptsMade).toBe(0);
    expect((await rerun({ job: 'nightly-report', date: '2025-11-20' })).status).toBe(409);
  });

  it('refuses partitions that are done, running or not expected (409)', async () => {
    for (const [body, detail] of [
      [{ job: 'refresh-rs', date: '2025-11-17' }, /refresh-rs 2025-11-17 is done \(2025-11-17\): only a failed or missing partition is re-run/],
      [{ job: 'refresh-rs', date: '2025-11-19' }, /is running \(refresh-rs@2025-11-19\)/],
      [{ job: 'refresh-rs', date: '2025-11-27' }, /is not expected \(NYSE closed: Thanksgiving Day\)/],
      [{ job: 'build-rollups', date: '2025-11-19' }, /is done \(2025-11-18\.\.2025-11-21\)/],
    ] as const) {
      const response = await rerun(body);
      expect(response.status).toBe(409);
      expect(((await response.json()) as { detail: string }).detail).toMatch(detail);
    }
    expect(await jobsIn('rollups')).toEqual([]);
  });

  it('re-runs trade-etl as a normal run now', async () => {
    const response = await rerun({ job: 'trade-etl', date: '2025-11-26' });
    expect(response.status).toBe(202);
    const body = (await response.json()) as { job_id: string; partition: string; action: string };
    expect(body.action).toBe('enqueued');
    expect(body.partition).toMatch(/^\d{4}-\d{2}-\d{2}T\d{6}Z$/);
    expect(body.job_id).toBe(`trade-etl@${body.partition}`);
    expect(await jobsIn('etl')).toEqual([{ id: body.job_id, name: 'trade-etl', state: 'waiting' }]);
    const again = await rerun({ job: 'trade-etl', date: '2025-11-25' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { detail: string }).detail).toMatch(/a trade-etl run is already queued or running/);
  });

  it('does not re-run trade-etl while a run is delayed (a retry backing off, or one waiting for an active run)', async () => {
    const etl = queues.get('etl')!;
    await etl.drain(true);
    expect(await jobsIn('etl')).toEqual([]);
    await etl.add('trade-etl', {}, { jobId: 'trade-etl@2025-11-26T160000Z', delay: 3_600_000 });
    const response = await rerun({ job: 'trade-etl', date: '2025-11-26' });
    expect(response.status).toBe(409);
    expect(((await response.json()) as { detail: string }).detail).toMatch(/a trade-etl run is already queued or running \(trade-etl@2025-11-26T160000Z\)/);
    expect(await jobsIn('etl')).toEqual([{ id: 'trade-etl@2025-11-26T160000Z', name: 'trade-etl', state: 'delayed' }]);
    await etl.drain(true);
  });

  it('re-runs trade-etl while its schedule\'s next tick waits, delayed, in its Job Scheduler', async () => {
    const etl = queues.get('etl')!;
    await etl.drain(true);
    await etl.upsertJobScheduler('trade-etl', { pattern: '*/5 * * * *', tz: 'America/New_York' }, { name: 'trade-etl', data: {} });
    try {
      expect((await jobsIn('etl')).map((j) => j.state)).toEqual(['delayed']);
      const response = await rerun({ job: 'trade-etl', date: '2025-11-26' });
      expect(response.status).toBe(202);
    } finally {
      await etl.removeJobScheduler('trade-etl');
      await etl.drain(true);
    }
  });

  it.each([
    [{ job: 'nope', date: '2025-11-20' }, /^job: unknown job "nope"/],
    [{ date: '2025-11-20' }, /^job: required/],
    [{ job: 'refresh-rs' }, /^date: required/],
    [{ job: 'refresh-rs', date: '20.11.2025' }, /^date: must be a date YYYY-MM-DD/],
    [['refresh-rs'], /^body: must be a JSON object/],
  ])('%j answers 400 naming the field', async (body, detail) => {
    const response = await rerun(body);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toMatch(detail);
  });

  it('refuses cross-site requests (403) and enqueues nothing', async () => {
    const body = { job: 'refresh-rs', date: '2025-11-20' };
    const refusals: [Record<string, string>, RegExp][] = [
      [{ [CSRF_HEADER]: '' }, /X-CSRF-Token header is missing/],
      [{ [CSRF_HEADER]: 'guess' }, /X-CSRF-Token header is wrong/],
      [{ 'sec-fetch-site': 'cross-site' }, /a cross-site request/],
      [{ 'sec-fetch-site': 'same-site' }, /a same-site request/],
      [{ origin: 'https://evil.example' }, /Origin https:\/\/evil\.example is not this host/],
      [{ origin: 'null' }, /Origin null is not this host/],
    ];
    for (const [headers, detail] of refusals) {
      const response = await rerun(body, headers);
      expect(response.status).toBe(403);
      expect(((await response.json()) as { detail: string }).detail).toMatch(detail);
    }
    expect(await queues.get('rs')!.getJobState('refresh-rs@2025-11-20')).toBe('unknown');

    // The page's own request: same origin, with the token.
    const ok = await rerun(body, { origin: server.url });
    expect(ok.status).toBe(202);
    expect(await queues.get('rs')!.getJobState('refresh-rs@2025-11-20')).toBe('waiting');
  });

  it('answers 401 without credentials, before anything else', async () => {
    const response = await fetch(`${server.url}/api/v1/partitions/rerun`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [CSRF_HEADER]: TOKEN },
      body: JSON.stringify({ job: 'nightly-report', date: '2025-11-27' }),
    });
    expect(response.status).toBe(401);
    expect(await queues.get('reports')!.getJobState('nightly-report@2025-11-27')).toBe('unknown');
  });

  it('derives its token from the credentials when none is given: web processes behind one load balancer accept each other\'s', async () => {
    const token = defaultTokenApp.locals.csrfToken as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(token).not.toContain(CREDENTIALS.password);
    // Another process with the same credentials: its page's token is accepted here.
    const other = await startHttpServer(createHttpApp(deps({ csrfToken: undefined })), '127.0.0.1', 0);
    try {
      expect(createHttpApp(deps({ csrfToken: undefined })).locals.csrfToken).toBe(token);
      const response = await fetch(`${other.url}/api/v1/partitions/rerun`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json', [CSRF_HEADER]: token },
        body: JSON.stringify({ job: 'refresh-rs', date: '2025-11-17' }),
      });
      // Past the guard: refused as already done (409), not as cross-site (403).
      expect(response.status).toBe(409);
    } finally {
      await other.close();
    }
    expect(createHttpApp(deps({ csrfToken: undefined, credentials: { ...CREDENTIALS, password: `${CREDENTIALS.password}!` } })).locals.csrfToken).not.toBe(token);
  });
});

describe('a re-run, end to end', () => {
  it('turns a failed cell done once a worker has run it', async () => {
    const runtime = await createTestRuntime('partitions-rerun', [refreshRs]);
    const events = new QueueEvents('rs', { connection: runtime.redis.duplicate(), prefix: runtime.prefix });
    let web: HttpServer | undefined;
    try {
      await events.waitUntilReady();
      // An empty universe: refresh-rs succeeds at once with nothing to score.
      await runtime.db.sql`delete from market.sector_mapping`;
      await runtime.db.sql`
        insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, finished_at, error)
        values ('refresh-rs', '2025-11-18', 'rs', 'refresh-rs@2025-11-18', 'failed', 3, 1, '2025-11-18T23:01:00Z', 'no bar for SPY')`;
      web = await startHttpServer(createHttpApp(deps({ db: runtime.db.sql, queues: runtime.queues, redis: runtime.redis, config: runtime.config, definitions: [refreshRs] })), '127.0.0.1', 0);
      const cell = async () => {
        const response = await fetch(`${web!.url}/api/v1/partitions?job=refresh-rs&from=2025-11-18&to=2025-11-18`, { headers: AUTH });
        return ((await response.json()) as PartitionGrid).jobs[0]?.cells[0];
      };
      expect(await cell()).toMatchObject({ state: 'failed', can_rerun: true });

      const response = await fetch(`${web.url}/api/v1/partitions/rerun`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json', [CSRF_HEADER]: TOKEN, origin: web.url },
        body: JSON.stringify({ job: 'refresh-rs', date: '2025-11-18' }),
      });
      expect(response.status).toBe(202);
      const job = await runtime.queues.get('rs')!.getJob('refresh-rs@2025-11-18');
      runtime.startWorkers();
      expect(await job!.waitUntilFinished(events)).toMatchObject({ asOf: '2025-11-18', symbols: 0 });
      await runtime.recorder.drain();
      expect(await cell()).toMatchObject({ state: 'done', partition: '2025-11-18', job_id: 'refresh-rs@2025-11-18', error: null, can_rerun: false });
    } finally {
      await web?.close();
      await events.close();
      await runtime.close();
    }
  });
});
