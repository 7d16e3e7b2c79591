import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { createDb, type Sql } from '../../src/db.ts';
import { ConfigError } from '../../src/errors.ts';
import { createHttpApp, startHttpServer, type HttpDeps, type HttpServer } from '../../src/http/app.ts';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { recordQueueDepth } from '../../src/queue-metrics.ts';
import { closeQueues, createDefaultJobOptions, createQueues, type QueueMap } from '../../src/queues.ts';
import { createRedis, type Redis } from '../../src/redis.ts';
import type { ScheduleStatus } from '../../src/scheduler.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';
import { startRedisServer, type RedisServer } from '../helpers/services.ts';

const CREDENTIALS = { user: 'ops', password: 'correct horse: battery staple' };
const AUTH = { authorization: formatBasicAuthorization(CREDENTIALS) };
const WRONG_AUTH = { authorization: formatBasicAuthorization({ user: 'ops', password: 'guess' }) };

const SCHEDULE: ScheduleStatus = {
  name: 'trade-etl',
  queue: 'etl',
  cron: '*/5 * * * *',
  tz: 'America/New_York',
  calendar: 'all',
  overlap: 'skip',
  catchup: { mode: 'latest', windowHours: 2 },
  deadline: null,
  overridden: false,
  registered: true,
  paused: false,
  next_run: '2026-11-20T15:05:00.000Z',
  last_success: null,
  last_success_partition: null,
  last_failure: null,
  last_failure_partition: null,
  last_failure_error: null,
  running: 0,
  lag_seconds: 0,
};

const prefix = createTestPrefix('http');
const logger = createLogger({ level: 'silent', pretty: false });
let testDb: TestDatabase;
let config: Config;
let redis: Redis;
let db: Sql;
let queues: QueueMap;
let metrics: Metrics;
let server: HttpServer;
let schedulesFailure: Error | undefined;
let scrapeFailure: Error | undefined;

function createDeps(overrides: Partial<HttpDeps> = {}): HttpDeps {
  return {
    config,
    logger,
    metrics,
    queues,
    db,
    redis,
    credentials: CREDENTIALS,
    mode: 'full',
    definitions: JOBS,
    listSchedules: async () => {
      if (schedulesFailure) throw schedulesFailure;
      return [SCHEDULE];
    },
    beforeScrape: async () => {
      if (scrapeFailure) throw scrapeFailure;
      await recordQueueDepth(metrics, queues);
    },
    ...overrides,
  };
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
  metrics = createMetrics();
  redis = createRedis(config.redisUrl);
  db = createDb(testDb.url, { max: 2 });
  queues = createQueues(redis, config.prefix, createDefaultJobOptions({ attempts: 3, backoffMs: 100 }));
  server = await startHttpServer(createHttpApp(createDeps()), '127.0.0.1', 0);
});

afterAll(async () => {
  await server?.close();
  if (queues) await closeQueues(queues);
  await cleanupPrefix(TEST_REDIS_URL, prefix);
  await redis?.quit();
  await db?.end({ timeout: 5 });
  await testDb?.drop();
});

function get(path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, { headers });
}

describe('authentication', () => {
  it.each(['/admin/queues', '/admin/queues/api/queues', '/api/v1/schedules', '/'])('%s answers 401 with a challenge without credentials', async (path) => {
    const response = await get(path);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Basic realm="bullpen"');
    expect(await response.json()).toEqual({ error: 'authentication required' });
  });

  it.each(['/admin/queues', '/api/v1/schedules', '/'])('%s answers 401 with wrong credentials', async (path) => {
    for (const headers of [WRONG_AUTH, { authorization: formatBasicAuthorization({ user: 'admin', password: CREDENTIALS.password }) }, { authorization: 'Bearer x' }]) {
      const response = await get(path, headers);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Basic realm="bullpen"');
    }
  });

  it('serves the status page with credentials', async () => {
    const response = await get('/', AUTH);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    for (const link of ['/admin/queues', '/api/v1/schedules', '/metrics']) expect(html).toContain(`href="${link}"`);
  });
});

describe('Bull Board', () => {
  it('serves the board at its mount path with credentials, without x-powered-by', async () => {
    const response = await get('/admin/queues', AUTH);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-powered-by')).toBeNull();
    const html = await response.text();
    expect(html).toContain('<base href="/admin/queues/"');

    // Its assets sit behind the same credentials.
    const script = /src="(static\/js\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect((await get(`/admin/queues/${script}`, AUTH)).status).toBe(200);
    expect((await get(`/admin/queues/${script}`)).status).toBe(401);
  });

  it('lists every queue through its API', async () => {
    const response = await get('/admin/queues/api/queues', AUTH);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { queues: { name: string; isPaused: boolean }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual([...queues.keys()].sort());
  });

  it("gives each queue its jobs' payload schema", async () => {
    const etl = (await (await get('/admin/queues/api/queues/etl/job-data-schema', AUTH)).json()) as Record<string, unknown>;
    expect(etl.title).toBe('trade-etl');
    expect(etl.type).toBe('object');

    const enrichment = (await (await get('/admin/queues/api/queues/enrichment/job-data-schema', AUTH)).json()) as {
      anyOf: { title: string; type: string }[];
    };
    expect(enrichment.anyOf.map((branch) => branch.title).sort()).toEqual(['enrichment-backfill', 'enrichment-daily']);
    expect(enrichment.anyOf.every((branch) => branch.type === 'object')).toBe(true);
  });
});

describe('probes', () => {
  it('/healthz answers without credentials', async () => {
    const response = await get('/healthz');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('/readyz answers 200 when Redis and PostgreSQL are up', async () => {
    const response = await get('/readyz');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ready', redis: 'up', postgres: 'up' });
  });
});

describe('/metrics', () => {
  it('serves the seed metrics, bullpen gauges and process metrics without credentials', async () => {
    await queues.get('etl')!.add('trade-etl', {}, { jobId: 'trade-etl@http-test' });
    const reports = queues.get('reports')!;
    await reports.pause();
    await reports.add('nightly-report', {}, { jobId: 'nightly-report@http-test' });

    const response = await get('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    for (const name of ['etl_duration_seconds', 'analytics_rollups_built_total', 'analytics_etl_errors_total', 'bullpen_queue_depth', 'process_cpu_user_seconds_total']) {
      expect(text).toContain(`# TYPE ${name}`);
    }
    expect(text).toContain('bullpen_queue_depth{queue="etl",state="waiting"} 1');
    // BullMQ 6 keeps a paused queue's jobs in its wait list; they are reported as paused.
    expect(text).toContain('bullpen_queue_depth{queue="reports",state="paused"} 1');
    expect(text).toContain('bullpen_queue_depth{queue="reports",state="waiting"} 0');
    expect(text).toContain('bullpen_queue_depth{queue="rs",state="waiting-children"} 0');
  });

  it('still answers when refreshing the gauges fails', async () => {
    scrapeFailure = new Error('Redis went away');
    try {
      const response = await get('/metrics');
      expect(response.status).toBe(200);
      expect(await response.text()).toContain('# TYPE bullpen_queue_depth');
    } finally {
      scrapeFailure = undefined;
    }
  });
});

describe('API', () => {
  it('/api/v1/schedules lists the schedules with credentials', async () => {
    const response = await get('/api/v1/schedules', AUTH);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ schedules: [SCHEDULE] });
  });

  it('a failing handler reaches the error middleware as JSON 500', async () => {
    schedulesFailure = new Error('scheduler unavailable');
    try {
      const response = await get('/api/v1/schedules', AUTH);
      expect(response.status).toBe(500);
      expect(await response.json()).toEqual({ error: 'scheduler unavailable' });
    } finally {
      schedulesFailure = undefined;
    }
  });

  it('rejects an oversized JSON body with 413 and bad JSON with 400', async () => {
    const headers = { ...AUTH, 'content-type': 'application/json' };
    const big = await fetch(`${server.url}/api/v1/schedules`, { method: 'POST', headers, body: JSON.stringify({ pad: 'x'.repeat(200_000) }) });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: string }).error).toMatch(/too large/i);

    const bad = await fetch(`${server.url}/api/v1/schedules`, { method: 'POST', headers, body: '{"symbol":' });
    expect(bad.status).toBe(400);
  });

  it('answers unknown paths with JSON 404', async () => {
    const response = await get('/nope');
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: 'not found: GET /nope' });
  });
});

describe('binding', () => {
  it('takes an IPv6 HOST in brackets, as a URL writes it', async () => {
    const v6 = await startHttpServer(createHttpApp(createDeps()), '[::1]', 0);
    try {
      expect(v6.url).toBe(`http://[::1]:${v6.port}`);
      expect((await fetch(`${v6.url}/healthz`)).status).toBe(200);
    } finally {
      await v6.close();
    }
  });

  it.each(['no-such-host.invalid', 'http://127.0.0.1'])('refuses HOST %j, which resolves to nothing, with a ConfigError naming HOST and what it takes', async (host) => {
    const error = await startHttpServer(createHttpApp(createDeps()), host, 0).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message.startsWith(`HOST: cannot listen on "${host}": `), message).toBe(true);
    expect(message).toContain('HOST is an address of this machine (127.0.0.1, ::1 or localhost for loopback; 0.0.0.0 or :: for every interface)');
  });
});

describe('probe mode with a Redis that goes away', () => {
  let throwaway: RedisServer;
  let probeRedis: Redis;
  let probe: HttpServer;

  beforeAll(async () => {
    throwaway = await startRedisServer();
    probeRedis = createRedis(throwaway.url);
    await probeRedis.ping();
    probe = await startHttpServer(createHttpApp(createDeps({ mode: 'probe', redis: probeRedis })), '127.0.0.1', 0);
  });

  afterAll(async () => {
    await probe?.close();
    // It would reconnect forever to the stopped server; disconnect() stops that.
    probeRedis?.disconnect();
    await throwaway?.stop();
  });

  it('serves no board, API or status page', async () => {
    for (const path of ['/admin/queues', '/admin/queues/api/queues', '/api/v1/schedules', '/']) {
      const response = await fetch(`${probe.url}${path}`, { headers: AUTH });
      expect(response.status, path).toBe(404);
    }
    expect((await fetch(`${probe.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${probe.url}/metrics`)).status).toBe(200);
  });

  it('/readyz answers 503 naming redis once its Redis stops', async () => {
    const before = await fetch(`${probe.url}/readyz`);
    expect(before.status).toBe(200);

    await throwaway.stop();
    const response = await fetch(`${probe.url}/readyz`);
    expect(response.status).toBe(503);
    const body = (await response.json()) as Record<string, string>;
    expect(body).toMatchObject({ status: 'not ready', redis: 'down', postgres: 'up' });
    expect(body.message).toMatch(/^redis is down/);
  });
});
