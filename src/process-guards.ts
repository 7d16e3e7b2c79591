/**
 * What a long-running bullpen process does with a promise rejection nobody handled.
 *
 * postgres.js 3.4.9 runs an array-types query first on every new connection and drops its
 * promise (porsager/postgres#1192, #1205, #1223; no release fixes it). When PostgreSQL ends
 * such a connection before answering (a restart's "terminating connection", a reset, a
 * cancel), that rejection escapes unhandled and Node ends the process: a restart of PostgreSQL
 * that caught a worker opening a connection killed it. The query that asked for the connection
 * fails on its own terms and its job retries, so that rejection is only logged. Any other
 * unhandled rejection is a defect: it is logged and ends the process, as Node would.
 */
import type { Logger } from './logger.ts';

/** The statement postgres.js sends to learn the array types (src/connection.js, fetchArrayTypes). */
export function isPostgresTypeFetchFailure(reason: unknown): boolean {
  if (typeof reason !== 'object' || reason === null) return false;
  const query = (reason as { query?: unknown }).query;
  return typeof query === 'string' && query.includes('pg_catalog.pg_type') && query.includes('typarray');
}

/** Installs the handler; the returned function removes it. */
export function guardUnhandledRejections(logger: Logger): () => void {
  const onRejection = (reason: unknown): void => {
    if (isPostgresTypeFetchFailure(reason)) {
      logger.warn({ err: reason }, 'a PostgreSQL connection was lost while it was being set up; the query that opened it fails and its job retries');
      return;
    }
    logger.fatal({ err: reason }, 'unhandled promise rejection: the process exits');
    throw reason;
  };
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('unhandledRejection', onRejection);
  };
}
