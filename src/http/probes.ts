/**
 * Unauthenticated endpoints for orchestrators and Prometheus: liveness, readiness and
 * metrics. Every role serves them, so a worker or scheduler can be probed too.
 */
import { Router } from 'express';
import { isDbReady, type Sql } from '../db.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { isRedisReady, type Redis } from '../redis.ts';
import { withTimeout } from '../timeout.ts';
import { wrapAsync } from './error-handler.ts';

/** How long /readyz waits for each service: well inside a typical 5 s probe timeout. */
export const READINESS_TIMEOUT_MS = 1500;

/** How long /metrics waits for `beforeScrape`: inside Prometheus' default 10 s scrape timeout. */
export const SCRAPE_REFRESH_TIMEOUT_MS = 3000;

export interface ProbeDeps {
  logger: Logger;
  metrics: Metrics;
  db: Sql;
  redis: Redis;
  beforeScrape(): Promise<void>;
}

type ServiceState = 'up' | 'down';

export function createProbeRouter(deps: ProbeDeps): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get(
    '/readyz',
    wrapAsync(async (_req, res) => {
      const [redisUp, postgresUp] = await Promise.all([
        isRedisReady(deps.redis, READINESS_TIMEOUT_MS),
        isDbReady(deps.db, READINESS_TIMEOUT_MS),
      ]);
      const redis: ServiceState = redisUp ? 'up' : 'down';
      const postgres: ServiceState = postgresUp ? 'up' : 'down';
      res.set('Cache-Control', 'no-store');
      if (redisUp && postgresUp) {
        res.json({ status: 'ready', redis, postgres });
        return;
      }
      const down = [redisUp ? undefined : 'redis', postgresUp ? undefined : 'postgres'].filter(Boolean);
      const message = `${down.join(' and ')} ${down.length > 1 ? 'are' : 'is'} down (no answer within ${READINESS_TIMEOUT_MS} ms)`;
      res.status(503).json({ status: 'not ready', redis, postgres, message });
    }),
  );

  router.get(
    '/metrics',
    wrapAsync(async (_req, res) => {
      try {
        // Queue commands wait through a Redis outage, so a scrape must not wait with them.
        await withTimeout(deps.beforeScrape(), SCRAPE_REFRESH_TIMEOUT_MS, 'refreshing gauges');
      } catch (error) {
        // A scrape with stale gauges beats no scrape: counters and process metrics still matter.
        deps.logger.warn({ err: error }, 'refreshing gauges before a scrape failed; serving the last values');
      }
      const body = await deps.metrics.registry.metrics();
      res.set('Content-Type', deps.metrics.registry.contentType);
      res.set('Cache-Control', 'no-store');
      res.send(body);
    }),
  );

  return router;
}
