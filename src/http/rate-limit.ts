/**
 * The per-client limit on POST /api/v1/enrichment/trigger: each call plans and queues a
 * backfill flow, so a script in a loop (or a stolen password) could flood the enrichment
 * queue. express-rate-limit, counting in Redis (rate-limit-redis) under the BullMQ prefix, so
 * every web process behind one balancer shares each client's count.
 */
import type { RequestHandler } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import { RedisStore, type RedisReply } from 'rate-limit-redis';
import type { Logger } from '../logger.ts';
import type { Redis } from '../redis.ts';
import { authOf } from './auth.ts';

/** The window the trigger limit counts in. */
export const TRIGGER_RATE_WINDOW_MS = 60_000;

/**
 * The key a request is counted under: the authenticated user and the client address (an
 * IPv6 address by its /56, which one client can hop across).
 */
export function triggerClientKey(user: string | undefined, ip: string | undefined): string {
  return `${user ?? '(anonymous)'}|${ip ? ipKeyGenerator(ip) : '(no address)'}`;
}

export interface TriggerRateLimitOptions {
  /** Calls per minute per client; 0: no limit. */
  perMinute: number;
  logger: Logger;
  /** Where the counts live, shared by every web process on this Redis and prefix. */
  redis: Redis;
  /** BULLPEN_PREFIX: the counts' keys are `<prefix>:rate-limit:enrichment-trigger:<client>`. */
  prefix: string;
}

/**
 * Middleware for the trigger route, after authentication: over the limit it answers 429
 * with `Retry-After` (seconds until the client's window resets) and `{detail}`, the API's
 * error shape; `RateLimit` / `RateLimit-Policy` headers (IETF draft 7) show what is left.
 */
export function createTriggerRateLimit(options: TriggerRateLimitOptions): RequestHandler {
  if (options.perMinute <= 0) return (_req, _res, next) => next();
  const { perMinute, logger, redis } = options;
  return rateLimit({
    windowMs: TRIGGER_RATE_WINDOW_MS,
    store: new RedisStore({
      sendCommand: (command: string, ...args: string[]) => redis.call(command, ...args) as Promise<RedisReply>,
      prefix: `${options.prefix}:rate-limit:enrichment-trigger:`,
    }),
    limit: perMinute,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (req, res) => triggerClientKey(authOf(res.locals)?.user, req.ip),
    // That check reads the keyGenerator's source for ipKeyGenerator; triggerClientKey calls it.
    validate: { keyGeneratorIpFallback: false },
    handler: (req, res, _next, used) => {
      const retryAfter = res.getHeader('Retry-After');
      const user = authOf(res.locals)?.user;
      logger.warn({ user, ip: req.ip, limit: perMinute }, 'enrichment trigger rate limit reached');
      res.status(used.statusCode).json({
        detail: `too many backfill triggers: at most ${perMinute} per minute per client (user and address); retry in ${String(retryAfter ?? 60)} s`,
      });
    },
  });
}
