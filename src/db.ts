/**
 * PostgreSQL connections (postgres.js). Numeric columns come back as strings, so money is
 * never a binary float in TypeScript.
 */
import net from 'node:net';
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

/** What postgres.js passes to a custom socket factory (the parsed connection options). */
interface SocketTarget {
  host: string[];
  port: number[];
  path?: string | false;
  connect_timeout?: number;
}

/**
 * Opens the connection's socket with Nagle's algorithm off. postgres.js writes a COPY's final
 * CopyDone as its own tiny packet; with Nagle on it waits for the server's delayed ACK, about
 * 40 ms per COPY, which dominated every chunked load. Tries each host in turn, as postgres.js does.
 */
async function openNoDelaySocket(target: SocketTarget): Promise<net.Socket> {
  const attempts: (() => net.Socket)[] = target.path
    ? [() => net.connect({ path: target.path as string })]
    : target.host.map((host, i) => () => net.connect({ host, port: target.port[i] ?? target.port[0] ?? 5432, noDelay: true }));
  let lastError: unknown;
  for (const open of attempts) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const socket = open();
        const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), (target.connect_timeout ?? 30) * 1000);
        socket.once('connect', () => {
          clearTimeout(timer);
          socket.off('error', reject);
          resolve(socket);
        });
        socket.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

/** postgres.js drops TLS when it is handed a socket, so only plain connections get ours. */
function wantsTls(url: string): boolean {
  const params = new URL(url).searchParams;
  const mode = params.get('sslmode') ?? params.get('ssl');
  return mode !== null && mode !== 'disable' && mode !== 'false';
}

export function createDb(url: string, options: DbOptions = {}): Sql {
  return postgres(url, {
    ...(wantsTls(url) ? {} : { socket: (target: SocketTarget) => openNoDelaySocket(target) }),
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
