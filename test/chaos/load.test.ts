/**
 * Load: an ad-hoc backfill of 2,000 symbol-timeframes (1,000 synthetic symbols × 1d and 1h) on
 * three worker processes, while 200 concurrent clients call the REST API of a web process
 * (reads of every kind, and small backfills of their own over the same series, which contend
 * for the per-series write lock). Every chunk must complete, none may be written twice
 * (one successful fetch_log row per chunk, no data corrections, no duplicate bars), and no
 * answer may be a 5xx. Prints requests, p50/p99 latency (overall and per route), errors,
 * chunks/s, bars/s and seconds.
 *
 * Also, directly: two runs of one series at the same chunk (BullMQ re-running a stalled job while
 * its first holder still runs) store each chunk once and pass over none.
 */
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { enrichmentBackfill } from '../../jobs/enrichment-backfill.ts';
import { createBackfill, createFlowEnqueuer, planBackfill } from '../../src/enrichment/backfills.ts';
import { createSyntheticProvider } from '../../src/enrichment/providers/synthetic.ts';
import type { FetchRequest, MarketDataProvider } from '../../src/enrichment/providers/types.ts';
import { runSeriesStep } from '../../src/enrichment/series-step.ts';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { createLogger } from '../../src/logger.ts';
import { spawnNode, startWorkerProcess, waitFor, type Child } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const SYMBOLS = Array.from({ length: 1000 }, (_, i) => `SYM${String(i + 1).padStart(4, '0')}`);
const TIMEFRAMES = ['1d', '1h'] as const;
/** Two 12-month chunks per series (2024 and 2025 to the end of March): 4,000 chunks, about 2.5 million bars. */
const FROM = '2024-07-01';
const TO = '2025-03-31';
const CLIENTS = 200;
const WORKERS = 3;
const CREDENTIALS = { user: 'ops', password: 'load-test-password' };
const AUTH = formatBasicAuthorization(CREDENTIALS);
// No per-client trigger limit: the load test's clients all share one address and one user.
const ENV = { ENRICHMENT_TRIGGER_RATE: '0', BOARD_USER: CREDENTIALS.user, BOARD_PASSWORD: CREDENTIALS.password };

const pick = <T,>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Call {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
}

/** One client's next call: mostly reads, now and then a small backfill over a series the big one also writes. */
function nextCall(backfillId: string): Call {
  const r = Math.random();
  const symbol = pick(SYMBOLS);
  if (r < 0.2) return { method: 'GET', path: `/api/v1/backfills/${backfillId}` };
  if (r < 0.35) return { method: 'GET', path: '/api/v1/backfills?limit=20' };
  if (r < 0.5) return { method: 'GET', path: `/api/v1/enrichment/status/${symbol}` };
  if (r < 0.6) return { method: 'GET', path: '/api/v1/enrichment/metrics' };
  if (r < 0.75) return { method: 'GET', path: `/api/v1/data/quality/${symbol}?days=30` };
  if (r < 0.85) return { method: 'GET', path: '/api/v1/partitions' };
  if (r < 0.97) return { method: 'GET', path: '/api/v1/schedules' };
  return { method: 'POST', path: '/api/v1/enrichment/trigger', body: { symbols: [symbol], timeframes: [pick(TIMEFRAMES)], from: '2025-02-01', to: '2025-02-28', source: 'synthetic' } };
}

interface Stats {
  latencies: number[];
  /** Latencies by route (the path with its ids and query left out). */
  byRoute: Map<string, number[]>;
  byStatus: Map<number, number>;
  /** Network failures (no HTTP answer at all). */
  failures: string[];
  serverErrors: string[];
  triggered: string[];
}

async function runClient(base: string, backfillId: string, stats: Stats, stop: () => boolean): Promise<void> {
  while (!stop()) {
    const call = nextCall(backfillId);
    const started = performance.now();
    try {
      const response = await fetch(`${base}${call.path}`, {
        method: call.method,
        headers: { authorization: AUTH, ...(call.body ? { 'content-type': 'application/json' } : {}) },
        body: call.body ? JSON.stringify(call.body) : undefined,
      });
      const text = await response.text();
      const ms = performance.now() - started;
      stats.latencies.push(ms);
      const route = `${call.method} ${call.path.split('?')[0]?.replace(/\/(SYM\d+|[0-9a-f-]{36})$/, '/:id')}`;
      const routeLatencies = stats.byRoute.get(route) ?? [];
      routeLatencies.push(ms);
      stats.byRoute.set(route, routeLatencies);
      stats.byStatus.set(response.status, (stats.byStatus.get(response.status) ?? 0) + 1);
      if (response.status >= 500) stats.serverErrors.push(`${call.method} ${call.path} → ${response.status} ${text.slice(0, 300)}`);
      if (call.method === 'POST' && response.status === 202) stats.triggered.push((JSON.parse(text) as { backfill_id: string }).backfill_id);
    } catch (error) {
      stats.failures.push(`${call.method} ${call.path}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/**
 * The synthetic source, except that a fetch waits (up to a second) until `parties` fetches of
 * the same chunk have begun: the runs of one series all hold the same chunk at once.
 */
function createLockstepProvider(parties: number): MarketDataProvider {
  const synthetic = createSyntheticProvider();
  const waiting = new Map<string, { count: number; release: () => void; all: Promise<void> }>();
  return {
    name: 'synthetic',
    async fetchBars(request: FetchRequest) {
      const key = `${request.symbol} ${request.timeframe} ${request.from}`;
      let entry = waiting.get(key);
      if (!entry) {
        let release = () => {};
        const all = new Promise<void>((resolve) => (release = resolve));
        entry = { count: 0, release, all };
        waiting.set(key, entry);
      }
      entry.count++;
      if (entry.count >= parties) entry.release();
      await Promise.race([entry.all, new Promise((resolve) => setTimeout(resolve, 1000))]);
      return synthetic.fetchBars(request);
    },
  };
}

describe('load', () => {
  let rt: TestRuntime | undefined;
  const children: Child[] = [];
  afterAll(async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => Promise.race([c.exited, new Promise((resolve) => setTimeout(resolve, 15_000))])));
    for (const child of children) if (child.process.exitCode === null && child.process.signalCode === null) child.kill('SIGKILL');
    await rt?.close();
  });

  // BullMQ re-runs a job whose lock lapsed (a worker stalled: a long pause, a lost Redis link)
  // while its first holder may still be running it: two runs of one series, at the same chunk.
  it('two runs of one series at once store each chunk once and skip none', async () => {
    const overlap = await createTestRuntime('chaos-overlap', [enrichmentBackfill]);
    try {
      const sql = overlap.db.sql;
      const plan = planBackfill({ symbols: ['OVL1'], timeframes: '1d', from: '2022-01-01', to: '2024-12-31', source: 'synthetic' }, { defaultSource: 'synthetic', maxBars: 1e9, now: Date.now() });
      const { backfillId } = await createBackfill({ db: sql, enqueue: async () => ({ jobId: 'not-queued' }) }, plan);
      const provider = createLockstepProvider(2);
      const deps = { db: sql, provider: () => provider, logger: createLogger({ level: 'silent', pretty: false }), retries: 0, retryBaseMs: 1, exchangeTz: 'America/New_York' };
      const runSeries = async () => {
        for (let steps = 0; steps < 20; steps++) {
          const outcome = await runSeriesStep(deps, { backfillId, symbol: 'OVL1', timeframe: '1d' });
          if (outcome.kind === 'done') return outcome.status;
        }
        throw new Error('the series did not end in 20 steps');
      };
      expect(await Promise.all([runSeries(), runSeries()])).toEqual(['completed', 'completed']);

      const expected = await createSyntheticProvider().fetchBars({ symbol: 'OVL1', assetClass: 'stock', timeframe: '1d', from: '2022-01-01', to: '2024-12-31' });
      const [state] = await sql<{ chunks_done: number; chunks_skipped: number; next_chunk: number }[]>`
        select chunks_done, chunks_skipped, next_chunk from enrichment.backfill_state where backfill_job_id = ${backfillId}`;
      const fetches = await sql<{ chunk_start: string; n: number }[]>`
        select chunk_start::text, count(*)::int as n from enrichment.fetch_log where backfill_job_id = ${backfillId} and success
        group by chunk_start order by chunk_start`;
      const [bars] = await sql<{ n: number }[]>`select count(*)::int as n from market.bars where symbol = 'OVL1'`;
      expect(state).toEqual({ chunks_done: 3, chunks_skipped: 0, next_chunk: 3 });
      expect(fetches).toEqual(plan.chunks.get(`OVL1\u00001d`)?.map((c) => ({ chunk_start: c.start, n: 1 })));
      expect(bars?.n).toBe(expected.bars.length);
    } finally {
      await overlap.close();
    }
  });

  it('2,000 series on three workers under 200 API clients: every chunk once, no 5xx', async () => {
    rt = await createTestRuntime('chaos-load', JOBS, ENV);
    const sql = rt.db.sql;
    const workerEnv = { ...rt.env, JOBS: 'catalogue', ROLE: 'worker' };
    children.push(...(await Promise.all(Array.from({ length: WORKERS }, () => startWorkerProcess(workerEnv)))));

    // The real web process, as `bullpen start --role web` runs it.
    const port = await freePort();
    const web = spawnNode('bin/bullpen.js', ['start', '--role', 'web'], { ...rt.env, PORT: String(port), HOST: '127.0.0.1' });
    children.push(web);
    const base = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.status === 200,
      30_000,
      () => `the web process to answer /healthz:\n${web.output()}`,
    );

    const plan = planBackfill({ symbols: SYMBOLS, timeframes: [...TIMEFRAMES], from: FROM, to: TO, source: 'synthetic', requested_by: 'load-test' }, { defaultSource: 'synthetic', maxBars: 1e9, now: Date.now() });
    expect(plan.symbols.length * plan.timeframes.length).toBe(2000);
    const started = performance.now();
    const enqueue = createFlowEnqueuer(rt.workerRuntime.flows, enrichmentBackfill, rt.workerRuntime.jobOptions);
    const { backfillId } = await createBackfill({ db: sql, enqueue }, plan);

    const stats: Stats = { latencies: [], byRoute: new Map(), byStatus: new Map(), failures: [], serverErrors: [], triggered: [] };
    let done = false;
    const clients = Array.from({ length: CLIENTS }, () => runClient(base, backfillId, stats, () => done));
    let status: string | undefined;
    try {
      await waitFor(
        async () => {
          const [row] = await sql<{ status: string; error: string | null }[]>`select status, error from enrichment.backfills where backfill_id = ${backfillId}`;
          status = row?.status;
          if (status === 'failed' || status === 'cancelled') throw new Error(`the backfill ended ${status}: ${row?.error}`);
          return status === 'completed';
        },
        540_000,
        () => `backfill ${backfillId} to complete (now ${status ?? 'no row'})`,
      );
    } finally {
      done = true;
      await Promise.all(clients);
    }
    const seconds = (performance.now() - started) / 1000;

    // The clients' own small backfills finish too (after the load stops, they no longer compete).
    await waitFor(
      async () => {
        const [row] = await sql<{ n: number }[]>`select count(*)::int as n from enrichment.backfills where status in ('queued', 'in_progress')`;
        return row?.n === 0;
      },
      120_000,
      () => 'the clients\' backfills to finish',
    );

    const report = (await (await fetch(`${base}/api/v1/backfills/${backfillId}`, { headers: { authorization: AUTH } })).json()) as {
      status: string;
      chunks_total: number;
      chunks_done: number;
      chunks_failed: number;
      chunks_skipped: number;
      bars_written: number;
    };
    // Every planned chunk of the big backfill: its ledger row, and how many successful fetches stored it.
    const chunks = await sql<{ symbol: string; timeframe: string; chunk_start: string; fetched_to: string; ledger: string | null; covered_to: string | null; fetches: number }[]>`
      with planned as (
        select s.symbol, s.timeframe, (c->>'start')::date as chunk_start, least((c->>'end')::date, ${TO}::date) as fetched_to
        from enrichment.backfill_state s, jsonb_array_elements(s.chunks) c
        where s.backfill_job_id = ${backfillId}
      )
      select p.symbol, p.timeframe, p.chunk_start::text, p.fetched_to::text, l.status as ledger, l.covered_to::text,
        (select count(*)::int from enrichment.fetch_log f
         where f.backfill_job_id = ${backfillId} and f.success and f.symbol = p.symbol and f.timeframe = p.timeframe and f.chunk_start = p.chunk_start) as fetches
      from planned p
      left join enrichment.chunks l on l.symbol = p.symbol and l.timeframe = p.timeframe and l.chunk_start = p.chunk_start`;
    // No chunk of any backfill (the clients' included) stored twice.
    const [twice] = await sql<{ n: number }[]>`
      select count(*)::int as n from (
        select 1 from enrichment.fetch_log where success group by backfill_job_id, symbol, timeframe, chunk_start having count(*) > 1
      ) t`;
    const [corrections] = await sql<{ n: number }[]>`select count(*)::int as n from enrichment.data_corrections`;
    const [bars] = await sql<{ n: number; d: number }[]>`
      select count(*)::int as n, (select count(*)::int from (select distinct symbol, timeframe, ts from market.bars) k) as d from market.bars`;
    const clientBackfills = await sql<{ status: string; n: number }[]>`
      select status, count(*)::int as n from enrichment.backfills where backfill_id <> ${backfillId} group by status order by status`;

    const sorted = [...stats.latencies].sort((a, b) => a - b);
    const requests = stats.latencies.length + stats.failures.length;
    const rateLimited = stats.byStatus.get(429) ?? 0;
    const errors = [...stats.byStatus].filter(([code]) => code >= 400).reduce((sum, [, n]) => sum + n, 0) + stats.failures.length;
    process.stdout.write(
      [
        '',
        `load: ${plan.symbols.length} symbols × ${plan.timeframes.join('+')} (${chunks.length} chunks) on ${WORKERS} worker processes, ${CLIENTS} API clients`,
        `  API requests ${requests}, p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${(sorted.at(-1) ?? NaN).toFixed(1)} ms`,
        ...[...stats.byRoute].map(([route, ms]) => {
          const s = [...ms].sort((a, b) => a - b);
          return `    ${route.padEnd(40)} ${String(s.length).padStart(6)}  p50 ${percentile(s, 50).toFixed(1)} ms  p99 ${percentile(s, 99).toFixed(1)} ms`;
        }),
        `  statuses ${JSON.stringify(Object.fromEntries([...stats.byStatus].sort(([a], [b]) => a - b)))}, errors ${errors} (5xx ${stats.serverErrors.length}, 429 ${rateLimited}, no answer ${stats.failures.length})`,
        `  backfills triggered by clients ${stats.triggered.length}: ${clientBackfills.map((b) => `${b.status} ${b.n}`).join(', ') || 'none'}`,
        `  chunks ${report.chunks_done}/${report.chunks_total} (${(report.chunks_done / seconds).toFixed(1)} chunks/s), bars ${report.bars_written} (${Math.round(report.bars_written / seconds)} bars/s), ${seconds.toFixed(1)} s`,
        `  chunks stored twice ${twice?.n ?? 0}, data corrections ${corrections?.n ?? 0}, duplicate bars ${(bars?.n ?? 0) - (bars?.d ?? 0)}`,
        '',
      ].join('\n'),
    );

    expect(stats.serverErrors.slice(0, 5)).toEqual([]);
    expect(stats.failures.slice(0, 5)).toEqual([]);
    // Every answer is a success: reads 200, triggers 202 (no limit is configured).
    expect([...stats.byStatus.keys()].filter((code) => code >= 400)).toEqual([]);
    expect(report.status).toBe('completed');
    expect(report.chunks_total).toBe(chunks.length);
    expect(report.chunks_done).toBe(report.chunks_total);
    expect(report.chunks_failed).toBe(0);
    // Each of its chunks was fetched and stored by this backfill exactly once: none skipped as done elsewhere.
    expect(report.chunks_skipped).toBe(0);
    expect(chunks.filter((c) => c.ledger !== 'completed' || c.covered_to !== c.fetched_to)).toEqual([]);
    expect(chunks.filter((c) => c.fetches !== 1).slice(0, 5)).toEqual([]);
    expect(twice?.n).toBe(0);
    expect(corrections?.n).toBe(0);
    expect(bars?.n).toBe(bars?.d);
    expect(clientBackfills.filter((b) => b.status !== 'completed')).toEqual([]);
  });
});
