import { QueueEvents } from 'bullmq';
import { afterEach, expect, it } from 'vitest';
import { maintainPartitions, monthsFrom } from '../../jobs/maintain-partitions.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let runtime: TestRuntime | undefined;
let events: QueueEvents | undefined;

afterEach(async () => {
  await events?.close();
  await runtime?.close();
});

it('lists the current month and the months ahead, across a year end', () => {
  expect(monthsFrom('2026-11-21', 3)).toEqual(['2026-11-01', '2026-12-01', '2027-01-01', '2027-02-01']);
});

it('creates the coming months of fact_trades and dim_date through next year, and a rerun changes nothing', async () => {
  runtime = await createTestRuntime('partitions', [maintainPartitions]);
  events = new QueueEvents('maintenance', { connection: runtime.redis.duplicate(), prefix: runtime.prefix });
  await events.waitUntilReady();
  runtime.startWorkers();
  const tick = new Date('2026-11-21T00:15:00Z');
  const first = await enqueueRun(runtime.queues, maintainPartitions, {}, { scheduledFor: tick, now: tick });
  expect(await first.job.waitUntilFinished(events)).toMatchObject({
    partitions_created: ['2026-11-01', '2026-12-01', '2027-01-01', '2027-02-01'],
    dim_dates_added: 730,
  });
  const again = await enqueueRun(runtime.queues, maintainPartitions, {}, { scheduledFor: tick, now: new Date(), force: true });
  expect(await again.job.waitUntilFinished(events)).toMatchObject({ partitions_created: [], dim_dates_added: 0 });
  const parts = await runtime.db.sql`
    select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'warehouse.fact_trades'::regclass order by 1`;
  expect(parts.map((p) => p.relname)).toEqual(['fact_trades_2026_11', 'fact_trades_2026_12', 'fact_trades_2027_01', 'fact_trades_2027_02']);
});
