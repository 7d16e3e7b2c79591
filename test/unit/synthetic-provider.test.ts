import { DateTime } from 'luxon';
import { describe, expect, it, vi } from 'vitest';
import type { Bar } from '../../src/analytics/bars.ts';
import { tradingDaysBetween } from '../../src/analytics/calendar.ts';
import { calendarOf, dayNumberOfIsoDate, expectedBarOpens, type AssetClass, type Timeframe } from '../../src/analytics/timeframes.ts';
import { createSyntheticProvider, generateSyntheticBars, syntheticSessionPrices } from '../../src/enrichment/providers/synthetic.ts';
import { BadInputError } from '../../src/errors.ts';

const NY = 'America/New_York';

function bars(symbol: string, timeframe: Timeframe, from: string, to: string, assetClass: AssetClass = 'stock', seed?: number): Bar[] {
  return generateSyntheticBars({ symbol, assetClass, timeframe, from, to }, seed);
}

function aggregate(parts: Bar[], ts: number): Bar {
  return {
    ts,
    open: parts[0]!.open,
    high: Math.max(...parts.map((b) => b.high)),
    low: Math.min(...parts.map((b) => b.low)),
    close: parts.at(-1)!.close,
    volume: parts.reduce((sum, b) => sum + b.volume, 0),
  };
}

function nyDate(ts: number): string {
  return DateTime.fromMillis(ts, { zone: NY }).toISODate() as string;
}

/** The bars breaking an OHLC relation, cents, integer volume or ascending order (one expect, not one per bar). */
function invalidBars(list: Bar[]): Bar[] {
  return list.filter(
    (b, i) =>
      !(b.low > 0 && b.low <= Math.min(b.open, b.close) && b.high >= Math.max(b.open, b.close)) ||
      [b.open, b.high, b.low, b.close].some((price) => Math.round(price * 100) / 100 !== price) ||
      !Number.isInteger(b.volume) ||
      b.volume < 0 ||
      (i > 0 && b.ts <= list[i - 1]!.ts),
  );
}

describe('synthetic provider: determinism', () => {
  it('gives the same bars for one range or the range cut into chunks', () => {
    const whole = bars('AAPL', '1d', '2024-01-01', '2024-03-31');
    const months = [
      ...bars('AAPL', '1d', '2024-01-01', '2024-01-31'),
      ...bars('AAPL', '1d', '2024-02-01', '2024-02-29'),
      ...bars('AAPL', '1d', '2024-03-01', '2024-03-31'),
    ];
    expect(months).toEqual(whole);
    expect(whole.length).toBeGreaterThan(55);

    const minutes = bars('MSFT', '1m', '2024-03-01', '2024-03-15');
    const pieces = [
      ...bars('MSFT', '1m', '2024-03-01', '2024-03-04'),
      ...bars('MSFT', '1m', '2024-03-05', '2024-03-05'),
      ...bars('MSFT', '1m', '2024-03-06', '2024-03-15'),
    ];
    expect(pieces).toEqual(minutes);

    const weeks = bars('SPY', '1w', '2023-01-01', '2023-12-31');
    expect([...bars('SPY', '1w', '2023-01-01', '2023-06-30'), ...bars('SPY', '1w', '2023-07-01', '2023-12-31')]).toEqual(weeks);
  });

  it('does not depend on which ranges were fetched before (fresh module caches, opposite orders)', async () => {
    vi.resetModules();
    const first = await import('../../src/enrichment/providers/synthetic.ts');
    const late = first.generateSyntheticBars({ symbol: 'IBM', assetClass: 'stock', timeframe: '1d', from: '2024-05-01', to: '2024-05-31' });
    const early = first.generateSyntheticBars({ symbol: 'IBM', assetClass: 'stock', timeframe: '1d', from: '1991-05-01', to: '1991-05-31' });
    vi.resetModules();
    const second = await import('../../src/enrichment/providers/synthetic.ts');
    expect(second.generateSyntheticBars({ symbol: 'IBM', assetClass: 'stock', timeframe: '1d', from: '1991-05-01', to: '1991-05-31' })).toEqual(early);
    expect(second.generateSyntheticBars({ symbol: 'IBM', assetClass: 'stock', timeframe: '1d', from: '2024-05-01', to: '2024-05-31' })).toEqual(late);
  });

  it('gives different histories to different symbols and seeds', () => {
    const a = bars('AAA', '1d', '2024-01-01', '2024-01-31');
    const b = bars('BBB', '1d', '2024-01-01', '2024-01-31');
    expect(a.map((x) => x.ts)).toEqual(b.map((x) => x.ts));
    expect(a.map((x) => x.close)).not.toEqual(b.map((x) => x.close));
    expect(bars('AAA', '1d', '2024-01-01', '2024-01-31', 'stock', 7)).not.toEqual(a);
    expect(bars('AAA', '1d', '2024-01-01', '2024-01-31', 'stock', 7)).toEqual(bars('AAA', '1d', '2024-01-01', '2024-01-31', 'stock', 7));
  });
});

describe('synthetic provider: aggregation', () => {
  it.each([
    ['AAPL', 'stock', '2024-03-05'],
    ['QQQ', 'etf', '2024-11-29'],
    ['BTC-USD', 'crypto', '2024-03-10'],
  ] as const)('makes the 1d bar of %s on %s the aggregate of its 1m bars', (symbol, assetClass, date) => {
    const minutes = bars(symbol, '1m', date, date, assetClass);
    const [daily] = bars(symbol, '1d', date, date, assetClass);
    expect(daily).toEqual(aggregate(minutes, expectedBarOpens(dayNumberOfIsoDate(date), '1d', calendarOf(assetClass))[0]!));
  });

  it('makes intraday bars the aggregates of the minutes in their clock-aligned slots', () => {
    const minutes = bars('NVDA', '1m', '2024-03-05', '2024-03-05');
    for (const [timeframe, slotMs] of [
      ['5m', 300_000],
      ['30m', 1_800_000],
      ['1h', 3_600_000],
      ['4h', 14_400_000],
    ] as const) {
      const slots = bars('NVDA', timeframe, '2024-03-05', '2024-03-05');
      expect(slots.map((b) => b.ts)).toEqual(expectedBarOpens(dayNumberOfIsoDate('2024-03-05'), timeframe, 'nyse'));
      for (const slot of slots) expect(slot).toEqual(aggregate(minutes.filter((m) => m.ts >= slot.ts && m.ts < slot.ts + slotMs), slot.ts));
    }
  });

  it('makes a 1w bar the aggregate of its week’s 1d bars, stamped Monday midnight New York time', () => {
    const weeks = bars('SPY', '1w', '2024-06-01', '2024-08-31');
    const days = bars('SPY', '1d', '2024-06-01', '2024-09-08');
    expect(weeks.map((w) => nyDate(w.ts))).toEqual([
      '2024-06-03', '2024-06-10', '2024-06-17', '2024-06-24', '2024-07-01', '2024-07-08', '2024-07-15',
      '2024-07-22', '2024-07-29', '2024-08-05', '2024-08-12', '2024-08-19', '2024-08-26',
    ]);
    for (const week of weeks) {
      const local = DateTime.fromMillis(week.ts, { zone: NY });
      expect([local.weekday, local.hour, local.minute]).toEqual([1, 0, 0]);
      expect(week).toEqual(aggregate(days.filter((d) => d.ts >= week.ts && d.ts < week.ts + 7 * 86_400_000), week.ts));
    }
    // The week of 2024-08-26 includes days after `to`; a week is included when its Monday is in range.
    expect(bars('SPY', '1w', '2024-07-02', '2024-07-08').map((w) => nyDate(w.ts))).toEqual(['2024-07-08']);
  });
});

describe('synthetic provider: session prices', () => {
  it.each([
    ['AAPL', 'stock'],
    ['XLK', 'etf'],
    ['BTC-USD', 'crypto'],
  ] as const)('gives %s the open and close of its 1d bars, session for session, without simulating minutes', (symbol, assetClass) => {
    const daily = bars(symbol, '1d', '2025-11-20', '2026-03-20', assetClass);
    const sessions = syntheticSessionPrices({ symbol, assetClass, from: '2025-11-20', to: '2026-03-20' });
    expect(sessions.map((s) => [s.date, s.open, s.close])).toEqual(
      daily.map((b) => [DateTime.fromMillis(b.ts, { zone: assetClass === 'crypto' ? 'UTC' : 'America/New_York' }).toISODate(), b.open, b.close]),
    );
  });
});

describe('synthetic provider: sessions', () => {
  it('has 7 hourly bars on a normal NYSE day and 4 on an early close', () => {
    const normal = bars('AAPL', '1h', '2024-11-26', '2024-11-26');
    expect(normal.map((b) => DateTime.fromMillis(b.ts, { zone: NY }).toFormat('HH:mm'))).toEqual(['09:00', '10:00', '11:00', '12:00', '13:00', '14:00', '15:00']);
    expect(bars('AAPL', '1h', '2024-11-29', '2024-11-29')).toHaveLength(4);
    expect(bars('AAPL', '1m', '2024-11-26', '2024-11-26')).toHaveLength(390);
    expect(bars('AAPL', '1m', '2024-11-29', '2024-11-29')).toHaveLength(210);
  });

  it('has no stock bars on holidays or weekends', () => {
    for (const timeframe of ['1m', '1h', '1d'] as const) {
      expect(bars('AAPL', timeframe, '2024-07-04', '2024-07-04')).toEqual([]);
      expect(bars('AAPL', timeframe, '2024-07-06', '2024-07-07')).toEqual([]);
    }
    const july = bars('AAPL', '1d', '2024-07-01', '2024-07-09').map((b) => nyDate(b.ts));
    expect(july).toEqual(['2024-07-01', '2024-07-02', '2024-07-03', '2024-07-05', '2024-07-08', '2024-07-09']);
  });

  it('gives crypto 1440 minute bars every UTC day, weekends included', () => {
    for (const date of ['2024-07-04', '2024-07-06']) {
      const minutes = bars('ETH-USD', '1m', date, date, 'crypto');
      expect(minutes).toHaveLength(1440);
      expect(minutes[0]!.ts).toBe(Date.parse(`${date}T00:00:00Z`));
      expect(minutes.at(-1)!.ts).toBe(Date.parse(`${date}T23:59:00Z`));
    }
  });

  it('opens each day near the previous close (exactly at it for crypto) and each minute at the last close', () => {
    const days = bars('AAPL', '1d', '2023-01-01', '2024-12-31');
    const gaps = days.slice(1).map((b, i) => Math.abs(Math.log(b.open / days[i]!.close)));
    expect(Math.max(...gaps)).toBeLessThan(0.05);
    expect(Math.max(...gaps)).toBeGreaterThan(0);
    const coin = bars('BTC-USD', '1m', '2024-03-09', '2024-03-11', 'crypto');
    expect(coin.slice(1).filter((b, i) => b.open !== coin[i]!.close)).toEqual([]);
    const stock = bars('AAPL', '1m', '2024-03-05', '2024-03-05');
    expect(stock.slice(1).filter((b, i) => b.open !== stock[i]!.close)).toEqual([]);
  });
});

describe('synthetic provider: values', () => {
  it('keeps OHLC relations, cents and integer volumes over thousands of bars', () => {
    for (const symbol of ['AAPL', 'X', 'BRK.B', 'TINY']) {
      const all = [bars(symbol, '1m', '2024-02-05', '2024-02-09'), bars(symbol, '15m', '2024-01-01', '2024-03-31'), bars(symbol, '1d', '2015-01-01', '2024-12-31')];
      expect(all.map((list) => list.length)).toEqual([5 * 390, 26 * tradingDaysBetween('2024-01-01', '2024-03-31').length, tradingDaysBetween('2015-01-01', '2024-12-31').length]);
      for (const list of all) expect(invalidBars(list)).toEqual([]);
    }
    expect(invalidBars(bars('SOL-USD', '5m', '2024-01-01', '2024-01-31', 'crypto'))).toEqual([]);
  });

  it('keeps prices sane over decades, back to 1990', () => {
    for (let i = 0; i < 8; i++) {
      const daily = bars(`SYM${i}`, '1d', '1990-01-01', '2024-12-31', i % 3 === 0 ? 'crypto' : 'stock');
      expect(nyDate(daily[0]!.ts) <= '1990-01-05').toBe(true);
      const closes = daily.map((b) => b.close);
      const [min, max] = [Math.min(...closes), Math.max(...closes)];
      expect(min).toBeGreaterThan(0.5);
      expect(max).toBeLessThan(20_000);
      const twentyYears = closes.slice(-5040);
      expect(Math.max(...twentyYears) / Math.min(...twentyYears)).toBeLessThan(200);
      // Daily moves of a few percent, not a runaway.
      const moves = daily.slice(1).map((b, j) => Math.abs(Math.log(b.close / daily[j]!.close)));
      expect(Math.max(...moves)).toBeLessThan(0.25);
    }
  }, 30_000); // decades of minute paths: seconds on a loaded 2-core machine

  it('varies daily volume per symbol within a plausible range', () => {
    const volumes = ['AAPL', 'MSFT', 'XOM', 'TINY', 'GE'].map((s) => bars(s, '1d', '2024-01-02', '2024-01-02')[0]!.volume);
    for (const v of volumes) {
      expect(v).toBeGreaterThan(1e4);
      expect(v).toBeLessThan(5e8);
    }
    expect(new Set(volumes).size).toBe(volumes.length);
  });
});

describe('synthetic provider: the MarketDataProvider contract', () => {
  it('fetches with no requests and no quota', async () => {
    const provider = createSyntheticProvider({ seed: 3 });
    expect(provider.name).toBe('synthetic');
    const result = await provider.fetchBars({ symbol: 'AAPL', assetClass: 'stock', timeframe: '1d', from: '2024-01-01', to: '2024-01-31' });
    expect(result.bars).toEqual(bars('AAPL', '1d', '2024-01-01', '2024-01-31', 'stock', 3));
    expect(result).toMatchObject({ requests: 0, quotaRemaining: null });
    expect(result.responseTimeMs).toBeGreaterThanOrEqual(0);
  });

  it('honours an aborted signal and rejects bad input', async () => {
    const provider = createSyntheticProvider();
    const request = { symbol: 'AAPL', assetClass: 'stock', timeframe: '1d', from: '2024-01-01', to: '2024-01-31' } as const;
    await expect(provider.fetchBars({ ...request, signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    await expect(provider.fetchBars({ ...request, from: '2024-02-30' })).rejects.toBeInstanceOf(BadInputError);
    await expect(provider.fetchBars({ ...request, from: '2024-02-01', to: '2024-01-01' })).rejects.toBeInstanceOf(BadInputError);
    await expect(provider.fetchBars({ ...request, from: '1969-12-31' })).rejects.toThrow(/1970-01-01 to 2099-12-31/);
    await expect(provider.fetchBars({ ...request, symbol: '' })).rejects.toBeInstanceOf(BadInputError);
    expect(() => createSyntheticProvider({ seed: 1.5 })).toThrow(BadInputError);
  });
});
