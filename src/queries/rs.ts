/**
 * Relative strength, set-based: one statement scores every symbol of market.sector_mapping as of
 * a trading date from its 1d bars (window functions, no query per symbol).
 *
 * Definitions (DESIGN.md "RS score", the pattern-performance seed's formula):
 *  - return over n sessions = close on the as-of date / close at the start − 1, for n = 21, 63,
 *    126, 189 and 252 (1, 3, 6, 9 and 12 months). The start is SPY's session n before the as-of
 *    date, the same date for every symbol: the symbol's close on that date, or on its last bar
 *    before it when it has none (a halt, a chunk enrichment did not store), so a gap never
 *    stretches one symbol's period past SPY's. NULL without a bar on the as-of date or before
 *    the start; all NULL when SPY has no bar on the as-of date or fewer than n before it;
 *  - crypto members are not scored (a row with a note): RS compares closes of NYSE sessions, and
 *    a 24x7 series' 1d bars are UTC days;
 *  - RS over n vs a benchmark = (symbol's return − benchmark's return) × 100;
 *  - rs_score = 0.4 × RS₆₃ + 0.2 × RS₁₂₆ + 0.2 × RS₁₈₉ + 0.2 × RS₂₅₂ vs SPY (IBD's 3/6/9/12-month
 *    weighting); rs_sector_score the same against the symbol's sector ETF, NULL when that ETF is
 *    not in the universe (the symbol is then scored against SPY only) or has no score that day
 *    (the member's note names the ETF and why: no bar, stale, a short history);
 *  - rs_rating = 1 + round(98 × percent_rank of rs_score), halves away from zero, among the stocks scored that day: 1–99,
 *    ties share a rating; ETFs and benchmarks get scores but no rating;
 *  - sector leader = a scored stock in the top 20% of its sector by rs_score (cume_dist > 0.8:
 *    the top one of a sector with fewer than five, ties at the top all lead);
 *  - stale member = a non-crypto member whose newest 1d bar up to the as-of date is
 *    STALE_AFTER_SESSIONS NYSE sessions or more before it (delisted, or its data feed is dead):
 *    refresh-rs no longer waits for it, and it has no score or rating, here or in the current
 *    values, until a bar comes again;
 *  - never-found member = a non-crypto member that has no 1d bar at all although refresh-rs asked
 *    enrichment for it on NEVER_FOUND_AFTER_DATES as-of dates or more (a typo, a ticker the data
 *    source does not know): handled as a stale one;
 *  - SPY is neither: without it nothing is scored, so its missing bar is an outage to report. A
 *    sector ETF that is stale, never found or otherwise without a score leaves its members'
 *    rs_sector_score NULL, their note saying why; their rs_score and rating do not need it;
 *  - a member's asset class is the one bullpen tracks (`RsScoringOptions.assetClasses`, from
 *    loadTrackedAssetClasses): a coin the trading system knows as one is crypto even where the
 *    universe took the default class.
 */
import { addTradingDays } from '../analytics/calendar.ts';
import type { AssetClass } from '../analytics/timeframes.ts';
import type { Sql } from '../db.ts';

/** 1d bars needed for the 12-month return: the as-of bar and 252 before it. */
export const SESSIONS_NEEDED = 253;
export const MARKET_BENCHMARK = 'SPY';
/** Calendar days of 1d bars read before the as-of date: 252 sessions are about 365 days, with room for holidays. */
const WINDOW_DAYS = 400;
/**
 * NYSE sessions in a row without a 1d bar, up to the as-of date, after which a member is stale:
 * a week of sessions. Trading halts rarely outlast it; a delisted symbol never gets a bar again,
 * and asking the enrichment pipeline for it every evening only delays the run.
 */
export const STALE_AFTER_SESSIONS = 5;

/** The last date a stale member's newest 1d bar can be on, for scoring `asOf`. */
export function staleThrough(asOf: string): string {
  return addTradingDays(asOf, -STALE_AFTER_SESSIONS);
}

/**
 * As-of dates refresh-rs asks enrichment for a member without any 1d bar before giving up on it.
 * A new member's history normally comes with the first request; three dates rule out a night's
 * outage, and asking on every evening after that only delays each run.
 */
export const NEVER_FOUND_AFTER_DATES = 3;
/** `requested_by` of refresh-rs's enrichment requests, followed by the as-of date. */
export const RS_REQUEST_PREFIX = 'refresh-rs@';
/** How the notes of stale and never-found members begin (the API picks them out by it). */
export const STALE_NOTE_PREFIX = 'stale: ';
export const NEVER_FOUND_NOTE_PREFIX = 'no bar ever: ';

/** What the run knows besides the tables. */
export interface RsScoringOptions {
  /**
   * Members whose asset class as bullpen tracks it (loadTrackedAssetClasses) differs from
   * market.sector_mapping's; the others keep the universe's.
   */
  assetClasses?: ReadonlyMap<string, AssetClass>;
}

/** The asset class of the member in column `alias.symbol` (of market.sector_mapping), as bullpen tracks it. */
function assetClassOf(sql: Sql, alias: string, options: RsScoringOptions) {
  const classes = options.assetClasses ?? new Map<string, AssetClass>();
  if (classes.size === 0) return sql.unsafe(`${alias}.asset_class`);
  return sql`coalesce((select t.asset_class from unnest(${[...classes.keys()]}::text[], ${[...classes.values()]}::text[]) as t(symbol, asset_class)
    where t.symbol = ${sql.unsafe(`${alias}.symbol`)}), ${sql.unsafe(`${alias}.asset_class`)})`;
}

/**
 * How many as-of dates refresh-rs asked enrichment for the 1d bars of the symbol in column
 * `symbol` and saw that series end (completed or failed). Dates, not requests: each attempt of a
 * date asks again, and one bad evening is not a verdict.
 */
function datesAsked(sql: Sql, symbol: string) {
  return sql`(select count(distinct b.requested_by)::int from enrichment.backfill_state s
    join enrichment.backfills b on b.backfill_id = s.backfill_job_id
    where s.symbol = ${sql.unsafe(symbol)} and s.timeframe = '1d' and s.status in ('completed', 'failed')
      and b.requested_by like ${`${RS_REQUEST_PREFIX}%`})`;
}

/** Whether the symbol in column `symbol` has any 1d bar, of any date. */
function hasAnyBar(sql: Sql, symbol: string) {
  return sql`exists (select 1 from market.bars b where b.symbol = ${sql.unsafe(symbol)} and b.timeframe = '1d')`;
}

/**
 * The market-local date of the newest 1d bar of the symbol in column `symbol` up to `asOf`, at any
 * age (one read of the primary key backwards); NULL when it has none.
 */
function newestBarDate(sql: Sql, symbol: string, asOf: string, tz: string) {
  return sql`(select (b.ts at time zone ${tz})::date from market.bars b
    where b.symbol = ${sql.unsafe(symbol)} and b.timeframe = '1d' and b.ts < ((${asOf}::date + 1)::timestamp at time zone ${tz})
    order by b.ts desc limit 1)`;
}

/** A member of the universe without a 1d bar on the as-of date. */
export interface LateMember {
  symbol: string;
  /** SPY or a sector ETF in use: without its bar no score (or no sector score) can be computed. */
  benchmark: boolean;
  /** The date of its newest 1d bar before the as-of date; null when it has none (a new member). */
  last_bar: string | null;
  /**
   * No bar for STALE_AFTER_SESSIONS sessions or more (SPY never is: its missing bar is an outage
   * to report, not a delisting). A member without any bar is new, not stale: its history is what
   * the request fetches.
   */
  stale: boolean;
  /** No 1d bar at all, after NEVER_FOUND_AFTER_DATES dates asked for (SPY never is). */
  never_found: boolean;
  /** For a member without any 1d bar: the dates refresh-rs asked enrichment for it; else null. */
  dates_asked: number | null;
}

/**
 * The members without a 1d bar on the as-of date: every non-crypto member of
 * market.sector_mapping (crypto is not scored), flagged when it is a benchmark — SPY when it is a
 * member (without it every score is NULL with a note, and no bar will come for a symbol the
 * enrichment no longer fetches), and the sector ETFs the stocks name that are members — and when
 * it is stale or never found. refresh-rs waits for all but those two.
 */
export async function loadLateMembers(sql: Sql, asOf: string, tz: string, options: RsScoringOptions = {}): Promise<LateMember[]> {
  return sql<LateMember[]>`
    with classed as (
      select m.symbol, m.sector_etf, ${assetClassOf(sql, 'm', options)} as asset_class from market.sector_mapping m
    ),
    benchmarks as (
      select m.symbol from classed m where m.symbol = ${MARKET_BENCHMARK}
      union
      select distinct m.sector_etf from classed m
      where m.asset_class = 'stock' and m.sector_etf is not null
        and exists (select 1 from classed e where e.symbol = m.sector_etf)
    )
    select d.symbol, d.benchmark, d.last_bar::text as last_bar, d.stale,
      coalesce(d.dates_asked >= ${NEVER_FOUND_AFTER_DATES}::int, false) as never_found, d.dates_asked
    from (
      select l.symbol, l.benchmark, l.last_bar,
        (l.symbol <> ${MARKET_BENCHMARK} and l.last_bar is not null and l.last_bar <= ${staleThrough(asOf)}::date) as stale,
        case when l.symbol <> ${MARKET_BENCHMARK} and l.last_bar is null and not ${hasAnyBar(sql, 'l.symbol')} then ${datesAsked(sql, 'l.symbol')} end as dates_asked
      from (
        select m.symbol, exists (select 1 from benchmarks bm where bm.symbol = m.symbol) as benchmark, ${newestBarDate(sql, 'm.symbol', asOf, tz)} as last_bar
        from classed m
        where m.asset_class <> 'crypto' or m.symbol in (select symbol from benchmarks)
      ) l
      where l.last_bar is distinct from ${asOf}::date
    ) d
    order by 1`;
}

export interface RsRunCounts {
  symbols: number;
  scored: number;
  rated: number;
  leaders: number;
}

/**
 * The close of the symbol `u.symbol` on the newest 1d bar dated on or before the date in column
 * `day`, within the scoring window: a lookback's start when the symbol's own bars do not
 * line up with the benchmark's sessions (a halt, a chunk enrichment failed to store).
 */
function closeOnOrBefore(sql: Sql, column: string, asOf: string, tz: string) {
  const day = sql.unsafe(column);
  return sql`(select b.close from market.bars b
    where b.symbol = u.symbol and b.timeframe = '1d'
      and b.ts >= ((${asOf}::date - ${WINDOW_DAYS}::int)::timestamp at time zone ${tz})
      and b.ts < ((${day} + 1)::timestamp at time zone ${tz})
    order by b.ts desc limit 1)`;
}

/**
 * The close a lookback starts from: the symbol's stored bar `n` back when it is stamped as SPY's
 * bar `n` back (no gap: the common case, read from the arrays), else the close on or before that
 * session's date.
 */
function lookbackClose(sql: Sql, n: number, asOf: string, tz: string) {
  return sql`case when q.stamps[${n + 1}::int] = ${sql.unsafe(`l.t${n}`)} then q.closes[${n + 1}::int]
    else ${closeOnOrBefore(sql, `l.d${n}`, asOf, tz)} end`;
}

/** Scores every symbol as of `asOf` into market.rs_scores (replacing that date's rows). */
export async function scoreRelativeStrength(sql: Sql, asOf: string, tz: string, options: RsScoringOptions = {}): Promise<RsRunCounts> {
  // The statement's row estimates put it far above jit_above_cost, and compiling it took longer
  // (~0.8 s) than running it. Callers run it in a transaction (refresh-rs, the bench).
  await sql`set local jit = off`;
  const windowStart = sql`((${asOf}::date - ${WINDOW_DAYS}::int)::timestamp at time zone ${tz})`;
  const windowEnd = sql`((${asOf}::date + 1)::timestamp at time zone ${tz})`;
  const [counts] = await sql<RsRunCounts[]>`
    with universe as (
      select m.symbol, m.sector_name, m.sector_etf, ${assetClassOf(sql, 'm', options)} as asset_class from market.sector_mapping m
    ),
    -- The lookbacks' start dates, the same for every symbol: SPY's sessions 21, 63, 126, 189 and
    -- 252 before the as-of date (none when SPY has no bar on it). Counting each symbol's own
    -- stored bars instead started a symbol with a gap earlier than SPY, over a longer period.
    benchmark as materialized (
      select exists (select 1 from universe where symbol = ${MARKET_BENCHMARK}) as listed,
        array(
          select b.ts from market.bars b
          where b.symbol = ${MARKET_BENCHMARK} and b.timeframe = '1d' and b.ts >= ${windowStart} and b.ts < ${windowEnd}
          order by b.ts desc
          limit ${SESSIONS_NEEDED}) as stamps
    ),
    benchmark_sessions as materialized (
      select listed, cardinality(stamps) as sessions, (stamps[1] at time zone ${tz})::date as last_date,
        case when (stamps[1] at time zone ${tz})::date = ${asOf}::date then stamps end as stamps
      from benchmark
    ),
    lookbacks as materialized (
      select listed, sessions, last_date,
        stamps[22] as t21, stamps[64] as t63, stamps[127] as t126, stamps[190] as t189, stamps[253] as t252,
        (stamps[22] at time zone ${tz})::date as d21, (stamps[64] at time zone ${tz})::date as d63,
        (stamps[127] at time zone ${tz})::date as d126, (stamps[190] at time zone ${tz})::date as d189,
        (stamps[253] at time zone ${tz})::date as d252
      from benchmark_sessions
    ),
    -- Per symbol, the stamps and closes of its newest 253 1d bars (SESSIONS_NEEDED) up to the as-of date
    -- straight from the primary key (symbol, timeframe, ts) read backwards: no sort, nothing older than
    -- the 12-month close read, and the stamps from the index alone. ARRAY(… ORDER BY) keeps the order:
    -- closes[k] is the close k − 1 bars back. A lookback reads closes[n + 1] when that bar is stamped
    -- as SPY's session n back (no gap: the common case), else the close on or before that session.
    -- Crypto members are not read: RS compares closes of NYSE sessions (SPY, the sector ETFs), and a
    -- 24x7 series' 1d bars are UTC days, whose close is hours after the NYSE close of the same date.
    returns as (
      select u.symbol, u.sector_name, u.asset_class,
        case when exists (select 1 from universe e where e.symbol = u.sector_etf) then u.sector_etf end as sector_etf,
        coalesce(cardinality(p.stamps), 0) as sessions, p.last_date,
        -- The newest bar at any age: a member whose bars stopped before the window is stale too.
        case when u.asset_class <> 'crypto' then coalesce(p.last_date, ${newestBarDate(sql, 'u.symbol', asOf, tz)}) end as last_bar,
        -- Read only for a member without any bar in the window (a new one, a typo): the rest have had bars.
        case when u.asset_class <> 'crypto' and u.symbol <> ${MARKET_BENCHMARK} and p.last_date is null and not ${hasAnyBar(sql, 'u.symbol')}
          then ${datesAsked(sql, 'u.symbol')} end as dates_asked,
        case when p.last_date = ${asOf}::date then p.closes[1] end as close,
        case when p.last_date = ${asOf}::date then p.closes[1] / nullif(p.c21, 0) - 1 end as r21,
        case when p.last_date = ${asOf}::date then p.closes[1] / nullif(p.c63, 0) - 1 end as r63,
        case when p.last_date = ${asOf}::date then p.closes[1] / nullif(p.c126, 0) - 1 end as r126,
        case when p.last_date = ${asOf}::date then p.closes[1] / nullif(p.c189, 0) - 1 end as r189,
        case when p.last_date = ${asOf}::date then p.closes[1] / nullif(p.c252, 0) - 1 end as r252,
        p.c252 is not null as has_year
      from universe u
      cross join lookbacks l
      left join lateral (
        select q.stamps, q.closes, (q.stamps[1] at time zone ${tz})::date as last_date,
          ${lookbackClose(sql, 21, asOf, tz)} as c21,
          ${lookbackClose(sql, 63, asOf, tz)} as c63,
          ${lookbackClose(sql, 126, asOf, tz)} as c126,
          ${lookbackClose(sql, 189, asOf, tz)} as c189,
          ${lookbackClose(sql, 252, asOf, tz)} as c252
        from (
          select
            array(
              select b.ts from market.bars b
              where b.symbol = u.symbol and b.timeframe = '1d' and b.ts >= ${windowStart} and b.ts < ${windowEnd}
              order by b.ts desc
              limit ${SESSIONS_NEEDED}) as stamps,
            array(
              select b.close from market.bars b
              where b.symbol = u.symbol and b.timeframe = '1d' and b.ts >= ${windowStart} and b.ts < ${windowEnd}
              order by b.ts desc
              limit ${SESSIONS_NEEDED}) as closes
          offset 0 -- one evaluation per symbol, not one per reference to the arrays
        ) q
      ) p on u.asset_class <> 'crypto'
    ),
    -- Materialized: inlined, the planner rescanned every symbol's returns for each symbol to find SPY.
    spy as materialized (
      select r63, r126, r189, r252 from returns where symbol = ${MARKET_BENCHMARK}
    ),
    scored as (
      select r.*,
        (r.r63 - s.r63) * 100 as rs63,
        0.4 * (r.r63 - s.r63) * 100 + 0.2 * (r.r126 - s.r126) * 100 + 0.2 * (r.r189 - s.r189) * 100 + 0.2 * (r.r252 - s.r252) * 100 as rs_score,
        0.4 * (r.r63 - e.r63) * 100 + 0.2 * (r.r126 - e.r126) * 100 + 0.2 * (r.r189 - e.r189) * 100 + 0.2 * (r.r252 - e.r252) * 100 as rs_sector_score,
        case
          when r.asset_class = 'crypto' then 'crypto: not scored (RS compares closes of NYSE sessions with SPY and the sector ETFs; a 24x7 series has no such close)'
          when r.last_bar <= ${staleThrough(asOf)}::date then ${STALE_NOTE_PREFIX} || 'no 1d bar since ' || r.last_bar || ' (' || ${STALE_AFTER_SESSIONS}::int
            || ' sessions or more); not waited for or rated; delisted? bullpen universe remove ' || r.symbol
          when r.dates_asked >= ${NEVER_FOUND_AFTER_DATES}::int then ${NEVER_FOUND_NOTE_PREFIX} || 'no 1d bar came for any of the ' || r.dates_asked
            || ' dates refresh-rs asked enrichment for (a typo, or a ticker the data source does not know?); '
            || 'not asked for or waited on any more; fix the symbol or remove it: bullpen universe remove ' || r.symbol
          when r.sessions = 0 then 'no 1d bars in the year before ' || ${asOf}
          when r.last_date <> ${asOf}::date then 'no 1d bar on ' || ${asOf} || ' (last ' || r.last_date || ')'
          when not l.listed then 'benchmark ' || ${MARKET_BENCHMARK}::text || ' is not in market.sector_mapping'
          when l.last_date is distinct from ${asOf}::date then 'benchmark ' || ${MARKET_BENCHMARK}::text || ': no 1d bar on ' || ${asOf}
          when l.sessions < ${SESSIONS_NEEDED} then 'benchmark ' || ${MARKET_BENCHMARK}::text || ': ' || l.sessions || ' sessions up to ' || ${asOf} || ', ' || ${SESSIONS_NEEDED} || ' needed for the 12-month return'
          when not r.has_year then 'history: ' || r.sessions || ' sessions up to ' || ${asOf} || ', ' || ${SESSIONS_NEEDED} || ' needed for the 12-month return'
        end as note
      from returns r
      cross join lookbacks l
      left join spy s on true
      left join returns e on e.symbol = r.sector_etf
    ),
    -- A member scored whose sector ETF has no score (no bar on the date, stale, a short history)
    -- gets no rs_sector_score; its note names the ETF and the ETF's own reason. Its rs_score and
    -- rating are against SPY and stand.
    noted as (
      select sc.symbol, sc.sector_name, sc.sector_etf, sc.asset_class, sc.sessions, sc.close, sc.r21, sc.r63, sc.r126, sc.r189, sc.r252,
        sc.rs63, sc.rs_score, sc.rs_sector_score,
        coalesce(sc.note, case when sc.rs_score is not null and sc.sector_etf is not null and sc.rs_sector_score is null
          then 'sector ETF ' || sc.sector_etf || ' unavailable (' || coalesce(e.note, 'no score') || '): rs_sector_score not computed' end) as note
      from scored sc
      left join scored e on e.symbol = sc.sector_etf
    ),
    rated as (
      select sc.*, (sc.rs_score is not null and sc.asset_class = 'stock') as ratable
      from noted sc
    ),
    ranked as (
      select rt.*,
        case when ratable then (1 + round((98 * percent_rank() over (partition by ratable order by rs_score))::numeric))::smallint end as rs_rating,
        case when ratable then cume_dist() over (partition by ratable, sector_name order by rs_score) > 0.8 end as is_sector_leader
      from rated rt
    ),
    written as (
      insert into market.rs_scores as t (symbol, as_of_date, sector_name, sector_etf, close, sessions, return_21d, return_63d, return_126d,
        return_189d, return_252d, rs_63d_vs_spy, rs_score, rs_sector_score, rs_rating, is_sector_leader, note, computed_at)
      select symbol, ${asOf}::date, sector_name, sector_etf, close, least(sessions, ${SESSIONS_NEEDED}), r21, r63, r126, r189, r252, rs63,
             rs_score, rs_sector_score, rs_rating, is_sector_leader, note, now()
      from ranked
      on conflict (symbol, as_of_date) do update set sector_name = excluded.sector_name, sector_etf = excluded.sector_etf,
        close = excluded.close, sessions = excluded.sessions, return_21d = excluded.return_21d, return_63d = excluded.return_63d,
        return_126d = excluded.return_126d, return_189d = excluded.return_189d, return_252d = excluded.return_252d,
        rs_63d_vs_spy = excluded.rs_63d_vs_spy, rs_score = excluded.rs_score, rs_sector_score = excluded.rs_sector_score,
        rs_rating = excluded.rs_rating, is_sector_leader = excluded.is_sector_leader, note = excluded.note, computed_at = now()
      returning rs_score, rs_rating, is_sector_leader
    )
    select count(*)::int as symbols, count(rs_score)::int as scored, count(rs_rating)::int as rated,
           count(*) filter (where is_sector_leader)::int as leaders
    from written`;
  // A symbol that left the universe keeps its history: its row for the newest date scored goes (the
  // current table lists the universe), but rescoring an older date (catch-up) leaves that date's
  // rows of symbols removed since.
  await sql`
    delete from market.rs_scores s
    where s.as_of_date = ${asOf}::date
      and ${asOf}::date >= (select max(as_of_date) from market.rs_scores)
      and not exists (select 1 from market.sector_mapping m where m.symbol = s.symbol)`;
  return counts as RsRunCounts;
}

/**
 * Copies a date's scores to market.sector_mapping when it is the newest date scored and SPY
 * was scored that day: without the benchmark every score is NULL (the notes say why), and the
 * current values stay as they were. A symbol without a bar on the date (late, halted) keeps its
 * current values too, `last_updated` saying from when: the missing bar says nothing of its
 * strength, and a NULL would read as "no rating" in `bullpen universe list`. A stale one
 * (STALE_AFTER_SESSIONS sessions without a bar: delisted, most likely) gets its NULLs: a rating
 * weeks old would go on standing among live ones, a sector leader forever; so does one never
 * found (its note says so), should it hold values from bars deleted since. So does a symbol with
 * the bar but no score (a short history, crypto): that is its state today. rs_score is rounded
 * to the column's 4 decimals. `tz` is the zone 1d bars are stamped in, as scoreRelativeStrength's.
 */
export async function publishCurrentScores(sql: Sql, asOf: string, tz: string, options: RsScoringOptions = {}): Promise<number> {
  const result = await sql`
    update market.sector_mapping m
    set rs_score = round(s.rs_score::numeric, 4), rs_rating = s.rs_rating, is_sector_leader = s.is_sector_leader, last_updated = now()
    from market.rs_scores s
    where s.symbol = m.symbol and s.as_of_date = ${asOf}::date
      and (s.close is not null or ${assetClassOf(sql, 'm', options)} = 'crypto' or ${newestBarDate(sql, 'm.symbol', asOf, tz)} <= ${staleThrough(asOf)}::date
        or s.note like ${`${NEVER_FOUND_NOTE_PREFIX}%`})
      and ${asOf}::date >= (select max(as_of_date) from market.rs_scores)
      and exists (select 1 from market.rs_scores b where b.symbol = ${MARKET_BENCHMARK} and b.as_of_date = ${asOf}::date and b.rs_score is not null)`;
  return result.count;
}

/** The symbols a run could not score, and why. */
export async function loadUnscored(sql: Sql, asOf: string): Promise<{ symbol: string; note: string | null }[]> {
  return sql<{ symbol: string; note: string | null }[]>`
    select symbol, note from market.rs_scores where as_of_date = ${asOf}::date and rs_score is null order by symbol`;
}
