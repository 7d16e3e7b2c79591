/**
 * The status page at `/` as the server renders it (issue 8): behind basic auth, with the
 * schedules, the partition grid and the backfills already in the first response, the CSRF
 * token the re-run buttons send, escaped data, and nothing that points off this origin.
 */
import { Script } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { createDb, type Sql } from '../../src/db.ts';
import { createHttpApp, startHttpServer, type HttpServer } from '../../src/http/app.ts';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { closeQueues, createDefaultJobOptions, createJobId, createQueues, type QueueMap } from '../../src/queues.ts';
import { createRedis, type Redis } from '../../src/redis.ts';
import type { ScheduleStatus } from '../../src/scheduler.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';

const CREDENTIALS = { user: 'ops', password: 'correct horse: battery staple' };
const AUTH = { authorization: formatBasicAuthorization(CREDENTIALS) };
const CSRF_TOKEN = 'status-page-test-token';
const NASTY = '<script>alert("x")</script> & \'quoted\'';
const ACTIVE_BACKFILL = '3f2b1c4d-0000-4000-8000-000000000001';
const DONE_BACKFILL = '3f2b1c4d-0000-4000-8000-000000000002';

const SCHEDULE: ScheduleStatus = {
  name: 'nightly-report',
  queue: 'reports',
  cron: '50 23 * * *',
  tz: 'UTC',
  calendar: 'all',
  overlap: 'skip',
  catchup: { mode: 'all', windowHours: 168, max: 7 },
  deadline: { by: '00:30', tz: 'UTC', dayOffset: 1 },
  overridden: false,
  registered: true,
  paused: true,
  next_run: '2099-01-01T23:50:00.000Z',
  last_success: '2026-11-19T23:51:00.000Z',
  last_success_partition: '2026-11-19',
  last_failure: '2026-11-20T23:51:00.000Z',
  last_failure_partition: '2026-11-20',
  last_failure_error: NASTY,
  running: 0,
  lag_seconds: 3720,
};

interface GridJson {
  dates: string[];
  jobs: { job: string; queue: string; cells: { date: string; state: string; can_rerun: boolean }[] }[];
}

const prefix = createTestPrefix('status-page');
const logger = createLogger({ level: 'silent', pretty: false });
let testDb: TestDatabase;
let config: Config;
let redis: Redis;
let db: Sql;
let queues: QueueMap;
let server: HttpServer;
let schedulesFailure: Error | undefined;
let failedDate: string;
let missingDate: string;

function get(path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, { headers });
}

async function loadPage(): Promise<{ response: Response; html: string }> {
  const response = await get('/', AUTH);
  return { response, html: await response.text() };
}

/** The `<td>` of one grid cell in the server's HTML. */
function cellOf(html: string, job: string, date: string): string {
  const match = new RegExp(`<td [^>]*data-job="${job}" data-date="${date}"[^>]*>[\\s\\S]*?</td>`).exec(html);
  if (!match) throw new Error(`no cell ${job} ${date} in the page`);
  return match[0];
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  config = loadConfig({
    BULLPEN_PREFIX: prefix,
    REDIS_URL: TEST_REDIS_URL,
    DATABASE_URL: testDb.url,
    BOARD_USER: CREDENTIALS.user,
    BOARD_PASSWORD: CREDENTIALS.password,
    LOG_LEVEL: 'silent',
  });
  redis = createRedis(config.redisUrl);
  db = createDb(testDb.url, { max: 2 });
  queues = createQueues(redis, config.prefix, createDefaultJobOptions({ attempts: 1, backoffMs: 100 }));
  const app = createHttpApp({
    config,
    logger,
    metrics: createMetrics(),
    queues,
    db,
    redis,
    credentials: CREDENTIALS,
    csrfToken: CSRF_TOKEN,
    mode: 'full',
    definitions: JOBS,
    listSchedules: async () => {
      if (schedulesFailure) throw schedulesFailure;
      return [SCHEDULE];
    },
    beforeScrape: async () => {},
  });
  server = await startHttpServer(app, '127.0.0.1', 0);

  // Two expected dates of nightly-report's row in the grid's own window: one failed, one left missing.
  const grid = (await (await get('/api/v1/partitions', AUTH)).json()) as GridJson;
  const expected = grid.jobs.find((j) => j.job === 'nightly-report')!.cells.filter((c) => c.state !== 'not_expected');
  failedDate = expected[expected.length - 2]!.date;
  missingDate = expected[expected.length - 3]!.date;
  await db`
    insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, started_at, finished_at, error)
    values ('nightly-report', ${failedDate}, 'reports', ${createJobId('nightly-report', failedDate)}, 'failed', 3, 1,
            now() - interval '2 minutes', now() - interval '1 minute', ${NASTY})`;

  await db`
    insert into enrichment.backfills (backfill_id, symbols, timeframes, asset_class, from_date, to_date, source, reprocess, requested_by, status, created_at, started_at, finished_at)
    values (${ACTIVE_BACKFILL}, ${['AAPL', 'MSFT', 'NVDA', 'AMZN', 'META', 'TSLA']}, ${['1d', '1h']}, 'stock', '2024-01-01', '2024-12-31', 'polygon', 'missing', 'api',
            'in_progress', now() - interval '110 seconds', now() - interval '100 seconds', null),
           (${DONE_BACKFILL}, ${['SPY']}, ${['1d']}, 'etf', '2024-01-01', '2024-03-31', 'polygon', 'missing', 'cli',
            'completed', now() - interval '1 hour', now() - interval '59 minutes', now() - interval '58 minutes')`;
  const tenChunks = db.json(Array.from({ length: 10 }, (_, i) => ({ start: `2024-${String(i + 1).padStart(2, '0')}-01`, end: `2024-${String(i + 1).padStart(2, '0')}-28` })));
  await db`
    insert into enrichment.backfill_state (backfill_job_id, symbol, asset_class, timeframe, status, chunks, chunks_done, bars_written)
    values (${ACTIVE_BACKFILL}, 'AAPL', 'stock', '1d', 'in_progress', ${tenChunks}, 4, 4000),
           (${DONE_BACKFILL}, 'SPY', 'etf', '1d', 'completed', ${db.json([{ start: '2024-01-01', end: '2024-03-31' }])}, 1, 60)`;
});

afterAll(async () => {
  await server?.close();
  if (queues) await closeQueues(queues);
  await cleanupPrefix(TEST_REDIS_URL, prefix);
  await redis?.quit();
  await db?.end({ timeout: 5 });
  await testDb?.drop();
});

describe('GET /', () => {
  it('answers 401 with a challenge without credentials', async () => {
    const response = await get('/');
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Basic realm="bullpen"');
  });

  it('serves the page with its CSRF token, a nonce-bound script and no caching', async () => {
    const { response, html } = await loadPage();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(html).toContain(`<meta name="csrf-token" content="${CSRF_TOKEN}">`);
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts).toHaveLength(1);
    expect(scripts[0]![1]).toBe(` nonce="${nonce}"`);
    // It compiles (a syntax error would leave the page without its refresh).
    expect(() => new Script(scripts[0]![2]!)).not.toThrow();
    // A fresh nonce each time.
    const again = (await get('/', AUTH)).headers.get('content-security-policy');
    expect(again).not.toBe(csp);
  });

  it('points nowhere off this origin', async () => {
    const { html } = await loadPage();
    expect(html).not.toMatch(/https?:\/\//);
    // The markup; the script builds its links from the same relative paths (and has no http URL, above).
    const markup = html.replace(/<script[^>]*>[\s\S]*?<\/script>/g, '');
    const urls = [...markup.matchAll(/\b(?:src|href|action)="([^"]*)"/g)].map((m) => m[1]!);
    expect(urls.length).toBeGreaterThan(5);
    // Paths on this origin; the empty data: icon only stops the browser asking for /favicon.ico.
    for (const url of urls) expect(url, url).toMatch(/^(\/(?!\/)|#|data:,$)/);
    for (const link of ['/admin/queues', '/reports/', '/metrics', '/api/v1/schedules']) expect(html).toContain(`href="${link}"`);
  });

  it('renders the schedules table with escaped data', async () => {
    const { html } = await loadPage();
    const row = /<tr data-schedule="nightly-report">[\s\S]*?<\/tr>/.exec(html)?.[0] ?? '';
    expect(row).toContain('<code>50 23 * * *</code>');
    expect(row).toContain('<td>UTC</td>');
    expect(row).toContain('<time datetime="2099-01-01T23:50:00.000Z" title="2099-01-01 23:50:00 UTC">in ');
    expect(row).toContain('2026-11-19');
    expect(row).toContain('<span class="late">1 h 2 min</span>');
    expect(row).toContain('<span class="badge paused">paused</span>');
    expect(row).toContain('title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;"');
    expect(html).not.toContain('<script>alert');
  });

  it('renders the grid: a failed cell links its job in Bull Board and can be re-run', async () => {
    const { html } = await loadPage();
    expect(html).toContain('<table class="grid"');
    for (const state of ['done', 'failed', 'running', 'missing', 'not expected']) expect(html).toMatch(new RegExp(`class="swatch[^"]*"[^>]*>[^<]*</span>${state}</li>`));

    const failed = cellOf(html, 'nightly-report', failedDate);
    expect(failed).toContain('data-state="failed"');
    expect(failed).toContain(`href="/admin/queues/queue/reports/${encodeURIComponent(createJobId('nightly-report', failedDate))}"`);
    expect(failed).toContain('<button type="button" class="rerun"');
    expect(failed).toContain('attempts 3');
    expect(failed).toContain('&lt;script&gt;alert(&quot;x&quot;)');

    const missing = cellOf(html, 'nightly-report', missingDate);
    expect(missing).toContain('data-state="missing"');
    expect(missing).toContain('class="rerun"');
    expect(missing).not.toContain('href=');
  });

  it('renders backfills in progress with progress, bars/s and ETA, and the finished ones', async () => {
    const { html } = await loadPage();
    const active = new RegExp(`<tr data-backfill="${ACTIVE_BACKFILL}">[\\s\\S]*?</tr>`).exec(html)?.[0] ?? '';
    expect(active).toContain('<progress max="10" value="4"');
    expect(active).toContain('4/10 chunks (40%)');
    expect(active).toContain('AAPL, MSFT, NVDA, AMZN +2');
    // 4,000 bars in about 100 s; 6 chunks left at 4 per ~100 s.
    const [bps, eta] = [...active.matchAll(/<td class="num">([^<]*)<\/td>/g)].map((m) => m[1]);
    expect(Number(bps)).toBeGreaterThan(30);
    expect(Number(bps)).toBeLessThanOrEqual(40);
    expect(eta).toBe('2 min');

    const done = new RegExp(`<tr data-backfill="${DONE_BACKFILL}">[\\s\\S]*?</tr>`).exec(html)?.[0] ?? '';
    expect(done).toContain('<span class="badge completed">completed</span>');
    expect(done).toContain('<td class="num">60</td>');
    expect(done).toContain('<td class="num">1 min</td>');
    expect(html.indexOf(ACTIVE_BACKFILL)).toBeLessThan(html.indexOf('Last finished'));
    expect(html.lastIndexOf(DONE_BACKFILL)).toBeGreaterThan(html.indexOf('Last finished'));
  });

  it('still renders when a section fails to load, naming what failed', async () => {
    schedulesFailure = new Error('redis <down>');
    try {
      const { response, html } = await loadPage();
      expect(response.status).toBe(200);
      expect(html).toContain('Could not load the schedules: redis &lt;down&gt;');
      expect(html).toContain('<table class="grid"');
    } finally {
      schedulesFailure = undefined;
    }
  });

  it("masks secrets in a section's error, as the API does", async () => {
    schedulesFailure = new Error('connect ECONNREFUSED postgres://bull:pgS3cret@db:5432/warehouse?password=pgS3cret');
    try {
      const { response, html } = await loadPage();
      expect(response.status).toBe(200);
      expect(html).toContain('Could not load the schedules: connect ECONNREFUSED postgres://bull:***@db:5432/warehouse');
      expect(html).not.toContain('pgS3cret');
    } finally {
      schedulesFailure = undefined;
    }
  });
});

describe('re-run with the page token', () => {
  it('queues exactly one job under its deterministic id; without the token the API refuses', async () => {
    const { html } = await loadPage();
    const token = /<meta name="csrf-token" content="([^"]*)">/.exec(html)?.[1] ?? '';
    const body = JSON.stringify({ job: 'nightly-report', date: missingDate });
    const post = (headers: Record<string, string>) =>
      fetch(`${server.url}/api/v1/partitions/rerun`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json', ...headers }, body });

    expect((await post({})).status).toBe(403);
    const first = await post({ 'x-csrf-token': token });
    expect(first.status).toBe(202);
    expect(await first.json()).toMatchObject({ job: 'nightly-report', partition: missingDate, job_id: createJobId('nightly-report', missingDate) });
    expect((await post({ 'x-csrf-token': token })).status).toBe(409);

    const reports = queues.get('reports')!;
    const waiting = await reports.getJobs(['waiting', 'prioritized', 'delayed'], 0, -1);
    expect(waiting.map((j) => j.id)).toEqual([createJobId('nightly-report', missingDate)]);
  });
});
