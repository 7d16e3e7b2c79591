/**
 * `bullpen` — the command line. Each command loads and validates the configuration first;
 * a bad value stops it with a message naming the variable, and exit code 1.
 */
import { QueueEvents, type Job } from 'bullmq';
import { Command, InvalidArgumentError, Option } from 'commander';
import { startApp, openServices, type Role } from './app.ts';
import { loadConfig, type Config } from './config.ts';
import { formatTick, nextTicks } from './cron.ts';
import { enqueueRun } from './enqueue.ts';
import { BadInputError, ConfigError, coerceError } from './errors.ts';
import { createLogger } from './logger.ts';
import { createMetrics } from './metrics.ts';
import { QUEUE_NAMES, type QueueName } from './queues.ts';
import { createRunRecorder, loadRun } from './runs.ts';
import { listScheduleStatus, type ScheduleStatus } from './scheduler.ts';
import { startWorkers, stopWorkers } from './worker.ts';

function config(): Config {
  return loadConfig(process.env);
}

function parseQueues(value: string): QueueName[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
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

async function commandMigrate(): Promise<void> {
  const services = await openServices(config());
  try {
    out('migrations are up to date');
  } finally {
    await services.close();
  }
}

async function commandRun(jobName: string, options: { data?: Record<string, unknown>; wait?: boolean; force?: boolean }): Promise<number> {
  const cfg = config();
  const logger = createLogger({ level: cfg.logLevel === 'info' ? 'warn' : cfg.logLevel });
  const services = await openServices(cfg, { logger });
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const definition = services.definitions.get(jobName);
    if (!definition) throw new BadInputError(`no job named "${jobName}"; jobs are ${[...services.definitions.keys()].join(', ')}`);
    const enqueued = await enqueueRun(services.queues, definition, options.data ?? {}, { force: options.force });
    out(`${enqueued.created ? 'enqueued' : 'already queued'} ${definition.name} partition ${enqueued.partition} as job ${enqueued.jobId} on queue ${definition.queue}`);
    if (!options.wait) return 0;

    const queue = services.queues.get(definition.queue)!;
    // BullMQ duplicates the shared connection for the blocking reads QueueEvents needs.
    const events = new QueueEvents(definition.queue, { connection: services.redis, prefix: cfg.prefix });
    cleanups.push(() => events.close());
    await events.waitUntilReady();
    // With no worker on that queue anywhere, run one here so --wait always finishes.
    if ((await queue.getWorkers()).length === 0) {
      out(`no worker is running for queue ${definition.queue}: running this job in this process`);
      const metrics = createMetrics({ defaultMetrics: false });
      const recorder = createRunRecorder(services.db, { worker: `cli:${process.pid}` });
      const workers = startWorkers(
        { config: cfg, db: services.db, sourceDb: services.sourceDb, logger, metrics, recorder, queues: services.queues, definitions: services.definitions },
        { connection: services.redis, queues: [definition.queue] },
      );
      cleanups.push(async () => {
        await stopWorkers(workers, cfg.shutdownTimeoutMs, logger);
        await recorder.drain();
      });
    }
    return await waitForJob(enqueued.job, events, services, definition.name, enqueued.partition);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await services.close();
  }
}

async function waitForJob(job: Job, events: QueueEvents, services: Awaited<ReturnType<typeof openServices>>, name: string, partition: string): Promise<number> {
  try {
    const summary: unknown = await job.waitUntilFinished(events);
    out(JSON.stringify({ job: name, partition, status: 'succeeded', summary }, null, 2));
    return 0;
  } catch (error) {
    const run = await loadRun(services.db, name, partition);
    out(JSON.stringify({ job: name, partition, status: run?.status ?? 'failed', attempts: run?.attempts, error: run?.error ?? coerceError(error).message }, null, 2));
    return 1;
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
    .command('schedules')
    .description('name, cron, zone, next run, last success, last failure and lag of every schedule')
    .option('--next <n>', 'also list the next N fire times in each schedule’s zone (DST shown as the UTC offset)', parsePositiveInt)
    .option('--json', 'print JSON')
    .action(commandSchedules);

  return program;
}

async function main(): Promise<void> {
  try {
    await createProgram().parseAsync(process.argv);
  } catch (thrown) {
    const error = coerceError(thrown);
    if (error instanceof ConfigError || error instanceof BadInputError) process.stderr.write(`bullpen: ${error.message}\n`);
    else process.stderr.write(`bullpen: ${error.stack ?? error.message}\n`);
    process.exit(1);
  }
}

await main();
