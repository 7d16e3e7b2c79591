/**
 * The per-client limit on POST /api/v1/enrichment/trigger: each call plans and queues a
 * backfill flow, so a script in a loop (or a stolen password) could flood the enrichment
 * queue. express-rate-limit, counting in Redis (rate-limit-redis) under the BullMQ prefix, so
 * every web process behind one balancer shares each client's count.
 */
import { createHash } from 'node:crypto';
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
 * rate-limit-redis's commands, on our client. While the client is not connected they fail at
 * once (within STORE_TIMEOUT_MS when caught mid-connect) and the request goes through uncounted (see passOnStoreError below) instead of
 * waiting for Redis: a refused call is answered, and an accepted one meets the outage where
 * it queues its backfill. The store loads its scripts once and keeps that promise, so a
 * SCRIPT LOAD that failed while Redis was away would leave it failing until a restart:
 * SCRIPT LOAD is answered here with the script's SHA1, and an EVALSHA that Redis does not
 * know (a restarted server) runs the script with EVAL, which loads it.
 */
export function storeCommands(redis: Redis): (command: string, ...args: string[]) => Promise<RedisReply> {
  const scripts = new Map<string, string>();
  return async (command, ...args) => {
    const [first, ...rest] = args;
    if (command.toUpperCase() === 'SCRIPT' && first?.toUpperCase() === 'LOAD' && rest[0] !== undefined) {
      const sha = createHash('sha1').update(rest[0]).digest('hex');
      scripts.set(sha, rest[0]);
      return sha;
    }
    if (DISCONNECTED.has(redis.status)) throw new Error(`Redis is not connected (${redis.status}): the request is not counted`);
    if (command.toUpperCase() === 'EVALSHA' && first !== undefined) {
      try {
        return await answered(redis.call(command, ...args));
      } catch (error) {
        const script = scripts.get(first);
        if (script === undefined || !(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return await answered(redis.call('EVAL', script, ...rest));
      }
    }
    return await answered(redis.call(command, ...args));
  };
}

/** ioredis states in which a command would wait for a reconnection. */
const DISCONNECTED = new Set(['reconnecting', 'close', 'end']);

/** How long a count may wait for Redis (e.g. one caught connecting to a server that is down) before the call goes through uncounted. */
const STORE_TIMEOUT_MS = 1000;

async function answered(reply: Promise<unknown>): Promise<RedisReply> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return (await Promise.race([
      reply,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${STORE_TIMEOUT_MS} ms: the request is not counted`)), STORE_TIMEOUT_MS);
      }),
    ])) as RedisReply;
  } finally {
    clearTimeout(timer);
  }
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
    store: new RedisStore({ sendCommand: storeCommands(redis), prefix: `${options.prefix}:rate-limit:enrichment-trigger:` }),
    passOnStoreError: true,
    logger: {
      error: (error: unknown) => logger.warn({ err: error }, 'enrichment trigger rate limit: Redis unavailable, request not counted'),
      warn: (message: unknown) => logger.warn({ detail: message }, 'enrichment trigger rate limit'),
    },
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
