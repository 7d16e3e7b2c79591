/**
 * Runs made more than once: a retry after a step failed between PostgreSQL and Redis (a request
 * recorded, its flow not queued), a run asked for again after its job failed for good, and a
 * forced re-run of a trade-etl partition. Each ends as one clean run would.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FlowProducer, type Worker } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { buildRollups } from '../../jobs/build-rollups.ts';
import { tradeEtl } from '../../jobs/trade-etl.ts';
import { enrichmentBackfill } from '../../jobs/enrichment-backfill.ts';
import { enrichmentDaily } from '../../jobs/enrichment-daily.ts';
import { nightlyReport } from '../../jobs/nightly-report.ts';
import { refreshRs } from '../../jobs/refresh-rs.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { createLogger } from '../../src/logger.ts';
import { loadRun } from '../../src/runs.ts';
import { startWorkers, stopWorkers } from '../../src/worker.ts';
import { insertExecutions, seedReference } from '../helpers/oltp.ts';
import { spawnNode, waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let runtime: TestRuntime | undefined;
let extraWorkers: Worker[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  await stopWorkers(extraWorkers, 5000, createLogger({ level: 'silent', pretty: false }));
  extraWorkers = [];
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await runtime?.close();
  runtime = undefined;
});

/**
 * A FlowProducer whose first `add` fails as a dropped Redis connection would (after the
 * PostgreSQL side of the request was committed), then works.
 */
function flakyFlows(rt: TestRuntime): FlowProducer {
  const real = new FlowProducer({ connection: rt.redis, prefix: rt.prefix });
  cleanups.push(() => real.close());
  let failures = 1;
  return new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === 'add') {
        return async (...args: Parameters<FlowProducer['add']>) => {
          if (failures-- > 0) throw Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' });
          return target.add(...args);
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}

function startFlakyWorkers(rt: TestRuntime): void {
  extraWorkers = startWorkers({ ...rt.workerRuntime, flows: flakyFlows(rt) }, { connection: rt.redis });
}

describe('a retry after the enrichment request was recorded but its flow not queued', () => {
  it('refresh-rs: the retried run asks again and ends, instead of waiting for a request nothing will ever run', async () => {
    runtime = await createTestRuntime('rerun-rs-orphan', [refreshRs, enrichmentBackfill]);
    startFlakyWorkers(runtime);
    const sql = runtime.db.sql;
    await sql`delete from market.sector_mapping`;
    for (const [symbol, sector, etf, assetClass] of [
      ['SPY', 'Benchmark', null, 'etf'],
      ['AAPL', 'Information Technology', null, 'stock'],
    ] as const) {
      await sql`insert into market.sector_mapping (symbol, sector_name, sector_etf, asset_class) values (${symbol}, ${sector}, ${etf}, ${assetClass})`;
    }
    const run = await enqueueRun(runtime.queues, refreshRs, { date: '2026-11-20' });
    let row: Awaited<ReturnType<typeof loadRun>>;
    // A clean run of this (synthetic data) takes a few seconds; give it 40.
    await waitFor(
      async () => {
        row = await loadRun(sql, 'refresh-rs', run.partition);
        return row?.status === 'succeeded' || row?.status === 'failed';
      },
      40_000,
      () => `refresh-rs ${run.partition} to end; row: ${JSON.stringify(row && { status: row.status, attempts: row.attempts, error: row.error })}`,
    ).catch(() => undefined);
    expect(row!.status).toBe('succeeded');
    const stuck = await sql`select backfill_id from enrichment.backfills where status = 'queued' and job_id is null`;
    expect(stuck).toHaveLength(0);
  });

  it('enrichment-daily: the retry leaves no request queued for ever with no job to run it', async () => {
    runtime = await createTestRuntime('rerun-daily-orphan', [enrichmentDaily, enrichmentBackfill]);
    startFlakyWorkers(runtime);
    const sql = runtime.db.sql;
    await sql`delete from market.sector_mapping`;
    await sql`insert into market.sector_mapping (symbol, sector_name, sector_etf, asset_class) values ('AAPL', 'Information Technology', null, 'stock')`;
    // Last bar a few days back, so the request is small.
    await sql`insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source)
              values ('AAPL', '1d', '2026-11-16T05:00:00Z', 1, 1, 1, 1, 1, 'test')`;
    const run = await enqueueRun(runtime.queues, enrichmentDaily, { date: '2026-11-20' });
    await waitFor(async () => (await loadRun(sql, 'enrichment-daily', run.partition))?.status === 'succeeded', 30_000, () => 'enrichment-daily to succeed');
    await waitFor(
      async () => (await sql`select 1 from enrichment.backfills where status in ('queued', 'in_progress')`).length === 0,
      30_000,
      () => 'every backfill request to end',
    ).catch(() => undefined);
    const requests = await sql<{ status: string; job_id: string | null }[]>`select status, job_id from enrichment.backfills where requested_by = 'enrichment-daily' order by created_at`;
    // One run of the partition: one request, and it ended.
    expect(requests.filter((r) => r.status === 'queued')).toEqual([]);
    expect(requests).toHaveLength(1);
  });
});

describe('bullpen run of a partition whose BullMQ job failed', () => {
  it('runs it again once the cause is fixed, instead of handing back the stored failed job and its old error', async () => {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-rerun-'));
    cleanups.push(() => fs.rmSync(scratch, { recursive: true, force: true }));
    // REPORTS_DIR is a file: every attempt fails (EEXIST), as a full or unmounted disk would.
    const reportsDir = path.join(scratch, 'reports');
    fs.writeFileSync(reportsDir, 'not a directory');
    runtime = await createTestRuntime('rerun-cli-failed', [nightlyReport], { REPORTS_DIR: reportsDir });
    runtime.startWorkers();
    const sql = runtime.db.sql;
    const first = await enqueueRun(runtime.queues, nightlyReport, { date: '2026-11-19' });
    await waitFor(async () => (await loadRun(sql, 'nightly-report', first.partition))?.status === 'failed', 30_000, () => 'first run to fail');

    // The operator fixes the disk and runs the partition again from the CLI.
    fs.rmSync(reportsDir);
    const cli = spawnNode('bin/bullpen.js', ['run', 'nightly-report', '--data', '{"date":"2026-11-19"}', '--wait'], runtime.env);
    const { code } = await cli.exited;
    const output = cli.output();
    expect(code, output).toBe(0);
    expect(fs.existsSync(path.join(reportsDir, 'daily_20261119.json'))).toBe(true);
    expect(await loadRun(sql, 'nightly-report', '2026-11-19')).toMatchObject({ status: 'succeeded' });
  });
});

describe('a forced re-run of a trade-etl partition after a fill was amended', () => {
  it('gets its rollup requests rebuilt, as the first run of that partition did', async () => {
    runtime = await createTestRuntime('rerun-etl-force', [tradeEtl, buildRollups], { ROLLUP_DEBOUNCE_MS: '0' });
    runtime.startWorkers();
    const sql = runtime.db.sql;
    await seedReference(sql);
    await insertExecutions(sql, [
      { execution_id: 1, side: 'BUY', price: '10', executed_at: '2026-03-02T15:00:00Z' },
      { execution_id: 2, side: 'SELL', price: '12', order_id: 200, executed_at: '2026-03-02T16:00:00Z' },
    ]);
    const tick = new Date('2026-11-20T15:00:00Z');
    const realized = async () =>
      (await sql<{ r: string | null }[]>`select sum(realized_pnl)::text as r from warehouse.fact_performance_daily where trade_date = '2026-03-02'`)[0]?.r ?? null;
    const pending = async () => (await sql<{ n: number }[]>`select count(*)::int as n from ops.rollup_requests`)[0]!.n;

    const first = await enqueueRun(runtime.queues, tradeEtl, {}, { scheduledFor: tick });
    await waitFor(async () => (await loadRun(sql, 'trade-etl', first.partition))?.status === 'succeeded', 20_000, () => 'first trade-etl run');
    await waitFor(async () => (await pending()) === 0 && Number(await realized()) === 200, 20_000, () => 'first rollups');

    // The fill is amended in the source (price 12 → 15); the operator re-runs the partition with --force.
    await insertExecutions(sql, [{ execution_id: 2, side: 'SELL', price: '15', order_id: 200, executed_at: '2026-03-02T16:00:00Z', ingested_at: '2026-11-20T14:00:00Z' }]);
    const forced = await enqueueRun(runtime.queues, tradeEtl, {}, { scheduledFor: tick, force: true });
    expect(forced.partition).toBe(first.partition);
    await waitFor(async () => (await loadRun(sql, 'trade-etl', forced.partition))?.run_count === 2 && (await loadRun(sql, 'trade-etl', forced.partition))?.status === 'succeeded', 20_000, () => 'forced trade-etl run');
    expect((await loadRun(sql, 'trade-etl', forced.partition))?.summary).toMatchObject({ amended: 1 });
    await waitFor(async () => (await pending()) === 0, 15_000, () => 'the forced run\'s rollup requests to be rebuilt').catch(() => undefined);
    expect(await pending()).toBe(0);
    expect(Number(await realized())).toBe(500);
  });
});
