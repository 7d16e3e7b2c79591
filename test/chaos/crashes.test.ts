/**
 * Crashes: the demo pipeline (trade ETL → rollups → a 20-symbol backfill → rollups again → the
 * nightly report) runs twice on the same seeded history: once cleanly on in-process workers, once
 * on three worker processes while a random one is SIGKILLed at 10 random moments and restarted.
 * The warehouse, market.bars, market.features and the report must come out the same (checksums
 * of ordered rows). Prints kills, rows lost, duplicate rows and jobs re-run.
 */
import fs from 'node:fs';
import { QueueEvents } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { addTradingDays } from '../../src/analytics/calendar.ts';
import { JOBS } from '../../jobs/index.ts';
import { nightlyReport } from '../../jobs/nightly-report.ts';
import { DEMO_SYMBOLS, describeDemoHistory, generateDemoHistory } from '../../src/demo/synthetic.ts';
import { seedDemoHistory } from '../../src/demo/seed.ts';
import type { Sql } from '../../src/db.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { createBackfill, createFlowEnqueuer, planBackfill } from '../../src/enrichment/backfills.ts';
import { enrichmentBackfill } from '../../jobs/enrichment-backfill.ts';
import { QUEUE_NAMES } from '../../src/queues.ts';
import { reportFileBase } from '../../src/reports/store.ts';
import { startWorkerProcess, waitFor, type Child } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const NOW = new Date('2026-03-20T14:00:00Z');
const DAYS = 15;
const KILLS = 10;
const SYMBOLS = DEMO_SYMBOLS.filter((s) => s.instrumentType === 'stock').slice(0, 20).map((s) => s.symbol);

/** Each table's key, for counting duplicates. */
const TABLES: Record<string, string> = {
  'warehouse.fact_trades': 'trade_date, execution_id',
  'warehouse.fact_performance_daily': 'date_key, account_key, strategy_key',
  'warehouse.fact_performance_buckets': 'account_id, trade_date, hour_of_day, market_session',
  'warehouse.equity_curve': 'account_id, date',
  'warehouse.performance_metrics': 'account_id, as_of_date, window_name',
  'warehouse.fact_positions_daily': 'account_id, trade_date, instrument_id',
  'warehouse.agg_performance_monthly': 'month_key, account_key, strategy_key',
  'market.bars': 'symbol, timeframe, ts',
  'market.features': 'symbol, timeframe, ts',
};

interface Snapshot {
  rows: Record<string, number>;
  distinct: Record<string, number>;
  checksums: Record<string, string>;
  report: unknown;
}

async function snapshot(sql: Sql, reportsDir: string, date: string): Promise<Snapshot> {
  const rows: Record<string, number> = {};
  const distinct: Record<string, number> = {};
  const checksums: Record<string, string> = {};
  for (const [table, keys] of Object.entries(TABLES)) {
    // Content only: surrogate keys (identity values a rolled-back transaction may have used up)
    // and columns that say when or by which run a row was written are left out.
    const [row] = await sql.unsafe<{ n: number; d: number; md5: string }[]>(`
      with content as (
        select (select jsonb_object_agg(k, v) from jsonb_each(to_jsonb(t)) as e(k, v)
                where k not like '%\\_key' and k not in ('loaded_at', 'updated_at', 'computed_at', 'source')) as j
        from ${table} t
      )
      select count(*)::int as n, (select count(*)::int from (select distinct ${keys} from ${table}) k) as d,
             md5(coalesce(string_agg(j::text, '|' order by j::text), '')) as md5
      from content`);
    rows[table] = row?.n ?? 0;
    distinct[table] = row?.d ?? 0;
    checksums[table] = row?.md5 ?? '';
  }
  const file = `${reportsDir}/${reportFileBase(date)}.json`;
  const report = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  // When it was generated, and how fresh the ops data looked then, are not the report's content.
  delete report.generated_at;
  delete report.freshness;
  return { rows, distinct, checksums, report };
}

async function waitForRun(sql: Sql, job: string, partition: string, timeoutMs = 240_000): Promise<void> {
  let status: string | undefined;
  await waitFor(
    async () => {
      const [row] = await sql<{ status: string }[]>`select status from ops.job_runs where job = ${job} and partition = ${partition}`;
      status = row?.status;
      if (status === 'failed') throw new Error(`${job} ${partition} failed`);
      return status === 'succeeded';
    },
    timeoutMs,
    () => `${job} ${partition} to succeed (now ${status ?? 'no row'})`,
  );
}

/** The pipeline, enqueued step by step as the schedules and the demo would; returns the report date. */
async function runPipeline(rt: TestRuntime, lastDate: string): Promise<void> {
  const sql = rt.db.sql;
  const etl = await enqueueRun(rt.queues, JOBS.find((j) => j.name === 'trade-etl')!, {}, { force: true });
  await waitForRun(sql, 'trade-etl', etl.partition);
  // The rollups the ETL asked for (ROLLUP_DEBOUNCE_MS is 0 here).
  const [etlRun] = await sql<{ summary: { rollups_job?: string } }[]>`select summary from ops.job_runs where job = 'trade-etl' and partition = ${etl.partition}`;
  const requested = etlRun?.summary.rollups_job;
  if (requested) {
    await waitForRun(sql, 'build-rollups', requested.slice('build-rollups@'.length));
  } else {
    // The attempt that succeeded loaded nothing and found nothing pending: an earlier attempt, killed
    // after its commit, asked for the rollups, and they ran. Wait until no rollups are owed or running.
    await waitFor(
      async () => {
        const [row] = await sql<{ owed: boolean }[]>`
          select exists (select 1 from ops.rollup_requests)
              or exists (select 1 from ops.job_runs where job = 'build-rollups' and status not in ('succeeded', 'failed')) as owed`;
        return row?.owed === false;
      },
      240_000,
      () => 'the rollups an earlier trade-etl attempt asked for',
    );
  }
  const rollupsJob = JOBS.find((j) => j.name === 'build-rollups')!;

  const enqueue = createFlowEnqueuer(rt.workerRuntime.flows, enrichmentBackfill, rt.workerRuntime.jobOptions);
  // 1m over the 45 sessions to the last date (about 350,000 bars): long enough for the kills to land in it too.
  const plan = planBackfill({ symbols: SYMBOLS, timeframes: '1m,1d', from: addTradingDays(lastDate, -45), to: lastDate }, { defaultSource: 'synthetic', maxBars: 1e9, now: NOW.getTime() });
  const { backfillId } = await createBackfill({ db: sql, enqueue }, plan);
  await waitForRun(sql, 'enrichment-backfill', backfillId);
  const [backfill] = await sql<{ status: string; error: string | null }[]>`select status, error from enrichment.backfills where backfill_id = ${backfillId}`;
  if (backfill?.status !== 'completed') throw new Error(`the backfill ended ${backfill?.status}: ${backfill?.error}`);

  const full = await enqueueRun(rt.queues, rollupsJob, { full: true });
  await waitForRun(sql, 'build-rollups', full.partition);
  const report = await enqueueRun(rt.queues, nightlyReport, { date: lastDate });
  await waitForRun(sql, 'nightly-report', report.partition);
}

async function seed(rt: TestRuntime): Promise<{ last: string }> {
  const history = generateDemoHistory({ days: DAYS, now: NOW });
  await seedDemoHistory(rt.db.sql, history);
  const described = describeDemoHistory(history);
  return { last: described.lastTradingDate };
}

// Ten kills may all land on one job's workers: no job here is one that kills its worker, so none
// may fail for stalling (JOB_MAX_STALLS's default of 2 would fail a job that drew three).
const ENV = { ROLLUP_DEBOUNCE_MS: '0', LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000', JOB_ATTEMPTS: '10', JOB_BACKOFF_MS: '200', JOB_MAX_STALLS: String(KILLS) };

describe('crashes', () => {
  const runtimes: TestRuntime[] = [];
  const children: Child[] = [];
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    for (const rt of runtimes) await rt.close();
  });

  it('SIGKILL of random workers at 10 moments loses nothing and duplicates nothing', async () => {
    // The clean run: in-process workers, nothing killed.
    const clean = await createTestRuntime('chaos-clean', JOBS, ENV);
    runtimes.push(clean);
    const dates = await seed(clean);
    clean.startWorkers();
    await runPipeline(clean, dates.last);
    const expected = await snapshot(clean.db.sql, clean.env.REPORTS_DIR as string, dates.last);

    // The same under fire: three worker processes, one SIGKILLed and restarted at 10 random moments.
    const chaos = await createTestRuntime('chaos-kill', JOBS, ENV);
    runtimes.push(chaos);
    await seed(chaos);
    const env = { ...chaos.env, JOBS: 'catalogue', ROLE: 'worker' };
    const workers: Child[] = [];
    for (let i = 0; i < 3; i++) workers.push(await startWorkerProcess(env));
    children.push(...workers);
    let kills = 0;
    let stop = false;
    const restarts: Promise<void>[] = [];
    const killer = (async () => {
      while (!stop && kills < KILLS) {
        await new Promise((resolve) => setTimeout(resolve, 300 + Math.random() * 900));
        if (stop) break;
        const alive = workers.map((w, i) => ({ w, i })).filter(({ w }) => w.process.exitCode === null && w.process.signalCode === null);
        if (alive.length === 0) continue;
        const { w: victim, i: index } = alive[Math.floor(Math.random() * alive.length)] as { w: Child; i: number };
        victim.kill('SIGKILL');
        await victim.exited;
        kills++;
        // Restarted in the background: the next kill may come before it is up, as in a bad deploy.
        restarts.push(
          startWorkerProcess(env).then((replacement) => {
            workers[index] = replacement;
            children.push(replacement);
          }),
        );
      }
    })();
    // Jobs a dead worker held are re-run by another once their lock lapses: BullMQ says "stalled".
    let stalled = 0;
    const events = QUEUE_NAMES.map((name) => new QueueEvents(name, { connection: chaos.redis.duplicate(), prefix: chaos.prefix }));
    for (const e of events) e.on('stalled', () => stalled++);
    await Promise.all(events.map((e) => e.waitUntilReady()));
    const started = Date.now();
    await runPipeline(chaos, dates.last);
    stop = true;
    await killer;
    await Promise.all(restarts);
    await Promise.all(events.map((e) => e.close()));
    const seconds = (Date.now() - started) / 1000;
    const actual = await snapshot(chaos.db.sql, chaos.env.REPORTS_DIR as string, dates.last);

    const lost = Object.keys(TABLES).reduce((sum, t) => sum + Math.max(0, (expected.rows[t] ?? 0) - (actual.rows[t] ?? 0)), 0);
    const duplicates = Object.keys(TABLES).reduce((sum, t) => sum + ((actual.rows[t] ?? 0) - (actual.distinct[t] ?? 0)), 0);
    const [runs] = await chaos.db.sql<{ n: number }[]>`select count(*)::int as n from ops.job_runs`;
    const table = Object.keys(TABLES).map((t) => `  ${t.padEnd(36)} ${String(actual.rows[t]).padStart(8)} rows  ${actual.checksums[t] === expected.checksums[t] ? 'same' : 'DIFFERENT'}`);
    process.stdout.write(
      [
        '',
        `crashes: ${kills} SIGKILLs over ${seconds.toFixed(1)} s of pipeline on 3 worker processes`,
        ...table,
        `  report ${reportFileBase(dates.last)}.json: ${JSON.stringify(actual.report) === JSON.stringify(expected.report) ? 'same' : 'DIFFERENT'}`,
        `  rows lost ${lost}, duplicate rows ${duplicates}, jobs re-run after a kill (BullMQ stalled) ${stalled}, partitions run ${runs?.n ?? 0}`,
        '',
      ].join('\n'),
    );
    expect(kills).toBe(KILLS);
    expect(lost).toBe(0);
    expect(duplicates).toBe(0);
    expect(actual.rows).toEqual(expected.rows);
    expect(actual.checksums).toEqual(expected.checksums);
    expect(actual.report).toEqual(expected.report);
  });
});
