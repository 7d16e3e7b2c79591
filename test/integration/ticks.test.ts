/**
 * Ticks at the edges of the scheduling runtime: a tick dropped by overlap `skip` and caught up
 * later, the reconciler beside a tick that is retrying or buffered, a deferred tick promoted
 * again, catch-up of a schedule ticking several times a partition or whose database clock runs
 * behind, deadlines and lag beside a run made ahead of its tick, and a deadline miss reported once
 * across scheduler restarts and processes and not while its queue is paused. Each states what
 * README.md promises.
 */
import type { Job, Queue } from 'bullmq';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { z } from 'zod';
import { tickPartition } from '../../src/cron.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { basePayload, defineJob, scheduledInstant, type JobDefinition } from '../../src/job-definition.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { loadRun } from '../../src/runs.ts';
import { catchUp, checkDeadlines, listScheduleStatus, reconcileSchedules, recordDeadlineMetrics, resolveSchedules, type Schedule } from '../../src/scheduler.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const gates = new Map<string, () => void>();
function gate(key: string): Promise<void> {
  return new Promise((resolve) => gates.set(key, resolve));
}

/** Every 5 s, overlap skip, catch-up latest: a tick while a run is active is dropped. */
const rvSkip = defineJob({
  name: 'rv-skip',
  queue: 'maintenance',
  description: 'test: a frequent schedule with overlap skip and catch-up latest',
  payload: basePayload.extend({ key: z.string().optional() }),
  schedule: { cron: '*/5 * * * * *', tz: 'UTC', calendar: 'all', overlap: 'skip' },
  partition: (p) => p.key ?? tickPartition(scheduledInstant(p)),
  catchup: { mode: 'latest', windowHours: 1 },
  process: async (ctx) => {
    if (ctx.payload.key === 'hold') await gate('rv-skip/hold');
    return { partition: ctx.partition };
  },
}) as unknown as JobDefinition;

/** Every 5 s, overlap skip: the first tick fails its first attempt (a retryable error). */
let firstRetryTick: string | null = null;
const rvRetry = defineJob({
  name: 'rv-retry',
  queue: 'rs',
  description: 'test: a tick whose first attempt fails and is retried after a backoff',
  payload: basePayload,
  schedule: { cron: '*/5 * * * * *', tz: 'UTC', calendar: 'all', overlap: 'skip' },
  partition: (p) => tickPartition(scheduledInstant(p)),
  catchup: { mode: 'none' },
  process: async (ctx) => {
    firstRetryTick ??= ctx.partition;
    if (ctx.partition === firstRetryTick && ctx.attempt === 1) throw Object.assign(new Error('test: connection lost'), { code: 'ECONNRESET' });
    return { partition: ctx.partition };
  },
}) as unknown as JobDefinition;

/** Every 5 s, overlap buffer-one. */
const rvBuffer = defineJob({
  name: 'rv-buffer',
  queue: 'reports',
  description: 'test: a frequent schedule with overlap buffer-one',
  payload: basePayload.extend({ key: z.string().optional() }),
  schedule: { cron: '*/5 * * * * *', tz: 'UTC', calendar: 'all', overlap: 'buffer-one' },
  partition: (p) => p.key ?? tickPartition(scheduledInstant(p)),
  catchup: { mode: 'none' },
  process: async (ctx) => {
    if (ctx.payload.key === 'hold') await gate('rv-buffer/hold');
    return { partition: ctx.partition };
  },
}) as unknown as JobDefinition;

/** Nightly, partitioned by UTC date, like nightly-report. */
const rvNightly = defineJob({
  name: 'rv-nightly',
  queue: 'etl',
  description: 'test: nightly partitioned by UTC date',
  payload: basePayload.extend({ date: z.iso.date().optional() }),
  schedule: { cron: '50 23 * * *', tz: 'UTC', calendar: 'all', overlap: 'skip' },
  partition: (p) => p.date ?? p.scheduledFor!.slice(0, 10),
  catchup: { mode: 'all', windowHours: 72, max: 7 },
  process: async (ctx) => ({ date: ctx.partition }),
}) as unknown as JobDefinition;

/** nightly-report's schedule and deadline (00:30 UTC the next day). */
const rvDeadline = defineJob({
  name: 'rv-deadline',
  queue: 'reports',
  description: 'test: nightly with a deadline',
  payload: basePayload.extend({ date: z.iso.date().optional() }),
  schedule: { cron: '50 23 * * *', tz: 'UTC', calendar: 'all', overlap: 'skip', deadline: { by: '00:30', tz: 'UTC', dayOffset: 1 } },
  partition: (p) => p.date ?? p.scheduledFor!.slice(0, 10),
  catchup: { mode: 'all', windowHours: 7 * 24, max: 7 },
  process: async () => ({}),
}) as unknown as JobDefinition;

/** A date-partitioned job ticking four times a day (README: SCHEDULE_NIGHTLY_REPORT='0 *\/6 * * *'). */
const rvSixHourly = defineJob({
  name: 'rv-six-hourly',
  queue: 'etl',
  description: 'test: several ticks per partition',
  payload: basePayload.extend({ date: z.iso.date().optional() }),
  schedule: { cron: '0 */6 * * *', tz: 'UTC', calendar: 'all', overlap: 'skip' },
  partition: (p) => p.date ?? p.scheduledFor!.slice(0, 10),
  catchup: { mode: 'all', windowHours: 48, max: 7 },
  process: async (ctx) => ({ date: ctx.partition }),
}) as unknown as JobDefinition;

/** Nightly at 23:50 UTC with a week of catch-up: one night per case of a failure beside its tick. */
const rvOwed = defineJob({
  name: 'rv-owed',
  queue: 'etl',
  description: 'test: nightly partitioned by UTC date, catch-up all over a week',
  payload: basePayload.extend({ date: z.iso.date().optional() }),
  schedule: { cron: '50 23 * * *', tz: 'UTC', calendar: 'all', overlap: 'skip' },
  partition: (p) => p.date ?? p.scheduledFor!.slice(0, 10),
  catchup: { mode: 'all', windowHours: 7 * 24, max: 7 },
  process: async (ctx) => ({ date: ctx.partition }),
}) as unknown as JobDefinition;

const DEFINITIONS = [rvSkip, rvRetry, rvBuffer, rvNightly, rvDeadline, rvSixHourly, rvOwed];

let rt: TestRuntime;
const logger = createLogger({ level: 'silent', pretty: false });
const runtime = () => ({ db: rt.db.sql, queues: rt.queues, logger, metrics: rt.metrics });
const scheduleOf = (definition: JobDefinition): Schedule => resolveSchedules([definition], { scheduleOverrides: {} })[0]!;
const queueOf = (definition: JobDefinition): Queue => rt.queues.get(definition.queue)!;

/** A scheduler process as deadlines see it: metrics of its own and a logger whose pages are kept. */
function schedulerProcess() {
  const lines: { alert?: string; partition?: string }[] = [];
  const metrics = createMetrics({ defaultMetrics: false });
  const processLogger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
  const value = async (metric: 'deadlineMisses' | 'deadlineMissed') => (await metrics[metric].get()).values.find((v) => v.labels.schedule === 'rv-deadline')?.value ?? 0;
  return {
    runtime: { db: rt.db.sql, queues: rt.queues, logger: processLogger, metrics },
    /** Partitions it logged a deadline miss for. */
    pages: () => lines.filter((l) => l.alert === 'deadline-missed').map((l) => l.partition),
    counted: () => value('deadlineMisses'),
    /** bullpen_deadline_missed as a scrape of this process's /metrics at `now` would show it. */
    gauge: async (schedule: Schedule, now: Date) => {
      await recordDeadlineMetrics(metrics, rt.db.sql, [schedule], now);
      return value('deadlineMissed');
    },
  };
}

/** rv-deadline's 23:50 runs of these dates succeeded in time. */
async function nightsDone(from: string, to: string): Promise<void> {
  await rt.db.sql`
    insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
    select 'rv-deadline', d::date::text, 'reports', 'rv-deadline@' || d::date::text, 'succeeded', 1, 1,
           d + interval '23 hours 50 minutes', d + interval '23 hours 50 minutes', d + interval '23 hours 51 minutes'
    from generate_series(${from}::date, ${to}::date, '1 day') d`;
}

async function startSchedule(definition: JobDefinition): Promise<void> {
  const schedule = scheduleOf(definition);
  const queue = queueOf(definition);
  await queue.upsertJobScheduler(schedule.id, { pattern: schedule.cron, tz: schedule.tz }, { name: definition.name, data: {} });
  onTestFinished(() => queue.removeJobScheduler(schedule.id).then(() => undefined));
}

/** Polls a job until it completes (or fails); answers its return value. */
async function finished(queue: Queue, id: string, timeoutMs = 20_000): Promise<unknown> {
  let job: Job | undefined;
  await waitFor(async () => {
    job = await queue.getJob(id);
    const state = job ? await job.getState() : 'missing';
    return state === 'completed' || state === 'failed';
  }, timeoutMs, () => `job ${id} finished`);
  await rt.recorder.drain();
  return (await queue.getJob(id))?.returnvalue;
}

beforeAll(async () => {
  // A 20 s backoff base: a tick's first retry waits 10-20 s in BullMQ's delayed set (production: 5 s base, doubling per attempt, up to an hour).
  rt = await createTestRuntime('ticks', DEFINITIONS, { CONCURRENCY_MAINTENANCE: '4', CONCURRENCY_REPORTS: '4', JOB_BACKOFF_MS: '20000' });
  rt.startWorkers();
});

afterAll(async () => {
  for (const release of gates.values()) release();
  await rt?.close();
});

describe('catch-up and overlap skip', () => {
  it('runs a tick that overlap skip dropped once the active run is over (README: "catch-up (where the schedule has it) runs it")', async () => {
    const queue = queueOf(rvSkip);
    const byHand = await enqueueRun(rt.queues, rvSkip, { key: 'hold' });
    await waitFor(() => gates.has('rv-skip/hold'), 10_000, () => 'hand run active');

    // The schedule ticks while the hand run is active: each tick is dropped (overlap skip).
    await startSchedule(rvSkip);
    let skipped: Job[] = [];
    await waitFor(async () => {
      skipped = (await queue.getJobs(['completed'], 0, -1)).filter((j) => j?.repeatJobKey === 'rv-skip' && (j.returnvalue as { skipped?: string } | null)?.skipped === 'overlap');
      return skipped.length > 0;
    }, 15_000, () => 'a tick dropped by overlap skip');
    await queue.removeJobScheduler('rv-skip');
    gates.get('rv-skip/hold')!();
    await finished(queue, byHand.jobId);

    const tick = Math.max(...skipped.map((j) => j.opts.prevMillis!));
    const partition = tickPartition(new Date(tick));
    expect(await loadRun(rt.db.sql, 'rv-skip', partition)).toBeUndefined();

    // A pass of the scheduler loop once that tick is past its grace minute: it is the newest missed tick.
    const enqueued = await catchUp(runtime(), [scheduleOf(rvSkip)], new Date(tick + 61_000));
    const held = await queue.getJob(`repeat:rv-skip:${tick}`);
    const why = `the dropped tick's own job is still in Redis (${held ? await held.getState() : 'gone'}, returned ${JSON.stringify(held?.returnvalue)})`;
    expect(enqueued.map((e) => e.partition), why).toEqual([partition]);
  });
});

describe('schedule reconciler', () => {
  it("leaves a tick's retry alone while it waits out its backoff (a retried tick must still run)", async () => {
    const queue = queueOf(rvRetry);
    await startSchedule(rvRetry);
    // The first tick fails its first attempt and waits 10-20 s in the delayed set for its retry.
    let retry: Job | undefined;
    await waitFor(async () => {
      retry = (await queue.getJobs(['delayed'], 0, -1)).find((j) => j?.repeatJobKey === 'rv-retry' && j.attemptsMade >= 1);
      return retry !== undefined;
    }, 20_000, () => 'a tick waiting for its retry');
    expect(await loadRun(rt.db.sql, 'rv-retry', firstRetryTick!)).toMatchObject({ status: 'retrying' });

    // The scheduler loop's reconciler passes meanwhile.
    const repairs = await reconcileSchedules(runtime(), [scheduleOf(rvRetry)]);
    // The retry must still be there: nothing else would ever run it (its row says 'retrying', so
    // catch-up does not count it as missed, and the reaper only settles 'running' rows).
    expect(await queue.getJob(retry!.id!), `reconciler: ${JSON.stringify(repairs)}`).toBeDefined();
  });

  it('leaves a tick held by buffer-one alone: it runs once the active run ends', async () => {
    const queue = queueOf(rvBuffer);
    const byHand = await enqueueRun(rt.queues, rvBuffer, { key: 'hold' });
    await waitFor(() => gates.has('rv-buffer/hold'), 10_000, () => 'hand run active');
    await startSchedule(rvBuffer);
    let buffered: string | undefined;
    await waitFor(async () => {
      const [row] = await rt.db.sql<{ partition: string }[]>`select partition from ops.job_runs where job = 'rv-buffer' and status = 'buffered'`;
      buffered = row?.partition;
      return buffered !== undefined;
    }, 15_000, () => 'a tick buffered');

    const repairs = await reconcileSchedules(runtime(), [scheduleOf(rvBuffer)]);
    gates.get('rv-buffer/hold')!();
    await finished(queue, byHand.jobId);
    // README: "buffer-one holds one tick until the active run ends".
    await waitFor(async () => (await loadRun(rt.db.sql, 'rv-buffer', buffered!))?.status === 'succeeded', 15_000, () => `buffered tick ${buffered} run (reconciler: ${JSON.stringify(repairs)})`);
  });
});

describe('a tick promoted before its time', () => {
  it('is not run early when its deferred run is promoted in Bull Board too', async () => {
    const queue = queueOf(rvNightly);
    await startSchedule(rvNightly);
    const [next] = (await queue.getJobs(['delayed'], 0, -1)).filter((j) => j?.repeatJobKey === 'rv-nightly');
    const tick = next!.opts.prevMillis!;
    const partition = new Date(tick).toISOString().slice(0, 10);
    expect(tick - Date.now()).toBeGreaterThan(2 * 60_000);

    // Promote (Bull Board): deferred to its instant under rv-nightly@<partition>.
    await next!.promote();
    expect(await finished(queue, next!.id!)).toMatchObject({ deferred: 'started before its tick', jobId: `rv-nightly@${partition}` });
    const deferred = (await queue.getJob(`rv-nightly@${partition}`))!;
    onTestFinished(() => deferred.remove().catch(() => undefined));
    expect(await deferred.getState()).toBe('delayed');

    // The operator promotes the delayed run they now see in Bull Board as well.
    await deferred.promote();
    await finished(queue, deferred.id!);
    // It still stands for the tick, hours away: it must not build the partition now, on partial data.
    expect(await loadRun(rt.db.sql, 'rv-nightly', partition)).toBeUndefined();
  });
});

describe('catch-up of a schedule ticking several times per partition', () => {
  it("counts a later tick of a partition as missed when the partition's last success came before it", async () => {
    // The 1st was refreshed at each of its ticks; on the 2nd only the 00:00 tick ran (workers down from 05:00).
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
      values ('rv-six-hourly', '2026-10-01', 'etl', 'repeat:rv-six-hourly:1', 'succeeded', 1, 4, '2026-10-01T18:00:00Z', '2026-10-01T18:00:00Z', '2026-10-01T18:01:00Z'),
             ('rv-six-hourly', '2026-10-02', 'etl', 'repeat:rv-six-hourly:2', 'succeeded', 1, 1, '2026-10-02T00:00:00Z', '2026-10-02T00:00:00Z', '2026-10-02T00:01:00Z')`;
    // 20:00 on the 2nd: the 06:00, 12:00 and 18:00 ticks never ran; the partition is as it was at 00:01.
    // By the tick rule each of them would refresh it (a success before the tick's instant); catch-up
    // should owe at least the newest (18:00), under its own tick id.
    const enqueued = await catchUp(runtime(), [scheduleOf(rvSixHourly)], new Date('2026-10-02T20:00:00Z'));
    expect(enqueued.map((e) => e.partition)).toContain('2026-10-02');
  });
});

describe('catch-up beside a failure ahead of the tick', () => {
  /** A run of rv-owed's partition `date` that failed: when it stood for, when its last attempt started, when it failed. */
  const failedRun = (date: string, scheduledFor: string, startedAt: string, finishedAt: string, jobId = `rv-owed@${date}`) => rt.db.sql`
    insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at, error)
    values ('rv-owed', ${date}, 'etl', ${jobId}, 'failed', 1, 1, ${scheduledFor}, ${startedAt}, ${finishedAt}, 'test: the session has not closed')`;
  const tickOf = (date: string) => Date.parse(`${date}T23:50:00Z`);

  it("owes a tick whose partition only failed ahead of it, as it owes one done ahead of it, under the tick's own id, and runs it once", async () => {
    // A week of nights, one case each; the 23:50 ticks never ran (workers down, Redis wiped at 23:00).
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
      values ('rv-owed', '2026-11-02', 'etl', 'rv-owed@2026-11-02', 'succeeded', 1, 1, '2026-11-02T15:00:00Z', '2026-11-02T15:00:00Z', '2026-11-02T15:01:00Z')`;
    // Run by hand at 15:00 and refused (the session had not closed).
    await failedRun('2026-11-03', '2026-11-03T15:00:00Z', '2026-11-03T15:00:00Z', '2026-11-03T15:00:01Z');
    // Run by hand at 23:40; the tick found it running and stood down; it failed at 23:55.
    await failedRun('2026-11-04', '2026-11-04T23:40:00Z', '2026-11-04T23:40:00Z', '2026-11-04T23:55:00Z');
    // Run by hand at 15:00; its worker died and the reaper settled it failed after the tick.
    await failedRun('2026-11-05', '2026-11-05T15:00:00Z', '2026-11-05T15:00:00Z', '2026-11-06T00:05:00Z');
    // The tick's own run failed for good: BullMQ retried it; ops re-run it from Bull Board.
    await failedRun('2026-11-06', '2026-11-06T23:50:00Z', '2026-11-06T23:50:00Z', '2026-11-06T23:51:00Z', `repeat:rv-owed:${tickOf('2026-11-06')}`);
    // Run by hand at 15:00; its last retry started after the tick and failed: it was the tick's run, on the day's data.
    await failedRun('2026-11-07', '2026-11-07T15:00:00Z', '2026-11-07T23:58:00Z', '2026-11-07T23:59:00Z');
    // Run by hand half a minute before the tick (clock skew room): that run stands for the tick.
    await failedRun('2026-11-08', '2026-11-08T23:49:30Z', '2026-11-08T23:49:30Z', '2026-11-08T23:49:40Z');

    const now = new Date('2026-11-09T12:00:00Z');
    const enqueued = await catchUp(runtime(), [scheduleOf(rvOwed)], now);
    expect(enqueued.map((e) => [e.partition, e.jobId])).toEqual(
      ['2026-11-02', '2026-11-03', '2026-11-04', '2026-11-05'].map((date) => [date, `rv-owed@${date}@tick-${tickOf(date)}`]),
    );
    const queue = queueOf(rvOwed);
    for (const { jobId } of enqueued) await finished(queue, jobId);
    for (const { partition, jobId } of enqueued) {
      expect(await loadRun(rt.db.sql, 'rv-owed', partition), partition).toMatchObject({ status: 'succeeded', job_id: jobId, scheduled_for: new Date(tickOf(partition)) });
    }
    expect(await catchUp(runtime(), [scheduleOf(rvOwed)], now)).toEqual([]);
  });
});

describe("catch-up with PostgreSQL's clock behind the workers", () => {
  it("does not owe again a tick whose own run finished, by the database's clock, minutes before the tick", async () => {
    // The 23:50 tick ran and succeeded; PostgreSQL's clock was 5 minutes behind the scheduler's.
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
      values ('rv-nightly', '2026-10-05', 'etl', 'repeat:rv-nightly:1', 'succeeded', 1, 1, '2026-10-05T23:50:00Z', '2026-10-05T23:45:00Z', '2026-10-05T23:46:00Z')`;
    const enqueued = await catchUp(runtime(), [scheduleOf(rvNightly)], new Date('2026-10-06T00:10:00Z'));
    expect(enqueued.map((e) => e.partition)).not.toContain('2026-10-05');
  });
});

describe('deadlines', () => {
  it("pages for a partition whose only success was a run by hand ahead of its tick (the tick never ran)", async () => {
    const schedule = scheduleOf(rvDeadline);
    await rt.db.sql`update ops.schema_migrations set applied_at = '2026-11-01T00:00:00Z'`;
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
      select 'rv-deadline', d::date::text, 'reports', 'rv-deadline@' || d::date::text, 'succeeded', 1, 1,
             d + interval '23 hours 50 minutes', d + interval '23 hours 50 minutes', d + interval '23 hours 51 minutes'
      from generate_series('2026-11-10'::date, '2026-11-19', '1 day') d`;
    // The 20th's report was run by hand at noon (half a day of data); the 23:50 tick never ran (workers down).
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
      values ('rv-deadline', '2026-11-20', 'reports', 'rv-deadline@2026-11-20', 'succeeded', 1, 1, '2026-11-20T12:00:00Z', '2026-11-20T12:00:00Z', '2026-11-20T12:01:00Z')`;
    const now = new Date('2026-11-21T00:31:00Z');
    // The partition was not done by 00:30 ...
    const misses = await checkDeadlines(runtime(), [schedule], now);
    expect(misses.map((m) => m.partition)).toEqual(['2026-11-20']);
    // ... and catch-up agrees the tick is owed (checked second: a worker runs what it enqueues).
    const owed = await catchUp(runtime(), [schedule], now);
    expect(owed.map((e) => e.partition)).toContain('2026-11-20');
  });

  it('reports a miss once across scheduler restarts and across scheduler processes', async () => {
    const schedule = scheduleOf(rvDeadline);
    await rt.db.sql`update ops.schema_migrations set applied_at = '2026-11-01T00:00:00Z'`;
    await nightsDone('2026-11-28', '2026-11-30');
    // The 1st's report was not done by 00:30 on the 2nd.
    const first = schedulerProcess();
    const missed = await checkDeadlines(first.runtime, [schedule], new Date('2026-12-02T00:31:00Z'));
    expect(missed.map((m) => [m.partition, m.reported])).toEqual([['2026-12-01', true]]);
    expect(await first.counted()).toBe(1);
    expect(first.pages()).toEqual(['2026-12-01']);

    // A deploy restarts the scheduler ten minutes later: the miss is still late, and already reported.
    const restarted = schedulerProcess();
    const again = await checkDeadlines(restarted.runtime, [schedule], new Date('2026-12-02T00:41:00Z'));
    expect(again.map((m) => [m.partition, m.reported])).toEqual([['2026-12-01', false]]);
    expect(await restarted.counted()).toBe(0);
    expect(restarted.pages()).toEqual([]);
    expect(await restarted.gauge(schedule, new Date('2026-12-02T00:41:00Z'))).toBe(1);

    // The next night two scheduler processes pass at the same instant: the 2nd's miss is reported by one of them.
    const [a, b] = [schedulerProcess(), schedulerProcess()];
    const now = new Date('2026-12-03T00:31:00Z');
    await Promise.all([checkDeadlines(a.runtime, [schedule], now), checkDeadlines(b.runtime, [schedule], now)]);
    expect((await a.counted()) + (await b.counted())).toBe(1);
    expect([...a.pages(), ...b.pages()]).toEqual(['2026-12-02']);
    const recorded = await rt.db.sql<{ partition: string; due_at: Date }[]>`
      select partition, due_at from ops.deadline_misses where schedule = 'rv-deadline' and partition >= '2026-12-01' order by partition`;
    expect(recorded.map((r) => [r.partition, r.due_at.toISOString()])).toEqual([
      ['2026-12-01', '2026-12-02T00:30:00.000Z'],
      ['2026-12-02', '2026-12-03T00:30:00.000Z'],
    ]);
  });

  it('forgets reported misses a month after their deadline', async () => {
    await rt.db.sql`
      insert into ops.deadline_misses (schedule, partition, due_at, reported_at)
      values ('rv-deadline', '2026-09-01', '2026-09-02T00:30:00Z', '2026-09-02T00:31:00Z'),
             ('rv-deadline', '2026-11-15', '2026-11-16T00:30:00Z', '2026-11-16T00:31:00Z')`;
    await checkDeadlines(schedulerProcess().runtime, [scheduleOf(rvDeadline)], new Date('2026-12-04T00:40:00Z'));
    const kept = await rt.db.sql<{ partition: string }[]>`select partition from ops.deadline_misses where schedule = 'rv-deadline' and partition in ('2026-09-01', '2026-11-15')`;
    expect(kept.map((r) => r.partition)).toEqual(['2026-11-15']);
  });

  it('does not page while its queue is paused, and pages once the queue is resumed', async () => {
    const schedule = scheduleOf(rvDeadline);
    await rt.db.sql`update ops.schema_migrations set applied_at = '2026-11-01T00:00:00Z'`;
    await nightsDone('2026-12-05', '2026-12-08');
    // An operator paused the reports queue (Bull Board) before the 9th's 23:50 tick, on purpose.
    const queue = queueOf(rvDeadline);
    await queue.pause();
    onTestFinished(() => queue.resume());
    const scheduler = schedulerProcess();
    const held = await checkDeadlines(scheduler.runtime, [schedule], new Date('2026-12-10T00:31:00Z'));
    expect(held.map((m) => [m.partition, m.reported])).toEqual([['2026-12-09', false]]);
    expect(await scheduler.counted()).toBe(0);
    expect(scheduler.pages()).toEqual([]);
    // The gauge keeps its meaning, the partition is late; BullpenDeadlineMissed leaves paused schedules out.
    expect(await scheduler.gauge(schedule, new Date('2026-12-10T00:31:00Z'))).toBe(1);

    // Resumed with the 9th still not done: that is a miss, reported once.
    await queue.resume();
    const resumed = await checkDeadlines(scheduler.runtime, [schedule], new Date('2026-12-10T00:40:00Z'));
    expect(resumed.map((m) => [m.partition, m.reported])).toEqual([['2026-12-09', true]]);
    expect(await scheduler.counted()).toBe(1);
    expect(scheduler.pages()).toEqual(['2026-12-09']);
  });

  it('pages as usual when Redis cannot say whether the queue is paused', async () => {
    const schedule = scheduleOf(rvDeadline);
    await rt.db.sql`update ops.schema_migrations set applied_at = '2026-11-01T00:00:00Z'`;
    await nightsDone('2026-12-12', '2026-12-15');
    // A Redis that refuses commands (LOADING after a restart): the report is then most likely not made.
    const refusing = { isPaused: () => Promise.reject(new Error('LOADING Redis is loading the dataset in memory')) } as unknown as Queue;
    const scheduler = schedulerProcess();
    const misses = await checkDeadlines({ ...scheduler.runtime, queues: new Map([[rvDeadline.queue, refusing]]) as typeof rt.queues }, [schedule], new Date('2026-12-17T00:31:00Z'));
    expect(misses.map((m) => [m.partition, m.reported])).toEqual([['2026-12-16', true]]);
    expect(scheduler.pages()).toEqual(['2026-12-16']);
  });

  /** A job with rv-deadline's deadline (00:30 UTC the next day) whose partition is the UTC date `lagHours` before each tick. */
  const deadlineJob = (name: string, cron: string, lagHours: number): JobDefinition =>
    defineJob({
      name,
      queue: 'reports',
      description: 'test: a deadline under an overridden schedule',
      payload: basePayload,
      schedule: { cron, tz: 'UTC', calendar: 'all', overlap: 'skip', deadline: { by: '00:30', tz: 'UTC', dayOffset: 1 } },
      partition: (p) => new Date(Date.parse(p.scheduledFor!) - lagHours * 3_600_000).toISOString().slice(0, 10),
      catchup: { mode: 'none' },
      process: async () => ({}),
    }) as unknown as JobDefinition;

  it('judges a partition ticked several times by its ticks before the deadline: a later refresh does not make it late', async () => {
    // Every 6 h, naming the date 12 h before: 2026-12-20 is ticked at 12:00, 18:00, 00:00 and 06:00 (the 21st).
    const schedule = scheduleOf(deadlineJob('rv-refreshed', '0 */6 * * *', 12));
    await rt.db.sql`update ops.schema_migrations set applied_at = '2026-11-01T00:00:00Z'`;
    // Its 00:00 tick ran and succeeded at 00:01, before the 00:30 deadline; the 06:00 refresh has not run yet.
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
      values ('rv-refreshed', '2026-12-20', 'reports', 'rv-refreshed@2026-12-20', 'succeeded', 1, 1, '2026-12-21T00:00:00Z', '2026-12-21T00:00:00Z', '2026-12-21T00:01:00Z')`;
    const scheduler = schedulerProcess();
    const misses = await checkDeadlines(scheduler.runtime, [schedule], new Date('2026-12-21T06:10:00Z'));
    expect(misses.filter((m) => m.partition === '2026-12-20')).toEqual([]);
  });

  it('does not judge a partition whose every tick comes after its deadline (an override moved the tick past it), and says so once', async () => {
    // 01:30 UTC naming the day before: 2026-12-22's only tick is at 01:30 on the 23rd, after its 00:30 deadline.
    const schedule = scheduleOf(deadlineJob('rv-late-tick', '30 1 * * *', 24));
    await rt.db.sql`update ops.schema_migrations set applied_at = '2026-11-01T00:00:00Z'`;
    const lines: { msg?: string }[] = [];
    const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
    const runtime = { ...schedulerProcess().runtime, logger };
    expect(await checkDeadlines(runtime, [schedule], new Date('2026-12-23T00:40:00Z'))).toEqual([]);
    expect(await checkDeadlines(runtime, [schedule], new Date('2026-12-23T00:50:00Z'))).toEqual([]);
    const warnings = lines.filter((l) => l.msg?.includes('only after its deadline'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain('SCHEDULE_RV_LATE_TICK');
  });
});

describe('lag', () => {
  const lagOf = async (definition: JobDefinition, now: Date) => (await listScheduleStatus(runtime(), [scheduleOf(definition)], now))[0]!.lag_seconds;
  // The deployment began before these ticks (a tick from before it is owed to no one).
  beforeEach(() => rt.db.sql`update ops.schema_migrations set applied_at = '2026-09-01T00:00:00Z'`.then(() => undefined));

  it("counts a partition run by hand ahead of its tick as owed from the tick, as deadlines and catch-up do", async () => {
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
      select 'rv-nightly', d::date::text, 'etl', 'rv-nightly@' || d::date::text, 'succeeded', 1, 1,
             d + interval '23 hours 50 minutes', d + interval '23 hours 50 minutes', d + interval '23 hours 51 minutes'
      from generate_series('2026-10-10'::date, '2026-10-12', '1 day') d`;
    // The 13th was run by hand at noon; its 23:50 tick never ran.
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
      values ('rv-nightly', '2026-10-13', 'etl', 'rv-nightly@2026-10-13', 'succeeded', 1, 1, '2026-10-13T12:00:00Z', '2026-10-13T12:00:00Z', '2026-10-13T12:01:00Z')`;
    expect(await lagOf(rvNightly, new Date('2026-10-14T00:30:00Z'))).toBe(40 * 60);
  });

  it('counts a partition ticked several times from the first tick its last success came before', async () => {
    // The 00:00 tick of the 20th ran; the 06:00, 12:00 and 18:00 ones did not.
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at)
      values ('rv-six-hourly', '2026-10-19', 'etl', 'repeat:rv-six-hourly:19', 'succeeded', 1, 4, '2026-10-19T18:00:00Z', '2026-10-19T18:00:00Z', '2026-10-19T18:01:00Z'),
             ('rv-six-hourly', '2026-10-20', 'etl', 'repeat:rv-six-hourly:20', 'succeeded', 1, 1, '2026-10-20T00:00:00Z', '2026-10-20T00:00:00Z', '2026-10-20T00:01:00Z')`;
    expect(await lagOf(rvSixHourly, new Date('2026-10-20T20:00:00Z'))).toBe(14 * 3600);
  });
});

describe('deadlines and lag beside a failure ahead of the tick', () => {
  it('counts a partition that only failed ahead of its tick as late and lagging from the tick, as before', async () => {
    await rt.db.sql`update ops.schema_migrations set applied_at = '2026-11-01T00:00:00Z'`;
    await nightsDone('2027-01-10', '2027-01-12');
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, scheduled_for, started_at, finished_at, error)
      values ('rv-deadline', '2027-01-13', 'reports', 'rv-deadline@2027-01-13', 'failed', 1, 1, '2027-01-13T15:00:00Z', '2027-01-13T15:00:00Z', '2027-01-13T15:00:01Z', 'test: refused')`;
    const now = new Date('2027-01-14T00:40:00Z');
    const misses = await checkDeadlines(schedulerProcess().runtime, [scheduleOf(rvDeadline)], now);
    expect(misses.map((m) => m.partition)).toEqual(['2027-01-13']);
    const [status] = await listScheduleStatus(runtime(), [scheduleOf(rvDeadline)], now);
    expect(status!.lag_seconds).toBe(50 * 60);
  });
});
