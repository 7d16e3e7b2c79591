/**
 * ioredis connections. BullMQ workers need `maxRetriesPerRequest: null` so a blocking
 * command waits through a Redis restart instead of failing.
 */
import { Redis } from 'ioredis';
import { answersWithin } from './timeout.ts';

export type { Redis };

export function createRedis(url: string, options: { lazy?: boolean } = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    lazyConnect: options.lazy ?? false,
    // Back off to at most 2 s between reconnect attempts; never give up.
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
}

/** Answers whether Redis responds to PING within `timeoutMs`. */
export async function isRedisReady(redis: Redis, timeoutMs = 2000): Promise<boolean> {
  if (redis.status !== 'ready') return false;
  return answersWithin(() => redis.ping().then((answer) => answer === 'PONG'), timeoutMs);
}
