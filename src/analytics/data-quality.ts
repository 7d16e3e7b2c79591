/**
 * Data quality of one symbol and timeframe per market-local day, and the symbol's status,
 * by the enrichment seed's rules. Pure: the fetch time and "now" are arguments.
 *
 * Per day, each component is a fraction in [0, 1]:
 *  - completeness: valid bars / bars the sessions of the day should have (gaps are the missing slots);
 *  - validation: valid bars / bars delivered (0 when nothing was delivered);
 *  - features: share of the day's valid bars whose long-window features (SMA 50, volatility 50,
 *    RSI 14, ATR 14) exist, i.e. that had enough history behind them;
 *  - freshness: 1 when the day's session had closed when it was fetched (final data), 0.5 when
 *    it was fetched mid-session (provisional).
 * quality score = 0.4 completeness + 0.3 validation + 0.2 features + 0.1 freshness.
 */
import type { Bar } from './bars.ts';
import type { BarReject } from './bar-validation.ts';
import type { FeatureRow } from './features.ts';
import {
  dayNumberOf,
  dayNumberOfIsoDate,
  expectedBarOpens,
  isoDateOfDayNumber,
  sessionMinutes,
  utcMsOfLocal,
  type MarketCalendar,
  type Timeframe,
} from './timeframes.ts';

export const QUALITY_WEIGHTS = { completeness: 0.4, validation: 0.3, features: 0.2, freshness: 0.1 } as const;

export interface DailyQuality {
  date: string;
  totalRecords: number;
  validatedRecords: number;
  /** Percent, 2 decimals. */
  validationRate: number;
  gapsDetected: number;
  anomaliesDetected: number;
  completeness: number;
  featuresRate: number;
  freshness: number;
  /** 0–1, 2 decimals. */
  qualityScore: number;
}

export interface QualityInput {
  timeframe: Timeframe;
  calendar: MarketCalendar;
  /** Dates fetched (inclusive). */
  from: string;
  to: string;
  /** Valid bars, ascending, and their feature rows (same order). */
  valid: readonly Bar[];
  features: readonly FeatureRow[];
  rejects: readonly BarReject[];
  /** When the data was fetched, epoch ms. */
  fetchedAt: number;
}

const DAY_MS = 86_400_000;
const round = (value: number, places: number) => Math.round(value * 10 ** places) / 10 ** places;

interface DayTally {
  total: number;
  valid: number;
  anomalies: number;
  warmedUp: number;
  slots: Set<number>;
}

/** One row per day of from..to that has expected bars or delivered any. */
export function dailyQuality(input: QualityInput): DailyQuality[] {
  const { calendar, timeframe } = input;
  const tallies = new Map<number, DayTally>();
  const tally = (day: number) => {
    let t = tallies.get(day);
    if (!t) tallies.set(day, (t = { total: 0, valid: 0, anomalies: 0, warmedUp: 0, slots: new Set() }));
    return t;
  };
  input.valid.forEach((bar, i) => {
    const t = tally(dayNumberOf(bar.ts, calendar));
    t.total++;
    t.valid++;
    t.slots.add(bar.ts);
    const f = input.features[i];
    if (f?.anomaly) t.anomalies++;
    if (f && f.sma_50 !== null && f.volatility_50 !== null && f.rsi_14 !== null && f.atr_14 !== null) t.warmedUp++;
  });
  for (const reject of input.rejects) {
    if (Number.isSafeInteger(reject.bar.ts)) tally(dayNumberOf(reject.bar.ts, calendar)).total++;
  }

  const rows: DailyQuality[] = [];
  const last = dayNumberOfIsoDate(input.to);
  for (let day = dayNumberOfIsoDate(input.from); day <= last; day++) {
    const expected = expectedBarOpens(day, timeframe, calendar);
    const t = tallies.get(day);
    if (expected.length === 0 && !t) continue;
    const present = t ? expected.filter((ts) => t.slots.has(ts)).length : 0;
    const total = t?.total ?? 0;
    const valid = t?.valid ?? 0;
    const completeness = expected.length === 0 ? 1 : present / expected.length;
    const validation = total === 0 ? 0 : valid / total;
    const featuresRate = valid === 0 ? 0 : (t?.warmedUp ?? 0) / valid;
    const freshness = input.fetchedAt >= sessionEnd(day, timeframe, calendar) ? 1 : 0.5;
    rows.push({
      date: isoDateOfDayNumber(day),
      totalRecords: total,
      validatedRecords: valid,
      validationRate: round(validation * 100, 2),
      gapsDetected: expected.length - present,
      anomaliesDetected: t?.anomalies ?? 0,
      completeness: round(completeness, 2),
      featuresRate: round(featuresRate, 2),
      freshness,
      qualityScore: round(
        QUALITY_WEIGHTS.completeness * completeness +
          QUALITY_WEIGHTS.validation * validation +
          QUALITY_WEIGHTS.features * featuresRate +
          QUALITY_WEIGHTS.freshness * freshness,
        2,
      ),
    });
  }
  return rows;
}

/** When the data of a day is final: its session's close (a week's: the end of its Sunday). */
function sessionEnd(day: number, timeframe: Timeframe, calendar: MarketCalendar): number {
  if (timeframe === '1w') return utcMsOfLocal((day + 7) * DAY_MS, calendar);
  const session = sessionMinutes(day, calendar);
  return utcMsOfLocal(day * DAY_MS + (session ? session.close : 24 * 60) * 60_000, calendar);
}

export const ENRICHMENT_STATUSES = ['healthy', 'warning', 'stale', 'error', 'not_enriched'] as const;
export type EnrichmentStatus = (typeof ENRICHMENT_STATUSES)[number];

export interface StatusInput {
  /** The last enrichment of the symbol failed (and nothing succeeded since). */
  failed: boolean;
  /** Mean quality score of the symbol's recent days; null when never enriched. */
  qualityScore: number | null;
  /** Whole sessions (trading days for stocks, days for crypto) completed since its newest bar's; null when none. */
  sessionsBehind: number | null;
}

/**
 * The seed's status rules: error when enrichment failed; not_enriched without data; stale when
 * more than 3 days behind or the score is under 0.85; warning when 1–3 days behind or the
 * score is 0.85–0.9; healthy otherwise (score above 0.9, less than a day behind). Days are
 * counted in sessions, so a stock is not "stale" over a long weekend.
 */
export function enrichmentStatus(input: StatusInput): EnrichmentStatus {
  if (input.failed) return 'error';
  if (input.qualityScore === null || input.sessionsBehind === null) return 'not_enriched';
  if (input.sessionsBehind > 3 || input.qualityScore < 0.85) return 'stale';
  if (input.sessionsBehind >= 1 || input.qualityScore <= 0.9) return 'warning';
  return 'healthy';
}
