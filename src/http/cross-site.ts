/**
 * Refuses mutating requests a browser sends from another site. Basic auth alone does not stop
 * them: a browser resends cached basic-auth credentials with a cross-site form POST (and a
 * form may post `text/plain` or `application/x-www-form-urlencoded` without a CORS preflight),
 * so any page an operator visits could queue a backfill or add a job in Bull Board.
 *
 * Every request other than GET and HEAD is checked, on the API and on both boards:
 * - `Sec-Fetch-Site`, when the browser sends it (every current one does), must be
 *   `same-origin`, or `none` (a request the user started: typed, bookmarked, never another
 *   page's doing); `cross-site` and `same-site` (a sibling subdomain) are refused;
 * - `Origin`, when present, must name this host (the request's `Host` header, so a reverse
 *   proxy in front must pass `Host` through).
 * A request with neither header is no browser's cross-site request: curl, scripts and the
 * CLI send neither, and go on.
 */
import type { Request, RequestHandler } from 'express';
import type { Logger } from '../logger.ts';

/** Methods that only read and are therefore not checked (OPTIONS is: this app grants no CORS). */
const UNCHECKED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD']);

/** The Origin header's host (`host[:port]`), or null for `null`, a malformed value or another scheme. */
function hostOfOrigin(origin: string): string | null {
  try {
    const url = new URL(origin);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.host : null;
  } catch {
    return null;
  }
}

/**
 * Why `req` looks like a browser's request from another site (`Sec-Fetch-Site` other than
 * `same-origin`/`none`, or an `Origin` that is not this host), or undefined when it does not.
 */
export function crossSiteRefusal(req: Request): string | undefined {
  const site = req.get('sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `refused: a ${site} request (Sec-Fetch-Site)`;
  const origin = req.get('origin');
  if (origin !== undefined) {
    const host = req.get('host');
    const originHost = hostOfOrigin(origin);
    if (!host || originHost === null || originHost.toLowerCase() !== host.toLowerCase()) return `refused: Origin ${origin} is not this host (${host ?? 'no Host header'})`;
  }
  return undefined;
}

export interface CrossSiteGuardOptions {
  logger: Logger;
  /** The answer's shape: `{detail}` (the API's) or `{error}` (the rest of the app's). */
  answer: 'detail' | 'error';
}

/**
 * Middleware answering 403 to a mutating request (anything but GET and HEAD) sent from another
 * site; see the module comment. Mount it after authentication (a request without credentials
 * still gets its 401 first) and before any body is read.
 */
export function createCrossSiteGuard(options: CrossSiteGuardOptions): RequestHandler {
  return (req, res, next) => {
    if (UNCHECKED_METHODS.has(req.method.toUpperCase())) {
      next();
      return;
    }
    const refusal = crossSiteRefusal(req);
    if (refusal === undefined) {
      next();
      return;
    }
    const message = `${refusal}; a ${req.method} from another site's page is not accepted: use this app's own pages, or a client that sends no Origin (curl, a script, the CLI)`;
    options.logger.warn({ method: req.method, path: req.originalUrl.split('?')[0], origin: req.get('origin'), secFetchSite: req.get('sec-fetch-site') }, 'cross-site request refused');
    res.status(403).json(options.answer === 'detail' ? { detail: message } : { error: message });
  };
}
