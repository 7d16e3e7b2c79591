import { describe, expect, it } from 'vitest';
import { formatTick, listTicks, nextTicks } from '../../src/cron.ts';

const NY = 'America/New_York';

describe('a 02:30 America/New_York schedule across DST', () => {
  it('spring forward (2026-03-08): 02:30 does not exist, the tick fires once at 03:30 EDT', () => {
    const ticks = listTicks('30 2 * * *', NY, new Date('2026-03-06T12:00:00Z'), new Date('2026-03-10T12:00:00Z'));
    expect(ticks.map((t) => formatTick(t, NY))).toEqual([
      '2026-03-07 02:30:00 EST (-05:00)',
      '2026-03-08 03:30:00 EDT (-04:00)',
      '2026-03-09 02:30:00 EDT (-04:00)',
      '2026-03-10 02:30:00 EDT (-04:00)',
    ]);
    expect(ticks.map((t) => t.toISOString())).toEqual(['2026-03-07T07:30:00.000Z', '2026-03-08T07:30:00.000Z', '2026-03-09T06:30:00.000Z', '2026-03-10T06:30:00.000Z']);
  });

  it('fall back (2026-11-01): one tick a day, the UTC offset changing under it', () => {
    const ticks = listTicks('30 2 * * *', NY, new Date('2026-10-31T00:00:00Z'), new Date('2026-11-03T00:00:00Z'));
    expect(ticks.map((t) => t.toISOString())).toEqual(['2026-10-31T06:30:00.000Z', '2026-11-01T07:30:00.000Z', '2026-11-02T07:30:00.000Z']);
  });

  it('fall back: 01:30 happens twice on the clock but fires once', () => {
    const ticks = listTicks('30 1 * * *', NY, new Date('2026-11-01T00:00:00Z'), new Date('2026-11-02T00:00:00Z'));
    expect(ticks.map((t) => formatTick(t, NY))).toEqual(['2026-11-01 01:30:00 EDT (-04:00)']);
  });

  it('lists the next N fire times', () => {
    expect(nextTicks('50 23 * * *', 'UTC', new Date('2026-11-21T00:00:00Z'), 2).map((t) => t.toISOString())).toEqual(['2026-11-21T23:50:00.000Z', '2026-11-22T23:50:00.000Z']);
  });
});
