/**
 * SQL of the enrichment backfills: requests, per-series state, the chunk ledger, and the one
 * transaction that stores a chunk (bars, features, quality, rejects, logs, status, checkpoint).
 */
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { Bar } from '../analytics/bars.ts';
import type { BarReject } from '../analytics/bar-validation.ts';
import type { DailyQuality } from '../analytics/data-quality.ts';
import type { FeatureRow, FeatureState } from '../analytics/features.ts';
import type { ChunkSpan } from '../analytics/timeframes.ts';
import { BinaryCopyWriter } from '../copy-binary.ts';
import { releasePlace, takeRequest, type BudgetState, type RequestBudget } from '../enrichment/request-budget.ts';
import type { Sql, TransactionSql } from 'postgres';

/** A pool or a transaction: the statements here run in either. */
type Tx = Sql | TransactionSql<Record<string, never>>;

export type BackfillStatus = 'queued' | 'in_progress' | 'completed' | 'failed' | 'cancelling' | 'cancelled';
export type Reprocess = 'missing' | 'failed' | 'all';

export interface BackfillRow {
  backfill_id: string;
  symbols: string[];
  timeframes: string[];
  asset_class: string;
  from_date: string;
  to_date: string;
  source: string;
  reprocess: Reprocess;
  requested_by: string;
  status: BackfillStatus;
  job_id: string | null;
  resumes: number;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

export type SeriesStatus = 'pending' | 'in_progress' | 'completed' | 'failed' | 'cancelled';

export interface SeriesStateRow {
  id: string;
  backfill_job_id: string;
  symbol: string;
  asset_class: string;
  timeframe: string;
  status: SeriesStatus;
  chunks: ChunkSpan[];
  next_chunk: number;
  chunks_done: number;
  chunks_skipped: number;
  chunks_failed: number;
  bars_written: string;
  bars_rejected: string;
  last_successful_date: string | null;
  feature_state: FeatureState | null;
  state_through: Date | null;
  error_message: string | null;
  retry_count: number;
  updated_at: Date;
}

export interface LedgerRow {
  status: 'completed' | 'failed';
  /** The last date whose bars are final: sessions closed when fetched (a 1w chunk: weeks over). */
  covered_to: string | null;
  /** The source that last fetched the chunk: its row says nothing of another source's bars. */
  source: string;
}

const BACKFILL_COLUMNS = `backfill_id::text, symbols, timeframes, asset_class, from_date::text, to_date::text, source, reprocess,
  requested_by, status, job_id, resumes, error, created_at, started_at, finished_at`;
const PROGRESS_COLUMNS = `id::text, backfill_job_id::text, symbol, asset_class, timeframe, status, chunks, next_chunk, chunks_done,
  chunks_skipped, chunks_failed, bars_written::text, bars_rejected::text, last_successful_date::text, state_through,
  error_message, retry_count, updated_at`;
const STATE_COLUMNS = `${PROGRESS_COLUMNS}, feature_state`;

/** A series without its feature state (a few KB of JSON each): what reports, resume and the parent need. */
export type SeriesProgressRow = Omit<SeriesStateRow, 'feature_state'>;

export async function loadBackfill(sql: Tx, backfillId: string): Promise<BackfillRow | undefined> {
  const [row] = await sql.unsafe<BackfillRow[]>(`select ${BACKFILL_COLUMNS} from enrichment.backfills where backfill_id = $1`, [backfillId]);
  return row;
}

/** Every series of a request. Without feature states: parsing them made each progress report of a large request cost seconds. */
export async function loadSeriesStates(sql: Tx, backfillId: string): Promise<SeriesProgressRow[]> {
  return sql.unsafe<SeriesProgressRow[]>(`select ${PROGRESS_COLUMNS} from enrichment.backfill_state where backfill_job_id = $1 order by symbol, timeframe`, [backfillId]);
}

export async function loadSeriesState(sql: Tx, backfillId: string, symbol: string, timeframe: string): Promise<SeriesStateRow | undefined> {
  const [row] = await sql.unsafe<SeriesStateRow[]>(
    `select ${STATE_COLUMNS} from enrichment.backfill_state where backfill_job_id = $1 and symbol = $2 and timeframe = $3`,
    [backfillId, symbol, timeframe],
  );
  return row;
}

/** The key of a series in a plan's chunk map. */
export function seriesKey(symbol: string, timeframe: string): string {
  return `${symbol}\u0000${timeframe}`;
}

export interface NewBackfill {
  backfillId: string;
  symbols: { symbol: string; assetClass: string }[];
  timeframes: string[];
  assetClass: string;
  from: string;
  to: string;
  source: string;
  reprocess: Reprocess;
  requestedBy: string;
  /** Chunk plan per series, keyed by `seriesKey`. */
  chunks: ReadonlyMap<string, ChunkSpan[]>;
}

/** Inserts a request and one state row per symbol × timeframe, in one transaction. */
export async function insertBackfill(sql: Sql, request: NewBackfill): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`
      insert into enrichment.backfills (backfill_id, symbols, timeframes, asset_class, from_date, to_date, source, reprocess, requested_by, status)
      values (${request.backfillId}, ${request.symbols.map((s) => s.symbol)}, ${request.timeframes}, ${request.assetClass}, ${request.from},
              ${request.to}, ${request.source}, ${request.reprocess}, ${request.requestedBy}, 'queued')`;
    const rows = request.symbols.flatMap(({ symbol, assetClass }) =>
      request.timeframes.map((timeframe) => ({ symbol, assetClass, timeframe, chunks: JSON.stringify(request.chunks.get(seriesKey(symbol, timeframe)) ?? []) })),
    );
    await tx`
      insert into enrichment.backfill_state (backfill_job_id, symbol, asset_class, timeframe, status, chunks)
      select ${request.backfillId}, symbol, asset_class, timeframe, 'pending', chunks::jsonb
      from unnest(${rows.map((r) => r.symbol)}::text[], ${rows.map((r) => r.assetClass)}::text[], ${rows.map((r) => r.timeframe)}::text[],
                  ${rows.map((r) => r.chunks)}::text[]) as t(symbol, asset_class, timeframe, chunks)`;
  });
}

/** What bullpen's records say of a symbol's asset class; null where a record does not have it. */
export interface AssetClassRecords {
  symbol: string;
  /** market.sector_mapping: the universe (RS and the daily enrichment). */
  universe: string | null;
  /** warehouse.dim_instrument's current instrument_type (the trading system's word: 'crypto_spot', 'etf', …). */
  instrument_type: string | null;
  /** enrichment.status: the class the symbol was last enriched as. */
  enriched: string | null;
}

export async function loadAssetClassRecords(sql: Tx, symbols: readonly string[]): Promise<AssetClassRecords[]> {
  if (symbols.length === 0) return [];
  return sql<AssetClassRecords[]>`
    select s.symbol, m.asset_class as universe, i.instrument_type, st.asset_class as enriched
    from unnest(${symbols as string[]}::text[]) as s(symbol)
    left join market.sector_mapping m on m.symbol = s.symbol
    left join enrichment.status st on st.symbol = s.symbol
    -- Instruments sharing a symbol (listings on several venues): a crypto one speaks for the symbol,
    -- as the rollups read it (src/queries/rollups.ts roundTheClockSymbols).
    left join lateral (
      select d.instrument_type from warehouse.dim_instrument d
      where d.symbol = s.symbol and d.is_current and d.instrument_type is not null
      order by lower(d.instrument_type) like 'crypto%' desc, d.instrument_id
      limit 1
    ) i on true`;
}

/** Removes a request and its series (a request whose flow could not be queued). */
export async function deleteBackfill(sql: Sql, backfillId: string): Promise<void> {
  await sql`delete from enrichment.backfills where backfill_id = ${backfillId}`;
}

export async function setBackfillJob(sql: Sql, backfillId: string, jobId: string): Promise<void> {
  await sql`update enrichment.backfills set job_id = ${jobId}, updated_at = now() where backfill_id = ${backfillId}`;
}

/** The first step of any child moves the request from queued to in_progress. */
export async function markBackfillStarted(sql: Sql, backfillId: string): Promise<void> {
  await sql`
    update enrichment.backfills set status = 'in_progress', started_at = coalesce(started_at, now()), updated_at = now()
    where backfill_id = ${backfillId} and status = 'queued'`;
}

export async function loadLedger(sql: Tx, symbol: string, timeframe: string, chunkStart: string): Promise<LedgerRow | undefined> {
  const [row] = await sql<LedgerRow[]>`
    select status, covered_to::text, source from enrichment.chunks where symbol = ${symbol} and timeframe = ${timeframe} and chunk_start = ${chunkStart}`;
  return row;
}

/**
 * Whether a chunk needs fetching through `to` from `source` under a reprocess rule (Airflow's
 * backfill behaviours). A row another source wrote counts as nothing: the fetch replaces its bars.
 */
export function needsFetch(ledger: LedgerRow | undefined, to: string, reprocess: Reprocess, source: string): boolean {
  if (reprocess === 'all' || !ledger || ledger.source !== source) return true;
  if (ledger.status === 'completed') return ledger.covered_to === null || ledger.covered_to < to;
  return reprocess === 'failed';
}

/**
 * The last date a skipped chunk's stored bars make good for the series, fetched through `to`: all
 * of it when the ledger has it complete (needsFetch then found it covered through `to`), none for
 * a failed chunk passed over (reprocess `missing` leaves those be): its bars are not there.
 */
export function skippedThrough(ledger: LedgerRow | undefined, to: string): string | null {
  return ledger?.status === 'completed' ? to : null;
}

/**
 * A chunk already done elsewhere: the series moves past it, and its feature state must be rebuilt from stored bars.
 * Only from the chunk the caller read: another run of the series (a stalled job re-run while its first holder still
 * runs) may have moved on, and advancing again would pass over a chunk nobody fetched. Its stored bars count as the
 * series' own (`through`, see skippedThrough): a request for data all there is done through its last date.
 */
export async function recordChunkSkipped(sql: Tx, state: Pick<SeriesStateRow, 'id' | 'next_chunk'>, through: string | null): Promise<void> {
  // The chunk is handled: an error of a fetch of it that failed is over (see writeChunk).
  await sql`
    update enrichment.backfill_state set next_chunk = next_chunk + 1, chunks_skipped = chunks_skipped + 1, feature_state = null,
      state_through = null, last_successful_date = greatest(last_successful_date, ${through}::date), error_message = chunk_error,
      status = 'in_progress', updated_at = now()
    where id = ${state.id} and next_chunk = ${state.next_chunk}`;
}

export async function recordRetry(sql: Sql, stateId: string, error: string): Promise<void> {
  await sql`
    update enrichment.backfill_state set retry_count = retry_count + 1, error_message = ${error}, status = 'in_progress', updated_at = now()
    where id = ${stateId}`;
}

/**
 * The error a step of a series ended with (one its job may retry, or fail on): the report of
 * the request (GET /backfills/:id) then says why a series whose job failed for good did not end.
 */
export async function recordSeriesError(sql: Sql, backfillId: string, symbol: string, timeframe: string, error: string): Promise<void> {
  await sql`
    update enrichment.backfill_state set error_message = ${error}, updated_at = now()
    where backfill_job_id = ${backfillId} and symbol = ${symbol} and timeframe = ${timeframe}`;
}

interface BudgetRow {
  grants: number[];
  places: Record<string, number>;
  paused_until: number | null;
  now: number;
}

/**
 * Runs `decide` on a provider's budget row (src/enrichment/request-budget.ts) under its row lock,
 * on PostgreSQL's clock (the one clock every worker process shares), and stores the state it
 * returns when that is a new one.
 */
async function withBudget<T>(sql: Sql, provider: string, decide: (state: BudgetState, now: number) => { state: BudgetState; result: T }): Promise<T> {
  let decided: { result: T } | undefined;
  await sql.begin(async (tx) => {
    await tx`insert into enrichment.provider_budget (provider) values (${provider}) on conflict (provider) do nothing`;
    const [row] = await tx<BudgetRow[]>`
      select array(select (extract(epoch from g) * 1000)::float8 from unnest(grants) g order by g) as grants, places,
        (extract(epoch from paused_until) * 1000)::float8 as paused_until,
        (extract(epoch from clock_timestamp()) * 1000)::float8 as now
      from enrichment.provider_budget where provider = ${provider} for update`;
    if (!row) throw new Error(`enrichment.provider_budget has no row for ${provider}`);
    const before: BudgetState = { grants: row.grants, places: row.places, pausedUntil: row.paused_until };
    const { state, result } = decide(before, row.now);
    if (state !== before) {
      await tx`
        update enrichment.provider_budget set
          grants = array(select to_timestamp(ms / 1000.0) from unnest(${[...state.grants]}::float8[]) as ms order by ms),
          places = ${tx.json(state.places)}
        where provider = ${provider}`;
    }
    decided = { result };
  });
  return (decided as { result: T }).result;
}

/**
 * Takes one request for `taker` (a series) from a provider's budget, shared by every worker
 * process (takeRequest in src/enrichment/request-budget.ts): 0 when granted, else the
 * milliseconds until the taker's own place in the window, which it keeps when it asks again
 * before then. Without a budget (null) only the provider's pause after a 429 holds it.
 */
export async function takeProviderRequest(sql: Sql, provider: string, budget: RequestBudget | null, taker: string): Promise<number> {
  return withBudget(sql, provider, (state, now) => {
    const taken = takeRequest(state, now, budget, taker);
    return { state: taken.state, result: taken.waitMs };
  });
}

/** Gives up `taker`'s place in a provider's budget, if it holds one (its series was cancelled). */
export async function releaseProviderPlace(sql: Sql, provider: string, taker: string): Promise<void> {
  await withBudget(sql, provider, (state) => ({ state: releasePlace(state, taker), result: undefined }));
}

/**
 * The provider answered 429: no fetch from it, by any series in any worker process, for `ms`
 * (a later end already set stands). The other providers are not held.
 */
export async function pauseProvider(sql: Sql, provider: string, ms: number): Promise<void> {
  await sql`
    insert into enrichment.provider_budget as b (provider, paused_until) values (${provider}, clock_timestamp() + make_interval(secs => ${ms / 1000}))
    on conflict (provider) do update set paused_until = greatest(b.paused_until, excluded.paused_until)`;
}

export interface FetchLogEntry {
  symbol: string;
  timeframe: string;
  source: string;
  backfillId: string;
  chunk: ChunkSpan;
  fetched: number;
  inserted: number;
  requests: number;
  success: boolean;
  responseTimeMs: number | null;
  quotaRemaining: number | null;
  error: string | null;
}

export async function insertFetchLog(sql: Tx, e: FetchLogEntry): Promise<void> {
  await sql`
    insert into enrichment.fetch_log (symbol, timeframe, source, backfill_job_id, chunk_start, chunk_end, records_fetched, records_inserted,
      requests, success, source_response_time_ms, api_quota_remaining, error)
    values (${e.symbol}, ${e.timeframe}, ${e.source}, ${e.backfillId}, ${e.chunk.start}, ${e.chunk.end}, ${e.fetched}, ${e.inserted},
      ${e.requests}, ${e.success}, ${e.responseTimeMs === null ? null : Math.round(e.responseTimeMs)}, ${e.quotaRemaining}, ${e.error})`;
}

/** A chunk that cannot succeed (the source sent garbage): logged, marked failed, and the series goes on. */
export async function recordChunkFailed(sql: Sql, state: SeriesStateRow, chunk: ChunkSpan, source: string, log: FetchLogEntry): Promise<void> {
  await sql.begin(async (tx) => {
    // Another run of the series already handled this chunk (see recordChunkSkipped): record nothing.
    const advanced = await tx`
      update enrichment.backfill_state set next_chunk = next_chunk + 1, chunks_failed = chunks_failed + 1, feature_state = null,
        state_through = null, error_message = ${log.error}, chunk_error = ${log.error}, status = 'in_progress', updated_at = now()
      where id = ${state.id} and next_chunk = ${state.next_chunk}
      returning id`;
    if (advanced.length === 0) return;
    await insertFetchLog(tx, log);
    const failed = await tx`
      insert into enrichment.chunks (symbol, timeframe, chunk_start, chunk_end, status, covered_to, source, backfill_job_id, error)
      values (${state.symbol}, ${state.timeframe}, ${chunk.start}, ${chunk.end}, 'failed', null, ${source}, ${state.backfill_job_id}, ${log.error})
      on conflict (symbol, timeframe, chunk_start) do update set status = 'failed', source = excluded.source,
        backfill_job_id = excluded.backfill_job_id, error = excluded.error, updated_at = now()
      -- A chunk once complete stays complete: a failed refetch does not unmake stored bars.
      where enrichment.chunks.status <> 'completed'
      returning 1`;
    // The symbol is in error while a chunk of it is failed (writeChunk keeps it so). A complete
    // chunk refetched in vain is no hole: marked in error, nothing would clear it, since
    // `--reprocess failed` finds no failed chunk to fetch.
    if (failed.length === 0) return;
    await tx`
      insert into enrichment.status (symbol, asset_class, status, error_message)
      values (${state.symbol}, ${state.asset_class}, 'error', ${log.error})
      on conflict (symbol) do update set status = 'error', error_message = excluded.error_message, updated_at = now()`;
  });
}

/** Up to `limit` stored bars of a series before `beforeTs`, ascending: the history a feature state is rebuilt from. */
export async function loadBarsBefore(sql: Sql, symbol: string, timeframe: string, beforeTs: number, limit: number): Promise<Bar[]> {
  const rows = await sql<{ ts: Date; open: number; high: number; low: number; close: number; volume: number }[]>`
    select ts, open, high, low, close, volume from market.bars
    where symbol = ${symbol} and timeframe = ${timeframe} and ts < ${new Date(beforeTs)}
    order by ts desc limit ${limit}`;
  return rows.reverse().map((r) => ({ ts: r.ts.getTime(), open: r.open, high: r.high, low: r.low, close: r.close, volume: r.volume }));
}

/** Up to `limit` stored bars of a series from `fromTs` on, ascending. */
export async function loadBarsFrom(sql: Sql, symbol: string, timeframe: string, fromTs: number, limit: number): Promise<Bar[]> {
  const rows = await sql<{ ts: Date; open: number; high: number; low: number; close: number; volume: number }[]>`
    select ts, open, high, low, close, volume from market.bars
    where symbol = ${symbol} and timeframe = ${timeframe} and ts >= ${new Date(fromTs)}
    order by ts limit ${limit}`;
  return rows.map((r) => ({ ts: r.ts.getTime(), open: r.open, high: r.high, low: r.low, close: r.close, volume: r.volume }));
}

/**
 * Replaces stored features of a series with those `compute` makes, under the series' write
 * lock: what it reads through the transaction it is given (the bars) cannot change before the
 * features computed from them are written. Returns how many were replaced.
 */
export async function replaceFeatures(sql: Sql, symbol: string, timeframe: string, compute: (tx: Sql) => Promise<readonly FeatureRow[]>): Promise<number> {
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext(${`enrichment:${symbol}:${timeframe}`}))`;
    const rows = await compute(tx as unknown as Sql);
    if (rows.length === 0) return 0;
    await tx`delete from market.features where symbol = ${symbol} and timeframe = ${timeframe} and ts = any(${rows.map((r) => new Date(r.ts).toISOString())}::timestamptz[])`;
    await copyFeatures(tx, symbol, timeframe, rows);
    return rows.length;
  });
}

export interface ChunkWrite {
  state: SeriesStateRow;
  chunk: ChunkSpan;
  /** Dates fetched: the chunk, clipped to the request's last date. */
  fetchedTo: string;
  /** The ledger's covered_to: the last of those dates whose bars are final (see coveredThrough); null for none. */
  coveredTo: string | null;
  /** The newest instant the bars hold (see latestDataTs), for the symbol's latest_bar_ts; null without bars. */
  latestTs: number | null;
  /** The instants [fromTs, untilTs) the fetch covered: bars another source stored there give way to these. */
  replaceRange: { fromTs: number; untilTs: number };
  source: string;
  reprocess: Reprocess;
  valid: readonly Bar[];
  features: readonly FeatureRow[];
  rejects: readonly BarReject[];
  quality: readonly DailyQuality[];
  featureState: FeatureState;
  fetchLog: FetchLogEntry;
  computeMs: number;
  /** Status of the symbol as of this chunk. */
  status: string;
}

export interface ChunkWriteResult {
  /** False when another request completed the chunk while this one fetched it: nothing written. */
  written: boolean;
  /** True when another run of this same series handled the chunk first: nothing written, the checkpoint untouched. */
  superseded: boolean;
  inserted: number;
  replaced: number;
  corrections: number;
}

const BAR_FIELDS = ['open', 'high', 'low', 'close', 'volume'] as const;

async function copyBinary(tx: Tx, statement: string, payload: Buffer): Promise<void> {
  const target = await tx.unsafe(statement).writable();
  await pipeline(Readable.from([payload]), target);
}

function encodeBars(symbol: string, timeframe: string, source: string, bars: readonly Bar[]): Buffer {
  const w = new BinaryCopyWriter(bars.length * 96 + 64);
  for (const b of bars) {
    w.row(9).text(symbol).text(timeframe).timestamptz(b.ts).float8(b.open).float8(b.high).float8(b.low).float8(b.close).float8(b.volume).text(source);
  }
  return w.finish();
}

function encodeFeatures(symbol: string, timeframe: string, rows: readonly FeatureRow[]): Buffer {
  const w = new BinaryCopyWriter(rows.length * 200 + 64);
  for (const f of rows) {
    w.row(19)
      .text(symbol)
      .text(timeframe)
      .timestamptz(f.ts)
      .float8(f.return_1bar)
      .float8(f.return_1d)
      .float8(f.volatility_20)
      .float8(f.volatility_50)
      .float8(f.atr_14)
      .float8(f.sma_20)
      .float8(f.sma_50)
      .float8(f.ema_20)
      .float8(f.ema_50)
      .float8(f.rsi_14)
      .float8(f.volume_sma_20)
      .int2(f.trend_direction)
      .text(f.market_structure)
      .bool(f.vsa_no_demand)
      .bool(f.vsa_no_supply)
      .bool(f.vsa_stopping_volume);
  }
  return w.finish();
}

/** Exported for the bench: the raw COPY of bars it compares the whole pipeline with. */
export async function copyBars(tx: Tx, symbol: string, timeframe: string, source: string, bars: readonly Bar[]): Promise<void> {
  if (bars.length === 0) return;
  await copyBinary(tx, 'copy market.bars (symbol, timeframe, ts, open, high, low, close, volume, source) from stdin (format binary)', encodeBars(symbol, timeframe, source, bars));
}

async function copyFeatures(tx: Tx, symbol: string, timeframe: string, rows: readonly FeatureRow[]): Promise<void> {
  if (rows.length === 0) return;
  await copyBinary(
    tx,
    `copy market.features (symbol, timeframe, ts, return_1bar, return_1d, volatility_20, volatility_50, atr_14, sma_20, sma_50, ema_20, ema_50,
       rsi_14, volume_sma_20, trend_direction, market_structure, vsa_no_demand, vsa_no_supply, vsa_stopping_volume) from stdin (format binary)`,
    encodeFeatures(symbol, timeframe, rows),
  );
}

/**
 * Stores one chunk in one transaction: its bars and features (replacing stored bars at the same
 * times, recording changed values as corrections), quality rows, rejected bars, the ledger,
 * fetch and compute logs, the symbol's status, and the series checkpoint. A crash before the
 * commit leaves none of it, so a resumed series redoes the chunk from the same checkpoint.
 */
export async function writeChunk(sql: Sql, w: ChunkWrite): Promise<ChunkWriteResult> {
  const { state, chunk } = w;
  const { symbol, timeframe } = state;
  return sql.begin(async (tx) => {
    // Not waiting for the WAL flush is safe here: a chunk and its checkpoint commit together, so
    // should PostgreSQL itself crash and lose the last commits, the series resumes before them.
    await tx`set local synchronous_commit = off`;
    // One writer per series at a time; a second request waiting here sees the first one's ledger row.
    await tx`select pg_advisory_xact_lock(hashtext(${`enrichment:${symbol}:${timeframe}`}))`;
    // BullMQ re-runs a job whose lock lapsed while its first holder may still be running it: two
    // runs of this series can hold the same chunk. Under the lock, only the one whose checkpoint
    // is still current writes; the other would store the chunk twice and pass over the next one.
    const [current] = await tx<{ next_chunk: number }[]>`select next_chunk from enrichment.backfill_state where id = ${state.id} for update`;
    if (current?.next_chunk !== state.next_chunk) return { written: false, superseded: true, inserted: 0, replaced: 0, corrections: 0 };
    const ledger = w.reprocess === 'missing' ? await loadLedger(tx as Tx, symbol, timeframe, chunk.start) : undefined;
    if (w.reprocess === 'missing' && !needsFetch(ledger, w.fetchedTo, 'missing', w.source)) {
      await recordChunkSkipped(tx as Tx, state, skippedThrough(ledger, w.fetchedTo));
      return { written: false, superseded: false, inserted: 0, replaced: 0, corrections: 0 };
    }

    // A chunk holds one source's bars: those another source stored in the range fetched are
    // replaced, and kept in enrichment.data_corrections (changed values, or the bar removed).
    // Unless this source has no valid bar there: an empty answer (a ticker or range it does not
    // cover) is no evidence against the bars another source stored.
    let old: StoredBar[] = w.valid.length === 0 ? [] : await tx<StoredBar[]>`
      delete from market.bars
      where symbol = ${symbol} and timeframe = ${timeframe} and ts >= ${new Date(w.replaceRange.fromTs)} and ts < ${new Date(w.replaceRange.untilTs)}
        and source <> ${w.source}
      returning ts, open, high, low, close, volume, source`;
    if (old.length > 0) {
      await tx`delete from market.features where symbol = ${symbol} and timeframe = ${timeframe} and ts = any(${old.map((b) => b.ts.toISOString())}::timestamptz[])`;
    }
    if (w.valid.length > 0) {
      const first = w.valid[0] as Bar;
      const last = w.valid[w.valid.length - 1] as Bar;
      const [{ n }] = (await tx`
        select count(*)::int as n from market.bars
        where symbol = ${symbol} and timeframe = ${timeframe} and ts between ${new Date(first.ts)} and ${new Date(last.ts)}`) as unknown as [{ n: number }];
      if (n > 0) {
        const times = w.valid.map((b) => new Date(b.ts).toISOString());
        const sameTimes = await tx<StoredBar[]>`
          delete from market.bars where symbol = ${symbol} and timeframe = ${timeframe} and ts = any(${times}::timestamptz[])
          returning ts, open, high, low, close, volume, source`;
        old = old.concat(sameTimes);
        await tx`delete from market.features where symbol = ${symbol} and timeframe = ${timeframe} and ts = any(${times}::timestamptz[])`;
      }
    }
    const replaced = old.length;
    const corrections = await insertCorrections(tx, w, old);
    await copyBars(tx, symbol, timeframe, w.source, w.valid);
    await copyFeatures(tx, symbol, timeframe, w.features);
    await upsertQuality(tx, w);
    if (w.rejects.length > 0) {
      await tx`
        insert into enrichment.bar_rejects (symbol, timeframe, ts, reason, detail, bar, source, backfill_job_id)
        select ${symbol}, ${timeframe}, case when ts_ms is null then null else to_timestamp(ts_ms / 1000.0) end, reason, detail, bar::jsonb, ${w.source}, ${state.backfill_job_id}
        from unnest(${w.rejects.map((r) => (Number.isSafeInteger(r.bar.ts) ? r.bar.ts : null))}::float8[], ${w.rejects.map((r) => r.reason)}::text[],
                    ${w.rejects.map((r) => r.detail)}::text[], ${w.rejects.map((r) => JSON.stringify(r.bar, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)))}::text[])
          as t(ts_ms, reason, detail, bar)`;
    }
    await tx`
      insert into enrichment.chunks (symbol, timeframe, chunk_start, chunk_end, status, covered_to, source, backfill_job_id, bars_stored, bars_rejected, error)
      values (${symbol}, ${timeframe}, ${chunk.start}, ${chunk.end}, 'completed', ${w.coveredTo}, ${w.source}, ${state.backfill_job_id},
              ${w.valid.length}, ${w.rejects.length}, null)
      on conflict (symbol, timeframe, chunk_start) do update set status = 'completed', covered_to = excluded.covered_to, source = excluded.source,
        backfill_job_id = excluded.backfill_job_id, bars_stored = excluded.bars_stored, bars_rejected = excluded.bars_rejected, error = null, updated_at = now()`;
    await insertFetchLog(tx, w.fetchLog);
    await tx`
      insert into enrichment.compute_log (symbol, timeframe, backfill_job_id, chunk_start, features_computed, computation_time_ms, success)
      values (${symbol}, ${timeframe}, ${state.backfill_job_id}, ${chunk.start}, ${w.features.length}, ${Math.round(w.computeMs)}, true)`;
    const latest = w.latestTs === null ? null : new Date(w.latestTs);
    await tx`
      insert into enrichment.status as s (symbol, asset_class, status, last_enrichment_time, latest_bar_ts, records_available, timeframes_available, error_message)
      values (${symbol}, ${state.asset_class}, ${w.status}, now(), ${latest}, ${w.valid.length - replaced}, ${[timeframe]}, null)
      on conflict (symbol) do update set
        -- A chunk of any of the symbol's series that failed and was not fetched since keeps it in
        -- error, with that error: a later chunk, or another timeframe, succeeding does not fill the hole.
        (status, error_message) = (
          select case when hole then 'error' else excluded.status end, case when hole then s.error_message end
          from (select exists (select 1 from enrichment.chunks c where c.symbol = s.symbol and c.status = 'failed') as hole) h),
        asset_class = excluded.asset_class, last_enrichment_time = now(),
        latest_bar_ts = greatest(s.latest_bar_ts, excluded.latest_bar_ts), records_available = s.records_available + excluded.records_available,
        timeframes_available = (select array_agg(distinct t order by t) from unnest(s.timeframes_available || excluded.timeframes_available) t),
        updated_at = now()`;
    const through = w.valid.length > 0 ? new Date((w.valid[w.valid.length - 1] as Bar).ts) : state.state_through;
    await tx`
      update enrichment.backfill_state set next_chunk = next_chunk + 1, chunks_done = chunks_done + 1,
        bars_written = bars_written + ${w.valid.length}, bars_rejected = bars_rejected + ${w.rejects.length},
        last_successful_date = ${w.fetchedTo}, feature_state = ${tx.json(w.featureState as never)}, state_through = ${through},
        -- A failed chunk's error stays until the series ends: it is why the series will be 'failed'.
        -- Any other (a retry's, the one an earlier run of the job failed of) is over.
        error_message = chunk_error, status = 'in_progress', updated_at = now()
      where id = ${state.id}`;
    return { written: true, superseded: false, inserted: w.valid.length, replaced, corrections };
  });
}

async function upsertQuality(tx: Tx, w: ChunkWrite): Promise<void> {
  if (w.quality.length === 0) return;
  const q = w.quality;
  await tx`
    insert into enrichment.data_quality_metrics (symbol, timeframe, metric_date, total_records, validated_records, validation_rate, gaps_detected,
      anomalies_detected, avg_quality_score, data_completeness, features_rate, freshness, backfill_job_id)
    select ${w.state.symbol}, ${w.state.timeframe}, d, t, v, vr, g, a, qs, c, f, fr, ${w.state.backfill_job_id}
    from unnest(${q.map((r) => r.date)}::date[], ${q.map((r) => r.totalRecords)}::int[], ${q.map((r) => r.validatedRecords)}::int[],
                ${q.map((r) => r.validationRate)}::numeric[], ${q.map((r) => r.gapsDetected)}::int[], ${q.map((r) => r.anomaliesDetected)}::int[],
                ${q.map((r) => r.qualityScore)}::numeric[], ${q.map((r) => r.completeness)}::numeric[], ${q.map((r) => r.featuresRate)}::numeric[],
                ${q.map((r) => r.freshness)}::numeric[]) as t(d, t, v, vr, g, a, qs, c, f, fr)
    on conflict (symbol, timeframe, metric_date) do update set total_records = excluded.total_records, validated_records = excluded.validated_records,
      validation_rate = excluded.validation_rate, gaps_detected = excluded.gaps_detected, anomalies_detected = excluded.anomalies_detected,
      avg_quality_score = excluded.avg_quality_score, data_completeness = excluded.data_completeness, features_rate = excluded.features_rate,
      freshness = excluded.freshness, backfill_job_id = excluded.backfill_job_id, computed_at = now()`;
}

interface StoredBar {
  ts: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  source: string;
}

async function insertCorrections(tx: Tx, w: ChunkWrite, old: readonly StoredBar[]): Promise<number> {
  const byTs = new Map(w.valid.map((b) => [b.ts, b]));
  const ts: Date[] = [];
  const fields: string[] = [];
  const before: (string | null)[] = [];
  const after: (string | null)[] = [];
  for (const row of old) {
    const fresh = byTs.get(row.ts.getTime());
    if (!fresh) {
      // Another source's bar this source does not have: the whole bar goes, kept here as it was.
      const { ts: at, ...bar } = row;
      ts.push(at);
      fields.push('bar');
      before.push(JSON.stringify(bar));
      after.push(null);
      continue;
    }
    for (const field of BAR_FIELDS) {
      if (row[field] !== fresh[field]) {
        ts.push(row.ts);
        fields.push(field);
        before.push(String(row[field]));
        after.push(String(fresh[field]));
      }
    }
  }
  if (ts.length === 0) return 0;
  await tx`
    insert into enrichment.data_corrections (symbol, timeframe, ts, field_corrected, old_value, new_value, reason, corrected_by, backfill_job_id)
    select ${w.state.symbol}, ${w.state.timeframe}, ts, f, o, n, 'source_updated', ${`backfill ${w.state.backfill_job_id}`}, ${w.state.backfill_job_id}
    from unnest(${ts.map((d) => d.toISOString())}::timestamptz[], ${fields}::text[], ${before}::text[], ${after}::text[]) as t(ts, f, o, n)`;
  return ts.length;
}

/** Ends a series: completed, or failed when any chunk failed. */
export async function finishSeries(sql: Sql, stateId: string): Promise<'completed' | 'failed'> {
  const [row] = await sql<{ status: 'completed' | 'failed' }[]>`
    update enrichment.backfill_state set status = case when chunks_failed > 0 then 'failed' else 'completed' end, updated_at = now()
    where id = ${stateId} returning status`;
  return row?.status ?? 'failed';
}

export async function cancelSeries(sql: Sql, stateId: string): Promise<void> {
  await sql`
    update enrichment.backfill_state set status = 'cancelled', updated_at = now()
    where id = ${stateId} and status not in ('completed', 'failed')`;
}
