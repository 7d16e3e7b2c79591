/**
 * The one interface every market-data source implements. A provider fetches the bars of one
 * symbol and timeframe for a range of dates; it normalises the source's format to `Bar`
 * without judging values (validation does that), and throws:
 *  - RateLimitedError (429; retryAfterMs from Retry-After) — the queue slows down, no attempt is used;
 *  - UpstreamUnavailableError (5xx, timeouts, connection errors) — retried with backoff;
 *  - ProviderResponseError (a body that is not the source's format, 4xx other than 429) — permanent
 *    for that chunk: retrying would fetch the same garbage.
 */
import type { Bar } from '../../analytics/bars.ts';
import type { AssetClass, Timeframe } from '../../analytics/timeframes.ts';

export { ProviderResponseError } from '../../errors.ts';

export const PROVIDER_NAMES = ['synthetic', 'csv', 'polygon'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

export interface FetchRequest {
  symbol: string;
  assetClass: AssetClass;
  timeframe: Timeframe;
  /** First date, inclusive (YYYY-MM-DD, market-local calendar date). */
  from: string;
  /** Last date, inclusive. */
  to: string;
  signal?: AbortSignal;
}

export interface FetchResult {
  /** Ascending by ts as the source sent them (validation checks order and duplicates). */
  bars: Bar[];
  /** HTTP requests made (pages); 0 for local sources. */
  requests: number;
  /** Wall time spent waiting on the source. */
  responseTimeMs: number;
  /** Requests left in the source's quota window, when it says. */
  quotaRemaining: number | null;
  /**
   * How far behind real time the source's data ran, when it says so (a delayed-data plan): the
   * bars hold nothing after the fetch's start minus this, so a session that closed within it is
   * not final in them. Relative, so it holds whatever clock the caller goes by.
   */
  dataDelayMs?: number;
}

export interface MarketDataProvider {
  readonly name: ProviderName;
  fetchBars(request: FetchRequest): Promise<FetchResult>;
}
