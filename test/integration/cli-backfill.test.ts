/**
 * `bullpen backfill` as a user runs it: a request watched with --wait on a non-terminal (plain
 * progress lines, the report, exit 0) with the workers it starts itself, bad input refused
 * before anything is queued, and `status` with and without an id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { createBackfill, finishBackfill, planBackfill } from '../../src/enrichment/backfills.ts';
import { spawnNode } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let rt: TestRuntime;

beforeAll(async () => {
  rt = await createTestRuntime('clibackfill', JOBS);
});

afterAll(async () => {
  await rt?.close();
});

async function bullpen(args: string[], env: Record<string, string> = {}) {
  const child = spawnNode('bin/bullpen.js', args, { ...rt.env, ...env });
  const { code } = await child.exited;
  return { code, output: child.output() };
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
let backfillId = '';

describe('bullpen backfill', () => {
  it('--wait with no worker running runs the backfill here, prints progress lines and the report, and exits 0', async () => {
    const { code, output } = await bullpen(['backfill', '--symbols', 'aapl,MSFT', '--from', '2024-02-01', '--to', '2024-04-30', '--timeframes', '1d,1h', '--wait']);
    expect(output).toMatch(new RegExp(`queued backfill (${UUID.source}): AAPL,MSFT \\(2 stock\\) × 1d,1h, 2024-02-01\\.\\.2024-04-30 from synthetic: 4 chunks, about [\\d,]+ bars`));
    backfillId = new RegExp(`queued backfill (${UUID.source})`).exec(output)?.[1] ?? '';
    expect(output).toContain('no worker is running for queue enrichment: running the backfill in this process');
    expect(output).toMatch(/^chunks \d\/4 \(\d+(\.\d)?%\), [\d,]+ bars/m);
    expect(output).toMatch(/^chunks 4\/4 \(100%\), [\d,]+ bars, [\d,]+ bars\/s$/m);
    expect(output).toContain(`backfill ${backfillId}: completed`);
    expect(output).toMatch(/^ {2}progress {3}4\/4 chunks \(100%\), 0 failed, 0 already done$/m);
    expect(output).toMatch(/^ {2}AAPL\s+1h\s+completed\s+1\/1\s+[\d,]+\s+2024-04-30\s+0$/m);
    expect(code).toBe(0);
    const [row] = await rt.db.sql<{ status: string; requested_by: string }[]>`select status, requested_by from enrichment.backfills where backfill_id = ${backfillId}`;
    expect(row).toEqual({ status: 'completed', requested_by: 'cli' });
  });

  it('refuses bad input with a message naming it, before queueing anything', async () => {
    const timeframes = await bullpen(['backfill', '--symbols', 'AAPL', '--from', '2024-01-01', '--timeframes', '1d,2h,3d']);
    expect(timeframes.code).toBe(1);
    expect(timeframes.output).toContain("bullpen: Invalid timeframes: ['2h', '3d']");
    const dates = await bullpen(['backfill', '--symbols', 'AAPL', '--from', '2024-03-05', '--to', '2024-03-01']);
    expect(dates.code).toBe(1);
    expect(dates.output).toContain('bullpen: from: 2024-03-05 is after to 2024-03-01');
    const symbols = await bullpen(['backfill', '--from', '2024-01-01']);
    expect(symbols.code).toBe(1);
    expect(symbols.output).toContain('--symbols: required');
    // A user who emptied the seeded universe.
    await rt.db.sql`delete from market.sector_mapping`;
    const all = await bullpen(['backfill', '--all', '--from', '2024-01-01']);
    expect(all.code).toBe(1);
    expect(all.output).toContain('--all: market.sector_mapping is empty');
    const [{ n }] = (await rt.db.sql`select count(*)::int as n from enrichment.backfills`) as unknown as [{ n: number }];
    expect(n).toBe(1);
  });

  it('status <id> prints the report; status lists recent backfills; cancel of a finished one is refused', async () => {
    const one = await bullpen(['backfill', 'status', backfillId]);
    expect(one.code).toBe(0);
    expect(one.output).toContain(`backfill ${backfillId}: completed`);
    expect(one.output).toMatch(/^ {2}request {4}AAPL, MSFT × 1d, 1h, 2024-02-01\.\.2024-04-30, stock, source synthetic, reprocess missing, by cli$/m);
    expect(one.output).toMatch(/^ {2}last successful date {2}2024-04-30$/m);
    expect(one.output).toMatch(/^ {2}SYMBOL\s+TF\s+STATUS\s+CHUNKS\s+BARS\s+THROUGH\s+RETRIES$/m);

    const json = await bullpen(['backfill', 'status', backfillId, '--json']);
    expect(JSON.parse(json.output)).toMatchObject({ backfill_id: backfillId, status: 'completed', chunks_total: 4, chunks_done: 4 });

    const list = await bullpen(['backfill', 'status']);
    expect(list.code).toBe(0);
    expect(list.output).toMatch(/^ID\s+STATUS\s+SYMBOLS\s+TIMEFRAMES\s+FROM\s+TO\s+PROGRESS\s+BARS\s+CREATED$/m);
    expect(list.output).toMatch(new RegExp(`^${backfillId}\\s+completed\\s+AAPL,MSFT\\s+1d,1h\\s+2024-02-01\\s+2024-04-30\\s+4/4 \\(100%\\)`, 'm'));

    const cancel = await bullpen(['backfill', 'cancel', backfillId]);
    expect(cancel.code).toBe(1);
    expect(cancel.output).toContain('only a queued or running backfill can be cancelled');
    const unknown = await bullpen(['backfill', 'status', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.output).toContain('id: must be a backfill id (a UUID)');
  });

  it('cancel stops a queued backfill; resume <id> --wait runs the rest here and exits 0', async () => {
    // Recorded but never queued, as if its workers were gone: it stays queued until cancelled.
    const plan = planBackfill({ symbols: 'IBM', timeframes: ['1d'], from: '2024-01-02', to: '2024-02-28', requested_by: 'test' }, { defaultSource: 'synthetic', maxBars: 1e6, now: Date.now() });
    const { backfillId: id } = await createBackfill({ db: rt.db.sql, enqueue: async () => ({ jobId: 'never-queued' }) }, plan);
    const cancel = await bullpen(['backfill', 'cancel', id]);
    expect(cancel.code).toBe(0);
    expect(cancel.output).toContain(`backfill ${id}: cancelling`);
    // What the flow's parent does once every series has stopped.
    await finishBackfill(rt.db.sql, id);

    const resume = await bullpen(['backfill', 'resume', id, '--wait']);
    expect(resume.output).toContain(`resumed backfill ${id}: 1 series queued again from their checkpoints`);
    expect(resume.output).toContain('no worker is running for queue enrichment: running the backfill in this process');
    expect(resume.output).toContain(`backfill ${id}: completed`);
    expect(resume.output).toMatch(/^ {2}job {8}enrichment-backfill@[0-9a-f-]+@force-\d+, resumes 1$/m);
    expect(resume.code).toBe(0);
  });

  it('without --asset-class, a symbol bullpen tracks as crypto is planned as crypto; an unknown one as a stock; an explicit one wins, with a warning', async () => {
    // Crypto as the universe has it, as it was enriched, and as the trading system's instrument says.
    await rt.db.sql`insert into market.sector_mapping (symbol, sector_name, asset_class) values ('BTCUSD', 'Crypto', 'crypto')`;
    await rt.db.sql`insert into enrichment.status (symbol, asset_class, status) values ('ETHUSD', 'crypto', 'healthy')`;
    await rt.db.sql`
      insert into warehouse.dim_instrument (instrument_id, symbol, instrument_type, effective_from, is_current)
      values (9001, 'SOLUSD', 'crypto_spot', '-infinity', true)`;
    const seriesOf = (id: string) =>
      rt.db.sql<{ symbol: string; asset_class: string }[]>`select symbol, asset_class from enrichment.backfill_state where backfill_job_id = ${id} order by symbol`;

    const implicit = await bullpen(['backfill', '--symbols', 'BTCUSD,ETHUSD,SOLUSD,NEWCO', '--from', '2024-01-01', '--to', '2024-01-31']);
    expect(implicit.code).toBe(0);
    expect(implicit.output).toMatch(/queued backfill [0-9a-f-]+: BTCUSD,ETHUSD,SOLUSD,NEWCO \(4 crypto\/stock\)/);
    expect(implicit.output).not.toContain('warning');
    const implicitId = new RegExp(`queued backfill (${UUID.source})`).exec(implicit.output)?.[1] ?? '';
    expect(await seriesOf(implicitId)).toEqual([
      { symbol: 'BTCUSD', asset_class: 'crypto' },
      { symbol: 'ETHUSD', asset_class: 'crypto' },
      { symbol: 'NEWCO', asset_class: 'stock' },
      { symbol: 'SOLUSD', asset_class: 'crypto' },
    ]);

    const one = await bullpen(['backfill', '--symbols', 'BTCUSD', '--from', '2024-01-01', '--to', '2024-01-31']);
    const oneId = new RegExp(`queued backfill (${UUID.source})`).exec(one.output)?.[1] ?? '';
    expect(await rt.db.sql`select asset_class from enrichment.backfills where backfill_id = ${oneId}`).toEqual([{ asset_class: 'crypto' }]);

    const explicit = await bullpen(['backfill', '--symbols', 'BTCUSD,NEWCO', '--asset-class', 'stock', '--from', '2024-01-01', '--to', '2024-01-31']);
    expect(explicit.code).toBe(0);
    expect(explicit.output).toContain('bullpen: warning: asked for as stock, but bullpen tracks BTCUSD as crypto (market.sector_mapping)');
    const explicitId = new RegExp(`queued backfill (${UUID.source})`).exec(explicit.output)?.[1] ?? '';
    expect(await seriesOf(explicitId)).toEqual([
      { symbol: 'BTCUSD', asset_class: 'stock' },
      { symbol: 'NEWCO', asset_class: 'stock' },
    ]);
  });
});
