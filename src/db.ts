/**
 * PostgreSQL connections (postgres.js). Numeric columns come back as strings, so money is
 * never a binary float in TypeScript.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import postgres, { type Sql } from 'postgres';
import { ConfigError } from './errors.ts';
import { redactUrl } from './redact.ts';
import { answersWithin } from './timeout.ts';

export type { Sql };

export interface DbOptions {
  /** Pool size. @defaultValue 10 */
  max?: number;
  /** Shown in pg_stat_activity. @defaultValue bullpen */
  applicationName?: string;
  /** PostgreSQL's plan_cache_mode for this pool. @defaultValue auto */
  planCacheMode?: 'auto' | 'force_custom_plan' | 'force_generic_plan';
  /** Other run-time settings for this pool's sessions. */
  settings?: Readonly<Record<string, string>>;
}

/** What postgres.js passes to a custom socket factory (the parsed connection options). */
interface SocketTarget {
  host: string[];
  port: number[];
  path?: string | false;
  connect_timeout?: number;
}

/** ReadyForQuery ('Z') ends each statement; its status byte is 'I' outside a transaction block. */
const READY_FOR_QUERY = 0x5a;
const STATUS_IDLE = 0x49;
/** A connection dropped inside a transaction reports 'close' once its writes have stopped this long… */
const DROPPED_QUIET_MS = 50;
/** …but one dropped between statements (the transaction computing) first waits up to this long for its next write. */
const DROPPED_HOLD_MS = 30_000;
const EMPTY = Buffer.alloc(0);
/** A refused connection fails by then even if postgres.js wrote nothing to it. */
const REFUSED_FALLBACK_MS = 100;

/**
 * The socket postgres.js sees: the real one, passed through, except when the server drops a
 * connection inside a transaction. postgres.js 3.4.9 (porsager/postgres#1208, in no release
 * yet) pools a connection again on 'close' and nulls its socket, while `sql.begin()` still
 * writes through it: its ROLLBACK, from a setImmediate that dereferences the null socket (an
 * uncatchable TypeError: every PostgreSQL restart with a transaction in flight killed the
 * worker), or the transaction's next statements, into the connection's next session outside
 * any transaction. Here such a connection first reports an error (failing the statements in
 * flight, so the transaction gives up), fails every later write the same way, and reports
 * 'close' once the writes have stopped. Any other close is passed on in the next check phase,
 * after a write postgres.js has already scheduled: a close that cancels one leaves its write
 * timer set, and the connection could never send again.
 */
class GuardedSocket extends EventEmitter {
  readonly host: string | undefined;
  readonly port: number | undefined;
  private inTransaction = false;
  private carry = EMPTY;
  private skip = 0;
  private dropped: Error | undefined;
  private droppedAt = 0;
  private lastWrite = 0;
  private lastReady = 0;
  /** A statement was waiting for the server when it went away (written after the last ReadyForQuery). */
  private waiting = false;
  private written = false;
  private ending = false;
  private closeArgs: unknown[] | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly socket: net.Socket) {
    super();
    this.host = socket.remoteAddress;
    this.port = socket.remotePort;
    socket.on('data', (data: Buffer) => {
      this.track(data);
      this.emit('data', data);
    });
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', (error: Error) => {
      if (this.closed) return;
      if (this.inTransaction && !this.ending) this.dropped ??= error;
      this.emit('error', error);
    });
    socket.on('close', (hadError: boolean) => this.onClose(hadError));
  }

  get readyState(): string {
    return this.socket.readyState;
  }

  write(chunk: Uint8Array | string, callback?: (error?: Error | null) => void): boolean {
    this.lastWrite = performance.now();
    if (!this.dropped) return this.socket.write(chunk, callback);
    this.written = true;
    const error = this.dropped;
    process.nextTick(() => {
      callback?.(error);
      if (!this.closed) this.emit('error', error);
    });
    return true;
  }

  end(data?: Uint8Array): this {
    this.ending = true;
    if (data) this.socket.end(data);
    else this.socket.end();
    if (this.closeArgs) this.passClose();
    return this;
  }

  destroy(error?: Error): this {
    this.ending = true;
    this.socket.destroy(error);
    if (this.closeArgs) this.passClose();
    return this;
  }

  pause(): this {
    this.socket.pause();
    return this;
  }

  resume(): this {
    this.socket.resume();
    return this;
  }

  setKeepAlive(enable?: boolean, delayMs?: number): this {
    this.socket.setKeepAlive(enable, delayMs);
    return this;
  }

  private onClose(hadError: boolean): void {
    this.closeArgs = [hadError];
    if (this.ending || !this.inTransaction) {
      this.passClose();
      return;
    }
    if (!this.dropped) {
      this.dropped = Object.assign(new Error(`write CONNECTION_CLOSED ${this.host}:${this.port}`), {
        code: 'CONNECTION_CLOSED',
        errno: 'CONNECTION_CLOSED',
        address: this.host,
        port: this.port,
      });
      this.emit('error', this.dropped);
    }
    this.droppedAt = performance.now();
    // Waiting on a statement, the transaction fails now: what it writes next (its ROLLBACK) may
    // be queued behind that statement and never written. Between statements it is computing,
    // and writes again when done: close before that, and the write would hit the null socket.
    this.waiting = this.lastWrite > this.lastReady;
    this.waitForQuiet();
  }

  private waitForQuiet(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const now = performance.now();
      const quiet = now - this.lastWrite >= DROPPED_QUIET_MS;
      if (quiet && (this.waiting || this.written || now - this.droppedAt >= DROPPED_HOLD_MS)) this.passClose();
      else this.waitForQuiet();
    }, DROPPED_QUIET_MS);
    this.timer.unref();
  }

  private passClose(): void {
    clearTimeout(this.timer);
    const lastWrite = this.lastWrite;
    setImmediate(() => {
      if (this.closed) return;
      // A write in the meantime on a dropped connection: its transaction is still giving up.
      if (this.dropped && this.lastWrite !== lastWrite && !this.ending) {
        this.waitForQuiet();
        return;
      }
      this.closed = true;
      this.emit('close', ...(this.closeArgs ?? [false]));
    });
  }

  /** Follows the server's messages (a type byte, then a length counting itself) to each ReadyForQuery's status. */
  private track(data: Buffer): void {
    let at = 0;
    if (this.skip > 0) {
      at = Math.min(this.skip, data.length);
      this.skip -= at;
      if (this.skip > 0) return;
    }
    let buffer = data;
    if (this.carry.length > 0) {
      buffer = Buffer.concat([this.carry, data.subarray(at)]);
      at = 0;
    }
    while (buffer.length - at >= 5) {
      const end = at + 1 + buffer.readUInt32BE(at + 1);
      if (buffer[at] === READY_FOR_QUERY) {
        if (end > buffer.length) break;
        this.inTransaction = buffer[at + 5] !== STATUS_IDLE;
        this.lastReady = performance.now();
      }
      if (end > buffer.length) {
        this.skip = end - buffer.length;
        at = buffer.length;
        break;
      }
      at = end;
    }
    this.carry = at < buffer.length ? Buffer.from(buffer.subarray(at)) : EMPTY;
  }
}

/**
 * Opens the connection's socket with Nagle's algorithm off. postgres.js writes a COPY's final
 * CopyDone as its own tiny packet; with Nagle on it waits for the server's delayed ACK, about
 * 40 ms per COPY, which dominated every chunked load. Tries each host in turn, as postgres.js does.
 *
 * Never rejects: when no host answers it hands back a socket that fails with the last error.
 * postgres.js returns a connection to its pool only on the socket's 'close'; a rejected factory
 * left the connection stuck in "connecting", so once PostgreSQL had refused `max` connects (a
 * restart) every later query waited forever and only a process restart recovered.
 */
async function openNoDelaySocket(target: SocketTarget): Promise<net.Socket> {
  const attempts: (() => net.Socket)[] = target.path
    ? [() => net.connect({ path: target.path as string })]
    : target.host.map((host, i) => () => net.connect({ host, port: target.port[i] ?? target.port[0] ?? 5432, noDelay: true }));
  let lastError: unknown;
  for (const open of attempts) {
    try {
      const socket = await new Promise<net.Socket>((resolve, reject) => {
        const socket = open();
        const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), (target.connect_timeout ?? 30) * 1000);
        const onError = (error: Error) => {
          clearTimeout(timer);
          reject(error);
        };
        socket.once('connect', () => {
          clearTimeout(timer);
          socket.off('error', onError);
          resolve(socket);
        });
        socket.once('error', onError);
      });
      return new GuardedSocket(socket) as unknown as net.Socket;
    } catch (error) {
      lastError = error;
    }
  }
  return new RefusedSocket(lastError instanceof Error ? lastError : new Error(String(lastError))) as unknown as net.Socket;
}

/**
 * What the factory hands back when no host answered. postgres.js writes its startup message
 * to it from a setImmediate; once that write has been made, 'error' fails the query that asked
 * for the connection and 'close' puts the connection back in the pool. (Closing before that
 * write would cancel it and leave postgres.js's write timer set: the connection would never
 * send again, and time out on every later connect.)
 */
class RefusedSocket extends EventEmitter {
  readonly readyState = 'closed';
  private failed = false;

  constructor(private readonly error: Error) {
    super();
    // Nothing written (a connect timeout's destroy comes first, say): fail anyway.
    setTimeout(() => this.fail(), REFUSED_FALLBACK_MS).unref();
  }

  write(_chunk: unknown, callback?: (error?: Error | null) => void): boolean {
    process.nextTick(() => callback?.(this.error));
    this.fail();
    return true;
  }

  end(): this {
    this.fail();
    return this;
  }

  destroy(): this {
    this.fail();
    return this;
  }

  pause(): this {
    return this;
  }

  resume(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  private fail(): void {
    if (this.failed) return;
    this.failed = true;
    process.nextTick(() => {
      this.emit('error', this.error);
      // Not "had an error": postgres.js would hold queued queries back for a growing delay (up to
      // 20 s) before connecting again; each fails at once instead, and its job's backoff spaces the retries.
      this.emit('close', false);
    });
  }
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
      // Dates and timestamps are read as text in ISO form (postgres.js's parsers, the rollups'
      // `::text` dates), whatever the server's or the database's default.
      DateStyle: 'ISO, MDY',
      plan_cache_mode: options.planCacheMode ?? 'auto',
      // Room for an ETL batch's temp tables in memory (allocated only by sessions that use them;
      // fixed at a session's first temp table, hence here rather than per transaction).
      temp_buffers: '128MB',
      ...options.settings,
    },
    // An idle connection is kept 10 minutes: a job that runs every few minutes then finds a backend
    // whose catalog caches and parsed statements are warm (a one-day rollup run on a new
    // connection takes ~90 ms, on a warm one ~65). After a restart of PostgreSQL each reconnects
    // lazily; a query in flight fails and its job retries.
    idle_timeout: 600,
    connect_timeout: 10,
  });
}

/**
 * A pool whose database has answered once: a command that cannot reach it (refused, unknown
 * host, no such database, bad password) stops with one line naming `variable` and the URL with
 * its password hidden, instead of a driver's stack trace.
 */
export async function openDb(url: string, variable: string, options: DbOptions = {}): Promise<Sql> {
  const sql = createDb(url, options);
  try {
    await sql`select 1`;
    return sql;
  } catch (error) {
    await sql.end({ timeout: 1 }).catch(() => {});
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`${variable}: cannot connect to ${redactUrl(url)}: ${reason}`, { cause: error });
  }
}

/** Answers whether PostgreSQL responds within `timeoutMs`. */
export async function isDbReady(sql: Sql, timeoutMs = 2000): Promise<boolean> {
  return answersWithin(() => sql`select 1 as ok`.then(() => true), timeoutMs);
}
