/**
 * Security (issue 9): every route the app serves is enumerated from Express's router stack
 * (and bull-board's own route table) and checked for authentication; the viewer account reads
 * everything and changes nothing; HOST defaults to loopback; secrets never reach the logs,
 * HTTP answers, ops.job_runs or BullMQ; the trigger endpoint is rate-limited per client; and
 * oversized bodies answer 413.
 */
import type { Worker } from 'bullmq';
import type express from 'express';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appRoutes } from '@bull-board/api/dist/routes.js';
import { JOBS } from '../../jobs/index.ts';
import { isLoopbackHost, loadConfig } from '../../src/config.ts';
import { BadInputError, ConfigError } from '../../src/errors.ts';
import { BOARD_PATH, VIEWER_BOARD_PATH, createHttpApp, startHttpServer, type HttpDeps, type HttpServer } from '../../src/http/app.ts';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { CSRF_HEADER } from '../../src/http/partitions.ts';
import { triggerClientKey } from '../../src/http/rate-limit.ts';
import { basePayload, defineJob } from '../../src/job-definition.ts';
import { createLogger } from '../../src/logger.ts';
import { createRedis } from '../../src/redis.ts';
import { startWorkers, stopWorkers } from '../../src/worker.ts';
import { waitFor } from '../helpers/processes.ts';
import { cleanupPrefix } from '../helpers/redis.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';
import { startRedisServer } from '../helpers/services.ts';

const ADMIN = { user: 'ops', password: 'admin-pass: with colon' };
const VIEWER = { user: 'viewer', password: 'viewer-pass' };
const ADMIN_AUTH = { authorization: formatBasicAuthorization(ADMIN) };
const VIEWER_AUTH = { authorization: formatBasicAuthorization(VIEWER) };
const TOKEN = 'csrf-token-of-the-security-test';
/** Everything the status page's script sends on its re-run POST. */
const PAGE_HEADERS = { 'content-type': 'application/json', [CSRF_HEADER]: TOKEN, 'sec-fetch-site': 'same-origin' };
/** Secrets planted in errors; none may appear in any log line, answer or stored message. */
const SECRETS = ['pgS3cret', 'POLYKEY123', 'redisS3cret'];

/** A logger that keeps its JSON lines in memory. */
function memoryLogger() {
  const lines: string[] = [];
  return { logger: createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(line) } }), lines };
}

function expectNoSecret(text: string, where: string): void {
  for (const secret of SECRETS) expect(text, `${where} leaks ${secret}`).not.toContain(secret);
}

// A job failing with secrets in its message: permanently, or retryably on every attempt.
const leakyJob = defineJob({
  name: 'leaky-job',
  queue: 'maintenance',
  description: 'test job: fails quoting a connection URL and a provider URL with its apiKey',
  payload: basePayload.extend({ key: z.string().min(1), permanent: z.boolean() }),
  schedule: null,
  partition: (p) => p.key,
  catchup: { mode: 'none' },
  process: async (ctx) => {
    const message = `GET https://api.polygon.io/v2/aggs/ticker/AAPL?apiKey=POLYKEY123 via postgres://bull:pgS3cret@db:5432/w failed`;
    if (ctx.payload.permanent) throw new BadInputError(message);
    throw Object.assign(new Error(message), { code: 'ECONNRESET' });
  },
});

let rt: TestRuntime;
let server: HttpServer;
let app: express.Express;
let schedulesFailure: Error | undefined;
const http = memoryLogger();

function deps(overrides: Partial<HttpDeps> = {}): HttpDeps {
  return {
    config: rt.config,
    logger: http.logger,
    metrics: rt.metrics,
    queues: rt.queues,
    db: rt.db.sql,
    redis: rt.redis,
    credentials: ADMIN,
    viewerCredentials: VIEWER,
    mode: 'full',
    definitions: JOBS,
    csrfToken: TOKEN,
    listSchedules: async () => {
      if (schedulesFailure) throw schedulesFailure;
      return [];
    },
    beforeScrape: async () => {},
    // Records the backfill, queues nothing: triggers answer 202 without work for a worker.
    enqueueBackfill: async () => ({ jobId: 'not-queued' }),
    ...overrides,
  };
}

beforeAll(async () => {
  rt = await createTestRuntime('security', [leakyJob]);
  app = createHttpApp(deps());
  server = await startHttpServer(app, '127.0.0.1', 0);
});

afterAll(async () => {
  await server?.close();
  await rt?.close();
});

function request(base: HttpServer, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Response> {
  return fetch(`${base.url}${path}`, { method, headers, body });
}

// ---------------------------------------------------------------------------------------------
// The app's routes, as Express and bull-board know them

interface RouteInfo {
  method: string;
  path: string;
}

/** The parts of router's Layer this walk reads (Express 5 / router 2). */
interface Layer {
  rawPath?: unknown;
  route?: { path: unknown; methods: Record<string, boolean | undefined> };
  handle?: { stack?: readonly Layer[] };
}

function joinPath(...parts: string[]): string {
  const joined = parts.join('/').replace(/\/{2,}/g, '/');
  return joined.length > 1 ? joined.replace(/\/$/, '') : joined;
}

/** Every route under `stack`, with the paths of the routers it is mounted through. */
function listRoutes(stack: readonly Layer[], prefix = ''): RouteInfo[] {
  const routes: RouteInfo[] = [];
  for (const layer of stack) {
    if (layer.route) {
      const paths = Array.isArray(layer.route.path) ? (layer.route.path as unknown[]) : [layer.route.path];
      for (const path of paths) {
        if (typeof path !== 'string') throw new Error(`route path ${String(path)} is not a string: extend listRoutes`);
        for (const [method, on] of Object.entries(layer.route.methods)) if (on) routes.push({ method: method.toUpperCase(), path: joinPath(prefix, path) });
      }
    } else if (layer.handle?.stack) {
      const mount = typeof layer.rawPath === 'string' ? layer.rawPath : '';
      routes.push(...listRoutes(layer.handle.stack, joinPath(prefix, mount)));
    }
  }
  return routes;
}

/** bull-board's API routes at a mount path (its sub-app hides them from the walk above). */
function boardRoutes(base: string): RouteInfo[] {
  return appRoutes.api.flatMap((route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const paths = Array.isArray(route.route) ? route.route : [route.route];
    return methods.flatMap((method) => paths.map((path) => ({ method: method.toUpperCase(), path: joinPath(base, path) })));
  });
}

/** A concrete path for a route pattern (`:id` → a value that parses as none). */
function concrete(path: string): string {
  return path.replace(/:(\w+)/g, (_match, name: string) => (name === 'id' ? '00000000-0000-4000-8000-000000000000' : 'x'));
}

const isMutating = (route: RouteInfo) => !['GET', 'HEAD', 'OPTIONS'].includes(route.method);
const label = (route: RouteInfo) => `${route.method} ${route.path}`;

describe('authentication', () => {
  const OPEN = ['GET /healthz', 'GET /readyz', 'GET /metrics'];

  it('finds the routes it checks in the router stack', () => {
    const routes = listRoutes((app as unknown as { router: { stack: Layer[] } }).router.stack).map(label);
    expect(routes).toEqual(
      expect.arrayContaining([
        ...OPEN,
        'GET /',
        'GET /reports',
        'GET /api/v1/schedules',
        'POST /api/v1/enrichment/trigger',
        'POST /api/v1/backfills/:id/cancel',
        'POST /api/v1/backfills/:id/resume',
        'POST /api/v1/partitions/rerun',
      ]),
    );
    expect(boardRoutes(BOARD_PATH).filter(isMutating).length).toBeGreaterThan(15);
  });

  it('every mutating route, the app’s and both boards’, answers 401 with a challenge without or with wrong credentials', async () => {
    const routes = [...listRoutes((app as unknown as { router: { stack: Layer[] } }).router.stack), ...boardRoutes(BOARD_PATH), ...boardRoutes(VIEWER_BOARD_PATH)].filter(isMutating);
    const wrong: Record<string, string>[] = [{}, { authorization: formatBasicAuthorization({ user: ADMIN.user, password: VIEWER.password }) }, { authorization: formatBasicAuthorization({ user: VIEWER.user, password: ADMIN.password }) }, { authorization: 'Bearer x' }];
    for (const route of routes) {
      for (const headers of wrong) {
        const response = await request(server, route.method, concrete(route.path), { ...PAGE_HEADERS, ...headers }, '{}');
        expect(response.status, `${label(route)} with ${JSON.stringify(headers)}`).toBe(401);
        expect(response.headers.get('www-authenticate')).toBe('Basic realm="bullpen"');
      }
    }
  });

  it('every other GET route needs credentials too; only the probes and /metrics are open', async () => {
    const routes = [...listRoutes((app as unknown as { router: { stack: Layer[] } }).router.stack), ...boardRoutes(BOARD_PATH), ...boardRoutes(VIEWER_BOARD_PATH)].filter((r) => !isMutating(r));
    for (const route of routes) {
      const response = await request(server, route.method, concrete(route.path));
      if (OPEN.includes(label(route))) expect(response.status, label(route)).not.toBe(401);
      else expect(response.status, label(route)).toBe(401);
    }
  });
});

describe('the viewer account', () => {
  it('reads the status page (linking the read-only board), reports and the API', async () => {
    const page = await request(server, 'GET', '/', VIEWER_AUTH);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`href="${VIEWER_BOARD_PATH}"`);
    expect(html).toContain(`data-board="${VIEWER_BOARD_PATH}"`);
    expect(html).not.toContain(`href="${BOARD_PATH}`);
    // Nor does it carry the CSRF token (derived from the admin's credentials; a viewer cannot re-run anyway).
    expect(html).toContain('<meta name="csrf-token" content="">');
    // The admin's page links the admin board and carries the token.
    const adminHtml = await (await request(server, 'GET', '/', ADMIN_AUTH)).text();
    expect(adminHtml).toContain(`href="${BOARD_PATH}"`);
    expect(adminHtml).toContain(`<meta name="csrf-token" content="${app.locals.csrfToken as string}">`);

    for (const path of ['/reports/', '/api/v1/schedules', '/api/v1/backfills', '/api/v1/partitions', '/api/v1/enrichment/metrics']) {
      expect((await request(server, 'GET', path, VIEWER_AUTH)).status, path).toBe(200);
    }
  });

  it('gets 403 on every mutating API route, before its body is read', async () => {
    const routes = listRoutes((app as unknown as { router: { stack: Layer[] } }).router.stack).filter((r) => isMutating(r) && r.path.startsWith('/api/'));
    expect(routes.length).toBeGreaterThanOrEqual(4);
    for (const route of routes) {
      const response = await request(server, route.method, concrete(route.path), { ...VIEWER_AUTH, ...PAGE_HEADERS }, '{}');
      expect(response.status, label(route)).toBe(403);
      expect(((await response.json()) as { detail: string }).detail).toMatch(/viewer.*read-only/);
    }
    // Even a body over the limit: refused for who sends it, not for its size.
    const big = await request(server, 'POST', '/api/v1/enrichment/trigger', { ...VIEWER_AUTH, 'content-type': 'application/json' }, JSON.stringify({ pad: 'x'.repeat(200_000) }));
    expect(big.status).toBe(403);
    // Whereas the admin's calls go through to the routes (here: 404, no such backfill).
    const cancel = await request(server, 'POST', '/api/v1/backfills/00000000-0000-4000-8000-000000000000/cancel', ADMIN_AUTH);
    expect(cancel.status).toBe(404);
  });

  it('cannot re-run a partition from the status page', async () => {
    const response = await request(server, 'POST', '/api/v1/partitions/rerun', { ...VIEWER_AUTH, ...PAGE_HEADERS }, JSON.stringify({ job: 'refresh-rs', date: '2025-11-18' }));
    expect(response.status).toBe(403);
    expect(await rt.queues.get('rs')!.getJobCounts()).toMatchObject({ waiting: 0, delayed: 0, prioritized: 0 });
  });

  it('gets a read-only Bull Board at its own path, and 403 at the admin board', async () => {
    const board = await request(server, 'GET', VIEWER_BOARD_PATH, VIEWER_AUTH);
    expect(board.status).toBe(200);
    expect(await board.text()).toContain(`<base href="${VIEWER_BOARD_PATH}/"`);
    const api = (await (await request(server, 'GET', `${VIEWER_BOARD_PATH}/api/queues`, VIEWER_AUTH)).json()) as { queues: { name: string; readOnlyMode: boolean }[] };
    expect(api.queues.map((q) => q.name).sort()).toEqual([...rt.queues.keys()].sort());
    expect(api.queues.every((q) => q.readOnlyMode)).toBe(true);

    for (const path of [BOARD_PATH, `${BOARD_PATH}/api/queues`]) {
      const response = await request(server, 'GET', path, VIEWER_AUTH);
      expect(response.status, path).toBe(403);
    }
  });

  it('the read-only board refuses every mutating call of bull-board’s API, the admin’s included; the admin board still takes them', async () => {
    for (const route of boardRoutes(VIEWER_BOARD_PATH).filter(isMutating)) {
      for (const auth of [VIEWER_AUTH, ADMIN_AUTH]) {
        const response = await request(server, route.method, concrete(route.path).replace('/x/', '/reports/'), { ...auth, 'content-type': 'application/json' }, '{}');
        expect(response.status, label(route)).toBe(403);
      }
    }
    for (const route of boardRoutes(BOARD_PATH).filter(isMutating)) {
      const response = await request(server, route.method, concrete(route.path), { ...VIEWER_AUTH, 'content-type': 'application/json' }, '{}');
      expect(response.status, label(route)).toBe(403);
    }
    const reports = rt.queues.get('reports')!;
    expect(await reports.isPaused()).toBe(false);

    const pause = await request(server, 'PUT', `${BOARD_PATH}/api/queues/reports/pause`, ADMIN_AUTH);
    expect(pause.status).toBe(200);
    expect(await reports.isPaused()).toBe(true);
    expect((await request(server, 'PUT', `${BOARD_PATH}/api/queues/reports/resume`, ADMIN_AUTH)).status).toBe(200);
    expect(await reports.isPaused()).toBe(false);
  });

  it('without viewer credentials there is no viewer board', async () => {
    const plain = await startHttpServer(createHttpApp(deps({ viewerCredentials: undefined })), '127.0.0.1', 0);
    try {
      expect((await request(plain, 'GET', VIEWER_BOARD_PATH, VIEWER_AUTH)).status).toBe(404);
      expect((await request(plain, 'GET', '/api/v1/schedules', VIEWER_AUTH)).status).toBe(401);
      expect((await request(plain, 'GET', BOARD_PATH, ADMIN_AUTH)).status).toBe(200);
    } finally {
      await plain.close();
    }
  });
});

describe('cross-site requests', () => {
  /** What a page on another site makes a browser send with a form POST; each alone is enough to refuse. */
  const CROSS_SITE: Record<string, string>[] = [
    { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'same-site' },
    { origin: 'https://evil.example' },
    { origin: 'null' },
  ];
  const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
  const backfills = async () => Number((await rt.db.sql<{ n: string }[]>`select count(*) as n from enrichment.backfills`)[0]!.n);

  it('a form POST to the trigger with the admin credentials answers 403 and records no backfill', async () => {
    const before = await backfills();
    const response = await request(server, 'POST', '/api/v1/enrichment/trigger?symbol=AAPL&timeframes=1d&from=2024-01-01&to=2024-01-31', { ...ADMIN_AUTH, ...FORM, ...CROSS_SITE[0] }, 'symbol=AAPL');
    expect(response.status).toBe(403);
    expect(((await response.json()) as { detail: string }).detail).toMatch(/^refused: a cross-site request \(Sec-Fetch-Site\); a POST from another site's page is not accepted/);
    expect(await backfills()).toBe(before);
  });

  it('a form POST to Bull Board with the admin credentials answers 403 and adds no job', async () => {
    const etl = rt.queues.get('etl')!;
    const before = await etl.getJobCountByTypes('waiting', 'delayed', 'prioritized');
    for (const headers of [FORM, { 'content-type': 'text/plain' }]) {
      const response = await request(server, 'POST', `${BOARD_PATH}/api/queues/etl/add`, { ...ADMIN_AUTH, ...headers, ...CROSS_SITE[0] }, 'name=x');
      expect(response.status).toBe(403);
      expect(((await response.json()) as { error: string }).error).toMatch(/^refused: a cross-site request/);
    }
    expect(await etl.getJobCountByTypes('waiting', 'delayed', 'prioritized')).toBe(before);
  });

  it('every mutating route, the app’s and both boards’, answers 403 to a cross-site request whoever sends it', async () => {
    const routes = [...listRoutes((app as unknown as { router: { stack: Layer[] } }).router.stack), ...boardRoutes(BOARD_PATH), ...boardRoutes(VIEWER_BOARD_PATH)].filter(isMutating);
    expect(routes.length).toBeGreaterThan(30);
    for (const route of routes) {
      for (const auth of [ADMIN_AUTH, VIEWER_AUTH]) {
        for (const headers of CROSS_SITE) {
          const response = await request(server, route.method, concrete(route.path), { ...PAGE_HEADERS, ...auth, ...headers }, '{}');
          expect(response.status, `${label(route)} with ${JSON.stringify(headers)}`).toBe(403);
          const body = (await response.json()) as { detail?: string; error?: string };
          expect(body.detail ?? body.error, label(route)).toMatch(/^refused: (a (cross|same)-site request|Origin \S+ is not this host)/);
        }
      }
    }
    expect(await rt.queues.get('reports')!.isPaused()).toBe(false);
  });

  it('lets clients that send no Origin (curl, scripts) and the app’s own pages through', async () => {
    const path = '/api/v1/enrichment/trigger?symbol=MSFT&timeframes=1d&from=2024-01-01&to=2024-01-31';
    const before = await backfills();
    expect((await request(server, 'POST', path, ADMIN_AUTH)).status).toBe(202);
    expect((await request(server, 'POST', path, { ...ADMIN_AUTH, 'sec-fetch-site': 'same-origin', origin: server.url })).status).toBe(202);
    // `none`: a request the user started (typed, bookmarked), never another page's doing.
    expect((await request(server, 'POST', path, { ...ADMIN_AUTH, 'sec-fetch-site': 'none' })).status).toBe(202);
    expect(await backfills()).toBe(before + 3);
    const pause = await request(server, 'PUT', `${BOARD_PATH}/api/queues/reports/pause`, { ...ADMIN_AUTH, 'sec-fetch-site': 'same-origin', origin: server.url });
    expect(pause.status).toBe(200);
    expect((await request(server, 'PUT', `${BOARD_PATH}/api/queues/reports/resume`, ADMIN_AUTH)).status).toBe(200);
    expect(await rt.queues.get('reports')!.isPaused()).toBe(false);
  });
});

describe('configuration', () => {
  it('binds to loopback unless told otherwise, and off loopback only with credentials', () => {
    const config = loadConfig({});
    expect(config.host).toBe('127.0.0.1');
    expect(isLoopbackHost(config.host)).toBe(true);
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrow(/BOARD_USER \/ BOARD_PASSWORD: required when HOST is not loopback/);
    expect(loadConfig({ HOST: '0.0.0.0', BOARD_USER: 'ops', BOARD_PASSWORD: 'pw' }).host).toBe('0.0.0.0');
  });

  it('takes viewer credentials in pairs, distinct from the admin user', () => {
    expect(loadConfig({ BOARD_VIEWER_USER: 'viewer', BOARD_VIEWER_PASSWORD: 'pw' })).toMatchObject({ boardViewerUser: 'viewer', boardViewerPassword: 'pw' });
    expect(loadConfig({})).toMatchObject({ boardViewerUser: undefined, boardViewerPassword: undefined });
    const message = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
      return '';
    };
    expect(message({ BOARD_VIEWER_USER: 'viewer' })).toContain('BOARD_VIEWER_USER / BOARD_VIEWER_PASSWORD: set both or neither');
    expect(message({ BOARD_VIEWER_PASSWORD: 'pw' })).toContain('BOARD_VIEWER_USER / BOARD_VIEWER_PASSWORD: set both or neither');
    expect(message({ BOARD_USER: 'ops', BOARD_PASSWORD: 'a', BOARD_VIEWER_USER: 'ops', BOARD_VIEWER_PASSWORD: 'b' })).toContain('BOARD_VIEWER_USER: must differ from the admin user "ops"');
    expect(message({ BOARD_VIEWER_USER: 'admin', BOARD_VIEWER_PASSWORD: 'b' })).toContain('BOARD_VIEWER_USER: must differ from the admin user "admin"');
  });

  it('limits triggers to 30 a minute per client unless ENRICHMENT_TRIGGER_RATE says otherwise', () => {
    expect(loadConfig({}).enrichmentTriggerRate).toBe(30);
    expect(loadConfig({ ENRICHMENT_TRIGGER_RATE: '0' }).enrichmentTriggerRate).toBe(0);
    expect(() => loadConfig({ ENRICHMENT_TRIGGER_RATE: '-1' })).toThrow(/ENRICHMENT_TRIGGER_RATE: must be a whole number of requests per minute ≥ 0/);
    expect(() => loadConfig({ ENRICHMENT_TRIGGER_RATE: 'lots' })).toThrow(/ENRICHMENT_TRIGGER_RATE: must be a whole number/);
  });
});

describe('secrets', () => {
  it('an error answered by the HTTP error handler keeps no URL password, in the answer or the log', async () => {
    http.lines.length = 0;
    schedulesFailure = new Error('connect ECONNREFUSED postgres://bull:pgS3cret@db:5432/w (redis://:redisS3cret@cache:6379)');
    try {
      const response = await request(server, 'GET', '/api/v1/schedules', ADMIN_AUTH);
      expect(response.status).toBe(500);
      const body = (await response.json()) as { error: string };
      expect(body.error).toBe('connect ECONNREFUSED postgres://bull:***@db:5432/w (redis://:***@cache:6379)');
    } finally {
      schedulesFailure = undefined;
    }
    const log = http.lines.join('');
    expect(log).toContain('http request failed');
    expectNoSecret(log, 'the HTTP log');
    // Nor does any log line carry the credentials the requests above sent.
    expect(log).not.toContain(ADMIN.password);
    expect(log).not.toContain(formatBasicAuthorization(ADMIN).slice('Basic '.length));
  });

  describe('at the worker boundary', () => {
    const work = memoryLogger();
    let workers: Worker[] = [];

    beforeAll(() => {
      workers = startWorkers({ ...rt.workerRuntime, logger: work.logger }, { connection: rt.redis });
    });

    afterAll(async () => {
      await stopWorkers(workers, 5000, work.logger);
    });

    it.each([
      ['a permanent failure', true, 1],
      ['a retryable failure, on every attempt', false, 3],
    ])('%s reaches ops.job_runs, BullMQ and the log without its secrets', async (_name, permanent, attempts) => {
      const key = permanent ? 'permanent' : 'retryable';
      const queue = rt.queues.get('maintenance')!;
      const job = await queue.add('leaky-job', { key, permanent }, { jobId: `leaky-job@${key}`, attempts: 3, backoff: { type: 'fixed', delay: 20 } });
      let row: { status: string; error: string | null; attempts: number } | undefined;
      await waitFor(
        async () => {
          [row] = await rt.db.sql<{ status: string; error: string | null; attempts: number }[]>`
            select status, error, attempts from ops.job_runs where job = 'leaky-job' and partition = ${key}`;
          return row?.status === 'failed';
        },
        20_000,
        () => `leaky-job ${key} to fail: ${JSON.stringify(row)}`,
      );
      expect(row?.attempts).toBe(attempts);
      expect(row?.error).toBe('GET https://api.polygon.io/v2/aggs/ticker/AAPL?apiKey=*** via postgres://bull:***@db:5432/w failed');

      const events = await rt.db.sql<{ error: string | null }[]>`select error from ops.job_run_events where job = 'leaky-job' and partition = ${key}`;
      expect(events.length).toBeGreaterThanOrEqual(1);
      expectNoSecret(JSON.stringify(events), 'ops.job_run_events');

      await waitFor(async () => (await job.getState()) === 'failed', 10_000, () => `BullMQ job ${key} to fail`);
      const stored = await queue.getJob(job.id!);
      expect(stored?.failedReason).toContain('apiKey=***');
      expectNoSecret(`${stored?.failedReason ?? ''}${JSON.stringify(stored?.stacktrace ?? [])}`, 'BullMQ failedReason/stacktrace');

      const log = work.lines.join('');
      expect(log).toContain('run failed');
      expectNoSecret(log, 'the worker log');
    });
  });
});

describe('POST /api/v1/enrichment/trigger rate limit', () => {
  it('answers 429 with Retry-After and {detail} once a client is over its limit, per user and address', async () => {
    // Counts of its own (the counts live in Redis under the prefix), whatever the other tests sent.
    const config = loadConfig({ ...rt.env, ENRICHMENT_TRIGGER_RATE: '2', LOG_LEVEL: 'silent', BULLPEN_PREFIX: `${rt.prefix}.limited` });
    const limited = await startHttpServer(createHttpApp(deps({ config })), '127.0.0.1', 0);
    try {
      const trigger = () => request(limited, 'POST', '/api/v1/enrichment/trigger?symbol=AAPL&from=2024-03-01&to=2024-03-31', ADMIN_AUTH);
      const first = await trigger();
      expect(first.status).toBe(202);
      expect(first.headers.get('ratelimit')).toMatch(/limit=2, remaining=1/);
      // A refused request counts as well.
      expect((await request(limited, 'POST', '/api/v1/enrichment/trigger?symbol=not%20a%20symbol', ADMIN_AUTH)).status).toBe(400);

      const third = await trigger();
      expect(third.status).toBe(429);
      const retryAfter = Number(third.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      const body = (await third.json()) as { detail: string };
      expect(body.detail).toMatch(/^too many backfill triggers: at most 2 per minute per client .*; retry in \d+ s$/);

      // Other routes, and a viewer's refusal, are untouched by it.
      expect((await request(limited, 'GET', '/api/v1/backfills', ADMIN_AUTH)).status).toBe(200);
      expect((await request(limited, 'POST', '/api/v1/enrichment/trigger?symbol=AAPL', VIEWER_AUTH)).status).toBe(403);
    } finally {
      await limited.close();
      await cleanupPrefix(rt.redis, config.prefix);
    }
  });

  it('shares each client\'s count between web processes on one Redis and prefix', async () => {
    const config = loadConfig({ ...rt.env, ENRICHMENT_TRIGGER_RATE: '2', LOG_LEVEL: 'silent', BULLPEN_PREFIX: `${rt.prefix}.shared` });
    const [a, b] = await Promise.all([1, 2].map(() => startHttpServer(createHttpApp(deps({ config })), '127.0.0.1', 0)));
    try {
      const refused = (server: typeof a) => request(server!, 'POST', '/api/v1/enrichment/trigger?symbol=not%20a%20symbol', ADMIN_AUTH);
      expect((await refused(a)).status).toBe(400);
      expect((await refused(b)).status).toBe(400);
      expect((await refused(a)).status).toBe(429);
      expect((await refused(b)).status).toBe(429);
    } finally {
      await Promise.all([a?.close(), b?.close()]);
      await cleanupPrefix(rt.redis, config.prefix);
    }
  });

  it('lets calls through uncounted while its Redis is away, instead of waiting for it, and counts again once it is back', async () => {
    const server = await startRedisServer();
    await server.stop();
    const counts = createRedis(server.url);
    counts.on('error', () => {});
    const config = loadConfig({ ...rt.env, ENRICHMENT_TRIGGER_RATE: '1', LOG_LEVEL: 'silent', BULLPEN_PREFIX: `${rt.prefix}.away` });
    const app = await startHttpServer(createHttpApp(deps({ config, redis: counts })), '127.0.0.1', 0);
    const refused = () => request(app, 'POST', '/api/v1/enrichment/trigger?symbol=not%20a%20symbol', ADMIN_AUTH);
    try {
      // Over the limit of 1, yet each is answered (400, not 429, not a hang): nothing is counted.
      for (let i = 0; i < 3; i += 1) {
        const started = Date.now();
        expect((await refused()).status).toBe(400);
        expect(Date.now() - started).toBeLessThan(2000);
      }
      // Back (empty, as after a restart): the store's scripts load again and calls count.
      await server.restart();
      await waitFor(async () => counts.status === 'ready', 10_000, () => 'the rate-limit client to reconnect');
      expect((await refused()).status).toBe(400);
      expect((await refused()).status).toBe(429);
    } finally {
      await app.close();
      counts.disconnect();
      await server.stop();
    }
  });

  it('counts each user and address apart', () => {
    expect(triggerClientKey('ops', '127.0.0.1')).not.toBe(triggerClientKey('ops', '127.0.0.2'));
    expect(triggerClientKey('ops', '127.0.0.1')).not.toBe(triggerClientKey('alice', '127.0.0.1'));
    expect(triggerClientKey('ops', '127.0.0.1')).toBe(triggerClientKey('ops', '127.0.0.1'));
    // One IPv6 client holds a whole /56: hopping addresses inside it does not reset the count.
    expect(triggerClientKey('ops', '2001:db8:1:100::1')).toBe(triggerClientKey('ops', '2001:db8:1:1ff::2'));
  });

  it('ENRICHMENT_TRIGGER_RATE=0 turns it off', async () => {
    const config = loadConfig({ ...rt.env, ENRICHMENT_TRIGGER_RATE: '0', LOG_LEVEL: 'silent' });
    const open = await startHttpServer(createHttpApp(deps({ config })), '127.0.0.1', 0);
    try {
      for (let i = 0; i < 3; i += 1) {
        const response = await request(open, 'POST', '/api/v1/enrichment/trigger?symbol=not%20a%20symbol', ADMIN_AUTH);
        expect(response.status).toBe(400);
        expect(response.headers.get('ratelimit')).toBeNull();
      }
    } finally {
      await open.close();
    }
  });
});

describe('body size', () => {
  it.each([
    ['POST', '/api/v1/enrichment/trigger', ADMIN_AUTH],
    ['POST', '/api/v1/partitions/rerun', { ...ADMIN_AUTH, ...PAGE_HEADERS }],
    ['POST', '/api/v1/backfills/00000000-0000-4000-8000-000000000000/cancel', ADMIN_AUTH],
  ])('%s %s refuses a body over 100 kB with 413 and a message', async (method, path, headers) => {
    http.lines.length = 0;
    const response = await request(server, method, path, { ...headers, 'content-type': 'application/json' }, JSON.stringify({ pad: 'x'.repeat(200_000) }));
    expect(response.status).toBe(413);
    expect(((await response.json()) as { error: string }).error).toMatch(/too large/i);
    // A client's mistake: logged as a warning, not as a server failure.
    const levels = http.lines.map((line) => (JSON.parse(line) as { level: number }).level);
    expect(levels).toContain(40);
    expect(levels).not.toContain(50);
  });
});
