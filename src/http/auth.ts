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

/** Who a request authenticated as: the admin (everything) or a viewer (reads only). */
export type Role = 'admin' | 'viewer';

export interface AuthAccounts {
  /** Full access: Bull Board, the status page, every API call. */
  admin: BasicCredentials;
  /** Read-only access, when configured: GETs, and the read-only board; mutating requests answer 403. */
  viewer?: BasicCredentials;
}

/** Where the authenticator leaves the caller's identity: `res.locals[AUTH_LOCAL]`. */
export const AUTH_LOCAL = 'auth';

export interface Authenticated {
  user: string;
  role: Role;
}

/** The identity `createBasicAuth` recorded for this request, if it ran and passed. */
export function authOf(locals: Record<string, unknown>): Authenticated | undefined {
  return locals[AUTH_LOCAL] as Authenticated | undefined;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Whether a method only reads (RFC 9110 safe methods); everything else counts as mutating. */
export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method.toUpperCase());
}

function assertUsable(credentials: BasicCredentials, what: string): void {
  if (!credentials.user || !credentials.password) {
    // An empty password would make the board open to anyone who guesses the user name.
    throw new Error(`basic auth needs a non-empty ${what} user and password`);
  }
}

/**
 * Middleware that lets a request through only with the admin's or the viewer's basic-auth
 * credentials, recording who it is in `res.locals` (see `authOf`); otherwise 401 with a
 * `WWW-Authenticate` challenge, so browsers prompt for them. Both accounts are always
 * compared, so timing does not tell which one a guess came close to.
 */
export function createBasicAuth(accounts: AuthAccounts | BasicCredentials): RequestHandler {
  const { admin, viewer } = 'admin' in accounts ? accounts : { admin: accounts, viewer: undefined };
  assertUsable(admin, 'admin');
  if (viewer) assertUsable(viewer, 'viewer');
  const expectedAdmin = { ...admin };
  const expectedViewer = viewer ? { ...viewer } : undefined;
  return (req, res, next) => {
    const given = parseBasicAuthorization(req.headers.authorization);
    if (given) {
      const isAdmin = isMatchingCredentials(expectedAdmin, given);
      const isViewer = expectedViewer ? isMatchingCredentials(expectedViewer, given) : false;
      if (isAdmin || isViewer) {
        const identity: Authenticated = { user: given.user, role: isAdmin ? 'admin' : 'viewer' };
        res.locals[AUTH_LOCAL] = identity;
        next();
        return;
      }
    }
    res.set('WWW-Authenticate', `Basic realm="${AUTH_REALM}"`);
    res.status(401).json({ error: 'authentication required' });
  };
}

/**
 * After `createBasicAuth`, on the API: a viewer's mutating request (anything but GET, HEAD, OPTIONS)
 * answers 403; the admin's goes on.
 */
export const forbidViewerWrites: RequestHandler = (req, res, next) => {
  if (authOf(res.locals)?.role === 'viewer' && !isSafeMethod(req.method)) {
    // The API's error shape ({detail}); the status page shows it next to a refused re-run.
    res.status(403).json({ detail: `forbidden: ${authOf(res.locals)?.user ?? 'a viewer'} has read-only (viewer) credentials; ${req.method} needs the admin's` });
    return;
  }
  next();
};

/** After `createBasicAuth`: only the admin goes on; a viewer gets 403 (e.g. the admin Bull Board). */
export const requireAdmin: RequestHandler = (_req, res, next) => {
  if (authOf(res.locals)?.role !== 'admin') {
    res.status(403).json({ error: 'forbidden: this needs the admin credentials (BOARD_USER); viewers have /viewer/queues' });
    return;
  }
  next();
};

/** For the read-only board: any mutating request answers 403, whoever sends it. */
export const forbidWrites: RequestHandler = (req, res, next) => {
  if (!isSafeMethod(req.method)) {
    res.status(403).json({ error: 'forbidden: this board is read-only' });
    return;
  }
  next();
};
