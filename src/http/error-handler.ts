/**
 * Error plumbing for the Express app: `wrapAsync` sends a handler's rejection to the error
 * middleware (bull-board's helpers/wrapAsync.ts), which logs it and answers JSON.
 */
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { redactSecrets } from '../redact.ts';

/**
 * Wraps an async handler so a rejection reaches `next(err)`. Express 5 does this on its
 * own for returned promises; wrapping keeps it explicit and independent of that.
 */
export function wrapAsync(handler: (req: Request, res: Response, next: NextFunction) => Promise<unknown>): RequestHandler {
  return (req, res, next) => {
    handler(req, res, next).catch(next);
  };
}

/** The HTTP status an error asks for: its own 4xx (body-parser sets these), else 500. */
export function statusOf(error: unknown): number {
  if (error && typeof error === 'object') {
    const status = (error as { status?: unknown }).status ?? (error as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) return status;
  }
  return 500;
}

/**
 * Last middleware: logs the error (warn for 4xx, error for 5xx; the logger masks secrets in
 * it) and answers `{ error: message }`, the message with connection-URL passwords and
 * `apiKey=` values masked: a driver error may quote the URL it failed to reach.
 */
export function createErrorHandler(logger: Logger): ErrorRequestHandler {
  return (thrown: unknown, req, res, next) => {
    const err = coerceError(thrown);
    const status = statusOf(thrown);
    const context = { err, method: req.method, path: req.originalUrl.split('?')[0], status };
    if (status >= 500) logger.error(context, 'http request failed');
    else logger.warn(context, 'http request rejected');
    // Too late for a JSON answer: let Express close the connection.
    if (res.headersSent) {
      next(thrown);
      return;
    }
    res.status(status).json({ error: redactSecrets(err.message) });
  };
}

/** JSON 404 for anything no route matched. */
export const notFoundHandler: RequestHandler = (req, res) => {
  res.status(404).json({ error: `not found: ${req.method} ${req.path}` });
};

/**
 * A router's own rejections in the enrichment seed's shape, `{ "detail": "…" }`: `statusFor`
 * maps the errors it knows to a 4xx/503; anything else goes on to the app's handler.
 */
export function createDetailErrorHandler(logger: Logger, area: string, statusFor: (error: unknown) => number | undefined): ErrorRequestHandler {
  return (thrown: unknown, req, res, next) => {
    const status = statusFor(thrown);
    if (status === undefined || res.headersSent) {
      next(thrown);
      return;
    }
    const detail = (thrown as Error).message;
    logger.warn({ method: req.method, path: req.originalUrl.split('?')[0], status, detail }, `${area} request rejected`);
    res.status(status).json({ detail });
  };
}
