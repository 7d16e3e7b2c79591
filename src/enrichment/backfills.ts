/**
 * Backfill requests: parsing and checking what was asked (the CLI, the REST API and the daily
 * job all come through here), planning chunks, recording the request, and putting it on the
 * queue as a flow (one child per symbol × timeframe, a parent that closes the request once
 * they have all finished). Also resume, cancel and the progress report.
 */
import crypto from 'node:crypto';
import type { FlowProducer, DefaultJobOptions } from 'bullmq';
import { z } from 'zod';
import { assertIsoDate, tradingDaysBetween } from '../analytics/calendar.ts';
import {
  ASSET_CLASSES,
  TIMEFRAMES,
  calendarOf,
  dayNumberOf,
  expectedBarOpens,
  isoDateOfDayNumber,
  planChunks,
  type AssetClass,
  type ChunkSpan,
  type Timeframe,
} from '../analytics/timeframes.ts';
import type { Sql } from '../db.ts';
import { enqueueFlow } from '../enqueue.ts';
import { BadInputError, describeZodError } from '../errors.ts';
import { someNames } from '../text.ts';
import type { JobContext, JobDefinition } from '../job-definition.ts';
import {
  deleteBackfill,
  insertBackfill,
  loadAssetClassRecords,
  loadBackfill,
  loadSeriesStates,
  seriesKey,
  setBackfillJob,
  type AssetClassRecords,
  type BackfillRow,
  type Reprocess,
  type SeriesProgressRow,
  type SeriesStateRow,
} from '../queries/enrichment.ts';
import { PROVIDER_NAMES, type ProviderName } from './providers/types.ts';
import { fetchEnd } from './series-step.ts';

export const SYMBOL_PATTERN = /^[A-Z0-9][A-Z0-9.-]{0,19}$/;
export const BACKFILL_JOB = 'enrichment-backfill';

const listOf = <T extends z.ZodType>(item: T) =>
  z.preprocess((value) => (typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value), z.array(item));

/** What a caller may ask for. Strings or arrays for the lists (the seed passes `timeframes` repeated or comma-separated). */
export const backfillRequestSchema = z.object({
  symbols: listOf(
    z
      .string()
      .transform((s) => s.trim().toUpperCase())
      .pipe(z.string().regex(SYMBOL_PATTERN, 'must be 1–20 letters, digits, "." or "-", starting with a letter or digit')),
  ).pipe(z.array(z.string()).min(1, 'at least one symbol').max(5000, 'at most 5000 symbols')),
  timeframes: listOf(z.enum(TIMEFRAMES, { error: (issue) => `unknown timeframe ${JSON.stringify(issue.input)}; valid: ${TIMEFRAMES.join(', ')}` }))
    .pipe(z.array(z.enum(TIMEFRAMES)).min(1, 'at least one timeframe'))
    .default(['1d']),
  /** Unset: each symbol as bullpen tracks it (see resolveAssetClass), else a stock. */
  asset_class: z.enum(ASSET_CLASSES, { error: `must be one of ${ASSET_CLASSES.join(', ')}` }).optional(),
  from: z.iso.date({ error: 'must be a date YYYY-MM-DD' }).optional(),
  to: z.iso.date({ error: 'must be a date YYYY-MM-DD' }).optional(),
  source: z.enum(PROVIDER_NAMES, { error: `must be one of ${PROVIDER_NAMES.join(', ')}` }).optional(),
  reprocess: z.enum(['missing', 'failed', 'all'], { error: 'must be one of missing, failed, all' }).default('missing'),
  requested_by: z.string().trim().min(1).max(100).default('api'),
});
export type BackfillRequestInput = z.input<typeof backfillRequestSchema>;

export interface BackfillPlan {
  symbols: { symbol: string; assetClass: AssetClass }[];
  timeframes: Timeframe[];
  /** The class asked for; else the one every symbol has; else stock (each series has its own). */
  assetClass: AssetClass;
  from: string;
  to: string;
  source: ProviderName;
  reprocess: Reprocess;
  requestedBy: string;
  /** Chunk plan per series, keyed by `seriesKey(symbol, timeframe)`. */
  chunks: Map<string, ChunkSpan[]>;
  chunksTotal: number;
  estimatedBars: number;
  /** An asset_class asked for that contradicts what bullpen tracks of some symbols: planned as asked, said here. */
  warnings: string[];
}

/** A symbol's asset class as bullpen's records have it, and the record that says so (for messages). */
export interface TrackedAssetClass {
  assetClass: AssetClass;
  trackedIn: string;
}

export interface PlanOptions {
  defaultSource: ProviderName;
  maxBars: number;
  /** Epoch ms; "today" for the default and the upper clamp of `to`. */
  now: number;
  /**
   * Per-symbol asset classes as bullpen tracks them (loadTrackedAssetClasses; a bare class is
   * market.sector_mapping's). They apply when the request asks for no asset_class; one it asks
   * for wins, with a warning where it contradicts them. Symbols without one are stocks.
   */
  assetClasses?: ReadonlyMap<string, AssetClass | TrackedAssetClass>;
  /** Per-symbol first dates, later than `from` (the daily job: the day after each symbol's newest bar). */
  startBySymbol?: ReadonlyMap<string, string>;
}


/** Bars one session of a timeframe has, roughly (weekly bars spread over five sessions). */
function barsPerSession(timeframe: Timeframe, assetClass: AssetClass): number {
  const calendar = calendarOf(assetClass);
  if (timeframe === '1w') return 0.2;
  // 2024-01-03: an ordinary Wednesday session.
  return expectedBarOpens(19725, timeframe, calendar).length;
}

/** The same date a calendar year earlier (29 February: the 28th). Pure. */
export function yearBefore(date: string): string {
  const [year, month, day] = date.split('-');
  const previous = String(Number(year) - 1).padStart(4, '0');
  return month === '02' && day === '29' ? `${previous}-02-28` : `${previous}-${month}-${day}`;
}

/** Parses and checks a request; a problem is a BadInputError naming the field. Pure apart from the clock in options. */
export function planBackfill(input: unknown, options: PlanOptions): BackfillPlan {
  const r = parseRequest(input);
  const uniqueSymbols = [...new Set(r.symbols)];
  const tracked = (symbol: string): TrackedAssetClass | undefined => {
    const known = options.assetClasses?.get(symbol);
    return typeof known === 'string' ? { assetClass: known, trackedIn: 'market.sector_mapping' } : known;
  };
  const symbols = uniqueSymbols.map((symbol) => ({ symbol, assetClass: r.asset_class ?? tracked(symbol)?.assetClass ?? 'stock' }));
  const shared = new Set(symbols.map((s) => s.assetClass));
  const assetClass: AssetClass = r.asset_class ?? (shared.size === 1 ? (symbols[0]?.assetClass ?? 'stock') : 'stock');
  const warnings = r.asset_class === undefined ? [] : contradictions(r.asset_class, uniqueSymbols, tracked);
  const today = isoDateOfDayNumber(dayNumberOf(options.now, calendarOf(assetClass)));
  const to = r.to ?? today;
  assertIsoDate(to);
  const from = r.from ?? yearBefore(to);
  assertIsoDate(from);
  if (from > to) throw new BadInputError(`from: ${from} is after to ${to}`);
  if (from < '1970-01-01') throw new BadInputError(`from: ${from} is before 1970-01-01`);
  if (from > today) throw new BadInputError(`from: ${from} is in the future (today is ${today})`);
  const clampedTo = to > today ? today : to;
  const timeframes = [...new Set(r.timeframes)];
  const chunks = new Map<string, ChunkSpan[]>();
  for (const { symbol } of symbols) {
    const start = options.startBySymbol?.get(symbol);
    const first = start && start > from ? start : from;
    for (const tf of timeframes) chunks.set(seriesKey(symbol, tf), first > clampedTo ? [] : planChunks(first, clampedTo, tf));
  }
  // Chunks fetch whole grid cells (from the cell's first day), so that is what is counted.
  const sessionsFrom = new Map<string, number>();
  const spanOf = (start: string, crypto: boolean) => {
    const key = `${start}${crypto}`;
    let n = sessionsFrom.get(key);
    if (n === undefined) {
      n = crypto ? Math.round((Date.parse(clampedTo) - Date.parse(start)) / 86_400_000) + 1 : tradingDaysBetween(start, clampedTo).length;
      sessionsFrom.set(key, n);
    }
    return n;
  };
  let estimatedBars = 0;
  for (const { symbol, assetClass } of symbols) {
    for (const tf of timeframes) {
      const first = chunks.get(seriesKey(symbol, tf))?.[0];
      if (first) estimatedBars += barsPerSession(tf, assetClass) * spanOf(first.start, assetClass === 'crypto');
    }
  }
  estimatedBars = Math.round(estimatedBars);
  if (estimatedBars > options.maxBars) {
    throw new BadInputError(
      `range too large: about ${estimatedBars.toLocaleString('en-US')} bars (${symbols.length} symbols × ${timeframes.join('+')} × ${from}..${clampedTo}, in whole chunks); at most ${options.maxBars.toLocaleString('en-US')} per request (ENRICHMENT_MAX_BARS): split it`,
    );
  }
  const chunksTotal = [...chunks.values()].reduce((sum, list) => sum + list.length, 0);
  return {
    symbols,
    timeframes,
    assetClass,
    from,
    to: clampedTo,
    source: r.source ?? options.defaultSource,
    reprocess: r.reprocess,
    requestedBy: r.requested_by,
    chunks,
    chunksTotal,
    estimatedBars,
    warnings,
  };
}

function parseRequest(input: unknown): z.output<typeof backfillRequestSchema> {
  const parsed = backfillRequestSchema.safeParse(input);
  if (!parsed.success) throw new BadInputError(describeZodError(parsed.error), { cause: parsed.error });
  return parsed.data;
}

/** Most symbols a warning names before it counts the rest. */
const WARNING_SYMBOLS = 10;

/**
 * One warning per class the records hold against the one asked for: "asked for as stock, but
 * bullpen tracks BTCUSD as crypto (…)". A warning, not a refusal: the records can be wrong (a
 * reused ticker, a universe member added with the default class), and asking explicitly is how
 * a user overrides them.
 */
function contradictions(asked: AssetClass, symbols: readonly string[], tracked: (symbol: string) => TrackedAssetClass | undefined): string[] {
  const byClass = new Map<AssetClass, { symbols: string[]; records: Set<string> }>();
  for (const symbol of symbols) {
    const known = tracked(symbol);
    if (!known || known.assetClass === asked) continue;
    let group = byClass.get(known.assetClass);
    if (!group) byClass.set(known.assetClass, (group = { symbols: [], records: new Set() }));
    group.symbols.push(symbol);
    group.records.add(known.trackedIn);
  }
  return [...byClass].map(([assetClass, group]) => {
    const named = someNames(group.symbols, WARNING_SYMBOLS);
    return (
      `asked for as ${asked}, but bullpen tracks ${named} as ${assetClass} (${[...group.records].join(', ')}): planned as ${asked} as asked; ` +
      'without an asset class each symbol is planned as bullpen tracks it'
    );
  });
}

/** An instrument type of the trading system as an asset class; undefined for one that is none of them (an option, a future). */
function assetClassOfInstrumentType(type: string | null): AssetClass | undefined {
  const t = type?.trim().toLowerCase() ?? '';
  if (t.startsWith('crypto')) return 'crypto';
  if (t.startsWith('etf')) return 'etf';
  if (t.startsWith('stock') || t.startsWith('equity')) return 'stock';
  return undefined;
}

const isAssetClass = (value: string | null | undefined): value is AssetClass => (ASSET_CLASSES as readonly (string | null | undefined)[]).includes(value);

/**
 * A symbol's asset class from bullpen's records, or undefined when none knows it. The records
 * people keep come first: the universe (market.sector_mapping) and the trading system's
 * instrument (warehouse.dim_instrument); a coin by either is a coin, as the rollups read its
 * closes (src/queries/rollups.ts roundTheClockSymbols), since a 24x7 series planned on NYSE
 * sessions loses its nights and weekends. Otherwise the universe's class, then the instrument's.
 * Only a symbol neither knows takes the class it was last enriched as (enrichment.status): that
 * one follows requests, so a single mistaken asset_class would otherwise stick to it for good.
 */
export function resolveAssetClass(records: Pick<AssetClassRecords, 'universe' | 'instrument_type' | 'enriched'>): TrackedAssetClass | undefined {
  const curated: TrackedAssetClass[] = [];
  if (isAssetClass(records.universe)) curated.push({ assetClass: records.universe, trackedIn: 'market.sector_mapping' });
  const instrument = assetClassOfInstrumentType(records.instrument_type);
  if (instrument) curated.push({ assetClass: instrument, trackedIn: 'warehouse.dim_instrument' });
  const known = curated.find((c) => c.assetClass === 'crypto') ?? curated[0];
  if (known) return known;
  return isAssetClass(records.enriched) ? { assetClass: records.enriched, trackedIn: 'enrichment.status' } : undefined;
}

/** The asset class bullpen tracks for each of `symbols` that any record knows. */
export async function loadTrackedAssetClasses(db: Sql, symbols: readonly string[]): Promise<Map<string, TrackedAssetClass>> {
  const tracked = new Map<string, TrackedAssetClass>();
  for (const records of await loadAssetClassRecords(db, symbols)) {
    const known = resolveAssetClass(records);
    if (known) tracked.set(records.symbol, known);
  }
  return tracked;
}

/**
 * The plan of a request whose symbols' tracked classes are not known yet (`bullpen backfill`
 * checks its input before the database is open): refused only when no asset class would accept
 * it, with the error planning it as stocks gives. A class decides what it accepts: a coin's
 * today is the UTC date, a day ahead of New York's from 00:00 UTC to New York's midnight, and a
 * stock has fewer bars to count against the limit. planTrackedBackfill makes the real plan.
 */
export function precheckBackfill(input: unknown, options: Omit<PlanOptions, 'assetClasses'>): BackfillPlan {
  const { symbols } = parseRequest(input);
  let refused: unknown;
  for (const assetClass of ASSET_CLASSES) {
    try {
      return planBackfill(input, { ...options, assetClasses: new Map(symbols.map((symbol) => [symbol, assetClass])) });
    } catch (error) {
      if (!(error instanceof BadInputError)) throw error;
      refused ??= error;
    }
  }
  throw refused;
}

/**
 * planBackfill for a request from a user (the CLI, the API): the symbols' asset classes come
 * from what bullpen tracks of them (loadTrackedAssetClasses) unless the request asks for one.
 */
export async function planTrackedBackfill(db: Sql, input: unknown, options: Omit<PlanOptions, 'assetClasses'>): Promise<BackfillPlan> {
  const symbols = [...new Set(parseRequest(input).symbols)];
  return planBackfill(input, { ...options, assetClasses: await loadTrackedAssetClasses(db, symbols) });
}

/** Puts a backfill's parent and children on the queue (JobContext.enqueueFlow, or `createFlowEnqueuer`). */
export type BackfillEnqueuer = (
  parent: Record<string, unknown>,
  children: readonly Record<string, unknown>[],
  options: { force?: boolean },
) => Promise<{ jobId: string }>;

export interface QueueDeps {
  db: Sql;
  enqueue: BackfillEnqueuer;
}

/** The enqueuer of a job that asks for a backfill (enrichment-daily, refresh-rs), through its context. */
export function createContextEnqueuer(enqueueFlow: JobContext<unknown>['enqueueFlow']): BackfillEnqueuer {
  const node = (payload: Record<string, unknown>) => ({ job: BACKFILL_JOB, payload });
  return (parent, children, options) => enqueueFlow(node(parent), children.map(node), options);
}

/** The enqueuer of a process holding a FlowProducer (the web server, the CLI). */
export function createFlowEnqueuer(flows: FlowProducer, definition: JobDefinition, jobOptions: DefaultJobOptions): BackfillEnqueuer {
  return (parent, children, options) =>
    enqueueFlow(flows, { definition, data: parent }, children.map((data) => ({ definition, data })), { force: options.force, jobOptions });
}

export interface CreatedBackfill {
  backfillId: string;
  jobId: string;
  plan: BackfillPlan;
}

function seriesPayloads(backfillId: string, series: readonly { symbol: string; timeframe: string }[]): { backfillId: string; symbol: string; timeframe: string }[] {
  return series.map((s) => ({ backfillId, symbol: s.symbol, timeframe: s.timeframe }));
}

/** Records a planned request and queues its flow; a request whose flow could not be queued is not kept. */
export async function createBackfill(deps: QueueDeps, plan: BackfillPlan): Promise<CreatedBackfill> {
  const backfillId = crypto.randomUUID();
  await insertBackfill(deps.db, {
    backfillId,
    symbols: plan.symbols,
    timeframes: plan.timeframes,
    assetClass: plan.assetClass,
    from: plan.from,
    to: plan.to,
    source: plan.source,
    reprocess: plan.reprocess,
    requestedBy: plan.requestedBy,
    chunks: plan.chunks,
  });
  const series = plan.symbols.flatMap(({ symbol }) => plan.timeframes.map((timeframe) => ({ symbol, timeframe })));
  let flow: { jobId: string };
  try {
    flow = await deps.enqueue({ backfillId }, seriesPayloads(backfillId, series), {});
  } catch (error) {
    // Not queued: the request would stay 'queued' for good with nothing to run it, and a caller
    // retried after this error (enrichment-daily, refresh-rs waiting on its request) would find it.
    await deleteBackfill(deps.db, backfillId);
    throw error;
  }
  await setBackfillJob(deps.db, backfillId, flow.jobId);
  return { backfillId, jobId: flow.jobId, plan };
}

/**
 * Queues the unfinished series of a stopped request again; they continue from their checkpoints.
 * Checked and claimed under the request's row lock: of two resumes at once, the second finds it
 * queued and is refused. Two flows would race for the same series, and the parent of the one
 * losing them would mark the series failed mid-run.
 */
export async function resumeBackfill(deps: QueueDeps, backfillId: string): Promise<{ jobId: string; series: number }> {
  const claimed = await deps.db.begin(async (tx) => {
    const [backfill] = await tx<{ status: BackfillRow['status'] }[]>`select status from enrichment.backfills where backfill_id = ${backfillId} for update`;
    if (!backfill) throw new BadInputError(`backfill ${backfillId} does not exist`);
    if (backfill.status === 'queued' || backfill.status === 'in_progress' || backfill.status === 'cancelling') {
      throw new BadInputError(`backfill ${backfillId} is ${backfill.status}: cancel it first, or let it finish`);
    }
    const states = await loadSeriesStates(tx as unknown as Sql, backfillId);
    const unfinished = states.filter((s) => s.status !== 'completed' && !(s.status === 'failed' && s.next_chunk >= s.chunks.length));
    if (unfinished.length === 0) throw new BadInputError(`backfill ${backfillId} has nothing left to run (failed chunks are fetched again by a new request with reprocess "failed")`);
    // Each series starts over with the error of its failed chunk, if any (a hole this run does
    // not fill, so it will fail for it again): the one its job failed of, or a retry's, is history
    // (ops.job_runs, enrichment.fetch_log) and must not stand as this run's.
    await tx`
      update enrichment.backfill_state set status = 'pending', error_message = chunk_error, updated_at = now()
      where backfill_job_id = ${backfillId} and id = any(${unfinished.map((s) => s.id)}::bigint[])`;
    // job_id cleared: the previous flow's parent, should it run again (a retry in Bull Board), no longer closes the request.
    await tx`
      update enrichment.backfills set status = 'queued', resumes = resumes + 1, finished_at = null, error = null, job_id = null, updated_at = now()
      where backfill_id = ${backfillId}`;
    return { previous: backfill.status, unfinished };
  });
  let flow: { jobId: string };
  try {
    flow = await deps.enqueue({ backfillId }, seriesPayloads(backfillId, claimed.unfinished), { force: true });
  } catch (error) {
    // Nothing was queued: leave the request stopped as it was, so it can be resumed again.
    await deps.db`
      update enrichment.backfills set status = ${claimed.previous}, finished_at = now(), updated_at = now()
      where backfill_id = ${backfillId} and status = 'queued'`;
    throw error;
  }
  await setBackfillJob(deps.db, backfillId, flow.jobId);
  return { jobId: flow.jobId, series: claimed.unfinished.length };
}

/** Asks a request to stop: each series stops at its next chunk boundary, keeping its state. */
export async function cancelBackfill(db: Sql, backfillId: string): Promise<BackfillRow['status']> {
  const backfill = await loadBackfill(db, backfillId);
  if (!backfill) throw new BadInputError(`backfill ${backfillId} does not exist`);
  if (backfill.status !== 'queued' && backfill.status !== 'in_progress') {
    throw new BadInputError(`backfill ${backfillId} is ${backfill.status}: only a queued or running backfill can be cancelled`);
  }
  await db`update enrichment.backfills set status = 'cancelling', updated_at = now() where backfill_id = ${backfillId} and status in ('queued', 'in_progress')`;
  return 'cancelling';
}

/**
 * The parent's work: once every series has ended, the request's own status. `parentJobId` is the
 * parent's own job id: a parent of a flow the request no longer runs (an earlier flow's, run again
 * after a resume) changes nothing, since the current flow's series may still be running.
 */
export async function finishBackfill(db: Sql, backfillId: string, parentJobId?: string): Promise<{ status: BackfillRow['status']; summary: Record<string, unknown> }> {
  return db.begin(async (tx) => {
    const [backfill] = await tx<{ status: BackfillRow['status']; job_id: string | null }[]>`
      select status, job_id from enrichment.backfills where backfill_id = ${backfillId} for update`;
    if (!backfill) throw new BadInputError(`backfill ${backfillId} does not exist`);
    if (parentJobId !== undefined && backfill.job_id !== null && backfill.job_id !== parentJobId) {
      return { status: backfill.status, summary: { backfillId, status: backfill.status, superseded: true, currentJobId: backfill.job_id } };
    }
    // A series whose job failed for good never reached its end: it failed.
    await tx`
      update enrichment.backfill_state set status = case when ${backfill.status} = 'cancelling' then 'cancelled' else 'failed' end,
        error_message = coalesce(error_message, 'its job failed before the last chunk'), updated_at = now()
      where backfill_job_id = ${backfillId} and status in ('pending', 'in_progress')`;
    const states = await loadSeriesStates(tx as unknown as Sql, backfillId);
    const failed = states.filter((s) => s.status === 'failed');
    const cancelled = states.some((s) => s.status === 'cancelled') || backfill.status === 'cancelling';
    const status: BackfillRow['status'] = cancelled ? 'cancelled' : failed.length > 0 ? 'failed' : 'completed';
    const error = failed.length > 0 ? failed.map((s) => `${s.symbol} ${s.timeframe}: ${s.error_message ?? 'failed'}`).join('; ').slice(0, 2000) : null;
    await tx`
      update enrichment.backfills set status = ${status}, error = ${error}, finished_at = now(), updated_at = now()
      where backfill_id = ${backfillId}`;
    const progress = progressOf(states);
    return { status, summary: { backfillId, status, ...progress, seriesFailed: failed.length } };
  });
}

export interface BackfillProgress {
  series: number;
  chunksTotal: number;
  /** Handled: fetched and stored, skipped as already done, or failed. */
  chunksDone: number;
  chunksFailed: number;
  chunksSkipped: number;
  barsWritten: number;
  barsRejected: number;
}

/** Chunks handled as a percentage of the plan, one decimal; 100 for an empty plan. */
export function progressPct(done: number, total: number): number {
  return total === 0 ? 100 : Math.round((done / total) * 1000) / 10;
}

/** Backfill statuses still running: a cancelling request stops at its next chunk boundary. */
const RUNNING_BACKFILL: ReadonlySet<BackfillRow['status']> = new Set(['in_progress', 'cancelling']);

/**
 * A request's pace: bars written per second of wall time since it started (until it finished),
 * and, while it runs, the seconds left at its chunk rate so far. Neither after a resume: the time
 * since the first start then includes the pause, which would understate the rate and inflate the
 * ETA by all of it. The one rule of the report and the list, so both answer the same.
 */
export function backfillPace(p: {
  startedAt: Date | null;
  finishedAt: Date | null;
  /** The clock's now, for a request still going. */
  now: Date;
  resumes: number;
  status: BackfillRow['status'];
  barsWritten: number;
  chunksDone: number;
  chunksTotal: number;
}): { barsPerSecond: number | null; etaSeconds: number | null } {
  if (p.startedAt === null || p.resumes > 0) return { barsPerSecond: null, etaSeconds: null };
  const seconds = Math.max(((p.finishedAt ?? p.now).getTime() - p.startedAt.getTime()) / 1000, 0.001);
  return {
    barsPerSecond: Math.round((p.barsWritten / seconds) * 10) / 10,
    etaSeconds: !RUNNING_BACKFILL.has(p.status) || p.chunksDone === 0 ? null : Math.round(((p.chunksTotal - p.chunksDone) * seconds) / p.chunksDone),
  };
}

export function progressOf(states: readonly SeriesProgressRow[]): BackfillProgress {
  const p: BackfillProgress = { series: states.length, chunksTotal: 0, chunksDone: 0, chunksFailed: 0, chunksSkipped: 0, barsWritten: 0, barsRejected: 0 };
  for (const s of states) {
    p.chunksTotal += s.chunks.length;
    p.chunksDone += s.chunks_done + s.chunks_skipped + s.chunks_failed;
    p.chunksFailed += s.chunks_failed;
    p.chunksSkipped += s.chunks_skipped;
    p.barsWritten += Number(s.bars_written);
    p.barsRejected += Number(s.bars_rejected);
  }
  return p;
}

export interface SeriesReport {
  symbol: string;
  timeframe: string;
  status: SeriesStateRow['status'];
  chunks_total: number;
  chunks_done: number;
  chunks_failed: number;
  last_successful_date: string | null;
  next_chunk: ChunkSpan | null;
  bars_written: number;
  retry_count: number;
  error: string | null;
}

/** What GET /api/v1/backfills/:id and `bullpen backfill status <id>` show. */
export interface BackfillReport {
  backfill_id: string;
  job_id: string | null;
  status: BackfillRow['status'];
  symbols: string[];
  timeframes: string[];
  asset_class: string;
  from: string;
  to: string;
  source: string;
  reprocess: Reprocess;
  requested_by: string;
  chunks_total: number;
  chunks_done: number;
  chunks_failed: number;
  chunks_skipped: number;
  progress_pct: number;
  bars_written: number;
  bars_rejected: number;
  bars_per_second: number | null;
  last_successful_date: string | null;
  resumes: number;
  error: string | null;
  errors: { symbol: string; timeframe: string; error: string; retry_count: number }[];
  series: SeriesReport[];
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export async function describeBackfill(db: Sql, backfillId: string): Promise<BackfillReport | undefined> {
  const backfill = await loadBackfill(db, backfillId);
  if (!backfill) return undefined;
  const states = await loadSeriesStates(db, backfillId);
  const progress = progressOf(states);
  const pace = backfillPace({
    startedAt: backfill.started_at,
    finishedAt: backfill.finished_at,
    now: new Date(),
    resumes: backfill.resumes,
    status: backfill.status,
    barsWritten: progress.barsWritten,
    chunksDone: progress.chunksDone,
    chunksTotal: progress.chunksTotal,
  });
  // The request is through the earliest date every series has reached (none until each has one).
  const lastDates = states.map((s) => s.last_successful_date);
  const through = lastDates.length > 0 && lastDates.every((d) => d !== null) ? (lastDates as string[]).sort()[0] : null;
  return {
    backfill_id: backfill.backfill_id,
    job_id: backfill.job_id,
    status: backfill.status,
    symbols: backfill.symbols,
    timeframes: backfill.timeframes,
    asset_class: backfill.asset_class,
    from: backfill.from_date,
    to: backfill.to_date,
    source: backfill.source,
    reprocess: backfill.reprocess,
    requested_by: backfill.requested_by,
    chunks_total: progress.chunksTotal,
    chunks_done: progress.chunksDone,
    chunks_failed: progress.chunksFailed,
    chunks_skipped: progress.chunksSkipped,
    progress_pct: progressPct(progress.chunksDone, progress.chunksTotal),
    bars_written: progress.barsWritten,
    bars_rejected: progress.barsRejected,
    bars_per_second: pace.barsPerSecond,
    last_successful_date: through ?? null,
    resumes: backfill.resumes,
    error: backfill.error,
    errors: states.flatMap((s) => (s.error_message ? [{ symbol: s.symbol, timeframe: s.timeframe, error: s.error_message, retry_count: s.retry_count }] : [])),
    series: states.map((s) => ({
      symbol: s.symbol,
      timeframe: s.timeframe,
      status: s.status,
      chunks_total: s.chunks.length,
      chunks_done: s.chunks_done + s.chunks_skipped + s.chunks_failed,
      chunks_failed: s.chunks_failed,
      last_successful_date: s.last_successful_date,
      next_chunk: s.chunks[s.next_chunk] ? { start: s.chunks[s.next_chunk]!.start, end: fetchEnd(s.chunks[s.next_chunk]!, backfill) } : null,
      bars_written: Number(s.bars_written),
      retry_count: s.retry_count,
      error: s.error_message,
    })),
    created_at: backfill.created_at.toISOString(),
    started_at: backfill.started_at?.toISOString() ?? null,
    finished_at: backfill.finished_at?.toISOString() ?? null,
  };
}
