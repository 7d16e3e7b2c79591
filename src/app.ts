/**
 * The one start/stop entry point. Like graphile-worker's run(), it registers each resource
 * as it opens it and closes them in reverse order on stop (SIGINT/SIGTERM in the CLI).
 */
import crypto from 'node:crypto';
import os from 'node:os';
import { FlowProducer, type DefaultJobOptions, type Worker } from 'bullmq';
import { JOBS } from '../jobs/index.ts';
import { createRefreshingCache } from './cache.ts';
import type { Config } from './config.ts';
import { createDb, openDb, type DbOptions, type Sql } from './db.ts';
import { seedDemoIfEmbeddedAndEmpty } from './demo/seed-if-empty.ts';
import { ensureLocalRedis, startEmbeddedPostgres } from './embedded.ts';
import { createFlowEnqueuer } from './enrichment/backfills.ts';
import { assertListenable, createHttpApp, startHttpServer } from './http/app.ts';
import type { JobDefinition } from './job-definition.ts';
import { createLogger, redactUrl, type Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { migrate } from './migrate.ts';
import { guardUnhandledRejections } from './process-guards.ts';
import { createGaugeRefresher } from './queue-metrics.ts';
import { closeQueues, createDefaultJobOptions, createQueues, type QueueMap, type QueueName } from './queues.ts';
import { createRedis, type Redis } from './redis.ts';
import { createRunRecorder, createRunsDb, type RunRecorder } from './runs.ts';
import {
  listScheduleStatus,
  registerSchedules,
  resolveSchedules,
  startSchedulerLoop,
  type Schedule,
  type SchedulerLoop,
} from './scheduler.ts';
import { createDefinitionMap, startWorkers, stopWorkers, type WorkerRuntime } from './worker.ts';

export type Role = 'all' | 'worker' | 'scheduler' | 'web';

export interface StartOptions {
  role?: Role;
  /** Queues this process works (role all/worker). @defaultValue all */
  queues?: readonly QueueName[];
  /** @defaultValue the catalogue in jobs/ */
  definitions?: readonly JobDefinition[];
  logger?: Logger;
  /** Skip the HTTP server entirely (CLI one-shot commands). */
  http?: boolean;
}

/** Connections every command needs: database (embedded if unset), Redis, queues. */
export interface Services {
  readonly config: Config;
  readonly logger: Logger;
  readonly db: Sql;
  readonly sourceDb: Sql;
  readonly databaseUrl: string;
  readonly redis: Redis;
  readonly queues: QueueMap;
  /** Adds flows (a parent waiting on its children) on the same connection and prefix. */
  readonly flows: FlowProducer;
  /** The default options every queue applies; flows need them passed explicitly. */
  readonly jobOptions: DefaultJobOptions;
  readonly definitions: ReadonlyMap<string, JobDefinition>;
  readonly schedules: readonly Schedule[];
  close(): Promise<void>;
}

type Releaser = () => Promise<void> | void;

async function releaseAll(releasers: Releaser[], logger: Logger): Promise<void> {
  for (const release of releasers.splice(0).reverse()) {
    try {
      await release();
    } catch (err) {
      logger.warn({ err }, 'error while closing a resource');
    }
  }
}

/** The warehouse database, open; `close()` also stops an embedded PostgreSQL it started. */
export interface Database {
  readonly db: Sql;
  readonly databaseUrl: string;
  close(): Promise<void>;
}

/**
 * Opens DATABASE_URL, or starts the embedded PostgreSQL when it is unset. Nothing else: a
 * command that needs only PostgreSQL (`bullpen migrate`) works while Redis is down.
 */
export async function openDatabase(config: Config, options: { logger: Logger; db?: DbOptions }): Promise<Database> {
  const releasers: Releaser[] = [];
  try {
    let databaseUrl: string;
    if (config.databaseUrl) {
      databaseUrl = config.databaseUrl;
    } else {
      const embedded = await startEmbeddedPostgres({ home: config.home, logger: options.logger });
      databaseUrl = embedded.url;
      releasers.push(() => embedded.stop());
    }
    const db = await openDb(databaseUrl, 'DATABASE_URL', options.db);
    releasers.push(() => db.end({ timeout: 5 }));
    return { db, databaseUrl, close: () => releaseAll(releasers, options.logger) };
  } catch (error) {
    await releaseAll(releasers, options.logger);
    throw error;
  }
}

/**
 * Opens the database (starting the embedded one when DATABASE_URL is unset), migrates it,
 * and connects to Redis (starting a local one when REDIS_URL is unset and nothing answers).
 */
export async function openServices(config: Config, options: { logger?: Logger; definitions?: readonly JobDefinition[]; migrate?: boolean } = {}): Promise<Services> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const releasers: Releaser[] = [];
  try {
    const definitionList = options.definitions ?? JOBS;
    const schedules = resolveSchedules(definitionList, config);

    const redisTarget = await ensureLocalRedis({ url: config.redisUrl, explicit: config.redisUrlExplicit, home: config.home, logger });
    const database = await openDatabase(config, { logger });
    releasers.push(() => database.close());
    const { db, databaseUrl } = database;
    const sourceUrl = config.sourceDatabaseUrl ?? databaseUrl;
    const sourceDb = sourceUrl === databaseUrl ? db : await openDb(sourceUrl, 'SOURCE_DATABASE_URL', { applicationName: 'bullpen-source' });
    if (sourceDb !== db) releasers.push(() => sourceDb.end({ timeout: 5 }));
    if (options.migrate ?? true) await migrate(db, { logger });

    const redis = createRedis(redisTarget.url);
    releasers.push(() => redis.quit().then(() => undefined));
    const jobOptions = createDefaultJobOptions({ attempts: config.jobAttempts, backoffMs: config.jobBackoffMs });
    const queues = createQueues(redis, config.prefix, jobOptions);
    releasers.push(() => closeQueues(queues));
    const flows = new FlowProducer({ connection: redis, prefix: config.prefix });
    releasers.push(() => flows.close());
    logger.debug({ database: redactUrl(databaseUrl), redis: redactUrl(redisTarget.url), prefix: config.prefix }, 'services open');

    return {
      config,
      logger,
      db,
      sourceDb,
      databaseUrl,
      redis,
      queues,
      flows,
      jobOptions,
      definitions: createDefinitionMap(definitionList),
      schedules,
      close: () => releaseAll(releasers, logger),
    };
  } catch (error) {
    await releaseAll(releasers, logger);
    throw error;
  }
}

export interface App {
  readonly services: Services;
  readonly metrics: Metrics;
  readonly recorder: RunRecorder;
  readonly workers: readonly Worker[];
  readonly scheduler: SchedulerLoop | undefined;
  /** Base URL of the HTTP server, when one runs. */
  readonly url: string | undefined;
  stop(): Promise<void>;
}

/**
 * Board credentials: configured, or on loopback `admin` with a random password shown once at
 * start, as a warning, or on stderr when LOG_LEVEL hides warnings: it is the only way in.
 */
function resolveCredentials(config: Config, logger: Logger): { user: string; password: string } {
  if (config.boardUser && config.boardPassword) return { user: config.boardUser, password: config.boardPassword };
  const password = crypto.randomBytes(12).toString('base64url');
  const message = 'BOARD_USER/BOARD_PASSWORD not set: generated credentials for this run (loopback only)';
  if (logger.isLevelEnabled('warn')) logger.warn({ user: 'admin', boardPassword: password }, message);
  else process.stderr.write(`bullpen: ${message}: user admin, password ${password}\n`);
  return { user: 'admin', password };
}

/** Starts the parts of bullpen that `role` asks for; `stop()` closes them in reverse order. */
export async function startApp(config: Config, options: StartOptions = {}): Promise<App> {
  const role = options.role ?? 'all';
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const wantsHttp = options.http ?? true;
  const full = role === 'all' || role === 'web';
  const serves = wantsHttp && (full || config.portExplicit);
  // A HOST or PORT that cannot be bound stops start-up before anything is migrated or seeded.
  if (serves) await assertListenable(config.host, config.port);
  // Before the first connection opens; removed last, after every connection has closed.
  const unguard = guardUnhandledRejections(logger);
  let services: Services;
  try {
    services = await openServices(config, { logger, definitions: options.definitions });
  } catch (error) {
    unguard();
    throw error;
  }
  const releasers: Releaser[] = [unguard, () => services.close()];
  try {
    // Before any worker or schedule starts, so the first trade-etl run finds the rows.
    await seedDemoIfEmbeddedAndEmpty({ config, sourceDb: services.sourceDb, logger });
    const metrics = createMetrics();
    const runsDb = createRunsDb(services.databaseUrl);
    releasers.push(() => runsDb.end({ timeout: 5 }));
    const recorder = createRunRecorder(runsDb, {
      worker: `${os.hostname()}:${process.pid}`,
      staleAfterSeconds: Math.max(90, Math.ceil((3 * config.lockDurationMs) / 1000)),
    });
    releasers.push(() => recorder.drain());
    const catchupRuntime = { db: services.db, queues: services.queues, logger, metrics };

    // The web server binds before any schedule or worker starts: a port in use stops start-up
    // before anything is enqueued or run. The page, the API and /metrics share one schedules
    // listing, fresh for a second; up to a minute old it is still answered at once while one
    // load replaces it.
    const scheduleStatus = createRefreshingCache({ freshMs: 1000, maxStaleMs: 60_000 }, () => listScheduleStatus(catchupRuntime, services.schedules, new Date()));

    let url: string | undefined;
    if (serves) {
      const backfillJob = services.definitions.get('enrichment-backfill');
      const probeDb = createDb(services.databaseUrl, { max: 1, applicationName: 'bullpen-probe' });
      releasers.push(() => probeDb.end({ timeout: 5 }));
      const app = createHttpApp({
        config,
        logger,
        metrics,
        queues: services.queues,
        db: services.db,
        probeDb,
        redis: services.redis,
        credentials: full ? resolveCredentials(config, logger) : { user: '', password: '' },
        viewerCredentials:
          full && config.boardViewerUser && config.boardViewerPassword ? { user: config.boardViewerUser, password: config.boardViewerPassword } : undefined,
        mode: full ? 'full' : 'probe',
        definitions: [...services.definitions.values()],
        listSchedules: () => scheduleStatus(),
        // Every process serving /metrics reports the schedule and deadline gauges from the
        // record, whether or not it runs the scheduler: a scheduler process often serves no HTTP.
        beforeScrape: createGaugeRefresher({ metrics, queues: services.queues, db: services.db, schedules: services.schedules, listSchedules: () => scheduleStatus() }),
        enqueueBackfill: backfillJob ? createFlowEnqueuer(services.flows, backfillJob, services.jobOptions) : undefined,
      });
      const server = await startHttpServer(app, config.host, config.port);
      url = server.url;
      releasers.push(() => server.close());
      logger.info({ url, board: full ? `${url}/admin/queues` : undefined }, full ? 'web: Bull Board, API and /metrics' : 'probes and /metrics');
    }

    let scheduler: SchedulerLoop | undefined;
    if (role === 'all' || role === 'scheduler') {
      await registerSchedules(services.queues, services.schedules, logger);
      scheduler = startSchedulerLoop(catchupRuntime, services.schedules, config.schedulerIntervalMs);
      const loop = scheduler;
      releasers.push(() => loop.stop());
    }

    let workers: Worker[] = [];
    if (role === 'all' || role === 'worker') {
      const runtime: WorkerRuntime = {
        config,
        db: services.db,
        sourceDb: services.sourceDb,
        logger,
        metrics,
        recorder,
        queues: services.queues,
        definitions: services.definitions,
        flows: services.flows,
        jobOptions: services.jobOptions,
      };
      workers = startWorkers(runtime, { connection: services.redis, queues: options.queues });
      const active = workers;
      releasers.push(() => stopWorkers(active, config.shutdownTimeoutMs, logger));
      logger.info({ queues: workers.map((w) => w.name) }, 'workers started');
    }

    let stopping: Promise<void> | undefined;
    return {
      services,
      metrics,
      recorder,
      workers,
      scheduler,
      url,
      stop() {
        stopping ??= releaseAll(releasers, logger);
        return stopping;
      },
    };
  } catch (error) {
    await releaseAll(releasers, logger);
    throw error;
  }
}
