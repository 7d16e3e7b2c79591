/**
 * The partition grid API (issue 8), mounted under /api/v1 on the authenticated API router:
 *
 *   GET  /api/v1/partitions?job=&from=&to=   the grid as JSON (src/status/partitions.ts)
 *   POST /api/v1/partitions/rerun            {"job": "refresh-rs", "date": "2026-11-20"}
 *
 * Errors answer `{ "detail": "…" }` as the other API routes do: 400 names the field, 403 a
 * request refused as cross-site, 409 a partition that is not failed or missing, or already
 * queued or running.
 *
 * A re-run of a date-partitioned job uses the partition's deterministic id `<job>@<date>`:
 * BullMQ's failed job under that id is retried (attempts reset); a job still waiting,
 * delayed or active under it (or the schedule's own job for that date's tick) answers 409;
 * otherwise the run is enqueued with payload `{date}`. trade-etl reads by watermark, so its
 * re-run is a normal run now, which loads whatever the failed day left behind.
 *
 * Cross-site protection. Browsers send basic-auth credentials with cross-site requests too,
 * so basic auth alone would let any page a logged-in operator visits POST here. The POST
 * therefore also needs:
 * - `X-CSRF-Token` equal to this server's token (`createCsrfToken`: an HMAC of the board
 *   credentials, so web processes behind one load balancer sharing BOARD_USER/BOARD_PASSWORD
 *   accept each other's pages; `HttpDeps.csrfToken` / `app.locals.csrfToken`; the status page
 *   embeds it). A custom header cannot be sent cross-origin without a CORS preflight, which
 *   this app never grants, and another origin cannot read the page that holds the token;
 * - `Sec-Fetch-Site`, when the browser sends it, `same-origin` (or `none`): `cross-site` and
 *   `same-site` (a sibling subdomain or another port) are refused;
 * - `Origin`, when present, naming this host (the request's Host header).
 * Anything else answers 403. The last two are the app-wide checks of cross-site.ts, which every
 * mutating request passes; the token is this endpoint's own. Scripts re-run partitions with
 * `bullpen run <job> --data …`.
 */
import { createHmac } from 'node:crypto';
import express, { type RequestHandler } from 'express';
import type { Config } from '../config.ts';
import type { Sql } from '../db.ts';
import { enqueueRun, retryIfFailed } from '../enqueue.ts';
import { BadInputError } from '../errors.ts';
import type { JobDefinition } from '../job-definition.ts';
import type { Logger } from '../logger.ts';
import { createJobId, PENDING_STATE_LIST, PENDING_STATES, type QueueMap } from '../queues.ts';
import { expectedPartitions, isNextTickJob, resolveSchedules, type Schedule } from '../scheduler.ts';
import { GRID_JOBS, loadPartitionCell, loadPartitionGrid } from '../status/partitions.ts';
import { isSafeEqual, parseBasicAuthorization } from './auth.ts';
import { crossSiteRefusal } from './cross-site.ts';
import { createDetailErrorHandler, wrapAsync } from './error-handler.ts';
import { parseDateParam, singleParam } from './params.ts';

/** The header a mutating request from the status page carries its token in. */
export const CSRF_HEADER = 'X-CSRF-Token';

/** A request refused as cross-site (403). */
export class CrossSiteRequestError extends Error {
  override name = 'CrossSiteRequestError';
}

/** A partition that is not failed or missing, or already queued or running (409). */
class ConflictError extends Error {
  override name = 'ConflictError';
}

/**
 * The token for mutating requests from the status page: HMAC-SHA256 of a fixed label keyed by
 * the admin credentials, base64url. Every process with the same credentials has the same token,
 * and it changes with the password; it does not reveal the password.
 */
export function createCsrfToken(credentials: { user: string; password: string }): string {
  return createHmac('sha256', `${credentials.user}\u0000${credentials.password}`).update('bullpen status-page csrf token v1').digest('base64url');
}

/** Middleware refusing (403) a request without this server's token, or sent from another site. */
export function createCsrfGuard(token: string): RequestHandler {
  if (!token) throw new Error('the CSRF guard needs a non-empty token');
  return (req, _res, next) => {
    // The app-wide guard (cross-site.ts) has already run on the API; checked again so this
    // guard stands on its own wherever it is mounted.
    const refusal = crossSiteRefusal(req);
    if (refusal !== undefined) {
      next(new CrossSiteRequestError(`${refusal}; re-run partitions from the status page`));
      return;
    }
    const given = req.get(CSRF_HEADER);
    if (!given || !isSafeEqual(given, token)) {
      next(new CrossSiteRequestError(`refused: the ${CSRF_HEADER} header is ${given ? 'wrong' : 'missing'}; re-run partitions from the status page`));
      return;
    }
    next();
  };
}

export interface PartitionsRouterDeps {
  db: Sql;
  config: Config;
  logger: Logger;
  queues: QueueMap;
  /** Job definitions of this process; grid jobs missing from them are left out. */
  definitions: readonly JobDefinition[];
  /** What `X-CSRF-Token` must equal on the POST. */
  csrfToken: string;
  /** @defaultValue () => new Date() */
  now?: () => Date;
}

// ---------------------------------------------------------------------------------------------
// Values

/** A grid job this process knows, or a BadInputError naming `job` and listing them. */
export function parseGridJob(raw: unknown, definitions: readonly JobDefinition[]): string | undefined {
  const value = singleParam(raw, 'job');
  if (value === undefined) return undefined;
  const known = GRID_JOBS.map((j) => j.job).filter((name) => definitions.some((d) => d.name === name));
  if (!known.includes(value)) throw new BadInputError(`job: unknown job ${JSON.stringify(value)}; the grid's jobs are ${known.join(', ')}`);
  return value;
}

/** The ids BullMQ may hold a scheduled run of `date` under: the schedule's own job for each tick naming it. */
function tickJobIds(schedule: Schedule | undefined, date: string): string[] {
  if (!schedule) return [];
  const day = new Date(`${date}T00:00:00Z`).getTime();
  return expectedPartitions(schedule, new Date(day - 2 * 86_400_000), new Date(day + 3 * 86_400_000))
    .filter((e) => e.partition === date)
    .flatMap((e) => e.ticks.map((tick) => `repeat:${schedule.id}:${tick.getTime()}`));
}

// ---------------------------------------------------------------------------------------------
// Router

/** The partition routes, relative to /api/v1. */
export function createPartitionsRouter(deps: PartitionsRouterDeps): express.Router {
  const router = express.Router();
  const now = deps.now ?? (() => new Date());
  const tz = deps.config.exchangeTz;
  // Resolved on first use: start-up has already validated the overrides.
  let schedules: Schedule[] | undefined;
  const schedulesOf = () => (schedules ??= resolveSchedules(deps.definitions, deps.config));

  router.get(
    '/partitions',
    wrapAsync(async (req, res) => {
      const job = parseGridJob(req.query.job, deps.definitions);
      const from = parseDateParam(req.query.from, 'from');
      const to = parseDateParam(req.query.to, 'to');
      res.json(await loadPartitionGrid(deps.db, { from, to, job, now: now(), definitions: deps.definitions, schedules: schedulesOf(), tz }));
    }),
  );

  router.post(
    '/partitions/rerun',
    createCsrfGuard(deps.csrfToken),
    wrapAsync(async (req, res) => {
      const body: unknown = req.body;
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadInputError('body: must be a JSON object {"job": …, "date": "YYYY-MM-DD"}');
      const input = body as Record<string, unknown>;
      if (input.job === undefined || input.job === '') throw new BadInputError('job: required');
      const job = parseGridJob(input.job, deps.definitions) as string;
      if (input.date === undefined || input.date === '') throw new BadInputError('date: required');
      const date = parseDateParam(input.date, 'date') as string;
      const definition = deps.definitions.find((d) => d.name === job) as JobDefinition;
      const spec = GRID_JOBS.find((j) => j.job === job);

      const found = await loadPartitionCell(deps.db, { job, date, now: now(), definitions: deps.definitions, schedules: schedulesOf(), tz });
      const cell = found?.cell;
      if (cell && !cell.can_rerun) {
        const why = cell.state === 'not_expected' ? `not expected${cell.note ? ` (${cell.note})` : ''}` : cell.state === 'running' ? `running (${cell.job_id ?? cell.partition})` : `done (${cell.partition})`;
        throw new ConflictError(`${job} ${date} is ${why}: only a failed or missing partition is re-run`);
      }
      const queue = deps.queues.get(definition.queue);
      if (!queue) throw new Error(`no queue ${definition.queue} for job ${job}`);
      const user = parseBasicAuthorization(req.headers.authorization)?.user;

      if (spec?.kind === 'touched') {
        // By watermark: one normal run now loads whatever the day left behind.
        // Delayed too: a run waiting out its retry backoff, or queued behind an active run, will still
        // run. Not the schedule's next tick, which its Job Scheduler always keeps delayed.
        const busy = (await queue.getJobs([...PENDING_STATE_LIST], 0, 100)).find((j) => j?.name === job && !isNextTickJob(j));
        if (busy) throw new ConflictError(`a ${job} run is already queued or running (${busy.id}); it loads what ${date} left behind`);
        const enqueued = await enqueueRun(deps.queues, definition, {});
        deps.logger.info({ job, date, jobId: enqueued.jobId, user }, 'partition re-run enqueued from the grid');
        res.status(202).json({ job, date, partition: enqueued.partition, job_id: enqueued.jobId, action: 'enqueued' });
        return;
      }

      const jobId = createJobId(job, date);
      for (const id of [jobId, ...tickJobIds(schedulesOf().find((s) => s.id === job), date)]) {
        const state = await queue.getJobState(id);
        if (PENDING_STATES.has(state)) throw new ConflictError(`${job} ${date} is already queued or running (${id}, ${state})`);
      }
      const stored = await queue.getJob(jobId);
      let retried = false;
      try {
        retried = stored !== undefined && (await retryIfFailed(stored));
      } catch (error) {
        throw new ConflictError(`${job} ${date}: BullMQ job ${jobId} could not be retried (${(error as Error).message})`, { cause: error });
      }
      if (retried) {
        deps.logger.info({ job, date, jobId, user }, 'failed partition retried from the grid');
        res.status(202).json({ job, date, partition: date, job_id: jobId, action: 'retried' });
        return;
      }
      // A completed job under the id would make BullMQ hand it back instead of adding a run.
      if (stored) await stored.remove();
      const enqueued = await enqueueRun(deps.queues, definition, { date });
      if (!enqueued.created) throw new ConflictError(`${job} ${date} is already queued or running (${enqueued.jobId})`);
      deps.logger.info({ job, date, jobId: enqueued.jobId, user }, 'partition re-run enqueued from the grid');
      res.status(202).json({ job, date, partition: enqueued.partition, job_id: enqueued.jobId, action: 'enqueued' });
    }),
  );

  router.use(createDetailErrorHandler(deps.logger, 'partition', (thrown) => thrown instanceof BadInputError ? 400 : thrown instanceof CrossSiteRequestError ? 403 : thrown instanceof ConflictError ? 409 : undefined));
  return router;
}
