/**
 * The trade ETL: OLTP executions into the warehouse star schema, batch by batch.
 *
 * A run first merges the source's accounts, instruments and strategies into the type-2
 * dimensions, then loads batches of executions in watermark order (ingested_at,
 * execution_id). Each batch is one transaction that stages the rows, quarantines bad ones,
 * audits and retires amended ones, re-matches FIFO lots for every account × instrument it
 * touches (restating later fills when a late or amended one lands before them), writes facts,
 * ledger, positions and rollup requests, and advances the watermark. A crash loses at most
 * the batch in flight, which the next run reads again; a rerun over rows already loaded finds
 * them unchanged by hash and writes nothing.
 */
import { pipeline } from 'node:stream/promises';
import type { Sql } from 'postgres';
import { applyFills, emptyPosition, positionQuantity, type Fill, type Position } from './analytics/fifo.ts';
import type { Logger } from './logger.ts';
import { DIMENSIONS, ensureDimDates, syncDimension, loadSourceMembers, type DimensionSyncResult } from './queries/dimensions.ts';
import {
  applyLedger,
  classifyBatch,
  countStatuses,
  createStage,
  ensurePartitions,
  insertFacts,
  loadBatchDates,
  loadFillsToMatch,
  loadPairs,
  loadWatermark,
  lockEtl,
  planPairs,
  quarantineRejects,
  requestRollups,
  retireAmended,
  saveMatchResults,
  savePositions,
  saveWatermark,
  sourceBatchQuery,
  stageFromSameDatabase,
  stageWatermark,
  type BatchCounts,
  type FillRow,
  type MatchResults,
  type PairRow,
  type PositionWrite,
  type Watermark,
} from './queries/trades.ts';

/** Executions per batch transaction. @defaultValue 50000 */
export const DEFAULT_BATCH_SIZE = 50_000;

export interface LoadTradesOptions {
  db: Sql;
  /** The OLTP source; pass `db` itself when the source lives in the same database. */
  sourceDb: Sql;
  /** Exchange time zone: trading dates and time-of-day are read in it. */
  tz: string;
  /** Names the run in rejects, amendments and rollup requests (the job partition). */
  runPartition: string;
  batchSize?: number;
  /** "Now" for the future-fill check and audit timestamps. @defaultValue new Date() per batch */
  now?: () => Date;
  /** Stop after this many batches (the watermark keeps the rest for the next run). */
  maxBatches?: number;
  signal?: AbortSignal;
  logger?: Logger;
  onBatch?: (batch: BatchSummary, totals: LoadSummary) => void | Promise<void>;
}

export interface BatchSummary {
  extracted: number;
  counts: BatchCounts;
  rejectsByReason: Record<string, number>;
  loaded: number;
  restatedPairs: number;
  restatedFills: number;
  partitionsCreated: string[];
  datesAdded: number;
  rollupRequests: Array<{ trade_date: string; account_id: string }>;
  watermark: Watermark;
}

export interface LoadSummary {
  batches: number;
  extracted: number;
  loaded: number;
  new: number;
  amended: number;
  unchanged: number;
  removed: number;
  rejected: number;
  rejectsByReason: Record<string, number>;
  restatedPairs: number;
  restatedFills: number;
  partitionsCreated: string[];
  dimensions: DimensionSyncResult[];
  /** Trading dates whose facts changed (new, amended, removed or restated), sorted. */
  datesTouched: string[];
  /** Distinct (date, account) rollup partitions requested. */
  rollupPartitions: number;
  watermark: Watermark | null;
  /** True when the run stopped early (abort or maxBatches) with rows left behind the watermark. */
  stoppedEarly: boolean;
}

export async function loadTrades(options: LoadTradesOptions): Promise<LoadSummary> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const now = options.now ?? (() => new Date());
  const sameDatabase = options.sourceDb === options.db;
  const summary: LoadSummary = {
    batches: 0,
    extracted: 0,
    loaded: 0,
    new: 0,
    amended: 0,
    unchanged: 0,
    removed: 0,
    rejected: 0,
    rejectsByReason: {},
    restatedPairs: 0,
    restatedFills: 0,
    partitionsCreated: [],
    dimensions: [],
    datesTouched: [],
    rollupPartitions: 0,
    watermark: null,
    stoppedEarly: false,
  };

  summary.dimensions = await syncDimensions(options.db, options.sourceDb, now(), options.runPartition);
  const dates = new Set<string>();
  const partitions = new Set<string>();

  for (;;) {
    if (options.signal?.aborted || (options.maxBatches !== undefined && summary.batches >= options.maxBatches)) {
      summary.stoppedEarly = true;
      break;
    }
    const batch = await loadBatch(options, batchSize, now(), sameDatabase);
    if (batch === null) break;
    summary.batches++;
    summary.extracted += batch.extracted;
    summary.loaded += batch.loaded;
    for (const key of ['new', 'amended', 'unchanged', 'removed', 'rejected'] as const) summary[key] += batch.counts[key];
    for (const [reason, n] of Object.entries(batch.rejectsByReason)) summary.rejectsByReason[reason] = (summary.rejectsByReason[reason] ?? 0) + n;
    summary.restatedPairs += batch.restatedPairs;
    summary.restatedFills += batch.restatedFills;
    summary.partitionsCreated.push(...batch.partitionsCreated);
    for (const r of batch.rollupRequests) {
      dates.add(r.trade_date);
      partitions.add(`${r.trade_date}/${r.account_id}`);
    }
    summary.watermark = batch.watermark;
    options.logger?.debug({ batch: summary.batches, extracted: batch.extracted, loaded: batch.loaded }, 'trade batch committed');
    await options.onBatch?.(batch, summary);
    if (batch.extracted < batchSize) break;
  }
  summary.datesTouched = [...dates].sort();
  summary.rollupPartitions = partitions.size;
  return summary;
}

/** Merges the three source dimensions in one transaction (under the ETL lock). */
async function syncDimensions(db: Sql, sourceDb: Sql, now: Date, runPartition: string): Promise<DimensionSyncResult[]> {
  const members = await Promise.all(DIMENSIONS.map((spec) => loadSourceMembers(sourceDb, spec)));
  return db.begin(async (tx) => {
    await lockEtl(tx);
    const results: DimensionSyncResult[] = [];
    for (const [i, spec] of DIMENSIONS.entries()) results.push(await syncDimension(tx, spec, members[i] ?? [], now, runPartition));
    return results;
  });
}

async function loadBatch(options: LoadTradesOptions, batchSize: number, now: Date, sameDatabase: boolean): Promise<BatchSummary | null> {
  const { db, sourceDb, tz, runPartition } = options;
  return db.begin(async (tx) => {
    await lockEtl(tx);
    const after = await loadWatermark(tx);
    await createStage(tx);
    let extracted: number;
    if (sameDatabase) {
      extracted = await stageFromSameDatabase(tx, after, batchSize);
    } else {
      // Another database: stream the batch through as COPY text, never holding it in memory.
      const source = await sourceDb.unsafe(`COPY (${sourceBatchQuery(after, batchSize)}) TO STDOUT`).readable();
      const target = await tx.unsafe('COPY etl_stage FROM STDIN').writable();
      await pipeline(source, target);
      const [row] = await tx<{ n: number }[]>`select count(*)::int as n from etl_stage`;
      extracted = row?.n ?? 0;
    }
    const watermark = await stageWatermark(tx);
    if (extracted === 0 || watermark === null) return null;

    await classifyBatch(tx, now, tz);
    const counts = await countStatuses(tx);
    const rejectsByReason = await quarantineRejects(tx, runPartition, now);
    let loaded = 0;
    let restatedPairs = 0;
    let restatedFills = 0;
    let partitionsCreated: string[] = [];
    let datesAdded = 0;
    if (counts.new + counts.amended + counts.removed > 0) {
      await retireAmended(tx, runPartition, now);
      await planPairs(tx);
      const pairs = await loadPairs(tx);
      const fills = await loadFillsToMatch(tx);
      const matched = matchPairs(pairs, fills);
      restatedPairs = pairs.filter((p) => p.mode === 'restate').length;
      await saveMatchResults(tx, matched.results);
      const range = await loadBatchDates(tx);
      if (range.from !== null && range.to !== null) datesAdded = await ensureDimDates(tx, range.from, range.to);
      partitionsCreated = await ensurePartitions(tx, range.months);
      restatedFills = await applyLedger(tx);
      loaded = await insertFacts(tx, tz);
      await savePositions(tx, matched.positions, matched.emptied);
    }
    const rollupRequests = await requestRollups(tx, `trade-etl@${runPartition}`, now);
    await saveWatermark(tx, watermark, now);
    return { extracted, counts, rejectsByReason, loaded, restatedPairs, restatedFills, partitionsCreated, datesAdded, rollupRequests, watermark };
  });
}

/** Stored lots to append to, or flat at the restatement's anchor (which later fills must follow). */
function startingPosition(pair: PairRow): Position {
  if (pair.mode === 'append' && pair.position !== null) return pair.position as Position;
  const flat = emptyPosition();
  if (pair.anchor_at !== null && pair.anchor_id !== null) flat.lastFill = { executionId: pair.anchor_id, executedAt: pair.anchor_at };
  return flat;
}

/**
 * Runs FIFO for every pair the batch touches. `fills` arrive grouped by pair; each pair starts
 * from its stored lots (append) or flat (restate from a flat anchor) and applyFills orders its
 * fills by (executed_at, execution_id).
 */
export function matchPairs(
  pairs: readonly PairRow[],
  fills: readonly FillRow[],
): { results: MatchResults; positions: PositionWrite; emptied: { accountIds: string[]; instrumentIds: string[] } } {
  const byPair = new Map<string, FillRow[]>();
  for (const fill of fills) {
    const key = `${fill.account_id}/${fill.instrument_id}`;
    let list = byPair.get(key);
    if (list === undefined) byPair.set(key, (list = []));
    list.push(fill);
  }
  const results: MatchResults = { executionIds: [], realized: [], positionAfter: [], isNew: [] };
  const positions: PositionWrite = { accountIds: [], instrumentIds: [], positions: [], quantities: [], lastExecutedAt: [], lastExecutionIds: [] };
  const emptied = { accountIds: [] as string[], instrumentIds: [] as string[] };
  for (const pair of pairs) {
    const pairFills = byPair.get(`${pair.account_id}/${pair.instrument_id}`) ?? [];
    const start = startingPosition(pair);
    const isNew = new Map(pairFills.map((f) => [f.execution_id, f.is_new]));
    const { position, results: pairResults } = applyFills(
      start,
      pairFills.map((f): Fill => ({ executionId: f.execution_id, executedAt: f.executed_at, side: f.side, quantity: f.quantity, price: f.price })),
    );
    for (const r of pairResults) {
      results.executionIds.push(r.executionId);
      results.realized.push(r.realizedPnl);
      results.positionAfter.push(r.positionAfter);
      results.isNew.push(String(isNew.get(r.executionId)));
    }
    if (position.lastFill === undefined) {
      emptied.accountIds.push(pair.account_id);
      emptied.instrumentIds.push(pair.instrument_id);
      continue;
    }
    positions.accountIds.push(pair.account_id);
    positions.instrumentIds.push(pair.instrument_id);
    positions.positions.push(JSON.stringify(position));
    positions.quantities.push(positionQuantity(position));
    positions.lastExecutedAt.push(position.lastFill.executedAt);
    positions.lastExecutionIds.push(position.lastFill.executionId);
  }
  return { results, positions, emptied };
}
