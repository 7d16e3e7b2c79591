/**
 * The relative-strength API (DESIGN.md "HTTP"; issue 6): a scored date's table and one
 * symbol's history, from market.rs_scores. Mounted under /api/v1 on the authenticated API
 * router. Errors answer `{ "detail": "…" }` as the enrichment routes do: 400 names the query
 * field, 404 a date never scored (or nothing scored at all) and an unknown symbol.
 *
 *   GET /api/v1/rs?sector=&leaders=true&date=YYYY-MM-DD&limit=100
 *   GET /api/v1/rs/:symbol?days=30
 */
import express from 'express';
import type { Sql } from '../db.ts';
import { BadInputError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { hasRsDate, loadLatestRsDate, loadRsHistory, loadRsTable, loadSectors, loadUniverseMember } from '../queries/rs-read.ts';
import { parseSymbol } from './enrichment.ts';
import { createDetailErrorHandler, wrapAsync } from './error-handler.ts';
import { parseBoundedInt, parseDateParam, singleParam } from './params.ts';

/** Rows a table answer holds at most, and by default. */
export const RS_MAX_LIMIT = 5000;
export const RS_DEFAULT_LIMIT = 100;
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

/** `YYYY-MM-DD`, a real calendar date, or a BadInputError naming `field`; undefined when absent. */
export function parseRsDate(raw: unknown, field = 'date'): string | undefined {
  return parseDateParam(raw, field);
}

function parseLeaders(raw: unknown): boolean {
  const value = singleParam(raw, 'leaders');
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw new BadInputError(`leaders: must be true or false (got ${JSON.stringify(value)})`);
}

/** A sector name of market.sector_mapping (exact), or a BadInputError naming `field` and listing the sectors. */
export async function assertKnownSector(db: Sql, sector: string, field = 'sector'): Promise<void> {
  const sectors = await loadSectors(db);
  if (!sectors.includes(sector)) {
    throw new BadInputError(`${field}: unknown sector ${JSON.stringify(sector)}; sectors in market.sector_mapping: ${sectors.join(', ') || 'none (the universe is empty)'}`);
  }
}

/**
 * The date a table answer is for: the asked one when it was scored, else the newest scored.
 * RsNotFoundError when that date was not scored, or nothing ever was.
 */
export async function resolveRsDate(db: Sql, asked: string | undefined): Promise<string> {
  if (asked === undefined) {
    const latest = await loadLatestRsDate(db);
    if (latest === null) throw new RsNotFoundError(`no relative-strength scores yet: ${RS_REFRESH_HINT}`);
    return latest;
  }
  if (await hasRsDate(db, asked)) return asked;
  const latest = await loadLatestRsDate(db);
  throw new RsNotFoundError(
    latest === null
      ? `no relative-strength scores yet: ${RS_REFRESH_HINT}`
      : `no relative-strength scores for ${asked} (newest scored date: ${latest}); score it with bullpen run refresh-rs --data '{"date":"${asked}"}' --wait`,
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
      // Every field is checked before the database is asked anything about dates.
      const asked = parseRsDate(req.query.date);
      const sector = singleParam(req.query.sector, 'sector');
      const leadersOnly = parseLeaders(req.query.leaders);
      const limit = parseBoundedInt(req.query.limit, 'limit', 1, RS_MAX_LIMIT, RS_DEFAULT_LIMIT);
      if (sector !== undefined) await assertKnownSector(deps.db, sector);
      const date = await resolveRsDate(deps.db, asked);
      const symbols = await loadRsTable(deps.db, { date, sector, leadersOnly, limit });
      res.json({ as_of_date: date, sector: sector ?? null, leaders_only: leadersOnly, symbols });
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
