/**
 * The per-client limit on POST /api/v1/enrichment/trigger: each call plans and queues a
 * backfill flow, so a script in a loop (or a stolen password) could flood the enrichment
 * queue. express-rate-limit, counting in Redis (rate-limit-redis) under the BullMQ prefix, so
 * every web process behind one balancer shares each client's count.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
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
 * rate-limit-redis's commands, on our client. They are sent only while the client is
 * connected: otherwise they fail (after waiting up to STORE_TIMEOUT_MS for a connection under
 * way) and the request goes through uncounted (see passOnStoreError below) instead of waiting
 * for Redis, and nothing is left in ioredis's offline queue to count it late. A refused call is
 * thus answered, and an accepted one meets the outage where it queues its backfill. The store
 * loads its scripts once and keeps that promise, so a SCRIPT LOAD that failed while Redis was
 * away would leave it failing until a restart: SCRIPT LOAD is answered here with the script's
 * SHA1, and an EVALSHA that Redis does not know (a restarted server) runs the script with EVAL,
 * which loads it.
 */
export function storeCommands(redis: Redis): (command: string, ...args: string[]) => Promise<RedisReply> {
  const scripts = new Map<string, string>();
  const send = async (command: string, args: string[], signal: AbortSignal): Promise<RedisReply> => {
    const [first, ...rest] = args;
    await connected(redis, signal);
    if (command.toUpperCase() !== 'EVALSHA' || first === undefined) return (await redis.call(command, ...args)) as RedisReply;
    try {
      return (await redis.call(command, ...args)) as RedisReply;
    } catch (error) {
      const script = scripts.get(first);
      if (script === undefined || !(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return (await redis.call('EVAL', script, ...rest)) as RedisReply;
    }
  };
  return async (command, ...args) => {
    if (command.toUpperCase() === 'SCRIPT' && args[0]?.toUpperCase() === 'LOAD' && args[1] !== undefined) {
      const sha = createHash('sha1').update(args[1]).digest('hex');
      scripts.set(sha, args[1]);
      return sha;
    }
    return withinStoreTimeout((signal) => send(command, args, signal));
  };
}

/** How long a count may wait for Redis (a connection under way, a slow answer) before the call goes through uncounted. */
const STORE_TIMEOUT_MS = 1000;

/**
 * Resolves once `redis` is connected; fails at once when it is between reconnection attempts,
 * and when `signal` aborts while it waits (nothing is sent after the caller gave up).
 */
async function connected(redis: Redis, signal: AbortSignal): Promise<void> {
  if (redis.status === 'ready') return;
  if (redis.status === 'reconnecting' || redis.status === 'close' || redis.status === 'end') {
    throw new Error(`Redis is not connected (${redis.status}): the request is not counted`);
  }
  if (redis.status === 'wait') redis.connect().catch(() => {});
  await once(redis, 'ready', { signal });
}

/** `command`'s reply, or an error once STORE_TIMEOUT_MS have passed (`command`'s signal then aborts). */
async function withinStoreTimeout(command: (signal: AbortSignal) => Promise<RedisReply>): Promise<RedisReply> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      command(abort.signal),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          abort.abort();
          reject(new Error(`Redis did not answer within ${STORE_TIMEOUT_MS} ms: the request is not counted`));
        }, STORE_TIMEOUT_MS);
      }),
    ]);
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
      error: (error: unknown, context?: unknown) =>
        logger.warn({ err: error, detail: typeof context === 'string' ? context : undefined }, 'enrichment trigger rate limit: store error'),
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
