/**
 * `bullpen rs` and `bullpen universe` as a user runs them: the note before anything is scored,
 * the table of a small scored universe (filters, JSON, pages with --offset, a date never scored,
 * a sector renamed since, a sector ETF without its bar warned of), and adding, changing, listing and removing symbols (a coin: not scored, its backfill
 * command fetching it as crypto), bad input refused with exit code 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addTradingDays } from '../../src/analytics/calendar.ts';
import { dayNumberOfIsoDate, utcMsOfLocal } from '../../src/analytics/timeframes.ts';
import type { Sql } from '../../src/db.ts';
import { publishCurrentScores, scoreRelativeStrength } from '../../src/queries/rs.ts';
import { spawnNode } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const AS_OF = '2026-11-20';
let rt: TestRuntime;

beforeAll(async () => {
  rt = await createTestRuntime('clirs', []);
});

afterAll(async () => {
  await rt?.close();
});

async function bullpen(args: string[]) {
  const child = spawnNode('bin/bullpen.js', args, rt.env);
  const { code } = await child.exited;
  return { code, output: child.output() };
}

/** 1d bars ending at AS_OF, closes 100 except the newest: the same return over every lookback. */
async function insertBars(sql: Sql, symbol: string, last: number): Promise<void> {
  const ts: string[] = [];
  const closes: number[] = [];
  for (let back = 0; back < 260; back++) {
    const date = back === 0 ? AS_OF : addTradingDays(AS_OF, -back);
    ts.push(new Date(utcMsOfLocal(dayNumberOfIsoDate(date) * 86_400_000, 'nyse')).toISOString());
    closes.push(back === 0 ? last : 100);
  }
  await sql`
    insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source)
    select ${symbol}, '1d', t, c, c, c, c, 1000, 'test' from unnest(${ts}::timestamptz[], ${closes}::float8[]) as u(t, c)`;
}

describe('bullpen universe', () => {
  it('adds a symbol, changes it, lists a sector and removes it; refuses bad input with exit 1', async () => {
    const added = await bullpen(['universe', 'add', 'pltr', '--sector', 'Information Technology', '--industry', 'Software', '--etf', 'xlk']);
    expect(added.output).toContain('added PLTR to the universe: Information Technology / Software, sector ETF XLK, stock');
    expect(added.code).toBe(0);
    const [row] = await rt.db.sql`select sector_name, industry, sector_etf, asset_class from market.sector_mapping where symbol = 'PLTR'`;
    expect(row).toEqual({ sector_name: 'Information Technology', industry: 'Software', sector_etf: 'XLK', asset_class: 'stock' });

    // A change keeps what it does not name; an ETF not in the universe means SPY only.
    const changed = await bullpen(['universe', 'add', 'PLTR', '--etf', 'XSW']);
    expect(changed.code).toBe(0);
    expect(changed.output).toContain('updated PLTR: Information Technology / Software, sector ETF XLK, stock → Information Technology / Software, sector ETF XSW, stock');
    expect(changed.output).toContain('note: XSW is not in the universe, so PLTR is scored against SPY only until it is added');

    const list = await bullpen(['universe', 'list', '--sector', 'Information Technology']);
    expect(list.code).toBe(0);
    expect(list.output).toMatch(/^SYMBOL\s+SECTOR\s+INDUSTRY\s+ETF\s+CLASS\s+RATING\s+LEADER$/m);
    expect(list.output).toMatch(/^PLTR\s+Information Technology\s+Software\s+XSW\s+stock\s+—$/m);
    expect(list.output).toMatch(/^XLK\s+Information Technology\s+Sector ETF\s+—\s+etf\s+—$/m);
    expect(list.output).not.toMatch(/^JPM\s/m);
    expect(list.output).toMatch(/^\d+ symbols \(\d+ stock, 1 etf\)$/m);

    const removed = await bullpen(['universe', 'remove', 'PLTR']);
    expect(removed.code).toBe(0);
    expect(removed.output).toContain('removed PLTR from the universe; its 0 rows of RS history in market.rs_scores are kept');
    expect(await rt.db.sql`select 1 from market.sector_mapping where symbol = 'PLTR'`).toHaveLength(0);

    const [bad, noSector, unknown] = await Promise.all([
      bullpen(['universe', 'add', 'BAD$SYM', '--sector', 'Energy']),
      bullpen(['universe', 'add', 'NOSEC']),
      bullpen(['universe', 'remove', 'PLTR']),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.output).toContain('bullpen: symbol: must be 1–20 letters, digits, "." or "-", starting with a letter or digit (got "BAD$SYM")');
    expect(noSector.code).toBe(1);
    expect(noSector.output).toContain('bullpen: --sector: required for NOSEC, which is not in the universe yet');
    expect(unknown.code).toBe(1);
    expect(unknown.output).toContain('bullpen: PLTR is not in the universe (market.sector_mapping)');
    expect(await rt.db.sql`select 1 from market.sector_mapping where symbol in ('BAD$SYM', 'NOSEC')`).toHaveLength(0);
  });
});

describe('bullpen universe add of a non-stock', () => {
  it('says a coin is not scored, and prints a backfill command with its asset class', async () => {
    const coin = await bullpen(['universe', 'add', 'BTC-USD', '--sector', 'Crypto', '--asset-class', 'crypto']);
    expect(coin.code).toBe(0);
    expect(coin.output).toContain('added BTC-USD to the universe: Crypto, no sector ETF, crypto');
    expect(coin.output).toContain('note: BTC-USD is crypto: it is kept for enrichment but not scored by refresh-rs (RS compares closes of NYSE sessions)');
    expect(coin.output).not.toContain('its scores with the next refresh-rs run');
    // Without --asset-class, `bullpen backfill` plans the symbol as a stock (NYSE sessions, New York midnight stamps).
    expect(coin.output).toMatch(/its 1d bars come with enrichment-daily; to fetch its history now: bullpen backfill --symbols BTC-USD --from \d{4}-\d{2}-\d{2} --timeframes 1d --asset-class crypto --wait/);

    const etf = await bullpen(['universe', 'add', 'XBI', '--sector', 'Health Care', '--asset-class', 'etf']);
    expect(etf.code).toBe(0);
    expect(etf.output).toMatch(/its scores with the next refresh-rs run; to fetch its history now: bullpen backfill --symbols XBI --from \S+ --timeframes 1d --asset-class etf --wait/);
    await rt.db.sql`delete from market.sector_mapping where symbol in ('BTC-USD', 'XBI')`;
  });
});

describe('bullpen rs', () => {
  it('says how to score when nothing has been scored yet', async () => {
    const { code, output } = await bullpen(['rs']);
    expect(code).toBe(0);
    expect(output).toContain('nothing scored yet: run `bullpen run refresh-rs --wait` to score the universe');
  });

  it('prints the table of a scored universe: rank, symbol, sector, rating, score, returns as %, leaders', async () => {
    const sql = rt.db.sql;
    await sql`delete from market.sector_mapping`;
    // SPY +10%: rs_score = (return − 10%) × 100.
    const universe: [string, string, string | null, string, number][] = [
      ['SPY', 'Benchmark', null, 'etf', 110],
      ['XLK', 'Information Technology', null, 'etf', 100],
      ['XLE', 'Energy', null, 'etf', 105],
      ['AAA', 'Information Technology', 'XLK', 'stock', 130],
      ['BBB', 'Information Technology', 'XLK', 'stock', 120],
      ['CCC', 'Information Technology', 'XLK', 'stock', 100],
      ['FFF', 'Energy', 'XLE', 'stock', 140],
      ['GGG', 'Energy', 'XLE', 'stock', 95],
    ];
    for (const [symbol, sector, etf, assetClass, last] of universe) {
      await sql`insert into market.sector_mapping (symbol, sector_name, sector_etf, asset_class) values (${symbol}, ${sector}, ${etf}, ${assetClass})`;
      await insertBars(sql, symbol, last);
    }
    await sql.begin(async (tx) => {
      await scoreRelativeStrength(tx as unknown as Sql, AS_OF, 'America/New_York');
      await publishCurrentScores(tx as unknown as Sql, AS_OF, 'America/New_York');
    });

    const [top, energy, json, notScored, badSector, badDate, page, jsonPage, badOffset] = await Promise.all([
      bullpen(['rs', '--top', '3']),
      bullpen(['rs', '--sector', 'Energy', '--leaders']),
      bullpen(['rs', '--json', '--top', '2']),
      bullpen(['rs', '--date', '2026-11-13']),
      bullpen(['rs', '--sector', 'Tech']),
      bullpen(['rs', '--date', '2026-13-01']),
      bullpen(['rs', '--top', '2', '--offset', '2']),
      bullpen(['rs', '--json', '--top', '3', '--offset', '6']),
      bullpen(['rs', '--offset', '-1']),
    ]);

    expect(top.code).toBe(0);
    expect(top.output).toContain(`RS as of ${AS_OF}: 8 of 8 symbols scored, 5 stocks rated; top 3\n`);
    expect(top.output).toMatch(/^RANK\s+SYMBOL\s+SECTOR\s+RATING\s+SCORE\s+3M\s+12M\s+LEADER$/m);
    // Ratings among the five stocks: GGG 1, CCC 26, BBB 50, AAA 75, FFF 99.
    expect(top.output).toMatch(/^\s+1\s+FFF\s+Energy\s+99\s+\+30\.00\s+\+40\.0%\s+\+40\.0%\s+\*$/m);
    expect(top.output).toMatch(/^\s+2\s+AAA\s+Information Technology\s+75\s+\+20\.00\s+\+30\.0%\s+\+30\.0%\s+\*$/m);
    expect(top.output).toMatch(/^\s+3\s+BBB\s+Information Technology\s+50\s+\+10\.00\s+\+20\.0%\s+\+20\.0%$/m);
    expect(top.output).not.toMatch(/^\s+4\s/m);
    expect(top.output).toContain('* sector leader: top 20% of RS score in its sector');
    expect(top.output).toContain('5 more rows: --offset 3');

    // The next page: ranks go on from the offset.
    expect(page.code, page.output).toBe(0);
    expect(page.output).toContain(`RS as of ${AS_OF}: 8 of 8 symbols scored, 5 stocks rated; from rank 3, 2 rows\n`);
    expect(page.output).toMatch(/^\s+3\s+BBB\s+Information Technology\s+50\s/m);
    expect(page.output).toMatch(/^\s+4\s+CCC\s/m);
    expect(page.output).not.toMatch(/^\s+[125]\s/m);
    expect(page.output).toContain('4 more rows: --offset 4');
    expect(jsonPage.code, jsonPage.output).toBe(0);
    const lastPage = JSON.parse(jsonPage.output) as { total: number; offset: number; limit: number; next_offset: number | null; symbols: { symbol: string }[] };
    expect(lastPage).toMatchObject({ total: 8, offset: 6, limit: 3, next_offset: null });
    expect(lastPage.symbols.map((r) => r.symbol)).toEqual(['XLE', 'XLK']);
    expect(badOffset.code).toBe(1);
    expect(badOffset.output).toMatch(/--offset.*must be a whole number from 0 to 1000000/);

    expect(energy.code).toBe(0);
    expect(energy.output).toContain(`RS as of ${AS_OF}: 8 of 8 symbols scored, 5 stocks rated; top 20 (sector Energy, sector leaders only)`);
    expect(energy.output).toMatch(/^\s+1\s+FFF\s+Energy\s+99\s/m);
    expect(energy.output).not.toMatch(/GGG|AAA/);

    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.output) as { as_of_date: string; symbols: { symbol: string; rs_rating: number }[] };
    expect(parsed).toMatchObject({ as_of_date: AS_OF, sector: null, leaders_only: false, total: 8, offset: 0, limit: 2, next_offset: 2 });
    expect(parsed.symbols.map((s) => [s.symbol, s.rs_rating])).toEqual([['FFF', 99], ['AAA', 75]]);

    expect(notScored.code).toBe(1);
    expect(notScored.output).toContain(`bullpen: no relative-strength scores for 2026-11-13 (newest scored date: ${AS_OF})`);
    expect(badSector.code).toBe(1);
    expect(badSector.output).toContain(`bullpen: --sector: unknown sector "Tech" for ${AS_OF}; sectors scored that date: Benchmark, Energy, Information Technology`);
    expect(badDate.code).toBe(1);
    expect(badDate.output).toContain('bullpen: --date: must be a date YYYY-MM-DD (got "2026-13-01")');
  });

  it('filters a date by the sector its rows were scored in, even after the universe renamed that sector', async () => {
    await rt.db.sql`update market.sector_mapping set sector_name = 'Energy & Utilities' where sector_name = 'Energy'`;
    const [old, renamed] = await Promise.all([
      bullpen(['rs', '--date', AS_OF, '--sector', 'Energy']),
      bullpen(['rs', '--date', AS_OF, '--sector', 'Energy & Utilities']),
    ]);
    expect(old.code, old.output).toBe(0);
    expect(old.output).toMatch(/^\s+1\s+FFF\s+Energy\s+99\s/m);
    expect(old.output).not.toMatch(/AAA/);
    expect(renamed.code).toBe(1);
    expect(renamed.output).toContain(`bullpen: --sector: unknown sector "Energy & Utilities" for ${AS_OF}; sectors scored that date: Benchmark, Energy, Information Technology`);
  });

  it('warns below the table of a sector ETF its members were scored without, and says so in JSON', async () => {
    const sql = rt.db.sql;
    // The session before: XLE's bar of that day never came.
    const before = addTradingDays(AS_OF, -1);
    const lastXle = addTradingDays(AS_OF, -2);
    await sql`delete from market.bars where symbol = 'XLE' and ts = ${new Date(utcMsOfLocal(dayNumberOfIsoDate(before) * 86_400_000, 'nyse')).toISOString()}::timestamptz`;
    await sql.begin(async (tx) => {
      await scoreRelativeStrength(tx as unknown as Sql, before, 'America/New_York');
    });
    const [text, json] = await Promise.all([bullpen(['rs', '--date', before]), bullpen(['rs', '--date', before, '--json'])]);
    expect(text.code, text.output).toBe(0);
    const reason = `no 1d bar on ${before} (last ${lastXle})`;
    expect(text.output).toMatch(new RegExp(`^\\s+\\d+\\s+FFF\\s+Energy & Utilities\\s.*sector ETF XLE unavailable \\(${reason.replace(/[()]/g, '\\$&')}\\): rs_sector_score not computed$`, 'm'));
    expect(text.output).toContain(`\nwarning: sector ETF XLE unavailable (${reason}): 2 members scored without rs_sector_score\n`);
    expect(json.code, json.output).toBe(0);
    expect((JSON.parse(json.output) as { warnings: unknown[] }).warnings).toEqual([{ kind: 'sector_etf_unavailable', symbol: 'XLE', members: 2, note: reason }]);
  });
});
