/**
 * The runtime in one process against real Redis and PostgreSQL: run recording, retries,
 * catch-up, the schedule reconciler, overlap policies and DST through BullMQ's scheduler.
 */
import { readFileSync } from 'node:fs';
import { QueueEvents, type Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { z } from 'zod';
import { listTicks } from '../../src/cron.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { basePayload, defineJob, type JobDefinition } from '../../src/job-definition.ts';
import { createDb } from '../../src/db.ts';
import { createRunRecorder, loadRun } from '../../src/runs.ts';
import { catchUp, checkDeadlines, reapStaleRuns, reconcileSchedules, recordDeadlineMetrics, registerSchedules, resolveSchedules } from '../../src/scheduler.ts';
import { createLogger } from '../../src/logger.ts';
import { startWorkers, stopWorkers } from '../../src/worker.ts';
import { probeSleep } from '../fixtures/test-jobs.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { cleanupPrefix, TEST_REDIS_URL } from '../helpers/redis.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const gates = new Map<string, () => void>();
function gate(key: string): Promise<void> {
  return new Promise((resolve) => gates.set(key, resolve));
}

const overlapJob = (name: string, overlap: 'skip' | 'buffer-one'): JobDefinition =>
  defineJob({
    name,
    queue: 'maintenance',
    description: 'test: waits for its gate',
    payload: basePayload.extend({ key: z.string() }),
    schedule: { cron: '0 0 1 1 *', tz: 'UTC', calendar: 'all', overlap },
    partition: (p) => p.key,
    catchup: { mode: 'none' },
    process: async (ctx) => {
      await gate(`${name}/${ctx.payload.key}`);
      return { key: ctx.payload.key };
    },
  }) as unknown as JobDefinition;

const nightly = defineJob({
  name: 'probe-nightly',
  queue: 'reports',
  description: 'test: nightly partitioned by UTC date',
  payload: basePayload.extend({ date: z.iso.date().optional() }),
  schedule: { cron: '50 23 * * *', tz: 'UTC', calendar: 'all', overlap: 'skip' },
  partition: (p) => p.date ?? p.scheduledFor!.slice(0, 10),
  catchup: { mode: 'all', windowHours: 72, max: 7 },
  process: async (ctx) => ({ date: ctx.partition }),
}) as unknown as JobDefinition;

const withDeadline = defineJob({
  name: 'probe-deadline',
  queue: 'reports',
  description: 'test: nightly with a deadline',
  payload: basePayload,
  schedule: { cron: '50 23 * * *', tz: 'UTC', calendar: 'all', overlap: 'skip', deadline: { by: '00:30', tz: 'UTC', dayOffset: 1 } },
  partition: (p) => p.scheduledFor!.slice(0, 10),
  catchup: { mode: 'none' },
  process: async () => ({}),
}) as unknown as JobDefinition;

const weekdays = defineJob({
  name: 'probe-weekdays',
  queue: 'rs',
  description: 'test: weekday evenings on the NYSE calendar',
  payload: basePayload,
  schedule: { cron: '0 18 * * 1-5', tz: 'America/New_York', calendar: 'nyse', overlap: 'skip' },
  partition: (p) => new Date(Date.parse(p.scheduledFor!) - 5 * 3600 * 1000).toISOString().slice(0, 10),
  catchup: { mode: 'all', windowHours: 7 * 24, max: 10 },
  process: async () => ({}),
}) as unknown as JobDefinition;

const DEFINITIONS = [probeSleep as unknown as JobDefinition, overlapJob('probe-skip', 'skip'), overlapJob('probe-buffer', 'buffer-one'), nightly, weekdays];

let rt: TestRuntime;
let events: QueueEvents[] = [];

async function finished(job: Job): Promise<unknown> {
  const qe = events.find((e) => e.name === job.queueName)!;
  try {
    return await job.waitUntilFinished(qe, 30_000);
  } finally {
    // Successes are recorded in groups after the job completes.
    await rt.recorder.drain();
  }
}

beforeAll(async () => {
  rt = await createTestRuntime('runtime', DEFINITIONS, { CONCURRENCY_MAINTENANCE: '4' });
  events = await Promise.all(
    ['maintenance', 'reports', 'rs'].map(async (name) => {
      const qe = new QueueEvents(name, { connection: { url: TEST_REDIS_URL }, prefix: rt.prefix });
      await qe.waitUntilReady();
      return qe;
    }),
  );
  rt.startWorkers();
});

afterAll(async () => {
  await Promise.all(events.map((e) => e.close()));
  await rt?.close();
});

const def = (name: string) => rt.workerRuntime.definitions.get(name)!;

/** A tick, due now, from a Job Scheduler of its own (its next tick an hour away), for the overlap policies. */
async function enqueueTick(name: string, key: string): Promise<Job> {
  const queue = rt.queues.get(def(name).queue)!;
  const job = await queue.upsertJobScheduler(`${name}-tick-${key}`, { every: 3_600_000 }, { name, data: { key } });
  onTestFinished(() => queue.removeJobScheduler(`${name}-tick-${key}`).then(() => undefined));
  return job!;
}

describe('run recording', () => {
  it('records a successful run in ops.job_runs with its summary', async () => {
    const { job, jobId, partition } = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'ok-1', ms: 10 });
    expect(jobId).toBe('probe-sleep@ok-1');
    const summary = await finished(job);
    expect(summary).toMatchObject({ slept_ms: 10, attempt: 1 });
    const run = await loadRun(rt.db.sql, 'probe-sleep', partition);
    expect(run).toMatchObject({ status: 'succeeded', job_id: jobId, attempts: 1, run_count: 1, error: null });
    expect(run?.summary).toMatchObject({ slept_ms: 10 });
    expect(run?.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it('finds a run by its (job, partition) key even before ops.job_runs has statistics', async () => {
    // A new deployment's table: never analyzed, so the planner cannot tell one run from all of a job's.
    const fresh = await createTestDatabase();
    try {
      const plan = await fresh.sql.begin(async (tx) => {
        await tx`set local plan_cache_mode = force_generic_plan`;
        await tx.unsafe('prepare finish_lookup(text, text, text) as select run_id from ops.job_runs where job = $1 and partition = $2 and job_id = $3');
        return tx.unsafe(`explain (format json) execute finish_lookup('a', 'b', 'c')`);
      });
      expect(JSON.stringify(plan)).toContain('"Index Name":"job_runs_job_partition_key"');
    } finally {
      await fresh.drop();
    }
  });

  it('never runs a succeeded partition again, even after Redis forgot the job; --force does', async () => {
    const first = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'once' });
    await finished(first.job);
    await first.job.remove();
    const again = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'once' });
    expect(await finished(again.job)).toMatchObject({ skipped: 'already done' });
    expect((await loadRun(rt.db.sql, 'probe-sleep', 'once'))?.run_count).toBe(1);

    const forced = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'once' }, { force: true });
    expect(forced.jobId).toMatch(/^probe-sleep@once@force-\d+$/);
    expect(await finished(forced.job)).toMatchObject({ attempt: 1 });
    expect((await loadRun(rt.db.sql, 'probe-sleep', 'once'))?.run_count).toBe(2);
  });

  it('a forced run of a partition another job is running waits for it, then runs', async () => {
    const live = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'held', ms: 1500 });
    await waitFor(async () => (await loadRun(rt.db.sql, 'probe-sleep', 'held'))?.status === 'running', 10_000, () => 'first run active');
    // The forced run stands for inputs that changed after the live run may have read them.
    const forced = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'held' }, { force: true });
    await waitFor(async () => (await forced.job.getState()) === 'delayed', 10_000, () => 'forced run waiting');
    await finished(live.job);
    expect(await finished(forced.job)).toMatchObject({ attempt: 1 });
    expect(await loadRun(rt.db.sql, 'probe-sleep', 'held')).toMatchObject({ status: 'succeeded', run_count: 2, job_id: forced.jobId });
  });

  it('counts a job that requeues itself between steps as one run, from its first step; a stalled re-run or a retry as another', async () => {
    const run = { job: 'probe-steps', partition: 'series', queue: 'maintenance', jobId: 'probe-steps@series', attempt: 1, scheduledFor: null, force: false };
    await rt.recorder.claim(run);
    await rt.db.sql`update ops.job_runs set started_at = now() - interval '1 minute' where job = 'probe-steps'`;
    const [first] = await rt.db.sql<{ started_at: Date }[]>`select started_at from ops.job_runs where job = 'probe-steps'`;
    for (let step = 0; step < 2; step++) {
      await rt.recorder.suspend(run.job, run.partition, run.jobId);
      expect(await rt.recorder.claim(run)).toEqual({ claimed: true });
    }
    expect(await loadRun(rt.db.sql, 'probe-steps', 'series')).toMatchObject({ status: 'running', run_count: 1, started_at: first!.started_at });
    expect((await rt.db.sql`select worker from ops.job_runs where job = 'probe-steps'`)[0]?.worker).toBe(`test:${process.pid}`);
    expect(await rt.recorder.claim(run)).toEqual({ claimed: true }); // its worker died: BullMQ re-runs it
    expect(await loadRun(rt.db.sql, 'probe-steps', 'series')).toMatchObject({ run_count: 2 });
    await rt.recorder.finish({ ...run, status: 'retrying', summary: null, error: 'lost' });
    expect(await rt.recorder.claim({ ...run, attempt: 2 })).toEqual({ claimed: true });
    const retried = await loadRun(rt.db.sql, 'probe-steps', 'series');
    expect(retried).toMatchObject({ status: 'running', run_count: 3, attempts: 2 });
    expect(retried!.started_at!.getTime()).toBeGreaterThan(first!.started_at.getTime());
  });

  it("runs a tick whose partition succeeded before the tick's instant (by hand, on data not yet complete); not one done after it", async () => {
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const run = (jobId: string, extra: { tick?: boolean; scheduledFor?: string } = {}) =>
      ({ job: 'probe-early', partition: 'today', queue: 'reports', jobId, attempt: 1, scheduledFor: hourAgo, force: false, ...extra });
    // Run by hand (asked for three hours ago, done two hours ago) ahead of the tick an hour ago.
    const byHand = new Date(Date.now() - 3 * 3_600_000).toISOString();
    expect(await rt.recorder.claim(run('probe-early@today', { scheduledFor: byHand }))).toEqual({ claimed: true });
    await rt.recorder.finish({ ...run('probe-early@today'), status: 'succeeded', summary: {}, error: null });
    await rt.recorder.drain();
    await rt.db.sql`update ops.job_runs set finished_at = now() - interval '2 hours' where job = 'probe-early'`;
    // Another hand-made run is not run again, however early the first was.
    expect(await rt.recorder.claim(run('probe-early@today@again'))).toMatchObject({ claimed: false, status: 'succeeded' });
    // While another run of the job is active, the tick waits for it instead of being told "done".
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, heartbeat_at)
      values ('probe-early', 'active', 'reports', 'j-active', 'running', 1, now())`;
    expect(await rt.recorder.claimScheduled(run('repeat:probe-early:1', { tick: true }), 'skip')).toMatchObject({ claimed: false, status: 'overlap-waiting' });
    await rt.db.sql`delete from ops.job_runs where job = 'probe-early' and partition = 'active'`;
    expect(await rt.recorder.claimScheduled(run('repeat:probe-early:1', { tick: true }), 'skip')).toEqual({ claimed: true });
    await rt.recorder.finish({ ...run('repeat:probe-early:1'), status: 'succeeded', summary: {}, error: null });
    await rt.recorder.drain();
    expect(await loadRun(rt.db.sql, 'probe-early', 'today')).toMatchObject({ status: 'succeeded', run_count: 2, job_id: 'repeat:probe-early:1' });
    // Done after its instant now: the same tick run again (a retry of the completed job) is not run.
    expect(await rt.recorder.claim(run('repeat:probe-early:1', { tick: true }))).toMatchObject({ claimed: false, status: 'succeeded' });
    // The row now names the tick's instant, not the hand-made run's.
    expect(await loadRun(rt.db.sql, 'probe-early', 'today')).toMatchObject({ scheduled_for: new Date(hourAgo) });
    // A success less than a minute before a tick is that tick on a clock running ahead: not run again.
    await rt.db.sql`update ops.job_runs set finished_at = now() - interval '30 seconds' where job = 'probe-early'`;
    expect(await rt.recorder.claim(run('repeat:probe-early:2', { tick: true, scheduledFor: new Date().toISOString() }))).toMatchObject({ claimed: false, status: 'succeeded' });
  });

  it('answers two claims of one partition in one batch with what each lost to', async () => {
    const run = (partition: string, jobId: string) => ({ job: 'probe-pair', partition, queue: 'maintenance', jobId, attempt: 1, scheduledFor: null, force: false });
    // A fresh partition: the first claim wins, the second loses to its running job.
    expect(await Promise.all([rt.recorder.claim(run('fresh', 'j-a')), rt.recorder.claim(run('fresh', 'j-b'))])).toEqual([
      { claimed: true },
      { claimed: false, status: 'running', jobId: 'j-a' },
    ]);
    // A partition already done: both lose to its success.
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, finished_at)
      values ('probe-pair', 'done', 'maintenance', 'j-done', 'succeeded', 1, now())`;
    expect(await Promise.all([rt.recorder.claim(run('done', 'j-c')), rt.recorder.claim(run('done', 'j-d'))])).toEqual([
      { claimed: false, status: 'succeeded', jobId: 'j-done' },
      { claimed: false, status: 'succeeded', jobId: 'j-done' },
    ]);
  });

  it('records a failure whose message holds a NUL character, and the runs written with it', async () => {
    // PostgreSQL text cannot hold U+0000; one such message used to fail every record of its group.
    const runs = ['nul-ok', 'nul-bad'].map((partition) => ({ job: 'probe-nul', partition, queue: 'maintenance', jobId: `probe-nul@${partition}`, attempt: 1, scheduledFor: null, force: false }));
    await Promise.all(runs.map((run) => rt.recorder.claim(run)));
    await Promise.all([
      rt.recorder.finish({ ...runs[0]!, status: 'succeeded', summary: { note: 'ok\u0000' }, error: null }),
      rt.recorder.finish({ ...runs[1]!, status: 'failed', summary: null, error: 'upstream said \u0000\u0001 502' }),
    ]);
    expect(await loadRun(rt.db.sql, 'probe-nul', 'nul-ok')).toMatchObject({ status: 'succeeded', summary: { note: 'ok\uFFFD' } });
    expect(await loadRun(rt.db.sql, 'probe-nul', 'nul-bad')).toMatchObject({ status: 'failed', error: 'upstream said \uFFFD\u0001 502' });
  });

  it('fails a bad payload at once, without retries, naming the field', async () => {
    const queue = rt.queues.get('maintenance')!;
    const job = await queue.add('probe-sleep', { key: 'bad', ms: 'soon' }, { jobId: 'probe-sleep@bad-payload-test' });
    await expect(finished(job)).rejects.toThrow(/bad payload for probe-sleep: ms: /);
    const stored = await queue.getJob(job.id!);
    expect(stored?.attemptsMade).toBe(1);
    const run = await loadRun(rt.db.sql, 'probe-sleep', `bad-payload.${job.id}`);
    expect(run).toMatchObject({ status: 'failed' });
    expect(run?.error).toContain('ms:');
  });

  it('does not retry a permanent error', async () => {
    const { job } = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'perm', fail: 'permanent' });
    await expect(finished(job)).rejects.toThrow('probe: permanent failure');
    expect((await rt.queues.get('maintenance')!.getJob(job.id!))?.attemptsMade).toBe(1);
    expect(await loadRun(rt.db.sql, 'probe-sleep', 'perm')).toMatchObject({ status: 'failed', attempts: 1 });
  });

  it('retries a retryable error with backoff and records each attempt', async () => {
    const { job } = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'flaky', fail: 'first-attempt' });
    expect(await finished(job)).toMatchObject({ attempt: 2 });
    expect(await loadRun(rt.db.sql, 'probe-sleep', 'flaky')).toMatchObject({ status: 'succeeded', attempts: 2 });
    const outcomes = await rt.db.sql`select outcome from ops.job_run_events where job = 'probe-sleep' and partition = 'flaky' order by event_id`;
    expect(outcomes.map((r) => r.outcome)).toEqual(['retrying']);

    const { job: hopeless } = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'hopeless', fail: 'retryable' });
    await expect(finished(hopeless)).rejects.toThrow('connection lost');
    expect(await loadRun(rt.db.sql, 'probe-sleep', 'hopeless')).toMatchObject({ status: 'failed', attempts: 3 });
  });
});

describe('stale runs', () => {
  it('settles rows a dead worker left running: from BullMQ when it knows the job, failed when Redis lost it', async () => {
    const { job } = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'reap-done' });
    await finished(job);
    // As if the worker died after BullMQ completed the job but before its record was written.
    await rt.db.sql`update ops.job_runs set status = 'running', summary = null, finished_at = null, heartbeat_at = now() - interval '10 minutes' where partition = 'reap-done'`;
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, heartbeat_at)
      values ('probe-sleep', 'reap-lost', 'maintenance', 'probe-sleep@reap-lost', 'running', now() - interval '10 minutes'),
             ('probe-sleep', 'reap-fresh', 'maintenance', 'probe-sleep@reap-fresh', 'running', now())`;
    const logger = createLogger({ level: 'silent', pretty: false });
    const reaped = await reapStaleRuns({ db: rt.db.sql, queues: rt.queues, logger, metrics: rt.metrics });
    expect(reaped.sort((a, b) => a.partition.localeCompare(b.partition))).toEqual([
      { job: 'probe-sleep', partition: 'reap-done', status: 'succeeded' },
      { job: 'probe-sleep', partition: 'reap-lost', status: 'failed' },
    ]);
    expect((await loadRun(rt.db.sql, 'probe-sleep', 'reap-done'))?.summary).toMatchObject({ slept_ms: 0 });
    expect((await loadRun(rt.db.sql, 'probe-sleep', 'reap-lost'))?.error).toContain('no longer in Redis');
    expect((await loadRun(rt.db.sql, 'probe-sleep', 'reap-fresh'))?.status).toBe('running');
  });
});

describe('lost retries', () => {
  it('settles a retrying row whose retry Redis lost as failed; keeps one whose retry still waits', async () => {
    const waiting = await enqueueRun(rt.queues, def('probe-sleep'), { key: 'retry-waiting' }, { delayMs: 3_600_000 });
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, updated_at)
      values ('probe-sleep', 'retry-lost', 'maintenance', 'probe-sleep@retry-lost', 'retrying', 1, now() - interval '10 minutes'),
             ('probe-sleep', 'retry-waiting', 'maintenance', ${waiting.jobId}, 'retrying', 1, now() - interval '10 minutes'),
             ('probe-sleep', 'retry-fresh', 'maintenance', 'probe-sleep@retry-fresh', 'retrying', 1, now())`;
    const logger = createLogger({ level: 'silent', pretty: false });
    const reaped = await reapStaleRuns({ db: rt.db.sql, queues: rt.queues, logger, metrics: rt.metrics });
    expect(reaped.filter((r) => r.partition.startsWith('retry-'))).toEqual([{ job: 'probe-sleep', partition: 'retry-lost', status: 'failed' }]);
    expect(await loadRun(rt.db.sql, 'probe-sleep', 'retry-lost')).toMatchObject({ status: 'failed', error: expect.stringContaining('retry is no longer in Redis') });
    expect(await loadRun(rt.db.sql, 'probe-sleep', 'retry-waiting')).toMatchObject({ status: 'retrying' });
    expect(await loadRun(rt.db.sql, 'probe-sleep', 'retry-fresh')).toMatchObject({ status: 'retrying' });
    await waiting.job.remove();
    await rt.db.sql`delete from ops.job_runs where job = 'probe-sleep' and partition in ('retry-waiting', 'retry-fresh')`;
  });
});

describe('lost buffered ticks', () => {
  it('drops the row of a buffered tick whose job BullMQ lost, so catch-up can run it; keeps one still waiting', async () => {
    const waiting = await enqueueRun(rt.queues, def('probe-buffer'), { key: 'still-waiting' }, { delayMs: 3_600_000 });
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, updated_at)
      values ('probe-buffer', 'lost-tick', 'maintenance', 'repeat:probe-buffer:1', 'buffered', 1, now() - interval '10 minutes'),
             ('probe-buffer', 'still-waiting', 'maintenance', ${waiting.jobId}, 'buffered', 1, now() - interval '10 minutes'),
             ('probe-buffer', 'just-buffered', 'maintenance', 'repeat:probe-buffer:2', 'buffered', 1, now())`;
    const logger = createLogger({ level: 'silent', pretty: false });
    const reaped = await reapStaleRuns({ db: rt.db.sql, queues: rt.queues, logger, metrics: rt.metrics });
    expect(reaped.filter((r) => r.job === 'probe-buffer')).toEqual([{ job: 'probe-buffer', partition: 'lost-tick', status: 'dropped' }]);
    expect(await loadRun(rt.db.sql, 'probe-buffer', 'lost-tick')).toBeUndefined();
    expect(await loadRun(rt.db.sql, 'probe-buffer', 'still-waiting')).toMatchObject({ status: 'buffered' });
    expect(await loadRun(rt.db.sql, 'probe-buffer', 'just-buffered')).toMatchObject({ status: 'buffered' });
    await waiting.job.remove();
    await rt.db.sql`delete from ops.job_runs where job = 'probe-buffer' and partition in ('still-waiting', 'just-buffered')`;
  });
});

describe('overlap policies', () => {
  it('skip: a tick while the previous run is active is dropped and counted', async () => {
    const a = await enqueueRun(rt.queues, def('probe-skip'), { key: 'a' });
    await waitFor(() => gates.has('probe-skip/a'), 10_000, () => 'run a active');
    const b = await enqueueTick('probe-skip', 'b');
    expect(b.repeatJobKey).toBe('probe-skip-tick-b');
    expect(await finished(b)).toMatchObject({ skipped: 'overlap', activePartition: 'a' });
    // No row: the partition did not run, and catch-up or a re-run can still run it.
    expect(await loadRun(rt.db.sql, 'probe-skip', 'b')).toBeUndefined();
    const skipped = await rt.metrics.ticksSkipped.get();
    expect(skipped.values.find((v) => v.labels.schedule === 'probe-skip' && v.labels.reason === 'overlap')?.value).toBe(1);
    gates.get('probe-skip/a')!();
    expect(await finished(a.job)).toEqual({ key: 'a' });
  });

  it('skip does not drop a caught-up tick: it waits for the active run, then runs', async () => {
    const a = await enqueueRun(rt.queues, def('probe-skip'), { key: 'ca' });
    await waitFor(() => gates.has('probe-skip/ca'), 10_000, () => 'run ca active');
    const b = await enqueueRun(rt.queues, def('probe-skip'), { key: 'cb', catchup: true });
    await waitFor(async () => (await b.job.getState()) === 'delayed', 10_000, () => 'caught-up tick waiting');
    gates.get('probe-skip/ca')!();
    await finished(a.job);
    await waitFor(() => gates.has('probe-skip/cb'), 20_000, () => 'caught-up run cb started');
    gates.get('probe-skip/cb')!();
    expect(await finished(b.job)).toEqual({ key: 'cb' });
    expect(await loadRun(rt.db.sql, 'probe-skip', 'cb')).toMatchObject({ status: 'succeeded' });
  });

  it('skip does not drop a run enqueued by hand (or by another job): it waits for the active run, then runs', async () => {
    const a = await enqueueRun(rt.queues, def('probe-skip'), { key: 'ha' });
    await waitFor(() => gates.has('probe-skip/ha'), 10_000, () => 'run ha active');
    const b = await enqueueRun(rt.queues, def('probe-skip'), { key: 'hb' });
    await waitFor(async () => (await b.job.getState()) === 'delayed', 10_000, () => 'run hb waiting');
    expect(await loadRun(rt.db.sql, 'probe-skip', 'hb')).toBeUndefined();
    gates.get('probe-skip/ha')!();
    await finished(a.job);
    await waitFor(() => gates.has('probe-skip/hb'), 20_000, () => 'run hb started');
    gates.get('probe-skip/hb')!();
    expect(await finished(b.job)).toEqual({ key: 'hb' });
    expect(await loadRun(rt.db.sql, 'probe-skip', 'hb')).toMatchObject({ status: 'succeeded' });
  });

  it('sql/013 removes the rows old versions left for ticks dropped by an overlap, and no other skipped row', async () => {
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, finished_at, summary)
      values ('probe-old-skips', 'dropped', 'maintenance', 'j1', 'skipped', 1, now(), ${rt.db.sql.json({ skipped: 'overlap', policy: 'skip', activePartition: 'x' })}),
             ('probe-old-skips', 'holiday', 'maintenance', 'j2', 'skipped', 1, now(), ${rt.db.sql.json({ skipped: 'not an NYSE session', reason: 'Thanksgiving' })})`;
    await rt.db.sql.unsafe(readFileSync(new URL('../../sql/013_overlap_skip_rows.sql', import.meta.url), 'utf8'));
    const rows = await rt.db.sql`select partition from ops.job_runs where job = 'probe-old-skips'`;
    expect(rows.map((r) => r.partition)).toEqual(['holiday']);
  });

  it('drops or buffers only a tick\'s first run: a retried, stalled or re-run partition waits, a done one is not run', async () => {
    const job = 'probe-overlap-direct';
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, heartbeat_at, finished_at)
      values (${job}, 'active', 'maintenance', 'j-active', 'running', 1, now(), null),
             (${job}, 'retried', 'maintenance', 'j-retried', 'retrying', 1, null, now()),
             (${job}, 'stalled', 'maintenance', 'j-stalled', 'running', 1, now() - interval '10 minutes', null),
             (${job}, 'failed', 'maintenance', 'j-failed', 'failed', 3, null, now()),
             (${job}, 'done', 'maintenance', 'j-done', 'succeeded', 1, null, now())`;
    const request = (partition: string, jobId: string, attempt = 2) =>
      ({ job, partition, queue: 'maintenance', jobId, attempt, scheduledFor: null, force: false });
    for (const policy of ['skip', 'buffer-one'] as const) {
      expect(await rt.recorder.claimScheduled(request('retried', 'j-retried'), policy)).toEqual({ claimed: false, status: 'overlap-waiting', activePartition: 'active' });
      expect(await rt.recorder.claimScheduled(request('stalled', 'j-stalled', 1), policy)).toEqual({ claimed: false, status: 'overlap-waiting', activePartition: 'active' });
      expect(await rt.recorder.claimScheduled(request('failed', 'j-failed', 1), policy)).toEqual({ claimed: false, status: 'overlap-waiting', activePartition: 'active' });
      expect(await rt.recorder.claimScheduled(request('done', 'j-done-again', 1), policy)).toEqual({ claimed: false, status: 'succeeded', jobId: 'j-done' });
    }
    const rows = await rt.db.sql<{ partition: string; status: string; attempts: number }[]>`
      select partition, status, attempts from ops.job_runs where job = ${job} order by partition`;
    expect(rows).toEqual([
      { partition: 'active', status: 'running', attempts: 1 },
      { partition: 'done', status: 'succeeded', attempts: 1 },
      { partition: 'failed', status: 'failed', attempts: 3 },
      { partition: 'retried', status: 'retrying', attempts: 1 },
      { partition: 'stalled', status: 'running', attempts: 1 },
    ]);
    // A fresh tick is still dropped.
    expect(await rt.recorder.claimScheduled(request('fresh', 'j-fresh', 1), 'skip')).toEqual({ claimed: false, status: 'overlap-skipped', activePartition: 'active' });
  });

  it('buffer-one: one tick waits for the active run, a second is dropped', async () => {
    const a = await enqueueRun(rt.queues, def('probe-buffer'), { key: 'a' });
    await waitFor(() => gates.has('probe-buffer/a'), 10_000, () => 'run a active');
    const b = await enqueueTick('probe-buffer', 'b');
    await waitFor(async () => (await loadRun(rt.db.sql, 'probe-buffer', 'b'))?.status === 'buffered', 10_000, () => 'b buffered');
    const c = await enqueueTick('probe-buffer', 'c');
    expect(await finished(c)).toMatchObject({ skipped: 'overlap' });
    gates.get('probe-buffer/a')!();
    await finished(a.job);
    await waitFor(() => gates.has('probe-buffer/b'), 20_000, () => 'buffered run b started');
    gates.get('probe-buffer/b')!();
    expect(await finished(b)).toEqual({ key: 'b' });
    expect(await loadRun(rt.db.sql, 'probe-buffer', 'b')).toMatchObject({ status: 'succeeded' });
  });
});

describe('catch-up', () => {
  const logger = createLogger({ level: 'silent', pretty: false });
  const runtime = () => ({ db: rt.db.sql, queues: rt.queues, logger, metrics: rt.metrics });

  it('enqueues each missed tick once, oldest first, and nothing that ops.job_runs shows as done — even after Redis lost everything', async () => {
    const schedules = resolveSchedules([nightly], { scheduleOverrides: {} });
    const now = new Date('2026-11-21T12:00:00Z');
    const first = await catchUp(runtime(), schedules, now);
    expect(first.map((e) => e.jobId)).toEqual(['probe-nightly@2026-11-18', 'probe-nightly@2026-11-19', 'probe-nightly@2026-11-20']);
    expect(await catchUp(runtime(), schedules, now)).toEqual([]);

    const queue = rt.queues.get('reports')!;
    for (const { jobId } of first) await finished((await queue.getJob(jobId))!);
    const done = await rt.db.sql`select partition, status from ops.job_runs where job = 'probe-nightly' order by partition`;
    expect(done.map((r) => `${r.partition}:${r.status}`)).toEqual(['2026-11-18:succeeded', '2026-11-19:succeeded', '2026-11-20:succeeded']);

    // Redis loses everything while nothing runs: the schedule comes back, nothing done runs again.
    await cleanupPrefix(rt.redis, rt.prefix);
    expect(await catchUp(runtime(), schedules, now)).toEqual([]);
    await registerSchedules(rt.queues, schedules, logger);
    expect(await queue.getJobScheduler('probe-nightly')).toBeTruthy();
    expect((await rt.db.sql`select sum(run_count)::int as runs from ops.job_runs where job = 'probe-nightly'`)[0]?.runs).toBe(3);
  });

  it('runs a tick again whose partition was run by hand ahead of it, under an id of its own, once', async () => {
    const schedules = resolveSchedules([nightly], { scheduleOverrides: {} });
    const now = new Date('2026-10-10T12:00:00Z');
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, started_at, finished_at)
      values ('probe-nightly', '2026-10-07', 'reports', 'probe-nightly@2026-10-07', 'succeeded', 1, 1, '2026-10-08T00:00:00Z', '2026-10-08T00:10:00Z'),
             ('probe-nightly', '2026-10-08', 'reports', 'probe-nightly@2026-10-08', 'succeeded', 1, 1, '2026-10-08T12:00:00Z', '2026-10-08T12:01:00Z')`;
    const tick = Date.parse('2026-10-08T23:50:00Z');
    const first = await catchUp(runtime(), schedules, now);
    expect(first.map((e) => e.jobId)).toEqual([`probe-nightly@2026-10-08@tick-${tick}`, 'probe-nightly@2026-10-09']);
    expect(await catchUp(runtime(), schedules, now)).toEqual([]);
    const queue = rt.queues.get('reports')!;
    for (const { jobId } of first) await finished((await queue.getJob(jobId))!);
    expect(await loadRun(rt.db.sql, 'probe-nightly', '2026-10-08')).toMatchObject({ status: 'succeeded', run_count: 2, job_id: `probe-nightly@2026-10-08@tick-${tick}` });
    expect(await catchUp(runtime(), schedules, now)).toEqual([]);
  });

  it('follows the NYSE calendar: weekends and holidays are not missed', async () => {
    const schedules = resolveSchedules([weekdays], { scheduleOverrides: {} });
    // Monday after Thanksgiving week: the sessions were Mon–Wed and Friday.
    const enqueued = await catchUp(runtime(), schedules, new Date('2026-11-30T12:00:00Z'));
    expect(enqueued.map((e) => e.partition)).toEqual(['2026-11-23', '2026-11-24', '2026-11-25', '2026-11-27']);
  });
});

describe('deadlines', () => {
  it('reports a partition not done by its deadline once, and clears when it is done', async () => {
    const logger = createLogger({ level: 'silent', pretty: false });
    const runtime = { db: rt.db.sql, queues: rt.queues, logger, metrics: rt.metrics };
    const schedules = resolveSchedules([withDeadline], { scheduleOverrides: {} });
    // Installed on the 1st (this database's migrations ran today).
    await rt.db.sql`update ops.schema_migrations set applied_at = '2026-11-01T00:00:00Z'`;
    // Every earlier night of the week looked back on was done; at 00:20 UTC the 20th is not due yet.
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, status)
      select 'probe-deadline', d::date::text, 'reports', 'succeeded' from generate_series('2026-11-10'::date, '2026-11-19', '1 day') d`;
    expect(await checkDeadlines(runtime, schedules, new Date('2026-11-21T00:20:00Z'))).toEqual([]);
    const misses = await checkDeadlines(runtime, schedules, new Date('2026-11-21T00:31:00Z'));
    expect(misses.map((m) => [m.partition, m.dueAt.toISOString()])).toEqual([['2026-11-20', '2026-11-21T00:30:00.000Z']]);
    await checkDeadlines(runtime, schedules, new Date('2026-11-21T00:40:00Z'));
    const value = async (metric: 'deadlineMisses' | 'deadlineMissed') =>
      (await rt.metrics[metric].get()).values.find((v) => v.labels.schedule === 'probe-deadline')?.value;
    expect(await value('deadlineMisses')).toBe(1);
    // The gauge is set where /metrics is served, from ops.job_runs, as a scrape sets it.
    await recordDeadlineMetrics(rt.metrics, rt.db.sql, schedules, new Date('2026-11-21T00:40:00Z'));
    expect(await value('deadlineMissed')).toBe(1);
    await rt.db.sql`insert into ops.job_runs (job, partition, queue, status) values ('probe-deadline', '2026-11-20', 'reports', 'succeeded')`;
    expect(await checkDeadlines(runtime, schedules, new Date('2026-11-21T00:45:00Z'))).toEqual([]);
    await recordDeadlineMetrics(rt.metrics, rt.db.sql, schedules, new Date('2026-11-21T00:45:00Z'));
    expect(await value('deadlineMissed')).toBe(0);
  });

  it('does not page for a tick from before the deployment began', async () => {
    const logger = createLogger({ level: 'silent', pretty: false });
    const runtime = { db: rt.db.sql, queues: rt.queues, logger, metrics: rt.metrics };
    const schedules = resolveSchedules([withDeadline], { scheduleOverrides: {} });
    // First started at 00:35, after the 3rd's tick (23:50 on the 3rd) and its deadline (00:30).
    await rt.db.sql`update ops.schema_migrations set applied_at = '2026-12-04T00:35:00Z'`;
    expect(await checkDeadlines(runtime, schedules, new Date('2026-12-04T00:40:00Z'))).toEqual([]);
    // The next night's tick came after it: that one is owed.
    const misses = await checkDeadlines(runtime, schedules, new Date('2026-12-05T00:40:00Z'));
    expect(misses.map((m) => m.partition)).toEqual(['2026-12-04']);
  });
});

describe('schedule reconciler', () => {
  const logger = createLogger({ level: 'silent', pretty: false });
  const runtime = () => ({ db: rt.db.sql, queues: rt.queues, logger, metrics: rt.metrics });
  const pendingNext = async (id: string) =>
    (await rt.queues.get('reports')!.getJobs(['delayed', 'waiting', 'prioritized'], 0, -1)).filter((j) => j?.repeatJobKey === id);

  it('restores a deleted next job, removes a duplicate, re-creates a missing scheduler', async () => {
    const schedules = resolveSchedules([nightly], { scheduleOverrides: {} });
    await registerSchedules(rt.queues, schedules, logger);
    expect(await reconcileSchedules(runtime(), schedules)).toEqual([]);
    const [next] = await pendingNext('probe-nightly');
    expect(next).toBeTruthy();

    // BullMQ refuses to remove a scheduler's current job: delete it from Redis, as the upstream bugs leave it.
    await rt.redis.zrem(`${rt.prefix}:reports:delayed`, next!.id!);
    await rt.redis.del(`${rt.prefix}:reports:${next!.id!}`);
    expect(await pendingNext('probe-nightly')).toHaveLength(0);
    expect((await reconcileSchedules(runtime(), schedules)).map((r) => r.kind)).toEqual(['no-next-job']);
    expect(await pendingNext('probe-nightly')).toHaveLength(1);

    const scheduler = await rt.queues.get('reports')!.getJobScheduler('probe-nightly');
    await rt.queues.get('reports')!.add('probe-nightly', {}, { jobId: `repeat:probe-nightly:${scheduler!.next! + 86_400_000}`, delay: 86_400_000 * 2, repeatJobKey: 'probe-nightly' });
    expect(await pendingNext('probe-nightly')).toHaveLength(2);
    expect((await reconcileSchedules(runtime(), schedules)).map((r) => r.kind)).toEqual(['duplicate-next-job']);
    const left = await pendingNext('probe-nightly');
    expect(left.map((j) => j.id)).toEqual([`repeat:probe-nightly:${scheduler!.next}`]);

    await rt.queues.get('reports')!.removeJobScheduler('probe-nightly');
    expect((await reconcileSchedules(runtime(), schedules)).map((r) => r.kind)).toEqual(['missing']);
    expect(await pendingNext('probe-nightly')).toHaveLength(1);
    const repairs = await rt.metrics.scheduleRepairs.get();
    expect(repairs.values.reduce((sum, v) => sum + v.value, 0)).toBe(3);
  });

  it('removes schedulers that are no longer configured', async () => {
    await registerSchedules(rt.queues, resolveSchedules([nightly, weekdays], { scheduleOverrides: {} }), logger);
    const { removed } = await registerSchedules(rt.queues, resolveSchedules([nightly, weekdays], { scheduleOverrides: { 'probe-weekdays': 'off' } }), logger);
    expect(removed).toEqual(['rs/probe-weekdays']);
    expect(await rt.queues.get('rs')!.getJobScheduler('probe-weekdays')).toBeUndefined();
  });
});

describe('a tick promoted before its time', () => {
  const logger = createLogger({ level: 'silent', pretty: false });

  it('is deferred to its instant under its catch-up id, not run on partial data', async () => {
    const schedules = resolveSchedules([nightly], { scheduleOverrides: {} });
    await registerSchedules(rt.queues, schedules, logger);
    const queue = rt.queues.get('reports')!;
    onTestFinished(() => queue.removeJobScheduler('probe-nightly').then(() => undefined));
    const [next] = (await queue.getJobs(['delayed'], 0, -1)).filter((j) => j?.repeatJobKey === 'probe-nightly');
    const tick = next!.opts.prevMillis!;
    const partition = new Date(tick).toISOString().slice(0, 10);

    // What Bull Board's "Promote" does.
    await next!.promote();
    expect(await finished(next!)).toMatchObject({ deferred: 'started before its tick', partition, jobId: `probe-nightly@${partition}` });
    expect(await loadRun(rt.db.sql, 'probe-nightly', partition)).toBeUndefined();
    const deferred = await queue.getJob(`probe-nightly@${partition}`);
    onTestFinished(() => deferred?.remove().then(() => undefined));
    expect(await deferred!.getState()).toBe('delayed');
    expect(deferred!.timestamp + deferred!.opts.delay!).toBeGreaterThanOrEqual(tick - 1_000);
    expect(deferred!.timestamp + deferred!.opts.delay!).toBeLessThanOrEqual(tick + 1_000);
    expect(deferred!.data).toMatchObject({ scheduledFor: new Date(tick).toISOString(), catchup: true });
    // The schedule keeps exactly one next job of its own.
    expect(await reconcileSchedules({ db: rt.db.sql, queues: rt.queues, logger, metrics: rt.metrics }, schedules)).toEqual([]);

    // The next tick's partition is run by hand ahead of it (its plain id taken), then the tick is promoted.
    const [after] = (await queue.getJobs(['delayed'], 0, -1)).filter((j) => j?.repeatJobKey === 'probe-nightly');
    const nextTick = after!.opts.prevMillis!;
    const nextPartition = new Date(nextTick).toISOString().slice(0, 10);
    const byHand = await enqueueRun(rt.queues, nightly, { date: nextPartition });
    await finished(byHand.job);
    onTestFinished(() => byHand.job.remove().then(() => undefined));
    await after!.promote();
    const ownId = `probe-nightly@${nextPartition}@tick-${nextTick}`;
    expect(await finished(after!)).toMatchObject({ deferred: 'started before its tick', jobId: ownId });
    const owed = await queue.getJob(ownId);
    onTestFinished(() => owed?.remove().then(() => undefined));
    expect(await owed!.getState()).toBe('delayed');
  });
});

describe('BullMQ Job Schedulers across DST', () => {
  it.each([
    ['spring forward', '2027-03-13T12:00:00Z', '2027-03-14T07:30:00.000Z'],
    ['fall back', '2027-11-06T12:00:00Z', '2027-11-07T07:30:00.000Z'],
  ])('a 02:30 America/New_York schedule fires where cron.ts expects (%s)', async (_label, start, expected) => {
    const queue = rt.queues.get('maintenance')!;
    const id = `dst-${start.slice(0, 10)}`;
    await queue.upsertJobScheduler(id, { pattern: '30 2 * * *', tz: 'America/New_York', startDate: start }, { name: 'probe-sleep', data: { key: id } });
    const scheduler = await queue.getJobScheduler(id);
    const [ours] = listTicks('30 2 * * *', 'America/New_York', new Date(start), new Date(Date.parse(start) + 2 * 86_400_000));
    expect(new Date(scheduler!.next!).toISOString()).toBe(expected);
    expect(ours!.toISOString()).toBe(expected);
    await queue.removeJobScheduler(id);
  });
});

describe('PostgreSQL unreachable during an attempt', () => {
  it('a bad payload still fails at once, without retries, when it cannot be recorded', async () => {
    const own = await createTestRuntime('bad-payload-db-down', [probeSleep as never]);
    const unreachable = createDb('postgres://postgres@127.0.0.1:1/none', { max: 1 });
    try {
      const workers = startWorkers({ ...own.workerRuntime, db: unreachable }, { connection: own.redis });
      const queue = own.queues.get('maintenance')!;
      const job = await queue.add('probe-sleep', { key: 'bad', ms: 'soon' }, { jobId: 'probe-sleep@bad-db-down' });
      await waitFor(async () => (await queue.getJob(job.id!))?.finishedOn !== undefined, 10_000, () => 'the job finished');
      const stored = (await queue.getJob(job.id!))!;
      expect(await stored.getState()).toBe('failed');
      expect(stored.attemptsMade).toBe(1);
      expect(stored.failedReason).toMatch(/bad payload for probe-sleep: ms: /);
      await stopWorkers(workers, 5000, own.workerRuntime.logger);
    } finally {
      await unreachable.end({ timeout: 1 });
      await own.close();
    }
  });

  it('the next attempt records the failed attempts ops.job_run_events could not take', async () => {
    // Backoff long enough to stop the cut-off worker before the retry is due.
    const own = await createTestRuntime('lost-events', [probeSleep as never], { JOB_BACKOFF_MS: '3000' });
    const unreachable = createDb('postgres://postgres@127.0.0.1:1/none', { max: 1 });
    try {
      const cutOff = startWorkers({ ...own.workerRuntime, recorder: createRunRecorder(unreachable, { worker: 'cut-off' }) }, { connection: own.redis });
      const { job, partition } = await enqueueRun(own.queues, probeSleep as never, { key: 'lost', ms: 1 });
      const queue = own.queues.get('maintenance')!;
      await waitFor(async () => ((await queue.getJob(job.id!))?.attemptsMade ?? 0) >= 1, 10_000, () => 'attempt 1 failed');
      await stopWorkers(cutOff, 5000, own.workerRuntime.logger);
      own.startWorkers();
      await waitFor(async () => (await loadRun(own.db.sql, 'probe-sleep', partition))?.status === 'succeeded', 15_000, () => 'a later attempt succeeded');
      const attempts = (await queue.getJob(job.id!))!.attemptsMade;
      await waitFor(
        async () => (await own.db.sql`select count(*)::int as n from ops.job_run_events where partition = ${partition}`)[0]!.n === attempts - 1,
        5000,
        () => 'events of the failed attempts',
      );
      const events = await own.db.sql<{ attempt: number; outcome: string; error: string | null }[]>`
        select attempt, outcome, error from ops.job_run_events where job = 'probe-sleep' and partition = ${partition} order by attempt`;
      expect(events.map((e) => [e.attempt, e.outcome])).toEqual(Array.from({ length: attempts - 1 }, (_, i) => [i + 1, 'retrying']));
      expect(events.at(-1)!.error).toMatch(/ECONNREFUSED/);
    } finally {
      await unreachable.end({ timeout: 1 });
      await own.close();
    }
  });
});

describe('shutdown', () => {
  it('puts a job that stops at the abort back on its queue without using an attempt', async () => {
    const own = await createTestRuntime('shutdown', [probeSleep as never], { JOB_ATTEMPTS: '1' });
    try {
      const workers = own.startWorkers();
      const { job, partition } = await enqueueRun(own.queues, probeSleep as never, { key: 'interrupted', ms: 60_000 });
      const queue = own.queues.get('maintenance')!;
      await waitFor(async () => (await queue.getJob(job.id!))?.processedOn !== undefined, 10_000, () => 'the job active');
      await stopWorkers(workers, 300, own.workerRuntime.logger);
      const stored = (await queue.getJob(job.id!))!;
      expect(['delayed', 'waiting']).toContain(await stored.getState());
      expect(stored.attemptsMade).toBe(0);
      await own.recorder.drain();
      expect(await loadRun(own.db.sql, 'probe-sleep', partition)).toMatchObject({ status: 'running', error: null });
      await stored.remove();
    } finally {
      await own.close();
    }
  });
});
