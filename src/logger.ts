/**
 * The one root logger. JSON lines in production; pino-pretty on a terminal when it is
 * installed (it is a dev dependency). Secrets in URLs and credential fields are redacted.
 */
import { createRequire } from 'node:module';
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

const REDACT_PATHS = [
  'password',
  '*.password',
  'config.databaseUrl',
  'config.sourceDatabaseUrl',
  'config.redisUrl',
  'config.boardPassword',
  'config.polygonApiKey',
  'headers.authorization',
  'req.headers.authorization',
  'apiKey',
  '*.apiKey',
];

function hasPrettyTransport(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/** Hides the password of a connection URL (postgres://u:secret@h → postgres://u:***@h). */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@/]*@/, '$1***@');
}

export interface LoggerSettings {
  level: string;
  /** Pretty output; defaults to "stdout is a terminal and pino-pretty is installed". */
  pretty?: boolean;
}

export function createLogger(settings: LoggerSettings): Logger {
  const pretty = settings.pretty ?? (process.stdout.isTTY === true && hasPrettyTransport());
  const options: LoggerOptions = {
    level: settings.level,
    redact: { paths: REDACT_PATHS, censor: '***' },
    base: { pid: process.pid },
  };
  if (pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino(options);
}
