import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BadInputError } from '../../src/errors.ts';
import {
  METRIC_WINDOWS,
  metricsSeries,
  windowMetrics,
  type CurveRow,
  type WindowMetrics,
  type WindowName,
} from '../../src/analytics/metrics.ts';

const METRIC_KEYS = [
  'days',
  'sharpe',
  'sortino',
  'calmar',
  'annualReturn',
  'maxDrawdown',
  'profitFactor',
  'recoveryFactor',
  'winRate',
  'expectancy',
  'longestLosingStreak',
  'var95',
  'var99',
] as const satisfies ReadonlyArray<keyof WindowMetrics>;

/** A row with no fills: only PnL, equity and return are given. */
function flat(netPnl: number, equity: number, dailyReturn: number): CurveRow {
  return { netPnl, equity, dailyReturn, realizedPnl: 0, winningTrades: 0, losingTrades: 0, grossProfit: 0, grossLoss: 0 };
}

/** A curve from net PnL per day, equity and returns derived as DESIGN.md defines them; no fills. */
function curveOf(start: number, netPnls: number[]): CurveRow[] {
  let equity = start;
  return netPnls.map((netPnl) => {
    const dailyReturn = netPnl / equity;
    equity += netPnl;
    return flat(netPnl, equity, dailyReturn);
  });
}

/** |actual − expected| ≤ tolerance × max(1, |expected|), null only against null. */
function expectClose(actual: number | null, expected: number | null, tolerance: number, label: string): void {
  if (expected === null || actual === null) {
    expect(actual, label).toBe(expected);
    return;
  }
  const error = Math.abs(actual - expected);
  if (error > tolerance * Math.max(1, Math.abs(expected))) {
    expect.fail(`${label}: ${actual} differs from ${expected} by ${error}`);
  }
}

function expectMetrics(actual: WindowMetrics, expected: WindowMetrics, tolerance: number, label: string): void {
  for (const key of METRIC_KEYS) expectClose(actual[key], expected[key], tolerance, `${label} ${key}`);
}

/** mulberry32: a seeded PRNG, so a failing random case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random curve with flat days, fills and costs; `scale` sets the size of a day's PnL. */
function randomCurve(random: () => number, rows: number, start: number, scale: number): CurveRow[] {
  let equity = start;
  const curve: CurveRow[] = [];
  for (let i = 0; i < rows; i++) {
    let row: CurveRow;
    if (random() < 0.2) {
      row = flat(0, equity, 0);
    } else {
      const winningTrades = Math.floor(random() * 4);
      const losingTrades = Math.floor(random() * 4);
      const grossProfit = winningTrades * random() * scale;
      const grossLoss = losingTrades * random() * scale;
      const realizedPnl = grossProfit - grossLoss;
      const netPnl = realizedPnl - random() * scale * 0.05;
      row = { netPnl, equity: equity + netPnl, dailyReturn: netPnl / equity, realizedPnl, winningTrades, losingTrades, grossProfit, grossLoss };
    }
    equity = row.equity;
    curve.push(row);
  }
  return curve;
}

describe('windowMetrics: hand-worked cases', () => {
  // Start 100000; net PnL +1000, −500, 0 (costs 100 and 50 on the trading days).
  //   equity 101000, 100500, 100500
  //   r = 1000/100000 = 1/100, −500/101000 = −1/202, 0/100500 = 0
  const rows: CurveRow[] = [
    { netPnl: 1000, equity: 101000, dailyReturn: 1000 / 100000, realizedPnl: 1100, winningTrades: 2, losingTrades: 0, grossProfit: 1100, grossLoss: 0 },
    { netPnl: -500, equity: 100500, dailyReturn: -500 / 101000, realizedPnl: -450, winningTrades: 1, losingTrades: 2, grossProfit: 300, grossLoss: 750 },
    flat(0, 100500, 0),
  ];
  const m = windowMetrics(rows, 100000);

  it('sharpe and sortino', () => {
    // mean = (1/100 − 1/202 + 0)/3 = (102/20200)/3 = 17/10100.
    // deviations × 10100: 101 − 17 = 84, −50 − 17 = −67, −17; Σ² = 7056 + 4489 + 289 = 11834;
    // var (ddof 1) = 11834/2 / 10100² = 5917/10100², std = √5917/10100.
    // sharpe = (17/10100) / (√5917/10100) × √252 = 17 × √(252/5917) ≈ 3.5083.
    expectClose(m.sharpe, 17 * Math.sqrt(252 / 5917), 1e-12, 'sharpe');
    // downside: mean(min(r,0)²) over all 3 = (1/202)²/3, so √ = (1/202)/√3.
    // sortino = mean × 252 / (√mean(min(r,0)²) × √252) = (17/10100) × 202 × √3 × √252
    //         = 0.34 × √756 ≈ 9.3485 (17 × 202 = 3434 = 0.34 × 10100).
    expectClose(m.sortino, 0.34 * Math.sqrt(756), 1e-12, 'sortino');
  });

  it('drawdown, annual return, calmar, recovery factor', () => {
    // growth from 1: 1.01, 1.01 × 201/202 = 1.005, 1.005; peak 1.01; worst 1.005/1.01 − 1 = −1/202.
    expectClose(m.maxDrawdown, -1 / 202, 1e-12, 'maxDrawdown');
    // (∏(1 + r))^(252/3) − 1 = 1.005^84 − 1 ≈ 0.5209.
    expectClose(m.annualReturn, 1.005 ** 84 - 1, 1e-12, 'annualReturn');
    // calmar = annual return / |−1/202| = 202 × (1.005^84 − 1).
    expectClose(m.calmar, 202 * (1.005 ** 84 - 1), 1e-12, 'calmar');
    // cash: peak 100000 → 101000; drawdowns 0, −500, −500; Σ net = 500; 500 / 500 = 1.
    expectClose(m.recoveryFactor, 1, 1e-12, 'recoveryFactor');
  });

  it('trade counts, streak and VaR', () => {
    // winners 2 + 1 = 3, losers 0 + 2 = 2: win rate 3/5; profit factor (1100 + 300) / 750;
    // expectancy (1100 − 450) / 5 = 130.
    expect(m.days).toBe(3);
    expectClose(m.winRate, 0.6, 1e-12, 'winRate');
    expectClose(m.profitFactor, 1400 / 750, 1e-12, 'profitFactor');
    expectClose(m.expectancy, 130, 1e-12, 'expectancy');
    expect(m.longestLosingStreak).toBe(1);
    // sorted r: −1/202, 0, 1/100. 5th percentile at 0.05 × 2 = 0.1: −1/202 + 0.1 × (0 + 1/202) = −0.9/202;
    // 1st at 0.02: −0.98/202.
    expectClose(m.var95, -0.9 / 202, 1e-12, 'var95');
    expectClose(m.var99, -0.98 / 202, 1e-12, 'var99');
  });

  it('a first-day loss is a cash drawdown from the opening equity', () => {
    // 100000 → 99000 → 99500: peak stays 100000, worst −1000; Σ net = −500; −500 / 1000.
    const m2 = windowMetrics(curveOf(100000, [-1000, 500]), 100000);
    expectClose(m2.recoveryFactor, -0.5, 1e-12, 'recoveryFactor');
    // growth 0.99, 0.99 × (1 + 500/99000) = 0.995; peak 1 (the start): worst 0.99 − 1 = −0.01.
    expectClose(m2.maxDrawdown, -0.01, 1e-12, 'maxDrawdown');
  });

  it('counts the longest run of losing days; flat days break it', () => {
    // losing runs: 2 (days 2–3), broken by a flat day, then 3 (days 5–7).
    const m2 = windowMetrics(curveOf(100000, [10, -1, -1, 0, -1, -1, -1, 5, -1]), 100000);
    expect(m2.longestLosingStreak).toBe(3);
  });
});

describe('windowMetrics: edge cases', () => {
  it('an empty window: no days, every metric null, streak 0', () => {
    expect(windowMetrics([], 100000)).toEqual({
      days: 0,
      sharpe: null,
      sortino: null,
      calmar: null,
      annualReturn: null,
      maxDrawdown: null,
      profitFactor: null,
      recoveryFactor: null,
      winRate: null,
      expectancy: null,
      longestLosingStreak: 0,
      var95: null,
      var99: null,
    });
  });

  it('one winning day: no sharpe or sortino (n < 2), no drawdown, VaR is the return', () => {
    const m = windowMetrics(curveOf(100000, [1000]), 100000);
    expect(m).toMatchObject({ days: 1, sharpe: null, sortino: null, maxDrawdown: 0, calmar: null, recoveryFactor: null, var95: 0.01, var99: 0.01 });
    expectClose(m.annualReturn, 1.01 ** 252 - 1, 1e-12, 'annualReturn');
  });

  it('one losing day: drawdown is the return; recovery −1; sortino still null (empyrical: n < 2)', () => {
    const m = windowMetrics(curveOf(100000, [-2000]), 100000);
    expect(m).toMatchObject({ days: 1, sharpe: null, sortino: null, var95: -0.02, longestLosingStreak: 1 });
    expectClose(m.maxDrawdown, -0.02, 1e-12, 'maxDrawdown'); // (1 − 0.02) − 1 in floats
    expectClose(m.recoveryFactor, -1, 1e-12, 'recoveryFactor');
    // 0.98^252 − 1 over |−0.02|.
    expectClose(m.calmar, (0.98 ** 252 - 1) / 0.02, 1e-12, 'calmar');
  });

  it('no losses: profit factor, sortino, calmar and recovery factor are null', () => {
    const rows = curveOf(100000, [500, 0, 1500]).map((row) =>
      row.netPnl > 0 ? { ...row, realizedPnl: row.netPnl, winningTrades: 1, grossProfit: row.netPnl } : row,
    );
    const m = windowMetrics(rows, 100000);
    expect(m).toMatchObject({ profitFactor: null, sortino: null, maxDrawdown: 0, calmar: null, recoveryFactor: null, winRate: 1, expectancy: 1000 });
    expect(m.sharpe).toBeGreaterThan(0);
  });

  it('zero variance: sharpe null even for equal non-zero returns', () => {
    // 1% a day, every day: equity 101000, 102010, 103030.1.
    const m = windowMetrics([flat(1000, 101000, 0.01), flat(1010, 102010, 0.01), flat(1020.1, 103030.1, 0.01)], 100000);
    expect(m.sharpe).toBeNull();
    expect(m.sortino).toBeNull();
    expectClose(m.annualReturn, 1.01 ** 252 - 1, 1e-12, 'annualReturn');
  });

  it('all flat days: zeros where defined, null where a ratio has no denominator', () => {
    expect(windowMetrics(curveOf(100000, [0, 0, 0, 0]), 100000)).toEqual({
      days: 4,
      sharpe: null,
      sortino: null,
      calmar: null,
      annualReturn: 0,
      maxDrawdown: 0,
      profitFactor: null,
      recoveryFactor: null,
      winRate: null,
      expectancy: null,
      longestLosingStreak: 0,
      var95: 0,
      var99: 0,
    });
  });

  it('equity at or below zero: annual return and calmar null, nothing NaN', () => {
    // 1000 − 1500 = −500 (r = −1.5), then +100 on −500 (r = −0.2): growth −0.5 × 0.8 = −0.4.
    const below = windowMetrics(curveOf(1000, [-1500, 100]), 1000);
    expect(below.annualReturn).toBeNull();
    expect(below.calmar).toBeNull();
    expectClose(below.maxDrawdown, -1.5, 1e-12, 'maxDrawdown');
    // Exactly wiped out: r = −1, growth 0.
    const wiped = windowMetrics(curveOf(1000, [100, -1100]), 1000);
    expect(wiped.annualReturn).toBeNull();
    expect(wiped.maxDrawdown).toBe(-1);
    for (const m of [below, wiped]) for (const key of METRIC_KEYS) if (m[key] !== null) expect(Number.isFinite(m[key])).toBe(true);
  });

  it('costs but no closing trades: win rate and expectancy null', () => {
    const m = windowMetrics(curveOf(100000, [-12.5, -3]), 100000);
    expect(m).toMatchObject({ winRate: null, expectancy: null, profitFactor: null, longestLosingStreak: 2 });
  });

  it('never returns NaN, ±Infinity or −0, over random curves of every scale', () => {
    const random = prng(7);
    for (let trial = 0; trial < 40; trial++) {
      const start = [1, 1000, 100000, 1e9][trial % 4]!;
      const scale = start * [1e-12, 0.01, 0.5, 3][Math.floor(trial / 4) % 4]!;
      const curve = randomCurve(random, 1 + Math.floor(random() * 120), start, scale);
      for (const { metrics } of metricsSeries(curve, start, 0)) {
        for (const key of METRIC_KEYS) {
          const value = metrics[key];
          if (value !== null) expect(Number.isFinite(value) && !Object.is(value, -0), `${key} = ${value}`).toBe(true);
        }
      }
    }
  });
});

describe('metricsSeries', () => {
  it('equals windowMetrics of each window, for every as-of date and window (600 random rows)', () => {
    const start = 250000;
    const curve = randomCurve(prng(20260302), 600, start, 4000);
    const series = metricsSeries(curve, start, 0);
    expect(series).toHaveLength(600 * METRIC_WINDOWS.length);
    let i = 0;
    for (let t = 0; t < curve.length; t++) {
      for (const w of METRIC_WINDOWS) {
        const entry = series[i++]!;
        expect([entry.index, entry.window]).toEqual([t, w.name]);
        const s = Math.max(0, t + 1 - w.rows);
        const expected = windowMetrics(curve.slice(s, t + 1), s === 0 ? start : curve[s - 1]!.equity);
        expectMetrics(entry.metrics, expected, 1e-12, `t=${t} ${w.name}`);
      }
    }
  });

  it('from a later index: the same entries, with all still starting at row 0', () => {
    const curve = randomCurve(prng(99), 120, 100000, 1500);
    const full = metricsSeries(curve, 100000, 0);
    const tail = metricsSeries(curve, 100000, 95);
    expect(tail).toEqual(full.slice(95 * METRIC_WINDOWS.length));
    expect(tail.find((e) => e.window === 'all')?.metrics.days).toBe(96);
  });

  it('takes its own windows, in their order; fromIndex = length gives nothing', () => {
    const curve = curveOf(100000, [100, -50, 25]);
    const series = metricsSeries(curve, 100000, 1, [
      { name: 'all', rows: Infinity },
      { name: '30d', rows: 2 },
    ]);
    expect(series.map((e) => [e.index, e.window, e.metrics.days])).toEqual([
      [1, 'all', 2],
      [1, '30d', 2],
      [2, 'all', 3],
      [2, '30d', 2],
    ]);
    expect(metricsSeries(curve, 100000, 3)).toEqual([]);
    expect(metricsSeries([], 100000, 0)).toEqual([]);
  });
});

describe('validation', () => {
  const curve = curveOf(100000, [100, -50, 25]);

  it.each([
    ['a NaN return', { dailyReturn: NaN }, /curve\[1\]\.dailyReturn/],
    ['an infinite equity', { equity: Infinity }, /curve\[1\]\.equity/],
    ['a negative count', { losingTrades: -1 }, /curve\[1\]\.losingTrades/],
    ['a fractional count', { winningTrades: 1.5 }, /curve\[1\]\.winningTrades/],
    ['a signed gross loss', { grossLoss: -20 }, /curve\[1\]\.grossLoss/],
  ] as const)('refuses %s, naming the field and row', (_, change, message) => {
    const bad = curve.map((row, i) => (i === 1 ? { ...row, ...change } : row));
    expect(() => metricsSeries(bad, 100000, 0)).toThrow(BadInputError);
    expect(() => metricsSeries(bad, 100000, 0)).toThrow(message);
    expect(() => windowMetrics(bad, 100000)).toThrow(/rows\[1\]/);
  });

  it('refuses fromIndex out of range, a bad window and a non-finite starting or opening equity', () => {
    for (const fromIndex of [-1, 4, 1.5, NaN]) expect(() => metricsSeries(curve, 100000, fromIndex)).toThrow(/fromIndex/);
    expect(() => metricsSeries(curve, 100000, 0, [{ name: '30d', rows: 0 }])).toThrow(/windows\[0\]\.rows/);
    expect(() => metricsSeries(curve, NaN, 0)).toThrow(/startingEquity/);
    expect(() => windowMetrics(curve, Infinity)).toThrow(/openingEquity/);
  });
});

interface Reference {
  startingEquity: number;
  rows: CurveRow[];
  expected: Array<{ index: number; window: WindowName; metrics: WindowMetrics }>;
}

describe('reference: empyrical 0.5.5 transcribed in numpy (test/fixtures/metrics-reference.py)', () => {
  const reference = JSON.parse(readFileSync(new URL('../fixtures/metrics-reference.json', import.meta.url), 'utf8')) as Reference;
  const series = metricsSeries(reference.rows, reference.startingEquity, 0);
  const byKey = new Map(series.map((e) => [`${e.index} ${e.window}`, e.metrics]));

  it('covers the first row, the window boundaries, the middle and the last row', () => {
    const indices = new Set(reference.expected.map((e) => e.index));
    expect([...indices]).toEqual(expect.arrayContaining([0, 17, 200, reference.rows.length - 1]));
    expect(reference.rows.length).toBeGreaterThan(365);
  });

  it.each(reference.expected.map((e) => [e.index, e.window, e.metrics] as const))(
    'as of row %i, window %s',
    (index, window, expected) => {
      const actual = byKey.get(`${index} ${window}`);
      expect(actual).toBeDefined();
      expectMetrics(actual!, expected, 1e-9, `row ${index} ${window}`);
    },
  );
});
