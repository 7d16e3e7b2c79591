/**
 * The relative-strength API (DESIGN.md "HTTP"; issue 6): a scored date's table and one
 * symbol's history, from market.rs_scores. Mounted under /api/v1 on the authenticated API
 * router. Errors answer `{ "detail": "…" }` as the enrichment routes do: 400 names the query
 * field (a sector: one of the date's rows), 404 a date never scored (or nothing scored at all)
 * and an unknown symbol.
 *
 *   GET /api/v1/rs?sector=&leaders=true&date=YYYY-MM-DD&limit=100&offset=0
 *   GET /api/v1/rs/:symbol?days=30
 *
 * The table is read in pages of at most RS_MAX_LIMIT rows by offset and limit (the form `limit`
 * already had); each answer says how many rows match in all and, when more follow, the next
 * page's offset and path, the latter pinned to the date answered. It also carries the date's
 * `warnings` (of the sector asked for, whatever the page): sector ETFs whose members were scored
 * without rs_sector_score, and members stale or never found, to fix or remove.
 */
import express from 'express';
import { describeDate, isTradingDay } from '../analytics/calendar.ts';
import type { Sql } from '../db.ts';
import { BadInputError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import {
  countRsTable,
  hasRsDate,
  loadLatestRsDate,
  loadLatestRsDateOnOrBefore,
  loadRsHistory,
  loadRsSectors,
  loadRsTable,
  loadRsWarnings,
  loadSectors,
  loadUniverseMember,
} from '../queries/rs-read.ts';
import { parseSymbol } from './enrichment.ts';
import { createDetailErrorHandler, wrapAsync } from './error-handler.ts';
import { parseBoundedInt, parseDateParam, singleParam } from './params.ts';

/** Rows a table answer holds at most, and by default. */
export const RS_MAX_LIMIT = 5000;
export const RS_DEFAULT_LIMIT = 100;
/** The largest offset a table page may start at: past any universe's size, bounded so a typo of many digits is refused. */
export const RS_MAX_OFFSET = 1_000_000;
/** As-of dates a history answer holds at most, and by default. */
export const RS_MAX_DAYS = 1000;
export const RS_DEFAULT_DAYS = 30;

/** Where `bullpen rs` and the 404 point a user whose database has no scores yet. */
export const RS_REFRESH_HINT = 'run `bullpen run refresh-rs --wait` to score the universe';

/** Nothing scored for the asked date (or at all), or an unknown symbol. */
export class RsNotFoundError extends Error {
  override name = 'RsNotFoundError';
}

export interface RsRouterDeps {
  db: Sql;
  logger: Logger;
}

// ---------------------------------------------------------------------------------------------
// Values (shared with `bullpen rs`)

function parseLeaders(raw: unknown): boolean {
  const value = singleParam(raw, 'leaders');
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw new BadInputError(`leaders: must be true or false (got ${JSON.stringify(value)})`);
}

/** A sector name of market.sector_mapping (exact), or a BadInputError naming `field` and listing the sectors. For the universe as it is now. */
export async function assertKnownSector(db: Sql, sector: string, field = 'sector'): Promise<void> {
  const sectors = await loadSectors(db);
  if (!sectors.includes(sector)) {
    throw new BadInputError(`${field}: unknown sector ${JSON.stringify(sector)}; sectors in market.sector_mapping: ${sectors.join(', ') || 'none (the universe is empty)'}`);
  }
}

/**
 * A sector of the rows scored on `date` (exact), or a BadInputError naming `field` and listing
 * them. The table filters on the sector a row was scored in, so a date before a sector was
 * renamed is asked for by its name then, not by today's universe.
 */
export async function assertScoredSector(db: Sql, date: string, sector: string, field = 'sector'): Promise<void> {
  const sectors = await loadRsSectors(db, date);
  if (!sectors.includes(sector)) {
    throw new BadInputError(`${field}: unknown sector ${JSON.stringify(sector)} for ${date}; sectors scored that date: ${sectors.join(', ') || 'none'}`);
  }
}

/** What a page of the table says besides its rows: how many match, and where the next page starts (null on the last). */
export interface RsPage {
  total: number;
  offset: number;
  limit: number;
  next_offset: number | null;
}

export function describeRsPage(total: number, offset: number, limit: number): RsPage {
  return { total, offset, limit, next_offset: offset + limit < total ? offset + limit : null };
}

/** "a Saturday", "Thanksgiving Day": why NYSE had no session on a date that is not a trading day. */
function closedBecause(date: string): string {
  const d = describeDate(date);
  if (d.isWeekend) return d.dayOfWeek === 6 ? 'a Saturday' : 'a Sunday';
  return d.holidayName ?? 'a closure';
}

/**
 * The date a table answer is for: the asked one when it was scored, else the newest scored.
 * RsNotFoundError when that date was not scored, or nothing ever was. A date that is no NYSE
 * session is never scored (refresh-rs skips it), so its answer names the scored date before it
 * rather than telling the user to score it.
 */
export async function resolveRsDate(db: Sql, asked: string | undefined): Promise<string> {
  if (asked === undefined) {
    const latest = await loadLatestRsDate(db);
    if (latest === null) throw new RsNotFoundError(`no relative-strength scores yet: ${RS_REFRESH_HINT}`);
    return latest;
  }
  if (await hasRsDate(db, asked)) return asked;
  const latest = await loadLatestRsDate(db);
  if (latest === null) throw new RsNotFoundError(`no relative-strength scores yet: ${RS_REFRESH_HINT}`);
  if (!isTradingDay(asked)) {
    const before = await loadLatestRsDateOnOrBefore(db, asked);
    throw new RsNotFoundError(
      `no relative-strength scores for ${asked}: it is not an NYSE session (${closedBecause(asked)}); ${
        before === null ? `no date on or before it was scored (newest scored date: ${latest})` : `the newest scored date on or before it is ${before}`
      }`,
    );
  }
  throw new RsNotFoundError(
    `no relative-strength scores for ${asked} (newest scored date: ${latest}); score it with bullpen run refresh-rs --data '{"date":"${asked}"}' --wait`,
  );
}

// ---------------------------------------------------------------------------------------------
// Router

/** The RS routes, relative to /api/v1. */
export function createRsRouter(deps: RsRouterDeps): express.Router {
  const router = express.Router();

  router.get(
    '/rs',
    wrapAsync(async (req, res) => {
      // Every field's form is checked before the database is asked anything about dates; the
      // sector is one of the date's, so it is checked once the date is known.
      const asked = parseDateParam(req.query.date, 'date');
      const sector = singleParam(req.query.sector, 'sector');
      const leadersOnly = parseLeaders(req.query.leaders);
      const limit = parseBoundedInt(req.query.limit, 'limit', 1, RS_MAX_LIMIT, RS_DEFAULT_LIMIT);
      const offset = parseBoundedInt(req.query.offset, 'offset', 0, RS_MAX_OFFSET, 0);
      const date = await resolveRsDate(deps.db, asked);
      if (sector !== undefined) await assertScoredSector(deps.db, date, sector);
      const total = await countRsTable(deps.db, { date, sector, leadersOnly });
      const symbols = await loadRsTable(deps.db, { date, sector, leadersOnly, limit, offset });
      const warnings = await loadRsWarnings(deps.db, date, sector);
      const page = describeRsPage(total, offset, limit);
      // The next page names the date answered: without it, a date scored between two pages would
      // turn the rest of the reading into another date's rows.
      const nextQuery = page.next_offset === null ? null : new URLSearchParams({
        date,
        ...(sector !== undefined ? { sector } : {}),
        ...(leadersOnly ? { leaders: 'true' } : {}),
        limit: String(limit),
        offset: String(page.next_offset),
      });
      res.json({
        as_of_date: date,
        sector: sector ?? null,
        leaders_only: leadersOnly,
        ...page,
        next: nextQuery === null ? null : `${req.baseUrl}/rs?${nextQuery.toString()}`,
        warnings,
        symbols,
      });
    }),
  );

  router.get(
    '/rs/:symbol',
    wrapAsync(async (req, res) => {
      const symbol = parseSymbol(req.params.symbol);
      const days = parseBoundedInt(req.query.days, 'days', 1, RS_MAX_DAYS, RS_DEFAULT_DAYS);
      const member = await loadUniverseMember(deps.db, symbol);
      const history = await loadRsHistory(deps.db, symbol, days);
      // A symbol removed from the universe keeps its history, which is still served.
      if (!member && history.length === 0) throw new RsNotFoundError(`symbol ${symbol} is not in market.sector_mapping and has no relative-strength history`);
      res.json({
        symbol,
        in_universe: member !== undefined,
        sector_name: member?.sector_name ?? history[0]?.sector_name ?? null,
        industry: member?.industry ?? null,
        sector_etf: member?.sector_etf ?? null,
        asset_class: member?.asset_class ?? null,
        days,
        history,
      });
    }),
  );

  router.use(createDetailErrorHandler(deps.logger, 'rs', (thrown) => thrown instanceof BadInputError ? 400 : thrown instanceof RsNotFoundError ? 404 : undefined));
  return router;
}
