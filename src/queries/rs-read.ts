/**
 * Reads of relative strength (GET /api/v1/rs, `bullpen rs`, `bullpen universe list`): a scored
 * date's table, one symbol's history, the dates and sectors there are. The scores themselves
 * are written by src/queries/rs.ts (refresh-rs); nothing here writes.
 */
import type { Sql } from '../db.ts';
import { NEVER_FOUND_NOTE_PREFIX, STALE_NOTE_PREFIX } from './rs.ts';

/** One row of a scored date, as the API answers it (returns are fractions, RS in points). */
export interface RsTableRow {
  symbol: string;
  sector_name: string | null;
  /** From market.sector_mapping today; NULL for a symbol no longer in the universe. */
  industry: string | null;
  /** The ETF the symbol was scored against that day; NULL when unknown (scored against SPY only). */
  sector_etf: string | null;
  rs_rating: number | null;
  rs_score: number | null;
  rs_sector_score: number | null;
  return_63d: number | null;
  return_252d: number | null;
  is_sector_leader: boolean | null;
  /** Why a score is NULL. */
  note: string | null;
}

export interface RsTableQuery {
  date: string;
  /** Exact sector_name as scored that day. */
  sector?: string;
  leadersOnly: boolean;
  limit: number;
  /** Rows of the order skipped first (a page after the first). */
  offset: number;
}

/** One as-of date of a symbol's history. */
export interface RsHistoryRow {
  as_of_date: string;
  sector_name: string | null;
  sector_etf: string | null;
  close: number | null;
  sessions: number;
  return_21d: number | null;
  return_63d: number | null;
  return_126d: number | null;
  return_189d: number | null;
  return_252d: number | null;
  rs_63d_vs_spy: number | null;
  rs_score: number | null;
  rs_sector_score: number | null;
  rs_rating: number | null;
  is_sector_leader: boolean | null;
  note: string | null;
}

/** A member of the universe with its current scores (what refresh-rs published last). */
export interface UniverseMember {
  symbol: string;
  sector_name: string;
  industry: string | null;
  sector_etf: string | null;
  asset_class: string;
  /** numeric in sector_mapping (4 decimals as published): a string, as every numeric is here. */
  rs_score: string | null;
  rs_rating: number | null;
  is_sector_leader: boolean | null;
  last_updated: Date | null;
}

/** The newest as-of date in market.rs_scores, or null when nothing was ever scored. */
export async function loadLatestRsDate(sql: Sql): Promise<string | null> {
  const [row] = await sql<{ d: string | null }[]>`select max(as_of_date)::text as d from market.rs_scores`;
  return row?.d ?? null;
}

/** Whether refresh-rs wrote rows for `date`. */
export async function hasRsDate(sql: Sql, date: string): Promise<boolean> {
  const [row] = await sql<{ found: boolean }[]>`select exists (select 1 from market.rs_scores where as_of_date = ${date}::date) as found`;
  return row?.found ?? false;
}

/** The sector names of market.sector_mapping, in order. */
export async function loadSectors(sql: Sql): Promise<string[]> {
  const rows = await sql<{ sector_name: string }[]>`select distinct sector_name from market.sector_mapping order by 1`;
  return rows.map((r) => r.sector_name);
}

/** The sector names of a scored date's rows (as scored that day, whatever the universe says now), in order. */
export async function loadRsSectors(sql: Sql, date: string): Promise<string[]> {
  const rows = await sql<{ sector_name: string }[]>`
    select distinct sector_name from market.rs_scores where as_of_date = ${date}::date and sector_name is not null order by 1`;
  return rows.map((r) => r.sector_name);
}

/** The newest scored as-of date on or before `date`, or null. */
export async function loadLatestRsDateOnOrBefore(sql: Sql, date: string): Promise<string | null> {
  const [row] = await sql<{ d: string | null }[]>`select max(as_of_date)::text as d from market.rs_scores where as_of_date <= ${date}::date`;
  return row?.d ?? null;
}

/** How many symbols a date has, and how many of them are scored and rated (for headers). */
export async function loadRsDateCounts(sql: Sql, date: string): Promise<{ symbols: number; scored: number; rated: number }> {
  const [row] = await sql<{ symbols: number; scored: number; rated: number }[]>`
    select count(*)::int as symbols, count(rs_score)::int as scored, count(rs_rating)::int as rated
    from market.rs_scores where as_of_date = ${date}::date`;
  return row ?? { symbols: 0, scored: 0, rated: 0 };
}

/**
 * A scored date's rows, best first: rating descending (unrated last), then score descending
 * (unscored last), then symbol. The symbol is unique within a date, so the order is total: pages
 * read with offsets neither skip nor repeat a row (of a date not scored again meanwhile).
 */
export async function loadRsTable(sql: Sql, q: RsTableQuery): Promise<RsTableRow[]> {
  const sector = q.sector ?? null;
  return sql<RsTableRow[]>`
    select s.symbol, s.sector_name, m.industry, s.sector_etf, s.rs_rating, s.rs_score, s.rs_sector_score,
           s.return_63d, s.return_252d, s.is_sector_leader, s.note
    from market.rs_scores s
    left join market.sector_mapping m on m.symbol = s.symbol
    where s.as_of_date = ${q.date}::date
      and (${sector}::text is null or s.sector_name = ${sector}::text)
      and (not ${q.leadersOnly}::boolean or s.is_sector_leader)
    order by s.rs_rating desc nulls last, s.rs_score desc nulls last, s.symbol
    limit ${q.limit} offset ${q.offset}`;
}

/** How many rows loadRsTable's filters match in all (its limit and offset aside). */
export async function countRsTable(sql: Sql, q: Omit<RsTableQuery, 'limit' | 'offset'>): Promise<number> {
  const sector = q.sector ?? null;
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from market.rs_scores s
    where s.as_of_date = ${q.date}::date
      and (${sector}::text is null or s.sector_name = ${sector}::text)
      and (not ${q.leadersOnly}::boolean or s.is_sector_leader)`;
  return row?.n ?? 0;
}

/** The universe row of a symbol, or undefined. */
export async function loadUniverseMember(sql: Sql, symbol: string): Promise<UniverseMember | undefined> {
  const [row] = await sql<UniverseMember[]>`
    select symbol, sector_name, industry, sector_etf, asset_class, rs_score::text, rs_rating, is_sector_leader, last_updated
    from market.sector_mapping where symbol = ${symbol}`;
  return row;
}

/** The universe, optionally one sector, by sector then symbol. */
export async function loadUniverse(sql: Sql, sector?: string): Promise<UniverseMember[]> {
  const only = sector ?? null;
  return sql<UniverseMember[]>`
    select symbol, sector_name, industry, sector_etf, asset_class, rs_score::text, rs_rating, is_sector_leader, last_updated
    from market.sector_mapping
    where ${only}::text is null or sector_name = ${only}::text
    order by sector_name, symbol`;
}

/** A symbol's newest `limit` as-of dates, newest first. */
export async function loadRsHistory(sql: Sql, symbol: string, limit: number): Promise<RsHistoryRow[]> {
  return sql<RsHistoryRow[]>`
    select as_of_date::text, sector_name, sector_etf, close, sessions, return_21d, return_63d, return_126d, return_189d, return_252d,
           rs_63d_vs_spy, rs_score, rs_sector_score, rs_rating, is_sector_leader, note
    from market.rs_scores where symbol = ${symbol}
    order by as_of_date desc
    limit ${limit}`;
}

/** A sector ETF whose members were scored without rs_sector_score on a date, and why. */
export interface UnavailableSectorEtf {
  etf: string;
  /** Members scored that day without their sector score. */
  members: number;
  /** The ETF's own note that day (no bar, stale, a short history…); null when it has no row. */
  reason: string | null;
}

/**
 * The sector ETFs of a date whose members have an rs_score but no rs_sector_score: the ETF had
 * no score that day. Optionally only members of one sector (as scored that day).
 */
export async function loadUnavailableSectorEtfs(sql: Sql, date: string, sector?: string): Promise<UnavailableSectorEtf[]> {
  const only = sector ?? null;
  return sql<UnavailableSectorEtf[]>`
    select s.sector_etf as etf, count(*)::int as members, min(e.note) as reason
    from market.rs_scores s
    left join market.rs_scores e on e.symbol = s.sector_etf and e.as_of_date = s.as_of_date
    where s.as_of_date = ${date}::date and s.sector_etf is not null and s.rs_score is not null and s.rs_sector_score is null
      and (${only}::text is null or s.sector_name = ${only}::text)
    group by s.sector_etf
    order by s.sector_etf`;
}

/** What a scored date warns of: a sector ETF its members were scored without, a member to fix or remove. */
export interface RsWarning {
  kind: 'sector_etf_unavailable' | 'stale' | 'never_found';
  symbol: string;
  /** sector_etf_unavailable: the members scored without rs_sector_score; else null. */
  members: number | null;
  /** The ETF's reason, or the member's note. */
  note: string | null;
}

/**
 * A date's warnings, from its rows: sector ETFs without a score (their members lack
 * rs_sector_score), then members stale or never found (no bars: delisted, a typo), which
 * someone should fix or remove. An unavailable ETF is named once, under the first kind.
 */
export async function loadRsWarnings(sql: Sql, date: string, sector?: string): Promise<RsWarning[]> {
  const etfs = await loadUnavailableSectorEtfs(sql, date, sector);
  const only = sector ?? null;
  const members = await sql<{ symbol: string; note: string }[]>`
    select symbol, note from market.rs_scores
    where as_of_date = ${date}::date and (note like ${`${STALE_NOTE_PREFIX}%`} or note like ${`${NEVER_FOUND_NOTE_PREFIX}%`})
      and (${only}::text is null or sector_name = ${only}::text)
    order by symbol`;
  const named = new Set(etfs.map((e) => e.etf));
  return [
    ...etfs.map((e): RsWarning => ({ kind: 'sector_etf_unavailable', symbol: e.etf, members: e.members, note: e.reason })),
    ...members
      .filter((m) => !named.has(m.symbol))
      .map((m): RsWarning => ({ kind: m.note.startsWith(STALE_NOTE_PREFIX) ? 'stale' : 'never_found', symbol: m.symbol, members: null, note: m.note })),
  ];
}
