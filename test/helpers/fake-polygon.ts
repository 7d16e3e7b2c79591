/**
 * A fake Polygon.io aggregates API for tests: a real HTTP server (node:http, 127.0.0.1, a free
 * port) that answers like polygon, so `createPolygonProvider({ baseUrl: fake.url, apiKey: fake.apiKey })`
 * runs its real HTTP path.
 *
 * Endpoint: `GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{minute|hour|day|week}/{from}/{to}`
 * with `apiKey` (required: 401 "API Key was not provided" / "Unknown API Key"), `adjusted`,
 * `sort` (asc|desc), `limit` (default 5000, at most 50000). from/to are YYYY-MM-DD (local dates:
 * New York for stocks, UTC for `X:` crypto tickers) or epoch ms, both inclusive.
 *
 * Data: deterministic bars for any ticker, computed, not stored: prices are a closed-form
 * wave per ticker (a hash of the ticker sets level and phase) plus hashed noise, so a slot's
 * bar is the same in every request. Stocks trade NYSE session days only, with intraday slots
 * from 04:00 to 20:00 ET (extended hours; `extendedHours: false` keeps the regular session),
 * slots on clock boundaries from local midnight. Crypto trades every UTC minute. Stamps follow
 * polygon: ms at the slot open, a day bar at local midnight, a week bar at midnight of the Sunday
 * starting it (stocks: only weeks with a session). `fakePolygonAggregates` computes the raw
 * results; `fakePolygonBars` the bars the provider should return from them.
 *
 * Pages: at most min(limit, pageSize) results per answer; when more remain, `next_url` points
 * at the same route with the next bar's ms as `from` (sort=asc) and a `cursor`, without apiKey.
 * An empty answer has no `results` field (resultsCount 0).
 *
 * Faults (`fail` option or `addFaults`), consumed in order: a request takes the first fault
 * whose ticker matches (any ticker when unset), `times` times (default 1). Kinds:
 *  - '429' (polygon's rate-limit body; Retry-After when retryAfterSeconds is set), '500', '503',
 *    '400', '401', '403' (polygon's bodies);
 *  - 'garbage': 200 `{"status":"OK","results":"oops"}`; 'no-status': 200 JSON without status;
 *    'not-json': 200 with an HTML page;
 *  - 'timeout': never answers (the socket is freed when the client gives up or on close());
 *  - 'reset': destroys the connection;
 *  - 'bad-values': 200 with the real page, except results[0].o null, results[1].h "n/a",
 *    results[2] with high below low, results[3] without v;
 *  - 'empty': 200 with polygon's answer for a range it has no bars in (no `results`).
 * Rate limit (`maxPerWindow` per `windowMs`, a fixed window from the first request): over it,
 * 429 with Retry-After; while set, every answer carries X-RateLimit-Remaining.
 * Every request is recorded in `requests` (path, query including apiKey, status; 0 when unanswered; arrival time).
 * close() is idempotent.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DateTime } from 'luxon';
import type { Bar } from '../../src/analytics/bars.ts';
import {
  calendarOf,
  dayNumberOfIsoDate,
  expectedBarOpens,
  intradayMinutes,
  isSessionDay,
  sessionMinutes,
  utcMsOfLocal,
  type AssetClass,
  type MarketCalendar,
  type Timeframe,
} from '../../src/analytics/timeframes.ts';

export type FakePolygonFaultKind = '429' | '500' | '503' | '400' | '401' | '403' | 'garbage' | 'no-status' | 'not-json' | 'timeout' | 'reset' | 'bad-values' | 'empty';

export interface FakePolygonFault {
  /** Polygon's ticker ('AAPL', 'X:BTCUSD'; 'BTCUSD' matches X:BTCUSD too); every ticker when unset. */
  ticker?: string;
  kind: FakePolygonFaultKind;
  /** Requests it answers before it is used up. @defaultValue 1 */
  times?: number;
  /** Retry-After (seconds) sent with '429'; none when unset. */
  retryAfterSeconds?: number;
}

export interface FakePolygonOptions {
  /** The one key accepted. @defaultValue 'test-key' */
  apiKey?: string;
  /** Most results per answer, whatever `limit` says. @defaultValue 50000 */
  pageSize?: number;
  fail?: FakePolygonFault[];
  /** Requests allowed per window; unlimited when unset. */
  maxPerWindow?: number;
  /** @defaultValue 60000 */
  windowMs?: number;
  /** `status` of successful answers. @defaultValue 'OK' */
  status?: 'OK' | 'DELAYED';
  /** Stocks' intraday slots from 04:00 to 20:00 ET rather than the regular session. @defaultValue true */
  extendedHours?: boolean;
  /** Milliseconds every answer waits before it is sent (a slow source, so a test can kill a worker mid-fetch). @defaultValue 0 */
  delayMs?: number;
}

export interface FakePolygonRequest {
  path: string;
  query: Record<string, string>;
  /** HTTP status answered; 0 while unanswered or when the fault gave none. */
  status: number;
  /** When it arrived (ms since the epoch). */
  at: number;
}

export interface FakePolygon {
  /** Base URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  apiKey: string;
  requests: FakePolygonRequest[];
  addFaults(...faults: FakePolygonFault[]): void;
  clearFaults(): void;
  close(): Promise<void>;
}

/** One aggregate as polygon sends it. */
export interface PolygonAggregate {
  v: number;
  vw: number;
  o: number;
  c: number;
  h: number;
  l: number;
  t: number;
  n: number;
}

export type PolygonTimespan = 'minute' | 'hour' | 'day' | 'week';

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
const MAX_LIMIT = 50_000;
const DEFAULT_LIMIT = 5_000;
const EXTENDED_OPEN_MINUTE = 4 * 60;
const EXTENDED_CLOSE_MINUTE = 20 * 60;
const RATE_LIMIT_MESSAGE =
  "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue. https://polygon.io/pricing";

function calendarOfTicker(ticker: string): MarketCalendar {
  return ticker.startsWith('X:') ? '24x7' : 'nyse';
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function mix(a: number, b: number): number {
  let h = (a ^ Math.imul(b | 0, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function unit(a: number, b: number): number {
  return mix(a, b) / 0x1_0000_0000;
}

function priceAt(seed: number, ms: number): number {
  const level = 20 + (seed % 480);
  const days = ms / DAY_MS;
  return level * (1 + 0.1 * Math.sin(days / 9.7 + seed) + 0.02 * Math.sin(days * 7.3 + seed / 7) + 0.002 * (unit(seed, ms / MINUTE_MS) - 0.5));
}

/** The bar of ticker seed `seed` over [start, end). High and low bound open and close after rounding. */
function aggregateOf(seed: number, start: number, end: number): PolygonAggregate {
  const o = Math.round(priceAt(seed, start) * 1e4) / 1e4;
  const c = Math.round(priceAt(seed, end) * 1e4) / 1e4;
  const slot = start / MINUTE_MS;
  const h = Math.ceil(Math.max(o, c) * (1 + 0.003 * unit(seed ^ 0x5bd1e995, slot)) * 1e4) / 1e4;
  const l = Math.floor(Math.min(o, c) * (1 - 0.003 * unit(seed ^ 0x1b873593, slot)) * 1e4) / 1e4;
  const v = Math.round((end - start) / MINUTE_MS) * (100 + (mix(seed, slot) % 5000));
  return { v, vw: Math.round(((h + l + c) / 3) * 1e4) / 1e4, o, c, h, l, t: start, n: Math.max(1, Math.floor(v / 150)) };
}

/** Epoch ms of midnight starting local day `day` (exact on DST-switch Sundays too). */
function localMidnight(day: number, calendar: MarketCalendar): number {
  if (calendar === '24x7') return day * DAY_MS;
  const date = new Date(day * DAY_MS);
  return DateTime.fromObject(
    { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() },
    { zone: 'America/New_York' },
  ).toMillis();
}

function isSunday(day: number): boolean {
  // 1970-01-01 (day 0) was a Thursday.
  return (day + 4) % 7 === 0;
}

function weekHasSession(sunday: number, calendar: MarketCalendar): boolean {
  for (let d = sunday + 1; d <= sunday + 6; d++) if (isSessionDay(d, calendar)) return true;
  return false;
}

/**
 * The aggregates the fake serves for `ticker` with opens in [fromMs, toMs], ascending.
 * `multiplier` applies to minute and hour; day and week take 1.
 */
export function fakePolygonAggregates(
  ticker: string,
  multiplier: number,
  timespan: PolygonTimespan,
  fromMs: number,
  toMs: number,
  options: { extendedHours?: boolean } = {},
): PolygonAggregate[] {
  const calendar = calendarOfTicker(ticker);
  const seed = fnv1a(ticker);
  const extended = options.extendedHours ?? true;
  const out: PolygonAggregate[] = [];
  const push = (start: number, end: number): void => {
    if (start >= fromMs && start <= toMs) out.push(aggregateOf(seed, start, end));
  };
  // A day either side: local days and UTC instants disagree by the zone offset.
  const firstDay = Math.floor(fromMs / DAY_MS) - 1;
  const lastDay = Math.floor(toMs / DAY_MS) + 1;
  for (let day = firstDay; day <= lastDay; day++) {
    if (timespan === 'week') {
      if (isSunday(day) && (calendar === '24x7' || weekHasSession(day, calendar))) push(localMidnight(day, calendar), localMidnight(day + 7, calendar));
      continue;
    }
    const session = sessionMinutes(day, calendar);
    if (session === null) continue;
    if (timespan === 'day') {
      push(localMidnight(day, calendar), localMidnight(day + 1, calendar));
      continue;
    }
    const size = multiplier * (timespan === 'hour' ? 60 : 1);
    const [open, close] = calendar === 'nyse' && extended ? [EXTENDED_OPEN_MINUTE, EXTENDED_CLOSE_MINUTE] : [session.open, session.close];
    for (let m = Math.floor(open / size) * size; m < close; m += size) {
      const start = utcMsOfLocal(day * DAY_MS + m * MINUTE_MS, calendar);
      push(start, start + size * MINUTE_MS);
    }
  }
  return out;
}

/**
 * The bars `createPolygonProvider` should return from the fake for a request: one per expected
 * slot of from..to (regular session for stocks), week bars moved to their Monday.
 */
export function fakePolygonBars(request: { symbol: string; assetClass: AssetClass; timeframe: Timeframe; from: string; to: string }): Bar[] {
  const calendar = calendarOf(request.assetClass);
  const ticker = request.assetClass === 'crypto' ? `X:${request.symbol}` : request.symbol;
  const seed = fnv1a(ticker);
  const minutes = intradayMinutes(request.timeframe);
  const bars: Bar[] = [];
  for (let day = dayNumberOfIsoDate(request.from); day <= dayNumberOfIsoDate(request.to); day++) {
    for (const ts of expectedBarOpens(day, request.timeframe, calendar)) {
      let agg: PolygonAggregate;
      if (minutes !== null) agg = aggregateOf(seed, ts, ts + minutes * MINUTE_MS);
      else if (request.timeframe === '1d') agg = aggregateOf(seed, localMidnight(day, calendar), localMidnight(day + 1, calendar));
      else agg = aggregateOf(seed, localMidnight(day - 1, calendar), localMidnight(day + 6, calendar));
      bars.push({ ts, open: agg.o, high: agg.h, low: agg.l, close: agg.c, volume: agg.v });
    }
  }
  return bars;
}

const ROUTE = /^\/v2\/aggs\/ticker\/([^/]+)\/range\/([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)\/?$/;

interface Cursor {
  limit: number;
  sort: 'asc' | 'desc';
  adjusted: boolean;
}

/** An inclusive ms bound from a path segment: a date (start or end of that local day) or ms. */
function boundOf(segment: string, calendar: MarketCalendar, end: boolean): number | null {
  if (/^\d+$/.test(segment)) return Number(segment);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(segment)) return null;
  const day = dayNumberOfIsoDate(segment);
  if (!Number.isFinite(day)) return null;
  return end ? localMidnight(day + 1, calendar) - 1 : localMidnight(day, calendar);
}

export async function startFakePolygon(options: FakePolygonOptions = {}): Promise<FakePolygon> {
  const apiKey = options.apiKey ?? 'test-key';
  const pageSize = options.pageSize ?? MAX_LIMIT;
  const windowMs = options.windowMs ?? 60_000;
  const okStatus = options.status ?? 'OK';
  const faults: Array<FakePolygonFault & { left: number }> = [];
  const requests: FakePolygonRequest[] = [];
  let window = { start: 0, count: 0 };
  let requestSeq = 0;
  let url = '';

  const addFaults = (...more: FakePolygonFault[]): void => {
    for (const fault of more) faults.push({ ...fault, left: fault.times ?? 1 });
  };
  addFaults(...(options.fail ?? []));

  function takeFault(ticker: string): FakePolygonFault | null {
    const index = faults.findIndex((f) => f.ticker === undefined || f.ticker === ticker || `X:${f.ticker}` === ticker);
    if (index < 0) return null;
    const fault = faults[index] as FakePolygonFault & { left: number };
    fault.left -= 1;
    if (fault.left <= 0) faults.splice(index, 1);
    return fault;
  }

  function handle(req: IncomingMessage, res: ServerResponse, record: FakePolygonRequest): void {
    const requestId = mix(0x1234, ++requestSeq).toString(16).padStart(8, '0').repeat(4);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      record.status = status;
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      const type = typeof body === 'string' ? 'text/html' : 'application/json';
      if (options.maxPerWindow !== undefined) headers['X-RateLimit-Remaining'] = String(Math.max(0, options.maxPerWindow - window.count));
      res.writeHead(status, { 'content-type': type, ...headers });
      res.end(text);
    };
    const query = Object.fromEntries(new URL(req.url ?? '/', 'http://fake').searchParams);

    if (query.apiKey === undefined || query.apiKey === '') {
      send(401, { status: 'ERROR', request_id: requestId, error: 'API Key was not provided' });
      return;
    }
    if (query.apiKey !== apiKey) {
      send(401, { status: 'ERROR', request_id: requestId, error: 'Unknown API Key' });
      return;
    }
    if (options.maxPerWindow !== undefined) {
      const now = Date.now();
      if (now - window.start >= windowMs) window = { start: now, count: 0 };
      window.count += 1;
      if (window.count > options.maxPerWindow) {
        const seconds = Math.max(1, Math.ceil((window.start + windowMs - now) / 1000));
        send(429, { status: 'ERROR', request_id: requestId, error: RATE_LIMIT_MESSAGE }, { 'Retry-After': String(seconds) });
        return;
      }
    }
    const match = ROUTE.exec(record.path);
    if (!match) {
      send(404, { status: 'NOT_FOUND', request_id: requestId, message: 'The requested resource was not found.' });
      return;
    }
    const [, rawTicker = '', rawMultiplier = '', timespan = '', rawFrom = '', rawTo = ''] = match;
    const ticker = decodeURIComponent(rawTicker);

    const fault = takeFault(ticker);
    switch (fault?.kind) {
      case undefined:
      case 'bad-values':
      case 'empty':
        break;
      case '429':
        send(429, { status: 'ERROR', request_id: requestId, error: RATE_LIMIT_MESSAGE }, fault.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(fault.retryAfterSeconds) });
        return;
      case '500':
      case '503':
        send(Number(fault.kind), { status: 'ERROR', request_id: requestId, error: 'Internal server error' });
        return;
      case '400':
        send(400, { status: 'ERROR', request_id: requestId, error: 'Could not parse the time parameter.' });
        return;
      case '401':
        send(401, { status: 'ERROR', request_id: requestId, error: 'Unknown API Key' });
        return;
      case '403':
        send(403, {
          status: 'NOT_AUTHORIZED',
          request_id: requestId,
          message: 'You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing',
        });
        return;
      case 'garbage':
        send(200, { status: 'OK', request_id: requestId, results: 'oops' });
        return;
      case 'no-status':
        send(200, { ticker, request_id: requestId, results: [] });
        return;
      case 'not-json':
        send(200, '<html><body><h1>502 Bad Gateway</h1></body></html>');
        return;
      case 'timeout':
        return;
      case 'reset':
        req.socket.destroy();
        return;
    }

    const multiplier = Number(rawMultiplier);
    if (!Number.isInteger(multiplier) || multiplier < 1 || !['minute', 'hour', 'day', 'week'].includes(timespan) || ((timespan === 'day' || timespan === 'week') && multiplier !== 1)) {
      send(400, { status: 'ERROR', request_id: requestId, error: `The fake does not serve ${rawMultiplier}/${timespan} ranges.` });
      return;
    }
    let cursor: Cursor;
    if (query.cursor !== undefined) {
      try {
        cursor = JSON.parse(Buffer.from(query.cursor, 'base64url').toString('utf8')) as Cursor;
      } catch {
        send(400, { status: 'ERROR', request_id: requestId, error: 'Invalid cursor.' });
        return;
      }
    } else {
      const limit = query.limit === undefined ? DEFAULT_LIMIT : Number(query.limit);
      cursor = { limit: Number.isInteger(limit) && limit > 0 ? Math.min(limit, MAX_LIMIT) : DEFAULT_LIMIT, sort: query.sort === 'desc' ? 'desc' : 'asc', adjusted: query.adjusted !== 'false' };
    }
    const calendar = calendarOfTicker(ticker);
    const fromMs = boundOf(rawFrom, calendar, false);
    const toMs = boundOf(rawTo, calendar, true);
    if (fromMs === null || toMs === null) {
      send(400, { status: 'ERROR', request_id: requestId, error: "Could not parse the time parameter: 'from'. Use YYYY-MM-DD or Unix MS Timestamps" });
      return;
    }
    const all = fault?.kind === 'empty' ? [] : fakePolygonAggregates(ticker, multiplier, timespan as PolygonTimespan, fromMs, toMs, { extendedHours: options.extendedHours });
    if (cursor.sort === 'desc') all.reverse();
    const size = Math.min(cursor.limit, pageSize);
    const page: Array<Record<string, unknown>> = all.slice(0, size).map((agg) => ({ ...agg }));
    const body: Record<string, unknown> = {
      ticker,
      queryCount: all.length,
      resultsCount: page.length,
      adjusted: cursor.adjusted,
    };
    if (page.length > 0) body.results = page;
    body.status = okStatus;
    body.request_id = requestId;
    body.count = page.length;
    const next = all[size];
    if (next !== undefined) {
      const [nextFrom, nextTo] = cursor.sort === 'asc' ? [next.t, toMs] : [fromMs, next.t];
      const token = Buffer.from(JSON.stringify(cursor)).toString('base64url');
      body.next_url = `${url}/v2/aggs/ticker/${rawTicker}/range/${multiplier}/${timespan}/${nextFrom}/${nextTo}?cursor=${token}`;
    }
    if (fault?.kind === 'bad-values') {
      const [r0, r1, r2, r3] = page;
      if (r0) r0.o = null;
      if (r1) r1.h = 'n/a';
      if (r2) r2.h = Number(r2.l) - 1;
      if (r3) delete r3.v;
    }
    send(200, body);
  }

  const server = createServer((req, res) => {
    const parsed = new URL(req.url ?? '/', 'http://fake');
    const record: FakePolygonRequest = { path: parsed.pathname, query: Object.fromEntries(parsed.searchParams), status: 0, at: Date.now() };
    requests.push(record);
    const answer = () => {
      try {
        handle(req, res, record);
      } catch (error) {
        record.status = 500;
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: 'ERROR', error: `fake polygon failed: ${String(error)}` }));
      }
    };
    if (options.delayMs) setTimeout(answer, options.delayMs);
    else answer();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closing: Promise<void> | undefined;

  return {
    url,
    apiKey,
    requests,
    addFaults,
    clearFaults: () => void faults.splice(0),
    close: () => {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // 'timeout' faults hold sockets open; drop them so close() returns.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

