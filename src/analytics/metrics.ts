/**
 * Performance metrics of an account's equity curve over trailing windows (DESIGN.md
 * "Definitions": Equity curve, Windows, Metrics).
 *
 * The ratios follow empyrical 0.5.5 (the reference users compare with) to 1e-9:
 * test/fixtures/metrics-reference.py transcribes its functions in numpy and the unit test
 * checks this module against the JSON it writes. Where empyrical answers NaN or ±Infinity
 * (too few returns, no variance, no losing day, no drawdown, a negative growth factor) the
 * metric is null instead: every value lands in a PostgreSQL double precision column, where
 * NaN and Infinity would sort and average as numbers. Annual return is also null for a
 * growth factor of exactly 0 (empyrical: −1), as DESIGN.md says. Sortino is null for fewer
 * than two returns, as in empyrical, although the mean and downside risk of one exist.
 *
 * Numbers are binary floats, unlike fifo.ts: empyrical works in float64, ratios need not be
 * exact, and money stays exact in SQL; the inputs arrive as the floats of those exact values.
 *
 * One accumulator, WindowState, serves every window: rows are pushed in date order and the
 * metrics of the rows pushed so far can be read at any time without disturbing it. That
 * keeps 'all' linear in arithmetic on a 10-year curve (it is pushed once per as-of date
 * instead of recomputed from scratch) while 30d/90d/365d are simply recomputed from their
 * rows per as-of date, O(window), with no removal logic to get wrong. Because both paths
 * run the same arithmetic in the same order, metricsSeries returns bit for bit what
 * windowMetrics returns for the same rows: there is no second formula to drift. The state
 * is the minimum that reproduces empyrical numerically: Welford's mean and variance (no
 * cancellation from Σr² − n·mean²), the running product of (1 + r) with its peak, and the
 * returns kept sorted by binary insertion for the percentiles.
 *
 * Pure: no I/O, no clock; inputs are never mutated. Bad input throws BadInputError naming
 * the field and row.
 */
import { BadInputError } from '../errors.ts';

/** One row of an account's equity curve as the metrics read it. Floats: empyrical works in float64 too; money stays exact in SQL. */
export interface CurveRow {
  /** The day's net PnL (realized − commission − fees). */
  netPnl: number;
  /** Equity at the end of the row. */
  equity: number;
  /** netPnl / equity at the end of the previous row (starting capital for the first row). */
  dailyReturn: number;
  realizedPnl: number;
  /** Fills with realized PnL > 0 that day. */
  winningTrades: number;
  /** Fills with realized PnL < 0. */
  losingTrades: number;
  /** Σ winners' realized PnL (≥ 0). */
  grossProfit: number;
  /** |Σ losers' realized PnL| (≥ 0). */
  grossLoss: number;
}

export type WindowName = '30d' | '90d' | '365d' | 'all';

/** A trailing window: the last `rows` rows of the curve (Infinity for 'all'). */
export interface WindowSpec {
  readonly name: WindowName;
  readonly rows: number;
}

export const METRIC_WINDOWS: readonly WindowSpec[] = Object.freeze([
  Object.freeze({ name: '30d', rows: 30 }),
  Object.freeze({ name: '90d', rows: 90 }),
  Object.freeze({ name: '365d', rows: 365 }),
  Object.freeze({ name: 'all', rows: Infinity }),
] as const);

export interface WindowMetrics {
  /** Rows in the window (fewer than the window length near the curve's start). */
  days: number;
  sharpe: number | null;
  sortino: number | null;
  calmar: number | null;
  annualReturn: number | null;
  /** A fraction ≤ 0. */
  maxDrawdown: number | null;
  profitFactor: number | null;
  recoveryFactor: number | null;
  winRate: number | null;
  expectancy: number | null;
  /** 0 when none. */
  longestLosingStreak: number;
  var95: number | null;
  var99: number | null;
}

const PERIODS_PER_YEAR = 252; // empyrical's APPROX_BDAYS_PER_YEAR
const SQRT_PERIODS = Math.sqrt(PERIODS_PER_YEAR);

const NUMBER_FIELDS = ['netPnl', 'equity', 'dailyReturn', 'realizedPnl', 'grossProfit', 'grossLoss'] as const;
const NON_NEGATIVE_FIELDS = ['grossProfit', 'grossLoss'] as const;
const COUNT_FIELDS = ['winningTrades', 'losingTrades'] as const;

/** Metrics of one window: `rows` are the window's rows in date order; `openingEquity` is the equity before its first row. */
export function windowMetrics(rows: readonly CurveRow[], openingEquity: number): WindowMetrics {
  assertFinite(openingEquity, 'openingEquity');
  validateRows(rows, 'rows');
  return computeWindow(rows, 0, rows.length, openingEquity);
}

/**
 * For every as-of index t from `fromIndex` to curve.length − 1 and every window in `windows`: the metrics of
 * the window made of the last `rows` rows ending at t (all rows 0..t for 'all'; fewer when the curve is shorter).
 * The opening equity of a window starting at index s is curve[s − 1].equity, or startingEquity when s = 0.
 * Output order: by t, then in the order of `windows`.
 */
export function metricsSeries(
  curve: readonly CurveRow[],
  startingEquity: number,
  fromIndex: number,
  windows: readonly WindowSpec[] = METRIC_WINDOWS,
): Array<{ index: number; window: WindowName; metrics: WindowMetrics }> {
  assertFinite(startingEquity, 'startingEquity');
  validateRows(curve, 'curve');
  if (!Number.isInteger(fromIndex) || fromIndex < 0 || fromIndex > curve.length) {
    throw new BadInputError(`fromIndex must be an integer from 0 to ${curve.length} (the curve's length), got ${fromIndex}`);
  }
  windows.forEach((w, i) => {
    if (!(w.rows === Infinity || (Number.isInteger(w.rows) && w.rows >= 1))) {
      throw new BadInputError(`windows[${i}].rows must be a positive integer or Infinity, got ${w.rows}`);
    }
  });

  // A window that never slides grows by one row per as-of date: one running state each,
  // brought up to fromIndex first, since 'all' still starts at row 0.
  const growing = windows.map((w) => {
    if (w.rows !== Infinity) return null;
    const state = new WindowState(startingEquity);
    for (let i = 0; i < fromIndex; i++) state.push(curve[i]!);
    return state;
  });

  const out: Array<{ index: number; window: WindowName; metrics: WindowMetrics }> = [];
  for (let t = fromIndex; t < curve.length; t++) {
    windows.forEach((w, k) => {
      const state = growing[k];
      let metrics: WindowMetrics;
      if (state) {
        state.push(curve[t]!);
        metrics = state.metrics();
      } else {
        const start = Math.max(0, t + 1 - w.rows);
        metrics = computeWindow(curve, start, t + 1, start === 0 ? startingEquity : curve[start - 1]!.equity);
      }
      out.push({ index: t, window: w.name, metrics });
    });
  }
  return out;
}

/** Metrics of rows[start..end) (already validated), opening at `openingEquity`. */
function computeWindow(rows: readonly CurveRow[], start: number, end: number, openingEquity: number): WindowMetrics {
  const state = new WindowState(openingEquity);
  for (let i = start; i < end; i++) state.push(rows[i]!);
  return state.metrics();
}

/** Everything the metrics need about the rows pushed so far. */
class WindowState {
  private n = 0;
  // Welford: running mean of r and sum of squared deviations from it.
  private mean = 0;
  private m2 = 0;
  // empyrical downside_risk: Σ min(r, 0)², averaged over all n returns.
  private downsideSquares = 0;
  private negatives = 0;
  // empyrical max_drawdown: growth = ∏(1 + r) from 1 (its starting value 100, scaled), peak including that start.
  private growth = 1;
  private growthPeak = 1;
  private maxDrawdown = 0;
  // Cash drawdown for the recovery factor: equity against its running peak, which starts at the opening equity.
  private equityPeak: number;
  private largestCashDrawdown = 0;
  private netPnl = 0;
  private realizedPnl = 0;
  private winning = 0;
  private losing = 0;
  private grossProfit = 0;
  private grossLoss = 0;
  private streak = 0;
  private longestStreak = 0;
  private readonly sortedReturns: number[] = [];

  constructor(openingEquity: number) {
    this.equityPeak = openingEquity;
  }

  push(row: CurveRow): void {
    const r = row.dailyReturn;
    this.n += 1;
    const delta = r - this.mean;
    this.mean += delta / this.n;
    this.m2 += delta * (r - this.mean);
    if (r < 0) {
      this.downsideSquares += r * r;
      this.negatives += 1;
    }

    this.growth *= 1 + r;
    this.growthPeak = Math.max(this.growthPeak, this.growth);
    this.maxDrawdown = Math.min(this.maxDrawdown, (this.growth - this.growthPeak) / this.growthPeak);

    this.equityPeak = Math.max(this.equityPeak, row.equity);
    this.largestCashDrawdown = Math.min(this.largestCashDrawdown, row.equity - this.equityPeak);

    this.netPnl += row.netPnl;
    this.realizedPnl += row.realizedPnl;
    this.winning += row.winningTrades;
    this.losing += row.losingTrades;
    this.grossProfit += row.grossProfit;
    this.grossLoss += row.grossLoss;

    this.streak = row.netPnl < 0 ? this.streak + 1 : 0;
    this.longestStreak = Math.max(this.longestStreak, this.streak);

    insertSorted(this.sortedReturns, r);
  }

  metrics(): WindowMetrics {
    const n = this.n;
    const trades = this.winning + this.losing;
    const annualReturn = n > 0 && this.growth > 0 ? finite(this.growth ** (PERIODS_PER_YEAR / n) - 1) : null;
    const maxDrawdown = n > 0 ? finite(this.maxDrawdown) : null;
    return {
      days: n,
      sharpe: n >= 2 && this.m2 > 0 ? finite((this.mean / Math.sqrt(this.m2 / (n - 1))) * SQRT_PERIODS) : null,
      sortino:
        n >= 2 && this.negatives > 0
          ? finite((this.mean * PERIODS_PER_YEAR) / (Math.sqrt(this.downsideSquares / n) * SQRT_PERIODS))
          : null,
      calmar: annualReturn !== null && maxDrawdown !== null && maxDrawdown < 0 ? finite(annualReturn / -maxDrawdown) : null,
      annualReturn,
      maxDrawdown,
      profitFactor: this.grossLoss > 0 ? finite(this.grossProfit / this.grossLoss) : null,
      recoveryFactor: this.largestCashDrawdown < 0 ? finite(this.netPnl / -this.largestCashDrawdown) : null,
      winRate: trades > 0 ? finite(this.winning / trades) : null,
      expectancy: trades > 0 ? finite(this.realizedPnl / trades) : null,
      longestLosingStreak: this.longestStreak,
      var95: percentile(this.sortedReturns, 0.05),
      var99: percentile(this.sortedReturns, 0.01),
    };
  }
}

/** Inserts x after any equal values, keeping `sorted` ascending. */
function insertSorted(sorted: number[], x: number): void {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  sorted.splice(lo, 0, x);
}

/**
 * numpy.percentile's default 'linear' method (= PostgreSQL PERCENTILE_CONT): the value at
 * position q·(n − 1) of the sorted values, interpolated between its neighbours the way
 * numpy's _lerp does (from the upper neighbour when the fraction is ≥ 0.5), so results agree
 * to the last bit rather than merely to rounding.
 */
function percentile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const fraction = position - below;
  const a = sorted[below]!;
  const b = sorted[Math.min(below + 1, sorted.length - 1)]!;
  const diff = b - a;
  return finite(fraction >= 0.5 ? b - diff * (1 - fraction) : a + diff * fraction);
}

/** null for NaN and ±Infinity (they cannot go into the warehouse), and 0 for −0. */
function finite(x: number): number | null {
  return Number.isFinite(x) ? x + 0 : null;
}

function assertFinite(value: number, name: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new BadInputError(`${name} must be a finite number, got ${String(value)}`);
  }
}

function validateRows(rows: readonly CurveRow[], name: string): void {
  rows.forEach((row, i) => {
    for (const field of NUMBER_FIELDS) assertFinite(row[field], `${name}[${i}].${field}`);
    for (const field of NON_NEGATIVE_FIELDS) {
      if (row[field] < 0) throw new BadInputError(`${name}[${i}].${field} must be ≥ 0, got ${row[field]}`);
    }
    for (const field of COUNT_FIELDS) {
      const value = row[field];
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
        throw new BadInputError(`${name}[${i}].${field} must be a non-negative integer count, got ${String(value)}`);
      }
    }
  });
}
