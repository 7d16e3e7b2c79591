/**
 * Polygon.io's aggregates API as a market-data source:
 * `GET {baseUrl}/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}?adjusted=true&sort=asc&limit=50000&apiKey=…`,
 * following `next_url` (which lacks the key) until the last page.
 *
 * Normalisation to our conventions (timeframes.ts):
 *  - Crypto tickers carry polygon's `X:` prefix (BTCUSD → X:BTCUSD).
 *  - Polygon stamps a 1d bar at local midnight and a 1w bar at midnight of the Sunday that
 *    starts its week; `barOpen` moves them to midnight of the session date and of the Monday.
 *  - Polygon sends stocks' extended hours (04:00–20:00 ET). An intraday bar aligned to its
 *    timeframe but outside the regular session is dropped; a misaligned one is kept, because
 *    it is a data problem that validation must see and log.
 *  - Polygon's day boundaries are its own (New York for stocks, and a week bar sits on the
 *    Sunday before our Monday), so the request asks for one day more on each side and the
 *    provider keeps the bars whose (normalised) open falls on from..to in our calendar. Like
 *    the synthetic source, a 1w bar belongs to the range holding its Monday.
 *  - An answer whose status is DELAYED comes from a plan whose data lags real time by 15
 *    minutes: the result says so (dataDelayMs), so a session that closed within them is not
 *    taken as final. A page holding fewer results than its resultsCount is retried, not kept.
 *
 * Values are not judged: null, missing or non-numeric fields become NaN (not Number(null),
 * which is 0) and validation rejects the bar. The API key never appears in an error message
 * or cause.
 */
import type { Bar } from '../../analytics/bars.ts';
import { assertIsoDate } from '../../analytics/calendar.ts';
import {
  barOpen,
  calendarOf,
  dayNumberOf,
  dayNumberOfIsoDate,
  intradayMinutes,
  isExpectedBarOpen,
  isoDateOfDayNumber,
  type AssetClass,
  type Timeframe,
} from '../../analytics/timeframes.ts';
import { BadInputError, ConfigError, ProviderResponseError, RateLimitedError, UpstreamUnavailableError } from '../../errors.ts';
import type { FetchRequest, FetchResult, MarketDataProvider } from './types.ts';

export interface PolygonProviderOptions {
  /** Polygon API key, sent as the `apiKey` query parameter. */
  apiKey: string;
  /** @defaultValue 'https://api.polygon.io' */
  baseUrl?: string;
  /** Limit on each HTTP request (one page), body included. @defaultValue 30000 */
  timeoutMs?: number;
  /** @defaultValue globalThis.fetch */
  fetch?: typeof globalThis.fetch;
}

const DEFAULT_BASE_URL = 'https://api.polygon.io';
const DEFAULT_TIMEOUT_MS = 30_000;
/** Used when a 429 comes without Retry-After: polygon's limits are per minute. */
const DEFAULT_RETRY_AFTER_MS = 60_000;
const PAGE_LIMIT = 50_000;
/** How far polygon's data runs behind real time on a plan whose answers say DELAYED. */
export const POLYGON_DELAYED_MS = 15 * 60_000;
/** A guard against a next_url that never ends; a month of crypto minutes is one page. */
const MAX_PAGES = 1_000;
const DAY_MS = 86_400_000;

const RANGES: Record<Timeframe, readonly [multiplier: number, timespan: string]> = {
  '1m': [1, 'minute'],
  '5m': [5, 'minute'],
  '15m': [15, 'minute'],
  '30m': [30, 'minute'],
  '1h': [1, 'hour'],
  '4h': [4, 'hour'],
  '1d': [1, 'day'],
  '1w': [1, 'week'],
};

/** Polygon's ticker for a symbol: crypto pairs are prefixed `X:`. */
export function polygonTicker(symbol: string, assetClass: AssetClass): string {
  return assetClass === 'crypto' && !symbol.startsWith('X:') ? `X:${symbol}` : symbol;
}

/** The market-data source backed by Polygon.io's aggregates API. */
export function createPolygonProvider(options: PolygonProviderOptions): MarketDataProvider {
  const { apiKey } = options;
  if (typeof apiKey !== 'string' || apiKey.trim() === '') throw new ConfigError('polygon: apiKey is required');
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new ConfigError(`polygon: timeoutMs must be a positive number, got ${String(timeoutMs)}`);
  const baseUrl = (options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  let baseOrigin: string;
  try {
    baseOrigin = new URL(baseUrl).origin;
  } catch {
    throw new ConfigError(`polygon: baseUrl is not a URL: ${baseUrl}`);
  }
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const keyParam = `apiKey=${encodeURIComponent(apiKey)}`;
  const redact = (text: string): string => redactKey(text, apiKey);

  /** Where to GET a next_url: as given on our origin, else its path and query under baseUrl (a proxy keeps working). */
  function nextPageUrl(nextUrl: string, label: string): string {
    let next: URL;
    try {
      next = new URL(nextUrl, `${baseUrl}/`);
    } catch {
      throw new ProviderResponseError(`${label}: next_url is not a URL`);
    }
    if (next.searchParams.has('apiKey')) next.searchParams.delete('apiKey');
    const target = next.origin === baseOrigin ? next.href : `${baseUrl}${next.pathname}${next.search}`;
    return `${target}${target.includes('?') ? '&' : '?'}${keyParam}`;
  }

  interface Page {
    status: number;
    text: string;
    headers: Headers;
    elapsedMs: number;
  }

  async function getPage(url: string, label: string, signal: AbortSignal | undefined): Promise<Page> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const started = performance.now();
    try {
      const response = await fetchImpl(url, {
        headers: { accept: 'application/json' },
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      // The body is read under the same signal, so a stalled body also times out.
      const text = await response.text();
      return { status: response.status, text, headers: response.headers, elapsedMs: performance.now() - started };
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const cause = redactError(error, apiKey);
      if (timeout.aborted) throw new UpstreamUnavailableError(`${label}: no answer within ${timeoutMs} ms`, { cause });
      throw new UpstreamUnavailableError(`${label}: request failed: ${cause.message}`, { cause });
    }
  }

  function assertOk(page: Page, label: string): void {
    const { status } = page;
    if (status >= 200 && status < 300) return;
    const message = redact(providerMessage(page.text));
    if (status === 429) {
      throw new RateLimitedError(`${label}: rate limited (429): ${message}`, {
        retryAfterMs: parseRetryAfter(page.headers.get('retry-after')) ?? DEFAULT_RETRY_AFTER_MS,
      });
    }
    if (status >= 500) throw new UpstreamUnavailableError(`${label}: HTTP ${status}: ${message}`);
    throw new ProviderResponseError(`${label}: HTTP ${status}: ${message}`, { status });
  }

  return {
    name: 'polygon',
    async fetchBars(request: FetchRequest): Promise<FetchResult> {
      request.signal?.throwIfAborted();
      const { symbol, assetClass, timeframe } = request;
      const label = `polygon ${symbol} ${timeframe} ${request.from}..${request.to}`;
      const fromDay = dayNumberOfIsoDate(assertIsoDate(request.from));
      const toDay = dayNumberOfIsoDate(assertIsoDate(request.to));
      if (fromDay > toDay) throw new BadInputError(`${label}: from is after to`);
      const calendar = calendarOf(assetClass);
      const intraday = intradayMinutes(timeframe) !== null;
      const [multiplier, timespan] = RANGES[timeframe];
      const ticker = encodeURIComponent(polygonTicker(symbol, assetClass)).replace(/%3A/gi, ':');

      const normalise = (t: number): number => {
        if (!Number.isFinite(t) || intraday) return t;
        // +2 days lands inside the same week whether polygon stamped its Sunday or our Monday,
        // whatever a DST switch does to that Sunday's midnight.
        return timeframe === '1w' ? barOpen(t + 2 * DAY_MS, timeframe, calendar) : barOpen(t, timeframe, calendar);
      };
      const keep = (ts: number): boolean => {
        if (!Number.isFinite(ts)) return true;
        const day = dayNumberOf(ts, calendar);
        if (day < fromDay || day > toDay) return false;
        // Extended hours: aligned but not a session slot. Misaligned bars stay for validation.
        return !intraday || barOpen(ts, timeframe, calendar) !== ts || isExpectedBarOpen(ts, timeframe, calendar);
      };

      const bars: Bar[] = [];
      let requests = 0;
      let responseTimeMs = 0;
      let quotaRemaining: number | null = null;
      let delayed = false;
      let url: string | null =
        `${baseUrl}/v2/aggs/ticker/${ticker}/range/${multiplier}/${timespan}/` +
        `${isoDateOfDayNumber(fromDay - 1)}/${isoDateOfDayNumber(toDay + 1)}` +
        `?adjusted=true&sort=asc&limit=${PAGE_LIMIT}&${keyParam}`;

      while (url !== null) {
        if (requests >= MAX_PAGES) throw new ProviderResponseError(`${label}: more than ${MAX_PAGES} pages, next_url does not end`);
        const page = await getPage(url, label, request.signal);
        requests += 1;
        responseTimeMs += page.elapsedMs;
        quotaRemaining = parseQuota(page.headers.get('x-ratelimit-remaining'));
        assertOk(page, label);

        const body = parseBody(page.text, label, redact);
        delayed ||= body.delayed;
        for (let i = 0; i < body.results.length; i++) {
          const raw = body.results[i];
          if (!isRecord(raw)) throw new ProviderResponseError(`${label}: results[${i}] is not an object`);
          const ts = normalise(toNumber(raw.t));
          if (!keep(ts)) continue;
          bars.push({ ts, open: toNumber(raw.o), high: toNumber(raw.h), low: toNumber(raw.l), close: toNumber(raw.c), volume: toNumber(raw.v) });
        }
        url = body.nextUrl === null ? null : nextPageUrl(body.nextUrl, label);
      }
      return { bars, requests, responseTimeMs, quotaRemaining, ...(delayed ? { dataDelayMs: POLYGON_DELAYED_MS } : {}) };
    },
  };
}

interface PolygonBody {
  results: unknown[];
  nextUrl: string | null;
  /** Status DELAYED: the plan's data lags real time (by 15 minutes). */
  delayed: boolean;
}

/** Checks the parts of a 200 body we rely on; anything else is polygon's business. */
function parseBody(text: string, label: string, redact: (text: string) => string): PolygonBody {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ProviderResponseError(`${label}: body is not JSON: ${redact(snippet(text))}`);
  }
  if (!isRecord(body)) throw new ProviderResponseError(`${label}: body is not a JSON object`);
  const { status, results, resultsCount, next_url: nextUrl } = body;
  if (status === undefined || status === null) throw new ProviderResponseError(`${label}: body has no status`);
  if (status !== 'OK' && status !== 'DELAYED') {
    throw new ProviderResponseError(`${label}: status ${redact(String(status))}: ${redact(providerMessage(text))}`);
  }
  if (nextUrl !== undefined && nextUrl !== null && typeof nextUrl !== 'string') throw new ProviderResponseError(`${label}: next_url is not a string`);
  const next = typeof nextUrl === 'string' && nextUrl !== '' ? nextUrl : null;
  if (results !== undefined && results !== null && !Array.isArray(results)) throw new ProviderResponseError(`${label}: results is not an array`);
  // resultsCount 0 comes without `results`. A page holding fewer results than it counts was cut
  // short on the way (or lost its array): taken as it is, the chunk would be stored with holes
  // and marked complete, never to be fetched again. Asking again may well get the whole page.
  const got = Array.isArray(results) ? results.length : 0;
  if (typeof resultsCount === 'number' && resultsCount !== got) {
    throw new UpstreamUnavailableError(`${label}: the page holds ${got} results where its resultsCount says ${resultsCount}`);
  }
  return { results: Array.isArray(results) ? results : [], nextUrl: next, delayed: status === 'DELAYED' };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A number as sent, a numeric string converted, anything else NaN (Number(null) would be 0). */
function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '') return Number(value);
  return NaN;
}

/** Polygon puts its explanation in `error` (401, 429, 400) or `message` (403). */
function providerMessage(text: string): string {
  try {
    const body: unknown = JSON.parse(text);
    if (isRecord(body)) {
      if (typeof body.error === 'string') return body.error;
      if (typeof body.message === 'string') return body.message;
    }
  } catch {
    // Not JSON (a proxy's HTML page): show its start.
  }
  return snippet(text);
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat === '') return '(empty body)';
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

/** Retry-After in seconds or as an HTTP date; undefined when absent or unreadable. */
function parseRetryAfter(header: string | null): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const value = header.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function parseQuota(header: string | null): number | null {
  if (header === null || !/^\s*\d+\s*$/.test(header)) return null;
  return Number(header);
}

function redactKey(text: string, apiKey: string): string {
  let out = text.replace(/(apiKey=)[^&\s"'#]*/gi, '$1REDACTED');
  for (const form of new Set([apiKey, encodeURIComponent(apiKey)])) out = out.split(form).join('REDACTED');
  return out;
}

/**
 * A copy of a thrown value (and its causes) with the key redacted: fetch's own errors can
 * quote the URL ("Failed to parse URL from …?apiKey=…"). Name and code survive, so
 * classifyError still reads them.
 */
function redactError(thrown: unknown, apiKey: string, depth = 0): Error {
  const source = thrown instanceof Error ? thrown : new Error(String(thrown));
  const copy = new Error(redactKey(source.message, apiKey));
  copy.name = source.name;
  if (source.stack !== undefined) copy.stack = redactKey(source.stack, apiKey);
  const code = (source as { code?: unknown }).code;
  if (code !== undefined) Object.assign(copy, { code });
  if (source.cause !== undefined && depth < 4) copy.cause = redactError(source.cause, apiKey, depth + 1);
  return copy;
}
