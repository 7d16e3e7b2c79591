/**
 * The enrichment API (DESIGN.md "HTTP", the enrichment seed's four endpoints) and the backfill
 * requests behind it: trigger, describe, list, cancel, resume; a symbol's status, the
 * pipeline's metrics, a symbol's data-quality report. Mounted under /api/v1 on the
 * authenticated API router. Errors answer in the seed's shape, `{ "detail": "…" }`: 400 names
 * the field, 404 an unknown backfill, 409 a state that does not allow the action. The reads
 * are in src/enrichment/reports.ts.
 */
import express, { type Request } from 'express';
import type { Config } from '../config.ts';
import { nextTicks } from '../cron.ts';
import type { Sql } from '../db.ts';
import { TIMEFRAMES } from '../analytics/timeframes.ts';
import {
  cancelBackfill,
  createBackfill,
  describeBackfill,
  planTrackedBackfill,
  resumeBackfill,
  SYMBOL_PATTERN,
  type BackfillEnqueuer,
  type BackfillPlan,
} from '../enrichment/backfills.ts';
import { requestBudgetOf } from '../enrichment/providers/index.ts';
import { listBackfills, loadEnrichmentMetrics, loadEnrichmentStatus, loadQualityReport } from '../enrichment/reports.ts';
import { BadInputError } from '../errors.ts';
import type { JobDefinition } from '../job-definition.ts';
import type { Logger } from '../logger.ts';
import { loadBackfill, type BackfillStatus } from '../queries/enrichment.ts';
import { parseBasicAuthorization } from './auth.ts';
import { createDetailErrorHandler, wrapAsync } from './error-handler.ts';
import { parseBoundedInt, singleParam } from './params.ts';

/** The job whose schedule `next_enrichment` reports. */
const DAILY_JOB = 'enrichment-daily';
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const BACKFILL_STATUSES: readonly BackfillStatus[] = ['queued', 'in_progress', 'completed', 'failed', 'cancelling', 'cancelled'];
const LIST_FIELDS = ['symbols', 'timeframes'] as const;
const SCALAR_FIELDS = ['asset_class', 'from', 'to', 'source', 'reprocess'] as const;

/** A request the state of a backfill does not allow (cancel a finished one, resume a running one). */
class ConflictError extends Error {
  override name = 'ConflictError';
}

/** A backfill id that is well formed but unknown. */
class NotFoundError extends Error {
  override name = 'NotFoundError';
}

/** This process was built without a way to queue backfills. */
class UnavailableError extends Error {
  override name = 'UnavailableError';
}

export interface EnrichmentRouterDeps {
  db: Sql;
  config: Config;
  logger: Logger;
  /** Puts a backfill's flow on the queue; without it, trigger and resume answer 503. */
  enqueueBackfill?: BackfillEnqueuer;
  /** Job definitions, for the enrichment-daily schedule behind `next_enrichment`. */
  definitions: readonly JobDefinition[];
  /** @defaultValue Date.now */
  now?: () => number;
}

// ---------------------------------------------------------------------------------------------
// Values

/** A symbol from a path: trimmed, upper-cased, or a BadInputError naming `symbol`. */
export function parseSymbol(raw: unknown): string {
  const symbol = typeof raw === 'string' ? raw.trim().toUpperCase() : '';
  if (!SYMBOL_PATTERN.test(symbol)) throw new BadInputError(`symbol: must be 1–20 letters, digits, "." or "-", starting with a letter or digit (got ${JSON.stringify(raw)})`);
  return symbol;
}

/** A backfill id, or a BadInputError naming `id`. */
export function parseBackfillId(raw: unknown): string {
  if (typeof raw !== 'string' || !UUID_PATTERN.test(raw)) throw new BadInputError(`id: must be a backfill id (a UUID), got ${JSON.stringify(raw)}`);
  return raw.toLowerCase();
}

/** A list field as query strings or JSON give it: "a,b", ["a", "b"], ["a,b", "c"] → ["a", "b", "c"]. */
/** The query without its empty values: `?timeframes=&from=` is `{}`, `?timeframes=&timeframes=1h` is `{timeframes: ['1h']}`. */
function omitBlank(query: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(query)) {
    const present = Array.isArray(value) ? value.filter((v) => v !== '') : value;
    if (present !== '' && !(Array.isArray(present) && present.length === 0)) kept[key] = present;
  }
  return kept;
}

function flattenList(value: unknown): unknown {
  if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter(Boolean);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.flatMap((v: string) => v.split(',').map((s) => s.trim()).filter(Boolean));
  return value;
}

/** The seed's message for unknown timeframes, listing every bad one: `Invalid timeframes: ['2h', '3d']`. */
export function assertKnownTimeframes(timeframes: unknown): void {
  if (!Array.isArray(timeframes)) return;
  const bad = timeframes.filter((t) => typeof t !== 'string' || !(TIMEFRAMES as readonly string[]).includes(t));
  if (bad.length === 0) return;
  const shown = bad.map((t) => (typeof t === 'string' ? `'${t}'` : JSON.stringify(t))).join(', ');
  throw new BadInputError(`Invalid timeframes: [${shown}]; valid timeframes: ${TIMEFRAMES.join(', ')}`);
}

/**
 * The trigger's fields from the query string and the JSON body; the body wins field by field.
 * `symbol` is an alias of `symbols`. Lists may be repeated parameters or comma-separated.
 */
export function triggerInputOf(query: Record<string, unknown>, body: unknown): Record<string, unknown> {
  if (body !== undefined && (body === null || typeof body !== 'object' || Array.isArray(body))) throw new BadInputError('body: must be a JSON object');
  // README: on every route a query parameter left empty counts as not given (a blank form field).
  const sources = [omitBlank(query), (body ?? {}) as Record<string, unknown>];
  const input: Record<string, unknown> = {};
  for (const source of sources) {
    const symbols = source.symbols ?? source.symbol;
    if (symbols !== undefined) input.symbols = symbols;
    if (source.timeframes !== undefined) input.timeframes = source.timeframes;
    for (const field of SCALAR_FIELDS) if (source[field] !== undefined) input[field] = source[field];
  }
  for (const field of LIST_FIELDS) if (input[field] !== undefined) input[field] = flattenList(input[field]);
  const symbols = input.symbols;
  if (symbols === undefined || (Array.isArray(symbols) && symbols.length === 0) || symbols === '') {
    throw new BadInputError('symbol: required (symbol=AAPL, or symbols=AAPL,MSFT)');
  }
  assertKnownTimeframes(input.timeframes);
  return input;
}

/**
 * A rough duration: compute at about 100,000 bars/s plus 50 ms of overhead per chunk; when the
 * request's source has a budget (requestBudgetOf: 5/min for polygon by default), at least one
 * window share per chunk, since every chunk is one fetch from it.
 */
export function estimateDurationSeconds(plan: Pick<BackfillPlan, 'estimatedBars' | 'chunksTotal'>, rateLimit: Config['enrichmentRateLimit']): number {
  const compute = plan.estimatedBars / 100_000 + plan.chunksTotal * 0.05;
  const limited = rateLimit ? (plan.chunksTotal * rateLimit.durationMs) / rateLimit.max / 1000 : 0;
  return Math.max(1, Math.ceil(Math.max(compute, limited)));
}

/** A source this process could not build fails every chunk: refuse it up front. */
export function assertSourceConfigured(source: string, config: Config): void {
  if (source === 'polygon' && !config.polygonApiKey) throw new BadInputError('source: polygon needs POLYGON_API_KEY, which is not set');
  if (source === 'csv' && !config.marketDataCsvDir) throw new BadInputError('source: csv needs MARKET_DATA_CSV_DIR, which is not set');
}

/** The next fire of enrichment-daily after `now`, or null when its schedule is off or absent. */
export function nextEnrichment(definitions: readonly JobDefinition[], config: Pick<Config, 'scheduleOverrides'>, now: number): string | null {
  const definition = definitions.find((d) => d.name === DAILY_JOB);
  if (!definition?.schedule) return null;
  const override = config.scheduleOverrides[DAILY_JOB];
  if (override === 'off') return null;
  const [tick] = nextTicks(override ?? definition.schedule.cron, definition.schedule.tz, new Date(now), 1);
  return tick ? tick.toISOString() : null;
}

// ---------------------------------------------------------------------------------------------
// Router

const parseDays = (raw: unknown): number => parseBoundedInt(raw, 'days', 1, 365, 7);
const parseLimit = (raw: unknown): number => parseBoundedInt(raw, 'limit', 1, 500, 20);

function parseStatusFilter(raw: unknown): BackfillStatus | undefined {
  const value = singleParam(raw, 'status');
  if (value === undefined) return undefined;
  if (!(BACKFILL_STATUSES as readonly string[]).includes(value)) {
    throw new BadInputError(`status: must be one of ${BACKFILL_STATUSES.join(', ')} (got ${JSON.stringify(value)})`);
  }
  return value as BackfillStatus;
}

/** Who asked, for enrichment.backfills.requested_by: `api:<basic-auth user>`. */
function requesterOf(req: Request): string {
  const user = parseBasicAuthorization(req.headers.authorization)?.user;
  return user ? `api:${user}`.slice(0, 100) : 'api';
}

/** The enrichment routes, relative to /api/v1. */
export function createEnrichmentRouter(deps: EnrichmentRouterDeps): express.Router {
  const router = express.Router();
  const now = deps.now ?? Date.now;
  const enqueuer = (): BackfillEnqueuer => {
    if (!deps.enqueueBackfill) throw new UnavailableError('this process cannot queue backfills (it has no flow producer)');
    return deps.enqueueBackfill;
  };

  router.post(
    '/enrichment/trigger',
    wrapAsync(async (req, res) => {
      const input = triggerInputOf(req.query as Record<string, unknown>, req.body);
      const at = now();
      const plan = await planTrackedBackfill(deps.db, { ...input, requested_by: requesterOf(req) }, { defaultSource: deps.config.marketDataSource, maxBars: deps.config.enrichmentMaxBars, now: at });
      assertSourceConfigured(plan.source, deps.config);
      const created = await createBackfill({ db: deps.db, enqueue: enqueuer() }, plan);
      deps.logger.info({ backfillId: created.backfillId, symbols: plan.symbols.length, timeframes: plan.timeframes, from: plan.from, to: plan.to }, 'backfill requested over HTTP');
      for (const warning of plan.warnings) deps.logger.warn({ backfillId: created.backfillId }, warning);
      res.status(202).json({
        backfill_id: created.backfillId,
        job_id: created.jobId,
        symbol: plan.symbols[0]?.symbol,
        symbols: plan.symbols.map((s) => s.symbol),
        asset_class: plan.assetClass,
        timeframes: plan.timeframes,
        from: plan.from,
        to: plan.to,
        source: plan.source,
        reprocess: plan.reprocess,
        status: 'queued',
        total_records_to_process: plan.estimatedBars,
        chunks_total: plan.chunksTotal,
        // Paced by its own source's budget only: the others' do not hold it.
        estimated_duration_seconds: estimateDurationSeconds(plan, requestBudgetOf(deps.config, plan.source)),
        warnings: plan.warnings,
        timestamp: new Date(at).toISOString(),
      });
    }),
  );

  router.get(
    '/backfills',
    wrapAsync(async (req, res) => {
      const status = parseStatusFilter(req.query.status);
      const limit = parseLimit(req.query.limit);
      res.json({ backfills: await listBackfills(deps.db, { status, limit }) });
    }),
  );

  router.get(
    '/backfills/:id',
    wrapAsync(async (req, res) => {
      const id = parseBackfillId(req.params.id);
      const report = await describeBackfill(deps.db, id);
      if (!report) throw new NotFoundError(`backfill ${id} does not exist`);
      res.json(report);
    }),
  );

  router.post(
    '/backfills/:id/cancel',
    wrapAsync(async (req, res) => {
      const id = parseBackfillId(req.params.id);
      if (!(await loadBackfill(deps.db, id))) throw new NotFoundError(`backfill ${id} does not exist`);
      const status = await asConflict(() => cancelBackfill(deps.db, id));
      res.status(202).json({ backfill_id: id, status, timestamp: new Date(now()).toISOString() });
    }),
  );

  router.post(
    '/backfills/:id/resume',
    wrapAsync(async (req, res) => {
      const id = parseBackfillId(req.params.id);
      if (!(await loadBackfill(deps.db, id))) throw new NotFoundError(`backfill ${id} does not exist`);
      const enqueue = enqueuer();
      const resumed = await asConflict(() => resumeBackfill({ db: deps.db, enqueue }, id));
      res.status(202).json({ backfill_id: id, job_id: resumed.jobId, status: 'queued', series: resumed.series, timestamp: new Date(now()).toISOString() });
    }),
  );

  router.get(
    '/enrichment/status/:symbol',
    wrapAsync(async (req, res) => {
      const symbol = parseSymbol(req.params.symbol);
      const at = now();
      res.json(await loadEnrichmentStatus(deps.db, symbol, { now: at, nextEnrichment: nextEnrichment(deps.definitions, deps.config, at) }));
    }),
  );

  router.get(
    '/enrichment/metrics',
    wrapAsync(async (_req, res) => {
      res.json(await loadEnrichmentMetrics(deps.db, now()));
    }),
  );

  router.get(
    '/data/quality/:symbol',
    wrapAsync(async (req, res) => {
      const symbol = parseSymbol(req.params.symbol);
      const days = parseDays(req.query.days);
      res.json(await loadQualityReport(deps.db, symbol, days, now()));
    }),
  );

  // The seed's error shape for what these routes reject; anything else goes on to the app's handler (500).
  router.use(createDetailErrorHandler(deps.logger, 'enrichment', (thrown) => thrown instanceof BadInputError ? 400 : thrown instanceof NotFoundError ? 404 : thrown instanceof ConflictError ? 409 : thrown instanceof UnavailableError ? 503 : undefined));
  return router;
}

/** cancel/resume throw BadInputError when the backfill's state does not allow them (existence is checked before). */
async function asConflict<T>(action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (error instanceof BadInputError) throw new ConflictError(error.message, { cause: error });
    throw error;
  }
}
