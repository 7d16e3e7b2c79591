import { DateTime } from 'luxon';
import { beforeAll, describe, expect, it } from 'vitest';
import { isTradingDay, tradingDateOf } from '../../src/analytics/calendar.ts';
import { syntheticSessionPrices } from '../../src/enrichment/providers/synthetic.ts';
import { BadInputError } from '../../src/errors.ts';
import {
  BAD_EXECUTION_KINDS,
  DEMO_SYMBOLS,
  SECTOR_ETFS,
  describeDemoHistory,
  generateDemoHistory,
  type DemoHistory,
  type ExecutionRow,
} from '../../src/demo/synthetic.ts';

const TZ = 'America/New_York';
// A Friday after the 2026-03-08 DST change, so 60 trading days straddle it (and Presidents' Day).
const NOW = new Date('2026-03-20T14:00:00Z');
const MS_PER_DAY = 86_400_000;

const COLUMNS = {
  accounts: ['account_id', 'account_number', 'account_name', 'account_type', 'broker', 'currency', 'risk_tier', 'updated_at'],
  instruments: ['instrument_id', 'symbol', 'exchange', 'instrument_type', 'full_name', 'sector', 'industry', 'currency', 'tick_size', 'lot_size', 'is_active', 'updated_at'],
  strategies: ['strategy_id', 'strategy_name', 'strategy_type', 'risk_tier', 'version', 'is_active', 'updated_at'],
  orders: ['order_id', 'account_id', 'instrument_id', 'strategy_id', 'side', 'quantity', 'limit_price', 'created_at'],
  executions: ['execution_id', 'order_id', 'account_id', 'instrument_id', 'executed_at', 'ingested_at', 'side', 'quantity', 'price', 'commission', 'fees', 'liquidity_flag', 'venue', 'reported_at'],
} as const;

const ISO_MICROS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const PRICE = /^\d+\.(\d{2}|\d{4})$/;
const MONEY_4DP = /^-?\d+\.\d{4}$/;
const WHOLE = /^\d+$/;

const ms = (iso: string | null): number => Date.parse(iso as string);

/** DESIGN.md's reject rules, written independently of the generator. */
function rejectReason(row: ExecutionRow, history: DemoHistory, now: Date): string | null {
  const accounts = new Set(history.accounts.map((a) => a.account_id));
  const instruments = new Set(history.instruments.map((i) => i.instrument_id));
  const quantity = row.quantity === null ? NaN : Number(row.quantity);
  const price = row.price === null ? NaN : Number(row.price);
  if (!(quantity > 0)) return 'quantity';
  if (!(price > 0)) return 'price';
  if (row.side !== 'BUY' && row.side !== 'SELL') return 'side';
  if (row.account_id === null || !accounts.has(row.account_id)) return 'account';
  if (row.instrument_id === null || !instruments.has(row.instrument_id)) return 'instrument';
  if (row.executed_at === null || ms(row.executed_at) > now.getTime()) return 'executed_at';
  if (ms(row.executed_at) > ms(row.ingested_at)) return 'executed_at after ingested_at';
  return null;
}

let history: DemoHistory;
let good: ExecutionRow[];
let badIds: Set<number>;

beforeAll(() => {
  history = generateDemoHistory({ days: 60, now: NOW });
  badIds = new Set(history.manifest.badExecutions.map((b) => b.execution_id));
  good = history.executions.filter((e) => !badIds.has(e.execution_id));
});

describe('generateDemoHistory', () => {
  it('is deterministic: the same options give a deep-equal history, another seed a different one', () => {
    const options = { days: 15, now: NOW, tz: TZ, seed: 7 };

    const first = generateDemoHistory(options);
    const again = generateDemoHistory({ ...options });
    const other = generateDemoHistory({ ...options, seed: 8 });

    expect(again).toEqual(first);
    expect(other.executions).not.toEqual(first.executions);
    expect(generateDemoHistory({ days: 60, now: NOW })).toEqual(history);
  });

  it('covers the last `days` NYSE trading days before the New York date of now', () => {
    expect(history.manifest.tradingDates).toHaveLength(60);
    expect(history.manifest.tradingDates.at(-1)).toBe('2026-03-19');
    expect(history.manifest.tradingDates).not.toContain('2026-02-16'); // Washington's Birthday
    // 23:30 on 2026-03-19 in New York is already the 20th in UTC: the New York date decides.
    const lateEvening = generateDemoHistory({ days: 3, now: new Date('2026-03-20T03:30:00Z') });
    expect(lateEvening.manifest.tradingDates).toEqual(['2026-03-16', '2026-03-17', '2026-03-18']);
  });

  it('writes rows whose keys are exactly the oltp columns', () => {
    for (const table of Object.keys(COLUMNS) as Array<keyof typeof COLUMNS>) {
      expect(history[table].length, table).toBeGreaterThan(0);
      for (const row of history[table]) expect(Object.keys(row), table).toEqual(COLUMNS[table]);
    }
  });

  it('has the reference data the issue asks for', () => {
    const { accounts, instruments, strategies } = history;
    expect(accounts.length).toBeGreaterThanOrEqual(8);
    expect(new Set(accounts.map((a) => a.account_type)).size).toBeGreaterThanOrEqual(3);
    expect(new Set(accounts.map((a) => a.broker)).size).toBeGreaterThanOrEqual(3);
    expect(new Set(accounts.map((a) => a.risk_tier))).toEqual(new Set(['low', 'medium', 'high']));

    expect(instruments.length).toBeGreaterThanOrEqual(40);
    const symbols = instruments.map((i) => i.symbol);
    for (const symbol of ['SPY', 'QQQ', 'IWM', 'XLK', 'XLF', 'XLE', 'XLV', 'XLY', 'XLP', 'XLI', 'XLU', 'XLB', 'XLRE', 'XLC']) {
      expect(instruments.find((i) => i.symbol === symbol)?.instrument_type, symbol).toBe('etf');
    }
    expect(new Set(symbols).size).toBe(symbols.length);
    const stocks = instruments.filter((i) => i.instrument_type === 'stock');
    expect(stocks.length).toBeGreaterThanOrEqual(30);
    for (const s of stocks) {
      expect(Object.keys(SECTOR_ETFS), s.symbol).toContain(s.sector);
      expect(s.industry, s.symbol).toBeTruthy();
    }
    for (const i of instruments) {
      expect(i).toMatchObject({ currency: 'USD', tick_size: '0.01', lot_size: 1, is_active: true });
      expect(['NYSE', 'NASDAQ', 'ARCA']).toContain(i.exchange);
    }
    expect(DEMO_SYMBOLS.map((s) => s.symbol)).toEqual(symbols);
    expect(DEMO_SYMBOLS.find((s) => s.symbol === 'AAPL')).toMatchObject({ sector: 'Information Technology', sectorEtf: 'XLK' });

    expect(strategies).toHaveLength(5);
    expect(new Set(strategies.map((s) => s.strategy_type)).size).toBe(5);
  });

  it('trades about EXECUTIONS_PER_DAY fills a day in orders of 1–4 fills', () => {
    expect(history.executions.length).toBeGreaterThan(60 * 270);
    expect(history.executions.length).toBeLessThan(60 * 330);
    const fillsPerOrder = new Map<number, number>();
    for (const e of good) fillsPerOrder.set(e.order_id as number, (fillsPerOrder.get(e.order_id as number) ?? 0) + 1);
    expect(Math.max(...fillsPerOrder.values())).toBe(4);
    expect(Math.min(...fillsPerOrder.values())).toBe(1);
  });

  it('scales linearly with days', () => {
    const long = generateDemoHistory({ days: 500, now: NOW });
    expect(long.manifest.tradingDates).toHaveLength(500);
    expect(long.executions.length / history.executions.length).toBeGreaterThan(7.5);
    expect(long.executions.length / history.executions.length).toBeLessThan(9.2);
  });

  it('plants every kind of bad row, about 0.2% of fills, each wrong exactly as named', () => {
    const bad = history.manifest.badExecutions;
    expect(new Set(bad.map((b) => b.kind))).toEqual(new Set(BAD_EXECUTION_KINDS));
    expect(bad.length).toBeGreaterThanOrEqual(Math.round(good.length * 0.002));
    expect(bad.length).toBeLessThan(good.length * 0.003);

    const byId = new Map(history.executions.map((e) => [e.execution_id, e]));
    const accounts = new Set(history.accounts.map((a) => a.account_id));
    const instruments = new Set(history.instruments.map((i) => i.instrument_id));
    for (const { execution_id, kind } of bad) {
      const row = byId.get(execution_id) as ExecutionRow;
      const expected: Record<typeof kind, () => boolean> = {
        quantity_zero: () => Number(row.quantity) === 0,
        quantity_negative: () => Number(row.quantity) < 0,
        quantity_nan: () => row.quantity === 'NaN',
        quantity_null: () => row.quantity === null,
        price_zero: () => Number(row.price) === 0 && row.price !== null,
        price_negative: () => Number(row.price) < 0,
        price_nan: () => row.price === 'NaN',
        price_null: () => row.price === null,
        side_hold: () => row.side === 'HOLD',
        side_lowercase: () => row.side === 'buy',
        account_unknown: () => row.account_id !== null && !accounts.has(row.account_id),
        account_null: () => row.account_id === null,
        instrument_unknown: () => row.instrument_id !== null && !instruments.has(row.instrument_id),
        instrument_null: () => row.instrument_id === null,
        executed_in_future: () => ms(row.executed_at) > NOW.getTime() && ms(row.ingested_at) <= NOW.getTime(),
        executed_after_ingested: () => ms(row.executed_at) > ms(row.ingested_at) && ms(row.executed_at) <= NOW.getTime(),
        executed_null: () => row.executed_at === null,
      };
      expect(expected[kind](), `${kind}: ${JSON.stringify(row)}`).toBe(true);
    }
  });

  it('rejects exactly the planted rows under the contract rules', () => {
    const rejected = history.executions.filter((e) => rejectReason(e, history, NOW) !== null).map((e) => e.execution_id);

    expect(rejected.sort()).toEqual([...badIds].sort());
  });

  it('writes well-formed good rows', () => {
    const problems = good.flatMap((e) => {
      const found: string[] = [];
      if (!WHOLE.test(e.quantity ?? '') || !(Number(e.quantity) > 0)) found.push('quantity');
      if (!PRICE.test(e.price ?? '') || !(Number(e.price) > 0)) found.push('price');
      if (e.side !== 'BUY' && e.side !== 'SELL') found.push('side');
      if (!MONEY_4DP.test(e.commission ?? '') || !MONEY_4DP.test(e.fees ?? '')) found.push('commission/fees');
      if (!['ADD', 'REMOVE'].includes(e.liquidity_flag ?? '')) found.push('liquidity_flag');
      if (!['NYSE', 'NASDAQ', 'ARCA', 'IEX', 'BATS'].includes(e.venue ?? '')) found.push('venue');
      if (![e.executed_at, e.reported_at, e.ingested_at].every((t) => ISO_MICROS.test(t ?? ''))) found.push('timestamp format');
      const latency = ms(e.reported_at) - ms(e.executed_at);
      if (latency < 0 || latency > 251) found.push('venue latency');
      if (ms(e.ingested_at) < ms(e.reported_at)) found.push('ingested before reported');
      return found.length === 0 ? [] : [`${e.execution_id}: ${found.join(', ')}`];
    });

    expect(problems).toEqual([]);
    expect(good.some((e) => /\.\d{4}$/.test(e.price as string))).toBe(true);
    expect(good.some((e) => (e.fees as string).startsWith('-') && e.liquidity_flag === 'ADD')).toBe(true);
    expect(good.filter((e) => (e.fees as string).startsWith('-')).every((e) => e.liquidity_flag === 'ADD')).toBe(true);
    // Sells pay the SEC fee ($27.80 per million notional) and FINRA's TAF: never zero when no rebate applies.
    expect(good.filter((e) => e.side === 'SELL' && e.liquidity_flag === 'REMOVE').every((e) => Number(e.fees) > 0)).toBe(true);
  });

  it('trades at the prices the synthetic provider stores in market.bars, so positions are marked at their own market', () => {
    const symbolOf = new Map(history.instruments.map((i) => [i.instrument_id, i]));
    const newYorkDate = new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' });
    const outside: string[] = [];
    const bars = new Map<string, Map<string, { open: number; close: number }>>();
    for (const e of good) {
      const instrument = symbolOf.get(e.instrument_id as number)!;
      let daily = bars.get(instrument.symbol);
      if (!daily) {
        // The open and close of the provider's 1d bars (synthetic-provider.test.ts checks they are).
        const sessions = syntheticSessionPrices({ symbol: instrument.symbol, assetClass: instrument.instrument_type as 'stock' | 'etf', from: '2025-12-01', to: '2026-03-20' });
        daily = new Map(sessions.map((session) => [session.date, session]));
        bars.set(instrument.symbol, daily);
      }
      const bar = daily.get(newYorkDate.format(ms(e.executed_at)));
      const price = Number(e.price);
      // Between the day's open and close, give or take the intraday noise.
      if (!bar || price < 0.9 * Math.min(bar.open, bar.close) || price > 1.1 * Math.max(bar.open, bar.close)) outside.push(`${e.execution_id} ${instrument.symbol} ${e.price}`);
    }
    expect(outside).toEqual([]);
  });

  it('keeps every ingested_at at or before now, and good fills ingested after they executed', () => {
    expect(history.executions.filter((e) => ms(e.ingested_at) > NOW.getTime())).toEqual([]);
    expect(good.filter((e) => ms(e.ingested_at) < ms(e.executed_at))).toEqual([]);
  });

  it('numbers executions in ingest order', () => {
    const rows = history.executions;
    expect(rows.filter((e, i) => i > 0 && e.execution_id <= (rows[i - 1]?.execution_id ?? 0))).toEqual([]);
    expect(rows.filter((e, i) => i > 0 && ms(e.ingested_at) < ms(rows[i - 1]?.ingested_at ?? null))).toEqual([]);
  });

  it('places fills on NYSE trading days, in New York exchange hours across the DST change', () => {
    const dates = new Set(history.manifest.tradingDates);
    const sessions = new Map<string, number>();
    const offsets = new Set<number>();
    const problems: string[] = [];
    for (const e of good) {
      const local = DateTime.fromISO(e.executed_at as string, { zone: TZ });
      const date = local.toISODate() as string;
      if (!isTradingDay(date) || !dates.has(date)) problems.push(`${e.executed_at}: trading date ${date}`);
      offsets.add(local.offset);
      const minutes = local.hour * 60 + local.minute;
      // 04:00–20:00, plus the few minutes an order's later fills may run past a session's end.
      if (minutes < 4 * 60 || minutes >= 20 * 60 + 10) problems.push(`${e.executed_at}: ${local.toFormat('HH:mm')} in New York`);
      const session = minutes < 9 * 60 + 30 ? 'pre' : minutes >= 16 * 60 ? 'post' : 'regular';
      sessions.set(session, (sessions.get(session) ?? 0) + 1);
    }

    expect(problems).toEqual([]);
    expect(tradingDateOf(good[0]?.executed_at as string, TZ)).toBe(history.manifest.tradingDates[0]);
    expect((sessions.get('regular') ?? 0) / good.length).toBeGreaterThan(0.85);
    expect(sessions.get('pre')).toBeGreaterThan(0);
    expect(sessions.get('post')).toBeGreaterThan(0);
    // Both sides of the DST change trade, at UTC offsets -5 h and -4 h.
    expect(offsets).toEqual(new Set([-300, -240]));
  });

  it('gives every fill of an order the order’s account, instrument and side', () => {
    const orders = new Map(history.orders.map((o) => [o.order_id, o]));
    const strategies = new Set(history.strategies.map((s) => s.strategy_id));
    for (const e of good) {
      const order = orders.get(e.order_id as number);
      if (order === undefined) continue;
      expect({ account: e.account_id, instrument: e.instrument_id, side: e.side }).toEqual({
        account: order.account_id,
        instrument: order.instrument_id,
        side: order.side,
      });
    }
    const missing = good.filter((e) => !orders.has(e.order_id as number));
    expect(missing.length).toBeGreaterThan(0);
    expect(new Set(missing.map((e) => e.order_id))).toEqual(new Set(history.manifest.missingOrderIds));
    const unknownStrategy = history.orders.filter((o) => !strategies.has(o.strategy_id));
    expect(unknownStrategy.map((o) => o.order_id)).toEqual(history.manifest.unknownStrategyOrderIds);
    expect(unknownStrategy.length).toBeGreaterThan(0);
    expect(history.orders.every((o) => o.strategy_id !== null)).toBe(true);
  });

  it('has a handful of fills ingested 1–3 days late', () => {
    const late = history.manifest.lateExecutionIds;
    expect(late.length).toBeGreaterThanOrEqual(3);
    const byId = new Map(history.executions.map((e) => [e.execution_id, e]));
    for (const id of late) {
      const e = byId.get(id) as ExecutionRow;
      const delay = ms(e.ingested_at) - ms(e.executed_at);
      expect(delay).toBeGreaterThanOrEqual(MS_PER_DAY);
      expect(delay).toBeLessThanOrEqual(3 * MS_PER_DAY);
    }
    const onTime = good.filter((e) => !late.includes(e.execution_id));
    expect(Math.max(...onTime.map((e) => ms(e.ingested_at) - ms(e.executed_at)))).toBeLessThanOrEqual(2_251);
  });

  it('goes long, short, covers and flips when fills are replayed per account and instrument', () => {
    // Same-format UTC ISO strings sort as their instants; ties by execution_id, as the contract says.
    const at = (e: ExecutionRow): string => e.executed_at as string;
    const replay = [...good].sort((a, b) => (at(a) < at(b) ? -1 : at(a) > at(b) ? 1 : a.execution_id - b.execution_id));
    const positions = new Map<string, number>();
    const seen = { long: 0, short: 0, cover: 0, flip: 0 };
    for (const e of replay) {
      const key = `${e.account_id}:${e.instrument_id}`;
      const before = positions.get(key) ?? 0;
      const after = before + (e.side === 'BUY' ? 1 : -1) * Number(e.quantity);
      positions.set(key, after);
      if (before >= 0 && after > before) seen.long++;
      if (before <= 0 && after < before) seen.short++;
      if (before < 0 && after === 0) seen.cover++;
      if (Math.sign(before) * Math.sign(after) === -1) seen.flip++;
    }
    expect(seen.long).toBeGreaterThan(0);
    expect(seen.short).toBeGreaterThan(0);
    expect(seen.cover).toBeGreaterThan(0);
    expect(seen.flip).toBeGreaterThan(0);
  });

  it('rejects bad options', () => {
    expect(() => generateDemoHistory({ days: 0, now: NOW })).toThrow(BadInputError);
    expect(() => generateDemoHistory({ days: 1.5, now: NOW })).toThrow(BadInputError);
    expect(() => generateDemoHistory({ days: 5, now: new Date('nope') })).toThrow(BadInputError);
    expect(() => generateDemoHistory({ days: 5, now: NOW, tz: 'Mars/Olympus' })).toThrow(BadInputError);
  });
});

describe('describeDemoHistory', () => {
  it('counts what the CLI prints', () => {
    const summary = describeDemoHistory(history);

    expect(summary).toMatchObject({
      accounts: history.accounts.length,
      instruments: history.instruments.length,
      strategies: 5,
      orders: history.orders.length,
      executions: history.executions.length,
      badRows: history.manifest.badExecutions.length,
      lateFills: history.manifest.lateExecutionIds.length,
      firstTradingDate: history.manifest.tradingDates[0],
      lastTradingDate: '2026-03-19',
    });
    expect(summary.unassignedFills).toBeGreaterThan(0);
  });
});
