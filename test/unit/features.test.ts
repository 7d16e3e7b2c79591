import { ATR, EMA, RSI, SD, SMA } from 'technicalindicators';
import { describe, expect, it } from 'vitest';
import type { Bar } from '../../src/analytics/bars.ts';
import {
  computeFeatures,
  createFeatureState,
  FEATURE_COLUMNS,
  FEATURES_PER_BAR,
  type FeatureRow,
  type FeatureState,
} from '../../src/analytics/features.ts';
import type { Timeframe } from '../../src/analytics/timeframes.ts';

const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 0, 2, 14);

/** mulberry32: a small seeded generator, so every run sees the same series. */
function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Series {
  bars: Bar[];
  days: number[];
}

/**
 * A random walk of 1h bars, 7 a day. Every 37th bar has a volume spike and every 211th a
 * price jump, so VSA events and anomalies fire; 5% of volumes are 0.
 */
function randomWalk(count: number, seed: number): Series {
  const random = createRandom(seed);
  const bars: Bar[] = [];
  const days: number[] = [];
  let close = 100;
  for (let i = 0; i < count; i++) {
    const open = close;
    close = open * (1 + (random() - 0.5) * 0.03 + (i % 211 === 210 ? 0.08 : 0));
    const wide = random() < 0.5;
    const high = Math.max(open, close) + random() * (wide ? 2 : 0.05);
    const low = Math.min(open, close) - random() * (wide ? 2 : 0.05);
    const volume = i % 37 === 36 ? 5000 + Math.floor(random() * 3000) : random() < 0.05 ? 0 : Math.floor(500 + random() * 2000);
    bars.push({ ts: T0 + i * HOUR, open, high, low, close, volume });
    days.push(19_724 + Math.floor(i / 7));
  }
  return { bars, days };
}

/** Bars from closes, with a fixed half-spread and volume unless given. */
function barsOf(closes: readonly number[], extra: Partial<Omit<Bar, 'ts' | 'close'>>[] = []): Bar[] {
  return closes.map((close, i) => ({
    ts: T0 + i * HOUR,
    open: close,
    high: close + 1,
    low: close - 1,
    close,
    volume: 100,
    ...extra[i],
  }));
}

function run(bars: Bar[], timeframe: Timeframe = '1h', days: number[] = bars.map(() => 19_724)): FeatureRow[] {
  return computeFeatures(bars, days, timeframe, createFeatureState()).rows;
}

/** Computes the series in pieces ending at `cuts`, the state crossing JSON between pieces. */
function runInPieces(series: Series, cuts: readonly number[]): FeatureRow[] {
  const rows: FeatureRow[] = [];
  let state: FeatureState = createFeatureState();
  let start = 0;
  for (const end of [...cuts, series.bars.length]) {
    const piece = computeFeatures(series.bars.slice(start, end), series.days.slice(start, end), '1h', JSON.parse(JSON.stringify(state)) as FeatureState);
    rows.push(...piece.rows);
    state = piece.state;
    start = end;
  }
  return rows;
}

function expectClose(actual: number | null, expected: number, relative: number): void {
  expect(actual).not.toBeNull();
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(relative * Math.max(1, Math.abs(expected)));
}

function expectNoNaN(rows: readonly FeatureRow[]): void {
  for (const row of rows) {
    for (const value of Object.values(row)) {
      if (typeof value === 'number') expect(Number.isFinite(value)).toBe(true);
    }
  }
}

describe('columns', () => {
  it('lists the stored features in order, without ts and anomaly', () => {
    expect(FEATURE_COLUMNS).toEqual([
      'return_1bar',
      'return_1d',
      'volatility_20',
      'volatility_50',
      'atr_14',
      'sma_20',
      'sma_50',
      'ema_20',
      'ema_50',
      'rsi_14',
      'volume_sma_20',
      'trend_direction',
      'market_structure',
      'vsa_no_demand',
      'vsa_no_supply',
      'vsa_stopping_volume',
    ]);
    expect(FEATURES_PER_BAR).toBe(16);
  });
});

describe('against technicalindicators', () => {
  const { bars, days } = randomWalk(3000, 7);
  const rows = computeFeatures(bars, days, '1h', createFeatureState()).rows;
  const close = bars.map((b) => b.close);
  const high = bars.map((b) => b.high);
  const low = bars.map((b) => b.low);

  it('sma_20, sma_50 and volume_sma_20', () => {
    for (const period of [20, 50] as const) {
      const expected = SMA.calculate({ period, values: close });
      expect(expected).toHaveLength(bars.length - period + 1);
      for (let i = 0; i < bars.length; i++) {
        const value = period === 20 ? rows[i]!.sma_20 : rows[i]!.sma_50;
        if (i < period - 1) expect(value).toBeNull();
        else expectClose(value, expected[i - period + 1]!, 1e-12);
      }
    }
    const volumes = SMA.calculate({ period: 20, values: bars.map((b) => b.volume) });
    for (let i = 19; i < bars.length; i++) expectClose(rows[i]!.volume_sma_20, volumes[i - 19]!, 1e-12);
  });

  it('ema_20 and ema_50, seeded with the SMA', () => {
    for (const period of [20, 50] as const) {
      const expected = EMA.calculate({ period, values: close });
      expect(expected).toHaveLength(bars.length - period + 1);
      for (let i = 0; i < bars.length; i++) {
        const value = period === 20 ? rows[i]!.ema_20 : rows[i]!.ema_50;
        if (i < period - 1) expect(value).toBeNull();
        else expectClose(value, expected[i - period + 1]!, 1e-12);
      }
    }
  });

  it('atr_14, its first TR at the second bar as in the library', () => {
    const expected = ATR.calculate({ period: 14, high, low, close });
    expect(expected).toHaveLength(bars.length - 14);
    for (let i = 0; i < bars.length; i++) {
      if (i < 14) expect(rows[i]!.atr_14).toBeNull();
      else expectClose(rows[i]!.atr_14, expected[i - 14]!, 1e-9);
    }
  });

  it('rsi_14 within the library rounding and exactly against Wilder', () => {
    const expected = RSI.calculate({ period: 14, values: close });
    expect(expected).toHaveLength(bars.length - 14);
    let gain = 0;
    let loss = 0;
    for (let i = 1; i < bars.length; i++) {
      const change = close[i]! - close[i - 1]!;
      const g = Math.max(change, 0);
      const l = Math.max(-change, 0);
      if (i <= 14) {
        gain += g / 14;
        loss += l / 14;
      } else {
        gain = (gain * 13 + g) / 14;
        loss = (loss * 13 + l) / 14;
      }
      if (i < 14) {
        expect(rows[i]!.rsi_14).toBeNull();
        continue;
      }
      const rsi = rows[i]!.rsi_14 as number;
      expect(Math.abs(rsi - expected[i - 14]!)).toBeLessThanOrEqual(0.006);
      expect(Math.abs(rsi - (loss === 0 ? 100 : 100 - 100 / (1 + gain / loss)))).toBeLessThanOrEqual(1e-9);
    }
    expect(rows[0]!.rsi_14).toBeNull();
  });

  it('volatility_20 and _50: the library population SD of returns, made sample', () => {
    const returns = close.slice(1).map((c, i) => c / close[i]! - 1);
    for (const period of [20, 50] as const) {
      const expected = SD.calculate({ period, values: returns });
      for (let i = 0; i < bars.length; i++) {
        const value = period === 20 ? rows[i]!.volatility_20 : rows[i]!.volatility_50;
        // Bar i has returns 1..i, so the first full window ends at bar `period`.
        if (i < period) expect(value).toBeNull();
        else expectClose(value, expected[i - period]! * Math.sqrt(period / (period - 1)), 1e-9);
      }
    }
  });

  it('return_1bar', () => {
    expect(rows[0]!.return_1bar).toBeNull();
    for (let i = 1; i < bars.length; i++) expect(rows[i]!.return_1bar).toBe(close[i]! / close[i - 1]! - 1);
  });
});

describe('return_1d', () => {
  const bars = barsOf([100, 101, 102, 103, 99, 110]);
  const days = [100, 100, 100, 101, 101, 102];

  it('compares intraday bars with the last close of the previous session day', () => {
    const rows = run(bars, '1h', days);
    expect(rows.map((r) => r.return_1d)).toEqual([null, null, null, 103 / 102 - 1, 99 / 102 - 1, 110 / 99 - 1]);
  });

  it('equals return_1bar for 1d bars and is null for 1w bars', () => {
    expect(run(bars, '1d', days).map((r) => r.return_1d)).toEqual(run(bars, '1d', days).map((r) => r.return_1bar));
    expect(run(bars, '1w', days).every((r) => r.return_1d === null)).toBe(true);
  });
});

describe('trend_direction', () => {
  const up = Array.from({ length: 60 }, (_, i) => 100 + i);

  it('is null before sma_50, then 1 / −1 / 0', () => {
    const rows = run(barsOf(up));
    expect(rows[48]!.trend_direction).toBeNull();
    expect(rows[49]!.trend_direction).toBe(1);
    expect(run(barsOf(up.map((c) => 300 - c)))[59]!.trend_direction).toBe(-1);
    expect(run(barsOf(up.map(() => 100)))[59]!.trend_direction).toBe(0);
  });

  it('is 0 when close and sma_20 sit on different sides of sma_50', () => {
    // Rising, then a drop below sma_50 on the last bar while sma_20 is still above it.
    const closes = [...up.slice(0, 59), 50];
    const row = run(barsOf(closes))[59]!;
    expect(row.sma_20! > row.sma_50!).toBe(true);
    expect(row.trend_direction).toBe(0);
  });
});

describe('market_structure', () => {
  function structureOf(prior: [number, number], recent: [number, number]): FeatureRow['market_structure'] {
    // 20 bars with the prior extremes then 20 with the recent ones; other bars sit inside.
    const bars = barsOf(Array.from({ length: 40 }, () => 100)).map((b, i) => {
      const [hi, lo] = i < 20 ? prior : recent;
      return i % 20 === 5 ? { ...b, high: hi, low: lo } : { ...b, high: 100.5, low: 99.5 };
    });
    return run(bars)[39]!.market_structure;
  }

  it('needs 40 bars', () => {
    expect(run(barsOf(Array.from({ length: 39 }, () => 100)))[38]!.market_structure).toBeNull();
  });

  it('classifies higher highs and lows, lower highs and lows, and the rest', () => {
    expect(structureOf([105, 95], [106, 96])).toBe('uptrend');
    expect(structureOf([105, 95], [104, 94])).toBe('downtrend');
    expect(structureOf([105, 95], [106, 94])).toBe('range');
    expect(structureOf([105, 95], [104, 96])).toBe('range');
    expect(structureOf([105, 95], [105, 96])).toBe('range');
  });

  it('follows a steady climb', () => {
    const rows = run(barsOf(Array.from({ length: 80 }, (_, i) => 100 + i)));
    expect(rows.slice(39).every((r) => r.market_structure === 'uptrend')).toBe(true);
  });
});

describe('VSA events', () => {
  /** 20 bars of volume 100 and spread 2 with `closes`, then the bar under test. */
  function lastRow(closes: readonly number[], bar: Omit<Bar, 'ts' | 'open'>): FeatureRow {
    const bars = barsOf([...closes, bar.close], [...closes.map(() => ({})), { high: bar.high, low: bar.low, volume: bar.volume }]);
    const rows = run(bars);
    return rows[rows.length - 1]!;
  }
  const flat = Array.from({ length: 20 }, () => 100);
  const falling = Array.from({ length: 20 }, (_, i) => 120 - i);
  const rising = Array.from({ length: 20 }, (_, i) => 80 + i);

  it('no demand: high volume, narrow spread, down close', () => {
    expect(lastRow(flat, { close: 99.9, high: 100, low: 99.8, volume: 200 })).toMatchObject({
      vsa_no_demand: true,
      vsa_no_supply: false,
      vsa_stopping_volume: false,
    });
    // Volume 1.4× the average, a wide spread, or an up close: no event.
    expect(lastRow(flat, { close: 99.9, high: 100, low: 99.8, volume: 140 }).vsa_no_demand).toBe(false);
    expect(lastRow(flat, { close: 99.9, high: 101, low: 99, volume: 200 }).vsa_no_demand).toBe(false);
    expect(lastRow(flat, { close: 100.1, high: 100.2, low: 100, volume: 200 }).vsa_no_demand).toBe(false);
  });

  it('no supply: high volume, narrow spread, up close', () => {
    expect(lastRow(flat, { close: 100.1, high: 100.2, low: 100, volume: 200 })).toMatchObject({
      vsa_no_demand: false,
      vsa_no_supply: true,
      vsa_stopping_volume: false,
    });
    expect(lastRow(flat, { close: 100.1, high: 100.2, low: 100, volume: 150 }).vsa_no_supply).toBe(false);
    expect(lastRow(flat, { close: 100.1, high: 101.1, low: 99.1, volume: 200 }).vsa_no_supply).toBe(false);
  });

  it('stopping volume: climactic volume closing against the move into the bar', () => {
    // Down move (close 20 bars ago 120 > previous close 101), close in the upper half.
    expect(lastRow(falling, { close: 100.5, high: 101, low: 95, volume: 300 })).toMatchObject({
      vsa_no_demand: false,
      vsa_no_supply: false,
      vsa_stopping_volume: true,
    });
    // Up move, close in the lower half.
    expect(lastRow(rising, { close: 99.5, high: 105, low: 99, volume: 300 }).vsa_stopping_volume).toBe(true);
    // A close exactly at the middle of the range counts for both halves.
    expect(lastRow(falling, { close: 98, high: 101, low: 95, volume: 300 }).vsa_stopping_volume).toBe(true);
    expect(lastRow(rising, { close: 102, high: 105, low: 99, volume: 300 }).vsa_stopping_volume).toBe(true);
    // Closing with the move, only high (not climactic) volume, or no move at all: no event.
    expect(lastRow(falling, { close: 95.5, high: 101, low: 95, volume: 300 }).vsa_stopping_volume).toBe(false);
    expect(lastRow(rising, { close: 104.5, high: 105, low: 99, volume: 300 }).vsa_stopping_volume).toBe(false);
    expect(lastRow(falling, { close: 100.5, high: 101, low: 95, volume: 240 }).vsa_stopping_volume).toBe(false);
    expect(lastRow(flat, { close: 100.5, high: 101, low: 95, volume: 300 }).vsa_stopping_volume).toBe(false);
  });

  it('needs 20 previous bars', () => {
    const row = lastRow(flat.slice(1), { close: 99.9, high: 100, low: 99.8, volume: 1000 });
    expect(row).toMatchObject({ vsa_no_demand: false, vsa_no_supply: false, vsa_stopping_volume: false });
  });
});

describe('anomaly', () => {
  function walkWithJump(count: number, jumpAt: number): Bar[] {
    const random = createRandom(11);
    const closes = [100];
    // Uniform returns in ±0.1%: |z| stays below √3, so only the jump can pass 4.
    for (let i = 1; i < count; i++) closes.push(closes[i - 1]! * (1 + (i === jumpAt ? 0.01 : (random() - 0.5) * 0.002)));
    return barsOf(closes);
  }

  it('flags a jump against the previous 50 returns', () => {
    const rows = run(walkWithJump(120, 80));
    expect(rows.flatMap((r, i) => (r.anomaly ? [i] : []))).toEqual([80]);
  });

  it('needs 50 previous returns', () => {
    expect(run(walkWithJump(120, 50)).some((r) => r.anomaly)).toBe(false);
    expect(run(walkWithJump(120, 51))[51]!.anomaly).toBe(true);
  });
});

describe('split invariance', () => {
  const series = randomWalk(10_000, 3);
  const whole = computeFeatures(series.bars, series.days, '1h', createFeatureState()).rows;

  it('the series exercises every feature', () => {
    for (const key of ['vsa_no_demand', 'vsa_no_supply', 'vsa_stopping_volume', 'anomaly'] as const) {
      expect(whole.some((r) => r[key])).toBe(true);
    }
    expect(new Set(whole.map((r) => r.market_structure))).toEqual(new Set([null, 'uptrend', 'downtrend', 'range']));
    expect(new Set(whole.map((r) => r.trend_direction))).toEqual(new Set([null, -1, 0, 1]));
  });

  it('gives identical rows for one cut anywhere, including inside the warm-up', () => {
    for (const cut of [0, 1, 2, 13, 14, 15, 19, 20, 21, 39, 40, 41, 49, 50, 51, 52, 100, 4096, 4146, 5000, 9999, 10_000]) {
      expect(runInPieces(series, [cut])).toEqual(whole);
    }
  });

  it('gives identical rows when a piece starts at an event', () => {
    const events = whole.flatMap((r, i) => (r.anomaly || r.vsa_no_demand || r.vsa_no_supply || r.vsa_stopping_volume ? [i] : []));
    expect(runInPieces(series, events)).toEqual(whole);
  });

  it('gives identical rows bar by bar and in uneven pieces', () => {
    const oneByOne = Array.from({ length: 130 }, (_, i) => i + 1);
    expect(runInPieces(series, oneByOne)).toEqual(whole);
    const random = createRandom(5);
    const cuts: number[] = [];
    for (let at = 0; at < series.bars.length; at += Math.floor(random() * 700)) cuts.push(at);
    expect(runInPieces(series, cuts)).toEqual(whole);
  });

  it('leaves the input state untouched and returns plain JSON', () => {
    const first = computeFeatures(series.bars.slice(0, 500), series.days.slice(0, 500), '1h', createFeatureState());
    const snapshot = JSON.stringify(first.state);
    const second = computeFeatures(series.bars.slice(500, 600), series.days.slice(500, 600), '1h', first.state);
    expect(JSON.stringify(first.state)).toBe(snapshot);
    expect(JSON.parse(JSON.stringify(second.state))).toEqual(second.state);
    expect(second.state.closes).toHaveLength(50);
    expect(second.state.returns).toHaveLength(50);
  });

  it('refuses a state it did not write', () => {
    expect(() => computeFeatures([], [], '1h', { ...createFeatureState(), closes: [1] })).toThrow(/disagree/);
    expect(() => computeFeatures([], [], '1h', {} as FeatureState)).toThrow(/version 1/);
    expect(() => computeFeatures(barsOf([1]), [], '1h', createFeatureState())).toThrow(/day numbers/);
  });
});

describe('no NaN', () => {
  it('flat prices with zero volume: std 0, RSI 100, no events', () => {
    const bars = barsOf(
      Array.from({ length: 120 }, () => 100),
      Array.from({ length: 120 }, () => ({ high: 100, low: 100, volume: 0 })),
    );
    const { rows, state } = computeFeatures(bars, bars.map(() => 1), '1m', createFeatureState());
    expectNoNaN(rows);
    const last = rows[119]!;
    expect(last).toMatchObject({
      return_1bar: 0,
      volatility_20: 0,
      volatility_50: 0,
      atr_14: 0,
      sma_50: 100,
      ema_50: 100,
      rsi_14: 100,
      volume_sma_20: 0,
      trend_direction: 0,
      market_structure: 'range',
      vsa_no_demand: false,
      vsa_no_supply: false,
      vsa_stopping_volume: false,
      anomaly: false,
    });
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });

  it('the random walk, with its zero volumes', () => {
    const { bars, days } = randomWalk(2000, 9);
    expectNoNaN(computeFeatures(bars, days, '15m', createFeatureState()).rows);
  });

  it('a zero close gives null returns, not Infinity', () => {
    const rows = run(barsOf([100, 0, 100]), '1h', [1, 2, 3]);
    expectNoNaN(rows);
    expect(rows.map((r) => r.return_1bar)).toEqual([null, -1, null]);
    expect(rows.map((r) => r.return_1d)).toEqual([null, -1, null]);
  });
});
