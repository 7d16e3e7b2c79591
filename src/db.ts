/**
 * PostgreSQL connections (postgres.js). Numeric columns come back as strings, so money is
 * never a binary float in TypeScript.
 */
import postgres, { type Sql } from 'postgres';
import { answersWithin } from './timeout.ts';

export type { Sql };

export interface DbOptions {
  /** Pool size. @defaultValue 10 */
  max?: number;
  /** Shown in pg_stat_activity. @defaultValue bullpen */
  applicationName?: string;
  /** PostgreSQL's plan_cache_mode for this pool. @defaultValue auto */
  planCacheMode?: 'auto' | 'force_custom_plan' | 'force_generic_plan';
}

export function createDb(url: string, options: DbOptions = {}): Sql {
  return postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    transform: { undefined: null },
    connection: {
      application_name: options.applicationName ?? 'bullpen',
      plan_cache_mode: options.planCacheMode ?? 'auto',
      // Room for an ETL batch's temp tables in memory (allocated only by sessions that use them;
      // fixed at a session's first temp table, hence here rather than per transaction).
      temp_buffers: '128MB',
    },
    // Reconnect lazily after a restart of PostgreSQL; a query in flight fails and its job retries.
    idle_timeout: 60,
    connect_timeout: 10,
  });
}

/** Answers whether PostgreSQL responds within `timeoutMs`. */
export async function isDbReady(sql: Sql, timeoutMs = 2000): Promise<boolean> {
  return answersWithin(() => sql`select 1 as ok`.then(() => true), timeoutMs);
}
