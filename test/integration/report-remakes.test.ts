/**
 * Stored nightly reports made again by build-rollups ("remakes"):
 *
 *  1. A 1d bar that arrives after its date was reported (within the rebuilds' look-back) marks
 *     that date's positions; the reports showing them are made again, from the first marked
 *     date on, whichever branch of the rebuild marked them, and a rebuild that marks nothing
 *     asks for nothing.
 *  2. Remakes never hold up a scheduled tick: enqueued just before it, they still run after it
 *     (BullMQ priority), in date order; one running does not make the tick an overlap (reports of
 *     different dates run side by side); and a remake asked for again while the same date's runs
 *     is kept for after it (BullMQ deduplication) at the same low priority.
 */
import fs from 'node:fs';
import { Worker } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { buildRollups } from '../../jobs/build-rollups.ts';
import { nightlyReport } from '../../jobs/nightly-report.ts';
import type { Sql } from '../../src/db.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import type { DailyReport } from '../../src/reports/types.ts';
import { rebuildRollups } from '../../src/rollups.ts';
import { loadTrades } from '../../src/trade-loader.ts';
import { startWorkers, stopWorkers } from '../../src/worker.ts';
import { insertExecutions, seedReference } from '../helpers/oltp.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const TZ = 'America/New_York';
const at = (date: string, time = '15:00:00') => `${date}T${time}Z`;

let runtime: TestRuntime | undefined;
const extraWorkers: Worker[] = [];
afterEach(async () => {
  if (runtime) await stopWorkers(extraWorkers.splice(0), 5000, runtime.workerRuntime.logger);
  await runtime?.close();
  runtime = undefined;
});

interface StoredReport {
  report_date: string;
  json_path: string;
  generated_at: Date;
}

const storedReports = async (sql: Sql) =>
  new Map((await sql<StoredReport[]>`select report_date::text, json_path, generated_at from ops.reports`).map((r) => [r.report_date, r]));

const readReport = async (sql: Sql, date: string): Promise<DailyReport> =>
  JSON.parse(fs.readFileSync((await storedReports(sql)).get(date)!.json_path, 'utf8')) as DailyReport;

/** The AAPL position of account 1 and of the firm in a stored report, as numbers (null: unmarked). */
async function aaplOn(sql: Sql, date: string): Promise<{ close: number | null; unrealized: number | null; firmUnrealized: number | null }> {
  const report = await readReport(sql, date);
  const account = report.accounts.find((a) => a.account_id === 1)?.positions.find((p) => p.symbol === 'AAPL');
  const firm = report.firm.positions.find((p) => p.symbol === 'AAPL');
  const num = (v: string | null | undefined) => (v === null || v === undefined ? null : Number(v));
  return { close: num(account?.close), unrealized: num(account?.unrealized_pnl), firmUnrealized: num(firm?.unrealized_pnl) };
}

async function succeededRun(sql: Sql, job: string, partition: string): Promise<Record<string, unknown>> {
  let summary: Record<string, unknown> | undefined;
  await waitFor(async () => {
    const [row] = await sql<{ status: string; summary: Record<string, unknown> | null }[]>`
      select status, summary from ops.job_runs where job = ${job} and partition = ${partition}`;
    if (row?.status === 'failed') throw new Error(`${job} ${partition} failed`);
    summary = row?.status === 'succeeded' ? (row.summary ?? {}) : undefined;
    return summary !== undefined;
  }, 20_000, () => `${job} ${partition} to succeed`);
  return summary!;
}

async function bar(sql: Sql, date: string, close: number): Promise<void> {
  await sql`insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source)
    values ('AAPL', '1d', ${`${date} 00:00:00-05`}, ${close}, ${close}, ${close}, ${close}, 1000000, 'test')`;
}

describe('reports made again after late position marks', () => {
  it("a 1d bar arriving after its date was reported marks that date's positions, and the reports from it on are made again", async () => {
    runtime = await createTestRuntime('remake-marks', [buildRollups, nightlyReport]);
    const { sql } = runtime.db;
    await seedReference(sql);
    // Account 1 buys 100 AAPL at 10 on Monday 03-02 and holds them; no bar has come yet.
    await insertExecutions(sql, [{ execution_id: 1, executed_at: at('2026-03-02'), side: 'BUY', quantity: '100', price: '10' }]);
    await loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'test' });
    await rebuildRollups({ db: sql, tz: TZ, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-03' });
    runtime.startWorkers();
    for (const date of ['2026-03-02', '2026-03-03']) await enqueueRun(runtime.queues, nightlyReport, { date }, { scheduledFor: new Date(`${date}T23:50:00Z`) });
    await waitFor(async () => (await storedReports(sql)).size === 2, 20_000, () => 'the reports of Monday and Tuesday');
    expect(await aaplOn(sql, '2026-03-02')).toEqual({ close: null, unrealized: null, firmUnrealized: null });
    const first = await storedReports(sql);

    // Wednesday the bars of Monday (11) and Tuesday (12) arrive late (a fetch retried); that
    // night's rebuild (its tick at 23:30 New York) restates nothing before Wednesday, but marks them.
    await bar(sql, '2026-03-02', 11);
    await bar(sql, '2026-03-03', 12);
    await enqueueRun(runtime.queues, buildRollups, {}, { scheduledFor: new Date('2026-03-05T04:30:00Z') });
    const nightly = await succeededRun(sql, 'build-rollups', '2026-03-04');
    expect(nightly).toMatchObject({ rows: { positions_marked: 2 }, reports_requested: 2 });
    await waitFor(async () => {
      const now = await storedReports(sql);
      return ['2026-03-02', '2026-03-03'].every((d) => now.get(d)!.generated_at > first.get(d)!.generated_at);
    }, 20_000, () => 'the reports of Monday and Tuesday to be made again');
    expect(await aaplOn(sql, '2026-03-02')).toEqual({ close: 11, unrealized: 100, firmUnrealized: 100 });
    expect(await aaplOn(sql, '2026-03-03')).toEqual({ close: 12, unrealized: 200, firmUnrealized: 200 });

    // Wednesday's report shows its position unmarked. A rebuild with nothing to rebuild (the
    // trade ETL's, its requests already taken) marks nothing and asks for no report.
    await enqueueRun(runtime.queues, nightlyReport, { date: '2026-03-04' }, { scheduledFor: new Date('2026-03-04T23:50:00Z') });
    await succeededRun(sql, 'nightly-report', '2026-03-04');
    expect((await aaplOn(sql, '2026-03-04')).close).toBeNull();
    await enqueueRun(runtime.queues, buildRollups, { pending: true, trigger: 'etl-1' });
    expect(await succeededRun(sql, 'build-rollups', 'pending@etl-1')).toMatchObject({ rows: { positions_marked: 0 }, reports_requested: 0 });

    // Wednesday's bar (13) arrives: the next such rebuild marks it and asks for Wednesday's report
    // only; Monday's and Tuesday's stand.
    const second = await storedReports(sql);
    await bar(sql, '2026-03-04', 13);
    await enqueueRun(runtime.queues, buildRollups, { pending: true, trigger: 'etl-2' });
    expect(await succeededRun(sql, 'build-rollups', 'pending@etl-2')).toMatchObject({ rows: { positions_marked: 1 }, reports_requested: 1 });
    await waitFor(async () => (await storedReports(sql)).get('2026-03-04')!.generated_at > second.get('2026-03-04')!.generated_at, 20_000, () => "Wednesday's report to be made again");
    expect(await aaplOn(sql, '2026-03-04')).toEqual({ close: 13, unrealized: 300, firmUnrealized: 300 });
    const third = await storedReports(sql);
    for (const date of ['2026-03-02', '2026-03-03']) expect(third.get(date)!.generated_at).toEqual(second.get(date)!.generated_at);
  });
});

describe('remakes and the scheduled tick', () => {
  it("remakes enqueued just before the nightly tick run after the tick's own report, in date order", async () => {
    runtime = await createTestRuntime('remake-priority', [buildRollups, nightlyReport]);
    const { sql } = runtime.db;
    await seedReference(sql);
    await insertExecutions(sql, [
      { execution_id: 1, executed_at: at('2026-03-02'), side: 'BUY', quantity: '100', price: '10' },
      { execution_id: 2, executed_at: at('2026-03-03'), side: 'SELL', quantity: '100', price: '11' },
    ]);
    await loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'test' });
    await rebuildRollups({ db: sql, tz: TZ, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-06' });
    // Five stored reports (what they hold does not matter: each remake rewrites its own).
    const dates = ['2026-03-02', '2026-03-03', '2026-03-04', '2026-03-05', '2026-03-06'];
    await sql`insert into ops.reports (report_date, json_path, generated_at)
      select d::date, ${runtime.config.reportsDir} || '/stale.json', '2026-03-07T00:00:00Z' from unnest(${dates}::text[]) d`;

    // Only the rollups queue is worked at first: Monday is restated, so all five are asked for again.
    extraWorkers.push(...startWorkers(runtime.workerRuntime, { connection: runtime.redis, queues: ['rollups'] }));
    const restated = await enqueueRun(runtime.queues, buildRollups, { from: '2026-03-02', to: '2026-03-02' });
    expect(await succeededRun(sql, 'build-rollups', restated.partition)).toMatchObject({ reports_requested: 5 });

    // Then the nightly tick comes due (a Job Scheduler job, as src/scheduler.ts registers them;
    // `every` makes its first job due now), and the reports queue is worked.
    const queue = runtime.queues.get('reports')!;
    await queue.upsertJobScheduler('nightly-report', { every: 86_400_000 }, { name: 'nightly-report', data: {} });
    const [tick] = (await queue.getJobs(['waiting', 'delayed', 'prioritized'], 0, -1)).filter((j) => j?.repeatJobKey === 'nightly-report');
    expect(tick).toBeDefined();
    const order: string[] = [];
    const [reports] = startWorkers(runtime.workerRuntime, { connection: runtime.redis, queues: ['reports'] });
    extraWorkers.push(reports!);
    reports!.on('active', (job) => order.push(job.repeatJobKey ? 'tick' : String(job.data.date)));
    await waitFor(async () => {
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from ops.job_runs where job = 'nightly-report' and status = 'succeeded'`;
      return row?.n === dates.length + 1;
    }, 30_000, () => `the tick and five remakes to run (ran: ${order.join(', ')})`);
    expect(order).toEqual(['tick', ...dates]);
  });

  it('neither the nightly tick nor another remake waits for, or is dropped behind, a remake running on another worker', async () => {
    runtime = await createTestRuntime('remake-overlap', [nightlyReport], { CONCURRENCY_REPORTS: '2' });
    const { sql } = runtime.db;
    // Another worker is remaking Monday's report (its heartbeat is fresh: the run is live).
    await sql`insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, started_at, heartbeat_at, worker)
      values ('nightly-report', '2026-03-02', 'reports', 'nightly-report@2026-03-02@force-1', 'running', 1, 1, now(), now(), 'other-host:1')`;
    const queue = runtime.queues.get('reports')!;
    await queue.upsertJobScheduler('nightly-report', { every: 86_400_000 }, { name: 'nightly-report', data: {} });
    const [tick] = (await queue.getJobs(['waiting', 'delayed', 'prioritized'], 0, -1)).filter((j) => j?.repeatJobKey === 'nightly-report');
    const remake = await enqueueRun(runtime.queues, nightlyReport, { date: '2026-03-03' }, { force: true, deduplicationId: 'nightly-report.restated.2026-03-03', priority: 10 });
    runtime.startWorkers();
    await waitFor(async () => ['completed', 'failed'].includes(await (await queue.getJob(tick!.id!))!.getState()), 20_000, () => 'the tick to run');
    expect((await queue.getJob(tick!.id!))?.returnvalue).not.toMatchObject({ skipped: 'overlap' });
    await succeededRun(sql, 'nightly-report', remake.partition);
    const [ticked] = await sql<{ n: number }[]>`select count(*)::int as n from ops.job_runs where job = 'nightly-report' and status = 'succeeded' and partition <> '2026-03-03'`;
    expect(ticked?.n).toBe(1);
    expect(await runtime.metrics.ticksSkipped.get()).toMatchObject({ values: [] });
  });

  it('a remake asked for again while that date is being remade is kept for after it, still behind a tick enqueued meanwhile', async () => {
    runtime = await createTestRuntime('remake-dedup', [nightlyReport]);
    const queue = runtime.queues.get('reports')!;
    const remake = (now: string) =>
      enqueueRun(runtime!.queues, nightlyReport, { date: '2026-03-02' }, { force: true, now: new Date(now), deduplicationId: 'nightly-report.restated.2026-03-02', priority: 10 });

    const first = await remake('2026-03-07T01:00:00Z');
    expect({ id: first.jobId, created: first.created, state: await first.job.getState() }).toEqual({
      id: 'nightly-report@2026-03-02@force-1772845200000',
      created: true,
      state: 'prioritized',
    });
    // While it waits, asking again adds nothing.
    const again = await remake('2026-03-07T01:01:00Z');
    expect({ id: again.jobId, created: again.created }).toEqual({ id: first.jobId, created: false });

    // A worker without a processor takes it, as a run would: now a remake asked for is kept for after it.
    const worker = new Worker('reports', null, { connection: runtime.redis, prefix: runtime.prefix, autorun: false });
    extraWorkers.push(worker);
    const token = 'remake-dedup-test';
    const active = await worker.getNextJob(token);
    expect(active?.id).toBe(first.jobId);
    const kept = await remake('2026-03-07T01:02:00Z');
    expect(kept.created).toBe(false);
    // Meanwhile the tick's run (no priority) is enqueued.
    const tick = await enqueueRun(runtime.queues, nightlyReport, { date: '2026-03-06' }, { scheduledFor: new Date('2026-03-06T23:50:00Z') });

    // The first remake finishes: the kept one is added, at its own priority, behind the tick.
    await active!.moveToCompleted({ done: true }, token, false);
    const next = await queue.getJob('nightly-report@2026-03-02@force-1772845320000');
    expect(await next?.getState()).toBe('prioritized');
    expect(next?.opts.priority).toBe(10);
    expect(await tick.job.getState()).toBe('waiting');
    expect((await worker.getNextJob(token))?.id).toBe(tick.jobId);
    expect((await worker.getNextJob(token))?.id).toBe(next?.id);
  });
});
