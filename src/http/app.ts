/**
 * The one Express app (DESIGN.md "HTTP"). Probes and /metrics are open; Bull Board, the
 * status page and the API take basic auth. Worker and scheduler processes serve only the
 * probes ('probe' mode); the web role serves everything ('full').
 *
 * Two accounts: the admin (everything) and, optionally, a viewer who reads: the status
 * page, /reports/, GET /api/v1/* and a read-only Bull Board at /viewer/queues. A viewer's
 * mutating API call, or the admin board, answers 403. Every mutating request a browser sends
 * from another site's page answers 403 too, whoever's credentials it carries (cross-site.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Config } from '../config.ts';
import type { Sql } from '../db.ts';
import type { BackfillEnqueuer } from '../enrichment/backfills.ts';
import { ConfigError } from '../errors.ts';
import type { JobDefinition } from '../job-definition.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { QueueMap } from '../queues.ts';
import type { Redis } from '../redis.ts';
import type { ScheduleStatus } from '../scheduler.ts';
import { authOf, createBasicAuth, forbidViewerWrites, forbidWrites, requireAdmin, type BasicCredentials } from './auth.ts';
import { createBoardRouter } from './board.ts';
import { createCrossSiteGuard } from './cross-site.ts';
import { createEnrichmentRouter } from './enrichment.ts';
import { createErrorHandler, notFoundHandler, wrapAsync } from './error-handler.ts';
import { createCsrfToken, createPartitionsRouter } from './partitions.ts';
import { createProbeRouter } from './probes.ts';
import { createTriggerRateLimit } from './rate-limit.ts';
import { createReportsRouter } from './reports.ts';
import { createRsRouter } from './rs.ts';
import { createStatusPageHandler } from './status-page.ts';

/** Where Bull Board is mounted (also its base path). */
export const BOARD_PATH = '/admin/queues';

/** Where the read-only Bull Board for viewer credentials is mounted (only when they are configured). */
export const VIEWER_BOARD_PATH = '/viewer/queues';

/** Largest JSON body the API accepts. */
export const API_BODY_LIMIT = '100kb';

export interface HttpDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  queues: QueueMap;
  db: Sql;
  /**
   * The pool /readyz asks PostgreSQL through: one of its own, since `select 1` on the jobs' pool
   * waits behind them and would call a busy pool PostgreSQL down. @defaultValue db
   */
  probeDb?: Sql;
  redis: Redis;
  /** Basic-auth credentials for Bull Board, the status page and mutating API calls. */
  credentials: BasicCredentials;
  /**
   * Read-only credentials (BOARD_VIEWER_USER / BOARD_VIEWER_PASSWORD): GETs, the status page,
   * reports and the read-only board at VIEWER_BOARD_PATH. @defaultValue none: no viewer account
   */
  viewerCredentials?: BasicCredentials;
  /** 'full' (role web/all): everything below. 'probe' (role worker/scheduler): only /healthz, /readyz, /metrics. */
  mode: 'full' | 'probe';
  /** Job definitions, for Bull Board's jobDataSchema (one schema per queue; `anyOf` when a queue carries several jobs). */
  definitions: readonly JobDefinition[];
  listSchedules(): Promise<ScheduleStatus[]>;
  /** Called before /metrics serialises (updates gauges from Redis/PostgreSQL). */
  beforeScrape(): Promise<void>;
  /** Queues a backfill's flow (POST /api/v1/enrichment/trigger, resume); without it those answer 503. */
  enqueueBackfill?: BackfillEnqueuer;
  /**
   * What `X-CSRF-Token` must equal on mutating calls from the status page (POST
   * /api/v1/partitions/rerun). @defaultValue createCsrfToken(credentials): the same in every
   * process with these credentials; the value in use is `app.locals.csrfToken`.
   */
  csrfToken?: string;
}

/** Builds the app; `startHttpServer` serves it. Nothing here opens a connection. */
export function createHttpApp(deps: HttpDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  const logger = deps.logger.child({ component: 'http' });
  const csrfToken = deps.csrfToken ?? createCsrfToken(deps.credentials);
  app.locals.csrfToken = csrfToken;

  app.use(createProbeRouter({ logger, metrics: deps.metrics, db: deps.probeDb ?? deps.db, redis: deps.redis, beforeScrape: deps.beforeScrape }));

  if (deps.mode === 'full') {
    const requireAuth = createBasicAuth({ admin: deps.credentials, viewer: deps.viewerCredentials });
    // Right after authentication on every mount (a request without credentials still gets its
    // 401): a mutating request a browser sends from another site's page answers 403, since the
    // browser would attach the operator's cached basic-auth credentials to it.
    const refuseCrossSite = createCrossSiteGuard({ logger, answer: 'error' });
    const boardDeps = { queues: deps.queues, definitions: deps.definitions, logger };

    // Authentication first, so nothing of the board (not even its assets) is served without it.
    app.use(BOARD_PATH, requireAuth, refuseCrossSite, requireAdmin, createBoardRouter({ basePath: BOARD_PATH, ...boardDeps }));
    if (deps.viewerCredentials) {
      // bull-board's read-only mode hides the buttons and refuses per-queue actions; forbidWrites
      // refuses every non-GET, board-wide ones included, whoever sends it.
      app.use(VIEWER_BOARD_PATH, requireAuth, refuseCrossSite, forbidWrites, createBoardRouter({ basePath: VIEWER_BOARD_PATH, readOnly: true, ...boardDeps }));
    }

    // Every API call takes credentials, reads included: schedules and backfills are internal.
    // A cross-site or a viewer's mutating call stops here with 403, before its body is even read.
    const api = express.Router();
    api.use(requireAuth, createCrossSiteGuard({ logger, answer: 'detail' }), forbidViewerWrites, express.json({ limit: API_BODY_LIMIT }));
    api.get(
      '/v1/schedules',
      wrapAsync(async (_req, res) => {
        res.json({ schedules: await deps.listSchedules() });
      }),
    );
    // Per user and address, counted before the request is validated: refused calls count too.
    api.post('/v1/enrichment/trigger', createTriggerRateLimit({ perMinute: deps.config.enrichmentTriggerRate, logger, redis: deps.redis, prefix: deps.config.prefix }));
    api.use('/v1', createEnrichmentRouter({ db: deps.db, config: deps.config, logger, enqueueBackfill: deps.enqueueBackfill, definitions: deps.definitions }));
    api.use('/v1', createRsRouter({ db: deps.db, logger }));
    api.use('/v1', createPartitionsRouter({ db: deps.db, config: deps.config, logger, queues: deps.queues, definitions: deps.definitions, csrfToken }));
    app.use('/api', api);

    // The nightly reports (REPORTS_DIR and ops.reports), behind the status page's credentials.
    app.use('/reports', requireAuth, refuseCrossSite, createReportsRouter({ config: deps.config, db: deps.db }));

    // The status page: schedules, the partition grid, backfills; it refreshes itself from the API above.
    // A viewer's copy links failed jobs to the read-only board and carries no CSRF token: its
    // re-run buttons answer 403 anyway, and the token, derived from the admin's credentials,
    // is not for viewers to hold.
    const statusPage = (boardPath: string, token: string) =>
      createStatusPageHandler({
        db: deps.db,
        config: deps.config,
        logger,
        definitions: deps.definitions,
        boardPath,
        csrfToken: token,
        listSchedules: deps.listSchedules,
      });
    const adminStatusPage = statusPage(BOARD_PATH, csrfToken);
    const viewerStatusPage = deps.viewerCredentials ? statusPage(VIEWER_BOARD_PATH, '') : adminStatusPage;
    app.get('/', requireAuth, (req, res, next) => {
      const page = authOf(res.locals)?.role === 'viewer' ? viewerStatusPage : adminStatusPage;
      page(req, res, next);
    });
  }

  app.use(notFoundHandler);
  app.use(createErrorHandler(logger));
  return app;
}

export interface HttpServer {
  /** Base URL, e.g. `http://127.0.0.1:3000`. */
  url: string;
  /** The bound port (the real one when 0 was asked for). */
  port: number;
  /** Stops accepting connections and resolves once open ones have finished. */
  close(): Promise<void>;
}

/** How long `close()` lets requests in flight finish before cutting their connections. */
const CLOSE_GRACE_MS = 5000;

/** A host as it goes into a URL (an IPv6 address in brackets). */
export function formatHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** Why listening failed, for the errors an operator's PORT or HOST causes; undefined for any other. */
function describeListenError(error: NodeJS.ErrnoException, host: string, port: number): string | undefined {
  switch (error.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${host}:${port} (PORT, HOST): the port is in use`;
    case 'EACCES':
      return `cannot listen on ${host}:${port} (PORT, HOST): not allowed`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${host}:${port} (PORT, HOST): no such address here`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `HOST: cannot listen on "${host}": ${error.code === 'ENOTFOUND' ? 'no such host' : 'its name could not be resolved now'}; HOST is an address of this machine (127.0.0.1, ::1 or localhost for loopback; 0.0.0.0 or :: for every interface) or a name resolving to one`;
    default:
      return undefined;
  }
}

/** Listens; an operator's bad PORT or HOST rejects with a ConfigError naming it. Resolves to the address listened on. */
async function listen(server: Server, host: string, port: number): Promise<string> {
  // An IPv6 address may be given as in a URL ([::1]); listen() takes it bare.
  const address = /^\[.*\]$/.test(host) ? host.slice(1, -1) : host;
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const message = describeListenError(error, host, port);
      reject(message === undefined ? error : new ConfigError(message, { cause: error }));
    };
    server.once('error', onError);
    server.listen(port, address, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return address;
}

/**
 * Fails as startHttpServer would when `host:port` cannot be bound (no such host, not an address
 * of this machine, the port in use), by binding it and letting go at once: start-up checks this
 * first, so a bad HOST or PORT stops it before anything is migrated, seeded or enqueued.
 */
export async function assertListenable(host: string, port: number): Promise<void> {
  const probe = createServer();
  await listen(probe, host, port);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

/**
 * Listens on `host:port` (0 picks a free port); rejects with a ConfigError naming PORT or HOST
 * when the port or the host cannot be bound.
 */
export async function startHttpServer(app: express.Express, host: string, port: number): Promise<HttpServer> {
  const server = createServer(app);
  const address = await listen(server, host, port);
  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${formatHost(address)}:${bound}`,
    port: bound,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
        timer.unref();
        server.close((error) => {
          clearTimeout(timer);
          if (error) reject(error);
          else resolve();
        });
        // Keep-alive connections with no request in flight would otherwise hold close() open.
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
