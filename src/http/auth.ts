/**
 * HTTP basic authentication for Bull Board, the status page and the API. Credentials are
 * compared over SHA-256 digests with `timingSafeEqual`, so neither the content nor the
 * length of a guess leaks through response timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';

export interface BasicCredentials {
  user: string;
  password: string;
}

/** Realm sent in `WWW-Authenticate`; browsers show it in the login prompt. */
export const AUTH_REALM = 'bullpen';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Compares two strings in time independent of where (or whether) they differ, and of their lengths. */
export function isSafeEqual(a: string, b: string): boolean {
  // Equal-length digests make timingSafeEqual usable for inputs of any length.
  return timingSafeEqual(digest(a), digest(b));
}

/** Whether `given` matches `expected`; both fields are always compared (no short circuit). */
export function isMatchingCredentials(expected: BasicCredentials, given: BasicCredentials): boolean {
  const userOk = isSafeEqual(expected.user, given.user);
  const passwordOk = isSafeEqual(expected.password, given.password);
  return userOk && passwordOk;
}

/**
 * Reads `Authorization: Basic <base64(user:password)>` (RFC 7617). The password is
 * everything after the first colon, so it may contain colons itself.
 */
export function parseBasicAuthorization(header: string | undefined): BasicCredentials | undefined {
  if (!header) return undefined;
  const match = /^Basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(header);
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** The `Authorization` header value for `credentials` (for clients and tests). */
export function formatBasicAuthorization(credentials: BasicCredentials): string {
  return `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`, 'utf8').toString('base64')}`;
}

/**
 * Middleware that lets a request through only with the right basic-auth credentials;
 * otherwise 401 with a `WWW-Authenticate` challenge, so browsers prompt for them.
 */
export function createBasicAuth(credentials: BasicCredentials): RequestHandler {
  if (!credentials.user || !credentials.password) {
    // An empty password would make the board open to anyone who guesses the user name.
    throw new Error('basic auth needs a non-empty user and password');
  }
  const expected = { ...credentials };
  return (req, res, next) => {
    const given = parseBasicAuthorization(req.headers.authorization);
    if (given && isMatchingCredentials(expected, given)) {
      next();
      return;
    }
    res.set('WWW-Authenticate', `Basic realm="${AUTH_REALM}"`);
    res.status(401).json({ error: 'authentication required' });
  };
}
