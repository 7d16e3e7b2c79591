/**
 * The few error classes bullpen throws on purpose, and `classifyError`, which decides
 * whether a failure is worth retrying. Permanent errors become BullMQ's
 * UnrecoverableError at the worker boundary so no attempt is wasted on them.
 */
import { ZodError } from 'zod';

/**
 * A configuration value is missing or invalid, or what it points at cannot be used as it is (a
 * database a migration fails on, a HOST that cannot be bound); start-up stops with its message,
 * one line, no stack: the operator fixes the setting or the database, not the code.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A payload or input row is wrong; retrying cannot help. */
export class BadInputError extends Error {
  override name = 'BadInputError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An upstream API answered 429; `retryAfterMs` is its Retry-After, when given. */
export class RateLimitedError extends Error {
  override name = 'RateLimitedError';
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** An upstream service is down, timed out or answered 5xx. */
export class UpstreamUnavailableError extends Error {
  override name = 'UpstreamUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * A market-data source answered, but not with what its format promises (a malformed body, a
 * 4xx other than 429). Permanent: asking again would fetch the same answer.
 */
export class ProviderResponseError extends Error {
  override name = 'ProviderResponseError';
  readonly status: number | undefined;
  constructor(message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options);
    this.status = options?.status;
  }
}

/** Turns anything thrown into an Error, once, at the boundary (graphile-worker's coerceError). */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(`Non-Error thrown: ${JSON.stringify(thrown)}`);
  } catch {
    return new Error(`Non-Error thrown: ${String(thrown)}`);
  }
}

/** Describes a zod failure as `field: problem` pairs, so the message names what is wrong. */
export function describeZodError(error: ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(payload)'}: ${issue.message}`)
    .join('; ');
}

export type ErrorClass = 'retryable' | 'permanent';

// Node and driver codes that mean "the other side went away", worth another attempt.
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  // PostgreSQL SQLSTATEs: serialization failure, deadlock, admin shutdown, cannot connect now, too many connections.
  '40001',
  '40P01',
  '57P01',
  '57P02',
  '57P03',
  '53300',
]);

/**
 * Decides whether a failure is retryable (connection lost, timeout, 429, 5xx) or
 * permanent (bad input, a payload failing its schema). Unknown errors are retried:
 * a bounded number of wasted attempts is cheaper than a lost run.
 */
export function classifyError(error: unknown): ErrorClass {
  if (error instanceof BadInputError || error instanceof ZodError || error instanceof ConfigError || error instanceof ProviderResponseError) return 'permanent';
  if (error instanceof RateLimitedError || error instanceof UpstreamUnavailableError) return 'retryable';
  if (error && typeof error === 'object') {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return 'retryable';
    const status = (error as { status?: unknown; statusCode?: unknown }).status ?? (error as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number') {
      if (status === 429 || status >= 500) return 'retryable';
      if (status >= 400) return 'permanent';
    }
    // PostgreSQL data exceptions (class 22) and integrity violations (class 23) are bad input.
    if (typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code)) return 'permanent';
    const cause = (error as { cause?: unknown }).cause;
    if (cause && cause !== error) return classifyError(cause);
  }
  return 'retryable';
}
