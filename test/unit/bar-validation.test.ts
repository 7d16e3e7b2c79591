import { describe, expect, it } from 'vitest';
import type { Bar } from '../../src/analytics/bars.ts';
import { REJECT_REASONS, validateBars, type ValidationContext } from '../../src/analytics/bar-validation.ts';

const MINUTE = 60_000;
/** Tue 2024-06-11 09:30 ET (EDT). */
const OPEN = Date.parse('2024-06-11T13:30:00Z');
const STOCK_5M: ValidationContext = { timeframe: '5m', calendar: 'nyse', from: '2024-06-10', to: '2024-06-14' };

const bar = (ts: number, over: Partial<Bar> = {}): Bar => ({ ts, open: 10, high: 11, low: 9, close: 10.5, volume: 1000, ...over });
const at = (minutes: number, over: Partial<Bar> = {}) => bar(OPEN + minutes * MINUTE, over);

function rejectOf(b: Bar, ctx: ValidationContext = STOCK_5M) {
  const { valid, rejects } = validateBars([b], ctx);
  expect(valid).toEqual([]);
  expect(rejects).toHaveLength(1);
  return rejects[0] as { bar: Bar; reason: string; detail: string };
}

describe('validateBars: valid input', () => {
  it('passes valid bars in delivered order', () => {
    const bars = [at(0), at(5), at(10), at(30), at(385)];
    const { valid, rejects } = validateBars(bars, STOCK_5M);
    expect(rejects).toEqual([]);
    expect(valid).toEqual(bars);
    expect(valid[0]).toBe(bars[0]);
  });

  it('accepts volume 0, flat bars and an empty input', () => {
    expect(validateBars([at(0, { volume: 0 })], STOCK_5M).valid).toHaveLength(1);
    expect(validateBars([at(0, { open: 5, high: 5, low: 5, close: 5 })], STOCK_5M).valid).toHaveLength(1);
    expect(validateBars([], STOCK_5M)).toEqual({ valid: [], rejects: [] });
  });

  it('accepts bars on the first and last dates asked for', () => {
    const ctx: ValidationContext = { ...STOCK_5M, from: '2024-06-11', to: '2024-06-11' };
    expect(validateBars([at(0), at(385)], ctx).rejects).toEqual([]);
  });

  it('accepts a 1h stock bar at 09:00 ET, a 1d bar at midnight ET and crypto at any aligned time', () => {
    expect(validateBars([bar(OPEN - 30 * MINUTE)], { ...STOCK_5M, timeframe: '1h' }).rejects).toEqual([]);
    expect(validateBars([bar(Date.parse('2024-06-11T04:00:00Z'))], { ...STOCK_5M, timeframe: '1d' }).rejects).toEqual([]);
    const crypto: ValidationContext = { timeframe: '1m', calendar: '24x7', from: '2024-06-15', to: '2024-06-16' };
    expect(validateBars([bar(Date.parse('2024-06-15T00:00:00Z')), bar(Date.parse('2024-06-16T23:59:00Z'))], crypto).rejects).toEqual([]);
  });

  it('does not reject outliers', () => {
    expect(validateBars([at(0), at(5, { open: 0.01, high: 1000, low: 0.001, close: 999 })], STOCK_5M).valid).toHaveLength(2);
  });
});

describe('validateBars: each reject reason', () => {
  it('lists the reasons in check order', () => {
    expect(REJECT_REASONS).toEqual([
      'bad_timestamp',
      'non_finite',
      'out_of_range',
      'misaligned_timestamp',
      'outside_session',
      'non_positive_price',
      'ohlc_relation',
      'negative_volume',
      'duplicate_timestamp',
      'non_monotonic_timestamp',
    ]);
  });

  it('bad_timestamp: not whole epoch milliseconds', () => {
    for (const ts of [OPEN + 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) {
      const r = rejectOf(bar(ts));
      expect(r.reason).toBe('bad_timestamp');
      expect(r.detail).toBe(`ts ${String(ts)} is not epoch milliseconds`);
    }
  });

  it('non_finite names every bad field', () => {
    expect(rejectOf(at(0, { open: Number.NaN }))).toMatchObject({ reason: 'non_finite', detail: 'open not a finite number' });
    expect(rejectOf(at(0, { high: Number.POSITIVE_INFINITY, close: Number.NEGATIVE_INFINITY, volume: Number.NaN }))).toMatchObject({
      reason: 'non_finite',
      detail: 'high, close, volume not a finite number',
    });
    const missing = { ts: OPEN, open: 10, high: 11, low: 9, close: 10 } as unknown as Bar;
    expect(rejectOf(missing)).toMatchObject({ reason: 'non_finite', detail: 'volume not a finite number' });
  });

  it('out_of_range: market-local date outside from..to', () => {
    const ctx: ValidationContext = { ...STOCK_5M, from: '2024-06-11', to: '2024-06-11' };
    const before = rejectOf(bar(Date.parse('2024-06-10T13:30:00Z')), ctx);
    expect(before).toMatchObject({ reason: 'out_of_range', detail: 'date outside 2024-06-11..2024-06-11' });
    expect(rejectOf(bar(Date.parse('2024-06-12T13:30:00Z')), ctx).reason).toBe('out_of_range');
    // 00:30Z on Jun 12 is 20:30 ET on Jun 11: in range (then outside the session).
    expect(rejectOf(bar(Date.parse('2024-06-12T00:30:00Z')), ctx).reason).toBe('outside_session');
    // Crypto dates are UTC: 00:30Z on Jun 12 is out of range.
    expect(rejectOf(bar(Date.parse('2024-06-12T00:30:00Z')), { ...ctx, calendar: '24x7' }).reason).toBe('out_of_range');
  });

  it('misaligned_timestamp: not a bar open of the timeframe', () => {
    const r = rejectOf(at(2));
    expect(r).toEqual({ bar: at(2), reason: 'misaligned_timestamp', detail: '2024-06-11T13:32:00.000Z is not a 5m bar open' });
    expect(rejectOf(bar(OPEN + 1000), { ...STOCK_5M, timeframe: '1m' }).reason).toBe('misaligned_timestamp');
    expect(rejectOf(bar(OPEN), { ...STOCK_5M, timeframe: '1h' }).detail).toBe('2024-06-11T13:30:00.000Z is not a 1h bar open');
    expect(rejectOf(bar(Date.parse('2024-06-11T00:00:00Z')), { ...STOCK_5M, timeframe: '1d' }).reason).toBe('misaligned_timestamp');
    expect(rejectOf(bar(Date.parse('2024-06-11T04:00:00Z')), { ...STOCK_5M, timeframe: '1w' }).reason).toBe('misaligned_timestamp');
  });

  it('outside_session: aligned, but no session then', () => {
    expect(rejectOf(at(-5))).toMatchObject({ reason: 'outside_session', detail: 'no nyse session at 2024-06-11T13:25:00.000Z' });
    expect(rejectOf(at(390)).reason).toBe('outside_session');
    const holiday: ValidationContext = { ...STOCK_5M, from: '2024-07-01', to: '2024-07-05' };
    expect(rejectOf(bar(Date.parse('2024-07-04T14:00:00Z')), holiday)).toMatchObject({ reason: 'outside_session', detail: 'no nyse session at 2024-07-04T14:00:00.000Z' });
    expect(rejectOf(bar(Date.parse('2024-07-04T04:00:00Z')), { ...holiday, timeframe: '1d' }).reason).toBe('outside_session');
    // Early close 2024-11-29 at 13:00 ET (EST).
    const early: ValidationContext = { ...STOCK_5M, from: '2024-11-29', to: '2024-11-29' };
    expect(validateBars([bar(Date.parse('2024-11-29T17:55:00Z'))], early).rejects).toEqual([]);
    expect(rejectOf(bar(Date.parse('2024-11-29T18:00:00Z')), early).reason).toBe('outside_session');
  });

  it('non_positive_price names the fields', () => {
    expect(rejectOf(at(0, { low: 0 }))).toMatchObject({ reason: 'non_positive_price', detail: 'low ≤ 0' });
    expect(rejectOf(at(0, { open: -1, high: -0.5, low: -2, close: -1 }))).toMatchObject({ reason: 'non_positive_price', detail: 'open, high, low, close ≤ 0' });
  });

  it('ohlc_relation: high below low/open/close, low above open/close', () => {
    const cases: Array<Partial<Bar>> = [
      { open: 10, high: 9, low: 9.5, close: 9.5 }, // high < low
      { open: 11.5, high: 11, low: 9, close: 10 }, // high < open
      { open: 10, high: 11, low: 9, close: 11.1 }, // high < close
      { open: 8.9, high: 11, low: 9, close: 10 }, // low > open
      { open: 10, high: 11, low: 9, close: 8.5 }, // low > close
    ];
    for (const over of cases) {
      const r = rejectOf(at(0, over));
      expect(r.reason, JSON.stringify(over)).toBe('ohlc_relation');
      expect(r.detail).toBe(`o ${over.open} h ${over.high} l ${over.low} c ${over.close}`);
    }
  });

  it('negative_volume', () => {
    expect(rejectOf(at(0, { volume: -1 }))).toMatchObject({ reason: 'negative_volume', detail: 'volume -1' });
  });

  it('duplicate_timestamp keeps the first', () => {
    const first = at(5, { close: 10.1 });
    const second = at(5, { close: 10.9 });
    const { valid, rejects } = validateBars([at(0), first, second], STOCK_5M);
    expect(valid).toEqual([at(0), first]);
    expect(rejects).toEqual([{ bar: second, reason: 'duplicate_timestamp', detail: 'second bar at 2024-06-11T13:35:00.000Z' }]);
  });

  it('duplicate_timestamp also for the same ts as an earlier accepted bar that is not the last', () => {
    const { valid, rejects } = validateBars([at(0), at(5), at(10), at(5, { close: 10.2 })], STOCK_5M);
    expect(valid).toEqual([at(0), at(5), at(10)]);
    expect(rejects.map((r) => r.reason)).toEqual(['duplicate_timestamp']);
  });

  it('after a run of accepted bars, each earlier ts is a duplicate if accepted, else non-monotonic', () => {
    const accepted = [0, 5, 15, 20, 30, 45, 50].map((m) => at(m));
    for (let m = 0; m < 50; m += 5) {
      const { valid, rejects } = validateBars([...accepted, at(m, { close: 10.3 })], STOCK_5M);
      expect(valid).toEqual(accepted);
      expect(rejects.map((r) => r.reason), `minute ${m}`).toEqual([[0, 5, 15, 20, 30, 45].includes(m) ? 'duplicate_timestamp' : 'non_monotonic_timestamp']);
    }
  });

  it('non_monotonic_timestamp: earlier than the previous accepted bar', () => {
    const { valid, rejects } = validateBars([at(0), at(10), at(5), at(15)], STOCK_5M);
    expect(valid).toEqual([at(0), at(10), at(15)]);
    expect(rejects).toEqual([
      { bar: at(5), reason: 'non_monotonic_timestamp', detail: '2024-06-11T13:35:00.000Z after 2024-06-11T13:40:00.000Z' },
    ]);
  });

  it('a rejected bar does not count as accepted for duplicates or ordering', () => {
    const bad = at(10, { volume: -5 });
    const good = at(10);
    const { valid, rejects } = validateBars([at(0), bad, good, at(5, { low: 0 }), at(15)], STOCK_5M);
    expect(valid).toEqual([at(0), good, at(15)]);
    expect(rejects.map((r) => r.reason)).toEqual(['negative_volume', 'non_positive_price']);
  });
});

describe('validateBars: a mix and the check order', () => {
  it('keeps the good bars of a mix and rejects each bad one once', () => {
    const bars = [
      at(0),
      at(5, { open: Number.NaN }),
      at(7),
      at(10),
      at(10),
      at(15, { high: 1 }),
      at(20),
      at(15),
      at(390),
      at(25, { volume: 0 }),
    ];
    const { valid, rejects } = validateBars(bars, STOCK_5M);
    expect(valid).toEqual([at(0), at(10), at(20), at(25, { volume: 0 })]);
    expect(rejects.map((r) => [r.bar.ts - OPEN, r.reason])).toEqual([
      [5 * MINUTE, 'non_finite'],
      [7 * MINUTE, 'misaligned_timestamp'],
      [10 * MINUTE, 'duplicate_timestamp'],
      [15 * MINUTE, 'ohlc_relation'],
      [15 * MINUTE, 'non_monotonic_timestamp'],
      [390 * MINUTE, 'outside_session'],
    ]);
    expect(rejects[0]?.bar).toBe(bars[1]);
  });

  it('the first failing check wins', () => {
    const day = Date.parse('2024-06-11T13:30:00Z');
    const outOfRangeDay = Date.parse('2024-06-18T13:30:00Z');
    const cases: Array<[string, Bar, string]> = [
      ['bad ts over NaN prices', bar(day + 0.25, { open: Number.NaN }), 'bad_timestamp'],
      ['NaN over out of range', bar(outOfRangeDay, { close: Number.NaN }), 'non_finite'],
      ['out of range over misaligned', bar(outOfRangeDay + MINUTE, { low: -1 }), 'out_of_range'],
      ['misaligned over non-positive', bar(day + MINUTE, { low: -1 }), 'misaligned_timestamp'],
      ['outside session over non-positive', bar(day - 5 * MINUTE, { low: -1 }), 'outside_session'],
      ['non-positive over ohlc', bar(day, { open: -1, high: -3, low: -2, close: -1 }), 'non_positive_price'],
      ['ohlc over negative volume', bar(day, { high: 8, volume: -1 }), 'ohlc_relation'],
    ];
    for (const [name, b, reason] of cases) expect(rejectOf(b).reason, name).toBe(reason);
    // negative volume over duplicate and non-monotonic
    const { rejects } = validateBars([at(10), at(10, { volume: -1 }), at(5, { volume: -1 })], STOCK_5M);
    expect(rejects.map((r) => r.reason)).toEqual(['negative_volume', 'negative_volume']);
  });
});
