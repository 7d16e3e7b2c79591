/**
 * The enrichment API (DESIGN.md "HTTP", the enrichment seed's four endpoints) and the backfill
 * requests behind it: trigger, describe, list, cancel, resume; a symbol's status, the
 * pipeline's metrics, a symbol's data-quality report. Mounted under /api/v1 on the
 * authenticated API router. Errors answer in the seed's shape, `{ "detail": "…" }`: 400 names
 * the field, 404 an unknown backfill, 409 a state that does not allow the action.
 *
 * Windows: fetch and compute metrics cover the last 24 hours of logging; the pipeline-wide
 * quality averages the last 7 days by metric date. A symbol's status and quality report look at
 * the 7 (or `days`) days ending at that symbol's newest metric date, so a historical backfill
 * still reports what it stored instead of nothing.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Config } from '../config.ts';
import { nextTicks } from '../cron.ts';
import type { Sql } from '../db.ts';
import { calendarOf, TIMEFRAMES, type AssetClass } from '../analytics/timeframes.ts';
import { enrichmentStatus } from '../analytics/data-quality.ts';
import {
  cancelBackfill,
  createBackfill,
  describeBackfill,
  planBackfill,
  resumeBackfill,
  SYMBOL_PATTERN,
  type BackfillEnqueuer,
  type BackfillPlan,
} from '../enrichment/backfills.ts';
import { sessionsBehind } from '../enrichment/series-step.ts';
import { BadInputError } from '../errors.ts';
import type { JobDefinition } from '../job-definition.ts';
import type { Logger } from '../logger.ts';
import { loadBackfill, type BackfillStatus } from '../queries/enrichment.ts';
import { parseBasicAuthorization } from './auth.ts';
import { wrapAsync } from './error-handler.ts';

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

const num = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value));
const round = (value: number | null, places: number): number | null => (value === null ? null : Math.round(value * 10 ** places) / 10 ** places);
const iso = (value: Date | null | undefined): string | null => (value ? value.toISOString() : null);

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
  const sources = [query, (body ?? {}) as Record<string, unknown>];
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
 * enrichment queue has a rate limit (ENRICHMENT_RATE_MAX per window, 5/min for polygon by
 * default), at least one window share per chunk, since every chunk is one rate-limited step.
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
// Reads (SQL used by the API and `bullpen backfill status`)

export interface BackfillListItem {
  backfill_id: string;
  status: BackfillStatus;
  symbols: string[];
  timeframes: string[];
  asset_class: string;
  from: string;
  to: string;
  source: string;
  requested_by: string;
  chunks_total: number;
  chunks_done: number;
  chunks_failed: number;
  progress_pct: number;
  bars_written: number;
  created_at: string;
  finished_at: string | null;
}

/** Recent backfill requests, newest first, with their progress. */
export async function listBackfills(db: Sql, options: { status?: BackfillStatus; limit: number }): Promise<BackfillListItem[]> {
  const rows = await db<
    {
      backfill_id: string;
      status: BackfillStatus;
      symbols: string[];
      timeframes: string[];
      asset_class: string;
      from: string;
      to: string;
      source: string;
      requested_by: string;
      chunks_total: number;
      chunks_done: number;
      chunks_failed: number;
      bars_written: string;
      created_at: Date;
      finished_at: Date | null;
    }[]
  >`
    select b.backfill_id::text, b.status, b.symbols, b.timeframes, b.asset_class, b.from_date::text as from, b.to_date::text as to,
      b.source, b.requested_by, b.created_at, b.finished_at,
      coalesce(sum(jsonb_array_length(s.chunks)), 0)::int as chunks_total,
      coalesce(sum(s.chunks_done + s.chunks_skipped + s.chunks_failed), 0)::int as chunks_done,
      coalesce(sum(s.chunks_failed), 0)::int as chunks_failed,
      coalesce(sum(s.bars_written), 0)::text as bars_written
    from enrichment.backfills b
    left join enrichment.backfill_state s on s.backfill_job_id = b.backfill_id
    where ${options.status ?? null}::text is null or b.status = ${options.status ?? null}::text
    group by b.backfill_id
    order by b.created_at desc, b.backfill_id
    limit ${options.limit}`;
  return rows.map((r) => ({
    backfill_id: r.backfill_id,
    status: r.status,
    symbols: r.symbols,
    timeframes: r.timeframes,
    asset_class: r.asset_class,
    from: r.from,
    to: r.to,
    source: r.source,
    requested_by: r.requested_by,
    chunks_total: r.chunks_total,
    chunks_done: r.chunks_done,
    chunks_failed: r.chunks_failed,
    progress_pct: r.chunks_total === 0 ? 100 : Math.round((r.chunks_done / r.chunks_total) * 1000) / 10,
    bars_written: Number(r.bars_written),
    created_at: r.created_at.toISOString(),
    finished_at: iso(r.finished_at),
  }));
}

/** GET /api/v1/enrichment/status/:symbol: the status is derived now, from the stored facts and the clock. */
export async function loadEnrichmentStatus(db: Sql, symbol: string, options: { now: number; nextEnrichment: string | null }): Promise<Record<string, unknown>> {
  const [row] = await db<
    {
      asset_class: AssetClass;
      status: string;
      last_enrichment_time: Date | null;
      latest_bar_ts: Date | null;
      records_available: string;
      timeframes_available: string[];
      error_message: string | null;
    }[]
  >`
    select asset_class, status, last_enrichment_time, latest_bar_ts, records_available::text, timeframes_available, error_message
    from enrichment.status where symbol = ${symbol}`;
  const timestamp = new Date(options.now).toISOString();
  if (!row) {
    const [mapped] = await db<{ asset_class: string }[]>`select asset_class from market.sector_mapping where symbol = ${symbol}`;
    return {
      symbol,
      asset_class: mapped?.asset_class ?? null,
      status: 'not_enriched',
      last_enrichment_time: null,
      data_age_seconds: null,
      records_available: 0,
      quality_score: null,
      validation_rate: null,
      timeframes_available: [],
      next_enrichment: options.nextEnrichment,
      error_message: null,
      timestamp,
    };
  }
  const [quality] = await db<{ quality_score: number | null; validation_rate: number | null }[]>`
    select avg(q.avg_quality_score)::float8 as quality_score, avg(q.validation_rate)::float8 as validation_rate
    from enrichment.data_quality_metrics q
    where q.symbol = ${symbol}
      and q.metric_date > (select max(metric_date) from enrichment.data_quality_metrics where symbol = ${symbol}) - 7`;
  const qualityScore = round(quality?.quality_score ?? null, 2);
  const latest = row.latest_bar_ts?.getTime() ?? null;
  const status = enrichmentStatus({
    failed: row.status === 'error',
    qualityScore,
    sessionsBehind: latest === null ? null : sessionsBehind(latest, options.now, calendarOf(row.asset_class)),
  });
  return {
    symbol,
    asset_class: row.asset_class,
    status,
    last_enrichment_time: iso(row.last_enrichment_time),
    data_age_seconds: latest === null ? null : Math.max(0, Math.round((options.now - latest) / 1000)),
    records_available: Number(row.records_available),
    quality_score: qualityScore,
    validation_rate: round(quality?.validation_rate ?? null, 2),
    timeframes_available: row.timeframes_available,
    next_enrichment: options.nextEnrichment,
    error_message: row.error_message,
    timestamp,
  };
}

const rateOf = (successful: number, total: number): number | null => (total === 0 ? null : round((successful / total) * 100, 2));

/** GET /api/v1/enrichment/metrics. */
export async function loadEnrichmentMetrics(db: Sql, now: number): Promise<Record<string, unknown>> {
  const at = new Date(now);
  const [fetches] = await db<{ total: number; successful: number; avg_ms: number | null; quota: number | null }[]>`
    select count(*)::int as total, count(*) filter (where success)::int as successful, avg(source_response_time_ms)::float8 as avg_ms,
      (select api_quota_remaining from enrichment.fetch_log
        where created_at > ${at}::timestamptz - interval '24 hours' and api_quota_remaining is not null
        order by created_at desc, id desc limit 1) as quota
    from enrichment.fetch_log where created_at > ${at}::timestamptz - interval '24 hours'`;
  const [computes] = await db<{ total: number; successful: number; avg_ms: number | null }[]>`
    select count(*)::int as total, count(*) filter (where success)::int as successful, avg(computation_time_ms)::float8 as avg_ms
    from enrichment.compute_log where created_at > ${at}::timestamptz - interval '24 hours'`;
  const [quality] = await db<{ symbols: number; validation_rate: number | null; quality_score: number | null }[]>`
    select (select count(*)::int from enrichment.status) as symbols,
      avg(validation_rate)::float8 as validation_rate, avg(avg_quality_score)::float8 as quality_score
    from enrichment.data_quality_metrics
    where metric_date > (${at}::timestamptz at time zone 'America/New_York')::date - 7`;
  const counts = await db<{ status: BackfillStatus; n: number }[]>`select status, count(*)::int as n from enrichment.backfills group by status`;
  const count = (status: BackfillStatus) => counts.find((c) => c.status === status)?.n ?? 0;
  return {
    fetch_pipeline: {
      total_fetches: fetches?.total ?? 0,
      successful: fetches?.successful ?? 0,
      success_rate: rateOf(fetches?.successful ?? 0, fetches?.total ?? 0),
      avg_response_time_ms: round(fetches?.avg_ms ?? null, 0),
      api_quota_remaining: fetches?.quota ?? null,
    },
    compute_pipeline: {
      total_computations: computes?.total ?? 0,
      successful: computes?.successful ?? 0,
      success_rate: rateOf(computes?.successful ?? 0, computes?.total ?? 0),
      avg_computation_time_ms: round(computes?.avg_ms ?? null, 0),
    },
    data_quality: {
      symbols_tracked: quality?.symbols ?? 0,
      avg_validation_rate: round(quality?.validation_rate ?? null, 2),
      avg_quality_score: round(quality?.quality_score ?? null, 2),
    },
    backfill_progress: {
      // A cancelling request is still running: its series stop at their next chunk boundary.
      in_progress: count('in_progress') + count('cancelling'),
      completed: count('completed'),
      failed: count('failed'),
      pending: count('queued'),
      cancelled: count('cancelled'),
    },
    timestamp: at.toISOString(),
  };
}

/** GET /api/v1/data/quality/:symbol: the `days` days ending at the symbol's newest metric date, summed over timeframes per day. */
export async function loadQualityReport(db: Sql, symbol: string, days: number, now: number): Promise<Record<string, unknown>> {
  const [{ latest } = { latest: null }] = await db<{ latest: string | null }[]>`
    select max(metric_date)::text as latest from enrichment.data_quality_metrics where symbol = ${symbol}`;
  const daily = latest
    ? await db<
        {
          date: string;
          total_records: number;
          validated_records: number;
          validation_rate: number;
          gaps_detected: number;
          anomalies_detected: number;
          avg_quality_score: number;
          data_completeness: number;
        }[]
      >`
        select metric_date::text as date, sum(total_records)::int as total_records, sum(validated_records)::int as validated_records,
          avg(validation_rate)::float8 as validation_rate, sum(gaps_detected)::int as gaps_detected,
          sum(anomalies_detected)::int as anomalies_detected, avg(avg_quality_score)::float8 as avg_quality_score,
          avg(data_completeness)::float8 as data_completeness
        from enrichment.data_quality_metrics
        where symbol = ${symbol} and metric_date > ${latest}::date - ${days}::int
        group by metric_date order by metric_date desc`
    : [];
  const [summary] = latest
    ? await db<{ validation_rate: number | null; quality_score: number | null; gaps: number; anomalies: number }[]>`
        select avg(validation_rate)::float8 as validation_rate, avg(avg_quality_score)::float8 as quality_score,
          coalesce(sum(gaps_detected), 0)::int as gaps, coalesce(sum(anomalies_detected), 0)::int as anomalies
        from enrichment.data_quality_metrics
        where symbol = ${symbol} and metric_date > ${latest}::date - ${days}::int`
    : [];
  const logs = await db<
    {
      source: string;
      timeframe: string;
      records_fetched: number;
      records_inserted: number;
      response_time_ms: number | null;
      success: boolean;
      error: string | null;
      created_at: Date;
    }[]
  >`
    select source, timeframe, records_fetched, records_inserted, source_response_time_ms as response_time_ms, success, error, created_at
    from enrichment.fetch_log where symbol = ${symbol}
    order by created_at desc, id desc limit 10`;
  return {
    symbol,
    period_days: days,
    period_end: latest,
    summary: {
      avg_validation_rate: round(summary?.validation_rate ?? null, 2),
      avg_quality_score: round(summary?.quality_score ?? null, 2),
      total_gaps_detected: summary?.gaps ?? 0,
      total_anomalies: summary?.anomalies ?? 0,
    },
    daily_metrics: daily.map((d) => ({
      date: d.date,
      total_records: d.total_records,
      validated_records: d.validated_records,
      validation_rate: round(d.validation_rate, 2),
      gaps_detected: d.gaps_detected,
      anomalies_detected: d.anomalies_detected,
      avg_quality_score: round(d.avg_quality_score, 2),
      data_completeness: round(d.data_completeness, 2),
    })),
    recent_fetch_logs: logs.map((l) => ({
      source: l.source,
      timeframe: l.timeframe,
      records_fetched: l.records_fetched,
      records_inserted: l.records_inserted,
      response_time_ms: num(l.response_time_ms),
      success: l.success,
      error: l.error,
      timestamp: l.created_at.toISOString(),
    })),
    timestamp: new Date(now).toISOString(),
  };
}

// ---------------------------------------------------------------------------------------------
// Router

function parseDays(raw: unknown): number {
  if (raw === undefined) return 7;
  const days = typeof raw === 'string' && /^\d{1,3}$/.test(raw) ? Number(raw) : NaN;
  if (!(days >= 1 && days <= 365)) throw new BadInputError(`days: must be a whole number from 1 to 365 (got ${JSON.stringify(raw)})`);
  return days;
}

function parseLimit(raw: unknown): number {
  if (raw === undefined) return 20;
  const limit = typeof raw === 'string' && /^\d{1,3}$/.test(raw) ? Number(raw) : NaN;
  if (!(limit >= 1 && limit <= 500)) throw new BadInputError(`limit: must be a whole number from 1 to 500 (got ${JSON.stringify(raw)})`);
  return limit;
}

function parseStatusFilter(raw: unknown): BackfillStatus | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string' || !(BACKFILL_STATUSES as readonly string[]).includes(raw)) {
    throw new BadInputError(`status: must be one of ${BACKFILL_STATUSES.join(', ')} (got ${JSON.stringify(raw)})`);
  }
  return raw as BackfillStatus;
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
      const plan = planBackfill({ ...input, requested_by: requesterOf(req) }, { defaultSource: deps.config.marketDataSource, maxBars: deps.config.enrichmentMaxBars, now: at });
      assertSourceConfigured(plan.source, deps.config);
      const created = await createBackfill({ db: deps.db, enqueue: enqueuer() }, plan);
      deps.logger.info({ backfillId: created.backfillId, symbols: plan.symbols.length, timeframes: plan.timeframes, from: plan.from, to: plan.to }, 'backfill requested over HTTP');
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
        estimated_duration_seconds: estimateDurationSeconds(plan, deps.config.enrichmentRateLimit),
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
  router.use((thrown: unknown, req: Request, res: Response, next: NextFunction) => {
    const status =
      thrown instanceof BadInputError
        ? 400
        : thrown instanceof NotFoundError
          ? 404
          : thrown instanceof ConflictError
            ? 409
            : thrown instanceof UnavailableError
              ? 503
              : undefined;
    if (status === undefined || res.headersSent) {
      next(thrown);
      return;
    }
    const detail = (thrown as Error).message;
    deps.logger.warn({ method: req.method, path: req.originalUrl.split('?')[0], status, detail }, 'enrichment request rejected');
    res.status(status).json({ detail });
  });
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
