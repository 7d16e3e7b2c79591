/**
 * `bullpen` — the command line. Each command loads and validates the configuration first;
 * a bad value stops it with a message naming the variable, and exit code 1.
 */
import { Job, QueueEvents } from 'bullmq';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { openDatabase, openServices, startApp, type Role, type Services } from './app.ts';
import { createBackfillCommand } from './cli-backfill.ts';
import { createRsCommands } from './cli-rs.ts';
import { loadConfig, type Config } from './config.ts';
import { formatTick, nextTicks } from './cron.ts';
import { loadWarehouseTotals, renderEtlSummary, renderNextSteps, renderReportSummary, renderRollupsSummary, renderSeeded } from './demo/report.ts';
import { DEMO_DAYS, seedDemoIfEmpty } from './demo/seed-if-empty.ts';
import { listOltpTablesWithRows } from './demo/seed.ts';
import { enqueueRun, parsePayload, retryIfFailed, type Enqueued } from './enqueue.ts';
import { BadInputError, ConfigError, coerceError } from './errors.ts';
import type { JobDefinition } from './job-definition.ts';
import { createLogger, type Logger } from './logger.ts';
import { QUEUE_NAMES, type QueueName } from './queues.ts';
import { keepAWorker } from './local-workers.ts';
import { createMetrics } from './metrics.ts';
import { migrate } from './migrate.ts';
import { loadRun } from './runs.ts';
import { watchRunProgress } from './run-progress.ts';
import { listScheduleStatus, type ScheduleStatus } from './scheduler.ts';

function config(): Config {
  return loadConfig(process.env);
}

function parseQueues(value: string): QueueName[] {
  // Once each: a queue named twice would get two workers, each taking CONCURRENCY_<QUEUE> jobs.
  const names = [...new Set(value.split(',').map((s) => s.trim()).filter(Boolean))];
  if (names.length === 0) throw new InvalidArgumentError(`it names no queue; give one or more of ${QUEUE_NAMES.join(', ')}, comma-separated (or leave the option out for all)`);
  for (const name of names) {
    if (!(QUEUE_NAMES as readonly string[]).includes(name)) throw new InvalidArgumentError(`unknown queue "${name}"; queues are ${QUEUE_NAMES.join(', ')}`);
  }
  return names as QueueName[];
}

function parseJson(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`--data is not valid JSON: ${coerceError(error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError('--data must be a JSON object');
  // A run stands for a tick that has come: a future one would have jobs work up to it (build-rollups
  // and maintain-partitions filled dim_date and partitions through 9999 for "9999-12-31T23:59:59Z").
  const scheduledFor = (parsed as { scheduledFor?: unknown }).scheduledFor;
  if (typeof scheduledFor === 'string' && Date.parse(scheduledFor) > Date.now() + 60_000) {
    throw new InvalidArgumentError(`--data: scheduledFor ${scheduledFor} is in the future; leave it out to run now`);
  }
  return parsed as Record<string, unknown>;
}

function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError('must be a whole number from 1 to 1000');
  return n;
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function commandStart(options: { role: Role; queues?: QueueName[] }): Promise<void> {
  if (options.queues && options.role !== 'all' && options.role !== 'worker') {
    throw new BadInputError(`--queues chooses the queues this process works, and --role ${options.role} runs no workers; use it with --role worker or all`);
  }
  const app = await startApp(config(), { role: options.role, queues: options.queues });
  let signals = 0;
  const shutdown = (signal: string) => {
    signals += 1;
    if (signals > 1) {
      app.services.logger.warn({ signal }, 'second signal: exiting now; active jobs will be re-run as stalled');
      process.exit(1);
    }
    app.services.logger.info({ signal }, 'stopping: no new jobs taken, active jobs may finish');
    app.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        app.services.logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

/** `bullpen migrate`: PostgreSQL only, so it runs while Redis is down; prints what it applied. */
async function commandMigrate(): Promise<void> {
  const cfg = config();
  const logger = createCommandLogger(cfg);
  const database = await openDatabase(cfg, { logger });
  try {
    const { applied } = await migrate(database.db, { logger });
    out(applied.length === 0 ? 'migrations are up to date' : `applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}`);
  } finally {
    await database.close();
  }
}

/** How a waited-for run ended, as `run --wait` prints it. */
interface RunResult {
  job: string;
  partition: string;
  status: string;
  summary?: unknown;
  attempts?: number;
  error?: string;
}

/** Validates and enqueues one run of `jobName` with its deterministic id, and says so. */
async function enqueueJob(services: Services, jobName: string, data: Record<string, unknown>, force: boolean | undefined): Promise<{ definition: JobDefinition; enqueued: Enqueued }> {
  const definition = services.definitions.get(jobName);
  if (!definition) throw new BadInputError(`no job named "${jobName}"; jobs are ${[...services.definitions.keys()].join(', ')}`);
  let enqueued = await enqueueRun(services.queues, definition, data, { force });
  if (!enqueued.created && (await retryIfFailed(enqueued.job))) {
    out(`retrying ${definition.name} partition ${enqueued.partition}: its job ${enqueued.jobId} on queue ${definition.queue} had failed`);
    return { definition, enqueued };
  }
  if (!enqueued.created && (await enqueued.job.getState()) === 'completed') {
    // An earlier run's finished job, kept for a while under the same id: it would answer with its
    // old outcome. The run is made anew, and its claim decides (a partition done is not run again).
    await enqueued.job.remove();
    enqueued = await enqueueRun(services.queues, definition, data, { force });
  }
  out(`${enqueued.created ? 'enqueued' : 'already queued'} ${definition.name} partition ${enqueued.partition} as job ${enqueued.jobId} on queue ${definition.queue}`);
  return { definition, enqueued };
}

/**
 * Waits for an enqueued run to finish, showing its progress (src/run-progress.ts). With no
 * worker on its queue anywhere, at the start or later in the wait, runs one in this process
 * (stopped again before returning), so the wait always ends.
 */
async function waitForRun(services: Services, logger: Logger, definition: JobDefinition, job: Job, partition: string): Promise<RunResult> {
  const cfg = services.config;
  const cleanups: (() => Promise<void>)[] = [];
  try {
    // BullMQ duplicates the shared connection for the blocking reads QueueEvents needs.
    const events = new QueueEvents(definition.queue, { connection: services.redis, prefix: cfg.prefix });
    cleanups.push(() => events.close());
    await events.waitUntilReady();
    const local = await keepAWorker(services, logger, definition.queue, 'this job', out);
    cleanups.push(() => local.stop());
    const progress = await watchRunProgress(events, job, `${definition.name} ${partition}`, { tty: Boolean(process.stderr.isTTY), out });
    cleanups.push(async () => progress.stop());
    try {
      const summary: unknown = await job.waitUntilFinished(events);
      // A completed job that did not run its partition says why in its summary.
      const skipped = summary !== null && typeof summary === 'object' && 'skipped' in summary ? String(summary.skipped) : undefined;
      if (skipped !== undefined) return { job: definition.name, partition, status: 'skipped', summary, error: `not run: ${skipped}` };
      return { job: definition.name, partition, status: 'succeeded', summary };
    } catch (error) {
      const run = await loadRun(services.db, definition.name, partition);
      return { job: definition.name, partition, status: run?.status ?? 'failed', attempts: run?.attempts, error: run?.error ?? coerceError(error).message };
    }
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

/** Logs at warn unless asked for more: a one-shot command's own output is what matters. */
function createCommandLogger(cfg: Config): Logger {
  return createLogger({ level: cfg.logLevel === 'info' ? 'warn' : cfg.logLevel });
}

/** A run skipped because there was nothing to do: its partition is done, or is not a session. */
function isDoneSkip(result: RunResult): boolean {
  const reason = (result.summary as { skipped?: unknown } | undefined)?.skipped;
  return result.status === 'skipped' && (reason === 'already done' || reason === 'not an NYSE session');
}

async function commandRun(jobName: string, options: { data?: Record<string, unknown>; wait?: boolean; force?: boolean }): Promise<number> {
  const cfg = config();
  const logger = createCommandLogger(cfg);
  const services = await openServices(cfg, { logger });
  try {
    const { definition, enqueued } = await enqueueJob(services, jobName, options.data ?? {}, options.force);
    if (!options.wait) return 0;
    const result = await waitForRun(services, logger, definition, enqueued.job, enqueued.partition);
    out(JSON.stringify(result, null, 2));
    return result.status === 'succeeded' || isDoneSkip(result) ? 0 : 1;
  } finally {
    await services.close();
  }
}

/** `bullpen report --date`: the nightly report of a date, generated now (replacing any earlier one); prints its files. */
async function commandReport(options: { date: string }): Promise<number> {
  const cfg = config();
  const logger = createCommandLogger(cfg);
  const services = await openServices(cfg, { logger });
  try {
    const { definition, enqueued } = await enqueueJob(services, 'nightly-report', { date: options.date }, true);
    const result = await waitForRun(services, logger, definition, enqueued.job, enqueued.partition);
    if (result.status !== 'succeeded') {
      process.stderr.write(`bullpen: the report of ${options.date} failed: ${result.error ?? result.status}\n`);
      return 1;
    }
    const summary = result.summary as { json: string; html: string; hasTrading: boolean; trades: number; netPnl: string };
    out(`report of ${options.date}: ${summary.hasTrading ? `${summary.trades} trades, net PnL ${summary.netPnl}` : 'no trading that day'}`);
    out(summary.html);
    out(summary.json);
    return 0;
  } finally {
    await services.close();
  }
}

/**
 * Waits for a demo step's run and prints its summary with `render`, or its failure on stderr;
 * returns the result, or undefined when the run did not succeed.
 */
async function waitAndReport(
  services: Services,
  logger: Logger,
  run: { definition: JobDefinition; job: Job; partition: string },
  render: (summary: unknown) => string,
): Promise<RunResult | undefined> {
  const result = await waitForRun(services, logger, run.definition, run.job, run.partition);
  if (result.status !== 'succeeded') {
    process.stderr.write(
      `bullpen: ${result.job} ${result.status} (partition ${result.partition}, attempts ${result.attempts ?? '?'}): ${result.error ?? 'no error recorded'}\n`,
    );
    return undefined;
  }
  out(render(result.summary));
  out('');
  return result;
}

/** The build-rollups job a trade-etl summary names (`rollups_job`), if it is still stored. */
async function requestedRollups(services: Services, summary: unknown): Promise<{ definition: JobDefinition; job: Job; partition: string } | undefined> {
  const id = summary !== null && typeof summary === 'object' ? (summary as { rollups_job?: unknown }).rollups_job : undefined;
  const definition = services.definitions.get('build-rollups');
  if (typeof id !== 'string' || !definition) return undefined;
  const job = await Job.fromId(services.queues.get(definition.queue)!, id);
  if (!job) return undefined;
  return { definition, job, partition: definition.partition(parsePayload(definition, job.data) as never) };
}

/**
 * `bullpen demo`: seed the demo history if oltp is empty, run trade-etl and build-rollups the
 * way `run --wait` does, and print what happened and where to look. Never writes to a
 * non-empty oltp.
 */
async function commandDemo(options: { days: number; daysGiven: boolean }): Promise<number> {
  const cfg = config();
  const logger = createCommandLogger(cfg);
  const services = await openServices(cfg, { logger });
  try {
    const seeded = await seedDemoIfEmpty(services.sourceDb, { days: options.days, now: new Date() });
    if (seeded) {
      out(renderSeeded(seeded, options.days));
    } else {
      const holding = await listOltpTablesWithRows(services.sourceDb);
      out(`oltp already holds rows${holding.length > 0 ? ` (${holding.join(', ')})` : ''}: not seeding (bullpen never writes demo rows into a non-empty oltp)`);
      if (options.daysGiven) out(`--days ${options.days} is ignored`);
    }
    out('');

    // Forced, so a demo is never refused as "already done" for a tick an earlier run claimed.
    const etlJob = await enqueueJob(services, 'trade-etl', {}, true);
    const etl = await waitAndReport(services, logger, { definition: etlJob.definition, job: etlJob.enqueued.job, partition: etlJob.enqueued.partition }, renderEtlSummary);
    if (!etl) return 1;

    // trade-etl asked for a pending build-rollups of its own. Let it finish (and be recorded)
    // first: build-rollups' overlap policy is skip, so ours would be skipped while it runs.
    const requested = await requestedRollups(services, etl.summary);
    if (requested) {
      // It waits ROLLUP_DEBOUNCE_MS for more ETL runs to join it; a demo has no more to come.
      // promote() refuses a job that started meanwhile, which is just as good.
      if (await requested.job.isDelayed()) await requested.job.promote().catch(() => undefined);
      out(`waiting for ${requested.job.id ?? requested.partition}, the build-rollups run trade-etl asked for`);
      if (!(await waitAndReport(services, logger, requested, renderRollupsSummary))) return 1;
    }

    // Its partition (`pending@demo`) is the same every time, so only a forced run runs again.
    const rollupsJob = await enqueueJob(services, 'build-rollups', { pending: true, trigger: 'demo' }, true);
    if (!(await waitAndReport(services, logger, { definition: rollupsJob.definition, job: rollupsJob.enqueued.job, partition: rollupsJob.enqueued.partition }, renderRollupsSummary))) return 1;

    // The nightly report of the last day with fills, as the 23:50 UTC run would write it.
    const [last] = await services.db<{ date: string | null }[]>`select max(trade_date)::text as date from warehouse.fact_trades`;
    if (last?.date) {
      const reportJob = await enqueueJob(services, 'nightly-report', { date: last.date }, true);
      if (!(await waitAndReport(services, logger, { definition: reportJob.definition, job: reportJob.enqueued.job, partition: reportJob.enqueued.partition }, renderReportSummary))) return 1;
    }

    out(renderNextSteps({ config: cfg, databaseUrl: services.databaseUrl, totals: await loadWarehouseTotals(services.db) }));
    return 0;
  } finally {
    await services.close();
  }
}

function ago(iso: string | null, now: Date): string {
  if (!iso) return '—';
  const seconds = Math.round((now.getTime() - Date.parse(iso)) / 1000);
  if (seconds < 120) return `${seconds}s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86400)}d ago`;
}

function formatLag(seconds: number): string {
  if (seconds === 0) return '0';
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
}

/** Renders the schedules table; with `next` > 0 each row is followed by its next fire times in its zone. */
export function renderSchedules(statuses: readonly ScheduleStatus[], now: Date, next = 0): string {
  const header = ['NAME', 'CRON', 'TZ', 'NEXT RUN', 'LAST SUCCESS', 'LAST FAILURE', 'LAG', 'STATE'];
  const rows = statuses.map((s) => [
    s.name,
    s.cron,
    s.tz,
    s.next_run ? formatTick(new Date(s.next_run), s.tz) : '—',
    ago(s.last_success, now),
    s.last_failure ? `${ago(s.last_failure, now)} (${s.last_failure_partition})` : '—',
    formatLag(s.lag_seconds),
    [s.paused ? 'paused' : 'active', s.registered ? '' : 'unregistered', s.overridden ? 'overridden' : ''].filter(Boolean).join(','),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const lines = [line(header)];
  statuses.forEach((s, index) => {
    lines.push(line(rows[index]!));
    if (next > 0) {
      for (const tick of nextTicks(s.cron, s.tz, now, next)) lines.push(`    → ${formatTick(tick, s.tz)}`);
    }
  });
  return lines.join('\n');
}

async function commandSchedules(options: { next?: number; json?: boolean }): Promise<void> {
  const cfg = config();
  const services = await openServices(cfg, { logger: createLogger({ level: 'warn' }) });
  try {
    const now = new Date();
    const statuses = await listScheduleStatus({ db: services.db, queues: services.queues, logger: services.logger, metrics: createMetrics({ defaultMetrics: false }) }, services.schedules, now);
    if (options.json) {
      const withNext = statuses.map((s) => ({ ...s, next_runs: nextTicks(s.cron, s.tz, now, options.next ?? 1).map((t) => t.toISOString()) }));
      out(JSON.stringify({ schedules: withNext }, null, 2));
    } else {
      out(renderSchedules(statuses, now, options.next ?? 0));
    }
  } finally {
    await services.close();
  }
}

export function createProgram(): Command {
  const program = new Command('bullpen')
    .description('Scheduled background jobs for trading analytics: BullMQ on Redis, a PostgreSQL warehouse, Bull Board.')
    .showHelpAfterError();

  program.command('migrate').description('apply pending sql/ migrations (under an advisory lock)').action(commandMigrate);

  program
    .command('start')
    .description('migrate, register schedules, run workers and the web app (Bull Board, API, /metrics)')
    .addOption(new Option('--role <role>', 'which part to run').choices(['all', 'worker', 'scheduler', 'web']).default('all'))
    .option('--queues <list>', `queues to work, comma-separated (${QUEUE_NAMES.join(', ')})`, parseQueues)
    .action(commandStart);

  program
    .command('run <job>')
    .description('enqueue one run of a job with its deterministic id')
    .option('--data <json>', 'payload as a JSON object', parseJson)
    .option('--wait', 'wait for the run and print its summary; exit 1 if it fails')
    .option('--force', 'run even if the partition already succeeded')
    .action(async (job: string, options: { data?: Record<string, unknown>; wait?: boolean; force?: boolean }) => {
      process.exitCode = await commandRun(job, options);
    });

  program
    .command('demo')
    .description('seed the demo trading history if oltp is empty, run trade-etl and build-rollups, print where to look')
    .option('--days <n>', 'trading days of history to seed (only into an empty oltp)', parsePositiveInt, DEMO_DAYS)
    .action(async (options: { days: number }, command: Command) => {
      process.exitCode = await commandDemo({ days: options.days, daysGiven: command.getOptionValueSource('days') === 'cli' });
    });

  program.addCommand(createBackfillCommand({ loadConfig: config, createLogger: createCommandLogger }));
  for (const command of createRsCommands({ loadConfig: config, createLogger: createCommandLogger })) program.addCommand(command);

  program
    .command('report')
    .description('generate the nightly report of a date now (JSON and HTML in REPORTS_DIR) and print its paths')
    .requiredOption('--date <YYYY-MM-DD>', 'the date reported on')
    .action(async (options: { date: string }) => {
      process.exitCode = await commandReport(options);
    });

  program
    .command('schedules')
    .description('name, cron, zone, next run, last success, last failure and lag of every schedule')
    .option('--next <n>', 'also list the next N fire times in each schedule’s zone (DST shown as the UTC offset)', parsePositiveInt)
    .option('--json', 'print JSON')
    .action(commandSchedules);

  return program;
}

/** Makes commander throw (a CommanderError carrying its exit code) instead of exiting, for `command` and every subcommand. */
function throwInsteadOfExit(command: Command): void {
  command.exitOverride();
  for (const sub of command.commands) throwInsteadOfExit(sub);
}

/**
 * Runs one command line (`args`: the words after `bullpen`) and answers its exit code without
 * exiting: 0, the code a command set (1 for a failed run, 130 for an interrupted wait), or 1 for
 * bad input and configuration (one line on stderr; anything unexpected with its stack).
 * Commander's own refusals (unknown option, bad argument) print their message and answer its
 * code. `configure` may adjust the program first (tests capture commander's output with it).
 */
export async function runCli(args: readonly string[], configure?: (program: Command) => void): Promise<number> {
  const program = createProgram();
  configure?.(program);
  throwInsteadOfExit(program);
  const outer = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync([...args], { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (thrown) {
    if (thrown instanceof CommanderError) return thrown.exitCode;
    const error = coerceError(thrown);
    if (error instanceof ConfigError || error instanceof BadInputError) process.stderr.write(`bullpen: ${error.message}\n`);
    else process.stderr.write(`bullpen: ${error.stack ?? error.message}\n`);
    return 1;
  } finally {
    process.exitCode = outer;
  }
}

/**
 * Ctrl-C or SIGTERM during a command that installed no handler of its own (every one but
 * `start` and `backfill --wait`): exit as the signal asks, but through process.exit, so that the
 * exit hook stops an embedded PostgreSQL this process started (Node's default skips it).
 */
function exitOnSignal(signal: 'SIGINT' | 'SIGTERM', code: number): void {
  process.on(signal, () => {
    if (process.listenerCount(signal) === 1) process.exit(code);
  });
}

/** `bin/bullpen.js`: runs the command line of this process; exits with its code when it is not 0. */
export async function main(): Promise<void> {
  exitOnSignal('SIGINT', 130);
  exitOnSignal('SIGTERM', 143);
  const code = await runCli(process.argv.slice(2));
  // A long-running command (start) returns 0 while it runs; a failed one exits now, whatever it left open.
  if (code !== 0) process.exit(code);
}
