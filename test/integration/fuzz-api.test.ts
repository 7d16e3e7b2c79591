/**
 * Bad input over HTTP (issue 9): property-based fuzzing with fast-check of every REST endpoint
 * of the real web process (`startApp` with role web, as `bullpen start --role web` runs it), in
 * a worker thread of this test process against a test database and Redis prefix, with NO
 * workers (an accepted trigger only queues; nothing runs). The thread matters: a request that
 * blocks the server's event loop would stop this thread's timers too, so a hang could not be
 * told from a slow test; from here it is timed out, reported, and the server thread ended. Hostile query strings, path parameters and
 * JSON bodies — unicode, control characters, NUL bytes, SQL injection, huge and non-numbers,
 * arrays and objects where strings belong, repeated and bracketed parameters, malformed escapes
 * and JSON, wrong content types and encodings, bodies over the limit, wrong credentials — and
 * path traversal under /reports.
 *
 * The property, for every request: an answer within REQUEST_TIMEOUT_MS (no hang), never a 5xx,
 * and every 4xx JSON with a non-empty `detail` or `error` (HEAD answers have no body; Bull
 * Board's own HTML 404s are let through). A JSON body over the limit answers 413; /reports serves
 * nothing but its report files. Afterwards every table still exists and only the backfill
 * tables grew, by exactly the triggers that were accepted: injection strings are inert.
 *
 * Cases per endpoint: FUZZ_RUNS (default 200; `npm run test:chaos` runs 1,000),
 * sent CONCURRENCY at a time: each fast-check run is one batch of CONCURRENCY requests sent
 * together. FUZZ_SEED replays a run (the failure message prints its seed and path).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { enrichmentBackfill } from '../../jobs/enrichment-backfill.ts';
import { API_BODY_LIMIT, BOARD_PATH } from '../../src/http/app.ts';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { CSRF_HEADER } from '../../src/http/partitions.ts';
import { createLogger } from '../../src/logger.ts';
import { startWorkers, stopWorkers } from '../../src/worker.ts';
import { fuzzSettings, hostileJson, hostileObject, pathComponent, queryString } from '../helpers/hostile.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';
import { startWebThread, type WebThread } from '../helpers/web-thread.ts';

/** 200 cases per endpoint in `npm test`; a few ms each, up to a second or so for the slowest. */
const { runs: RUNS, seed: SEED, timeoutMs: FUZZ_TIMEOUT_MS } = fuzzSettings(200, 200);
/** Requests in flight at once (one fast-check run is one batch of this many). */
const CONCURRENCY = 8;
/** An answer slower than this is a hang. */
const REQUEST_TIMEOUT_MS = 5000;
const BODY_LIMIT_BYTES = 100 * 1024;

const CREDENTIALS = { user: 'ops', password: 'fuzz: the password' };
const AUTH = formatBasicAuthorization(CREDENTIALS);
/** The status page's token for mutating calls (read from its `<meta name="csrf-token">` by startServer). */
let csrfToken = '';
/** Stands for the token in generated headers: the server (and so its token) may be restarted after a hang. */
const CSRF = '{{csrf-token}}';
/** Written next to (and hidden inside) the reports directory: no answer may ever contain it. */
const SENTINEL = 'SENTINEL-c0ffee-not-a-report';
const REPORT_DATE = '20261120';
const RS_DATE = '2025-11-18';

const SYMBOLS = ['AAPL', 'MSFT', 'msft', 'SPY', 'BRK.B', 'ZZZZ', 'BTC-USD'];
// Edges among the valid values: the year 9999 (its next day is "+010000-01-01"), the epoch, a leap day.
const DATES = ['2024-03-01', '2024-03-29', '2024-12-31', RS_DATE, '2025-11-28', '2026-01-02', '9999-12-31', '9999-12-01', '1970-01-01', '1970-01-02', '2000-02-29'];
const TIMEFRAMES = ['1d', '1h', '1w', '1d,1h', '2h', '1m'];
const GRID_JOB_NAMES = ['trade-etl', 'build-rollups', 'refresh-rs', 'enrichment-daily', 'nightly-report', 'maintain-partitions'];

let rt: TestRuntime;
let server: WebThread;
/** Set when the server stopped answering: the next endpoint starts a new one. */
let serverDown = false;
let agent: http.Agent;
let root: string;
/** Backfill ids that exist: a completed one and a queued one. */
const backfillIds: string[] = [];
/** Status counts and latencies per endpoint, printed at the end. */
const stats = new Map<string, { statuses: Map<number, number>; ms: number[] }>();
let tablesBefore: Map<string, number>;

// ---------------------------------------------------------------------------------------------
// Requests

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** What the body is, for the 413 rule. */
  bodyKind?: 'json' | 'oversized' | 'other';
}

interface FuzzResponse {
  status: number;
  contentType: string;
  text: string;
  ms: number;
}

function send(request: FuzzRequest): Promise<FuzzResponse> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const headers: Record<string, string | number> = {};
    for (const [name, value] of Object.entries(request.headers)) headers[name] = value.replaceAll(CSRF, csrfToken);
    if (request.body !== undefined) headers['content-length'] = request.body.length;
    const req = http.request({ host: '127.0.0.1', port: server.port, method: request.method, path: request.path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms (a hang)`)), REQUEST_TIMEOUT_MS);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(request.body);
  });
}

function describeRequest(r: FuzzRequest): string {
  const body = r.body === undefined ? '' : ` body(${r.body.length} B, ${r.headers['content-type'] ?? 'no content-type'}): ${JSON.stringify(r.body.subarray(0, 300).toString('utf8'))}`;
  const headers = Object.entries(r.headers)
    .filter(([k]) => k !== 'content-type')
    .map(([k, v]) => `${k}: ${k === 'authorization' && v === AUTH ? '<valid>' : v}`)
    .join('; ');
  return `${r.method} ${r.path.length > 400 ? `${r.path.slice(0, 400)}… (${r.path.length} chars)` : r.path} [${headers}]${body}`;
}

/** What is wrong with an answer, or undefined. */
function problemOf(request: FuzzRequest, response: FuzzResponse): string | undefined {
  const { status } = response;
  if (status >= 500) return `answered ${status}`;
  if (status < 100) return `no status (${status})`;
  if (response.text.includes(SENTINEL)) return 'leaked a file outside the reports (the sentinel)';
  const authed = request.headers.authorization === AUTH;
  const protectedPath = request.path.startsWith('/api/') || request.path.startsWith('/reports') || request.path.startsWith(BOARD_PATH) || request.path === '/' || request.path.startsWith('/?');
  if (!authed && protectedPath && status !== 401 && status !== 404) return `answered ${status} without valid credentials`;
  // A browser's cross-site request is refused (403) before its body is read; the fuzzer's Origins are all foreign.
  const site = request.headers['sec-fetch-site'];
  const crossSite = (site !== undefined && site !== 'same-origin' && site !== 'none') || request.headers.origin !== undefined;
  if (authed && request.bodyKind === 'oversized' && request.path.startsWith('/api/') && status !== 413 && !(crossSite && status === 403)) {
    return `a JSON body over ${API_BODY_LIMIT} answered ${status}, not 413`;
  }
  if (request.method === 'GET' && request.path.startsWith('/reports/') && status === 200 && !/^\/reports\/(\?.*)?$/.test(request.path)) {
    if (!new RegExp(`^/reports/daily_${REPORT_DATE}\\.(html|json)(\\?.*)?$`).test(request.path)) return `/reports served ${request.path}, which is no report file`;
  }
  if (status >= 400) {
    if (request.method === 'HEAD') return undefined;
    const board = request.path.startsWith(BOARD_PATH);
    if (board && (status === 401 || status === 404) && response.contentType.startsWith('text/html')) return undefined;
    if (!response.contentType.startsWith('application/json')) return `a ${status} that is not JSON (${response.contentType || 'no content-type'}): ${response.text.slice(0, 200)}`;
    let body: unknown;
    try {
      body = JSON.parse(response.text);
    } catch {
      return `a ${status} whose body does not parse: ${response.text.slice(0, 200)}`;
    }
    const answer = (body ?? {}) as { detail?: unknown; error?: unknown; message?: unknown };
    // Bull Board's own API answers {error: {key}, message}: its message is `message`.
    const message = board && typeof answer.error !== 'string' ? answer.message : (answer.detail ?? answer.error);
    if (typeof message !== 'string' || message.trim() === '') return `a ${status} without a message: ${response.text.slice(0, 200)}`;
  }
  return undefined;
}

function record(endpoint: string, response: FuzzResponse): void {
  let entry = stats.get(endpoint);
  if (!entry) stats.set(endpoint, (entry = { statuses: new Map(), ms: [] }));
  entry.statuses.set(response.status, (entry.statuses.get(response.status) ?? 0) + 1);
  entry.ms.push(response.ms);
}

/** Runs RUNS cases of `arbitrary` against the server, CONCURRENCY at a time; throws on the first bad answer (shrunk). */
/** Starts the web thread and reads the status page's CSRF token. */
async function startServer(): Promise<void> {
  server = await startWebThread({ ...rt.env, BOARD_USER: CREDENTIALS.user, BOARD_PASSWORD: CREDENTIALS.password });
  const page = await send({ method: 'GET', path: '/', headers: { authorization: AUTH } });
  csrfToken = /<meta name="csrf-token" content="([^"]+)">/.exec(page.text)?.[1] ?? '';
  expect(csrfToken).not.toBe('');
}

async function fuzz(endpoint: string, arbitrary: fc.Arbitrary<FuzzRequest>, runs = RUNS): Promise<void> {
  /** The first hang or crash of the server: every later case of this endpoint fails at once with it (no waiting while shrinking). */
  let fatal: string | undefined;
  const property = fc.asyncProperty(fc.array(arbitrary, { minLength: CONCURRENCY, maxLength: CONCURRENCY }), async (batch) => {
    if (fatal) throw new Error(fatal);
    const answers = await Promise.all(
      batch.map(async (request) => {
        try {
          const response = await send(request);
          record(endpoint, response);
          return { request, problem: problemOf(request, response), response };
        } catch (error) {
          return { request, problem: `no answer: ${(error as Error).message}${server.failure() ? ` (${server.failure()})` : ''}`, response: undefined };
        }
      }),
    );
    const bad = answers.find((a) => a.problem !== undefined);
    if (!bad) return;
    if (bad.response === undefined) {
      // A server that hangs or died answers nothing more: every later case (the shrinking
      // included) fails at once with this. Any request of the batch may be the cause.
      const unanswered = answers.filter((a) => a.response === undefined).map((a) => `\n  - ${describeRequest(a.request)}`);
      serverDown = true;
      fatal = `${endpoint}: the server stopped answering (${bad.problem}); the cause is among these requests sent together:${unanswered.join('')}`;
      throw new Error(fatal);
    }
    throw new Error(`${endpoint}: ${bad.problem}\n  request: ${describeRequest(bad.request)}`);
  });
  await fc.assert(property, { numRuns: Math.ceil(runs / CONCURRENCY), seed: SEED, verbose: 0 });
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** Credentials: almost always the right ones; sometimes none, wrong ones or a mangled header. */
const authorization = fc.oneof(
  { weight: 12, arbitrary: fc.constant<string | undefined>(AUTH) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<string | undefined>(
      undefined,
      '',
      'Basic',
      'Basic !!!',
      'Bearer x',
      formatBasicAuthorization({ user: CREDENTIALS.user, password: 'wrong' }),
      formatBasicAuthorization({ user: "' or '1'='1", password: "' or '1'='1" }),
      `Basic ${Buffer.from('ops').toString('base64')}`,
      `Basic ${Buffer.from(`${CREDENTIALS.user}:${CREDENTIALS.password}\u0000`).toString('base64')}`,
      formatBasicAuthorization({ user: CREDENTIALS.user.toUpperCase(), password: CREDENTIALS.password }),
      formatBasicAuthorization({ user: CREDENTIALS.user, password: `${CREDENTIALS.password} ` }),
    ),
  },
);

/** How a body is sent: none, JSON of `value`, malformed, wrongly typed or encoded, or over the limit. */
function body(value: fc.Arbitrary<unknown>): fc.Arbitrary<Pick<FuzzRequest, 'body' | 'bodyKind'> & { headers: Record<string, string> }> {
  const json = (ct: string) => value.map((v) => ({ body: Buffer.from(JSON.stringify(v) ?? 'null'), bodyKind: 'json' as const, headers: { 'content-type': ct } }));
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant({ headers: {} }) },
    { weight: 6, arbitrary: json('application/json') },
    { weight: 1, arbitrary: json('application/json; charset=utf-8') },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom(
          '{',
          '{"symbol":',
          "{'symbol':'AAPL'}",
          '{"symbol":"AAPL",}',
          '[1,2',
          '',
          ' ',
          'null',
          'undefined',
          'NaN',
          '{"a":1}{"b":2}',
          '\u0000',
          '{"symbol":"\u0000"}',
          '\uFEFF{"symbol":"AAPL"}',
          '{"__proto__":{"symbols":"AAPL"},"constructor":{"prototype":{"x":1}}}',
          `${'['.repeat(5000)}${']'.repeat(5000)}`,
          `{"symbols":[${Array.from({ length: 2000 }, (_, i) => `"S${i}"`).join(',')}]}`,
        )
        .map((text) => ({ body: Buffer.from(text), bodyKind: 'other' as const, headers: { 'content-type': 'application/json' } })),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          value,
          fc.constantFrom(
            'text/plain',
            'application/x-www-form-urlencoded',
            'multipart/form-data; boundary=x',
            'application/xml',
            'application/json; charset=utf-16',
            'application/json; charset=klingon',
            'application/vnd.api+json',
            'application/json, text/plain',
            '*/*',
            'json',
          ),
        )
        .map(([v, ct]) => ({ body: Buffer.from(JSON.stringify(v) ?? 'null'), bodyKind: 'other' as const, headers: { 'content-type': ct } })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('gzip', 'deflate', 'br', 'identity, gzip', 'klingon'), fc.uint8Array({ maxLength: 64 }))
        .map(([encoding, bytes]) => ({ body: Buffer.from(bytes), bodyKind: 'other' as const, headers: { 'content-type': 'application/json', 'content-encoding': encoding } })),
    },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ minLength: 1, maxLength: 64 })
        .map((bytes) => ({ body: Buffer.concat([Buffer.from('{"symbol":"'), Buffer.from(bytes), Buffer.from('\xff\xfe"}', 'latin1')]), bodyKind: 'other' as const, headers: { 'content-type': 'application/json' } })),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: BODY_LIMIT_BYTES + 1, max: 3 * BODY_LIMIT_BYTES })
        .map((size) => ({ body: Buffer.from(`{"symbol":"${'A'.repeat(size)}"}`), bodyKind: 'oversized' as const, headers: { 'content-type': 'application/json' } })),
    },
  );
}

/** A request: method, path (with its query), credentials and a body. */
function request(method: fc.Arbitrary<string>, pathArb: fc.Arbitrary<string>, bodyValue: fc.Arbitrary<unknown> = hostileJson(), extraHeaders: fc.Arbitrary<Record<string, string>> = fc.constant({})): fc.Arbitrary<FuzzRequest> {
  return fc.tuple(method, pathArb, authorization, body(bodyValue), extraHeaders).map(([m, p, auth, b, extra]) => {
    const r: FuzzRequest = {
      method: m,
      path: p,
      headers: { ...(auth === undefined ? {} : { authorization: auth }), ...b.headers, ...extra },
      body: b.body,
      bodyKind: b.bodyKind,
    };
    // Counterexamples print as one readable line (bodies cut), not as a 300 kB Buffer.
    return Object.assign(r, { [fc.toStringMethod]: () => describeRequest(r) });
  });
}

const get = fc.constant('GET');
const post = fc.constant('POST');
/** Mostly the route's own method; sometimes another one, which must answer a JSON 404 (HEAD: no body). */
const methodOr = (own: string) => fc.oneof({ weight: 9, arbitrary: fc.constant(own) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS') });

const idComponent = () =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...backfillIds, ...backfillIds.map((id) => id.toUpperCase())) },
    { weight: 2, arbitrary: fc.uuid().map(String) },
    { weight: 5, arbitrary: pathComponent(['00000000-0000-0000-0000-000000000000', '3f2b1c4d-0000-4000-8000-00000000000', 'null', '1']) },
  );

const TRIGGER_FIELDS = {
  symbol: SYMBOLS,
  symbols: ['AAPL,MSFT', 'AAPL, MSFT ,', ...SYMBOLS],
  timeframes: TIMEFRAMES,
  from: DATES,
  to: DATES,
  asset_class: ['stock', 'etf', 'crypto', 'bond'],
  source: ['synthetic', 'csv', 'polygon', 'yahoo'],
  reprocess: ['missing', 'failed', 'all', 'none'],
};

// ---------------------------------------------------------------------------------------------
// Set-up: a test runtime, a little real data (one small synthetic backfill run by workers that
// are then stopped, RS scores, a report), then the app with no workers.

async function countTables(): Promise<Map<string, number>> {
  const tables = await rt.db.sql<{ name: string }[]>`
    select table_schema || '.' || table_name as name from information_schema.tables
    where table_schema in ('market', 'enrichment', 'ops', 'warehouse', 'oltp') and table_type = 'BASE TABLE' order by 1`;
  const counts = new Map<string, number>();
  for (const { name } of tables) {
    const [row] = await rt.db.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${name.split('.').map((p) => `"${p}"`).join('.')}`);
    counts.set(name, row?.n ?? 0);
  }
  return counts;
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-fuzz-api-'));
  const reportsDir = path.join(root, 'reports');
  fs.mkdirSync(reportsDir);
  fs.writeFileSync(path.join(root, 'secret.txt'), SENTINEL);
  fs.writeFileSync(path.join(reportsDir, '.secret'), SENTINEL);
  fs.writeFileSync(path.join(reportsDir, 'notes.txt'), SENTINEL);
  fs.writeFileSync(path.join(reportsDir, `daily_${REPORT_DATE}.json`), '{"report":"fuzz"}');
  fs.writeFileSync(path.join(reportsDir, `daily_${REPORT_DATE}.html`), '<!doctype html><title>fuzz</title>');

  // A request limit that keeps an accepted fuzz trigger small; no per-client trigger rate limit,
  // so every case reaches the trigger's validation instead of a 429.
  rt = await createTestRuntime('fuzz-api', [enrichmentBackfill], { REPORTS_DIR: reportsDir, ENRICHMENT_MAX_BARS: '20000', ENRICHMENT_TRIGGER_RATE: '0' });
  const db = rt.db.sql;
  const logger = createLogger({ level: 'silent', pretty: false });
  agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  await startServer();

  // One completed backfill (bars, quality metrics, fetch log for AAPL), run by workers stopped after.
  const workers = startWorkers(rt.workerRuntime, { connection: rt.redis });
  try {
    const done = await send({ method: 'POST', path: '/api/v1/enrichment/trigger?symbol=AAPL&timeframes=1d&from=2024-03-01&to=2024-03-29', headers: { authorization: AUTH } });
    expect(done.status).toBe(202);
    const id = String((JSON.parse(done.text) as { backfill_id: string }).backfill_id);
    await waitFor(async () => (await db<{ status: string }[]>`select status from enrichment.backfills where backfill_id = ${id}`)[0]?.status === 'completed', 30_000, () => `backfill ${id} to complete`);
    backfillIds.push(id);
  } finally {
    await stopWorkers(workers, 5000, logger);
  }
  // One that stays queued (no worker from here on).
  const queued = await send({ method: 'POST', path: '/api/v1/enrichment/trigger', headers: { authorization: AUTH, 'content-type': 'application/json' }, body: Buffer.from('{"symbols":["MSFT"],"from":"2024-03-01","to":"2024-03-08"}') });
  expect(queued.status).toBe(202);
  backfillIds.push(String((JSON.parse(queued.text) as { backfill_id: string }).backfill_id));

  // RS scores of one date, and the report the files above belong to.
  await db`
    insert into market.rs_scores (symbol, as_of_date, sector_name, sessions, rs_score, rs_rating, is_sector_leader)
    select symbol, ${RS_DATE}::date, sector_name, 253, 10 - row_number() over (order by symbol), 99 - row_number() over (order by symbol), true
    from market.sector_mapping where symbol in ('AAPL', 'MSFT', 'NVDA')`;
  await db`
    insert into ops.reports (report_date, kind, json_path, html_path, summary)
    values ('2026-11-20', 'daily', ${path.join(reportsDir, `daily_${REPORT_DATE}.json`)}, ${path.join(reportsDir, `daily_${REPORT_DATE}.html`)}, ${db.json({ has_trading: false })})`;
  tablesBefore = await countTables();
});

// A server an earlier test hung or killed is replaced, so one finding does not hide the others.
beforeEach(async () => {
  if (!serverDown && server?.failure() === undefined) return;
  await server.stop(1000);
  await startServer();
  serverDown = false;
});

afterAll(async () => {
  agent?.destroy();
  await server?.stop();
  await rt?.close();
  if (root) fs.rmSync(root, { recursive: true, force: true });
  if (stats.size > 0) {
    const lines = [...stats].map(([endpoint, { statuses, ms }]) => {
      const sorted = [...ms].sort((a, b) => a - b);
      const pct = (p: number) => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0).toFixed(1);
      const counts = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ');
      return `  ${endpoint.padEnd(34)} ${String(ms.length).padStart(5)} requests  p50 ${pct(0.5).padStart(6)} ms  p99 ${pct(0.99).padStart(6)} ms  ${counts}`;
    });
    process.stdout.write(`\nfuzz-api: ${RUNS} cases per endpoint, ${CONCURRENCY} in flight${SEED === undefined ? '' : `, seed ${SEED}`}\n${lines.join('\n')}\n`);
  }
});

// ---------------------------------------------------------------------------------------------
// The endpoints

describe(`every REST endpoint under hostile input (${RUNS} cases each)`, () => {
  it('GET /api/v1/schedules', async () => {
    await fuzz('GET /api/v1/schedules', request(methodOr('GET'), queryString({ next: ['1', '5'], json: ['true'] }).map((q) => `/api/v1/schedules${q}`)));
  }, FUZZ_TIMEOUT_MS);

  it('POST /api/v1/enrichment/trigger (query string and JSON body)', async () => {
    await fuzz(
      'POST /api/v1/enrichment/trigger',
      request(methodOr('POST'), queryString(TRIGGER_FIELDS).map((q) => `/api/v1/enrichment/trigger${q}`), fc.oneof({ weight: 4, arbitrary: hostileObject(TRIGGER_FIELDS) }, { weight: 1, arbitrary: hostileJson() })),
    );
  }, FUZZ_TIMEOUT_MS);

  it('GET /api/v1/backfills', async () => {
    await fuzz(
      'GET /api/v1/backfills',
      request(get, queryString({ status: ['queued', 'in_progress', 'completed', 'failed', 'cancelling', 'cancelled'], limit: ['1', '20', '500', '501'] }).map((q) => `/api/v1/backfills${q}`)),
    );
  }, FUZZ_TIMEOUT_MS);

  it('GET /api/v1/backfills/:id', async () => {
    await fuzz('GET /api/v1/backfills/:id', request(methodOr('GET'), fc.tuple(idComponent(), queryString({})).map(([id, q]) => `/api/v1/backfills/${id}${q}`)));
  }, FUZZ_TIMEOUT_MS);

  it('POST /api/v1/backfills/:id/cancel', async () => {
    await fuzz('POST /api/v1/backfills/:id/cancel', request(post, fc.tuple(idComponent(), queryString({})).map(([id, q]) => `/api/v1/backfills/${id}/cancel${q}`)));
  }, FUZZ_TIMEOUT_MS);

  it('POST /api/v1/backfills/:id/resume', async () => {
    await fuzz('POST /api/v1/backfills/:id/resume', request(post, fc.tuple(idComponent(), queryString({})).map(([id, q]) => `/api/v1/backfills/${id}/resume${q}`)));
  }, FUZZ_TIMEOUT_MS);

  it('GET /api/v1/enrichment/status/:symbol', async () => {
    await fuzz('GET /api/v1/enrichment/status/:symbol', request(get, fc.tuple(pathComponent(SYMBOLS), queryString({})).map(([s, q]) => `/api/v1/enrichment/status/${s}${q}`)));
  }, FUZZ_TIMEOUT_MS);

  it('GET /api/v1/enrichment/metrics', async () => {
    await fuzz('GET /api/v1/enrichment/metrics', request(methodOr('GET'), queryString({ days: ['7'], symbol: SYMBOLS }).map((q) => `/api/v1/enrichment/metrics${q}`)));
  }, FUZZ_TIMEOUT_MS);

  it('GET /api/v1/data/quality/:symbol', async () => {
    await fuzz(
      'GET /api/v1/data/quality/:symbol',
      request(get, fc.tuple(pathComponent(SYMBOLS), queryString({ days: ['1', '7', '365', '366'] })).map(([s, q]) => `/api/v1/data/quality/${s}${q}`)),
    );
  }, FUZZ_TIMEOUT_MS);

  it('GET /api/v1/rs', async () => {
    await fuzz(
      'GET /api/v1/rs',
      request(get, queryString({ sector: ['Information Technology', 'Energy', 'information technology'], leaders: ['true', 'false'], date: [RS_DATE, '2025-11-19'], limit: ['1', '100', '5000', '5001'] }).map((q) => `/api/v1/rs${q}`)),
    );
  }, FUZZ_TIMEOUT_MS);

  it('GET /api/v1/rs/:symbol', async () => {
    await fuzz('GET /api/v1/rs/:symbol', request(get, fc.tuple(pathComponent(SYMBOLS), queryString({ days: ['1', '30', '1000', '1001'] })).map(([s, q]) => `/api/v1/rs/${s}${q}`)));
  }, FUZZ_TIMEOUT_MS);

  it('GET /api/v1/partitions', async () => {
    await fuzz('GET /api/v1/partitions', request(methodOr('GET'), queryString({ job: GRID_JOB_NAMES, from: DATES, to: DATES }).map((q) => `/api/v1/partitions${q}`)));
  }, FUZZ_TIMEOUT_MS);

  it('POST /api/v1/partitions/rerun (with and without the CSRF token)', async () => {
    const csrf = fc.oneof(
      { weight: 8, arbitrary: fc.constant<Record<string, string>>({ [CSRF_HEADER]: CSRF }) },
      {
        weight: 1,
        arbitrary: fc.constantFrom<Record<string, string>>(
          {},
          { [CSRF_HEADER]: 'wrong' },
          { [CSRF_HEADER]: `${CSRF} ` },
          { [CSRF_HEADER]: CSRF, 'sec-fetch-site': 'cross-site' },
          { [CSRF_HEADER]: CSRF, origin: 'https://evil.example' },
          { [CSRF_HEADER]: CSRF, origin: 'null' },
          { [CSRF_HEADER]: CSRF, origin: 'javascript:alert(1)' },
        ),
      },
    );
    await fuzz(
      'POST /api/v1/partitions/rerun',
      request(methodOr('POST'), queryString({ job: GRID_JOB_NAMES, date: DATES }).map((q) => `/api/v1/partitions/rerun${q}`), fc.oneof({ weight: 4, arbitrary: hostileObject({ job: GRID_JOB_NAMES, date: DATES }) }, { weight: 1, arbitrary: hostileJson() }), csrf),
    );
  }, FUZZ_TIMEOUT_MS);

  it('GET /reports/<name> (path traversal included)', async () => {
    const name = fc.oneof(
      { weight: 2, arbitrary: fc.constantFrom(`daily_${REPORT_DATE}.html`, `daily_${REPORT_DATE}.json`, 'daily_20261121.json', 'daily_99999999.html', '', 'notes.txt', '.secret', '%2esecret') },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          '../secret.txt',
          '..%2Fsecret.txt',
          '%2e%2e%2fsecret.txt',
          '%2E%2E/secret.txt',
          '..%5Csecret.txt',
          '%252e%252e%252fsecret.txt',
          '....//secret.txt',
          '..;/secret.txt',
          '%c0%ae%c0%ae/secret.txt',
          `daily_${REPORT_DATE}.json%00.txt`,
          `daily_${REPORT_DATE}.json/../../secret.txt`,
          `daily_${REPORT_DATE}.json%2F..%2F..%2Fsecret.txt`,
          '..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd',
          '%2Fetc%2Fpasswd',
          '/etc/passwd',
          `${'..%2F'.repeat(40)}etc%2Fpasswd`,
        ),
      },
      { weight: 4, arbitrary: pathComponent([`daily_${REPORT_DATE}.html`, 'daily_2026112.html', 'daily_20261120.HTML', 'daily_20261120.json.bak']) },
      { weight: 1, arbitrary: fc.array(pathComponent(['..', '.', 'reports']), { minLength: 2, maxLength: 5 }).map((parts) => parts.join('/')) },
    );
    await fuzz('GET /reports/<name>', request(methodOr('GET'), fc.tuple(name, queryString({ download: ['1'] })).map(([n, q]) => `/reports/${n}${q}`)));
  }, FUZZ_TIMEOUT_MS);

  it('anything else: unknown routes and methods, Bull Board, the status page', async () => {
    const route = fc.oneof(
      { weight: 3, arbitrary: fc.array(pathComponent(['api', 'v1', 'v2', 'backfills', 'rs', 'enrichment', 'partitions', 'schedules']), { minLength: 1, maxLength: 4 }).map((parts) => `/api/${parts.join('/')}`) },
      { weight: 1, arbitrary: pathComponent(['healthz', 'readyz', 'metrics', 'favicon.ico', '.env', '.git']).map((p) => `/${p}`) },
      { weight: 1, arbitrary: queryString({ refresh: ['1'], from: DATES }).map((q) => `/${q}`) },
      { weight: 2, arbitrary: fc.array(pathComponent(['api', 'queues', 'enrichment', 'etl', 'reports', 'no-such-queue', 'jobs', 'retry', 'clean']), { minLength: 0, maxLength: 4 }).map((parts) => `${BOARD_PATH}/${parts.join('/')}`) },
    );
    await fuzz('other routes and methods', request(fc.constantFrom('GET', 'GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'), route));
  }, FUZZ_TIMEOUT_MS);
});

describe('what the fuzzing found, pinned', () => {
  // GET /api/v1/partitions?to=9999-12-31 looped for ever in listWeekdays (src/status/partitions.ts):
  // the day after 9999-12-31 is "+010000-01-01" as an ISO string, which sorts before "9999-…".
  it.each([
    ['GET', '/api/v1/partitions?to=9999-12-31'],
    ['GET', '/api/v1/partitions?from=9999-12-01&to=9999-12-31'],
    ['GET', '/api/v1/partitions?from=9999-12-31&to=9999-12-31&job=trade-etl'],
    ['GET', '/api/v1/rs?date=9999-12-31'],
    ['POST', '/api/v1/enrichment/trigger?symbol=AAPL&to=9999-12-31'],
  ])('%s %s answers at once, without a 5xx', async (method, route) => {
    const response = await send({ method, path: route, headers: { authorization: AUTH } });
    expect(problemOf({ method, path: route, headers: { authorization: AUTH } }, response)).toBeUndefined();
    expect(response.ms).toBeLessThan(REQUEST_TIMEOUT_MS);
  });

  it.each(['refresh-rs', 'nightly-report', 'build-rollups', 'enrichment-daily', 'trade-etl'])('POST /api/v1/partitions/rerun of %s for 9999-12-31 answers without a 5xx', async (job) => {
    const request: FuzzRequest = {
      method: 'POST',
      path: '/api/v1/partitions/rerun',
      headers: { authorization: AUTH, 'content-type': 'application/json', [CSRF_HEADER]: csrfToken },
      body: Buffer.from(JSON.stringify({ job, date: '9999-12-31' })),
    };
    const response = await send(request);
    expect(problemOf(request, response), response.text).toBeUndefined();
  });
});

describe('limits and side effects', () => {
  it('refuses every JSON body over the limit with 413 and a message, on every API route', async () => {
    const routes = [
      ['POST', '/api/v1/enrichment/trigger'],
      ['POST', `/api/v1/backfills/${backfillIds[0]}/cancel`],
      ['POST', `/api/v1/backfills/${backfillIds[0]}/resume`],
      ['POST', '/api/v1/partitions/rerun'],
      ['GET', '/api/v1/schedules'],
      ['GET', '/api/v1/rs'],
    ] as const;
    for (const [method, route] of routes) {
      const response = await send({ method, path: route, headers: { authorization: AUTH, 'content-type': 'application/json', [CSRF_HEADER]: csrfToken }, body: Buffer.from(`{"symbol":"${'A'.repeat(BODY_LIMIT_BYTES)}"}`) });
      expect(response.status, `${method} ${route}`).toBe(413);
      expect((JSON.parse(response.text) as { error: string }).error).toMatch(/too large/i);
    }
  });

  it('ran no injected SQL: every table is still there, and only the accepted triggers added rows', async () => {
    const after = await countTables();
    expect([...after.keys()]).toEqual([...tablesBefore.keys()]);
    const accepted = stats.get('POST /api/v1/enrichment/trigger')?.statuses.get(202) ?? 0;
    const changed = [...after].filter(([table, n]) => tablesBefore.get(table) !== n).map(([table]) => table);
    // A resume of the queued backfill updates rows; only a trigger inserts them.
    expect(changed.filter((t) => !['enrichment.backfills', 'enrichment.backfill_state'].includes(t))).toEqual([]);
    expect((after.get('enrichment.backfills') ?? 0) - (tablesBefore.get('enrichment.backfills') ?? 0)).toBe(accepted);
    for (const table of ['market.bars', 'market.features', 'market.sector_mapping', 'market.rs_scores', 'ops.job_runs', 'ops.etl_rejects', 'ops.reports']) {
      expect(after.get(table), table).toBe(tablesBefore.get(table));
    }
    expect(after.get('market.bars')).toBeGreaterThan(0);
    // No worker ran anything while the fuzz went on.
    expect(await rt.queues.get('enrichment')!.getActiveCount()).toBe(0);
    // And the secrets next to the reports are where they were.
    expect(fs.readFileSync(path.join(root, 'secret.txt'), 'utf8')).toBe(SENTINEL);
  });
});

