/**
 * The trade ETL: OLTP executions into the warehouse star schema, batch by batch.
 *
 * A run first merges the source's accounts, instruments and strategies into the type-2
 * dimensions, then loads batches of executions in watermark order (ingested_at,
 * execution_id). Each batch is one transaction that reads and judges the rows, quarantines bad
 * ones, audits and retires amended ones, re-matches FIFO lots for every account × instrument it
 * touches (restating later fills when a late or amended one lands before them), writes facts,
 * fact keys, positions and rollup requests, and advances the watermark. A crash loses at most
 * the batch in flight, which the next run reads again; a rerun over rows already loaded finds
 * them unchanged by hash and writes nothing.
 */
import { pipeline } from 'node:stream/promises';
import type { Sql, TransactionSql } from 'postgres';
import { applyFills, emptyPosition, positionQuantity, type Fill, type Position } from './analytics/fifo.ts';
import type { Logger } from './logger.ts';
import { DIMENSIONS, ensureDimDates, syncDimension, loadSourceMembers, type DimensionSyncResult } from './queries/dimensions.ts';
import {
  applyRestatements,
  insertFactKeys,
  classifyBatch,
  countStatuses,
  createStage,
  ensurePartitions,
  insertFacts,
  loadBatchDates,
  loadFillsToMatch,
  loadPairs,
  loadPreviousVersions,
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
  STAGE_COLUMN_NAMES,
  batchWatermark,
  type BatchCounts,
  type FillRow,
  type MatchResults,
  type PairRow,
  type PositionWrite,
  type Watermark,
} from './queries/trades.ts';

/** Executions per batch transaction. @defaultValue 100000 */
export const DEFAULT_BATCH_SIZE = 100_000;

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
  /** Milliseconds spent per phase over all batches, to see where a slow load spends its time. */
  phaseMs: Record<string, number>;
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
    phaseMs: {},
  };

  summary.dimensions = await syncDimensions(options.db, options.sourceDb, now(), options.runPartition);
  const dates = new Set<string>();
  const partitions = new Set<string>();

  for (;;) {
    if (options.signal?.aborted || (options.maxBatches !== undefined && summary.batches >= options.maxBatches)) {
      summary.stoppedEarly = true;
      break;
    }
    const batch = await loadBatch(options, batchSize, now(), sameDatabase, summary.phaseMs);
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

/**
 * Another database: read the batch with a cursor and feed it to COPY as text, a slice at a
 * time, so memory stays bounded. (Not COPY TO STDOUT on the source: postgres.js can leave that
 * connection's socket paused when the stream ends under backpressure, porsager/postgres#499.)
 */
async function stageFromOtherDatabase(sourceDb: Sql, tx: TransactionSql<Record<string, never>>, after: Watermark | null, batchSize: number): Promise<number> {
  const target = await tx.unsafe('COPY etl_stage FROM STDIN').writable();
  let extracted = 0;
  const textColumns = `SELECT ${STAGE_COLUMN_NAMES.map((c) => `b.${c}::text`).join(', ')} FROM (${sourceBatchQuery(after, batchSize)}) b`;
  const source = async function* () {
    for await (const rows of sourceDb.unsafe(textColumns).values().cursor(COPY_SLICE_ROWS)) {
      extracted += rows.length;
      yield rows.map((row: unknown[]) => row.map(copyTextField).join('\t')).join('\n') + '\n';
    }
  };
  await pipeline(source, target);
  return extracted;
}

/** Rows per cursor fetch when staging from another database. */
const COPY_SLICE_ROWS = 5000;

/** One field in COPY text format: \N for NULL; backslash, tab, newline and carriage return escaped. */
export function copyTextField(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  return String(value).replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
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

async function loadBatch(
  options: LoadTradesOptions,
  batchSize: number,
  now: Date,
  sameDatabase: boolean,
  phaseMs: Record<string, number>,
): Promise<BatchSummary | null> {
  const { db, sourceDb, tz, runPartition } = options;
  let mark = process.hrtime.bigint();
  const phase = (name: string) => {
    const t = process.hrtime.bigint();
    phaseMs[name] = (phaseMs[name] ?? 0) + Number(t - mark) / 1e6;
    mark = t;
  };
  const result = await db.begin(async (tx) => {
    await lockEtl(tx);
    const after = await loadWatermark(tx);
    await createStage(tx, !sameDatabase);
    if (!sameDatabase) await stageFromOtherDatabase(sourceDb, tx, after, batchSize);
    phase('extract');
    const extracted = await classifyBatch(tx, now, tz, sameDatabase ? { kind: 'same-database', after, limit: batchSize } : { kind: 'staged' });
    const watermark = await batchWatermark(tx);
    if (extracted === 0 || watermark === null) return null;
    const counts = await countStatuses(tx);
    phase('classify');
    const rejectsByReason = await quarantineRejects(tx, runPartition, now);
    phase('quarantine');
    let loaded = 0;
    let restatedPairs = 0;
    let restatedFills = 0;
    let partitionsCreated: string[] = [];
    let datesAdded = 0;
    if (counts.new + counts.amended + counts.removed > 0) {
      if (counts.amended + counts.removed > 0) {
        await loadPreviousVersions(tx);
        await retireAmended(tx, runPartition, now);
      }
      await planPairs(tx);
      const pairs = await loadPairs(tx);
      const fills = await loadFillsToMatch(tx);
      phase('read fills');
      // PostgreSQL writes the batch's keys while Node matches lots: two cores, both busy. The
      // statement is on the wire before the synchronous matching starts.
      const keysWritten = insertFactKeys(tx);
      await new Promise((resolve) => setImmediate(resolve));
      const matched = matchPairs(pairs, fills);
      restatedPairs = pairs.filter((p) => p.mode === 'restate').length;
      phase('match');
      await keysWritten;
      await saveMatchResults(tx, matched.results);
      const range = await loadBatchDates(tx);
      if (range.from !== null && range.to !== null) datesAdded = await ensureDimDates(tx, range.from, range.to);
      partitionsCreated = await ensurePartitions(tx, range.months);
      phase('save results');
      restatedFills = await applyRestatements(tx);
      phase('restatements');
      // Queued together: the positions' JSON is built while PostgreSQL inserts the facts.
      const factsInserted = insertFacts(tx);
      await new Promise((resolve) => setImmediate(resolve));
      const positionsSaved = savePositions(tx, matched.positions, matched.emptied);
      [loaded] = await Promise.all([factsInserted, positionsSaved]);
      phase('facts and positions');
    }
    const rollupRequests = await requestRollups(tx, `trade-etl@${runPartition}`, now);
    await saveWatermark(tx, watermark, now);
    phase('finish');
    return { extracted, counts, rejectsByReason, loaded, restatedPairs, restatedFills, partitionsCreated, datesAdded, rollupRequests, watermark };
  });
  phase('commit');
  return result;
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
): { results: MatchResults; positions: PositionWrite[]; emptied: Array<{ account_id: string; instrument_id: string }> } {
  const byPair = new Map<string, FillRow[]>();
  for (const fill of fills) {
    const key = `${fill.account_id}/${fill.instrument_id}`;
    let list = byPair.get(key);
    if (list === undefined) byPair.set(key, (list = []));
    list.push(fill);
  }
  const results: MatchResults = { executionIds: [], realized: [], positionAfter: [], openCost: [], isNew: [] };
  const positions: PositionWrite[] = [];
  const emptied: Array<{ account_id: string; instrument_id: string }> = [];
  for (const pair of pairs) {
    const pairFills = byPair.get(`${pair.account_id}/${pair.instrument_id}`) ?? [];
    const isNew = new Map(pairFills.map((f) => [f.execution_id, f.is_new]));
    const { position, results: pairResults } = applyFills(
      startingPosition(pair),
      pairFills.map((f): Fill => ({ executionId: f.execution_id, executedAt: f.executed_at, side: f.side, quantity: f.quantity, price: f.price })),
    );
    for (const r of pairResults) {
      results.executionIds.push(r.executionId);
      results.realized.push(r.realizedPnl);
      results.positionAfter.push(r.positionAfter);
      results.openCost.push(r.openCost);
      results.isNew.push(isNew.get(r.executionId) === true);
    }
    if (position.lastFill === undefined) {
      emptied.push({ account_id: pair.account_id, instrument_id: pair.instrument_id });
      continue;
    }
    positions.push({
      account_id: pair.account_id,
      instrument_id: pair.instrument_id,
      position,
      quantity: positionQuantity(position),
      last_executed_at: position.lastFill.executedAt,
      last_execution_id: position.lastFill.executionId,
    });
  }
  return { results, positions, emptied };
}
