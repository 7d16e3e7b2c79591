/**
 * The embedded market-data source: a deterministic synthetic history for any symbol, no
 * network. Every bar of a symbol is a function of (seed, symbol, calendar, date) alone, so
 * one range fetched in one call or in many chunks gives identical bars, and a resumed
 * backfill equals an uninterrupted one.
 *
 * Model:
 *  - Daily closes are a log-price walk per symbol over session days, anchored at ORIGIN_DATE
 *    on a level hashed from the symbol ($20–$500), with a daily volatility of 1–3% and a
 *    weak pull (REVERSION) towards a gently drifting trend, so 20 years stay plausible. The
 *    walk is computed outward from the anchor (forward after it, backward before it) and
 *    cached per symbol (the last MAX_CACHED_SYMBOLS used), so a day's close never depends
 *    on which range asked for it.
 *  - A session day opens at the previous close plus an overnight gap (none for crypto, which
 *    trades continuously) and follows a 1-minute Brownian bridge from that open to the
 *    day's close, seeded by (seed, symbol, day) only. Minute volume is a per-symbol level
 *    times a day factor (heavier on big moves), a U-shaped intraday profile (a mild
 *    daily cycle for crypto) and lognormal noise.
 *  - Every timeframe aggregates the same minute path over the slots `expectedBarOpens`
 *    lists, then rounds prices to cents. Rounding is monotone, so rounding after
 *    aggregation equals aggregating rounded minutes: a 1d bar equals its day's 1m bars
 *    aggregated, and OHLC relations survive rounding.
 *
 * Range: dates are market-local; an intraday or 1d bar is included when its session date is
 * within from..to, a 1w bar when its Monday is (it then aggregates that whole week, days
 * after `to` included), so each week belongs to exactly one backfill chunk. Dates from
 * 1970-01-01 to 2099-12-31 are accepted.
 */
import type { Bar } from '../../analytics/bars.ts';
import { assertIsoDate } from '../../analytics/calendar.ts';
import {
  calendarOf,
  dayNumberOfIsoDate,
  expectedBarOpens,
  intradayMinutes,
  isoDateOfDayNumber,
  sessionMinutes,
  utcMsOfLocal,
  type MarketCalendar,
} from '../../analytics/timeframes.ts';
import { BadInputError } from '../../errors.ts';
import type { FetchRequest, FetchResult, MarketDataProvider } from './types.ts';

export const DEFAULT_SYNTHETIC_SEED = 1;

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
const ORIGIN_DATE = '2000-01-03';
const ORIGIN_DAY = dayNumberOfIsoDate(ORIGIN_DATE);
const FIRST_DATE = '1970-01-01';
const LAST_DATE = '2099-12-31';
/** Daily pull of the log close towards its trend: stationary spread σ/√(2κ) ≈ 0.2–0.55 in log price. */
const REVERSION = 0.0015;
/** Overnight gap volatility as a fraction of the daily volatility (stocks and ETFs). */
const GAP_SHARE = 0.3;
/** Intraday bridge volatility as a fraction of the daily volatility. */
const INTRADAY_SHARE = 0.8;
/** Largest minute wick, in per-minute price steps. */
const WICK = 0.6;
const MAX_CACHED_SYMBOLS = 256;
const MAX_SESSION_MINUTES = 24 * 60;

// ---------------------------------------------------------------------------
// Hashing and draws
// ---------------------------------------------------------------------------

/** murmur3's finaliser: a good 32-bit mix. */
function mix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hash2(a: number, b: number): number {
  return mix32(a ^ mix32((b + 0x9e3779b9) | 0));
}

/** Uniform in (0, 1) from a 32-bit hash. */
function unit(h: number): number {
  return (h + 0.5) / 4_294_967_296;
}

/** A standard normal from two independent hashes (Box–Muller). */
function normalOf(h1: number, h2: number): number {
  return Math.sqrt(-2 * Math.log(unit(h1))) * Math.cos(2 * Math.PI * unit(h2));
}

function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * 4096 standard normal draws (fixed seed, standardised to mean 0 and variance 1): the minute
 * path indexes it with 12 random bits, one table read instead of a log, a sqrt and a cos.
 */
const NORMALS = ((): Float64Array => {
  const table = new Float64Array(4096);
  for (let i = 0; i < table.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(unit(hash2(0x5eed, i))));
    const theta = 2 * Math.PI * unit(hash2(0x5eed, i + 1));
    table[i] = r * Math.cos(theta);
    table[i + 1] = r * Math.sin(theta);
  }
  let mean = 0;
  for (const x of table) mean += x / table.length;
  let variance = 0;
  for (const x of table) variance += (x - mean) ** 2 / table.length;
  for (let i = 0; i < table.length; i++) table[i] = ((table[i] as number) - mean) / Math.sqrt(variance);
  return table;
})();

/** Lognormal volume noise with mean 1: exp(0.5·z − 0.125). */
const VOLUME_NOISE = NORMALS.map((z) => Math.exp(0.5 * z - 0.125));

// ---------------------------------------------------------------------------
// Sessions and symbols
// ---------------------------------------------------------------------------

interface Session {
  open: number;
  close: number;
}

const ALL_DAY: Session = { open: 0, close: MAX_SESSION_MINUTES };
const nyseSessions = new Map<number, Session | null>();

function sessionOf(day: number, calendar: MarketCalendar): Session | null {
  if (calendar === '24x7') return ALL_DAY;
  let session = nyseSessions.get(day);
  if (session === undefined) {
    session = sessionMinutes(day, calendar);
    nyseSessions.set(day, session);
  }
  return session;
}

interface SymbolModel {
  hash: number;
  calendar: MarketCalendar;
  /** Log close at ORIGIN_DAY; the trend starts there. */
  level: number;
  trendPerDay: number;
  /** Daily log volatility. */
  vol: number;
  /** Mean shares a minute on an ordinary session. */
  minuteVolume: number;
  /** Log closes of ORIGIN_DAY + k. */
  forward: number[];
  /** Log closes of ORIGIN_DAY − 1 − k. */
  backward: number[];
}

const models = new Map<string, SymbolModel>();

function modelOf(symbol: string, calendar: MarketCalendar, seed: number): SymbolModel {
  const key = `${seed}|${calendar}|${symbol}`;
  let model = models.get(key);
  if (model !== undefined) {
    // Re-insert: Map order is the LRU order.
    models.delete(key);
    models.set(key, model);
    return model;
  }
  const seedHash = mix32((seed >>> 0) ^ mix32(Math.floor(seed / 4_294_967_296)));
  const hash = hash2(hashString(symbol), seedHash);
  const u = (k: number): number => unit(hash2(hash, 0x51a7 + k));
  const level = Math.log(20) + u(0) * Math.log(25);
  model = {
    hash,
    calendar,
    level,
    // The trend runs on calendar days: −2% to +6% a year.
    trendPerDay: (-0.02 + 0.08 * u(1)) / 365,
    vol: 0.01 + 0.02 * u(2),
    minuteVolume: Math.exp(Math.log(1e5) + u(3) * Math.log(500)) / (calendar === '24x7' ? 1440 : 390),
    forward: [level],
    backward: [],
  };
  models.set(key, model);
  if (models.size > MAX_CACHED_SYMBOLS) models.delete(models.keys().next().value as string);
  return model;
}

const WALK_SALT = 0x3a1f;
const GAP_SALT = 0x6b2d;
const DAY_VOLUME_SALT = 0x7c41;
const PATH_SALT = 0x1e95;

function dayNormal(model: SymbolModel, salt: number, day: number): number {
  const h = hash2(model.hash ^ salt, day);
  return normalOf(h, mix32(h ^ 0x2545f491));
}

/**
 * The log close of `day` (the last session's close on a non-session day). Steps happen on
 * session days; forward of the anchor a step moves from the previous close, backward of it
 * the same kind of step moves from the next close, so both directions are plain walks.
 */
function logCloseOf(model: SymbolModel, day: number): number {
  const { forward, backward, calendar, level, trendPerDay, vol } = model;
  if (day >= ORIGIN_DAY) {
    for (let d = ORIGIN_DAY + forward.length; d <= day; d++) {
      const prev = forward[forward.length - 1] as number;
      const trend = level + trendPerDay * (d - ORIGIN_DAY);
      forward.push(sessionOf(d, calendar) ? prev + REVERSION * (trend - prev) + vol * dayNormal(model, WALK_SALT, d) : prev);
    }
    return forward[day - ORIGIN_DAY] as number;
  }
  for (let d = ORIGIN_DAY - 1 - backward.length; d >= day; d--) {
    const next = backward.length === 0 ? level : (backward[backward.length - 1] as number);
    const trend = level + trendPerDay * (d - ORIGIN_DAY);
    backward.push(sessionOf(d + 1, calendar) ? next + REVERSION * (trend - next) + vol * dayNormal(model, WALK_SALT, d + 1) : next);
  }
  return backward[ORIGIN_DAY - 1 - day] as number;
}

// ---------------------------------------------------------------------------
// The minute path of one session day
// ---------------------------------------------------------------------------

// Scratch for one day's minutes (raw, unrounded); generation is synchronous, so one set is enough.
const path = new Float64Array(MAX_SESSION_MINUTES + 1);
const minuteOpen = new Float64Array(MAX_SESSION_MINUTES);
const minuteHigh = new Float64Array(MAX_SESSION_MINUTES);
const minuteLow = new Float64Array(MAX_SESSION_MINUTES);
const minuteClose = new Float64Array(MAX_SESSION_MINUTES);
const minuteVolume = new Float64Array(MAX_SESSION_MINUTES);

const profiles = new Map<string, Float64Array>();

/** Intraday volume weights with mean 1: a U (open and close auctions) or, for crypto, a mild daily cycle. */
function volumeProfile(calendar: MarketCalendar, minutes: number): Float64Array {
  const key = `${calendar}|${minutes}`;
  let weights = profiles.get(key);
  if (weights === undefined) {
    weights = new Float64Array(minutes);
    let sum = 0;
    for (let i = 0; i < minutes; i++) {
      const x = (i + 0.5) / minutes;
      const w = calendar === '24x7' ? 1 + 0.35 * Math.cos(2 * Math.PI * (x - 0.6)) : 0.55 + 2.2 * (1 - x) ** 8 + 2.8 * x ** 12;
      weights[i] = w;
      sum += w;
    }
    for (let i = 0; i < minutes; i++) weights[i] = ((weights[i] as number) * minutes) / sum;
    profiles.set(key, weights);
  }
  return weights;
}

/** A session day's opening and closing price (raw): its first minute's open and last minute's close. */
function sessionEnds(model: SymbolModel, day: number): { open: number; close: number; prevClose: number; closeLog: number } {
  const prevClose = logCloseOf(model, day - 1);
  const closeLog = logCloseOf(model, day);
  const gap = model.calendar === '24x7' ? 0 : GAP_SHARE * model.vol * dayNormal(model, GAP_SALT, day);
  return { open: Math.exp(prevClose + gap), close: Math.exp(closeLog), prevClose, closeLog };
}

/** Fills the minute scratch arrays for a session day; returns its number of minutes. */
function simulateDay(model: SymbolModel, day: number, session: Session): number {
  const minutes = session.close - session.open;
  const { open, close, prevClose, closeLog } = sessionEnds(model, day);
  const move = Math.abs(closeLog - prevClose) / model.vol;
  const dayVolume = model.minuteVolume * (0.6 + 0.5 * move) * Math.exp(0.3 * dayNormal(model, DAY_VOLUME_SALT, day) - 0.045);
  // One price step a minute so the bridge's spread over the day is INTRADAY_SHARE · vol.
  const step = (INTRADAY_SHARE * model.vol * 0.5 * (open + close)) / Math.sqrt(minutes);
  const wick = (WICK * step) / 1024;

  // mulberry32, inlined: the hot loop draws two numbers a minute.
  let state = hash2(model.hash ^ PATH_SALT, day) | 0;
  let w = 0;
  path[0] = 0;
  for (let i = 1; i <= minutes; i++) {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    t ^= t >>> 14;
    w += NORMALS[t & 4095] as number;
    path[i] = w;
  }
  // Brownian bridge: the line from open to close plus the walk minus its own straight line.
  const slope = (close - open - step * w) / minutes;
  const weights = volumeProfile(model.calendar, minutes);
  let prev = open;
  for (let i = 0; i < minutes; i++) {
    const next = i + 1 === minutes ? close : open + slope * (i + 1) + step * (path[i + 1] as number);
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    t ^= t >>> 14;
    minuteOpen[i] = prev;
    minuteClose[i] = next;
    // 32 bits: 10 for each wick, 12 for the volume noise.
    minuteHigh[i] = (prev > next ? prev : next) + wick * (t & 1023);
    minuteLow[i] = (prev < next ? prev : next) - wick * ((t >>> 10) & 1023);
    minuteVolume[i] = Math.round(dayVolume * (weights[i] as number) * (VOLUME_NOISE[t >>> 20] as number));
    prev = next;
  }
  return minutes;
}

// ---------------------------------------------------------------------------
// Aggregation
// ---------------------------------------------------------------------------

/** Raw (unrounded) OHLCV being aggregated. */
interface Accumulator {
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

function emptyAccumulator(): Accumulator {
  return { open: Number.NaN, high: -Infinity, low: Infinity, close: Number.NaN, volume: 0 };
}

/** Folds minutes [from, to) of the scratch arrays into `acc`. */
function accumulate(acc: Accumulator, from: number, to: number): void {
  if (Number.isNaN(acc.open)) acc.open = minuteOpen[from] as number;
  let { high, low, volume } = acc;
  for (let i = from; i < to; i++) {
    const h = minuteHigh[i] as number;
    const l = minuteLow[i] as number;
    if (h > high) high = h;
    if (l < low) low = l;
    volume += minuteVolume[i] as number;
  }
  acc.high = high;
  acc.low = low;
  acc.volume = volume;
  acc.close = minuteClose[to - 1] as number;
}

function cents(price: number): number {
  return Math.round(price * 100) / 100;
}

function barOf(ts: number, acc: Accumulator): Bar {
  return { ts, open: cents(acc.open), high: cents(acc.high), low: cents(acc.low), close: cents(acc.close), volume: acc.volume };
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

export type SyntheticBarsRequest = Omit<FetchRequest, 'signal'>;

function assertRequest(request: SyntheticBarsRequest): { fromDay: number; toDay: number } {
  if (request.symbol.length === 0) throw new BadInputError('Invalid symbol: expected a non-empty string');
  for (const date of [request.from, request.to]) {
    assertIsoDate(date);
    if (date < FIRST_DATE || date > LAST_DATE) {
      throw new BadInputError(`Invalid date ${date}: the synthetic provider covers ${FIRST_DATE} to ${LAST_DATE}`);
    }
  }
  if (request.from > request.to) throw new BadInputError(`Invalid range: from ${request.from} is after to ${request.to}`);
  return { fromDay: dayNumberOfIsoDate(request.from), toDay: dayNumberOfIsoDate(request.to) };
}

/**
 * The open and close of each session from..to, as the 1d bars have them, without simulating
 * the sessions' minutes (the demo history trades at these prices).
 */
export function syntheticSessionPrices(
  request: Omit<SyntheticBarsRequest, 'timeframe'>,
  seed: number = DEFAULT_SYNTHETIC_SEED,
): { date: string; open: number; close: number }[] {
  const { fromDay, toDay } = assertRequest({ ...request, timeframe: '1d' });
  const calendar = calendarOf(request.assetClass);
  const model = modelOf(request.symbol, calendar, seed);
  const prices: { date: string; open: number; close: number }[] = [];
  for (let day = fromDay; day <= toDay; day++) {
    if (!sessionOf(day, calendar)) continue;
    const { open, close } = sessionEnds(model, day);
    prices.push({ date: isoDateOfDayNumber(day), open: cents(open), close: cents(close) });
  }
  return prices;
}

/**
 * The synthetic bars of one symbol and timeframe for market-local dates from..to, ascending
 * (see the header for which bars a range includes). Pure and deterministic: the same
 * arguments always give deep-equal bars; the walk cache only saves work.
 */
export function generateSyntheticBars(request: SyntheticBarsRequest, seed: number = DEFAULT_SYNTHETIC_SEED): Bar[] {
  const { fromDay, toDay } = assertRequest(request);
  const { timeframe } = request;
  const calendar = calendarOf(request.assetClass);
  const model = modelOf(request.symbol, calendar, seed);
  const bars: Bar[] = [];

  if (timeframe === '1w') {
    for (let monday = fromDay; monday <= toDay; monday++) {
      const [ts] = expectedBarOpens(monday, '1w', calendar);
      if (ts === undefined) continue;
      const acc = emptyAccumulator();
      for (let day = monday; day < monday + 7; day++) {
        const session = sessionOf(day, calendar);
        if (session) accumulate(acc, 0, simulateDay(model, day, session));
      }
      bars.push(barOf(ts, acc));
    }
    return bars;
  }

  const slot = intradayMinutes(timeframe);
  for (let day = fromDay; day <= toDay; day++) {
    const session = sessionOf(day, calendar);
    if (!session) continue;
    const minutes = simulateDay(model, day, session);
    // utcMsOfLocal uses one offset a day (no DST switch during a session), so slots are a plain offset from midnight.
    const midnight = utcMsOfLocal(day * DAY_MS, calendar);
    if (slot === null) {
      const acc = emptyAccumulator();
      accumulate(acc, 0, minutes);
      bars.push(barOf(midnight, acc));
    } else if (slot === 1) {
      const first = midnight + session.open * MINUTE_MS;
      for (let i = 0; i < minutes; i++) {
        bars.push({
          ts: first + i * MINUTE_MS,
          open: cents(minuteOpen[i] as number),
          high: cents(minuteHigh[i] as number),
          low: cents(minuteLow[i] as number),
          close: cents(minuteClose[i] as number),
          volume: minuteVolume[i] as number,
        });
      }
    } else {
      // Slots on clock boundaries, as expectedBarOpens lists them; the first and last may be partial.
      for (let start = Math.floor(session.open / slot) * slot; start < session.close; start += slot) {
        const acc = emptyAccumulator();
        accumulate(acc, Math.max(start, session.open) - session.open, Math.min(start + slot, session.close) - session.open);
        bars.push(barOf(midnight + start * MINUTE_MS, acc));
      }
    }
  }
  return bars;
}

export interface SyntheticProviderOptions {
  /** Seed of the whole synthetic market; the same seed always gives the same bars. @defaultValue 1 */
  seed?: number;
}

/** The embedded default market-data source: synthetic bars, no network, no quota. */
export function createSyntheticProvider(options: SyntheticProviderOptions = {}): MarketDataProvider {
  const seed = options.seed ?? DEFAULT_SYNTHETIC_SEED;
  if (!Number.isSafeInteger(seed)) throw new BadInputError(`Invalid seed ${String(seed)}: expected an integer`);
  return {
    name: 'synthetic',
    async fetchBars(request: FetchRequest): Promise<FetchResult> {
      request.signal?.throwIfAborted();
      const started = performance.now();
      const bars = generateSyntheticBars(request, seed);
      return { bars, requests: 0, responseTimeMs: performance.now() - started, quotaRemaining: null };
    },
  };
}
