/**
 * What the alerts and probes read stays true when things go wrong: lag keeps growing while a
 * schedule stays broken past its window, deadlines are checked whatever Redis does, a run that
 * fails before it starts is counted, and /readyz asks PostgreSQL itself, not the jobs' busy pool.
 */
import { DateTime } from 'luxon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { startApp } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { schedulePeriodMs } from '../../src/cron.ts';
import type { Sql } from '../../src/db.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { createGaugeRefresher } from '../../src/queue-metrics.ts';
import { QUEUE_NAMES, closeQueues, createDefaultJobOptions, createQueues, type QueueMap } from '../../src/queues.ts';
import { createRedis, type Redis } from '../../src/redis.ts';
import { checkDeadlines, listScheduleStatus, resolveSchedules, startSchedulerLoop, type Schedule } from '../../src/scheduler.ts';
import { startWorkers, stopWorkers, type WorkerRuntime } from '../../src/worker.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime } from '../helpers/runtime.ts';

const prefix = createTestPrefix('signals');
const logger = createLogger({ level: 'silent', pretty: false });
let testDb: TestDatabase;
let db: Sql;
let config: Config;
let configEnv: Record<string, string>;
let redis: Redis;
let queues: QueueMap;
let schedules: Schedule[];

function scheduleNamed(id: string): Schedule {
  const schedule = schedules.find((s) => s.id === id);
  if (!schedule) throw new Error(`no schedule ${id}`);
  return schedule;
}

async function gaugeValue(metrics: Metrics, name: 'deadlineMissed', labels: Record<string, string>): Promise<number | undefined> {
  const { values } = await metrics[name].get();
  return values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k as never] === value))?.value;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = testDb.sql;
  configEnv = {
    BULLPEN_PREFIX: prefix,
    REDIS_URL: TEST_REDIS_URL,
    DATABASE_URL: testDb.url,
    BOARD_USER: 'ops',
    BOARD_PASSWORD: 'signals-test-password',
    LOG_LEVEL: 'silent',
  };
  config = loadConfig(configEnv);
  redis = createRedis(TEST_REDIS_URL);
  queues = createQueues(redis, prefix, createDefaultJobOptions({ attempts: 1, backoffMs: 100 }));
  schedules = resolveSchedules(JOBS, config);
});

afterAll(async () => {
  await closeQueues(queues);
  await cleanupPrefix(redis, prefix);
  await redis.quit();
  await testDb.drop();
});

describe('schedule lag (bullpen_schedule_lag_seconds, BullpenScheduleLagging)', () => {
  it('keeps growing while a daily schedule stays broken, so the lag alert (over twice the interval) can fire', async () => {
    // build-rollups ticks daily at 23:30 New York, catch-up window 48 h. Its last done partition is
    // six days old and nothing succeeded since: the oldest expected tick after it has waited ~5 days.
    const rollups = scheduleNamed('build-rollups');
    const now = new Date();
    // The deployment began a month ago (a tick from before it is owed to no one).
    await db`update ops.schema_migrations set applied_at = now() - interval '30 days'`;
    const lastDone = DateTime.fromJSDate(now).setZone(rollups.tz).minus({ days: 6 }).toISODate() as string;
    const tick = DateTime.fromISO(`${lastDone}T23:30:00`, { zone: rollups.tz });
    await db`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
      values ('build-rollups', ${lastDone}, 'rollups', ${`build-rollups@${lastDone}`}, 'succeeded', 1, 1,
              ${tick.toJSDate()}, ${tick.plus({ minutes: 1 }).toJSDate()}, ${tick.plus({ minutes: 2 }).toJSDate()})`;

    const [status] = await listScheduleStatus({ db, queues, logger, metrics: createMetrics({ defaultMetrics: false }) }, [rollups], now);
    const intervalSeconds = schedulePeriodMs(rollups.cron, rollups.tz, now) / 1000;
    // The first tick after the last done one was (about) five days ago.
    expect(status!.lag_seconds).toBeGreaterThanOrEqual(4 * 86_400);
    // ops/prometheus/alerts.yml: BullpenScheduleLagging fires when lag > 2 × interval.
    expect(status!.lag_seconds).toBeGreaterThan(2 * intervalSeconds);
  });

  it('is zero on a deployment that has just begun: ticks from before it are caught up, not lagging', async () => {
    // Begun this instant: trade-etl ticks every 5 minutes, so a deployment begun minutes ago may
    // already owe one of its own ticks, and lag for it rightly.
    await db`update ops.schema_migrations set applied_at = now()`;
    try {
      const statuses = await listScheduleStatus({ db, queues, logger, metrics: createMetrics({ defaultMetrics: false }) }, schedules, new Date());
      expect(statuses.map((s) => [s.name, s.lag_seconds])).toEqual(schedules.map((s) => [s.id, 0]));
    } finally {
      await db`update ops.schema_migrations set applied_at = now() - interval '30 days'`;
    }
  });
});

describe('deadline checks (bullpen_deadline_missed, BullpenDeadlineMissed)', () => {
  it('still reports a miss, and /metrics still shows the gauge, when Redis refuses commands (catch-up and the reconciler fail)', async () => {
    // The deployment began a month ago, so recent nightly-report ticks are owed and page.
    await db`update ops.schema_migrations set applied_at = applied_at - interval '30 days'`;
    await db`delete from ops.deadline_misses where schedule = 'nightly-report'`;
    // A Redis that answers every command with an error (LOADING after a restart, OOM, READONLY…).
    const refusing = new Proxy(
      {},
      {
        get: (_target, property) =>
          property === 'then'
            ? undefined
            : async () => {
                throw new Error('LOADING Redis is loading the dataset in memory');
              },
      },
    );
    const refusingQueues = new Map(QUEUE_NAMES.map((name) => [name, refusing])) as unknown as QueueMap;
    const metrics = createMetrics({ defaultMetrics: false });
    const nightly = scheduleNamed('nightly-report');
    const now = new Date();
    const loop = startSchedulerLoop({ db, queues: refusingQueues, logger, metrics }, [nightly], 3_600_000, () => now);
    await loop.runOnce();
    await loop.stop();
    // No nightly report exists for any recent date, and the latest one's deadline (00:30 UTC) has passed:
    // the check needs only PostgreSQL, and the report not being made is exactly what it is for.
    const counted = (await metrics.deadlineMisses.get()).values.find((v) => v.labels.schedule === 'nightly-report')?.value ?? 0;
    expect(counted).toBeGreaterThanOrEqual(1);

    // The refresh before a scrape: the Redis-fed gauges fail, the deadline gauge is set all the same.
    const refresh = createGaugeRefresher({
      metrics,
      queues: refusingQueues,
      db,
      schedules: [nightly],
      listSchedules: () => listScheduleStatus({ db, queues: refusingQueues, logger, metrics }, [nightly], new Date()),
    });
    await expect(refresh()).rejects.toThrow(/refreshing gauges|LOADING/);
    expect(await gaugeValue(metrics, 'deadlineMissed', { schedule: 'nightly-report' })).toBe(1);
  });
});

describe('deadline gauge where no scheduler is scraped (bullpen_deadline_missed, BullpenDeadlineMissed)', () => {
  it('is served by a web process from the database, and clears once the partition is done; the miss is counted only where it was reported', async () => {
    const nightly = scheduleNamed('nightly-report');
    // The deployment began a month ago, so recent nightly-report ticks are owed.
    await db`update ops.schema_migrations set applied_at = now() - interval '30 days'`;
    // The scheduler runs as a process of its own without PORT: its registry is never scraped.
    const unscraped = createMetrics({ defaultMetrics: false });
    const misses = await checkDeadlines({ db, queues, logger, metrics: unscraped }, [nightly], new Date());
    const latest = misses.at(-1);
    expect(latest, 'no nightly report exists here: the latest due one is late').toBeDefined();

    const web = await startApp(loadConfig({ ...configEnv, PORT: '0', HOST: '127.0.0.1' }), { role: 'web', logger });
    try {
      // A scrape serves what the refresh before it set within its 3 s; a cold process's first
      // refresh can take longer and its values then come with the next scrape, as Prometheus sees it.
      let text = '';
      const scrapeUntil = (line: string) =>
        waitFor(async () => (text = await (await fetch(`${web.url}/metrics`)).text()).includes(line), 20_000, () => `a scrape showing ${line}`);
      await scrapeUntil('bullpen_deadline_missed{schedule="nightly-report"} 1');
      // Counted once in all, by the scheduler process whose row reported it: a web process adds no count of its own.
      expect(text).not.toMatch(/^bullpen_deadline_misses_total\{/m);

      // The report is made late (a catch-up run, or a re-run from the status page).
      await db`
        insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
        values ('nightly-report', ${latest!.partition}, 'reports', ${`nightly-report@${latest!.partition}`}, 'succeeded', 1, 1, now(), now(), now())`;
      await scrapeUntil('bullpen_deadline_missed{schedule="nightly-report"} 0');
    } finally {
      await web.stop();
    }
  });
});

describe('job outcome counter (bullpen_jobs_total, BullpenJobFailed)', () => {
  it('counts a run that fails for good before its job started (its ops.job_runs claim failed: PostgreSQL down)', async () => {
    const rt = await createTestRuntime('signals-claim', JOBS, { JOB_ATTEMPTS: '1' });
    const workers: Awaited<ReturnType<typeof startWorkers>> = [];
    try {
      const runtime: WorkerRuntime = {
        ...rt.workerRuntime,
        recorder: {
          ...rt.recorder,
          claimScheduled: async () => {
            throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
          },
        },
      };
      workers.push(...startWorkers(runtime, { connection: rt.redis, queues: ['reports'] }));
      const nightly = JOBS.find((j) => j.name === 'nightly-report')!;
      const enqueued = await enqueueRun(rt.queues, nightly, { date: '2026-11-20' });
      const queue = rt.queues.get('reports')!;
      let state = '';
      for (let i = 0; i < 150 && state !== 'failed' && state !== 'completed'; i++) {
        state = await queue.getJobState(enqueued.jobId);
        if (state !== 'failed' && state !== 'completed') await sleep(100);
      }
      // BullMQ failed it for good: Bull Board shows a failed job…
      expect(state).toBe('failed');
      // …and the metric the job-failure alert reads must say so too.
      const { values } = await rt.metrics.jobsTotal.get();
      const failed = values.find((v) => v.labels.job === 'nightly-report' && v.labels.outcome === 'failed')?.value ?? 0;
      expect(failed).toBe(1);
    } finally {
      await stopWorkers(workers, 5000, logger);
      await rt.close();
    }
  });
});

describe('readiness (/readyz)', () => {
  it('answers ready while PostgreSQL answers, even when every connection of the jobs\' pool is busy', async () => {
    const app = await startApp(
      loadConfig({ ...configEnv, PORT: '0', HOST: '127.0.0.1' }),
      { role: 'web', logger },
    );
    try {
      // Jobs holding every connection of the shared pool (10): enrichment chunks and rollups run long transactions.
      const busy = Promise.all(Array.from({ length: 10 }, () => app.services.db.begin(async (tx) => {
        await tx`select pg_sleep(3)`;
      })));
      await sleep(300);
      const response = await fetch(`${app.url}/readyz`);
      const body = (await response.json()) as { status: string; postgres: string };
      await busy;
      expect(body.postgres).toBe('up');
      expect(response.status).toBe(200);
    } finally {
      await app.stop();
    }
  });
});
