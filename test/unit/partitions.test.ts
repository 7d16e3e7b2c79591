import { describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import type { RunStatus } from '../../src/runs.ts';
import { resolveSchedules } from '../../src/scheduler.ts';
import {
  DEFAULT_GRID_WEEKDAYS,
  MAX_GRID_WEEKDAYS,
  buildPartitionGrid,
  gridJobsOf,
  listWeekdays,
  resolveGridRange,
  type GridRun,
  type PartitionGridRow,
} from '../../src/status/partitions.ts';

const TZ = 'America/New_York';
// Friday after Thanksgiving, 15:00 in New York: before refresh-rs (18:00 ET), build-rollups
// (23:30 ET) and nightly-report (23:50 UTC) tick for today.
const NOW = new Date('2025-11-28T20:00:00Z');
const DATES = listWeekdays('2025-11-17', '2025-11-28');
const SCHEDULES = resolveSchedules(JOBS, { scheduleOverrides: {} });

function run(job: string, partition: string, status: RunStatus, extra: Partial<GridRun> = {}): GridRun {
  return {
    job,
    partition,
    status,
    job_id: `${job}@${partition}`,
    attempts: 1,
    error: status === 'failed' || status === 'retrying' ? `${job} broke` : null,
    scheduled_for: null,
    finished_at: status === 'running' ? null : new Date(`${partition.slice(0, 10)}T23:40:00Z`),
    summary: null,
    ...extra,
  };
}

/** A trade-etl run of the tick `at` (UTC), as the worker records it. */
function etl(at: string, status: RunStatus, summary: GridRun['summary'] = { dates_touched: [], stopped_early: false }): GridRun {
  const tick = new Date(at);
  const partition = tick.toISOString().replace(/[-:]/g, '').replace(/^(\d{4})(\d{2})(\d{2})T(\d{6})\.\d{3}Z$/, '$1-$2-$3T$4Z');
  return run('trade-etl', partition, status, {
    scheduled_for: tick,
    finished_at: status === 'running' ? null : new Date(tick.getTime() + 30_000),
    summary: status === 'succeeded' ? summary : null,
  });
}

const RUNS: GridRun[] = [
  // refresh-rs: one of each state; nothing on Thanksgiving; today not yet due.
  run('refresh-rs', '2025-11-17', 'succeeded'),
  run('refresh-rs', '2025-11-18', 'failed', { attempts: 3 }),
  run('refresh-rs', '2025-11-19', 'running'),
  // 2025-11-20: no row at all
  run('refresh-rs', '2025-11-21', 'skipped'),
  run('refresh-rs', '2025-11-24', 'retrying', { attempts: 2 }),
  run('refresh-rs', '2025-11-25', 'buffered'),
  run('refresh-rs', '2025-11-26', 'succeeded'),

  // nightly-report runs every day: Thanksgiving without a report is missing.
  ...['2025-11-17', '2025-11-18', '2025-11-19', '2025-11-21', '2025-11-24', '2025-11-25', '2025-11-26'].map((d) => run('nightly-report', d, 'succeeded')),
  run('nightly-report', '2025-11-20', 'failed'),

  // enrichment-daily: date D is due at 01:30 New York on D+1.
  ...['2025-11-17', '2025-11-18', '2025-11-19', '2025-11-20', '2025-11-21', '2025-11-24', '2025-11-25', '2025-11-26'].map((d) => run('enrichment-daily', d, 'succeeded')),

  // build-rollups: a failed nightly healed by a later range run, a date only a range run covered,
  // one only a pending run covered, a failure nothing covered, and Thanksgiving's nightly run.
  run('build-rollups', '2025-11-17', 'succeeded', { summary: { scope: 'range', from: '2025-11-17', to: '2025-11-17' } }),
  run('build-rollups', '2025-11-18', 'failed', { finished_at: new Date('2025-11-19T04:31:00Z') }),
  run('build-rollups', '2025-11-18..2025-11-19', 'succeeded', {
    finished_at: new Date('2025-11-20T12:00:00Z'),
    summary: { scope: 'range', from: '2025-11-18', to: '2025-11-19', as_of: '2025-11-20' },
  }),
  run('build-rollups', '2025-11-20', 'failed', { finished_at: new Date('2025-11-21T04:31:00Z') }),
  run('build-rollups', 'pending@trade-etl@2025-11-21T150000Z', 'succeeded', {
    finished_at: new Date('2025-11-21T15:01:00Z'),
    summary: { scope: 'pending', from: '2025-11-21', to: '2025-11-21', as_of: '2025-11-21' },
  }),
  // 2025-11-24: nothing
  run('build-rollups', '2025-11-25', 'running'),
  run('build-rollups', '2025-11-26', 'succeeded', { summary: { scope: 'range', from: '2025-11-26', to: '2025-11-26' } }),
  run('build-rollups', '2025-11-27', 'succeeded', { summary: { scope: 'range', from: null, to: null } as never }),

  // trade-etl, by date touched.
  etl('2025-11-17T15:00:00Z', 'succeeded'), // touched nothing, but ran that day
  etl('2025-11-18T15:00:00Z', 'failed'),
  etl('2025-11-18T15:05:00Z', 'failed'),
  // the 19th and 20th: nothing scheduled; the 24th's complete run loaded the 20th's late fills
  etl('2025-11-24T15:00:00Z', 'succeeded', { dates_touched: ['2025-11-20', '2025-11-24'], stopped_early: false }),
  etl('2025-11-25T15:00:00Z', 'succeeded', { dates_touched: [], stopped_early: true }),
  etl('2025-11-25T15:05:00Z', 'failed'),
  // the 26th: nothing; Thanksgiving: ran and failed once, then succeeded
  etl('2025-11-27T15:00:00Z', 'failed'),
  etl('2025-11-27T15:05:00Z', 'succeeded', { dates_touched: [], stopped_early: true }),
  etl('2025-11-28T14:00:00Z', 'succeeded', { dates_touched: ['2025-11-28'], stopped_early: true }),
  etl('2025-11-28T19:55:00Z', 'running'),
];

function grid(runs: readonly GridRun[] = RUNS, schedules = SCHEDULES, now = NOW): PartitionGridRow[] {
  return buildPartitionGrid({ dates: DATES, now, tz: TZ, jobs: gridJobsOf(JOBS, schedules), runs });
}

function states(row: PartitionGridRow | undefined): Record<string, string> {
  return Object.fromEntries((row?.cells ?? []).map((c) => [c.date, c.state]));
}

function rowOf(rows: PartitionGridRow[], job: string): PartitionGridRow {
  const row = rows.find((r) => r.job === job);
  if (!row) throw new Error(`no row ${job}`);
  return row;
}

describe('the partition grid', () => {
  const rows = grid();

  it('has the five partitioned jobs in order, with labels, queues and schedules', () => {
    expect(rows.map((r) => [r.job, r.label, r.queue, r.calendar])).toEqual([
      ['trade-etl', 'ETL', 'etl', 'nyse'],
      ['build-rollups', 'Rollups', 'rollups', 'nyse'],
      ['refresh-rs', 'RS', 'rs', 'nyse'],
      ['enrichment-daily', 'Enrichment', 'enrichment', 'all'],
      ['nightly-report', 'Report', 'reports', 'all'],
    ]);
    expect(rowOf(rows, 'refresh-rs').schedule).toEqual({ cron: '0 18 * * 1-5', tz: TZ });
    for (const row of rows) expect(row.cells.map((c) => c.date)).toEqual(DATES);
  });

  it('refresh-rs: done, failed, running, missing, Thanksgiving not expected, today not yet due', () => {
    expect(states(rowOf(rows, 'refresh-rs'))).toEqual({
      '2025-11-17': 'done',
      '2025-11-18': 'failed',
      '2025-11-19': 'running',
      '2025-11-20': 'missing',
      '2025-11-21': 'done', // skipped counts as done
      '2025-11-24': 'running', // retrying
      '2025-11-25': 'running', // buffered
      '2025-11-26': 'done',
      '2025-11-27': 'not_expected',
      '2025-11-28': 'not_expected',
    });
    const cells = rowOf(rows, 'refresh-rs').cells;
    expect(cells[1]).toEqual({
      date: '2025-11-18',
      state: 'failed',
      partition: '2025-11-18',
      job_id: 'refresh-rs@2025-11-18',
      error: 'refresh-rs broke',
      finished_at: '2025-11-18T23:40:00.000Z',
      attempts: 3,
      can_rerun: true,
      note: null,
    });
    expect(cells[3]).toMatchObject({ state: 'missing', partition: '2025-11-20', job_id: null, error: null, finished_at: null, attempts: 0, can_rerun: true });
    expect(cells[8]).toMatchObject({ state: 'not_expected', can_rerun: false, note: 'NYSE closed: Thanksgiving Day' });
    // 18:00 New York on the 28th is 23:00 UTC.
    expect(cells[9]).toMatchObject({ state: 'not_expected', can_rerun: false, note: 'not yet: due 2025-11-28T23:00:00.000Z' });
    expect(cells.filter((c) => c.can_rerun).map((c) => c.date)).toEqual(['2025-11-18', '2025-11-20']);
  });

  it('nightly-report runs every day: Thanksgiving is expected (missing), today waits for 23:50 UTC', () => {
    const row = rowOf(rows, 'nightly-report');
    expect(states(row)).toMatchObject({ '2025-11-20': 'failed', '2025-11-26': 'done', '2025-11-27': 'missing', '2025-11-28': 'not_expected' });
    expect(row.cells[8]?.can_rerun).toBe(true);
    expect(row.cells[9]?.note).toBe('not yet: due 2025-11-28T23:50:00.000Z');
  });

  it("enrichment-daily: yesterday's partition is due at 01:30 today, today's tomorrow", () => {
    expect(states(rowOf(rows, 'enrichment-daily'))).toMatchObject({ '2025-11-26': 'done', '2025-11-27': 'missing', '2025-11-28': 'not_expected' });
    // Before 01:30 New York the 27th is not due yet either.
    const early = grid(RUNS, SCHEDULES, new Date('2025-11-28T06:00:00Z'));
    expect(rowOf(early, 'enrichment-daily').cells[8]).toMatchObject({ state: 'not_expected', note: 'not yet: due 2025-11-28T06:30:00.000Z' });
  });

  it('build-rollups: done when a succeeded range or pending run covers the date', () => {
    const row = rowOf(rows, 'build-rollups');
    expect(states(row)).toEqual({
      '2025-11-17': 'done',
      '2025-11-18': 'done', // the nightly failed; the range run rebuilt it afterwards
      '2025-11-19': 'done', // only the range run
      '2025-11-20': 'failed',
      '2025-11-21': 'done', // only a pending run
      '2025-11-24': 'missing',
      '2025-11-25': 'running',
      '2025-11-26': 'done',
      '2025-11-27': 'not_expected', // Thanksgiving: the nightly ran, but NYSE was closed
      '2025-11-28': 'not_expected', // 23:30 New York has not come
    });
    expect(row.cells[1]).toMatchObject({
      partition: '2025-11-18..2025-11-19',
      job_id: 'build-rollups@2025-11-18..2025-11-19',
      error: null,
      note: 'covered by build-rollups 2025-11-18..2025-11-19',
      can_rerun: false,
    });
    expect(row.cells[4]).toMatchObject({ partition: 'pending@trade-etl@2025-11-21T150000Z' });
  });

  it('a range run that finished before a failed nightly does not heal it', () => {
    const runs = [
      run('build-rollups', '2025-11-17..2025-11-21', 'succeeded', { finished_at: new Date('2025-11-19T12:00:00Z') }),
      run('build-rollups', '2025-11-20', 'failed', { finished_at: new Date('2025-11-21T04:31:00Z') }),
      run('build-rollups', 'full', 'succeeded', { finished_at: new Date('2025-11-17T12:00:00Z'), summary: { scope: 'full', as_of: '2025-11-17' } }),
    ];
    expect(states(rowOf(grid(runs), 'build-rollups'))).toMatchObject({
      '2025-11-17': 'done',
      '2025-11-19': 'done',
      '2025-11-20': 'failed',
      '2025-11-21': 'done',
      '2025-11-24': 'missing',
    });
  });

  it('trade-etl by date touched', () => {
    const row = rowOf(rows, 'trade-etl');
    expect(states(row)).toEqual({
      '2025-11-17': 'done', // a success that day, though it touched nothing
      '2025-11-18': 'done', // failed all day, then the complete run of the 24th loaded what it left
      '2025-11-19': 'done', // likewise, without a run that day
      '2025-11-20': 'done', // touched by the run of the 24th
      '2025-11-21': 'done',
      '2025-11-24': 'done',
      '2025-11-25': 'done', // a success that day (stopped early), then a failure
      '2025-11-26': 'missing', // nothing since the last complete run
      '2025-11-27': 'not_expected', // Thanksgiving
      '2025-11-28': 'done', // a run touched it; another is running
    });
    expect(row.cells[3]).toMatchObject({ partition: '2025-11-24T150000Z', job_id: 'trade-etl@2025-11-24T150000Z', note: 'touched by trade-etl 2025-11-24T150000Z' });
    expect(row.cells[1]).toMatchObject({ partition: '2025-11-24T150000Z', note: 'caught up by trade-etl 2025-11-24T150000Z (watermark)' });
    expect(row.cells[0]).toMatchObject({ partition: '2025-11-17T150000Z', note: null });
  });

  it('trade-etl: failed when the latest run of a day failed and none succeeded since; running when one runs', () => {
    const runs = [
      etl('2025-11-24T15:00:00Z', 'succeeded'),
      etl('2025-11-25T15:00:00Z', 'succeeded', { dates_touched: [], stopped_early: true }),
      etl('2025-11-26T15:00:00Z', 'failed'),
      etl('2025-11-26T15:05:00Z', 'failed'),
      etl('2025-11-27T15:00:00Z', 'failed'),
      etl('2025-11-28T14:00:00Z', 'failed'),
      etl('2025-11-28T19:55:00Z', 'running'),
    ];
    const row = rowOf(grid(runs), 'trade-etl');
    expect(states(row)).toMatchObject({
      '2025-11-21': 'done', // caught up by the 24th's complete run
      '2025-11-24': 'done',
      '2025-11-25': 'done',
      '2025-11-26': 'failed',
      '2025-11-27': 'failed', // NYSE closed, but a failure is still shown
      '2025-11-28': 'running',
    });
    expect(row.cells[7]).toMatchObject({ partition: '2025-11-26T150500Z', error: 'trade-etl broke', can_rerun: true });
    expect(row.cells[9]).toMatchObject({ partition: '2025-11-28T195500Z', can_rerun: false });
    // Without any run at all, every date up to today is missing (Thanksgiving excepted).
    expect(Object.values(states(rowOf(grid([]), 'trade-etl')))).toEqual([...Array(8).fill('missing'), 'not_expected', 'missing']);
  });

  it('a job whose schedule is off is not expected where it has no runs', () => {
    const schedules = resolveSchedules(JOBS, { scheduleOverrides: { 'refresh-rs': 'off' } });
    const row = rowOf(grid(RUNS, schedules), 'refresh-rs');
    expect(row.schedule).toBeNull();
    expect(states(row)).toMatchObject({ '2025-11-18': 'failed', '2025-11-20': 'not_expected' });
    expect(row.cells[3]?.note).toBe('not scheduled (its schedule is off)');
  });

  it('future dates are not expected', () => {
    const rows = buildPartitionGrid({ dates: ['2025-12-01'], now: NOW, tz: TZ, jobs: gridJobsOf(JOBS, SCHEDULES), runs: [] });
    for (const row of rows) expect(row.cells[0]?.state).toBe('not_expected');
  });
});

describe('the grid range', () => {
  it('defaults to the 30 most recent weekdays up to today', () => {
    const range = resolveGridRange({}, '2025-11-28');
    expect(range.dates).toHaveLength(DEFAULT_GRID_WEEKDAYS);
    expect(range).toMatchObject({ from: '2025-10-20', to: '2025-11-28' });
    expect(range.dates.at(-1)).toBe('2025-11-28');
    // On a Sunday the last column is Friday.
    expect(resolveGridRange({}, '2025-11-30')).toMatchObject({ from: '2025-10-20', to: '2025-11-30' });
    expect(resolveGridRange({ to: '2025-11-21' }, '2025-11-28').dates.at(-1)).toBe('2025-11-21');
  });

  it('lists weekdays only', () => {
    expect(resolveGridRange({ from: '2025-11-21', to: '2025-11-25' }, '2025-11-28').dates).toEqual(['2025-11-21', '2025-11-24', '2025-11-25']);
    expect(resolveGridRange({ from: '2025-11-22', to: '2025-11-23' }, '2025-11-28').dates).toEqual([]);
  });

  it('refuses from after to and more than 120 weekdays, naming the field', () => {
    expect(() => resolveGridRange({ from: '2025-11-25', to: '2025-11-24' }, '2025-11-28')).toThrow(/^from: 2025-11-25 is after to \(2025-11-24\)/);
    expect(() => resolveGridRange({ from: '2025-12-01' }, '2025-11-28')).toThrow(/^from: 2025-12-01 is after to \(2025-11-28, today\)/);
    expect(() => resolveGridRange({ from: '2025-01-01', to: '2025-11-28' }, '2025-11-28')).toThrow(new RegExp(`^from: .*more than ${MAX_GRID_WEEKDAYS} weekdays`));
    expect(resolveGridRange({ from: listWeekdays('2025-01-01', '2025-12-31')[0] as string, to: listWeekdays('2025-01-01', '2025-12-31')[MAX_GRID_WEEKDAYS - 1] as string }, '2025-12-31').dates).toHaveLength(MAX_GRID_WEEKDAYS);
  });
});
