/**
 * framework: no-op jobs per second through bullpen's worker (payload validation, the
 * partition claim and finish in ops.job_runs / ops.job_run_events, metrics, logging at level
 * silent) against its floor, a bare BullMQ Worker with a no-op processor on the same Redis,
 * in the same run.
 *
 * Each measurement enqueues N jobs with addBulk (not timed), then times from the worker's
 * construction until its 'completed' event has fired N times. Both sides use
 * `removeOnComplete: true` and their own ioredis connection. Runs alternate which side goes
 * first; one small untimed warm-up of each side precedes the measurements.
 *
 * Knobs: BENCH_JOBS (default 20000, c50), BENCH_JOBS_C1 (default 5000), BENCH_RUNS (default 3),
 * BENCH_CONCURRENCY (default "1,50"), BENCH_HISTORY_ROWS (default 0: ops.job_runs starts empty each
 * run; N: starts with N analyzed rows of another job), BENCH_VERBOSE=1 (per-run figures),
 * BENCH_DATABASE_URL, REDIS_URL.
 */
import { FlowProducer, Queue, Worker, type DefaultJobOptions, type Job } from 'bullmq';
import { z } from 'zod';
import { loadConfig } from '../src/config.ts';
import { createDb, type Sql } from '../src/db.ts';
import { basePayload, defineJob } from '../src/job-definition.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { migrate } from '../src/migrate.ts';
import { closeQueues, createDefaultJobOptions, createQueues, type QueueMap } from '../src/queues.ts';
import { createRedis } from '../src/redis.ts';
import { createRunRecorder, createRunsDb, type RunRecorder } from '../src/runs.ts';
import { createDefinitionMap, startWorkers, stopWorkers, type WorkerRuntime } from '../src/worker.ts';
import {
  BENCH_REDIS_URL,
  createBenchDatabase,
  deletePrefix,
  elapsedMs,
  envInt,
  finalLine,
  formatHostLoad,
  formatPeakRss,
  formatRate,
  formatRatio,
  formatTable,
  loadAverage,
  median,
  onCleanup,
  randomSuffix,
  runCleanups,
} from './lib.ts';

const JOB_NAME = 'bench-noop';
const BARE_QUEUE = 'bench-bare';
const ENQUEUE_CHUNK = 1000;
/** A run that makes no progress for this long is abandoned (and reported), never hung on. */
const STALL_MS = 60_000;
const WARMUP_JOBS = 2000;
/** Same options on both sides; one attempt, so a failing run fails fast instead of piling up retries. */
const JOB_OPTS = (i: number) => ({ jobId: `n-${i}`, removeOnComplete: true, removeOnFail: true, attempts: 1 });

const benchNoop = defineJob({
  name: JOB_NAME,
  queue: 'maintenance',
  description: 'bench only: does nothing',
  payload: basePayload.extend({ i: z.number() }),
  schedule: null,
  // One partition per job, so every job is really claimed and recorded.
  partition: (p) => String(p.i),
  catchup: { mode: 'none' },
  process: async () => ({}),
});

interface Measurement {
  jobs: number;
  ms: number;
  completed: number;
  failed: number;
  firstError?: string;
}

const rate = (m: Measurement) => (m.completed / m.ms) * 1000;

async function enqueue(queue: Queue, name: string, jobs: number): Promise<void> {
  // A previous run that failed leaves jobs behind; start from an empty queue every time.
  await queue.obliterate({ force: true });
  for (let start = 0; start < jobs; start += ENQUEUE_CHUNK) {
    const end = Math.min(jobs, start + ENQUEUE_CHUNK);
    const batch = [];
    for (let i = start; i < end; i++) batch.push({ name, data: { i }, opts: JOB_OPTS(i) });
    await queue.addBulk(batch);
  }
  const counts = await queue.getJobCounts('wait', 'prioritized', 'delayed', 'active');
  if (counts.wait !== jobs) throw new Error(`queue ${queue.name} holds ${JSON.stringify(counts)} after enqueueing ${jobs} jobs; expected ${jobs} waiting`);
}

/** Counts 'completed'/'failed' events until `jobs` have finished, or until nothing happens for STALL_MS. */
function watch(workers: readonly Worker[], jobs: number): Promise<Omit<Measurement, 'ms' | 'jobs'>> {
  return new Promise((resolve) => {
    let completed = 0;
    let failed = 0;
    let firstError: string | undefined;
    let last = Date.now();
    const done = () => {
      clearInterval(stall);
      resolve({ completed, failed, firstError });
    };
    const stall = setInterval(() => {
      if (Date.now() - last > STALL_MS) {
        firstError ??= `no progress for ${STALL_MS / 1000} s`;
        done();
      }
    }, 1000);
    for (const worker of workers) {
      worker.on('completed', () => {
        completed++;
        last = Date.now();
        if (completed + failed === jobs) done();
      });
      worker.on('failed', (_job: Job | undefined, err: Error) => {
        failed++;
        firstError ??= err.message;
        last = Date.now();
        if (completed + failed === jobs) done();
      });
    }
  });
}

interface Context {
  /** Rows of another job put into ops.job_runs (then ANALYZEd) before each bullpen run. */
  historyRows: number;
  /** One for the whole benchmark, as a worker process has one: its pool is warm after the warm-up. */
  recorder: RunRecorder;
  prefix: string;
  sql: Sql;
  databaseUrl: string;
  queues: QueueMap;
  flows: FlowProducer;
  jobOptions: DefaultJobOptions;
  bareQueue: Queue;
}

async function measureBare(ctx: Context, concurrency: number, jobs: number): Promise<Measurement> {
  await enqueue(ctx.bareQueue, 'bare-noop', jobs);
  const connection = createRedis(BENCH_REDIS_URL);
  const start = process.hrtime.bigint();
  const worker = new Worker(BARE_QUEUE, async () => ({}), { connection, prefix: ctx.prefix, concurrency });
  worker.on('error', () => {});
  const outcome = await watch([worker], jobs);
  const ms = elapsedMs(start);
  await worker.close();
  await connection.quit();
  return { jobs, ms, ...outcome };
}

async function measureBullpen(ctx: Context, concurrency: number, jobs: number): Promise<Measurement & { recorded: number; events: number }> {
  await ctx.sql`truncate ops.job_runs, ops.job_run_events`;
  if (ctx.historyRows > 0) {
    // Optional: a run table that already holds history (and has statistics), as in a deployment that has run for a while.
    await ctx.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, started_at, finished_at, worker)
      select 'bench-history', g::text, 'maintenance', 'h-' || g, 'succeeded', 1, 1, now(), now(), 'bench'
      from generate_series(1, ${ctx.historyRows}::int) g`;
    await ctx.sql`analyze ops.job_runs`;
  }
  const config = loadConfig({
    ...process.env,
    BULLPEN_PREFIX: ctx.prefix,
    DATABASE_URL: ctx.databaseUrl,
    LOG_LEVEL: 'silent',
    CONCURRENCY_MAINTENANCE: String(concurrency),
  });
  const logger = createLogger({ level: 'silent', pretty: false });
  const runtime: WorkerRuntime = {
    config,
    db: ctx.sql,
    sourceDb: ctx.sql,
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    recorder: ctx.recorder,
    queues: ctx.queues,
    definitions: createDefinitionMap([benchNoop]),
    flows: ctx.flows,
    jobOptions: ctx.jobOptions,
  };
  const queue = ctx.queues.get('maintenance');
  if (!queue) throw new Error('no maintenance queue');
  await enqueue(queue, JOB_NAME, jobs);
  const connection = createRedis(BENCH_REDIS_URL);
  const start = process.hrtime.bigint();
  const workers = startWorkers(runtime, { connection });
  const outcome = await watch(workers, jobs);
  const ms = elapsedMs(start);
  await runtime.recorder.drain();
  await stopWorkers(workers, 10_000, logger);
  await connection.quit();
  const [row] = await ctx.sql<{ recorded: number; events: number }[]>`
    select (select count(*)::int from ops.job_runs where job = ${JOB_NAME} and status = 'succeeded') as recorded,
           (select count(*)::int from ops.job_run_events where job = ${JOB_NAME} and outcome = 'succeeded') as events`;
  return { jobs, ms, ...outcome, recorded: row?.recorded ?? 0, events: row?.events ?? 0 };
}

function checkBare(m: Measurement, label: string): void {
  if (m.completed !== m.jobs) console.log(`  warning: ${label}: ${m.completed}/${m.jobs} completed, ${m.failed} failed${m.firstError ? ` (${m.firstError})` : ''}`);
}

function checkBullpen(m: Measurement & { recorded: number; events: number }, label: string): void {
  checkBare(m, label);
  // ops.job_run_events may or may not keep successful attempts; every job must leave a succeeded job_runs row.
  if (m.recorded !== m.jobs) {
    console.log(`  warning: ${label}: ops.job_runs has ${m.recorded} succeeded rows (ops.job_run_events ${m.events}) for ${m.jobs} jobs`);
  }
}

export interface FrameworkOptions {
  /** The run recorder under test. @defaultValue createRunRecorder over createRunsDb, as src/app.ts does */
  createRecorder?: (sql: Sql, databaseUrl: string) => RunRecorder;
  /** Called after each timed measurement (for profiling harnesses). */
  onMeasurement?: (info: { side: 'bare' | 'ours'; concurrency: number; run: number; jobs: number; ms: number; completed: number }) => void;
}

export async function run(options: FrameworkOptions = {}): Promise<void> {
  // As in production (src/app.ts): the recorder writes through its own pool (createRunsDb).
  const createRecorder =
    options.createRecorder ??
    ((_sql: Sql, databaseUrl: string) => {
      const runsDb = createRunsDb(databaseUrl);
      onCleanup(() => runsDb.end({ timeout: 5 }));
      return createRunRecorder(runsDb, { worker: 'bench' });
    });
  const jobsC50 = envInt('BENCH_JOBS', 20_000);
  const jobsC1 = envInt('BENCH_JOBS_C1', 5000);
  const runs = envInt('BENCH_RUNS', 3);
  const levels = (process.env.BENCH_CONCURRENCY ?? '1,50')
    .split(',')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
  const jobsAt = (c: number) => (c === 1 ? jobsC1 : jobsC50);
  const verbose = process.env.BENCH_VERBOSE === '1';
  const historyRows = envInt('BENCH_HISTORY_ROWS', 0);

  const loadAtStart = loadAverage();
  const prefix = `bullpen-bench-${randomSuffix()}`;
  const redis = createRedis(BENCH_REDIS_URL);
  onCleanup(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });
  const database = await createBenchDatabase();
  const sql = createDb(database.url, { applicationName: 'bullpen-bench' });
  onCleanup(() => sql.end({ timeout: 5 }));
  try {
    await migrate(sql);
    const jobOptions = createDefaultJobOptions({ attempts: 5, backoffMs: 5000 });
    const queues = createQueues(redis, prefix, jobOptions);
    const flows = new FlowProducer({ connection: redis, prefix });
    const bareQueue = new Queue(BARE_QUEUE, { connection: redis, prefix });
    onCleanup(async () => {
      await closeQueues(queues);
      await flows.close();
      await bareQueue.close();
    });
    const ctx: Context = { historyRows, recorder: createRecorder(sql, database.url), prefix, sql, databaseUrl: database.url, queues, flows, jobOptions, bareQueue };

    // Warm-up (untimed): JIT, connection pools, Lua script loading on both sides.
    checkBare(await measureBare(ctx, 50, WARMUP_JOBS), 'warm-up bare');
    checkBullpen(await measureBullpen(ctx, 50, WARMUP_JOBS), 'warm-up bullpen');

    const rows: { concurrency: number; jobs: number; bare: number; ours: number }[] = [];
    const notes: string[] = [];
    const noteFailures = (label: string, m: Measurement) => {
      if (m.completed !== m.jobs && !notes.some((n) => n.startsWith(label))) {
        notes.push(`${label}: ${m.jobs - m.completed} of ${m.jobs} jobs did not complete in at least one run (first error: ${m.firstError ?? 'none'}); its rate counts completed jobs only`);
      }
    };
    for (const concurrency of levels) {
      const jobs = jobsAt(concurrency);
      const bare: number[] = [];
      const ours: number[] = [];
      for (let r = 0; r < runs; r++) {
        // Alternate which side goes first so drift (Redis memory, PostgreSQL autovacuum) hits both.
        const sides = r % 2 === 0 ? (['bare', 'ours'] as const) : (['ours', 'bare'] as const);
        for (const side of sides) {
          const label = `c${concurrency} run ${r + 1} ${side}`;
          if (side === 'bare') {
            const m = await measureBare(ctx, concurrency, jobs);
            checkBare(m, label);
            noteFailures(`bare BullMQ c${concurrency}`, m);
            bare.push(rate(m));
            if (verbose) console.log(`  ${label}: ${formatRate(rate(m))} (${Math.round(m.ms)} ms)`);
            options.onMeasurement?.({ side, concurrency, run: r, jobs: m.jobs, ms: m.ms, completed: m.completed });
          } else {
            const m = await measureBullpen(ctx, concurrency, jobs);
            checkBullpen(m, label);
            noteFailures(`bullpen c${concurrency}`, m);
            ours.push(rate(m));
            if (verbose) console.log(`  ${label}: ${formatRate(rate(m))} (${Math.round(m.ms)} ms)`);
            options.onMeasurement?.({ side, concurrency, run: r, jobs: m.jobs, ms: m.ms, completed: m.completed });
          }
        }
      }
      rows.push({ concurrency, jobs, bare: median(bare), ours: median(ours) });
    }

    const jobCounts = [...new Set(rows.map((r) => r.jobs))];
    const header =
      jobCounts.length === 1
        ? `${jobCounts[0]} no-op jobs`
        : rows.map((r) => `${r.jobs} no-op jobs at c${r.concurrency}`).join(', ');
    console.log(`framework (${header}, median of ${runs})`);
    console.log(
      formatTable([
        ['concurrency', 'bare BullMQ', 'bullpen', 'ratio'],
        ...rows.map((r) => [String(r.concurrency), formatRate(r.bare), formatRate(r.ours), formatRatio(r.ours, r.bare)]),
      ]),
    );
    for (const note of notes) console.log(`note: ${note}`);
    console.log(formatHostLoad(loadAtStart));
    console.log(formatPeakRss());
    const headline = rows.find((r) => r.concurrency === 50) ?? rows.at(-1);
    if (headline) {
      const ratio = headline.ours / headline.bare;
      console.log(`target: bullpen ≥ 0.50 of bare BullMQ at c${headline.concurrency}: ${ratio >= 0.5 ? 'met' : 'NOT met'} (${ratio.toFixed(2)})`);
      console.log(finalLine('framework', 'jobs', headline.ours, headline.bare));
    }
  } finally {
    await runCleanups();
  }
}
