/**
 * GET /api/v1/rs and /api/v1/rs/:symbol as a client sees them, over a small universe scored for
 * two dates by the real statement: the newest date by default, a chosen date, sector and
 * leaders filters (a date's sectors as scored, whatever the universe says since), the limit,
 * pages (offset, total, the next page pinned to the date), 404s (a date not scored, a date that is no NYSE session, nothing scored, an unknown symbol),
 * 400s naming the field, a symbol's history; a date's warnings (a sector ETF its members were scored
 * without, members stale or never found).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { addTradingDays } from '../../src/analytics/calendar.ts';
import { dayNumberOfIsoDate, utcMsOfLocal } from '../../src/analytics/timeframes.ts';
import type { Sql } from '../../src/db.ts';
import { createHttpApp, startHttpServer, type HttpServer } from '../../src/http/app.ts';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { createLogger } from '../../src/logger.ts';
import { publishCurrentScores, scoreRelativeStrength } from '../../src/queries/rs.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const CREDENTIALS = { user: 'ops', password: 'rs-reader' };
const AUTH = { authorization: formatBasicAuthorization(CREDENTIALS) };
const TZ = 'America/New_York';
const AS_OF = '2026-11-20';
const PREVIOUS = addTradingDays(AS_OF, -1);

let rt: TestRuntime;
let server: HttpServer;

/** 1d bars ending at AS_OF, closes 100 except the newest (`last`): the same return over every lookback. */
async function insertBars(sql: Sql, symbol: string, last: number, sessions = 260): Promise<void> {
  const ts: string[] = [];
  const closes: number[] = [];
  for (let back = 0; back < sessions; back++) {
    const date = back === 0 ? AS_OF : addTradingDays(AS_OF, -back);
    ts.push(new Date(utcMsOfLocal(dayNumberOfIsoDate(date) * 86_400_000, 'nyse')).toISOString());
    closes.push(back === 0 ? last : 100);
  }
  await sql`
    insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source)
    select ${symbol}, '1d', t, c, c, c, c, 1000, 'test' from unnest(${ts}::timestamptz[], ${closes}::float8[]) as u(t, c)`;
}

/**
 * SPY +10%; stocks' returns give rs_score = (return − 10%) × 100: FFF 30, AAA 20, EEE 15, BBB 10,
 * CCC −10, GGG −15, DDD −20. NEW has 100 sessions: unscored.
 */
const UNIVERSE: [symbol: string, sector: string, etf: string | null, assetClass: string, last: number, sessions?: number][] = [
  ['SPY', 'Benchmark', null, 'etf', 110],
  ['XLK', 'Information Technology', null, 'etf', 100],
  ['XLE', 'Energy', null, 'etf', 105],
  ['AAA', 'Information Technology', 'XLK', 'stock', 130],
  ['BBB', 'Information Technology', 'XLK', 'stock', 120],
  ['CCC', 'Information Technology', 'XLK', 'stock', 100],
  ['DDD', 'Information Technology', 'XLK', 'stock', 90],
  ['EEE', 'Information Technology', 'XLK', 'stock', 125],
  ['FFF', 'Energy', 'XLE', 'stock', 140],
  ['GGG', 'Energy', 'XLE', 'stock', 95],
  ['NEW', 'Energy', 'XLE', 'stock', 150, 100],
];

async function score(sql: Sql, date: string): Promise<void> {
  await sql.begin(async (tx) => {
    await scoreRelativeStrength(tx as unknown as Sql, date, TZ);
    await publishCurrentScores(tx as unknown as Sql, date, TZ);
  });
}

beforeAll(async () => {
  rt = await createTestRuntime('rsapi', []);
  const sql = rt.db.sql;
  await sql`delete from market.sector_mapping`;
  for (const [symbol, sector, etf, assetClass, last, sessions] of UNIVERSE) {
    await sql`insert into market.sector_mapping (symbol, sector_name, industry, sector_etf, asset_class) values (${symbol}, ${sector}, ${`${sector} industry`}, ${etf}, ${assetClass})`;
    await insertBars(sql, symbol, last, sessions);
  }
  await score(sql, PREVIOUS);
  await score(sql, AS_OF);
  server = await startHttpServer(
    createHttpApp({
      config: rt.config,
      logger: createLogger({ level: 'silent', pretty: false }),
      metrics: rt.metrics,
      queues: rt.queues,
      db: sql,
      redis: rt.redis,
      credentials: CREDENTIALS,
      mode: 'full',
      definitions: JOBS,
      listSchedules: async () => [],
      beforeScrape: async () => {},
    }),
    '127.0.0.1',
    0,
  );
});

afterAll(async () => {
  await server?.close();
  await rt?.close();
});

async function get(path: string, auth = true): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${server.url}${path}`, { headers: auth ? AUTH : {} });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

type Row = Record<string, unknown>;
const symbolsOf = (body: Record<string, unknown>) => (body.symbols as Row[]).map((r) => r.symbol);

describe('GET /api/v1/rs', () => {
  it('answers the newest scored date by default, best rating first, unrated and unscored last', async () => {
    const { status, body } = await get('/api/v1/rs');
    expect(status).toBe(200);
    expect(body).toMatchObject({ as_of_date: AS_OF, sector: null, leaders_only: false });
    expect(symbolsOf(body)).toEqual(['FFF', 'AAA', 'EEE', 'BBB', 'CCC', 'GGG', 'DDD', 'SPY', 'XLE', 'XLK', 'NEW']);
    const rows = body.symbols as Row[];
    expect(Object.keys(rows[0] ?? {})).toEqual([
      'symbol', 'sector_name', 'industry', 'sector_etf', 'rs_rating', 'rs_score', 'rs_sector_score', 'return_63d', 'return_252d', 'is_sector_leader', 'note',
    ]);
    const aaa = rows.find((r) => r.symbol === 'AAA') as Row;
    expect(aaa).toMatchObject({ sector_name: 'Information Technology', industry: 'Information Technology industry', sector_etf: 'XLK', rs_rating: 83, is_sector_leader: true, note: null });
    expect(aaa.rs_score as number).toBeCloseTo(20, 9);
    expect(aaa.rs_sector_score as number).toBeCloseTo(30, 9); // XLK flat
    expect(aaa.return_63d as number).toBeCloseTo(0.3, 12);
    expect(aaa.return_252d as number).toBeCloseTo(0.3, 12);
    expect(rows.map((r) => r.rs_rating)).toEqual([99, 83, 66, 50, 34, 17, 1, null, null, null, null]);
    expect(rows.find((r) => r.symbol === 'NEW')).toMatchObject({ rs_score: null, rs_rating: null, note: `history: 100 sessions up to ${AS_OF}, 253 needed for the 12-month return` });
  });

  it('answers a chosen date, and a limit', async () => {
    const previous = await get(`/api/v1/rs?date=${PREVIOUS}`);
    expect(previous.status).toBe(200);
    expect(previous.body.as_of_date).toBe(PREVIOUS);
    // The day before, every close was 100: every stock ties at rating 1 and, tied at the top, leads.
    const stocks = (previous.body.symbols as Row[]).filter((r) => r.rs_rating !== null);
    expect(stocks).toHaveLength(7);
    expect(stocks.every((r) => r.rs_rating === 1 && r.is_sector_leader === true)).toBe(true);
    const limited = await get('/api/v1/rs?limit=2');
    expect(symbolsOf(limited.body)).toEqual(['FFF', 'AAA']);
    // Empty parameters are absent, as on every route: the latest date, every sector, the default limit.
    const blank = await get('/api/v1/rs?date=&sector=&leaders=&limit=');
    expect(blank.status).toBe(200);
    expect(blank.body.as_of_date).not.toBe(PREVIOUS);
  });

  it('pages a date with limit and offset in one stable order, ties included, saying how many rows match and where the next page starts', async () => {
    const whole = await get('/api/v1/rs?limit=5000');
    expect(whole.body).toMatchObject({ as_of_date: AS_OF, total: 11, offset: 0, limit: 5000, next_offset: null, next: null });
    const first = await get('/api/v1/rs?limit=3');
    // The next page is pinned to the date answered: a date scored meanwhile does not shift it.
    expect(first.body).toMatchObject({ as_of_date: AS_OF, total: 11, offset: 0, limit: 3, next_offset: 3, next: `/api/v1/rs?date=${AS_OF}&limit=3&offset=3` });
    // Following `next` reads every row once, in the order of the whole table.
    for (const [date, limit] of [[AS_OF, 3], [PREVIOUS, 2]] as const) {
      const all = symbolsOf((await get(`/api/v1/rs?date=${date}&limit=5000`)).body);
      const seen: unknown[] = [];
      let next: unknown = `/api/v1/rs?date=${date}&limit=${limit}`;
      for (let page = 0; typeof next === 'string'; page++) {
        expect(page).toBeLessThan(all.length);
        const { status, body } = await get(next);
        expect(status).toBe(200);
        expect(body.total).toBe(all.length);
        seen.push(...symbolsOf(body));
        next = body.next;
      }
      expect(seen).toEqual(all);
    }
    // The filters go with the next page.
    const energy = await get('/api/v1/rs?sector=Energy&leaders=false&limit=2');
    expect(energy.body).toMatchObject({ total: 4, next_offset: 2, next: `/api/v1/rs?date=${AS_OF}&sector=Energy&limit=2&offset=2` });
    const itLeaders = await get(`/api/v1/rs?sector=${encodeURIComponent('Information Technology')}&leaders=true&limit=1`);
    expect(itLeaders.body).toMatchObject({ total: 1, next_offset: null, next: null });
    expect(symbolsOf((await get(`/api/v1/rs?sector=${encodeURIComponent('Information Technology')}&offset=1&limit=2`)).body)).toEqual(['EEE', 'BBB']);
    // Past the end: no rows, no next page, the total still said.
    const past = await get('/api/v1/rs?offset=11');
    expect(past.status).toBe(200);
    expect(past.body).toMatchObject({ total: 11, offset: 11, limit: 100, next_offset: null, next: null, symbols: [] });
  });

  it('filters by exact sector name and by sector leaders', async () => {
    const energy = await get('/api/v1/rs?sector=Energy');
    expect(energy.status).toBe(200);
    expect(energy.body).toMatchObject({ as_of_date: AS_OF, sector: 'Energy', leaders_only: false });
    expect(symbolsOf(energy.body)).toEqual(['FFF', 'GGG', 'XLE', 'NEW']);
    const leaders = await get('/api/v1/rs?leaders=true');
    expect(leaders.body.leaders_only).toBe(true);
    expect(symbolsOf(leaders.body)).toEqual(['FFF', 'AAA']);
    const itLeaders = await get(`/api/v1/rs?sector=${encodeURIComponent('Information Technology')}&leaders=true`);
    expect(symbolsOf(itLeaders.body)).toEqual(['AAA']);
    expect(symbolsOf((await get('/api/v1/rs?leaders=false')).body)).toHaveLength(11);
  });

  it.each([
    ['a malformed date', 'date=20-11-2026', /^date: must be a date YYYY-MM-DD \(got "20-11-2026"\)$/],
    ['an impossible date', 'date=2026-02-30', /^date: must be a date YYYY-MM-DD/],
    ['a date given twice', `date=${AS_OF}&date=${PREVIOUS}`, /^date: give it once/],
    ['an unknown sector', 'sector=Tech', /^sector: unknown sector "Tech" for 2026-11-20; sectors scored that date: Benchmark, Energy, Information Technology$/],
    ['leaders neither true nor false', 'leaders=yes', /^leaders: must be true or false/],
    ['a limit of 0', 'limit=0', /^limit: must be a whole number from 1 to 5000/],
    ['a limit above 5000', 'limit=5001', /^limit: must be a whole number from 1 to 5000/],
    ['a limit that is no number', 'limit=ten', /^limit: must be a whole number from 1 to 5000/],
    ['a negative offset', 'offset=-1', /^offset: must be a whole number from 0 to 1000000 \(got "-1"\)$/],
    ['an offset that is no whole number', 'offset=1.5', /^offset: must be a whole number from 0 to 1000000/],
    ['an offset above 1000000', 'offset=1000001', /^offset: must be a whole number from 0 to 1000000/],
    ['an offset given twice', 'offset=1&offset=2', /^offset: give it once/],
  ])('answers 400 naming the field for %s', async (_label, query, detail) => {
    const { status, body } = await get(`/api/v1/rs?${query}`);
    expect(status).toBe(400);
    expect(Object.keys(body)).toEqual(['detail']);
    expect(body.detail).toMatch(detail);
  });

  it('answers 404 for a date that was not scored', async () => {
    const { status, body } = await get('/api/v1/rs?date=2026-11-13');
    expect(status).toBe(404);
    expect(body).toEqual({ detail: `no relative-strength scores for 2026-11-13 (newest scored date: ${AS_OF}); score it with bullpen run refresh-rs --data '{"date":"2026-11-13"}' --wait` });
  });

  it('filters a date by the sector its rows were scored in, even after the universe renamed that sector', async () => {
    const sql = rt.db.sql;
    await sql`update market.sector_mapping set sector_name = 'Energy & Utilities' where sector_name = 'Energy'`;
    try {
      for (const query of [`date=${PREVIOUS}&sector=Energy`, 'sector=Energy']) {
        const { status, body } = await get(`/api/v1/rs?${query}`);
        expect(body.detail, query).toBeUndefined();
        expect(status).toBe(200);
        expect(symbolsOf(body), query).toEqual(['FFF', 'GGG', 'XLE', 'NEW']);
      }
      // Today's name was no sector of that date: the answer lists the date's.
      const renamed = await get(`/api/v1/rs?date=${PREVIOUS}&sector=${encodeURIComponent('Energy & Utilities')}`);
      expect(renamed).toEqual({
        status: 400,
        body: { detail: `sector: unknown sector "Energy & Utilities" for ${PREVIOUS}; sectors scored that date: Benchmark, Energy, Information Technology` },
      });
    } finally {
      await sql`update market.sector_mapping set sector_name = 'Energy' where sector_name = 'Energy & Utilities'`;
    }
  });

  it('answers 404 for a date that is no NYSE session naming the scored date before it, not telling to score it', async () => {
    const saturday = await get('/api/v1/rs?date=2026-11-21');
    expect(saturday).toEqual({
      status: 404,
      body: { detail: `no relative-strength scores for 2026-11-21: it is not an NYSE session (a Saturday); the newest scored date on or before it is ${AS_OF}` },
    });
    const thanksgiving = await get('/api/v1/rs?date=2026-11-26');
    expect(thanksgiving.body.detail).toBe(`no relative-strength scores for 2026-11-26: it is not an NYSE session (Thanksgiving Day); the newest scored date on or before it is ${AS_OF}`);
    const laborDay = await get('/api/v1/rs?date=2026-09-07');
    expect(laborDay).toEqual({
      status: 404,
      body: { detail: `no relative-strength scores for 2026-09-07: it is not an NYSE session (Labor Day); no date on or before it was scored (newest scored date: ${AS_OF})` },
    });
  });

  it('asks for credentials', async () => {
    expect((await get('/api/v1/rs', false)).status).toBe(401);
    expect((await get('/api/v1/rs/AAA', false)).status).toBe(401);
  });
});

describe('GET /api/v1/rs/:symbol', () => {
  it('answers the symbol’s history, newest first, as many dates as asked', async () => {
    const { status, body } = await get('/api/v1/rs/aaa');
    expect(status).toBe(200);
    expect(body).toMatchObject({ symbol: 'AAA', in_universe: true, sector_name: 'Information Technology', industry: 'Information Technology industry', sector_etf: 'XLK', asset_class: 'stock', days: 30 });
    const history = body.history as Row[];
    expect(history.map((h) => h.as_of_date)).toEqual([AS_OF, PREVIOUS]);
    expect(history[0]).toMatchObject({ rs_rating: 83, is_sector_leader: true, sessions: 253, close: 130, note: null });
    expect(history[0]?.rs_63d_vs_spy as number).toBeCloseTo(20, 9);
    expect(history[1]).toMatchObject({ rs_rating: 1, rs_score: 0, close: 100 });
    const one = await get('/api/v1/rs/AAA?days=1');
    expect((one.body.history as Row[]).map((h) => h.as_of_date)).toEqual([AS_OF]);
  });

  it('answers 404 for an unknown symbol and 400 for a malformed one or bad days', async () => {
    const unknown = await get('/api/v1/rs/ZZZ');
    expect(unknown).toEqual({ status: 404, body: { detail: 'symbol ZZZ is not in market.sector_mapping and has no relative-strength history' } });
    const malformed = await get('/api/v1/rs/A$B');
    expect(malformed.status).toBe(400);
    expect(malformed.body.detail).toMatch(/^symbol: must be 1–20 letters/);
    const days = await get('/api/v1/rs/AAA?days=0');
    expect(days.status).toBe(400);
    expect(days.body.detail).toMatch(/^days: must be a whole number from 1 to 1000/);
  });

  it('still serves the history of a symbol removed from the universe', async () => {
    await rt.db.sql`delete from market.sector_mapping where symbol = 'DDD'`;
    const { status, body } = await get('/api/v1/rs/DDD');
    expect(status).toBe(200);
    expect(body).toMatchObject({ symbol: 'DDD', in_universe: false, sector_name: 'Information Technology', industry: null });
    expect(body.history as Row[]).toHaveLength(2);
  });
});

describe('GET /api/v1/rs with nothing scored', () => {
  it('answers 404 telling how to score', async () => {
    await rt.db.sql`truncate market.rs_scores`;
    const { status, body } = await get('/api/v1/rs');
    expect(status).toBe(404);
    expect(body).toEqual({ detail: 'no relative-strength scores yet: run `bullpen run refresh-rs --wait` to score the universe' });
  });
});

describe('GET /api/v1/rs warnings', () => {
  it('names a sector ETF its members were scored without, and members stale or never found, filtered by sector', async () => {
    const sql = rt.db.sql;
    await sql`truncate market.rs_scores`;
    await sql`delete from market.sector_mapping`;
    for (const [symbol, sector, etf, assetClass] of [
      ['SPY', 'Benchmark', null, 'etf'],
      ['XLK', 'Information Technology', null, 'etf'],
      ['XLX', 'Materials', null, 'etf'],
      ['AAA', 'Information Technology', 'XLK', 'stock'],
      ['DEAD', 'Information Technology', 'XLK', 'stock'],
      ['TYPO', 'Information Technology', 'XLK', 'stock'],
      ['FFF', 'Materials', 'XLX', 'stock'],
      ['GGG', 'Materials', 'XLX', 'stock'],
    ] as const) {
      await sql`insert into market.sector_mapping (symbol, sector_name, sector_etf, asset_class) values (${symbol}, ${sector}, ${etf}, ${assetClass})`;
    }
    // XLX delisted 10 sessions ago, DEAD 6; TYPO never had a bar, though refresh-rs asked for it on three dates.
    await insertBars(sql, 'XLX', 100, 250);
    await sql`delete from market.bars where symbol = 'XLX' and ts > ${new Date(utcMsOfLocal(dayNumberOfIsoDate(addTradingDays(AS_OF, -10)) * 86_400_000, 'nyse')).toISOString()}::timestamptz`;
    await insertBars(sql, 'DEAD', 100, 250);
    await sql`delete from market.bars where symbol = 'DEAD' and ts > ${new Date(utcMsOfLocal(dayNumberOfIsoDate(addTradingDays(AS_OF, -6)) * 86_400_000, 'nyse')).toISOString()}::timestamptz`;
    for (const back of [1, 2, 3]) {
      const date = addTradingDays(AS_OF, -back);
      const [request] = await sql<{ backfill_id: string }[]>`
        insert into enrichment.backfills (backfill_id, symbols, timeframes, asset_class, from_date, to_date, source, reprocess, requested_by, status)
        values (gen_random_uuid(), '{TYPO}', '{1d}', 'stock', ${date}, ${date}, 'csv', 'all', ${`refresh-rs@${date}`}, 'failed')
        returning backfill_id::text`;
      await sql`
        insert into enrichment.backfill_state (backfill_job_id, symbol, asset_class, timeframe, status, chunks)
        values (${request?.backfill_id ?? ''}, 'TYPO', 'stock', '1d', 'failed', '[]')`;
    }
    await score(sql, AS_OF);

    const xlx = {
      kind: 'sector_etf_unavailable',
      symbol: 'XLX',
      members: 2,
      note: `stale: no 1d bar since ${addTradingDays(AS_OF, -10)} (5 sessions or more); not waited for or rated; delisted? bullpen universe remove XLX`,
    };
    const dead = {
      kind: 'stale',
      symbol: 'DEAD',
      members: null,
      note: `stale: no 1d bar since ${addTradingDays(AS_OF, -6)} (5 sessions or more); not waited for or rated; delisted? bullpen universe remove DEAD`,
    };
    const typo = {
      kind: 'never_found',
      symbol: 'TYPO',
      members: null,
      note:
        'no bar ever: no 1d bar came for any of the 3 dates refresh-rs asked enrichment for (a typo, or a ticker the data source does not know?); ' +
        'not asked for or waited on any more; fix the symbol or remove it: bullpen universe remove TYPO',
    };
    const all = await get('/api/v1/rs');
    expect(all.status).toBe(200);
    expect(all.body.warnings).toEqual([xlx, dead, typo]);
    const fff = (all.body.symbols as Row[]).find((r) => r.symbol === 'FFF');
    expect(fff).toMatchObject({ sector_etf: 'XLX', rs_sector_score: null, note: `sector ETF XLX unavailable (${xlx.note}): rs_sector_score not computed` });
    expect(fff?.rs_rating).not.toBeNull();
    expect((await get('/api/v1/rs?sector=Materials')).body.warnings).toEqual([xlx]);
    expect((await get(`/api/v1/rs?sector=${encodeURIComponent('Information Technology')}&leaders=true`)).body.warnings).toEqual([dead, typo]);
  });
});
