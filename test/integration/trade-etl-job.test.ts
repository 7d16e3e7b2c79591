/**
 * trade-etl as a job (worker, metrics, the rollup request it enqueues) and as a process
 * that dies mid-load.
 */
import { QueueEvents } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { generateDemoHistory } from '../../src/demo/synthetic.ts';
import { seedDemoHistory } from '../../src/demo/seed.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { loadTrades } from '../../src/trade-loader.ts';
import { startWorkers } from '../../src/worker.ts';
import { buildRollups } from '../../jobs/build-rollups.ts';
import { tradeEtl } from '../../jobs/trade-etl.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { insertExecutions, seedReference, snapshotWarehouse } from '../helpers/oltp.ts';
import { spawnNode, waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let runtime: TestRuntime | undefined;
let events: QueueEvents | undefined;
const databases: TestDatabase[] = [];

afterEach(async () => {
  await events?.close();
  events = undefined;
  await runtime?.close();
  runtime = undefined;
  for (const db of databases.splice(0)) await db.drop();
});

describe('the trade-etl job', () => {
  it('loads, counts rows in metrics, and asks for one rollup rebuild however many runs ask', async () => {
    runtime = await createTestRuntime('etl-job', [tradeEtl, buildRollups]);
    const { db, queues } = runtime;
    await seedReference(db.sql);
    await insertExecutions(db.sql, [{ execution_id: 1 }, { execution_id: 2, quantity: '0' }]);
    // Only the etl queue is worked, so the rollup requests stay visible in their queue.
    events = new QueueEvents('etl', { connection: runtime.redis.duplicate(), prefix: runtime.prefix });
    await events.waitUntilReady();
    const [worker] = startWorkers(runtime.workerRuntime, { connection: runtime.redis, queues: ['etl'] });
    try {
      const first = await enqueueRun(queues, tradeEtl, {}, { now: new Date('2026-11-20T15:00:00Z') });
      const summary = (await first.job.waitUntilFinished(events)) as Record<string, unknown>;
      expect(summary).toMatchObject({ extracted: 2, loaded: 1, rejected: 1, rejects_by_reason: { quantity_not_positive: 1 }, rollup_partitions: 1 });
      expect(summary.rollups_job).toBe('build-rollups@pending@trade-etl@2026-11-20T150000Z');
      const metrics = await runtime.metrics.registry.getSingleMetricAsString('bullpen_etl_rows_total');
      expect(metrics).toContain('bullpen_etl_rows_total{stage="rejected"} 1');
      expect(metrics).toContain('bullpen_etl_rows_total{stage="loaded"} 1');

      // Ten quick runs, each with a new fill: still one rebuild, waiting out ROLLUP_DEBOUNCE_MS.
      for (let i = 0; i < 10; i++) {
        await insertExecutions(db.sql, [{ execution_id: 100 + i, executed_at: `2026-03-0${(i % 5) + 2}T15:00:00Z` }]);
        const run = await enqueueRun(queues, tradeEtl, {}, { now: new Date(Date.parse('2026-11-20T15:05:00Z') + i * 300_000) });
        await run.job.waitUntilFinished(events);
      }
      const rollups = queues.get('rollups');
      const counts = await rollups?.getJobCounts('waiting', 'active', 'delayed', 'completed');
      expect(counts).toMatchObject({ waiting: 0, active: 0, delayed: 1 });
      const requests = await db.sql`select count(*)::int as n from ops.rollup_requests`;
      // 2026-03-02 … 2026-03-06 for account 1
      expect(requests[0]?.n).toBe(5);
    } finally {
      await worker?.close();
    }
  });
});

describe('a crash mid-load', () => {
  it('SIGKILL between and inside batches, then a restart, gives the warehouse of a clean run', async () => {
    const now = new Date('2026-03-20T14:00:00Z');
    const history = generateDemoHistory({ days: 8, now });
    const crashed = await createTestDatabase();
    const clean = await createTestDatabase();
    databases.push(crashed, clean);
    await seedDemoHistory(crashed.sql, history);
    await seedDemoHistory(clean.sql, history);

    const env = { DATABASE_URL: crashed.url, BATCH_SIZE: '300', NOW: now.toISOString() };
    const child = spawnNode('test/fixtures/load-trades.ts', [], env);
    await waitFor(() => child.output().includes('batch 2'), 30_000, () => `the loader never committed two batches:\n${child.output()}`);
    child.kill('SIGKILL');
    const exit = await child.exited;
    expect(exit.signal).toBe('SIGKILL');
    expect(child.output()).not.toContain('done');

    const restarted = spawnNode('test/fixtures/load-trades.ts', [], env);
    const finished = await restarted.exited;
    expect(finished.code, restarted.output()).toBe(0);

    await loadTrades({ db: clean.sql, sourceDb: clean.sql, tz: 'America/New_York', runPartition: 'clean', now: () => now, batchSize: 300 });
    const [a, b] = await Promise.all([snapshotWarehouse(crashed.sql), snapshotWarehouse(clean.sql)]);
    expect((a.facts as unknown[]).length).toBeGreaterThan(2000);
    expect(a).toEqual(b);
  });
});
