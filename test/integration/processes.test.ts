/**
 * bullpen as separate processes against real Redis and PostgreSQL: three processes share
 * one schedule, SIGTERM lets an active job finish or hands it back, SIGKILL leaves a
 * stalled job that another worker re-runs, and bad configuration stops start-up.
 */
import { QueueEvents } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { enqueueRun } from '../../src/enqueue.ts';
import { loadRun } from '../../src/runs.ts';
import { TEST_JOBS } from '../fixtures/test-jobs.ts';
import { spawnNode, startWorkerProcess, waitFor, type Child } from '../helpers/processes.ts';
import { TEST_REDIS_URL } from '../helpers/redis.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let rt: TestRuntime;
let events: QueueEvents;
const children: Child[] = [];

// Short locks so a killed worker's job is seen as stalled within seconds.
const FAST_STALL = { LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000' };

async function start(env: Record<string, string> = {}): Promise<Child> {
  const child = await startWorkerProcess({ ...rt.env, ...FAST_STALL, ...env });
  children.push(child);
  return child;
}

beforeAll(async () => {
  rt = await createTestRuntime('processes', TEST_JOBS as never);
  events = new QueueEvents('maintenance', { connection: { url: TEST_REDIS_URL }, prefix: rt.prefix });
  await events.waitUntilReady();
});

// Each test starts from no running worker, so the one it kills is the one holding the job.
afterEach(async () => {
  for (const child of children.splice(0)) {
    child.kill('SIGKILL');
    await child.exited;
  }
});

afterAll(async () => {
  await events?.close();
  await rt?.close();
});

const sleeper = () => rt.workerRuntime.definitions.get('probe-sleep')!;

describe('three processes, one schedule', () => {
  it('each tick of a Job Scheduler runs exactly once', async () => {
    const env = { ROLE: 'all', PROBE_CRON: '* * * * * *' };
    const procs = await Promise.all([start(env), start(env), start(env)]);
    await waitFor(
      async () => ((await rt.db.sql`select count(*)::int as n from ops.job_runs where job = 'probe-tick'`)[0]?.n ?? 0) >= 4,
      30_000,
      () => 'four ticks recorded',
    );
    for (const proc of procs) proc.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));

    const runs = await rt.db.sql`select partition, run_count, status, worker from ops.job_runs where job = 'probe-tick' order by partition`;
    expect(runs.length).toBeGreaterThanOrEqual(4);
    for (const run of runs) expect(run).toMatchObject({ run_count: 1, status: 'succeeded' });
    const events = await rt.db.sql`select partition, count(*)::int as n from ops.job_run_events where job = 'probe-tick' group by partition having count(*) > 1`;
    expect(events).toEqual([]);
    // Exactly one scheduler. Should concurrent upserts ever make BullMQ emit a second job for
    // a tick (the upstream bugs the reconciler exists for), the partition claim turns it away.
    const queue = rt.queues.get('maintenance')!;
    expect(await queue.getJobSchedulersCount()).toBe(1);
    const completed = (await queue.getCompleted(0, -1)).filter((j) => j.name === 'probe-tick');
    const ran = completed.filter((j) => !(j.returnvalue as { skipped?: string } | null)?.skipped);
    // No tick ran twice. (A run recorded just before the SIGTERM can still be finishing in Redis
    // when the processes are gone, so BullMQ may list fewer completed jobs than ops.job_runs has.)
    expect(ran.length).toBeLessThanOrEqual(runs.length);
    expect(new Set(ran.map((j) => j.id)).size).toBe(ran.length);
    for (const job of completed.filter((j) => !ran.includes(j))) {
      expect((job.returnvalue as { skipped: string }).skipped).toMatch(/^(already done|running elsewhere)$/);
    }
    await queue.removeJobScheduler('probe-tick');
  });
});

describe('shutdown and crashes', () => {
  it('SIGTERM mid-job: the worker lets the job finish before it exits', async () => {
    const worker = await start();
    const { job, partition } = await enqueueRun(rt.queues, sleeper(), { key: 'term-finish', ms: 1500 });
    await waitFor(async () => (await loadRun(rt.db.sql, 'probe-sleep', partition))?.status === 'running', 15_000, () => 'job running');
    worker.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
    expect(await job.waitUntilFinished(events, 10_000)).toMatchObject({ slept_ms: 1500 });
    // The worker wrote its buffered run records before it exited.
    expect(await loadRun(rt.db.sql, 'probe-sleep', partition)).toMatchObject({ status: 'succeeded', run_count: 1 });
  });

  it('SIGTERM with a job longer than the shutdown timeout: the job is handed back and another worker completes it', async () => {
    const first = await start({ SHUTDOWN_TIMEOUT_MS: '300' });
    const { job, partition } = await enqueueRun(rt.queues, sleeper(), { key: 'term-retry', ms: 4000 });
    await waitFor(async () => (await loadRun(rt.db.sql, 'probe-sleep', partition))?.status === 'running', 15_000, () => 'job running');
    first.kill('SIGTERM');
    await first.exited;
    await start();
    expect(await job.waitUntilFinished(events, 30_000)).toMatchObject({ slept_ms: 4000 });
    await waitFor(async () => (await loadRun(rt.db.sql, 'probe-sleep', partition))?.status === 'succeeded', 10_000, () => 'run recorded');
    const run = await loadRun(rt.db.sql, 'probe-sleep', partition);
    expect(run).toMatchObject({ status: 'succeeded' });
    expect(run!.run_count).toBeGreaterThanOrEqual(2);
  });

  it('SIGKILL mid-job: the stalled job is re-run by another worker', async () => {
    const victim = await start();
    const { job, partition } = await enqueueRun(rt.queues, sleeper(), { key: 'killed', ms: 3000 });
    await waitFor(async () => (await loadRun(rt.db.sql, 'probe-sleep', partition))?.status === 'running', 15_000, () => 'job running');
    const victimWorker = (await loadRun(rt.db.sql, 'probe-sleep', partition))!;
    victim.kill('SIGKILL');
    await victim.exited;
    await start();
    const summary = (await job.waitUntilFinished(events, 30_000)) as { pid: number };
    expect(summary.pid).not.toBe(victim.process.pid);
    await waitFor(async () => (await loadRun(rt.db.sql, 'probe-sleep', partition))?.status === 'succeeded', 10_000, () => 'run recorded');
    const run = await loadRun(rt.db.sql, 'probe-sleep', partition);
    expect(run).toMatchObject({ status: 'succeeded', run_count: 2 });
    expect(victimWorker.status).toBe('running');
  });

  it('a job whose worker dies more often than JOB_MAX_STALLS fails, and ops.job_runs says why at once', async () => {
    const env = { JOB_MAX_STALLS: '1' };
    const { job, partition } = await enqueueRun(rt.queues, sleeper(), { key: 'killer', ms: 20_000 });
    for (let run = 1; run <= 2; run++) {
      const victim = await start(env);
      await waitFor(async () => (await loadRun(rt.db.sql, 'probe-sleep', partition))?.run_count === run, 15_000, () => `run ${run} started`);
      victim.kill('SIGKILL');
      await victim.exited;
    }
    const survivor = await start(env);
    await expect(job.waitUntilFinished(events, 30_000)).rejects.toThrow(/stalled more than allowable limit/);
    await waitFor(async () => (await loadRun(rt.db.sql, 'probe-sleep', partition))?.status === 'failed', 10_000, () => 'failure recorded');
    const run = await loadRun(rt.db.sql, 'probe-sleep', partition);
    expect(run).toMatchObject({ status: 'failed', run_count: 2 });
    expect(run!.error).toMatch(/its worker died while running it 2 times \(JOB_MAX_STALLS is 1\)/);

    // Retried from Bull Board (job.retry), it has its whole allowance again: one more crash is re-run, not failed.
    await job.retry('failed');
    await waitFor(async () => (await loadRun(rt.db.sql, 'probe-sleep', partition))?.run_count === 3, 15_000, () => 'retry started');
    survivor.kill('SIGKILL');
    await survivor.exited;
    await start(env);
    await waitFor(async () => (await loadRun(rt.db.sql, 'probe-sleep', partition))?.run_count === 4, 15_000, () => 're-run after the crash');
    expect(await loadRun(rt.db.sql, 'probe-sleep', partition)).toMatchObject({ status: 'running', run_count: 4 });
    expect(await job.getState()).toBe('active');
  });
});

describe('bad configuration', () => {
  it.each([
    [{ PORT: 'abc' }, /PORT: must be a port number 0–65535 \(got "abc"\)/],
    [{ HOST: '0.0.0.0' }, /BOARD_USER \/ BOARD_PASSWORD: required when HOST is not loopback/],
    [{ SCHEDULE_NIGHTLY_REPORT: 'at midnight' }, /SCHEDULE_NIGHTLY_REPORT: must be a cron pattern/],
    [{ SCHEDULE_NIGHTLY_REPROT: '0 1 * * *' }, /SCHEDULE_NIGHTLY_REPROT: no job named "nightly-reprot"/],
  ])('bullpen start with %o exits non-zero naming the variable', async (env, message) => {
    const child = spawnNode('bin/bullpen.js', ['start'], { ...rt.env, ...env });
    const { code } = await child.exited;
    expect(code).toBe(1);
    expect(child.output()).toMatch(message);
    expect(child.output()).not.toMatch(/at .*\.ts:\d+/);
  });
});
