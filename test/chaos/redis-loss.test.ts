/**
 * Redis loses everything while the workers are down: a non-persistent redis-server owned by
 * the test is restarted between two bullpen processes. The second process registers the
 * schedules again, catches up each missed partition once, and runs nothing that ops.job_runs
 * shows as done.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedis } from '../../src/redis.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startWorkerProcess, waitFor, type Child } from '../helpers/processes.ts';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** A redis-server that keeps nothing on disk: stopping it loses everything. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const redis = createRedis(`redis://127.0.0.1:${port}`);
  redis.on('error', () => {}); // refused until the server is up
  try {
    await waitFor(async () => (await redis.ping().catch(() => '')) === 'PONG', 10_000, () => `redis-server on ${port}`);
  } finally {
    redis.disconnect();
  }
  return child;
}

async function stop(child: ChildProcess | Child | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child) return;
  const proc = 'process' in child ? child.process : child;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill(signal);
  await exited;
}

const TODAY = new Date();
const REPORTS_DIR = `/tmp/bullpen-chaos-redis-${process.pid}`;
function daysAgo(n: number): string {
  return new Date(Date.UTC(TODAY.getUTCFullYear(), TODAY.getUTCMonth(), TODAY.getUTCDate() - n)).toISOString().slice(0, 10);
}

describe('Redis loses everything', () => {
  let db: TestDatabase | undefined;
  let redisServer: ChildProcess | undefined;
  let bullpen: Child | undefined;
  afterAll(async () => {
    await stop(bullpen, 'SIGKILL');
    await stop(redisServer, 'SIGKILL');
    await db?.drop();
    fs.rmSync(REPORTS_DIR, { recursive: true, force: true });
  });

  it('schedules come back, missed partitions run once each, nothing done runs again', async () => {
    db = await createTestDatabase();
    const port = await freePort();
    redisServer = await startRedis(port);
    const env = {
      DATABASE_URL: db.url,
      REDIS_URL: `redis://127.0.0.1:${port}`,
      BULLPEN_PREFIX: 'chaos-redis',
      JOBS: 'catalogue',
      ROLE: 'all',
      REPORTS_DIR,
      SCHEDULER_INTERVAL_MS: '1000',
      // Only the nightly report and partition maintenance are scheduled: the rest would fetch market data.
      SCHEDULE_TRADE_ETL: 'off',
      SCHEDULE_BUILD_ROLLUPS: 'off',
      SCHEDULE_REFRESH_RS: 'off',
      SCHEDULE_ENRICHMENT_DAILY: 'off',
    };
    const sql = db.sql;
    // The nights from 7 to 4 days ago were reported; 3, 2 and 1 days ago were missed.
    await sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, started_at, finished_at, worker)
      select 'nightly-report', d::date::text, 'reports', 'nightly-report@' || d::date, 'succeeded', 1, 1, now(), now(), 'earlier'
      from generate_series(${daysAgo(7)}::date, ${daysAgo(4)}::date, interval '1 day') d`;

    const reportRuns = async () =>
      sql<{ partition: string; run_count: number; status: string }[]>`
        select partition, run_count, status from ops.job_runs where job = 'nightly-report' order by partition`;
    bullpen = await startWorkerProcess(env);
    await waitFor(async () => (await reportRuns()).filter((r) => r.status === 'succeeded').length >= 7, 60_000, () => 'the three missed nights caught up');
    const caughtUp = await reportRuns();
    await stop(bullpen, 'SIGTERM');
    bullpen = undefined;

    // Redis restarts while nothing runs: every queue, job and schedule in it is gone.
    await stop(redisServer, 'SIGKILL');
    redisServer = await startRedis(port);
    const probe = new Queue('reports', { connection: createRedis(`redis://127.0.0.1:${port}`), prefix: 'chaos-redis' });
    expect(await probe.getJobSchedulersCount()).toBe(0);

    bullpen = await startWorkerProcess(env);
    await waitFor(async () => (await probe.getJobSchedulersCount()) === 1, 30_000, () => 'the nightly-report schedule registered again');
    // Several scheduler passes: catch-up looks again every second.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const after = await reportRuns();
    const maintenance = new Queue('maintenance', { connection: createRedis(`redis://127.0.0.1:${port}`), prefix: 'chaos-redis' });
    const maintenanceSchedulers = await maintenance.getJobSchedulersCount();
    await probe.close();
    await maintenance.close();

    const done = caughtUp.filter((r) => r.partition <= daysAgo(1));
    process.stdout.write(
      [
        '',
        `redis loss: ${done.length} nightly partitions done before the restart; after it: schedules registered ${1 + maintenanceSchedulers}, ` +
          `partitions run again ${after.filter((r) => r.run_count > 1 && r.partition <= daysAgo(1)).length}, ` +
          `new partitions ${after.length - caughtUp.length}`,
        '',
      ].join('\n'),
    );
    expect(caughtUp.filter((r) => r.partition >= daysAgo(3) && r.partition <= daysAgo(1)).map((r) => [r.partition, r.run_count])).toEqual([
      [daysAgo(3), 1],
      [daysAgo(2), 1],
      [daysAgo(1), 1],
    ]);
    expect(maintenanceSchedulers).toBe(1);
    // Nothing done before the loss ran again.
    for (const run of after.filter((r) => r.partition <= daysAgo(1))) expect(run).toMatchObject({ run_count: 1, status: 'succeeded' });
  });
});
