import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { JOBS } from '../../jobs/index.ts';
import { createBatcher } from '../../src/batcher.ts';
import { BadInputError, RateLimitedError, UpstreamUnavailableError, classifyError, coerceError } from '../../src/errors.ts';
import { computeBackoffMs, createJobId } from '../../src/queues.ts';
import { computeLagSeconds, deadlineFor, resolveSchedules, selectMissed } from '../../src/scheduler.ts';
import { tickDate, tickPartition } from '../../src/cron.ts';

describe('the job catalogue', () => {
  it('lists every file in jobs/ and each file is named as its job', () => {
    const files = readdirSync(new URL('../../jobs/', import.meta.url))
      .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
      .map((f) => f.replace(/\.ts$/, ''))
      .sort();
    expect(JOBS.map((j) => j.name).sort()).toEqual(files);
  });

  it('has the contract catalogue with kebab-case names and a queue each', () => {
    expect(JOBS.map((j) => j.name)).toEqual([
      'trade-etl',
      'build-rollups',
      'refresh-rs',
      'enrichment-backfill',
      'enrichment-daily',
      'nightly-report',
      'maintain-partitions',
    ]);
    for (const job of JOBS) expect(job.name).toMatch(/^[a-z]+(-[a-z]+)*$/);
  });

  it('derives partitions from the tick a run stands for', () => {
    const byName = new Map(JOBS.map((j) => [j.name, j]));
    const partitionOf = (name: string, data: object) => {
      const job = byName.get(name)!;
      return job.partition(job.payload.parse(data) as never);
    };
    // 23:50 UTC on the 20th is the report of the 20th.
    expect(partitionOf('nightly-report', { scheduledFor: '2026-11-20T23:50:00Z' })).toBe('2026-11-20');
    // 01:30 New York on the 21st completes the 20th.
    expect(partitionOf('enrichment-daily', { scheduledFor: '2026-11-21T06:30:00Z' })).toBe('2026-11-20');
    expect(partitionOf('refresh-rs', { scheduledFor: '2026-11-20T23:00:00Z' })).toBe('2026-11-20');
    expect(partitionOf('trade-etl', { scheduledFor: '2026-11-21T06:25:00Z' })).toBe('2026-11-21T062500Z');
    expect(partitionOf('nightly-report', { date: '2026-11-19', scheduledFor: '2026-11-20T23:50:00Z' })).toBe('2026-11-19');
  });
});

describe('classifyError', () => {
  it.each([
    [new BadInputError('bad'), 'permanent'],
    [new z.ZodError([]), 'permanent'],
    [new RateLimitedError('429'), 'retryable'],
    [new UpstreamUnavailableError('503'), 'retryable'],
    [Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), 'retryable'],
    [Object.assign(new Error('pg shutting down'), { code: '57P01' }), 'retryable'],
    [Object.assign(new Error('division by zero'), { code: '22012' }), 'permanent'],
    [Object.assign(new Error('unique'), { code: '23505' }), 'permanent'],
    [Object.assign(new Error('http'), { status: 429 }), 'retryable'],
    [Object.assign(new Error('http'), { status: 502 }), 'retryable'],
    [Object.assign(new Error('http'), { status: 404 }), 'permanent'],
    [new Error('wrapped', { cause: new BadInputError('inner') }), 'permanent'],
    [new Error('something unknown'), 'retryable'],
  ])('%s → %s', (error, expected) => {
    expect(classifyError(error)).toBe(expected);
  });

  it('coerces non-errors once', () => {
    expect(coerceError('boom').message).toBe('boom');
    expect(coerceError({ a: 1 }).message).toContain('{"a":1}');
    const error = new UnrecoverableError('x');
    expect(coerceError(error)).toBe(error);
  });
});

describe('backoff', () => {
  it('doubles per attempt with jitter between 50% and 100%', () => {
    expect(computeBackoffMs(1, 1000, undefined, () => 0)).toBe(500);
    expect(computeBackoffMs(1, 1000, undefined, () => 1)).toBe(1000);
    expect(computeBackoffMs(3, 1000, undefined, () => 1)).toBe(4000);
    expect(computeBackoffMs(40, 1000, undefined, () => 1)).toBe(3_600_000);
  });

  it('honours a longer Retry-After', () => {
    expect(computeBackoffMs(1, 1000, new RateLimitedError('slow down', { retryAfterMs: 30_000 }), () => 1)).toBe(30_000);
    expect(computeBackoffMs(5, 1000, new RateLimitedError('slow down', { retryAfterMs: 10 }), () => 1)).toBe(16_000);
  });
});

describe('createJobId', () => {
  it('builds name@partition without colons', () => {
    expect(createJobId('nightly-report', '2026-11-20')).toBe('nightly-report@2026-11-20');
    expect(createJobId('x', '10:30')).toBe('x@10.30');
    expect(() => createJobId('x', '')).toThrow(/empty partition/);
  });
});

describe('createBatcher', () => {
  it('groups calls made while a flush is in flight and keeps results in order', async () => {
    const batches: number[][] = [];
    const batcher = createBatcher<number, number>(async (items) => {
      batches.push(items);
      await new Promise((r) => setTimeout(r, 5));
      return items.map((i) => i * 2);
    });
    const first = batcher(1);
    await new Promise((r) => setTimeout(r, 1));
    const rest = [2, 3, 4].map((i) => batcher(i));
    expect(await Promise.all([first, ...rest])).toEqual([2, 4, 6, 8]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
    await batcher.drain();
  });

  it('fails only the bad item of a batch: the batch is sent again item by item', async () => {
    const batches: number[][] = [];
    const batcher = createBatcher<number, number>(async (items) => {
      batches.push(items);
      if (items.includes(13)) throw new Error('13 is refused');
      return items.map((i) => i * 2);
    });
    const results = await Promise.allSettled([1, 13, 3].map((i) => batcher(i)));
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([2, '13 is refused', 6]);
    expect(batches).toEqual([[1, 13, 3], [1], [13], [3]]);
  });

  it('rejects every caller of a failed batch', async () => {
    const batcher = createBatcher<number, number>(async () => {
      throw new Error('db down');
    });
    await expect(Promise.all([batcher(1), batcher(2)])).rejects.toThrow('db down');
  });
});

describe('catch-up selection', () => {
  const expected = ['2026-11-17', '2026-11-18', '2026-11-19', '2026-11-20'].map((partition, i) => ({ tick: new Date(Date.UTC(2026, 10, 17 + i, 23, 50)), partition }));

  it('all: every missed partition, capped to the most recent, oldest first', () => {
    const statuses = new Map([['2026-11-18', 'succeeded' as const]]);
    expect(selectMissed(expected, statuses, { mode: 'all', windowHours: 168, max: 7 }).map((e) => e.partition)).toEqual(['2026-11-17', '2026-11-19', '2026-11-20']);
    expect(selectMissed(expected, statuses, { mode: 'all', windowHours: 168, max: 2 }).map((e) => e.partition)).toEqual(['2026-11-19', '2026-11-20']);
  });

  it('a failed run is not missed: it is retried, not caught up', () => {
    const statuses = new Map(expected.map((e) => [e.partition, 'failed' as const]));
    expect(selectMissed(expected, statuses, { mode: 'all', windowHours: 168, max: 7 })).toEqual([]);
  });

  it('latest: only the newest tick, and only when it is missing', () => {
    expect(selectMissed(expected, new Map(), { mode: 'latest', windowHours: 48 }).map((e) => e.partition)).toEqual(['2026-11-20']);
    expect(selectMissed(expected, new Map([['2026-11-20', 'succeeded' as const]]), { mode: 'latest', windowHours: 48 })).toEqual([]);
    expect(selectMissed(expected, new Map(), { mode: 'none' })).toEqual([]);
  });

  it('lag counts from the oldest pending tick after the newest done one', () => {
    const now = new Date(Date.UTC(2026, 10, 21, 0, 50));
    expect(computeLagSeconds(expected, new Map(expected.map((e) => [e.partition, 'succeeded' as const])), now)).toBe(0);
    const statuses = new Map([
      ['2026-11-17', 'succeeded' as const],
      ['2026-11-19', 'skipped' as const],
    ]);
    expect(computeLagSeconds(expected, statuses, now)).toBe(3600);
  });
});

describe('schedules', () => {
  it('applies SCHEDULE_<JOB> overrides and "off"', () => {
    const schedules = resolveSchedules(JOBS, { scheduleOverrides: { 'trade-etl': '*/15 * * * *', 'refresh-rs': 'off' } });
    expect(schedules.find((s) => s.id === 'trade-etl')).toMatchObject({ cron: '*/15 * * * *', overridden: true });
    expect(schedules.find((s) => s.id === 'refresh-rs')).toBeUndefined();
    expect(schedules.find((s) => s.id === 'enrichment-backfill')).toBeUndefined();
    expect(schedules.find((s) => s.id === 'nightly-report')).toMatchObject({ cron: '50 23 * * *', tz: 'UTC', overridden: false });
  });

  it('refuses overrides for unknown or ad-hoc jobs', () => {
    expect(() => resolveSchedules(JOBS, { scheduleOverrides: { 'trade-elt': '* * * * *' } })).toThrow(/SCHEDULE_TRADE_ELT: no job named "trade-elt"/);
    expect(() => resolveSchedules(JOBS, { scheduleOverrides: { 'enrichment-backfill': '* * * * *' } })).toThrow(/runs ad hoc/);
  });

  it('puts a deadline on the partition date plus its offset, in its zone', () => {
    expect(deadlineFor('2026-11-20', { by: '00:30', tz: 'UTC', dayOffset: 1 }).toISOString()).toBe('2026-11-21T00:30:00.000Z');
    expect(deadlineFor('2026-03-08', { by: '06:00', tz: 'America/New_York', dayOffset: 0 }).toISOString()).toBe('2026-03-08T10:00:00.000Z');
  });

  it('maps ticks to partitions in the right zone', () => {
    expect(tickDate('2026-11-21T04:30:00Z', 'America/New_York')).toBe('2026-11-20');
    expect(tickDate(new Date('2026-11-21T06:30:00Z'), 'America/New_York', -1)).toBe('2026-11-20');
    expect(tickPartition('2026-11-21T06:25:07.123Z')).toBe('2026-11-21T062507Z');
  });
});
