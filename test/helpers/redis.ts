/**
 * Redis helpers for tests: a BullMQ prefix per test file, and cleanup of its keys.
 * Tests never share a prefix, so files can run in parallel against one Redis.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { answersWithin } from '../../src/timeout.ts';

/** The Redis tests use. @defaultValue redis://127.0.0.1:6379 (override with TEST_REDIS_URL) */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A fresh prefix `bullpen-test-<label>-<random>`; the label is reduced to `[a-z0-9-]`. */
export function createTestPrefix(label: string): string {
  const safe = label.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'x';
  return `bullpen-test-${safe}-${randomBytes(4).toString('hex')}`;
}

/** Opens a connection that fails fast instead of retrying forever (for tests and preflight). */
export function createFailFastRedis(url: string = TEST_REDIS_URL, connectTimeoutMs = 2000): Redis {
  return new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: connectTimeoutMs,
    retryStrategy: () => null,
  });
}

/** Answers whether the Redis at `url` replies PONG within `timeoutMs`. Never throws. */
export async function pingRedis(url: string = TEST_REDIS_URL, timeoutMs = 2000): Promise<boolean> {
  const redis = createFailFastRedis(url, timeoutMs);
  redis.on('error', () => {});
  try {
    return await answersWithin(() => redis.connect().then(() => redis.ping()).then((answer) => answer === 'PONG'), timeoutMs);
  } finally {
    // disconnect() on a connection that already ended arms a 2 s timer nothing clears.
    if (redis.status !== 'end') redis.disconnect();
  }
}

// SCAN MATCH treats these as glob syntax; a prefix must match only itself.
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * Deletes every key `<prefix>:*` with SCAN + UNLINK; returns how many were deleted.
 * Given a URL it opens and closes its own connection; a passed connection stays open.
 */
export async function cleanupPrefix(redisOrUrl: Redis | string, prefix: string): Promise<number> {
  const redis = typeof redisOrUrl === 'string' ? createFailFastRedis(redisOrUrl) : redisOrUrl;
  const owned = typeof redisOrUrl === 'string';
  if (owned) redis.on('error', () => {}); // failures surface as rejected commands
  try {
    if (owned) await redis.connect();
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    if (owned && redis.status !== 'end') redis.disconnect();
  }
}
