import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatTick, listTicks, nextTicks, schedulePeriodMs, walkTicks } from '../../src/cron.ts';

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

describe('listTicks, read day by day from its memo', () => {
  // The catalogue's patterns and some more, in zones with and without DST, over windows that
  // start and end anywhere (2026's DST changes included): the same ticks as one walk of the parser
  // through the window.
  const CRONS = ['*/20 * * * *', '30 2 * * *', '30 1 * * *', '0 18 * * 1-5', '50 23 * * *', '15 0 * * *', '0 */4 * * *', '0 0 1 * *', '*/30 1-2 * * 0'];
  const ZONES = [NY, 'UTC', 'Europe/London', 'Asia/Kolkata', 'Australia/Lord_Howe'];
  const YEAR_START = Date.parse('2026-01-01T00:00:00Z');
  // Lord Howe's fall-back (02:00 → 01:30 local): a cron-parser walk that crosses it lists no tick
  // after it (one from 2026-04-03 stops at 04-04T13:00Z; one started after it goes on at 17:30Z),
  // so there is no walk to compare a window across it with.
  const LORD_HOWE_FALL_BACK = Date.parse('2026-04-04T15:00:00Z');

  it('lists what one walk from `from` to `to` lists', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...CRONS),
        fc.constantFrom(...ZONES),
        fc.integer({ min: 0, max: 365 * 86_400 }),
        fc.integer({ min: 0, max: 4 * 86_400 }),
        (cron, tz, startSecond, lengthSeconds) => {
          const from = new Date(YEAR_START + startSecond * 1000);
          const to = new Date(from.getTime() + lengthSeconds * 1000);
          fc.pre(!(tz === 'Australia/Lord_Howe' && from.getTime() - 86_400_000 <= LORD_HOWE_FALL_BACK && LORD_HOWE_FALL_BACK <= to.getTime()));
          // The walk starts a day early, as BullMQ walks from its previous tick: one starting inside
          // a repeated local half hour (Lord Howe's fall-back) would list a tick the walk through it skips.
          const walked = walkTicks(cron, tz, new Date(from.getTime() - 86_400_000), to).filter((t) => t.getTime() > from.getTime());
          expect(listTicks(cron, tz, from, to).map((t) => t.toISOString())).toEqual(walked.map((t) => t.toISOString()));
        },
      ),
      { numRuns: 200 },
    );
    // Walking zoned ticks costs ~0.3 ms each: 200 windows of up to five days of a 20-minute
    // pattern take seconds, more beside other suites.
  }, 60_000);

  it('lists every tick of a pattern with a seconds field, however many a day it has', () => {
    const from = new Date('2026-11-20T20:00:00Z');
    const to = new Date('2026-11-20T21:00:00Z');
    expect(listTicks('*/5 * * * * *', 'UTC', from, to)).toHaveLength(720);
  });

  it('includes a tick at `to` and excludes one at `from`, and stops at `limit`', () => {
    const from = new Date('2026-11-20T10:00:00Z');
    const to = new Date('2026-11-20T11:00:00Z');
    const ticks = listTicks('*/5 * * * *', 'UTC', from, to).map((t) => t.toISOString());
    expect(ticks[0]).toBe('2026-11-20T10:05:00.000Z');
    expect(ticks.at(-1)).toBe('2026-11-20T11:00:00.000Z');
    expect(ticks).toHaveLength(12);
    expect(listTicks('*/5 * * * *', 'UTC', from, new Date('2026-11-23T00:00:00Z'), 3).map((t) => t.toISOString())).toEqual(ticks.slice(0, 3));
  });
});

describe('schedulePeriodMs (the lag alert\'s unit)', () => {
  const hours = (ms: number) => ms / 3_600_000;
  it("is a day for a weekday schedule, on a Thursday evening too (the next gap is Friday's 72 h)", () => {
    // Thursday 2026-11-19 20:00 New York: the next ticks are Friday 18:00, then Monday 18:00.
    expect(hours(schedulePeriodMs('0 18 * * 1-5', 'America/New_York', new Date('2026-11-20T01:00:00Z')))).toBe(24);
  });
  it('is the shortest gap of an uneven schedule, and the period of an even one', () => {
    expect(hours(schedulePeriodMs('0 9,17 * * *', 'UTC', new Date('2026-11-20T10:00:00Z')))).toBe(8);
    expect(hours(schedulePeriodMs('*/5 * * * *', 'UTC', new Date('2026-11-20T10:00:00Z')))).toBe(5 / 60);
  });
});
