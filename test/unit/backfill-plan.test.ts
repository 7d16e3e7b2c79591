import { describe, expect, it } from 'vitest';
import { planBackfill, precheckBackfill, resolveAssetClass, yearBefore } from '../../src/enrichment/backfills.ts';
import { BadInputError } from '../../src/errors.ts';

describe('a backfill request without from', () => {
  it('starts a calendar year before its end, across 29 February too', () => {
    expect(yearBefore('2026-11-20')).toBe('2025-11-20');
    expect(yearBefore('2024-03-01')).toBe('2023-03-01');
    expect(yearBefore('2025-03-01')).toBe('2024-03-01');
    expect(yearBefore('2024-02-29')).toBe('2023-02-28');
    const plan = planBackfill({ symbols: ['AAPL'], timeframes: '1d', to: '2024-03-01' }, { defaultSource: 'synthetic', maxBars: 1e9, now: Date.parse('2026-11-20T12:00:00Z') });
    expect(plan.from).toBe('2023-03-01');
  });
});

describe("a request's asset classes", () => {
  const options = { defaultSource: 'synthetic' as const, maxBars: 1e9, now: Date.parse('2026-11-20T12:00:00Z') };
  const tracked = new Map([
    ['BTCUSD', { assetClass: 'crypto' as const, trackedIn: 'market.sector_mapping' }],
    ['SPY', { assetClass: 'etf' as const, trackedIn: 'market.sector_mapping' }],
  ]);

  it.each([
    ['the universe', { universe: 'crypto', instrument_type: null, enriched: null }, { assetClass: 'crypto', trackedIn: 'market.sector_mapping' }],
    ['a coin to the trading system, whatever the universe defaulted to', { universe: 'stock', instrument_type: 'Crypto_Spot', enriched: 'stock' }, { assetClass: 'crypto', trackedIn: 'warehouse.dim_instrument' }],
    ['the universe over how it was last enriched', { universe: 'stock', instrument_type: null, enriched: 'crypto' }, { assetClass: 'stock', trackedIn: 'market.sector_mapping' }],
    ['the universe over the instrument when neither is a coin', { universe: 'etf', instrument_type: 'stock', enriched: null }, { assetClass: 'etf', trackedIn: 'market.sector_mapping' }],
    ['the instrument alone', { universe: null, instrument_type: 'ETF', enriched: 'stock' }, { assetClass: 'etf', trackedIn: 'warehouse.dim_instrument' }],
    ['how it was enriched, when nothing else knows it', { universe: null, instrument_type: 'option', enriched: 'crypto' }, { assetClass: 'crypto', trackedIn: 'enrichment.status' }],
    ['nothing', { universe: null, instrument_type: 'future', enriched: null }, undefined],
  ])('comes from %s', (_label, records, expected) => {
    expect(resolveAssetClass(records)).toEqual(expected);
  });

  it('are the tracked ones when none is asked for, a stock for a symbol nothing tracks', () => {
    const plan = planBackfill({ symbols: 'BTCUSD,AAPL', from: '2024-01-01', to: '2024-01-31' }, { ...options, assetClasses: tracked });
    expect(plan.symbols).toEqual([
      { symbol: 'BTCUSD', assetClass: 'crypto' },
      { symbol: 'AAPL', assetClass: 'stock' },
    ]);
    // Crypto has a bar every day of January, a stock one per session.
    expect(plan.estimatedBars).toBe(31 + 21);
    expect(plan.warnings).toEqual([]);
    expect(plan.assetClass).toBe('stock');
    expect(planBackfill({ symbols: 'BTCUSD', from: '2024-01-01', to: '2024-01-31' }, { ...options, assetClasses: tracked }).assetClass).toBe('crypto');
    // A bare class is the universe's (the daily job's and refresh-rs's maps).
    expect(planBackfill({ symbols: 'ETHUSD', from: '2024-01-01' }, { ...options, assetClasses: new Map([['ETHUSD', 'crypto' as const]]) }).symbols).toEqual([{ symbol: 'ETHUSD', assetClass: 'crypto' }]);
  });

  it('is the one asked for, for every symbol, with one warning per tracked class it contradicts', () => {
    const plan = planBackfill({ symbols: 'BTCUSD,SPY,AAPL', asset_class: 'stock', from: '2024-01-01', to: '2024-01-31' }, { ...options, assetClasses: tracked });
    expect(plan.symbols.map((s) => s.assetClass)).toEqual(['stock', 'stock', 'stock']);
    expect(plan.assetClass).toBe('stock');
    expect(plan.warnings).toEqual([
      'asked for as stock, but bullpen tracks BTCUSD as crypto (market.sector_mapping): planned as stock as asked; without an asset class each symbol is planned as bullpen tracks it',
      'asked for as stock, but bullpen tracks SPY as etf (market.sector_mapping): planned as stock as asked; without an asset class each symbol is planned as bullpen tracks it',
    ]);
    expect(planBackfill({ symbols: 'BTCUSD', asset_class: 'crypto', from: '2024-01-01' }, { ...options, assetClasses: tracked }).warnings).toEqual([]);
    const many = new Map(Array.from({ length: 12 }, (_, i) => [`C${i}`, { assetClass: 'crypto' as const, trackedIn: 'enrichment.status' }]));
    const [warning] = planBackfill({ symbols: [...many.keys()], asset_class: 'etf', from: '2024-01-01' }, { ...options, assetClasses: many }).warnings;
    expect(warning).toMatch(/^asked for as etf, but bullpen tracks C0, C1, C2, C3, C4, C5, C6, C7, C8, C9 and 2 more as crypto \(enrichment\.status\)/);
  });
});

describe('precheckBackfill (before the tracked classes are known)', () => {
  // 02:00 UTC on 2026-11-21: New York's date is still 2026-11-20.
  const options = { defaultSource: 'synthetic' as const, maxBars: 1e9, now: Date.parse('2026-11-21T02:00:00Z') };

  it("accepts what some class would: a coin's today is the UTC date, a day ahead of New York's", () => {
    expect(() => planBackfill({ symbols: 'BTCUSD', from: '2026-11-21' }, options)).toThrow('from: 2026-11-21 is after to 2026-11-20');
    expect(precheckBackfill({ symbols: 'BTCUSD', from: '2026-11-21' }, options)).toMatchObject({ from: '2026-11-21', to: '2026-11-21' });
  });

  it('refuses what no class would, with the error planning it as stocks gives', () => {
    expect(() => precheckBackfill({ symbols: 'BTCUSD', from: '2026-11-22' }, options)).toThrow('from: 2026-11-22 is after to 2026-11-20');
    expect(() => precheckBackfill({ symbols: 'btc usd' }, options)).toThrow(BadInputError);
    // An asset class asked for is the only one tried.
    expect(() => precheckBackfill({ symbols: 'BTCUSD', from: '2026-11-21', asset_class: 'stock' }, options)).toThrow('is after to 2026-11-20');
  });
});
