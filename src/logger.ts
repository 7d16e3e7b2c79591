/**
 * The one root logger. JSON lines in production; pino-pretty on a terminal when it is
 * installed (it is a dev dependency). Secrets are redacted twice over: credential fields by
 * path (pino `redact`), and passwords in URLs, `apiKey=` parameters and Basic/Bearer values
 * inside any string, error messages and stacks included (`src/redact.ts`).
 */
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { REDACTED, redactSecrets, redactUrl } from './redact.ts';

export type { Logger };
export { redactUrl };

// Fields that hold a secret wherever they appear at the top level or one level down. The
// generated board password is logged on purpose (top-level `boardPassword`, once, loopback only).
const SECRET_FIELDS = ['password', 'apiKey', 'polygonApiKey', 'POLYGON_API_KEY', 'BOARD_PASSWORD', 'BOARD_VIEWER_PASSWORD', 'boardViewerPassword', 'authorization', 'cookie'];
// Connection URLs: kept, with their password masked, so a log still says where it connected.
const URL_FIELDS = ['databaseUrl', 'sourceDatabaseUrl', 'redisUrl', 'DATABASE_URL', 'SOURCE_DATABASE_URL', 'REDIS_URL'];

// The parents a secret is known to be logged under. (A path starting with `*` would run pino's
// redactor on every value of every child's bindings: the worker makes a child per job, so the
// paths name their parents instead; child bindings also pass through redactLogObject, below.)
const SECRET_PARENTS = ['config', 'env', 'options', 'headers', 'req.headers', 'request.headers'];

const REDACT_PATHS = [
  ...[...SECRET_FIELDS, ...URL_FIELDS].flatMap((field) => [field, ...SECRET_PARENTS.map((parent) => `${parent}.${field}`)]),
  'config.boardPassword',
];

const URL_FIELD_SET = new Set(URL_FIELDS);
const SECRET_FIELD_SET = new Set(SECRET_FIELDS);

/** pino's censor: a URL field keeps its URL with the password masked; any other secret becomes `***`. */
function censor(value: unknown, path: string[]): unknown {
  const field = path[path.length - 1];
  if (field !== undefined && URL_FIELD_SET.has(field) && typeof value === 'string') return redactUrl(value);
  return REDACTED;
}

/**
 * The logged object with secret fields masked wherever they sit (up to three levels deep) and
 * secrets inside any string masked. The top-level `boardPassword` is logged on purpose.
 */
function redactLogObject(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (depth >= 3 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => redactLogObject(item, depth + 1));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (SECRET_FIELD_SET.has(key) || (key === 'boardPassword' && depth > 0)) out[key] = item === undefined ? item : REDACTED;
    else if (URL_FIELD_SET.has(key) && typeof item === 'string') out[key] = redactUrl(item);
    else out[key] = redactLogObject(item, depth + 1);
  }
  return out;
}

/** A serialized error (pino gives it a prototype of its own) with every string redacted, as plain data. */
function redactSerialized(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (depth <= 0 || value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || value instanceof Date) return value;
  if (Array.isArray(value)) return value.map((item) => redactSerialized(item, depth - 1));
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactSerialized(item, depth - 1)]));
}

/** pino's `err` serializer, with secrets masked in the message, the stack (causes included) and every string field. */
function serializeError(error: Error): unknown {
  return redactSerialized(pino.stdSerializers.err(error), 4);
}

function hasPrettyTransport(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/**
 * Log-call arguments with secrets masked in every string (the message and its format
 * arguments). When only an error is given, pino would take its raw message as the line's
 * `msg`; the redacted message is passed explicitly instead.
 */
export function redactLogArguments(args: unknown[]): unknown[] {
  const redacted = args.map((arg) => (typeof arg === 'string' ? redactSecrets(arg) : arg));
  const [first] = redacted;
  if (redacted.length === 1 && first !== null && typeof first === 'object') {
    const err = first instanceof Error ? first : (first as { err?: unknown }).err;
    if (err instanceof Error && (first as { msg?: unknown }).msg === undefined) redacted.push(redactSecrets(err.message));
  }
  return redacted;
}

export interface LoggerSettings {
  level: string;
  /** Pretty output; defaults to "stdout is a terminal and pino-pretty is installed". */
  pretty?: boolean;
  /** Where JSON lines go instead of stdout (never pretty then), e.g. an in-memory stream in tests. */
  destination?: DestinationStream;
}

export function createLogger(settings: LoggerSettings): Logger {
  const pretty = settings.destination ? false : (settings.pretty ?? (process.stdout.isTTY === true && hasPrettyTransport()));
  const options: LoggerOptions = {
    level: settings.level,
    redact: { paths: REDACT_PATHS, censor },
    serializers: { err: serializeError },
    // Secret fields and strings in the logged object (up to three levels deep) and in the call's
    // arguments; child bindings get the same in withRedactedChildren.
    formatters: { log: (object) => redactLogObject(object) as Record<string, unknown> },
    hooks: {
      logMethod(args, method) {
        method.apply(this, redactLogArguments(args) as Parameters<typeof method>);
      },
    },
    base: { pid: process.pid },
  };
  if (pretty) {
    return withRedactedChildren(pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } }));
  }
  return withRedactedChildren(settings.destination ? pino(options, settings.destination) : pino(options));
}

/**
 * pino runs no formatter on a child's bindings (it serializes them once, at `child()`), so the
 * root's `child` masks them first. Children inherit the root's methods, so their own children
 * go through it too, each from its parent.
 */
function withRedactedChildren(logger: Logger): Logger {
  const child = logger.child;
  logger.child = function (this: Logger, bindings: Record<string, unknown>, options?: Parameters<typeof child>[1]) {
    return child.call(this, redactLogObject(bindings) as Record<string, unknown>, options);
  } as typeof child;
  return logger;
}
