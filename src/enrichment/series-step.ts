/**
 * One step of a backfill series (one symbol × timeframe of a request): take the next chunk,
 * skip it when the ledger says it is done, else fetch → validate → features → quality →
 * store, all of the chunk committed with the checkpoint in one transaction. A step handles at
 * most one fetched chunk, so other work interleaves, cancellation takes effect at the next chunk
 * boundary, and a deploy waits for one chunk at most. Each fetch first takes a request from its
 * source's gate (src/enrichment/source-gate.ts): a source's budget or 429 puts off only the series
 * of that source, never the queue.
 */
import { validateBars } from '../analytics/bar-validation.ts';
import { dailyQuality, enrichmentStatus } from '../analytics/data-quality.ts';
import { computeFeatures, createFeatureState, type FeatureState } from '../analytics/features.ts';
import {
  calendarOf,
  dayNumberOf,
  dayNumberOfIsoDate,
  isoDateOfDayNumber,
  isSessionDay,
  mondayOf,
  sessionCloseMs,
  utcMsOfLocal,
  type AssetClass,
  type ChunkSpan,
  type MarketCalendar,
  type Timeframe,
} from '../analytics/timeframes.ts';
import type { Bar } from '../analytics/bars.ts';
import type { Sql } from '../db.ts';
import { classifyError, coerceError, RateLimitedError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { markPositionsOf } from '../rollups.ts';
import {
  cancelSeries,
  finishSeries,
  loadBackfill,
  loadBarsBefore,
  loadBarsFrom,
  loadLedger,
  loadSeriesState,
  markBackfillStarted,
  needsFetch,
  recordChunkFailed,
  recordChunkSkipped,
  recordRetry,
  replaceFeatures,
  skippedThrough,
  writeChunk,
  insertFetchLog,
  type BackfillRow,
  type SeriesStateRow,
} from '../queries/enrichment.ts';
import type { FetchResult, MarketDataProvider, ProviderName } from './providers/types.ts';
import type { SourceGate } from './source-gate.ts';

/** Stored bars replayed to rebuild a feature state: enough for every window, and for the EMA/Wilder recursions to forget their seed (0.96^1000 ≈ 1e-18). */
export const WARMUP_BARS = 1000;
const DAY_MS = 86_400_000;
/**
 * The shortest pause a 429 gives its source. A Retry-After of 0, or an HTTP date already past,
 * would otherwise send every series of the source straight back to a provider still refusing.
 */
export const MIN_RATE_LIMIT_WAIT_MS = 1000;
/**
 * The longest a series waiting for its source is put off in one go: one whose place is further
 * off asks again meanwhile (keeping its place), so a cancel reaches it within this.
 */
export const MAX_WAIT_STEP_MS = 60_000;
/** The pause of a 429 that did not say how long to wait: providers' limits are per minute. */
const DEFAULT_RATE_LIMIT_WAIT_MS = 60_000;

export interface StepDeps {
  db: Sql;
  provider: (name: ProviderName) => MarketDataProvider;
  logger: Logger;
  /** Fetch retries inside a step and their first delay. */
  retries: number;
  retryBaseMs: number;
  /** EXCHANGE_TZ: the dates of the positions a 1d chunk's bars mark. */
  exchangeTz: string;
  now?: () => number;
  signal?: AbortSignal;
  /** Told of every chunk handled, for the backfill chunk counter. */
  onChunk?: (outcome: 'stored' | 'skipped' | 'failed') => void;
  /** The sources' budgets and 429 pauses (createSourceGate). Unset: every fetch goes at once. */
  gate?: SourceGate;
  /**
   * Told the first date of positions a 1d chunk's bars marked: the stored reports from that date
   * on showed them unmarked (enrichment-backfill asks for them again).
   */
  onPositionsMarked?: (from: string) => Promise<void>;
}

export type StepOutcome =
  | { kind: 'more'; chunksHandled: number; chunksTotal: number; barsWritten: number }
  | { kind: 'done'; status: 'completed' | 'failed' | 'cancelled'; summary: Record<string, unknown> }
  /** The source's budget is spent or it answered 429: this series waits this long, the rest of the queue goes on. */
  | { kind: 'wait'; delayMs: number };

export interface SeriesKey {
  backfillId: string;
  symbol: string;
  timeframe: Timeframe;
}

function summaryOf(state: SeriesStateRow, status: string): Record<string, unknown> {
  return {
    backfillId: state.backfill_job_id,
    symbol: state.symbol,
    timeframe: state.timeframe,
    status,
    chunks: state.chunks.length,
    chunksDone: state.chunks_done,
    chunksSkipped: state.chunks_skipped,
    chunksFailed: state.chunks_failed,
    barsWritten: Number(state.bars_written),
    barsRejected: Number(state.bars_rejected),
    lastSuccessfulDate: state.last_successful_date,
    ...(state.error_message ? { lastError: state.error_message } : {}),
  };
}

/** How long a source is paused after a 429 asking for `retryAfterMs`: at least MIN_RATE_LIMIT_WAIT_MS, a minute when unsaid. */
export function rateLimitWaitMs(retryAfterMs: number | undefined): number {
  if (retryAfterMs === undefined || !Number.isFinite(retryAfterMs)) return DEFAULT_RATE_LIMIT_WAIT_MS;
  return Math.max(MIN_RATE_LIMIT_WAIT_MS, Math.ceil(retryAfterMs));
}

/**
 * The last market-local day (a day number) whose session, and every session before it, had
 * closed at `now`. Days without a session right after it count too, since nothing can change
 * them: on a Friday evening a stock's week is over through Sunday. A coin's day closes at midnight.
 */
export function lastClosedDay(now: number, calendar: MarketCalendar): number {
  const today = dayNumberOf(now, calendar);
  const close = sessionCloseMs(today, calendar);
  let day = close !== null && now < close ? today - 1 : today;
  for (let n = 0; n < 7 && !isSessionDay(day + 1, calendar); n++) day++;
  return day;
}

/**
 * The last date a chunk fetched through `to` at instant `fetchedAt` holds for good, for the
 * ledger: a day whose session had not closed (today, mid-session) gave partial bars and must be
 * fetched again. A 1w bar sits on its Monday but aggregates its whole week, days after `to`
 * included, so a week not over at the fetch is not covered from its Monday on; otherwise the
 * chunk holding that Monday would be skipped and the bar keep its partial close for good.
 * May be before the chunk's start: then nothing of it is covered.
 */
export function coveredThrough(to: string, timeframe: Timeframe, calendar: MarketCalendar, fetchedAt: number): string {
  const closed = lastClosedDay(fetchedAt, calendar);
  let covered = Math.min(dayNumberOfIsoDate(to), closed);
  if (timeframe === '1w') {
    const monday = mondayOf(covered);
    if (closed < monday + 6) covered = monday - 1;
  }
  return isoDateOfDayNumber(covered);
}

/** The last date a chunk is fetched through: its end, or the request's last date. */
export function fetchEnd(chunk: ChunkSpan, backfill: Pick<BackfillRow, 'to_date'>): string {
  return chunk.end < backfill.to_date ? chunk.end : backfill.to_date;
}

export async function runSeriesStep(deps: StepDeps, key: SeriesKey): Promise<StepOutcome> {
  const { db } = deps;
  const log = deps.logger.child({ backfillId: key.backfillId, symbol: key.symbol, timeframe: key.timeframe });
  await markBackfillStarted(db, key.backfillId);

  for (;;) {
    // Read at every chunk boundary: a cancel shows up in its status.
    const backfill = await loadBackfill(db, key.backfillId);
    if (!backfill) throw new Error(`backfill ${key.backfillId} does not exist`);
    const state = await loadSeriesState(db, key.backfillId, key.symbol, key.timeframe);
    if (!state) throw new Error(`backfill ${key.backfillId} has no series ${key.symbol} ${key.timeframe}`);
    if (backfill.status === 'cancelling' || backfill.status === 'cancelled') {
      await cancelSeries(db, state.id);
      // A place it held in its source's line would stay empty until its instant passed.
      await deps.gate?.release(backfill.source as ProviderName, takerOf(key));
      log.info({ next: state.next_chunk }, 'cancelled at a chunk boundary');
      return { kind: 'done', status: 'cancelled', summary: summaryOf(state, 'cancelled') };
    }
    if (state.next_chunk >= state.chunks.length) {
      const last = state.chunks[state.chunks.length - 1];
      if (last && state.feature_state) await refreshFollowingFeatures(deps, log, state, dayNumberOfIsoDate(fetchEnd(last, backfill)) + 1);
      const status = await finishSeries(db, state.id);
      const finished = { ...state, status };
      log.info(summaryOf(finished, status), `series ${status}`);
      return { kind: 'done', status, summary: summaryOf(finished, status) };
    }
    deps.signal?.throwIfAborted();

    const chunk = state.chunks[state.next_chunk] as ChunkSpan;
    const to = fetchEnd(chunk, backfill);
    const ledger = await loadLedger(db, state.symbol, state.timeframe, chunk.start);
    if (!needsFetch(ledger, to, backfill.reprocess, backfill.source)) {
      // Stored before the chunk this series just wrote: its features were computed without it.
      if (state.feature_state) await refreshFollowingFeatures(deps, log, state, dayNumberOfIsoDate(chunk.start));
      await recordChunkSkipped(db, state, skippedThrough(ledger, to));
      deps.onChunk?.('skipped');
      continue;
    }
    const result = await processChunk(deps, log, backfill, state, chunk, to);
    if (result) return result;
    const after = await loadSeriesState(db, key.backfillId, key.symbol, key.timeframe);
    if (!after || after.next_chunk < after.chunks.length) {
      return {
        kind: 'more',
        chunksHandled: after?.next_chunk ?? 0,
        chunksTotal: after?.chunks.length ?? 0,
        barsWritten: Number(after?.bars_written ?? 0),
      };
    }
  }
}

/** Waits `ms`, or less when `signal` aborts; not at all when it already has (its abort event has fired). */
async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** Fetch with in-step retries; returns the result, or a StepOutcome that ends the step. */
async function fetchChunk(
  deps: StepDeps,
  log: Logger,
  backfill: BackfillRow,
  state: SeriesStateRow,
  chunk: ChunkSpan,
  to: string,
): Promise<FetchResult | StepOutcome | 'failed'> {
  const source = backfill.source as ProviderName;
  const provider = deps.provider(source);
  const taker = takerOf({ backfillId: backfill.backfill_id, symbol: state.symbol, timeframe: state.timeframe as Timeframe });
  const base = { symbol: state.symbol, timeframe: state.timeframe, source: backfill.source, backfillId: backfill.backfill_id, chunk: { start: chunk.start, end: to } };
  for (let attempt = 0; ; attempt++) {
    const wait = await takeRequest(deps, source, taker, attempt);
    if (wait > 0) {
      log.debug({ waitMs: wait }, 'the source cannot take a request now: the series waits for its place');
      return { kind: 'wait', delayMs: waitDelayMs(wait) };
    }
    const started = performance.now();
    try {
      return await provider.fetchBars({
        symbol: state.symbol,
        assetClass: state.asset_class as AssetClass,
        timeframe: state.timeframe as Timeframe,
        from: chunk.start,
        to,
        signal: deps.signal,
      });
    } catch (thrown) {
      // The worker is shutting down: the fetch was cut short, the source did not fail. Nothing
      // is recorded (no failed fetch, retry or error), and the job goes back on its queue.
      if (deps.signal?.aborted) throw deps.signal.reason;
      const error = coerceError(thrown);
      const entry = { ...base, fetched: 0, inserted: 0, requests: 1, success: false, responseTimeMs: performance.now() - started, quotaRemaining: null, error: error.message };
      if (error instanceof RateLimitedError) {
        await insertFetchLog(deps.db, entry);
        const pauseMs = rateLimitWaitMs(error.retryAfterMs);
        await deps.gate?.pause(source, pauseMs);
        log.warn({ retryAfterMs: error.retryAfterMs, pauseMs }, "provider rate limit: the source's series wait");
        return { kind: 'wait', delayMs: waitDelayMs(pauseMs) };
      }
      if (classifyError(error) === 'permanent') {
        await recordChunkFailed(deps.db, state, chunk, backfill.source, entry);
        deps.onChunk?.('failed');
        log.error({ err: error, chunk: chunk.start }, 'chunk failed: the source sent what cannot be used; the series goes on');
        return 'failed';
      }
      await insertFetchLog(deps.db, entry);
      await recordRetry(deps.db, state.id, error.message);
      if (attempt >= deps.retries) throw error;
      const delay = Math.round(deps.retryBaseMs * 2 ** attempt * (0.5 + Math.random() / 2));
      log.warn({ err: error, attempt: attempt + 1, delayMs: delay }, 'chunk fetch failed: retrying');
      await sleep(delay, deps.signal);
      deps.signal?.throwIfAborted();
    }
  }
}

/**
 * The most a waiting series is put off past the instant it waits for. A place in a budget is its
 * own already; this spreads the series a pause alone holds (a source without a budget), which
 * all wait for the same instant.
 */
const WAIT_SPREAD_MS = 250;

/** How long the job of a series told to wait `waitMs` is put off: at most MAX_WAIT_STEP_MS, plus a little spread. */
export function waitDelayMs(waitMs: number, random: () => number = Math.random): number {
  return Math.min(waitMs, MAX_WAIT_STEP_MS) + Math.floor(random() * Math.min(WAIT_SPREAD_MS, waitMs));
}

/** Who a series is in its source's line: its partition, `<backfill>.<symbol>.<timeframe>`. */
export function takerOf(key: SeriesKey): string {
  return `${key.backfillId}.${key.symbol}.${key.timeframe}`;
}

/**
 * A request from the source's gate for a fetch: 0 once taken, or how long the step should put
 * the series off. A retry (attempt > 0) waits here instead, as it waits for its backoff: put off,
 * the step would start the chunk over with its retries unspent, so a source failing every fetch
 * would be asked again and again without the job ever failing. It waits for its own place, so
 * it asks once more, when that comes.
 */
async function takeRequest(deps: StepDeps, source: ProviderName, taker: string, attempt: number): Promise<number> {
  if (!deps.gate) return 0;
  for (;;) {
    const wait = await deps.gate.take(source, taker);
    if (wait === 0 || attempt === 0) return wait;
    await sleep(wait, deps.signal);
    deps.signal?.throwIfAborted();
  }
}

/**
 * Bars stored from market-local day `fromDay` on, right after a chunk this series wrote (a later range filled
 * first, or chunks stored while this one had failed), had their features computed without it.
 * Those of the first WARMUP_BARS of them are recomputed from a state warmed on the bars before
 * them, which now include it; later bars no longer depend on it (every window is shorter, and
 * the recursions have forgotten their seed). Bars are read under the series' write lock, so a
 * concurrent backfill of the series cannot change them before their features are written.
 * Idempotent: a series re-run after a crash here does it again.
 */
async function refreshFollowingFeatures(deps: StepDeps, log: Logger, state: SeriesStateRow, fromDay: number): Promise<void> {
  const timeframe = state.timeframe as Timeframe;
  const calendar = calendarOf(state.asset_class as AssetClass);
  const fromTs = utcMsOfLocal(fromDay * DAY_MS, calendar);
  const replaced = await replaceFeatures(deps.db, state.symbol, state.timeframe, async (tx) => {
    const following = await loadBarsFrom(tx, state.symbol, state.timeframe, fromTs, WARMUP_BARS);
    const first = following[0];
    if (!first) return [];
    const warmed = await warmFeatureState(tx, state, timeframe, calendar, first.ts);
    return computeFeatures(following, dayNumbers(following, calendar), timeframe, warmed).rows;
  });
  if (replaced > 0) log.info({ bars: replaced, from: new Date(fromTs).toISOString() }, 'features of stored bars after a written chunk recomputed with it');
}

/** The feature state rebuilt from the stored bars of the series before `beforeTs`. */
async function warmFeatureState(sql: Sql, state: SeriesStateRow, timeframe: Timeframe, calendar: MarketCalendar, beforeTs: number): Promise<FeatureState> {
  const history = await loadBarsBefore(sql, state.symbol, state.timeframe, beforeTs, WARMUP_BARS);
  if (history.length === 0) return createFeatureState();
  return computeFeatures(history, dayNumbers(history, calendar), timeframe, createFeatureState()).state;
}

function dayNumbers(bars: readonly Bar[], calendar: MarketCalendar): Int32Array {
  const days = new Int32Array(bars.length);
  for (let i = 0; i < bars.length; i++) days[i] = dayNumberOf((bars[i] as Bar).ts, calendar);
  return days;
}

/**
 * The newest instant a series' bars hold, for the symbol's status (stored as latest_bar_ts, the
 * instant sessionsBehind counts from): the newest bar's open, on the day whose session it holds,
 * except a 1w bar's. That one opens on its Monday but sums every session of its week up to
 * `currentAt` (when the data was current): counted from its open, a week fetched on Friday
 * evening would be four sessions behind, "stale" though as current as weekly data can be.
 */
export function latestDataTs(latestOpen: number, timeframe: Timeframe, calendar: MarketCalendar, currentAt: number): number {
  if (timeframe !== '1w') return latestOpen;
  const weekEnd = utcMsOfLocal((dayNumberOf(latestOpen, calendar) + 7) * DAY_MS, calendar) - 1;
  return Math.max(latestOpen, Math.min(weekEnd, currentAt));
}

/** Completed sessions after the day of `ts` up to `now` (the seed's "days old", counted in sessions). */
export function sessionsBehind(latestTs: number, now: number, calendar: MarketCalendar): number {
  const latestDay = dayNumberOf(latestTs, calendar);
  const today = dayNumberOf(now, calendar);
  let behind = 0;
  for (let day = latestDay + 1; day < today && behind <= 30; day++) if (isSessionDay(day, calendar)) behind++;
  // Today's session counts once it has closed (an early close included; a 24x7 day closes at midnight, i.e. tomorrow).
  const close = today > latestDay ? sessionCloseMs(today, calendar) : null;
  if (close !== null && now >= close) behind++;
  return behind;
}

/**
 * Marks the symbol's positions that had no close over the chunk's dates (src/rollups.ts
 * markPositionsOf), and tells onPositionsMarked from which date. The bars are stored whatever
 * happens here: a failure is logged, and a range restatement of those dates marks them (and
 * asks for their reports again).
 */
async function markPositionsAt(deps: StepDeps, log: Logger, symbol: string, from: string, to: string): Promise<void> {
  let marked;
  try {
    marked = await markPositionsOf(deps.db, deps.exchangeTz, { symbol, from, to });
  } catch (error) {
    log.warn({ err: error, from, to }, 'could not mark positions at the bars stored; a rollups restatement of these dates marks them');
    return;
  }
  if (marked.from === null) return;
  log.info({ from, to, marked: marked.rows, firstMarked: marked.from }, 'positions marked at the bars stored');
  try {
    await deps.onPositionsMarked?.(marked.from);
  } catch (error) {
    log.warn({ err: error, firstMarked: marked.from }, `could not ask for the stored reports from ${marked.from} on again; a rollups restatement from that date does`);
  }
}

async function processChunk(
  deps: StepDeps,
  log: Logger,
  backfill: BackfillRow,
  state: SeriesStateRow,
  chunk: ChunkSpan,
  to: string,
): Promise<StepOutcome | null> {
  const timeframe = state.timeframe as Timeframe;
  const calendar = calendarOf(state.asset_class as AssetClass);
  // Taken before the fetch: a session that closed while it ran may have reached the source too late for it.
  const fetchStartedAt = deps.now?.() ?? Date.now();
  const fetched = await fetchChunk(deps, log, backfill, state, chunk, to);
  if (fetched === 'failed') return null;
  if ('kind' in fetched) return fetched;
  const fetchedAt = deps.now?.() ?? Date.now();
  // A source running late (a delayed-data plan) had the market only up to its delay before the
  // fetch: a session that closed within it is in the bars partly, and neither final nor fresh.
  const dataAsOf = fetched.dataDelayMs === undefined ? Infinity : fetchStartedAt - fetched.dataDelayMs;
  const currentAt = Math.min(fetchedAt, dataAsOf);

  const computeStarted = performance.now();
  const { valid, rejects } = validateBars(fetched.bars, { timeframe, calendar, from: chunk.start, to });
  const chunkStartTs = utcMsOfLocal(dayNumberOfIsoDate(chunk.start) * DAY_MS, calendar);
  // The state carried from the series' previous chunk, or rebuilt from stored bars when it carries none.
  const initial = state.feature_state ?? (await warmFeatureState(deps.db, state, timeframe, calendar, chunkStartTs));
  const { rows, state: featureState } = computeFeatures(valid, dayNumbers(valid, calendar), timeframe, initial);
  const quality = dailyQuality({ timeframe, calendar, from: chunk.start, to, valid, features: rows, rejects, fetchedAt: currentAt });
  const computeMs = performance.now() - computeStarted;
  const scored = quality.filter((q) => q.totalRecords > 0);
  const meanScore = scored.length > 0 ? scored.reduce((sum, q) => sum + q.qualityScore, 0) / scored.length : null;
  const latest = valid.length > 0 ? latestDataTs((valid[valid.length - 1] as Bar).ts, timeframe, calendar, currentAt) : null;
  const status = enrichmentStatus({ failed: false, qualityScore: meanScore, sessionsBehind: latest === null ? null : sessionsBehind(latest, fetchedAt, calendar) });
  const covered = coveredThrough(to, timeframe, calendar, Math.min(fetchStartedAt, dataAsOf));

  if (rejects.length > 0) {
    const reasons: Record<string, number> = {};
    for (const r of rejects) reasons[r.reason] = (reasons[r.reason] ?? 0) + 1;
    log.warn({ chunk: chunk.start, rejected: rejects.length, reasons, first: { ...rejects[0], bar: rejects[0]?.bar } }, 'bars rejected by validation (kept in enrichment.bar_rejects)');
  }
  const result = await writeChunk(deps.db, {
    state,
    chunk,
    fetchedTo: to,
    coveredTo: covered >= chunk.start ? covered : null,
    latestTs: latest,
    replaceRange: { fromTs: chunkStartTs, untilTs: utcMsOfLocal((dayNumberOfIsoDate(to) + 1) * DAY_MS, calendar) },
    source: backfill.source,
    reprocess: backfill.reprocess,
    valid,
    features: rows,
    rejects,
    quality,
    featureState,
    computeMs,
    status,
    fetchLog: {
      symbol: state.symbol,
      timeframe: state.timeframe,
      source: backfill.source,
      backfillId: backfill.backfill_id,
      chunk: { start: chunk.start, end: to },
      fetched: fetched.bars.length,
      inserted: valid.length,
      requests: fetched.requests,
      success: true,
      responseTimeMs: fetched.responseTimeMs,
      quotaRemaining: fetched.quotaRemaining,
      error: null,
    },
  });
  if (result.superseded) {
    log.warn({ chunk: chunk.start }, 'chunk handled meanwhile by another run of this series (a stalled job re-run): nothing written');
    return null;
  }
  deps.onChunk?.(result.written ? 'stored' : 'skipped');
  if (result.written && timeframe === '1d' && valid.length > 0) await markPositionsAt(deps, log, state.symbol, chunk.start, to);
  log.debug({ chunk: chunk.start, to, ...result, rejected: rejects.length, dates: `${chunk.start}..${isoDateOfDayNumber(dayNumberOfIsoDate(to))}` }, result.written ? 'chunk stored' : 'chunk completed meanwhile by another request: skipped');
  return null;
}
