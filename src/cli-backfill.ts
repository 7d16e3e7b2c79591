/**
 * `bullpen backfill`: request an enrichment backfill, watch it, and `status [id]`, `resume <id>`,
 * `cancel <id>` (DESIGN.md "Commands"). Requests go through the same planning as
 * POST /api/v1/enrichment/trigger. `--wait` polls the request's report and draws a progress
 * bar on a terminal (plain lines otherwise); with no worker on the enrichment queue it runs
 * one in this process, as `bullpen run --wait` does. Bad input throws BadInputError, which the
 * CLI's main turns into its message and exit code 1, like every other command.
 */
import { Job } from 'bullmq';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import { openServices, type Services } from './app.ts';
import { ASSET_CLASSES } from './analytics/timeframes.ts';
import type { Config } from './config.ts';
import type { Sql } from './db.ts';
import {
  BACKFILL_JOB,
  cancelBackfill,
  createBackfill,
  createFlowEnqueuer,
  describeBackfill,
  precheckBackfill,
  planTrackedBackfill,
  resumeBackfill,
  type BackfillEnqueuer,
  type BackfillPlan,
  type BackfillReport,
} from './enrichment/backfills.ts';
import { PROVIDER_NAMES } from './enrichment/providers/types.ts';
import { BadInputError } from './errors.ts';
import { listBackfills, type BackfillListItem } from './enrichment/reports.ts';
import { assertKnownTimeframes, assertSourceConfigured, BACKFILL_STATUSES, parseBackfillId } from './http/enrichment.ts';
import { keepAWorker, type LocalWorkers } from './local-workers.ts';
import type { Logger } from './logger.ts';
import type { BackfillStatus } from './queries/enrichment.ts';
import { formatDuration } from './run-progress.ts';

/** What cli.ts lends this module: its configuration loading and its one-shot logger. */
export interface BackfillCommandContext {
  loadConfig(): Config;
  createLogger(config: Config): Logger;
}

const QUEUE = 'enrichment';
const FINAL_STATUSES: readonly string[] = ['completed', 'failed', 'cancelled'];
/** How often --wait reads the report. */
const POLL_MS = 500;
/** Plain progress lines (no terminal) at most this often. */
const PLAIN_LINE_MS = 3000;
/** How often --wait checks that the request's closing job has not failed for good. */
const JOB_CHECK_MS = 5000;
/** Series lines `status <id>` prints before it points at --json. */
const MAX_SERIES_LINES = 50;

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

const count = (n: number) => n.toLocaleString('en-US');

function splitList(value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

async function loadReport(db: Sql, id: string): Promise<BackfillReport> {
  const report = await describeBackfill(db, id);
  if (!report) throw new BadInputError(`backfill ${id} does not exist`);
  return report;
}

function shortList(items: readonly string[], max = 3): string {
  return items.length <= max ? items.join(',') : `${items.slice(0, max).join(',')} +${items.length - max}`;
}

/** "chunks 12/40 (30%), 120,000 bars, 45,000 bars/s" */
export function renderProgressLine(r: Pick<BackfillReport, 'chunks_done' | 'chunks_total' | 'progress_pct' | 'bars_written' | 'bars_per_second'>): string {
  const rate = r.bars_per_second === null ? '' : `, ${count(r.bars_per_second)} bars/s`;
  return `chunks ${r.chunks_done}/${r.chunks_total} (${r.progress_pct}%), ${count(r.bars_written)} bars${rate}`;
}

function seconds(from: string | null, to: string | null): string {
  if (!from || !to) return '';
  return ` (${((Date.parse(to) - Date.parse(from)) / 1000).toFixed(1)} s)`;
}

/** The human-readable report of `status <id>` and the end of `--wait`. */
export function renderBackfill(r: BackfillReport): string {
  const lines = [
    `backfill ${r.backfill_id}: ${r.status}`,
    `  request    ${r.symbols.join(', ')} × ${r.timeframes.join(', ')}, ${r.from}..${r.to}, ${r.asset_class}, source ${r.source}, reprocess ${r.reprocess}, by ${r.requested_by}`,
    `  progress   ${r.chunks_done}/${r.chunks_total} chunks (${r.progress_pct}%), ${r.chunks_failed} failed, ${r.chunks_skipped} already done`,
    `  bars       ${count(r.bars_written)} written, ${count(r.bars_rejected)} rejected${r.bars_per_second === null ? '' : `, ${count(r.bars_per_second)} bars/s`}`,
    `  last successful date  ${r.last_successful_date ?? '—'}`,
    `  times      created ${r.created_at}, started ${r.started_at ?? '—'}, finished ${r.finished_at ?? '—'}${seconds(r.started_at, r.finished_at)}`,
    `  job        ${r.job_id ?? '—'}, resumes ${r.resumes}`,
  ];
  if (r.error) lines.push(`  error      ${r.error}`);
  if (r.series.length > 0) {
    const header = ['SYMBOL', 'TF', 'STATUS', 'CHUNKS', 'BARS', 'THROUGH', 'RETRIES'];
    const rows = r.series.slice(0, MAX_SERIES_LINES).map((s) => [
      s.symbol,
      s.timeframe,
      s.status,
      `${s.chunks_done}/${s.chunks_total}${s.chunks_failed > 0 ? ` (${s.chunks_failed} failed)` : ''}`,
      count(s.bars_written),
      s.last_successful_date ?? '—',
      String(s.retry_count),
    ]);
    lines.push('series', ...table(header, rows, '  '));
    if (r.series.length > MAX_SERIES_LINES) lines.push(`  … and ${r.series.length - MAX_SERIES_LINES} more (--json lists them all)`);
  }
  if (r.errors.length > 0) {
    lines.push('errors');
    for (const e of r.errors) lines.push(`  ${e.symbol} ${e.timeframe}: ${e.error} (retries ${e.retry_count})`);
  }
  return lines.join('\n');
}

function table(header: string[], rows: string[][], indent = ''): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `${indent}${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The table of `backfill status` without an id. */
export function renderBackfillList(items: readonly BackfillListItem[]): string {
  if (items.length === 0) return 'no backfills yet (bullpen backfill --symbols AAPL --from 2024-01-01 --timeframes 1d)';
  const header = ['ID', 'STATUS', 'SYMBOLS', 'TIMEFRAMES', 'FROM', 'TO', 'PROGRESS', 'BARS', 'CREATED'];
  const rows = items.map((b) => [
    b.backfill_id,
    b.status,
    shortList(b.symbols),
    b.timeframes.join(','),
    b.from,
    b.to,
    `${b.chunks_done}/${b.chunks_total} (${b.progress_pct}%)${b.chunks_failed > 0 ? ` ${b.chunks_failed} failed` : ''}`,
    count(b.bars_written),
    b.created_at.replace(/\.\d{3}Z$/, 'Z'),
  ]);
  return table(header, rows).join('\n');
}

/** "1h 02m", "3m 05s", "12s"; "—" while nothing has moved. */
export function formatEta(chunksLeft: number, chunksPerSecond: number): string {
  if (chunksLeft <= 0) return '0s';
  if (!(chunksPerSecond > 0)) return '—';
  return formatDuration(Math.ceil(chunksLeft / chunksPerSecond));
}

interface WatchOptions {
  tty: boolean;
  signal: AbortSignal;
  /** The flow's parent job, to notice a request that can no longer finish. */
  parentJob: () => Promise<Job | undefined>;
}

/**
 * Polls the report until the request ends (or the signal aborts), drawing a bar on a
 * terminal and plain lines otherwise. Returns the last report and why the watch ended.
 */
async function watchBackfill(db: Sql, id: string, options: WatchOptions): Promise<{ report: BackfillReport; ended: 'finished' | 'interrupted' | 'job-failed'; reason?: string }> {
  const bar = options.tty
    ? new cliProgress.SingleBar(
        {
          format: 'chunks {bar} {value}/{total} ({percentage}%) | {bars} bars | {rate} bars/s | ETA {left}',
          hideCursor: true,
          etaBuffer: 20,
          fps: 5,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let report = await loadReport(db, id);
  // Rates and ETA from what moved while watching: a resumed request's elapsed time includes the
  // time it stood still, and its earlier chunks say nothing of the pace now.
  const first = { at: Date.now(), done: report.chunks_done, bars: report.bars_written };
  const live = (r: BackfillReport) => {
    const secs = Math.max(0.001, (Date.now() - first.at) / 1000);
    const moved = r.bars_written - first.bars;
    const rate = moved > 0 ? Math.round(moved / secs) : FINAL_STATUSES.includes(r.status) ? r.bars_per_second : null;
    return { ...r, bars_per_second: rate, eta: formatEta(r.chunks_total - r.chunks_done, (r.chunks_done - first.done) / secs) };
  };
  const payload = (r: ReturnType<typeof live>) => ({ bars: count(r.bars_written), rate: r.bars_per_second === null ? '—' : count(r.bars_per_second), left: r.eta });
  bar?.start(report.chunks_total, report.chunks_done, payload(live(report)));
  let lastLine = 0;
  let lastPrinted = '';
  let lastJobCheck = Date.now();
  try {
    for (;;) {
      if (bar) {
        bar.setTotal(report.chunks_total);
        bar.update(report.chunks_done, payload(live(report)));
      } else {
        const line = renderProgressLine(live(report));
        const final = FINAL_STATUSES.includes(report.status);
        if (line !== lastPrinted && (final || Date.now() - lastLine >= PLAIN_LINE_MS)) {
          out(line);
          lastPrinted = line;
          lastLine = Date.now();
        }
      }
      if (FINAL_STATUSES.includes(report.status)) return { report, ended: 'finished' };
      if (options.signal.aborted) return { report, ended: 'interrupted' };
      if (Date.now() - lastJobCheck >= JOB_CHECK_MS) {
        lastJobCheck = Date.now();
        const job = await options.parentJob();
        if (job && (await job.getState()) === 'failed') return { report, ended: 'job-failed', reason: job.failedReason };
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          options.signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, POLL_MS);
        options.signal.addEventListener('abort', done, { once: true });
      });
      report = await loadReport(db, id);
    }
  } finally {
    bar?.stop();
  }
}

/**
 * `--wait`: runs enrichment workers here when none is running anywhere (at the start or later
 * in the wait: src/local-workers.ts), watches the request to its end, prints the report, and
 * answers the exit code (0 completed, 1 failed or cancelled, 130 interrupted).
 */
async function waitForBackfill(services: Services, logger: Logger, id: string): Promise<number> {
  const interrupt = new AbortController();
  let signals = 0;
  const onSignal = () => {
    signals += 1;
    if (signals > 1) process.exit(130);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let local: LocalWorkers | undefined;
  try {
    const queue = services.queues.get(QUEUE)!;
    local = await keepAWorker(services, logger, QUEUE, 'the backfill', out);
    const tty = Boolean(process.stderr.isTTY);
    const watched = await watchBackfill(services.db, id, {
      tty,
      signal: interrupt.signal,
      parentJob: async () => {
        const jobId = (await loadReport(services.db, id)).job_id;
        return jobId ? ((await Job.fromId(queue, jobId)) ?? undefined) : undefined;
      },
    });
    if (watched.ended === 'interrupted') {
      out(`stopped watching backfill ${id} (${watched.report.status}, ${renderProgressLine(watched.report)})`);
      out(
        local.started
          ? `its finished chunks are kept; it continues from its checkpoints when a worker runs (bullpen start --role worker). Watch: bullpen backfill status ${id}`
          : `it goes on in the running workers. Watch: bullpen backfill status ${id}`,
      );
      return 130;
    }
    out('');
    out(renderBackfill(watched.report));
    if (watched.ended === 'job-failed') {
      process.stderr.write(`bullpen: the closing job of backfill ${id} failed for good: ${watched.reason ?? 'no reason recorded'}\n`);
      return 1;
    }
    return watched.report.status === 'completed' ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await local?.stop();
  }
}

function enqueuerOf(services: Services): BackfillEnqueuer {
  const definition = services.definitions.get(BACKFILL_JOB);
  if (!definition) throw new Error(`job ${BACKFILL_JOB} is not in the catalogue`);
  return createFlowEnqueuer(services.flows, definition, services.jobOptions);
}

interface RequestOptions {
  symbols?: string;
  all?: boolean;
  from?: string;
  to?: string;
  timeframes: string;
  source?: string;
  reprocess: string;
  assetClass?: string;
  wait?: boolean;
}

function describePlan(plan: BackfillPlan): string {
  const classes = [...new Set(plan.symbols.map((s) => s.assetClass))].join('/');
  return `${shortList(plan.symbols.map((s) => s.symbol), 5)} (${plan.symbols.length} ${classes}) × ${plan.timeframes.join(',')}, ${plan.from}..${plan.to} from ${plan.source}: ${plan.chunksTotal} chunks, about ${count(plan.estimatedBars)} bars`;
}

async function commandRequest(ctx: BackfillCommandContext, options: RequestOptions): Promise<number> {
  if (options.all && options.symbols) throw new BadInputError('--symbols / --all: give one of them, not both');
  if (!options.all && !options.symbols) throw new BadInputError('--symbols: required (a comma-separated list), or --all for every symbol in market.sector_mapping');
  const timeframes = splitList(options.timeframes);
  assertKnownTimeframes(timeframes);
  const cfg = ctx.loadConfig();
  const request = {
    symbols: splitList(options.symbols),
    timeframes,
    asset_class: options.assetClass,
    from: options.from,
    to: options.to,
    source: options.source,
    reprocess: options.reprocess,
    requested_by: 'cli',
  };
  const planOptions = { defaultSource: cfg.marketDataSource, maxBars: cfg.enrichmentMaxBars, now: Date.now() };
  // Bad input is refused before any connection opens (an embedded PostgreSQL would start for a
  // typo), unless the symbols come from the database. The plan is made again once it is open,
  // with each symbol's asset class as bullpen tracks it.
  if (!options.all) assertSourceConfigured(precheckBackfill(request, planOptions).source, cfg);

  const logger = ctx.createLogger(cfg);
  const services = await openServices(cfg, { logger });
  try {
    if (options.all) {
      const universe = await services.db<{ symbol: string }[]>`select symbol from market.sector_mapping order by symbol`;
      if (universe.length === 0) throw new BadInputError('--all: market.sector_mapping is empty, so there is no tracked symbol to backfill (give --symbols)');
      request.symbols = universe.map((t) => t.symbol);
    }
    const plan = await planTrackedBackfill(services.db, request, planOptions);
    assertSourceConfigured(plan.source, cfg);
    for (const warning of plan.warnings) process.stderr.write(`bullpen: warning: ${warning}\n`);
    const created = await createBackfill({ db: services.db, enqueue: enqueuerOf(services) }, plan);
    out(`queued backfill ${created.backfillId}: ${describePlan(plan)}`);
    if (!options.wait) {
      out(`watch it: bullpen backfill status ${created.backfillId}`);
      return 0;
    }
    return await waitForBackfill(services, logger, created.backfillId);
  } finally {
    await services.close();
  }
}

async function commandStatus(ctx: BackfillCommandContext, id: string | undefined, options: { json?: boolean; status?: BackfillStatus; limit: number }): Promise<number> {
  const backfillId = id === undefined ? undefined : parseBackfillId(id);
  const cfg = ctx.loadConfig();
  const services = await openServices(cfg, { logger: ctx.createLogger(cfg) });
  try {
    if (backfillId) {
      const report = await loadReport(services.db, backfillId);
      out(options.json ? JSON.stringify(report, null, 2) : renderBackfill(report));
    } else {
      const items = await listBackfills(services.db, { status: options.status, limit: options.limit });
      out(options.json ? JSON.stringify({ backfills: items }, null, 2) : renderBackfillList(items));
    }
    return 0;
  } finally {
    await services.close();
  }
}

async function commandResume(ctx: BackfillCommandContext, id: string, options: { wait?: boolean }): Promise<number> {
  const backfillId = parseBackfillId(id);
  const cfg = ctx.loadConfig();
  const logger = ctx.createLogger(cfg);
  const services = await openServices(cfg, { logger });
  try {
    const resumed = await resumeBackfill({ db: services.db, enqueue: enqueuerOf(services) }, backfillId);
    out(`resumed backfill ${backfillId}: ${resumed.series} series queued again from their checkpoints (job ${resumed.jobId})`);
    if (!options.wait) {
      out(`watch it: bullpen backfill status ${backfillId}`);
      return 0;
    }
    return await waitForBackfill(services, logger, backfillId);
  } finally {
    await services.close();
  }
}

async function commandCancel(ctx: BackfillCommandContext, id: string): Promise<number> {
  const backfillId = parseBackfillId(id);
  const cfg = ctx.loadConfig();
  const services = await openServices(cfg, { logger: ctx.createLogger(cfg) });
  try {
    const status = await cancelBackfill(services.db, backfillId);
    out(`backfill ${backfillId}: ${status}; each series stops at its next chunk boundary and keeps what it stored`);
    out(`once it is cancelled, bullpen backfill resume ${backfillId} continues it from there`);
    return 0;
  } finally {
    await services.close();
  }
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 500) throw new InvalidArgumentError('must be a whole number from 1 to 500');
  return n;
}

/** The `backfill` command and its subcommands. */
export function createBackfillCommand(ctx: BackfillCommandContext): Command {
  const backfill = new Command('backfill')
    .description('enrich symbols × timeframes × dates in resumable chunks; or status [id], resume <id>, cancel <id>')
    .option('--symbols <list>', 'comma-separated symbols, e.g. AAPL,MSFT')
    .option('--all', 'every symbol in market.sector_mapping, each with its asset class')
    .option('--from <date>', 'first date, YYYY-MM-DD (default: a year before --to)')
    .option('--to <date>', 'last date, YYYY-MM-DD (default: today)')
    .option('--timeframes <list>', 'comma-separated: 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w', '1d')
    .addOption(new Option('--source <name>', 'market-data source (default: MARKET_DATA_SOURCE)').choices(PROVIDER_NAMES))
    .addOption(new Option('--reprocess <rule>', 'fetch again: missing (only chunks not done), failed (and failed ones), all').choices(['missing', 'failed', 'all']).default('missing'))
    .addOption(new Option('--asset-class <class>', 'asset class of the symbols (default: each as bullpen tracks it, else stock)').choices(ASSET_CLASSES))
    .option('--wait', 'watch it to the end (running a worker here if none is running); exit 1 unless it completes')
    .action(async (options: RequestOptions) => {
      process.exitCode = await commandRequest(ctx, options);
    });

  backfill
    .command('status [id]')
    .description('one backfill in detail, or (no id) the recent ones')
    .option('--json', 'print JSON')
    .addOption(new Option('--status <status>', 'list only backfills in this status').choices(BACKFILL_STATUSES))
    .option('--limit <n>', 'how many to list (1–500)', parseLimit, 20)
    .action(async (id: string | undefined, options: { json?: boolean; status?: BackfillStatus; limit: number }) => {
      process.exitCode = await commandStatus(ctx, id, options);
    });

  backfill
    .command('resume <id>')
    .description('queue the unfinished series of a stopped backfill again; they continue from their checkpoints')
    .option('--wait', 'watch it to the end; exit 1 unless it completes')
    // Without positional options on the program, `backfill` itself takes the --wait written after `resume <id>`.
    .action(async (id: string, _options: unknown, command: Command) => {
      process.exitCode = await commandResume(ctx, id, command.optsWithGlobals<{ wait?: boolean }>());
    });

  backfill
    .command('cancel <id>')
    .description('stop a queued or running backfill at its series’ next chunk boundaries')
    .action(async (id: string) => {
      process.exitCode = await commandCancel(ctx, id);
    });

  return backfill;
}
