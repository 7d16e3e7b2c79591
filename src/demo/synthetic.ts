/**
 * The deterministic synthetic trading history that `bullpen demo` seeds into `oltp`.
 *
 * Pure: no I/O, no clock, no Math.random. `now`, the exchange zone and the seed are
 * arguments, and the same arguments always give a deep-equal history, so a demo, a test
 * and a benchmark can all talk about "the demo data" and mean the same rows.
 *
 * What it contains, and why:
 *  - reference rows (accounts, instruments, strategies) keyed by the oltp column names;
 *  - the last `days` NYSE trading days before the New York date of `now`, about
 *    EXECUTIONS_PER_DAY fills a day, mostly in the regular session with some pre-market
 *    and after-hours fills, converted to UTC with luxon so DST is handled by the zone;
 *  - orders of 1–4 partial fills whose sides are chosen from each (account, instrument)
 *    position so FIFO sees longs, shorts, covers and flips (some single fills cross zero);
 *  - the irregular-but-legal rows the ETL must accept: late fills (ingested 1–3 days after
 *    execution), fills whose order is missing, orders whose strategy is unknown;
 *  - a few bad rows (about 0.2%, at least one of each `BadExecutionKind`) that the ETL must
 *    reject. Each has its own order, so rejecting it leaves every position untouched.
 *
 * Each day's open and close are the synthetic market-data provider's (its 1d bars, in cents),
 * so the fills trade at the market enrichment stores and positions are marked at. Money and
 * quantities are built from integers (cents and ten-thousandths of a dollar) and written as
 * decimal strings; binary floats only drive the intraday noise, never the output. This
 * module's random numbers use only +, −, ×, Math.imul and shifts (no Math.log/exp); the
 * provider's daily prices use Math.exp, rounded to cents.
 */
import { DateTime, IANAZone } from 'luxon';
import { addTradingDays, earlyClose, previousTradingDay, tradingDaysBetween, type IsoDate } from '../analytics/calendar.ts';
import { syntheticSessionPrices } from '../enrichment/providers/synthetic.ts';
import { BadInputError } from '../errors.ts';

// ---------------------------------------------------------------------------
// Row types: keys are exactly the oltp column names (sql/002_oltp.sql)
// ---------------------------------------------------------------------------

/** A row of `oltp.accounts`. */
export interface AccountRow {
  account_id: number;
  account_number: string;
  account_name: string;
  account_type: string;
  broker: string;
  currency: string;
  risk_tier: string;
  updated_at: string;
}

/** A row of `oltp.instruments`. */
export interface InstrumentRow {
  instrument_id: number;
  symbol: string;
  exchange: string;
  instrument_type: 'etf' | 'stock';
  full_name: string;
  sector: string | null;
  industry: string | null;
  currency: string;
  tick_size: string;
  lot_size: number;
  is_active: boolean;
  updated_at: string;
}

/** A row of `oltp.strategies`. */
export interface StrategyRow {
  strategy_id: number;
  strategy_name: string;
  strategy_type: string;
  risk_tier: string;
  version: number;
  is_active: boolean;
  updated_at: string;
}

/** A row of `oltp.orders`. `quantity` and `limit_price` are decimal strings. */
export interface OrderRow {
  order_id: number;
  account_id: number;
  instrument_id: number;
  strategy_id: number;
  side: 'BUY' | 'SELL';
  quantity: string;
  /** null for market orders. */
  limit_price: string | null;
  created_at: string;
}

/**
 * A row of `oltp.executions`. Everything but the key is nullable, as in the source table;
 * numerics are decimal strings ('NaN' included), timestamps ISO 8601 UTC with microseconds.
 */
export interface ExecutionRow {
  execution_id: number;
  order_id: number | null;
  account_id: number | null;
  instrument_id: number | null;
  executed_at: string | null;
  ingested_at: string | null;
  side: string | null;
  quantity: string | null;
  price: string | null;
  commission: string | null;
  fees: string | null;
  liquidity_flag: string | null;
  venue: string | null;
  reported_at: string | null;
}

/** The ways a planted bad execution is wrong; each maps to one ETL reject reason in DESIGN.md. */
export const BAD_EXECUTION_KINDS = [
  'quantity_zero',
  'quantity_negative',
  'quantity_nan',
  'quantity_null',
  'price_zero',
  'price_negative',
  'price_nan',
  'price_null',
  'side_hold',
  'side_lowercase',
  'account_unknown',
  'account_null',
  'instrument_unknown',
  'instrument_null',
  // executed_at after `now` while ingested_at ≤ now: a venue with a skewed clock. Such a row
  // is necessarily also later than its own ingested_at; the "future" reason should win.
  'executed_in_future',
  'executed_after_ingested',
  'executed_null',
] as const;

export type BadExecutionKind = (typeof BAD_EXECUTION_KINDS)[number];

/** What the generator planted, so the CLI can describe it and tests can check the ETL. Not a table. */
export interface DemoManifest {
  /** `now` as given, ISO 8601. Every row's ingested_at is at or before it. */
  now: string;
  tz: string;
  seed: number;
  days: number;
  /** The trading dates covered, ascending: `days` NYSE sessions ending before now's date in `tz`. */
  tradingDates: IsoDate[];
  /** Every execution the ETL must reject, with the way it is wrong. */
  badExecutions: Array<{ execution_id: number; kind: BadExecutionKind }>;
  /** Good fills whose ingested_at is 1–3 days after executed_at. */
  lateExecutionIds: number[];
  /** Order ids that executions reference but oltp.orders does not hold. */
  missingOrderIds: number[];
  /** Orders whose strategy_id is not in oltp.strategies. */
  unknownStrategyOrderIds: number[];
}

/** The synthetic oltp content: one array per table, plus the manifest of what was planted. */
export interface DemoHistory {
  accounts: AccountRow[];
  instruments: InstrumentRow[];
  strategies: StrategyRow[];
  orders: OrderRow[];
  executions: ExecutionRow[];
  manifest: DemoManifest;
}

export interface DemoHistoryOptions {
  /** How many NYSE trading days of history, ending at the last trading day before now's date. */
  days: number;
  /** The instant the history is generated "as of"; nothing is ingested after it. */
  now: Date;
  /** The exchange's IANA zone. @defaultValue America/New_York */
  tz?: string;
  /** Seed of the pseudo-random generator. @defaultValue 42 */
  seed?: number;
}

/** Counts the CLI prints after seeding. */
export interface DemoHistoryDescription {
  accounts: number;
  instruments: number;
  strategies: number;
  orders: number;
  executions: number;
  badRows: number;
  lateFills: number;
  /** Good fills that will load under the 'unassigned' strategy (order or strategy unknown). */
  unassignedFills: number;
  firstTradingDate: IsoDate;
  lastTradingDate: IsoDate;
}

// ---------------------------------------------------------------------------
// Reference data
// ---------------------------------------------------------------------------

/** The 11 GICS sectors and the SPDR sector ETF that tracks each. */
export const SECTOR_ETFS = {
  'Information Technology': 'XLK',
  Financials: 'XLF',
  Energy: 'XLE',
  'Health Care': 'XLV',
  'Consumer Discretionary': 'XLY',
  'Consumer Staples': 'XLP',
  Industrials: 'XLI',
  Utilities: 'XLU',
  Materials: 'XLB',
  'Real Estate': 'XLRE',
  'Communication Services': 'XLC',
} as const;

export type GicsSector = keyof typeof SECTOR_ETFS;

/** Broad-market benchmarks; SPY is the RS benchmark. */
export const BENCHMARK_ETFS = ['SPY', 'QQQ', 'IWM'] as const;

/** One tradable symbol of the demo universe, with what market-data seeding needs to know. */
export interface DemoSymbol {
  symbol: string;
  fullName: string;
  instrumentType: 'etf' | 'stock';
  /** Listing exchange. */
  exchange: 'NYSE' | 'NASDAQ' | 'ARCA';
  /** GICS sector; for a sector ETF the sector it tracks; null for broad-market ETFs. */
  sector: GicsSector | null;
  industry: string;
  /** The sector ETF a stock is compared with; null for ETFs. */
  sectorEtf: string | null;
  /** Typical daily volatility as a fraction (0.012 = 1.2%). */
  dailyVolatility: number;
}

function etf(symbol: string, fullName: string, exchange: DemoSymbol['exchange'], sector: GicsSector | null, dailyVolatility: number): DemoSymbol {
  return { symbol, fullName, instrumentType: 'etf', exchange, sector, industry: sector === null ? 'Index ETF' : 'Sector ETF', sectorEtf: null, dailyVolatility };
}

function stock(symbol: string, fullName: string, exchange: DemoSymbol['exchange'], sector: GicsSector, industry: string, dailyVolatility: number): DemoSymbol {
  return { symbol, fullName, instrumentType: 'stock', exchange, sector, industry, sectorEtf: SECTOR_ETFS[sector], dailyVolatility };
}

/** The demo universe, in instrument_id order (the first is FIRST_INSTRUMENT_ID). */
export const DEMO_SYMBOLS: readonly DemoSymbol[] = Object.freeze([
  etf('SPY', 'SPDR S&P 500 ETF Trust', 'ARCA', null, 0.009),
  etf('QQQ', 'Invesco QQQ Trust, Series 1', 'NASDAQ', null, 0.012),
  etf('IWM', 'iShares Russell 2000 ETF', 'ARCA', null, 0.013),
  etf('XLK', 'Technology Select Sector SPDR Fund', 'ARCA', 'Information Technology', 0.013),
  etf('XLF', 'Financial Select Sector SPDR Fund', 'ARCA', 'Financials', 0.010),
  etf('XLE', 'Energy Select Sector SPDR Fund', 'ARCA', 'Energy', 0.013),
  etf('XLV', 'Health Care Select Sector SPDR Fund', 'ARCA', 'Health Care', 0.008),
  etf('XLY', 'Consumer Discretionary Select Sector SPDR Fund', 'ARCA', 'Consumer Discretionary', 0.012),
  etf('XLP', 'Consumer Staples Select Sector SPDR Fund', 'ARCA', 'Consumer Staples', 0.007),
  etf('XLI', 'Industrial Select Sector SPDR Fund', 'ARCA', 'Industrials', 0.009),
  etf('XLU', 'Utilities Select Sector SPDR Fund', 'ARCA', 'Utilities', 0.009),
  etf('XLB', 'Materials Select Sector SPDR Fund', 'ARCA', 'Materials', 0.010),
  etf('XLRE', 'Real Estate Select Sector SPDR Fund', 'ARCA', 'Real Estate', 0.011),
  etf('XLC', 'Communication Services Select Sector SPDR Fund', 'ARCA', 'Communication Services', 0.011),
  stock('AAPL', 'Apple Inc.', 'NASDAQ', 'Information Technology', 'Technology Hardware, Storage & Peripherals', 0.016),
  stock('MSFT', 'Microsoft Corporation', 'NASDAQ', 'Information Technology', 'Software', 0.015),
  stock('NVDA', 'NVIDIA Corporation', 'NASDAQ', 'Information Technology', 'Semiconductors & Semiconductor Equipment', 0.030),
  stock('AMD', 'Advanced Micro Devices, Inc.', 'NASDAQ', 'Information Technology', 'Semiconductors & Semiconductor Equipment', 0.028),
  stock('GOOGL', 'Alphabet Inc. Class A', 'NASDAQ', 'Communication Services', 'Interactive Media & Services', 0.018),
  stock('META', 'Meta Platforms, Inc. Class A', 'NASDAQ', 'Communication Services', 'Interactive Media & Services', 0.022),
  stock('NFLX', 'Netflix, Inc.', 'NASDAQ', 'Communication Services', 'Entertainment', 0.021),
  stock('AMZN', 'Amazon.com, Inc.', 'NASDAQ', 'Consumer Discretionary', 'Broadline Retail', 0.019),
  stock('TSLA', 'Tesla, Inc.', 'NASDAQ', 'Consumer Discretionary', 'Automobiles', 0.035),
  stock('HD', 'The Home Depot, Inc.', 'NYSE', 'Consumer Discretionary', 'Specialty Retail', 0.013),
  stock('MCD', "McDonald's Corporation", 'NYSE', 'Consumer Discretionary', 'Hotels, Restaurants & Leisure', 0.010),
  stock('JPM', 'JPMorgan Chase & Co.', 'NYSE', 'Financials', 'Banks', 0.013),
  stock('BAC', 'Bank of America Corporation', 'NYSE', 'Financials', 'Banks', 0.015),
  stock('GS', 'The Goldman Sachs Group, Inc.', 'NYSE', 'Financials', 'Capital Markets', 0.016),
  stock('V', 'Visa Inc. Class A', 'NYSE', 'Financials', 'Financial Services', 0.011),
  stock('UNH', 'UnitedHealth Group Incorporated', 'NYSE', 'Health Care', 'Health Care Providers & Services', 0.015),
  stock('JNJ', 'Johnson & Johnson', 'NYSE', 'Health Care', 'Pharmaceuticals', 0.009),
  stock('LLY', 'Eli Lilly and Company', 'NYSE', 'Health Care', 'Pharmaceuticals', 0.020),
  stock('XOM', 'Exxon Mobil Corporation', 'NYSE', 'Energy', 'Oil, Gas & Consumable Fuels', 0.014),
  stock('CVX', 'Chevron Corporation', 'NYSE', 'Energy', 'Oil, Gas & Consumable Fuels', 0.014),
  stock('PG', 'The Procter & Gamble Company', 'NYSE', 'Consumer Staples', 'Household Products', 0.009),
  stock('KO', 'The Coca-Cola Company', 'NYSE', 'Consumer Staples', 'Beverages', 0.008),
  stock('WMT', 'Walmart Inc.', 'NYSE', 'Consumer Staples', 'Consumer Staples Distribution & Retail', 0.011),
  stock('CAT', 'Caterpillar Inc.', 'NYSE', 'Industrials', 'Machinery', 0.016),
  stock('BA', 'The Boeing Company', 'NYSE', 'Industrials', 'Aerospace & Defense', 0.020),
  stock('GE', 'GE Aerospace', 'NYSE', 'Industrials', 'Aerospace & Defense', 0.017),
  stock('NEE', 'NextEra Energy, Inc.', 'NYSE', 'Utilities', 'Electric Utilities', 0.014),
  stock('DUK', 'Duke Energy Corporation', 'NYSE', 'Utilities', 'Electric Utilities', 0.010),
  stock('LIN', 'Linde plc', 'NASDAQ', 'Materials', 'Chemicals', 0.011),
  stock('NEM', 'Newmont Corporation', 'NYSE', 'Materials', 'Metals & Mining', 0.022),
  stock('AMT', 'American Tower Corporation', 'NYSE', 'Real Estate', 'Specialized REITs', 0.014),
  stock('PLD', 'Prologis, Inc.', 'NYSE', 'Real Estate', 'Industrial REITs', 0.015),
]);

/** The number of fills a default trading day gets, on average; history scales linearly with days. */
export const EXECUTIONS_PER_DAY = 300;

// Id ranges are disjoint per table, so a join on the wrong id finds nothing instead of nonsense.
const FIRST_INSTRUMENT_ID = 1001;
const ORDER_ID_BASE = 10_000_000;
const EXECUTION_ID_BASE = 50_000_000;
/** Ids that exist in no reference table, for the unknown-reference rows. */
const UNKNOWN_ACCOUNT_ID = 999;
const UNKNOWN_INSTRUMENT_ID = 9999;
const UNKNOWN_STRATEGY_IDS = [77, 404] as const;

const MAX_DAYS = 5000;

interface StrategyProfile {
  row: Omit<StrategyRow, 'updated_at'>;
  /** Probability that a fill adds liquidity (a resting order): market making mostly rests. */
  addLiquidity: number;
}

const STRATEGIES: readonly StrategyProfile[] = [
  { row: { strategy_id: 1, strategy_name: 'Cross-Sectional Momentum', strategy_type: 'momentum', risk_tier: 'high', version: 3, is_active: true }, addLiquidity: 0.2 },
  { row: { strategy_id: 2, strategy_name: 'Intraday Mean Reversion', strategy_type: 'mean_reversion', risk_tier: 'medium', version: 2, is_active: true }, addLiquidity: 0.45 },
  { row: { strategy_id: 3, strategy_name: 'Sector Pairs', strategy_type: 'pairs', risk_tier: 'medium', version: 1, is_active: true }, addLiquidity: 0.35 },
  { row: { strategy_id: 4, strategy_name: 'Opening Range Breakout', strategy_type: 'breakout', risk_tier: 'high', version: 2, is_active: true }, addLiquidity: 0.1 },
  { row: { strategy_id: 5, strategy_name: 'ETF Market Making', strategy_type: 'market_making', risk_tier: 'low', version: 4, is_active: true }, addLiquidity: 0.85 },
];

interface AccountProfile {
  row: Omit<AccountRow, 'updated_at'>;
  strategyIds: readonly number[];
  /** Relative share of the day's orders. */
  activity: number;
  /** Typical order notional in dollars. */
  orderNotional: number;
  /** Commission per share, in ten-thousandths of a dollar (35 = $0.0035). */
  commissionPerShare: number;
  /** How many symbols it trades; market makers stay in ETFs. */
  universeSize: number;
  etfsOnly: boolean;
}

function account(
  id: number,
  name: string,
  accountType: string,
  broker: string,
  riskTier: string,
  sim: Omit<AccountProfile, 'row'>,
): AccountProfile {
  return {
    row: { account_id: id, account_number: `BP-${String(id * 1373).padStart(6, '0')}`, account_name: name, account_type: accountType, broker, currency: 'USD', risk_tier: riskTier },
    ...sim,
  };
}

const ACCOUNTS: readonly AccountProfile[] = [
  account(101, 'Equity Momentum Desk', 'proprietary', 'Goldman Sachs', 'high', { strategyIds: [1, 4], activity: 1.5, orderNotional: 150_000, commissionPerShare: 20, universeSize: 18, etfsOnly: false }),
  account(102, 'Statistical Arbitrage Desk', 'proprietary', 'Morgan Stanley', 'medium', { strategyIds: [2, 3], activity: 1.5, orderNotional: 120_000, commissionPerShare: 20, universeSize: 20, etfsOnly: false }),
  account(103, 'ETF Market Making Book', 'market_maker', 'Interactive Brokers', 'medium', { strategyIds: [5], activity: 2.5, orderNotional: 40_000, commissionPerShare: 10, universeSize: 10, etfsOnly: true }),
  account(104, 'Sector Rotation Fund', 'hedge_fund', 'J.P. Morgan', 'medium', { strategyIds: [1, 2, 3], activity: 1, orderNotional: 250_000, commissionPerShare: 35, universeSize: 16, etfsOnly: false }),
  account(105, 'Index Arbitrage Desk', 'proprietary', 'Goldman Sachs', 'low', { strategyIds: [3, 5], activity: 1, orderNotional: 300_000, commissionPerShare: 15, universeSize: 8, etfsOnly: true }),
  account(106, 'Harbor Pension Trust', 'client', 'BNY Pershing', 'low', { strategyIds: [2], activity: 0.5, orderNotional: 400_000, commissionPerShare: 50, universeSize: 12, etfsOnly: false }),
  account(107, 'Northwind Family Office', 'client', 'Morgan Stanley', 'medium', { strategyIds: [1, 4], activity: 0.6, orderNotional: 80_000, commissionPerShare: 50, universeSize: 10, etfsOnly: false }),
  account(108, 'Retail Flow Internalizer', 'retail', 'Interactive Brokers', 'medium', { strategyIds: [2, 4], activity: 1, orderNotional: 15_000, commissionPerShare: 35, universeSize: 24, etfsOnly: false }),
  account(109, 'Event-Driven Desk', 'proprietary', 'Citigroup Global Markets', 'high', { strategyIds: [4, 1], activity: 0.8, orderNotional: 200_000, commissionPerShare: 20, universeSize: 14, etfsOnly: false }),
  account(110, 'Treasury Overlay', 'hedge_fund', 'J.P. Morgan', 'low', { strategyIds: [3], activity: 0.4, orderNotional: 500_000, commissionPerShare: 15, universeSize: 6, etfsOnly: true }),
];

// Venues weighted roughly by US equity market share; outside regular hours only the ECN-style books trade.
const VENUES = [
  { value: 'NASDAQ', weight: 30 },
  { value: 'NYSE', weight: 25 },
  { value: 'BATS', weight: 20 },
  { value: 'ARCA', weight: 15 },
  { value: 'IEX', weight: 10 },
] as const;
const EXTENDED_HOURS_VENUES = ['ARCA', 'NASDAQ', 'BATS'] as const;

// Regulatory fees on sells (in ten-thousandths of a dollar): SEC Section 31 at $27.80 per
// million of notional (278 / 10^7, kept as a ratio of integers) and FINRA's TAF at
// $0.000166 a share, capped at $8.30 a fill.
const SEC_FEE_NUMERATOR = 278;
const SEC_FEE_DENOMINATOR = 10_000_000;
const TAF_PER_SHARE_CENTI_TT = 166; // 1.66 ten-thousandths, kept ×100 to stay integral
const TAF_CAP_TT = 83_000;
/** Maker rebate per share when a fill added liquidity, in ten-thousandths of a dollar. */
const MAKER_REBATE_TT = 20;

const MICROS_PER_MS = 1_000;
const MICROS_PER_SECOND = 1_000_000;
const MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND;

// ---------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------

/** A small seeded generator: mulberry32 and the draws built on it. */
interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  weighted<T>(items: ReadonlyArray<{ value: T; weight: number }>): T;
  /** Approximately standard normal (Irwin–Hall: 12 uniforms − 6), bounded to ±6. */
  normal(): number;
}

function createRng(seed: number): Rng {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rng: Rng = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
    pick: (items) => {
      const item = items[Math.floor(next() * items.length)];
      if (item === undefined) throw new Error('pick from an empty list');
      return item;
    },
    weighted: (items) => {
      const total = items.reduce((sum, item) => sum + item.weight, 0);
      let r = next() * total;
      for (const item of items) {
        r -= item.weight;
        if (r < 0) return item.value;
      }
      const last = items.at(-1);
      if (last === undefined) throw new Error('weighted pick from an empty list');
      return last.value;
    },
    normal: () => {
      let sum = 0;
      for (let i = 0; i < 12; i++) sum += next();
      return sum - 6;
    },
  };
  return rng;
}

/**
 * One independent stream per concern (prices, trading, bad rows…), so changing how one part
 * draws does not reshuffle the others. FNV-1a over the label, mixed with the seed.
 */
function streamFor(seed: number, label: string): Rng {
  let hash = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < label.length; i++) {
    hash = Math.imul(hash ^ label.charCodeAt(i), 0x01000193) >>> 0;
  }
  return createRng(hash);
}

// ---------------------------------------------------------------------------
// Formatting: integers in, exact decimal strings out
// ---------------------------------------------------------------------------

/** Writes `value / 10^scale` with exactly `scale` decimals, e.g. (-12345, 4) → '-1.2345'. */
function formatScaled(value: number, scale: number): string {
  const sign = value < 0 ? '-' : '';
  const digits = String(Math.abs(value)).padStart(scale + 1, '0');
  return `${sign}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/** A price in ten-thousandths: 2 decimals when it is whole cents, else 4 (sub-penny fills). */
function formatPrice(tenThousandths: number): string {
  return tenThousandths % 100 === 0 ? formatScaled(tenThousandths / 100, 2) : formatScaled(tenThousandths, 4);
}

/** ISO 8601 UTC with microseconds, from whole microseconds since the epoch. */
function isoFromMicros(micros: number): string {
  const ms = Math.floor(micros / MICROS_PER_MS);
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, -1)}${String(micros - ms * MICROS_PER_MS).padStart(3, '0')}Z`;
}

// ---------------------------------------------------------------------------
// Calendar: which days, and when within a day
// ---------------------------------------------------------------------------

/** The last `days` NYSE trading days ending at the last trading day strictly before now's date in `tz`. */
function demoTradingDates(now: Date, days: number, tz: string): IsoDate[] {
  const today = DateTime.fromJSDate(now, { zone: tz }).toISODate();
  if (today === null) throw new BadInputError(`Invalid now ${String(now)}`);
  const last = previousTradingDay(today);
  return tradingDaysBetween(addTradingDays(last, -(days - 1)), last);
}

/** A trading day's session boundaries as UTC microseconds, each converted from the exchange zone by luxon. */
interface Sessions {
  date: IsoDate;
  preOpen: number;
  open: number;
  close: number;
  postClose: number;
  earlyClose: boolean;
}

function sessionsOf(date: IsoDate, tz: string): Sessions {
  const at = (time: string): number => DateTime.fromISO(`${date}T${time}`, { zone: tz }).toMillis() * MICROS_PER_MS;
  const early = earlyClose(date);
  // On early-close days the after-hours session runs 13:00–17:00.
  return {
    date,
    preOpen: at('04:00'),
    open: at('09:30'),
    close: at(early ?? '16:00'),
    postClose: at(early === null ? '20:00' : '17:00'),
    earlyClose: early !== null,
  };
}

type Session = 'pre' | 'regular' | 'post';

/** An order's start: 93% regular session (busier near the open and close), 4% pre-market, 3% after hours. */
function sampleOrderTime(s: Sessions, rng: Rng): { micros: number; session: Session } {
  const r = rng.next();
  if (r < 0.04) return { micros: rng.int(s.preOpen, s.open - 1), session: 'pre' };
  if (r < 0.07) return { micros: rng.int(s.close, s.postClose - 1), session: 'post' };
  const hour = 3_600 * MICROS_PER_SECOND;
  const shape = rng.next();
  // The U-shaped intraday volume curve: the first and last hour take about half the orders.
  if (shape < 0.28) return { micros: rng.int(s.open, s.open + hour - 1), session: 'regular' };
  if (shape < 0.5) return { micros: rng.int(Math.max(s.open, s.close - hour), s.close - 1), session: 'regular' };
  return { micros: rng.int(s.open, s.close - 1), session: 'regular' };
}

// ---------------------------------------------------------------------------
// Prices: a seeded daily random walk per instrument
// ---------------------------------------------------------------------------

interface DailyBar {
  open: number;
  close: number;
}

/**
 * Daily open/close per instrument: those of the synthetic market-data provider's 1d bars (its
 * default seed), so fills trade around the prices enrichment stores in market.bars and
 * positions are marked at. The provider's sessions are the same NYSE calendar as the dates.
 */
function dailyBarsOf(dates: readonly IsoDate[]): DailyBar[][] {
  const from = dates[0] as IsoDate;
  const to = dates[dates.length - 1] as IsoDate;
  return DEMO_SYMBOLS.map((symbol) => {
    const sessions = new Map(syntheticSessionPrices({ symbol: symbol.symbol, assetClass: symbol.instrumentType, from, to }).map((s) => [s.date, s]));
    return dates.map((date) => {
      const session = sessions.get(date);
      if (!session) throw new Error(`the synthetic provider has no ${symbol.symbol} session on ${date}, an NYSE trading day`);
      return { open: session.open, close: session.close };
    });
  });
}

/** The price in whole cents of an instrument at an instant of a day: open→close plus intraday noise. */
function priceCentsAt(bar: DailyBar, s: Sessions, micros: number, vol: number, rng: Rng): number {
  const f = Math.min(1, Math.max(0, (micros - s.preOpen) / (s.postClose - s.preOpen)));
  const level = bar.open + (bar.close - bar.open) * f;
  return Math.max(1, Math.round(level * (1 + 0.2 * vol * rng.normal()) * 100));
}

// ---------------------------------------------------------------------------
// Drafts: rows before ids are assigned
// ---------------------------------------------------------------------------

interface DraftOrder {
  seq: number;
  createdAt: number;
  accountId: number;
  instrumentId: number;
  strategyId: number;
  side: 'BUY' | 'SELL';
  quantity: number;
  limitCents: number | null;
  /** Left out of oltp.orders, so its fills reference an order that does not exist. */
  dropped: boolean;
  id: number;
}

interface DraftFill {
  seq: number;
  order: DraftOrder;
  executedAt: number | null;
  reportedAt: number;
  ingestedAt: number;
  accountId: number | null;
  instrumentId: number | null;
  side: string | null;
  quantity: string | null;
  price: string | null;
  commission: string;
  fees: string;
  liquidity: 'ADD' | 'REMOVE';
  venue: string;
  bad: BadExecutionKind | null;
  late: boolean;
}

interface Context {
  nowMicros: number;
  dates: IsoDate[];
  sessions: Sessions[];
  bars: DailyBar[][];
  universes: Map<number, number[]>;
  orders: DraftOrder[];
  fills: DraftFill[];
}

function instrumentIndex(instrumentId: number): number {
  return instrumentId - FIRST_INSTRUMENT_ID;
}

function symbolOf(instrumentId: number): DemoSymbol {
  const symbol = DEMO_SYMBOLS[instrumentIndex(instrumentId)];
  if (symbol === undefined) throw new Error(`no demo symbol for instrument ${instrumentId}`);
  return symbol;
}

function strategyProfile(strategyId: number): StrategyProfile {
  const profile = STRATEGIES.find((s) => s.row.strategy_id === strategyId);
  if (profile === undefined) throw new Error(`no strategy ${strategyId}`);
  return profile;
}

/** The symbols each account trades: a seeded subset, weighted towards the liquid benchmarks. */
function chooseUniverses(rng: Rng): Map<number, number[]> {
  const universes = new Map<number, number[]>();
  for (const profile of ACCOUNTS) {
    const candidates = DEMO_SYMBOLS.map((s, i) => ({ s, id: FIRST_INSTRUMENT_ID + i })).filter(({ s }) => !profile.etfsOnly || s.instrumentType === 'etf');
    const chosen: number[] = [];
    while (chosen.length < Math.min(profile.universeSize, candidates.length)) {
      const id = rng.weighted(candidates.map(({ s, id }) => ({ value: id, weight: (BENCHMARK_ETFS as readonly string[]).includes(s.symbol) ? 4 : 1 })));
      if (!chosen.includes(id)) chosen.push(id);
    }
    universes.set(profile.row.account_id, chosen);
  }
  return universes;
}

/** An order size near the account's typical notional: round lots mostly, odd lots sometimes. */
function typicalQuantity(profile: AccountProfile, priceCents: number, rng: Rng): number {
  const shares = (profile.orderNotional * (0.3 + 1.7 * rng.next()) * 100) / priceCents;
  if (shares >= 100 && rng.chance(0.85)) return Math.max(100, Math.round(shares / 100) * 100);
  return Math.max(1, Math.round(shares));
}

/**
 * Side and size from the current position, so the replay meets every FIFO case: open long or
 * short when flat; add, reduce, close or flip (close and go the other way) when not. A large
 * position is only ever reduced, closed or flipped, which keeps exposure bounded.
 */
function chooseTrade(position: number, typical: number, rng: Rng): { side: 'BUY' | 'SELL'; quantity: number } {
  if (position === 0) return { side: rng.chance(0.62) ? 'BUY' : 'SELL', quantity: typical };
  const held = Math.abs(position);
  const same: 'BUY' | 'SELL' = position > 0 ? 'BUY' : 'SELL';
  const opposite: 'BUY' | 'SELL' = position > 0 ? 'SELL' : 'BUY';
  const r = held >= 4 * typical ? 0.25 + 0.75 * rng.next() : rng.next();
  if (r < 0.25) return { side: same, quantity: typical };
  if (r < 0.55 && held > 1) return { side: opposite, quantity: Math.max(1, Math.min(held - 1, Math.round(held * (0.25 + 0.5 * rng.next())))) };
  if (r < 0.8) return { side: opposite, quantity: held };
  return { side: opposite, quantity: held + typical };
}

/** Splits a quantity into up to `parts` positive fills, in round lots when the quantity allows. */
function splitQuantity(quantity: number, parts: number, rng: Rng): number[] {
  const unit = quantity % 100 === 0 && quantity / 100 >= parts ? 100 : 1;
  const units = quantity / unit;
  const count = Math.min(parts, units);
  const cuts = new Set<number>();
  while (cuts.size < count - 1) cuts.add(rng.int(1, units - 1));
  const edges = [0, ...[...cuts].sort((a, b) => a - b), units];
  return edges.slice(1).map((edge, i) => (edge - (edges[i] ?? 0)) * unit);
}

/** Commission and fees of one fill, both in ten-thousandths of a dollar. */
function costsOf(profile: AccountProfile, side: 'BUY' | 'SELL', quantity: number, priceTt: number, liquidity: 'ADD' | 'REMOVE', rng: Rng): { commission: number; fees: number } {
  const commission = quantity * profile.commissionPerShare;
  let fees = 0;
  if (side === 'SELL') {
    // quantity × price stays below 2^53 / 278 for any realistic fill, so this is exact before rounding.
    fees += Math.round((quantity * priceTt * SEC_FEE_NUMERATOR) / SEC_FEE_DENOMINATOR);
    fees += Math.min(TAF_CAP_TT, Math.round((quantity * TAF_PER_SHARE_CENTI_TT) / 100));
  }
  // Resting orders sometimes earn the venue's maker rebate, which makes fees negative.
  if (liquidity === 'ADD' && rng.chance(0.5)) fees -= quantity * MAKER_REBATE_TT;
  return { commission, fees };
}

/** Venue latency and the source's ingest delay: reported 1–250 ms after the fill, ingested within 2 s of that. */
function stampsAfter(executedAt: number, rng: Rng): { reportedAt: number; ingestedAt: number } {
  const reportedAt = executedAt + rng.int(1 * MICROS_PER_MS, 250 * MICROS_PER_MS);
  return { reportedAt, ingestedAt: reportedAt + rng.int(0, 2 * MICROS_PER_SECOND) };
}

// ---------------------------------------------------------------------------
// The trading simulation
// ---------------------------------------------------------------------------

/** Fills per order: mostly one, up to four. */
function sampleFillCount(rng: Rng): number {
  return rng.weighted([
    { value: 1, weight: 30 },
    { value: 2, weight: 30 },
    { value: 3, weight: 25 },
    { value: 4, weight: 15 },
  ]);
}

/** Simulates every trading day in order, tracking positions per (account, instrument). */
function simulateTrading(ctx: Context, rng: Rng): void {
  const positions = new Map<string, number>();
  const lastFillAt = new Map<string, number>();
  const accountWeights = ACCOUNTS.map((profile) => ({ value: profile, weight: profile.activity }));

  ctx.sessions.forEach((sessions, day) => {
    // Half-days trade less; every day jitters ±15% around the average.
    const target = Math.round(EXECUTIONS_PER_DAY * (0.85 + 0.3 * rng.next()) * (sessions.earlyClose ? 0.6 : 1));
    const fillCounts: number[] = [];
    for (let planned = 0; planned < target; ) {
      const count = sampleFillCount(rng);
      fillCounts.push(count);
      planned += count;
    }
    // Orders are decided in time order, so each sees the position its predecessors left.
    const starts = fillCounts.map(() => sampleOrderTime(sessions, rng)).sort((a, b) => a.micros - b.micros);
    starts.forEach((start, i) => {
      const profile = rng.weighted(accountWeights);
      const instrumentId = rng.pick(ctx.universes.get(profile.row.account_id) ?? []);
      const key = `${profile.row.account_id}:${instrumentId}`;
      // Never let two orders of one position overlap in time: the story stays the replay's story.
      const begin = Math.max(start.micros, (lastFillAt.get(key) ?? 0) + MICROS_PER_SECOND);
      const order = placeOrder(ctx, rng, { profile, instrumentId, day, begin, session: start.session, position: positions.get(key) ?? 0, fillCount: fillCounts[i] ?? 1 });
      positions.set(key, (positions.get(key) ?? 0) + (order.side === 'BUY' ? order.filled : -order.filled));
      lastFillAt.set(key, order.lastFillAt);
    });
  });
}

interface OrderPlan {
  profile: AccountProfile;
  instrumentId: number;
  day: number;
  begin: number;
  session: Session;
  position: number;
  fillCount: number;
}

/** Creates one order and its fills; returns what the position tracking needs. */
function placeOrder(ctx: Context, rng: Rng, plan: OrderPlan): { side: 'BUY' | 'SELL'; filled: number; lastFillAt: number } {
  const { profile, instrumentId, day, session } = plan;
  const symbol = symbolOf(instrumentId);
  const sessions = ctx.sessions[day] as Sessions;
  const bar = (ctx.bars[instrumentIndex(instrumentId)] as DailyBar[])[day] as DailyBar;
  const strategyId = rng.pick(profile.strategyIds);
  const strategy = strategyProfile(strategyId);

  let cents = priceCentsAt(bar, sessions, plan.begin, symbol.dailyVolatility, rng);
  const { side, quantity } = chooseTrade(plan.position, typicalQuantity(profile, cents, rng), rng);
  const order: DraftOrder = {
    seq: ctx.orders.length,
    createdAt: plan.begin - rng.int(5 * MICROS_PER_MS, 3 * MICROS_PER_SECOND),
    accountId: profile.row.account_id,
    instrumentId,
    strategyId,
    side,
    // One order in ten is cancelled before it completes: its quantity exceeds what was filled.
    quantity: rng.chance(0.1) ? quantity + (quantity >= 100 ? 100 : 1) * rng.int(1, 3) : quantity,
    limitCents: null,
    dropped: false,
    id: 0,
  };
  ctx.orders.push(order);

  let at = plan.begin;
  let worstCents = cents;
  for (const [i, part] of splitQuantity(quantity, plan.fillCount, rng).entries()) {
    if (i > 0) {
      at += rng.int(200, 90 * MICROS_PER_SECOND);
      cents = Math.max(1, cents + rng.int(-3, 3));
    }
    worstCents = side === 'BUY' ? Math.max(worstCents, cents) : Math.min(worstCents, cents);
    // Midpoint executions print at half a cent: the "some 4 decimals" prices.
    const priceTt = cents * 100 + (rng.chance(0.05) ? 50 : 0);
    const liquidity = rng.chance(strategy.addLiquidity) ? 'ADD' : 'REMOVE';
    const { commission, fees } = costsOf(profile, side, part, priceTt, liquidity, rng);
    ctx.fills.push({
      seq: ctx.fills.length,
      order,
      executedAt: at,
      ...stampsAfter(at, rng),
      accountId: profile.row.account_id,
      instrumentId,
      side,
      quantity: String(part),
      price: formatPrice(priceTt),
      commission: formatScaled(commission, 4),
      fees: formatScaled(fees, 4),
      liquidity,
      venue: session === 'regular' ? rng.weighted(VENUES) : rng.pick(EXTENDED_HOURS_VENUES),
      bad: null,
      late: false,
    });
  }
  // Seven orders in ten are limit orders, priced no worse than every fill they got.
  if (rng.chance(0.7)) order.limitCents = side === 'BUY' ? worstCents + rng.int(0, 5) : Math.max(1, worstCents - rng.int(0, 5));
  return { side, filled: quantity, lastFillAt: at };
}

// ---------------------------------------------------------------------------
// Irregular but legal rows
// ---------------------------------------------------------------------------

/** Distinct random elements of `items`, at most `count`. */
function sample<T>(items: readonly T[], count: number, rng: Rng): T[] {
  const chosen = new Set<number>();
  while (chosen.size < Math.min(count, items.length)) chosen.add(rng.int(0, items.length - 1));
  return [...chosen].sort((a, b) => a - b).map((i) => items[i] as T);
}

/**
 * A handful of fills arrive 1–3 days late (a venue's drop copy replayed), after later fills
 * were already loaded: the watermark must still catch them. Their ingest never passes `now`.
 */
function plantLateFills(ctx: Context, rng: Rng): void {
  const good = ctx.fills.filter((f) => f.bad === null && f.executedAt !== null);
  const roomy = good.filter((f) => (f.executedAt as number) + 3 * MICROS_PER_DAY < ctx.nowMicros);
  for (const fill of sample(roomy.length > 0 ? roomy : good, Math.max(3, Math.round(good.length * 0.0005)), rng)) {
    const late = (fill.executedAt as number) + rng.int(MICROS_PER_DAY, 3 * MICROS_PER_DAY);
    fill.ingestedAt = Math.max(fill.reportedAt, Math.min(late, ctx.nowMicros - rng.int(MICROS_PER_SECOND, 60 * MICROS_PER_SECOND)));
    fill.late = true;
  }
}

/** A few orders vanish from oltp.orders and a few name a strategy that does not exist: both load as 'unassigned'. */
function plantUnassignedOrders(ctx: Context, rng: Rng): void {
  const count = Math.max(2, Math.round(ctx.orders.length * 0.001));
  const picked = sample(ctx.orders, 2 * count, rng);
  picked.forEach((order, i) => {
    if (i % 2 === 0) order.dropped = true;
    else order.strategyId = UNKNOWN_STRATEGY_IDS[(i >> 1) % UNKNOWN_STRATEGY_IDS.length] as number;
  });
}

// ---------------------------------------------------------------------------
// Bad rows
// ---------------------------------------------------------------------------

/**
 * About 0.2% of fills are broken in one of the ways DESIGN.md's reject rules name, each kind
 * at least once. Every bad fill gets an order of its own, so the good fills' positions and
 * the FIFO story are the same whether or not the ETL rejects it.
 */
function plantBadFills(ctx: Context, rng: Rng): void {
  const goodCount = ctx.fills.length;
  const count = Math.max(BAD_EXECUTION_KINDS.length, Math.round(goodCount * 0.002));
  for (let i = 0; i < count; i++) {
    const kind = BAD_EXECUTION_KINDS[i % BAD_EXECUTION_KINDS.length] as BadExecutionKind;
    const day = rng.int(0, ctx.dates.length - 1);
    const profile = rng.pick(ACCOUNTS);
    const instrumentId = rng.pick(ctx.universes.get(profile.row.account_id) ?? []);
    const sessions = ctx.sessions[day] as Sessions;
    const { micros } = sampleOrderTime(sessions, rng);
    const bar = (ctx.bars[instrumentIndex(instrumentId)] as DailyBar[])[day] as DailyBar;
    const cents = priceCentsAt(bar, sessions, micros, symbolOf(instrumentId).dailyVolatility, rng);
    const side = rng.chance(0.5) ? 'BUY' : 'SELL';
    const quantity = typicalQuantity(profile, cents, rng);
    const liquidity = rng.chance(0.3) ? 'ADD' : 'REMOVE';
    const { commission, fees } = costsOf(profile, side, quantity, cents * 100, liquidity, rng);
    const order: DraftOrder = {
      seq: ctx.orders.length,
      createdAt: micros - rng.int(5 * MICROS_PER_MS, MICROS_PER_SECOND),
      accountId: profile.row.account_id,
      instrumentId,
      strategyId: rng.pick(profile.strategyIds),
      side,
      quantity,
      limitCents: null,
      dropped: false,
      id: 0,
    };
    ctx.orders.push(order);
    const fill: DraftFill = {
      seq: ctx.fills.length,
      order,
      executedAt: micros,
      ...stampsAfter(micros, rng),
      accountId: profile.row.account_id,
      instrumentId,
      side,
      quantity: String(quantity),
      price: formatPrice(cents * 100),
      commission: formatScaled(commission, 4),
      fees: formatScaled(fees, 4),
      liquidity,
      venue: rng.weighted(VENUES),
      bad: kind,
      late: false,
    };
    corrupt(fill, kind, ctx.nowMicros, rng);
    ctx.fills.push(fill);
  }
}

/** Breaks one field of a well-formed fill in the way `kind` names. */
function corrupt(fill: DraftFill, kind: BadExecutionKind, nowMicros: number, rng: Rng): void {
  switch (kind) {
    case 'quantity_zero':
      fill.quantity = '0';
      return;
    case 'quantity_negative':
      fill.quantity = `-${fill.quantity}`;
      return;
    case 'quantity_nan':
      fill.quantity = 'NaN';
      return;
    case 'quantity_null':
      fill.quantity = null;
      return;
    case 'price_zero':
      fill.price = '0.00';
      return;
    case 'price_negative':
      fill.price = `-${fill.price}`;
      return;
    case 'price_nan':
      fill.price = 'NaN';
      return;
    case 'price_null':
      fill.price = null;
      return;
    case 'side_hold':
      fill.side = 'HOLD';
      return;
    case 'side_lowercase':
      fill.side = 'buy';
      return;
    case 'account_unknown':
      fill.accountId = UNKNOWN_ACCOUNT_ID;
      return;
    case 'account_null':
      fill.accountId = null;
      return;
    case 'instrument_unknown':
      fill.instrumentId = UNKNOWN_INSTRUMENT_ID;
      return;
    case 'instrument_null':
      fill.instrumentId = null;
      return;
    case 'executed_in_future': {
      // The venue's clock is hours ahead; the row itself reached the source just before now.
      const executedAt = nowMicros + rng.int(5 * 60 * MICROS_PER_SECOND, 6 * 3_600 * MICROS_PER_SECOND);
      fill.executedAt = executedAt;
      fill.reportedAt = executedAt + rng.int(MICROS_PER_MS, 250 * MICROS_PER_MS);
      fill.ingestedAt = nowMicros - rng.int(MICROS_PER_SECOND, 600 * MICROS_PER_SECOND);
      fill.order.createdAt = fill.ingestedAt - rng.int(MICROS_PER_MS, MICROS_PER_SECOND);
      return;
    }
    case 'executed_after_ingested':
      // Still before now (history ends the day before), so "after its ingested_at" is the only fault.
      fill.executedAt = fill.ingestedAt + rng.int(5 * 60 * MICROS_PER_SECOND, 30 * 60 * MICROS_PER_SECOND);
      return;
    case 'executed_null':
      fill.executedAt = null;
      return;
  }
}

// ---------------------------------------------------------------------------
// Ids and rows
// ---------------------------------------------------------------------------

/** Order ids follow created_at and execution ids follow ingested_at, as a source's sequences would. */
function assignIds(ctx: Context): void {
  [...ctx.orders].sort((a, b) => a.createdAt - b.createdAt || a.seq - b.seq).forEach((order, i) => (order.id = ORDER_ID_BASE + i + 1));
  ctx.fills.sort((a, b) => a.ingestedAt - b.ingestedAt || a.seq - b.seq);
}

function referenceRows(firstDate: IsoDate, tz: string, rng: Rng): Pick<DemoHistory, 'accounts' | 'instruments' | 'strategies'> {
  // Reference data was last touched about a month before the history starts.
  const base = DateTime.fromISO(`${firstDate}T09:00`, { zone: tz }).minus({ days: 30 }).toMillis() * MICROS_PER_MS;
  const updatedAt = (): string => isoFromMicros(base + rng.int(0, 8 * 3_600) * MICROS_PER_SECOND);
  return {
    accounts: ACCOUNTS.map((profile) => ({ ...profile.row, updated_at: updatedAt() })),
    instruments: DEMO_SYMBOLS.map((s, i) => ({
      instrument_id: FIRST_INSTRUMENT_ID + i,
      symbol: s.symbol,
      exchange: s.exchange,
      instrument_type: s.instrumentType,
      full_name: s.fullName,
      sector: s.sector,
      industry: s.industry,
      currency: 'USD',
      tick_size: '0.01',
      lot_size: 1,
      is_active: true,
      updated_at: updatedAt(),
    })),
    strategies: STRATEGIES.map((profile) => ({ ...profile.row, updated_at: updatedAt() })),
  };
}

function orderRow(order: DraftOrder): OrderRow {
  return {
    order_id: order.id,
    account_id: order.accountId,
    instrument_id: order.instrumentId,
    strategy_id: order.strategyId,
    side: order.side,
    quantity: String(order.quantity),
    limit_price: order.limitCents === null ? null : formatScaled(order.limitCents, 2),
    created_at: isoFromMicros(order.createdAt),
  };
}

function executionRow(fill: DraftFill, executionId: number): ExecutionRow {
  return {
    execution_id: executionId,
    order_id: fill.order.id,
    account_id: fill.accountId,
    instrument_id: fill.instrumentId,
    executed_at: fill.executedAt === null ? null : isoFromMicros(fill.executedAt),
    ingested_at: isoFromMicros(fill.ingestedAt),
    side: fill.side,
    quantity: fill.quantity,
    price: fill.price,
    commission: fill.commission,
    fees: fill.fees,
    liquidity_flag: fill.liquidity,
    venue: fill.venue,
    reported_at: isoFromMicros(fill.reportedAt),
  };
}

function assertOptions(options: DemoHistoryOptions): { days: number; now: Date; tz: string; seed: number } {
  const { days, now } = options;
  const tz = options.tz ?? 'America/New_York';
  const seed = options.seed ?? 42;
  if (!Number.isSafeInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new BadInputError(`Invalid days ${String(days)}: expected an integer from 1 to ${MAX_DAYS}`);
  }
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new BadInputError('Invalid now: expected a valid Date');
  if (!IANAZone.isValidZone(tz)) throw new BadInputError(`Invalid time zone ${JSON.stringify(tz)}: expected an IANA zone name`);
  if (!Number.isSafeInteger(seed)) throw new BadInputError(`Invalid seed ${String(seed)}: expected an integer`);
  return { days, now, tz, seed };
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/**
 * Generates the demo's oltp rows: `days` NYSE trading days ending at the last trading day
 * strictly before now's date in `tz`, about EXECUTIONS_PER_DAY fills a day. Deterministic:
 * equal options give deep-equal histories.
 */
export function generateDemoHistory(options: DemoHistoryOptions): DemoHistory {
  const { days, now, tz, seed } = assertOptions(options);
  const dates = demoTradingDates(now, days, tz);
  const ctx: Context = {
    nowMicros: now.getTime() * MICROS_PER_MS,
    dates,
    sessions: dates.map((date) => sessionsOf(date, tz)),
    bars: dailyBarsOf(dates),
    universes: chooseUniverses(streamFor(seed, 'universes')),
    orders: [],
    fills: [],
  };

  simulateTrading(ctx, streamFor(seed, 'trading'));
  plantLateFills(ctx, streamFor(seed, 'late'));
  plantUnassignedOrders(ctx, streamFor(seed, 'unassigned'));
  plantBadFills(ctx, streamFor(seed, 'bad'));
  assignIds(ctx);

  const executions = ctx.fills.map((fill, i) => executionRow(fill, EXECUTION_ID_BASE + i + 1));
  const orders = [...ctx.orders].sort((a, b) => a.id - b.id);
  return {
    ...referenceRows(dates[0] as IsoDate, tz, streamFor(seed, 'reference')),
    orders: orders.filter((o) => !o.dropped).map(orderRow),
    executions,
    manifest: {
      now: now.toISOString(),
      tz,
      seed,
      days,
      tradingDates: dates,
      badExecutions: ctx.fills.flatMap((f, i) => (f.bad === null ? [] : [{ execution_id: executions[i]?.execution_id as number, kind: f.bad }])),
      lateExecutionIds: ctx.fills.flatMap((f, i) => (f.late ? [executions[i]?.execution_id as number] : [])),
      missingOrderIds: orders.filter((o) => o.dropped).map((o) => o.id),
      unknownStrategyOrderIds: orders.filter((o) => !o.dropped && !STRATEGIES.some((s) => s.row.strategy_id === o.strategyId)).map((o) => o.id),
    },
  };
}

/** Counts for the CLI to print after seeding. */
export function describeDemoHistory(history: DemoHistory): DemoHistoryDescription {
  const { manifest } = history;
  const bad = new Set(manifest.badExecutions.map((b) => b.execution_id));
  const unassignedOrders = new Set([...manifest.missingOrderIds, ...manifest.unknownStrategyOrderIds]);
  return {
    accounts: history.accounts.length,
    instruments: history.instruments.length,
    strategies: history.strategies.length,
    orders: history.orders.length,
    executions: history.executions.length,
    badRows: bad.size,
    lateFills: manifest.lateExecutionIds.length,
    unassignedFills: history.executions.filter((e) => !bad.has(e.execution_id) && e.order_id !== null && unassignedOrders.has(e.order_id)).length,
    firstTradingDate: manifest.tradingDates[0] as IsoDate,
    lastTradingDate: manifest.tradingDates.at(-1) as IsoDate,
  };
}
