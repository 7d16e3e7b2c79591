/**
 * The RS universe seeded by sql/008_universe.sql: 100+ stocks over all 11 GICS sectors, each
 * pointing at its sector's Select Sector SPDR ETF (itself a row), the benchmarks, well-formed and
 * unique symbols, and the same sectors, industries and ETFs as the demo universe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_SYMBOLS, SECTOR_ETFS } from '../../src/demo/synthetic.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

interface MappingRow {
  symbol: string;
  sector_name: string;
  industry: string | null;
  sector_etf: string | null;
  asset_class: string;
}

const SECTORS = Object.keys(SECTOR_ETFS) as (keyof typeof SECTOR_ETFS)[];
const SPDR_TICKERS = new Set<string>(Object.values(SECTOR_ETFS));

/** Thrown to roll back a transaction on purpose. */
class RollbackSignal extends Error {}

let db: TestDatabase;
let rows: MappingRow[];
let bySymbol: Map<string, MappingRow>;

beforeAll(async () => {
  db = await createTestDatabase();
  rows = await db.sql<MappingRow[]>`select symbol, sector_name, industry, sector_etf, asset_class from market.sector_mapping order by symbol`;
  bySymbol = new Map(rows.map((r) => [r.symbol, r]));
});

afterAll(async () => {
  await db?.drop();
});

describe('sql/008_universe.sql', () => {
  it('the eleven sector names are the GICS ones the demo universe uses', () => {
    expect([...SECTORS].sort()).toEqual([
      'Communication Services', 'Consumer Discretionary', 'Consumer Staples', 'Energy', 'Financials', 'Health Care',
      'Industrials', 'Information Technology', 'Materials', 'Real Estate', 'Utilities',
    ]);
    expect([...SPDR_TICKERS].sort()).toEqual(['XLB', 'XLC', 'XLE', 'XLF', 'XLI', 'XLK', 'XLP', 'XLRE', 'XLU', 'XLV', 'XLY']);
  });

  it('seeds at least 100 stocks, at least 5 in every sector and none outside the 11', () => {
    const stocks = rows.filter((r) => r.asset_class === 'stock');
    expect(stocks.length).toBeGreaterThanOrEqual(100);
    const perSector = new Map<string, number>();
    for (const s of stocks) perSector.set(s.sector_name, (perSector.get(s.sector_name) ?? 0) + 1);
    for (const sector of SECTORS) expect(perSector.get(sector) ?? 0, sector).toBeGreaterThanOrEqual(5);
    expect([...perSector.keys()].filter((s) => !(SECTORS as string[]).includes(s))).toEqual([]);
    for (const s of stocks) expect(s.industry, s.symbol).toMatch(/\S/);
  });

  it("every stock's sector_etf is its sector's SPDR ETF, an etf row tracking that sector", () => {
    for (const s of rows.filter((r) => r.asset_class === 'stock')) {
      expect(s.sector_etf !== null && SPDR_TICKERS.has(s.sector_etf), `${s.symbol} → ${s.sector_etf}`).toBe(true);
      expect(s.sector_etf, s.symbol).toBe(SECTOR_ETFS[s.sector_name as keyof typeof SECTOR_ETFS]);
      const etf = bySymbol.get(s.sector_etf ?? '');
      expect(etf, `${s.symbol} → ${s.sector_etf}`).toMatchObject({ asset_class: 'etf', sector_name: s.sector_name });
    }
  });

  it('holds the eleven sector ETFs and the benchmarks SPY, QQQ, DIA, IWM as ETFs without a sector ETF', () => {
    for (const [sector, ticker] of Object.entries(SECTOR_ETFS)) {
      expect(bySymbol.get(ticker), ticker).toMatchObject({ sector_name: sector, industry: 'Sector ETF', sector_etf: null, asset_class: 'etf' });
    }
    for (const ticker of ['SPY', 'QQQ', 'DIA', 'IWM']) {
      expect(bySymbol.get(ticker), ticker).toMatchObject({ sector_name: 'Benchmark', sector_etf: null, asset_class: 'etf' });
    }
    expect(rows.filter((r) => r.asset_class === 'etf')).toHaveLength(15);
    expect(rows.filter((r) => r.asset_class === 'crypto')).toHaveLength(0);
  });

  it('symbols are uppercase tickers (class shares with a dot) and unique', async () => {
    for (const r of rows) expect(r.symbol).toMatch(/^[A-Z][A-Z0-9.-]*$/);
    expect(new Set(rows.map((r) => r.symbol)).size).toBe(rows.length);
    // Unique also without the primary key's help: no two spellings of one ticker.
    const [dupes] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from (select upper(trim(symbol)) from market.sector_mapping group by 1 having count(*) > 1) d`;
    expect(dupes?.n).toBe(0);
    expect(bySymbol.get('BRK.B')).toMatchObject({ sector_name: 'Financials', sector_etf: 'XLF', asset_class: 'stock' });
  });

  it('agrees with the demo universe on every demo symbol', () => {
    for (const d of DEMO_SYMBOLS) {
      const row = bySymbol.get(d.symbol);
      expect(row, d.symbol).toBeDefined();
      if (d.instrumentType === 'stock') {
        expect(row, d.symbol).toMatchObject({ sector_name: d.sector, industry: d.industry, sector_etf: d.sectorEtf, asset_class: 'stock' });
      } else {
        expect(row, d.symbol).toMatchObject({ sector_name: d.sector ?? 'Benchmark', sector_etf: null, asset_class: 'etf' });
      }
    }
  });

  it('keeps rows a user wrote before it ran (ON CONFLICT DO NOTHING), and re-running it adds nothing', async () => {
    const { readFile } = await import('node:fs/promises');
    const migration = await readFile(new URL('../../sql/008_universe.sql', import.meta.url), 'utf8');
    expect(migration).not.toMatch(/\b(BEGIN|COMMIT)\b\s*;/i);
    await db.sql.begin(async (tx) => {
      await tx`delete from market.sector_mapping where symbol = 'AAPL'`;
      await tx`insert into market.sector_mapping (symbol, sector_name, industry, sector_etf, asset_class) values ('AAPL', 'Custom', 'Mine', null, 'stock')`;
      await tx.unsafe(migration);
      const [aapl] = await tx<MappingRow[]>`select symbol, sector_name, industry, sector_etf, asset_class from market.sector_mapping where symbol = 'AAPL'`;
      expect(aapl).toMatchObject({ sector_name: 'Custom', industry: 'Mine', sector_etf: null });
      const [{ n }] = (await tx`select count(*)::int as n from market.sector_mapping`) as unknown as [{ n: number }];
      expect(n).toBe(rows.length);
      throw new RollbackSignal();
    }).catch((error: unknown) => {
      if (!(error instanceof RollbackSignal)) throw error;
    });
  });
});
