/**
 * The trade ETL: OLTP executions into the warehouse star schema, batch by batch.
 *
 * A run loads batches of executions in watermark order (ingested_at, execution_id), up to the
 * instant it started. Each batch is one transaction that first reads the source's accounts,
 * instruments and strategies under the ETL lock and merges them into the type-2 dimensions (small
 * tables: a member the source adds during a run is there before the fills that use it are judged),
 * then reads and judges the rows, quarantines bad ones, audits and retires amended ones, re-matches
 * FIFO lots for every account × instrument it touches (restating later fills when a late or amended
 * one lands before them), writes facts, fact keys, positions and rollup requests, and advances the
 * watermark. A crash loses at most the batch in flight, which the next run reads again; a rerun
 * over rows already loaded finds them unchanged by hash and writes nothing. Then the rows of open
 * rejects whose unknown account or instrument has appeared since (an eventually consistent source
 * may stamp a fill before its member exists) are read again by id and go through the same batch
 * path, so they load and their rejects are resolved. Rows ingested at ±infinity, which no watermark
 * window reads, are then read by id and quarantined once.
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
  dropQuarantined,
  dropRequarantined,
  loadRetryableRejects,
  loadUnassignedOrders,
  loadOrderStrategies,
  reassignStrategies,
  type BatchCounts,
  type BatchWindow,
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
  /**
   * "Now" for the future-fill check and audit timestamps, and (read once at the start) the
   * upper bound on ingested_at the run reads. @defaultValue new Date() per batch
   */
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
  /** The watermark after the batch; null for the passes by id (retry, not-finite), which do not move it. */
  watermark: Watermark | null;
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
  /** Facts moved from the 'unassigned' strategy to their order's, now that it is known. */
  reassigned: number;
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
    reassigned: 0,
    partitionsCreated: [],
    dimensions: [],
    datesTouched: [],
    rollupPartitions: 0,
    watermark: null,
    stoppedEarly: false,
    phaseMs: {},
  };

  // One finite bound for the whole run: rows ingested after it wait for the next run.
  const until = now();
  const dates = new Set<string>();
  const partitions = new Set<string>();
  // Whether to stop before the next batch (aborted, or maxBatches reached for the watermark pass).
  const halted = (bounded: boolean) => {
    if (options.signal?.aborted === true || (bounded && options.maxBatches !== undefined && summary.batches >= options.maxBatches)) summary.stoppedEarly = true;
    return summary.stoppedEarly;
  };

  const touch = (requests: ReadonlyArray<{ trade_date: string; account_id: string }>) => {
    for (const r of requests) {
      dates.add(r.trade_date);
      partitions.add(`${r.trade_date}/${r.account_id}`);
    }
  };

  const add = async (batch: BatchSummary) => {
    summary.batches++;
    summary.extracted += batch.extracted;
    summary.loaded += batch.loaded;
    for (const key of ['new', 'amended', 'unchanged', 'removed', 'rejected'] as const) summary[key] += batch.counts[key];
    for (const [reason, n] of Object.entries(batch.rejectsByReason)) summary.rejectsByReason[reason] = (summary.rejectsByReason[reason] ?? 0) + n;
    summary.restatedPairs += batch.restatedPairs;
    summary.restatedFills += batch.restatedFills;
    summary.partitionsCreated.push(...batch.partitionsCreated);
    touch(batch.rollupRequests);
    if (batch.watermark !== null) summary.watermark = batch.watermark;
    options.logger?.debug({ batch: summary.batches, extracted: batch.extracted, loaded: batch.loaded }, 'trade batch committed');
    await options.onBatch?.(batch, summary);
  };

  while (!halted(true)) {
    const { batch, read } = await loadBatch(options, { kind: 'watermark', until }, batchSize, now(), sameDatabase, summary);
    if (batch !== null) await add(batch);
    if (read < batchSize) break;
  }
  // Then the quarantined rows whose account or instrument has appeared, a slice at a time by id.
  // Not after an early stop: rows behind the watermark may hold newer versions of them.
  for (let afterId: string | null = null; !halted(false); ) {
    const ids = await loadRetryableRejects(options.db, afterId, batchSize);
    if (ids.length === 0) break;
    const { batch } = await loadBatch(options, { kind: 'retry', ids }, batchSize, now(), sameDatabase, summary);
    if (batch !== null) await add(batch);
    if (ids.length < batchSize) break;
    afterId = ids.at(-1) ?? null;
  }
  // Then the facts loaded under the 'unassigned' strategy whose order or strategy has appeared
  // since (the source's orders table may lag its fills), a slice of orders at a time.
  for (let afterId: string | null = null; !halted(false); ) {
    const orders = await loadUnassignedOrders(options.db, afterId, batchSize);
    if (orders.length === 0) break;
    const known = await loadOrderStrategies(options.sourceDb, orders);
    if (known.length > 0) {
      const moved = await options.db.begin(async (tx) => {
        await lockEtl(tx);
        return reassignStrategies(tx, known, `trade-etl@${options.runPartition}`, now());
      });
      summary.reassigned += moved.moved;
      touch(moved.rollupRequests);
    }
    if (orders.length < batchSize) break;
    afterId = orders.at(-1) ?? null;
  }
  // Then the rows ingested at ±infinity, a slice at a time by id; only new ones count.
  // (Not bounded by maxBatches: it is small, and the watermark pass has finished.)
  for (let afterId: string | null = null; !halted(false); ) {
    const { batch, read, lastId } = await loadBatch(options, { kind: 'not-finite', afterId }, batchSize, now(), sameDatabase, summary);
    if (batch !== null) await add(batch);
    if (read < batchSize || lastId === null) break;
    afterId = lastId;
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
async function stageFromOtherDatabase(sourceDb: Sql, tx: TransactionSql<Record<string, never>>, window: BatchWindow): Promise<number> {
  const target = await tx.unsafe('COPY etl_stage FROM STDIN').writable();
  let extracted = 0;
  const textColumns = `SELECT ${STAGE_COLUMN_NAMES.map((c) => `b.${c}::text`).join(', ')} FROM (${sourceBatchQuery(window)}) b`;
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

/**
 * Merges the three source dimensions, read from `source` (`tx` itself when it is this database),
 * inside the batch's transaction before its rows are read, and adds what changed to `totals`.
 * Read under the ETL lock the caller holds: a copy read before it could predate a change another
 * run has merged since, and merging it would undo that change. The rows read were ingested
 * before the run started, so a member the source committed before stamping its fills is in the
 * members read here.
 */
async function syncDimensions(
  tx: TransactionSql<Record<string, never>>,
  source: Sql | TransactionSql<Record<string, never>>,
  now: Date,
  runPartition: string,
  totals: DimensionSyncResult[],
): Promise<void> {
  const members = await Promise.all(DIMENSIONS.map((spec) => loadSourceMembers(source, spec)));
  for (const [i, spec] of DIMENSIONS.entries()) {
    const result = await syncDimension(tx, spec, members[i] ?? [], now, runPartition);
    const total = totals.find((t) => t.dimension === result.dimension);
    if (total === undefined) {
      totals.push(result);
    } else {
      total.added += result.added;
      total.changed += result.changed;
      total.repointed += result.repointed;
    }
  }
}

/**
 * Which rows a batch reads: the watermark window up to the run's start, the rows of open rejects
 * to retry, or a slice of the rows ingested at ±infinity.
 */
type BatchPass = { kind: 'watermark'; until: Date } | { kind: 'retry'; ids: readonly string[] } | { kind: 'not-finite'; afterId: string | null };

/**
 * One batch transaction. Returns the rows read (`read`; a short read ends the pass), the
 * largest id read (where the not-finite pass goes on), and the batch's summary, or null when
 * it read nothing (nothing new, for the not-finite pass).
 */
async function loadBatch(
  options: LoadTradesOptions,
  pass: BatchPass,
  batchSize: number,
  now: Date,
  sameDatabase: boolean,
  totals: LoadSummary,
): Promise<{ batch: BatchSummary | null; read: number; lastId: string | null }> {
  const { db, sourceDb, tz, runPartition } = options;
  const phaseMs = totals.phaseMs;
  let mark = process.hrtime.bigint();
  const phase = (name: string) => {
    const t = process.hrtime.bigint();
    phaseMs[name] = (phaseMs[name] ?? 0) + Number(t - mark) / 1e6;
    mark = t;
  };
  const result = await db.begin(async (tx) => {
    await lockEtl(tx);
    // The passes by id follow a watermark batch that has just merged the members.
    if (pass.kind === 'watermark') await syncDimensions(tx, sameDatabase ? tx : sourceDb, now, runPartition, totals.dimensions);
    phase('dimensions');
    const window: BatchWindow =
      pass.kind === 'watermark'
        ? { kind: 'watermark', after: await loadWatermark(tx), until: pass.until, limit: batchSize }
        : pass.kind === 'retry'
          ? pass
          : { kind: 'not-finite', afterId: pass.afterId, limit: batchSize };
    await createStage(tx, !sameDatabase);
    if (!sameDatabase) await stageFromOtherDatabase(sourceDb, tx, window);
    phase('extract');
    const read = await classifyBatch(tx, now, tz, sameDatabase ? { kind: 'same-database', window } : { kind: 'staged' });
    const lastId = pass.kind === 'not-finite' ? await dropQuarantined(tx) : null;
    if (pass.kind === 'retry') await dropRequarantined(tx, now);
    const watermark = pass.kind === 'watermark' ? await batchWatermark(tx) : null;
    const counts = await countStatuses(tx);
    const extracted = counts.new + counts.unchanged + counts.amended + counts.removed + counts.rejected;
    if (extracted === 0 || (pass.kind === 'watermark' && watermark === null)) return { batch: null, read, lastId };
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
    if (watermark !== null) await saveWatermark(tx, watermark, now);
    phase('finish');
    const batch: BatchSummary = { extracted, counts, rejectsByReason, loaded, restatedPairs, restatedFills, partitionsCreated, datesAdded, rollupRequests, watermark };
    return { batch, read, lastId };
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
