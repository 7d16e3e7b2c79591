/**
 * Streaming market-data features of one symbol at one timeframe: returns, volatility, ATR,
 * moving averages, RSI, trend, market structure, VSA events and a return anomaly flag.
 *
 * Input: bars already validated (finite numbers, positive prices), ascending by ts with no
 * duplicates, and `days[i]`, the market-local session day number of bars[i] (`dayNumberOf`
 * in timeframes.ts; one per bar). "Bar t" below is the current bar; windows end at it
 * unless they say "previous". Every feature is null (false for the booleans) until its
 * window is full.
 *
 * Definitions (the contract):
 * - return_1bar = close / previous close − 1; null for the first bar ever.
 * - return_1d: intraday timeframes: close / (last close of the previous session day that
 *   had bars) − 1, null until such a day exists; '1d': return_1bar; '1w': null.
 * - volatility_20 / _50: sample standard deviation (ddof 1) of the last 20 / 50 return_1bar
 *   values (so from the 21st / 51st bar), not annualised; two passes (mean, then squared deviations) over the buffered
 *   returns, so no running sum of squares can cancel or drift.
 * - atr_14: Wilder's ATR. As in technicalindicators 3.1 (TrueRange yields nothing for the
 *   first bar), TR starts at the second bar ever: TR = max(high − low, |high − prev close|,
 *   |low − prev close|). First ATR = mean of the first 14 TRs (so at the 15th bar), then
 *   ATR = (prev ATR × 13 + TR) / 14. The library writes the same recursion as
 *   prev + (TR − prev) / 14, equal up to rounding.
 * - sma_20 / _50: mean close of the last 20 / 50 bars, summed afresh from the buffer each
 *   bar (no running sum to drift); technicalindicators keeps a running sum, so the two agree
 *   to rounding.
 * - ema_20 / _50: seeded with sma of the first N closes (at bar N), then
 *   ema = (close − prev ema) × k + prev ema with k = 2 / (N + 1), technicalindicators'
 *   EMA form.
 * - rsi_14: Wilder's RSI over close changes (from the second bar): first average gain /
 *   loss = mean of the first 14 gains / losses, then avg = (avg × 13 + x) / 14, exactly as
 *   technicalindicators' AverageGain/AverageLoss; first RSI at the 15th bar. RSI = 100 − 100 / (1 + avgGain / avgLoss),
 *   100 when avgLoss is 0. Unlike the library, not rounded to 2 decimals.
 * - volume_sma_20: mean volume of the last 20 bars.
 * - trend_direction: 1 when close > sma_50 and sma_20 > sma_50, −1 when close < sma_50 and
 *   sma_20 < sma_50, else 0; null until sma_50 exists.
 * - market_structure: over bars t−19..t ("recent") vs t−39..t−20 ("prior"), null before 40
 *   bars: 'uptrend' when max high and min low of recent are both greater than prior's,
 *   'downtrend' when both are less, else 'range'.
 * - VSA, from the pattern-performance seed thresholds; false until 20 previous bars exist.
 *   avgVolume = mean volume of bars t−20..t−1 (excluding t); high volume: volume >
 *   1.5 × avgVolume; climactic: volume > 2.5 × avgVolume. spread = high − low; narrow:
 *   spread < 0.5 × mean spread of bars t−20..t−1.
 *   vsa_no_demand = high volume ∧ narrow ∧ close < previous close.
 *   vsa_no_supply = high volume ∧ narrow ∧ close > previous close.
 *   vsa_stopping_volume = climactic ∧ ((close[t−20] > close[t−1] ∧ close ≥ (high + low) / 2)
 *   ∨ (close[t−20] < close[t−1] ∧ close ≤ (high + low) / 2)): a down move into the bar that
 *   closes in the upper half of its range, or the mirror.
 * - anomaly (not stored): z = (return_1bar − mean) / sample std of the previous 50 returns
 *   (the window volatility_50 had at the bar before); |z| > 4. False with fewer than 50
 *   previous returns or a std of 0.
 * A zero price would make a ratio non-finite: that return is null and left out of the
 * return windows. No feature is ever NaN or ±Infinity.
 *
 * Streaming: `computeFeatures` takes and returns a FeatureState, a plain JSON object holding
 * the last 50 closes, 40 highs/lows, 21 volumes, 50 returns and the recursive averages.
 * Sums over a window are recomputed from those buffers in an order fixed by the window alone;
 * recursions (EMA, ATR, RSI) continue from stored values; rolling max/min are exact, so
 * their incremental form is rebuilt on load rather than stored. Hence computing a series in
 * one call or in pieces (the state passed through JSON in between, as backfills checkpoint
 * it) gives bit-identical rows. Internally the buffers are flat Float64Arrays the windows
 * read as contiguous slices, compacted every BLOCK bars; the only per-bar allocation is the
 * row. On the 2-core dev VM the math runs at about 4M bars/s; building the row objects
 * (18 fields, most of them boxed doubles) costs more than the math, about 1.2–1.5M bars/s
 * in all.
 *
 * Pure: no I/O, no clock. The input state is never mutated.
 */
import { BadInputError } from '../errors.ts';
import type { Bar } from './bars.ts';
import { intradayMinutes, type Timeframe } from './timeframes.ts';

/** Features of one bar; rows[i] of `computeFeatures` belongs to bars[i]. */
export interface FeatureRow {
  ts: number;
  return_1bar: number | null;
  return_1d: number | null;
  volatility_20: number | null;
  volatility_50: number | null;
  atr_14: number | null;
  sma_20: number | null;
  sma_50: number | null;
  ema_20: number | null;
  ema_50: number | null;
  rsi_14: number | null;
  volume_sma_20: number | null;
  trend_direction: -1 | 0 | 1 | null;
  market_structure: 'uptrend' | 'downtrend' | 'range' | null;
  vsa_no_demand: boolean;
  vsa_no_supply: boolean;
  vsa_stopping_volume: boolean;
  /** |z| of return_1bar vs the previous 50 returns > 4 */
  anomaly: boolean;
}

export type FeatureColumn = keyof Omit<FeatureRow, 'ts' | 'anomaly'>;

/** The stored feature columns, in storage order. */
export const FEATURE_COLUMNS: readonly FeatureColumn[] = Object.freeze([
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
] as const);

export const FEATURES_PER_BAR: number = FEATURE_COLUMNS.length;

/**
 * Everything needed to continue a series: plain JSON (finite numbers, arrays, null), so it
 * survives `JSON.parse(JSON.stringify(state))` exactly. Arrays are oldest first.
 */
export interface FeatureState {
  /** Format version; computeFeatures refuses any other. */
  v: 1;
  /** Last min(bars seen, 50) closes. */
  closes: number[];
  /** Last min(bars seen, 40) highs and lows. */
  highs: number[];
  lows: number[];
  /** Last min(bars seen, 21) volumes. */
  volumes: number[];
  /** Last min(returns seen, 50) defined return_1bar values. */
  returns: number[];
  ema20: number | null;
  ema50: number | null;
  /** TRs seen while warming up (stops at 14), their sum, then the ATR. */
  trCount: number;
  trSum: number;
  atr: number | null;
  /** Close changes seen while warming up (stops at 14), gain and loss sums, then the averages. */
  changeCount: number;
  gainSum: number;
  lossSum: number;
  avgGain: number | null;
  avgLoss: number | null;
  /** Session day of the last bar, its last close, and the last close of the day before it. */
  day: number | null;
  dayClose: number | null;
  prevDayClose: number | null;
}

const ATR_PERIOD = 14;
const RSI_PERIOD = 14;
const K20 = 2 / 21;
const K50 = 2 / 51;
/** History kept for price and volume windows (the longest: sma_50). */
const HIST = 50;
const HL_HIST = 40;
const VOL_HIST = 21;
/** Bars appended to the flat buffers before they are compacted back to HIST. */
const BLOCK = 4096;

export function createFeatureState(): FeatureState {
  return {
    v: 1,
    closes: [],
    highs: [],
    lows: [],
    volumes: [],
    returns: [],
    ema20: null,
    ema50: null,
    trCount: 0,
    trSum: 0,
    atr: null,
    changeCount: 0,
    gainSum: 0,
    lossSum: 0,
    avgGain: null,
    avgLoss: null,
    day: null,
    dayClose: null,
    prevDayClose: null,
  };
}

/**
 * Σ buf[end−n .. end−1] in four interleaved partial sums, added as (a + b) + (c + d): a fixed
 * order that depends only on the window, and four independent chains instead of one.
 */
function windowSum(buf: Float64Array, end: number, n: number): number {
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  let k = end - n;
  for (; k + 3 < end; k += 4) {
    a += buf[k]!;
    b += buf[k + 1]!;
    c += buf[k + 2]!;
    d += buf[k + 3]!;
  }
  for (; k < end; k++) a += buf[k]!;
  return a + b + (c + d);
}

/** Sample standard deviation (ddof 1) of buf[end−n .. end−1] around its `mean`: the second pass. */
function windowStd(buf: Float64Array, end: number, n: number, mean: number): number {
  let a = 0;
  let b = 0;
  let k = end - n;
  for (; k + 1 < end; k += 2) {
    const x = buf[k]! - mean;
    const y = buf[k + 1]! - mean;
    a += x * x;
    b += y * y;
  }
  for (; k < end; k++) {
    const x = buf[k]! - mean;
    a += x * x;
  }
  return Math.sqrt((a + b) / (n - 1));
}

function windowMax(buf: Float64Array, end: number, n: number): number {
  let m = buf[end - n]!;
  for (let k = end - n + 1; k < end; k++) if (buf[k]! > m) m = buf[k]!;
  return m;
}

function windowMin(buf: Float64Array, end: number, n: number): number {
  let m = buf[end - n]!;
  for (let k = end - n + 1; k < end; k++) if (buf[k]! < m) m = buf[k]!;
  return m;
}

/** A Float64Array of `cap` with `values` ending just before index HIST. */
function loadBuffer(values: readonly number[], max: number, name: string, cap: number): Float64Array {
  if (!Array.isArray(values) || values.length > max) throw new BadInputError(`feature state: ${name} must be an array of at most ${max} numbers`);
  const buf = new Float64Array(cap);
  buf.set(values, HIST - values.length);
  return buf;
}

function tail(buf: Float64Array, end: number, n: number): number[] {
  return Array.from(buf.subarray(end - n, end));
}

function assertState(state: FeatureState): void {
  if (state === null || typeof state !== 'object' || state.v !== 1) {
    throw new BadInputError('feature state: not a version 1 FeatureState (create one with createFeatureState)');
  }
  const bars = state.closes.length;
  if (state.highs.length !== Math.min(bars, HL_HIST) || state.lows.length !== state.highs.length || state.volumes.length !== Math.min(bars, VOL_HIST)) {
    throw new BadInputError('feature state: closes, highs, lows and volumes disagree on the bars seen');
  }
}

function nanOf(value: number | null): number {
  return value === null ? NaN : value;
}

function nullOf(value: number): number | null {
  return Number.isNaN(value) ? null : value;
}

/** Mean of the last 50 returns: the 30 older and the 20 newest summed apart, as the loop does. */
function mean50Of(rets: Float64Array, end: number, sum20: number): number {
  return (windowSum(rets, end - 20, 30) + sum20) / 50;
}

/**
 * Features of `bars` (one symbol, one timeframe, continuing the series `state` describes);
 * `days[i]` is the session day number of bars[i]. Returns one row per bar and the state
 * after the last bar; `state` itself is not changed.
 */
export function computeFeatures(
  bars: readonly Bar[],
  days: ArrayLike<number>,
  timeframe: Timeframe,
  state: FeatureState,
): { rows: FeatureRow[]; state: FeatureState } {
  assertState(state);
  const n = bars.length;
  if (days.length !== n) throw new BadInputError(`computeFeatures: ${n} bars but ${days.length} day numbers`);
  const intraday = intradayMinutes(timeframe) !== null;
  const daily = timeframe === '1d';

  const cap = HIST + Math.min(n, BLOCK);
  const closes = loadBuffer(state.closes, HIST, 'closes', cap);
  const highs = loadBuffer(state.highs, HL_HIST, 'highs', cap);
  const lows = loadBuffer(state.lows, HL_HIST, 'lows', cap);
  const volumes = loadBuffer(state.volumes, VOL_HIST, 'volumes', cap);
  const rets = loadBuffer(state.returns, HIST, 'returns', cap);
  // Max high / min low of the 20 bars ending at each index (market_structure's "recent"; the
  // value 20 indexes back is "prior"). Max and min are exact, so these are derived, not
  // stored: rebuilt here for the buffered bars, then kept up incrementally.
  const maxHigh20 = new Float64Array(cap);
  const minLow20 = new Float64Array(cap);
  // p / rp: next write index of the price and return buffers; seen / retSeen: how many values
  // before them are real, capped at HIST since only the thresholds below matter.
  let p = HIST;
  let rp = HIST;
  let seen = state.closes.length;
  let retSeen = state.returns.length;
  for (let q = HIST - Math.min(seen, HL_HIST) + 20; q <= HIST; q++) {
    maxHigh20[q - 1] = windowMax(highs, q, 20);
    minLow20[q - 1] = windowMin(lows, q, 20);
  }

  let { trCount, trSum, changeCount, gainSum, lossSum } = state;
  // Carried from bar to bar as plain doubles, NaN standing for the state's null.
  let ema20 = nanOf(state.ema20);
  let ema50 = nanOf(state.ema50);
  let atr = nanOf(state.atr);
  let avgGain = nanOf(state.avgGain);
  let avgLoss = nanOf(state.avgLoss);
  let day = nanOf(state.day);
  let dayClose = nanOf(state.dayClose);
  let prevDayClose = nanOf(state.prevDayClose);
  // Mean and std of the last 50 returns, carried to the next bar for its anomaly z, by the
  // same code as volatility_50, so a resumed series gets the same bits.
  let mean50 = 0;
  let std50 = 0;
  if (retSeen >= 50) {
    mean50 = mean50Of(rets, rp, windowSum(rets, rp, 20));
    std50 = windowStd(rets, rp, 50, mean50);
  }

  const rows: FeatureRow[] = new Array<FeatureRow>(n);
  for (let i = 0; i < n; i++) {
    if (p === cap) {
      const from = cap - HIST;
      closes.copyWithin(0, from, cap);
      highs.copyWithin(0, from, cap);
      lows.copyWithin(0, from, cap);
      volumes.copyWithin(0, from, cap);
      maxHigh20.copyWithin(0, from, cap);
      minLow20.copyWithin(0, from, cap);
      p = HIST;
    }
    if (rp === cap) {
      rets.copyWithin(0, cap - HIST, cap);
      rp = HIST;
    }
    const bar = bars[i]!;
    const close = bar.close;
    const high = bar.high;
    const low = bar.low;
    const volume = bar.volume;
    const hasPrev = seen > 0;
    const prevClose = hasPrev ? closes[p - 1]! : 0;
    // The current bar sits at index c; p moves past it.
    const c = p;
    closes[c] = close;
    highs[c] = high;
    lows[c] = low;
    volumes[c] = volume;
    p++;
    if (seen < HIST) seen++;

    let return1bar: number | null = null;
    let volatility20: number | null = null;
    let volatility50: number | null = null;
    let anomaly = false;
    if (hasPrev) {
      const r = close / prevClose - 1;
      if (Number.isFinite(r)) {
        return1bar = r;
        if (retSeen >= 50 && std50 > 0) anomaly = Math.abs((r - mean50) / std50) > 4;
        rets[rp++] = r;
        if (retSeen < HIST) retSeen++;
        if (retSeen >= 20) {
          const sum20 = windowSum(rets, rp, 20);
          volatility20 = windowStd(rets, rp, 20, sum20 / 20);
          if (retSeen >= 50) {
            mean50 = mean50Of(rets, rp, sum20);
            std50 = windowStd(rets, rp, 50, mean50);
            volatility50 = std50;
          }
        }
      }
    }

    let return1d: number | null = null;
    if (intraday) {
      const d = days[i]!;
      if (d !== day) {
        prevDayClose = dayClose;
        day = d;
      }
      dayClose = close;
      if (!Number.isNaN(prevDayClose)) {
        const r = close / prevDayClose - 1;
        if (Number.isFinite(r)) return1d = r;
      }
    } else if (daily) {
      return1d = return1bar;
    }

    if (hasPrev) {
      // technicalindicators' TrueRange: none for the first bar ever.
      const tr = Math.max(high - low, Math.abs(high - prevClose), Math.abs(low - prevClose));
      if (!Number.isNaN(atr)) {
        atr = (atr * (ATR_PERIOD - 1) + tr) / ATR_PERIOD;
      } else {
        trSum += tr;
        if (++trCount === ATR_PERIOD) atr = trSum / ATR_PERIOD;
      }
      const change = close - prevClose;
      const gain = change > 0 ? change : 0;
      const loss = change < 0 ? -change : 0;
      if (!Number.isNaN(avgGain)) {
        avgGain = (avgGain * (RSI_PERIOD - 1) + gain) / RSI_PERIOD;
        avgLoss = (avgLoss * (RSI_PERIOD - 1) + loss) / RSI_PERIOD;
      } else {
        gainSum += gain;
        lossSum += loss;
        if (++changeCount === RSI_PERIOD) {
          avgGain = gainSum / RSI_PERIOD;
          avgLoss = lossSum / RSI_PERIOD;
        }
      }
    }
    let rsi14: number | null = null;
    if (!Number.isNaN(avgGain)) rsi14 = avgLoss === 0 ? 100 : 100 - 100 / (1 + avgGain / avgLoss);

    let sma20: number | null = null;
    let sma50: number | null = null;
    let volumeSma20: number | null = null;
    let trend: -1 | 0 | 1 | null = null;
    let noDemand = false;
    let noSupply = false;
    let stopping = false;
    if (seen >= 20) {
      const closeSum20 = windowSum(closes, p, 20);
      sma20 = closeSum20 / 20;
      ema20 = Number.isNaN(ema20) ? sma20 : (close - ema20) * K20 + ema20;
      if (seen >= 50) {
        sma50 = (windowSum(closes, p - 20, 30) + closeSum20) / 50;
        ema50 = Number.isNaN(ema50) ? sma50 : (close - ema50) * K50 + ema50;
        trend = close > sma50 && sma20 > sma50 ? 1 : close < sma50 && sma20 < sma50 ? -1 : 0;
      }
      // Bars c−19..c−1 are in both volume windows: the last 20 and the 20 before the current.
      const volumeSum19 = windowSum(volumes, c, 19);
      volumeSma20 = (volumeSum19 + volume) / 20;
      if (seen >= 21) {
        const avgVolume = (volumes[c - 20]! + volumeSum19) / 20;
        if (volume > 1.5 * avgVolume) {
          let spreadSum = 0;
          for (let k = c - 20; k < c; k++) spreadSum += highs[k]! - lows[k]!;
          if (high - low < 0.5 * (spreadSum / 20)) {
            noDemand = close < prevClose;
            noSupply = close > prevClose;
          }
          if (volume > 2.5 * avgVolume) {
            const close20 = closes[c - 20]!;
            const mid = (high + low) / 2;
            stopping = (close20 > prevClose && close >= mid) || (close20 < prevClose && close <= mid);
          }
        }
      }

      // Slide the 20-bar max/min: rescan only when the bar leaving held the extreme.
      if (seen > 20) {
        const lastMax = maxHigh20[c - 1]!;
        maxHigh20[c] = highs[c - 20]! < lastMax ? Math.max(lastMax, high) : windowMax(highs, p, 20);
        const lastMin = minLow20[c - 1]!;
        minLow20[c] = lows[c - 20]! > lastMin ? Math.min(lastMin, low) : windowMin(lows, p, 20);
      } else {
        maxHigh20[c] = windowMax(highs, p, 20);
        minLow20[c] = windowMin(lows, p, 20);
      }
    }

    let structure: 'uptrend' | 'downtrend' | 'range' | null = null;
    if (seen >= 40) {
      const recentHigh = maxHigh20[c]!;
      const recentLow = minLow20[c]!;
      const priorHigh = maxHigh20[c - 20]!;
      const priorLow = minLow20[c - 20]!;
      structure =
        recentHigh > priorHigh && recentLow > priorLow ? 'uptrend' : recentHigh < priorHigh && recentLow < priorLow ? 'downtrend' : 'range';
    }

    rows[i] = {
      ts: bar.ts,
      return_1bar: return1bar,
      return_1d: return1d,
      volatility_20: volatility20,
      volatility_50: volatility50,
      atr_14: nullOf(atr),
      sma_20: sma20,
      sma_50: sma50,
      ema_20: nullOf(ema20),
      ema_50: nullOf(ema50),
      rsi_14: rsi14,
      volume_sma_20: volumeSma20,
      trend_direction: trend,
      market_structure: structure,
      vsa_no_demand: noDemand,
      vsa_no_supply: noSupply,
      vsa_stopping_volume: stopping,
      anomaly,
    };
  }

  return {
    rows,
    state: {
      v: 1,
      closes: tail(closes, p, seen),
      highs: tail(highs, p, Math.min(seen, HL_HIST)),
      lows: tail(lows, p, Math.min(seen, HL_HIST)),
      volumes: tail(volumes, p, Math.min(seen, VOL_HIST)),
      returns: tail(rets, rp, retSeen),
      ema20: nullOf(ema20),
      ema50: nullOf(ema50),
      trCount,
      trSum,
      atr: nullOf(atr),
      changeCount,
      gainSum,
      lossSum,
      avgGain: nullOf(avgGain),
      avgLoss: nullOf(avgLoss),
      day: nullOf(day),
      dayClose: nullOf(dayClose),
      prevDayClose: nullOf(prevDayClose),
    },
  };
}
