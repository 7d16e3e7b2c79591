import { QueueEvents } from 'bullmq';
import { afterEach, expect, it } from 'vitest';
import { maintainPartitions, monthsFrom } from '../../jobs/maintain-partitions.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { waitFor } from '../helpers/processes.ts';
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

it('creates months while a trade ETL batch reads fact_trades, and that batch then creates its own month: no deadlock', async () => {
  // One attempt: a deadlock (40P01) would fail the run outright instead of being retried away.
  runtime = await createTestRuntime('partitions-etl', [maintainPartitions], { JOB_ATTEMPTS: '1' });
  events = new QueueEvents('maintenance', { connection: runtime.redis.duplicate(), prefix: runtime.prefix });
  await events.waitUntilReady();
  const sql = runtime.db.sql;
  // The ETL's batch as far as locks go: it has read fact_trades, and later meets a month that has no partition.
  const etl = await sql.reserve();
  try {
    await etl`begin`;
    await etl`select count(*) from warehouse.fact_trades`;
    runtime.startWorkers();
    const tick = new Date('2026-11-21T00:15:00Z');
    const run = await enqueueRun(runtime.queues, maintainPartitions, {}, { scheduledFor: tick, now: tick });
    let outcome: 'succeeded' | Error | undefined;
    const finished = run.job.waitUntilFinished(events).then(
      () => (outcome = 'succeeded'),
      (error: unknown) => (outcome = error instanceof Error ? error : new Error(String(error))),
    );
    // Until the run is done, or stuck behind the batch's lock on fact_trades (as CREATE TABLE … PARTITION OF was).
    await waitFor(
      async () => {
        if (outcome !== undefined) return true;
        const [row] = await sql<{ n: number }[]>`
          select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation
          where not l.granted and c.relname = 'fact_trades'`;
        return (row?.n ?? 0) > 0;
      },
      30_000,
      () => 'maintain-partitions to finish or wait on fact_trades',
    );
    const [created] = await etl<{ created: boolean }[]>`select warehouse.ensure_fact_trades_partition('2031-05-17') as created`;
    expect(created?.created).toBe(true);
    await etl`commit`;
    await finished;
    expect(outcome).toBe('succeeded');
  } finally {
    await etl`rollback`.catch(() => undefined);
    etl.release();
  }
  const parts = await sql<{ relname: string }[]>`
    select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'warehouse.fact_trades'::regclass order by 1`;
  expect(parts.map((p) => p.relname)).toEqual(['fact_trades_2026_11', 'fact_trades_2026_12', 'fact_trades_2027_01', 'fact_trades_2027_02', 'fact_trades_2031_05']);
  // An attached month is a partition like any other: its rows land there, with the parent's keys and indexes.
  const indexes = await sql<{ n: number }[]>`select count(*)::int as n from pg_indexes where schemaname = 'warehouse' and tablename = 'fact_trades_2031_05'`;
  expect(indexes[0]?.n).toBe(5);
});
