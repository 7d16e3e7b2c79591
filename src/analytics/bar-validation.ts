/**
 * Validation of the bars a provider delivered for one symbol and timeframe, before any is
 * stored. Each bar either passes or is rejected with one reason; the caller keeps rejected
 * bars out of market.bars and logs them. Checks, in this order per bar:
 *  - bad_timestamp: ts is not a whole number of milliseconds;
 *  - non_finite: a price or the volume is NaN, infinite or missing;
 *  - out_of_range: the bar's market-local date is outside the dates asked for;
 *  - misaligned_timestamp: ts is not the open of a bar of the timeframe;
 *  - outside_session: an aligned open outside the market's sessions (a holiday, after hours);
 *  - non_positive_price: a price ≤ 0;
 *  - ohlc_relation: high below low, open or close, or low above open or close;
 *  - negative_volume;
 *  - duplicate_timestamp: the same ts as an earlier accepted bar (the first one wins);
 *  - non_monotonic_timestamp: a ts earlier than the previous accepted bar's.
 * Outliers are not rejected (a crash is a real price): features.ts flags them as anomalies.
 */
import type { Bar } from './bars.ts';
import { checkBarOpen, dayNumberOf, dayNumberOfIsoDate, type MarketCalendar, type Timeframe } from './timeframes.ts';

export const REJECT_REASONS = [
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
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface BarReject {
  /** The bar as delivered. */
  bar: Bar;
  reason: RejectReason;
  /** What exactly is wrong, for the log. */
  detail: string;
}

export interface ValidationResult {
  /** Bars that passed, in delivered (ascending) order. */
  valid: Bar[];
  rejects: BarReject[];
}

export interface ValidationContext {
  timeframe: Timeframe;
  calendar: MarketCalendar;
  /** First and last market-local dates asked for (YYYY-MM-DD, inclusive). */
  from: string;
  to: string;
}

const PRICE_FIELDS = ['open', 'high', 'low', 'close'] as const;

function rejectOf(bar: Bar, ctx: ValidationContext, fromDay: number, toDay: number): { reason: RejectReason; detail: string } | null {
  if (!Number.isSafeInteger(bar.ts)) return { reason: 'bad_timestamp', detail: `ts ${String(bar.ts)} is not epoch milliseconds` };
  // Field lists are built only for a bar that fails: this runs for every bar of every chunk.
  if (!(Number.isFinite(bar.open) && Number.isFinite(bar.high) && Number.isFinite(bar.low) && Number.isFinite(bar.close) && Number.isFinite(bar.volume))) {
    const bad = [...PRICE_FIELDS, 'volume' as const].filter((field) => !Number.isFinite(bar[field]));
    return { reason: 'non_finite', detail: `${bad.join(', ')} not a finite number` };
  }
  const day = dayNumberOf(bar.ts, ctx.calendar);
  if (day < fromDay || day > toDay) return { reason: 'out_of_range', detail: `date outside ${ctx.from}..${ctx.to}` };
  const open = checkBarOpen(bar.ts, ctx.timeframe, ctx.calendar);
  if (open === 'outside_session') return { reason: 'outside_session', detail: `no ${ctx.calendar} session at ${new Date(bar.ts).toISOString()}` };
  if (open === 'misaligned') return { reason: 'misaligned_timestamp', detail: `${new Date(bar.ts).toISOString()} is not a ${ctx.timeframe} bar open` };
  if (!(bar.open > 0 && bar.high > 0 && bar.low > 0 && bar.close > 0)) {
    const nonPositive = PRICE_FIELDS.filter((field) => bar[field] <= 0);
    return { reason: 'non_positive_price', detail: `${nonPositive.join(', ')} ≤ 0` };
  }
  if (bar.high < bar.low || bar.high < bar.open || bar.high < bar.close || bar.low > bar.open || bar.low > bar.close) {
    return { reason: 'ohlc_relation', detail: `o ${bar.open} h ${bar.high} l ${bar.low} c ${bar.close}` };
  }
  if (bar.volume < 0) return { reason: 'negative_volume', detail: `volume ${bar.volume}` };
  return null;
}

/** Whether strictly ascending `bars` hold one at `ts` (a binary search: only out-of-order bars pay for it). */
function hasTs(bars: readonly Bar[], ts: number): boolean {
  let lo = 0;
  let hi = bars.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const midTs = (bars[mid] as Bar).ts;
    if (midTs === ts) return true;
    if (midTs < ts) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** Splits delivered bars into valid ones and rejects with their reasons. Pure. */
export function validateBars(bars: readonly Bar[], ctx: ValidationContext): ValidationResult {
  const fromDay = dayNumberOfIsoDate(ctx.from);
  const toDay = dayNumberOfIsoDate(ctx.to);
  const valid: Bar[] = [];
  const rejects: BarReject[] = [];
  let lastTs = -Infinity;
  for (const bar of bars) {
    const problem = rejectOf(bar, ctx, fromDay, toDay);
    if (problem) {
      rejects.push({ bar, ...problem });
    } else if (bar.ts === lastTs || (bar.ts < lastTs && hasTs(valid, bar.ts))) {
      rejects.push({ bar, reason: 'duplicate_timestamp', detail: `second bar at ${new Date(bar.ts).toISOString()}` });
    } else if (bar.ts < lastTs) {
      rejects.push({ bar, reason: 'non_monotonic_timestamp', detail: `${new Date(bar.ts).toISOString()} after ${new Date(lastTs).toISOString()}` });
    } else {
      valid.push(bar);
      lastTs = bar.ts;
    }
  }
  return { valid, rejects };
}
