/**
 * enrichment: 1-minute bars per second through a whole backfill, end to end — the request
 * recorded, its BullMQ flow of 50 series stepping one chunk at a time on the real workers
 * (default concurrency), each chunk fetched from the synthetic provider, validated, given its
 * features and daily quality, and stored with its checkpoint in one transaction — against its
 * floor: a raw binary COPY of the same bars into market.bars (encoding included, bars
 * generated beforehand, untimed), one COPY per symbol in one transaction. Both start from
 * empty tables each run.
 *
 * Also printed: the seed's bar (100,000 records in under 5 s) as a 5-symbol backfill of
 * 100k bars, and peak RSS, read right after the first full backfill (before the floor's runs
 * hold generated bars in memory).
 *
 * Knobs: BENCH_SYMBOLS (default 50), BENCH_RUNS (default 3), BENCH_DATABASE_URL, REDIS_URL.
 */
import { FlowProducer, type Worker } from 'bullmq';
import { loadConfig } from '../src/config.ts';
import { createDb, type Sql } from '../src/db.ts';
import { createBackfill, createFlowEnqueuer, describeBackfill, planBackfill } from '../src/enrichment/backfills.ts';
import { generateSyntheticBars } from '../src/enrichment/providers/synthetic.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { migrate } from '../src/migrate.ts';
import { copyBars } from '../src/queries/enrichment.ts';
import { closeQueues, createDefaultJobOptions, createQueues, DEFAULT_CONCURRENCY } from '../src/queues.ts';
import { createRedis } from '../src/redis.ts';
import { createRunRecorder } from '../src/runs.ts';
import { createDefinitionMap, startWorkers, stopWorkers } from '../src/worker.ts';
import { enrichmentBackfill } from '../jobs/enrichment-backfill.ts';
import {
  BENCH_REDIS_URL,
  createBenchDatabase,
  deletePrefix,
  envInt,
  finalLine,
  formatCount,
  formatHostLoad,
  formatTable,
  loadAverage,
  median,
  onCleanup,
  peakRssMb,
  randomSuffix,
  runCleanups,
} from './lib.ts';

/** 52 NYSE sessions × 390 one-minute bars = 20,280 bars per symbol, in three monthly chunks. */
const FROM = '2024-01-02';
const TO = '2024-03-15';
const SEED_RECORDS = 100_000;
const SEED_SECONDS = 5;

function symbolsOf(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `SYM${String(i + 1).padStart(3, '0')}`);
}

async function emptyTables(sql: Sql): Promise<void> {
  await sql`truncate market.bars, market.features, enrichment.chunks, enrichment.fetch_log, enrichment.compute_log,
    enrichment.data_quality_metrics, enrichment.bar_rejects, enrichment.status, enrichment.backfills cascade`;
  await sql`vacuum analyze market.bars`;
}

export async function run(): Promise<void> {
  const symbolCount = envInt('BENCH_SYMBOLS', 50);
  const runs = envInt('BENCH_RUNS', 3);
  const loadAtStart = loadAverage();
  const symbols = symbolsOf(symbolCount);
  const database = await createBenchDatabase();
  const sql = createDb(database.url, { applicationName: 'bullpen-bench' });
  onCleanup(() => sql.end({ timeout: 5 }));
  const prefix = `bullpen-bench-${randomSuffix()}`;
  const redis = createRedis(BENCH_REDIS_URL);
  onCleanup(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });
  try {
    await migrate(sql);
    const config = loadConfig({ ...process.env, DATABASE_URL: database.url, REDIS_URL: BENCH_REDIS_URL, BULLPEN_PREFIX: prefix, LOG_LEVEL: 'silent', MARKET_DATA_SOURCE: 'synthetic' });
    const jobOptions = createDefaultJobOptions({ attempts: config.jobAttempts, backoffMs: config.jobBackoffMs });
    const queues = createQueues(redis, prefix, jobOptions);
    const flows = new FlowProducer({ connection: redis, prefix });
    onCleanup(async () => {
      await closeQueues(queues);
      await flows.close();
    });
    const logger = createLogger({ level: 'silent', pretty: false });
    const recorder = createRunRecorder(sql, { worker: `bench:${process.pid}` });
    const workers: Worker[] = startWorkers(
      { config, db: sql, sourceDb: sql, logger, metrics: createMetrics({ defaultMetrics: false }), recorder, queues, definitions: createDefinitionMap([enrichmentBackfill]), flows, jobOptions },
      { connection: redis },
    );
    onCleanup(async () => {
      await stopWorkers(workers, 5000, logger);
      await recorder.drain();
    });
    const enqueue = createFlowEnqueuer(flows, enrichmentBackfill, jobOptions);

    const backfill = async (list: string[]): Promise<{ ms: number; bars: number }> => {
      await emptyTables(sql);
      const plan = planBackfill({ symbols: list, timeframes: '1m', from: FROM, to: TO }, { defaultSource: 'synthetic', maxBars: 1e9, now: Date.now() });
      const started = performance.now();
      const { backfillId } = await createBackfill({ db: sql, enqueue }, plan);
      for (;;) {
        const report = await describeBackfill(sql, backfillId);
        if (report && ['completed', 'failed', 'cancelled'].includes(String(report.status))) {
          if (report.status !== 'completed') throw new Error(`bench backfill ${String(report.status)}: ${JSON.stringify(report.errors)}`);
          return { ms: performance.now() - started, bars: Number(report.bars_written) };
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };

    const floor = async (): Promise<{ ms: number; bars: number }> => {
      await emptyTables(sql);
      let ms = 0;
      let bars = 0;
      await sql.begin(async (tx) => {
        for (const symbol of symbols) {
          const generated = generateSyntheticBars({ symbol, assetClass: 'stock', timeframe: '1m', from: '2024-01-01', to: TO });
          const started = performance.now();
          await copyBars(tx as unknown as Sql, symbol, '1m', 'synthetic', generated);
          ms += performance.now() - started;
          bars += generated.length;
        }
      });
      return { ms, bars };
    };

    console.log(`enrichment: ${symbolCount} symbols × 1m bars ${FROM}..${TO} (synthetic), ${runs} run(s), workers at concurrency ${config.concurrency.enrichment ?? DEFAULT_CONCURRENCY.enrichment}`);
    await backfill(symbols.slice(0, 2)); // warm-up: JIT, pools, scripts (untimed)
    const oursMs: number[] = [];
    const floorMs: number[] = [];
    let bars = 0;
    let rssAfterOurs = 0;
    const table: string[][] = [['run', 'backfill (s)', 'raw COPY (s)', 'bars']];
    for (let i = 0; i < runs; i++) {
      const ours = await backfill(symbols);
      if (i === 0) rssAfterOurs = peakRssMb();
      const bare = await floor();
      if (ours.bars !== bare.bars) throw new Error(`the backfill stored ${ours.bars} bars, the floor ${bare.bars}`);
      bars = ours.bars;
      oursMs.push(ours.ms);
      floorMs.push(bare.ms);
      table.push([String(i + 1), (ours.ms / 1000).toFixed(2), (bare.ms / 1000).toFixed(2), formatCount(ours.bars)]);
    }
    table.push(['median', (median(oursMs) / 1000).toFixed(2), (median(floorMs) / 1000).toFixed(2), formatCount(bars)]);
    console.log(formatTable(table));

    const seedSymbols = Math.max(1, Math.round(SEED_RECORDS / (bars / symbolCount)));
    const seed = await backfill(symbols.slice(0, seedSymbols));
    const oursRate = bars / (median(oursMs) / 1000);
    const floorRate = bars / (median(floorMs) / 1000);
    console.log(`end to end: ${(median(oursMs) / 1000).toFixed(2)} s for ${formatCount(bars)} bars (fetch, validate, 16 features, daily quality, store bars + features, checkpoints): ${formatCount(Math.round(oursRate))} bars/s`);
    console.log(`floor (raw binary COPY of the same bars into market.bars): ${(median(floorMs) / 1000).toFixed(2)} s, ${formatCount(Math.round(floorRate))} bars/s; target ratio ≥ 0.30`);
    console.log(
      `seed's bar: ${formatCount(seed.bars)} records in ${(seed.ms / 1000).toFixed(2)} s (${seedSymbols} symbols; target under ${SEED_SECONDS} s): ${seed.ms / 1000 < SEED_SECONDS ? 'met' : 'NOT met'}`,
    );
    console.log(formatHostLoad(loadAtStart));
    console.log(`peak RSS after the first full backfill: ${Math.round(rssAfterOurs)} MB (target under 500 MB); at the end: ${Math.round(peakRssMb())} MB`);
    console.log(finalLine('enrichment', 'bars', oursRate, floorRate));
  } finally {
    await runCleanups();
  }
}
