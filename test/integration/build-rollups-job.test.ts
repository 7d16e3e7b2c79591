/**
 * A restatement asked for again runs again: after a starting capital changes, the README's
 * `bullpen run build-rollups --data '{"full":true}'` restates the curve at the new capital,
 * whether or not Redis still keeps the earlier full run's job (each request is its own partition,
 * `full@<when asked>`).
 */
import { QueueEvents } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { buildRollups } from '../../jobs/build-rollups.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { loadTrades } from '../../src/trade-loader.ts';
import { insertExecutions, seedReference } from '../helpers/oltp.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let runtime: TestRuntime | undefined;
let queueEvents: QueueEvents | undefined;
afterEach(async () => {
  await queueEvents?.close();
  queueEvents = undefined;
  await runtime?.close();
  runtime = undefined;
});

/** A runtime with a worker on the rollups queue and one round trip (a buy, a sell) loaded. */
async function start(prefix: string): Promise<{ sql: TestRuntime['db']['sql']; events: QueueEvents; queues: TestRuntime['queues'] }> {
  runtime = await createTestRuntime(prefix, [buildRollups]);
  const sql = runtime.db.sql;
  await seedReference(sql);
  await insertExecutions(sql, [
    { execution_id: 1, executed_at: '2026-03-02T15:00:00Z', side: 'BUY', quantity: '100', price: '10' },
    { execution_id: 2, executed_at: '2026-03-03T15:00:00Z', side: 'SELL', quantity: '100', price: '11' },
  ]);
  await loadTrades({ db: sql, sourceDb: sql, tz: runtime.config.exchangeTz, runPartition: 'restate' });
  queueEvents = new QueueEvents('rollups', { connection: runtime.redis.duplicate(), prefix: runtime.prefix });
  await queueEvents.waitUntilReady();
  runtime.startWorkers();
  return { sql, events: queueEvents, queues: runtime.queues };
}

describe('build-rollups restatements', () => {
  it('a second {"full": true} run, after a starting capital changed, restates the curve at the new capital', async () => {
    const { sql, events, queues } = await start('rollups-full');

    const first = await enqueueRun(queues, buildRollups, { full: true }, { now: new Date('2026-03-04T12:00:00Z') });
    await first.job.waitUntilFinished(events);
    const [before] = await sql`select equity::float8 from warehouse.equity_curve where account_id = 1 and date = '2026-03-03'`;
    expect(before?.equity).toBeCloseTo(100000 + 100 - 2.2, 9);

    // README "Starting capital": set it per account, then run a full rebuild.
    await sql`insert into warehouse.account_capital (account_id, starting_capital) values (1, 50000)`;
    const second = await enqueueRun(queues, buildRollups, { full: true }, { now: new Date('2026-03-05T12:00:00Z') });
    const result = await second.job.waitUntilFinished(events);
    const [after] = await sql`select equity::float8 from warehouse.equity_curve where account_id = 1 and date = '2026-03-03'`;
    expect({ created: second.created, equity: after?.equity }).toEqual({ created: true, equity: 50000 + 100 - 2.2 });
    expect(result).not.toHaveProperty('skipped');
  });

  it('once Redis has let the first full run go, a second {"full": true} run is not refused as "already done"', async () => {
    const { sql, events, queues } = await start('rollups-full2');

    const first = await enqueueRun(queues, buildRollups, { full: true }, { now: new Date('2026-03-04T12:00:00Z') });
    await first.job.waitUntilFinished(events);
    // removeOnComplete (7 days or 1,000 jobs) drops the finished job from Redis.
    await first.job.remove();

    await sql`insert into warehouse.account_capital (account_id, starting_capital) values (1, 50000)`;
    const second = await enqueueRun(queues, buildRollups, { full: true }, { now: new Date('2026-03-20T12:00:00Z') });
    expect(second.created).toBe(true);
    const result = await second.job.waitUntilFinished(events);
    const [after] = await sql`select equity::float8 from warehouse.equity_curve where account_id = 1 and date = '2026-03-03'`;
    expect({ result, equity: after?.equity }).toEqual({ result: expect.not.objectContaining({ skipped: expect.anything() }), equity: 50000 + 100 - 2.2 });
  });
});
