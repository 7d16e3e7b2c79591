/**
 * Applies `sql/NNN_snake_name.sql` in order, once each, and records them in
 * `ops.schema_migrations`. Modelled on BullMQ's postgres migrator and graphile-worker's
 * migrate: one transaction, a transaction-scoped advisory lock taken first (so any number
 * of processes may call `migrate` at start-up), then the ledger, then pending files.
 * Files are append-only: an applied file whose checksum changed, a database at a
 * version this code does not know, or a pending file older than the newest applied one
 * stops start-up with a ConfigError. So does a statement PostgreSQL refuses, in one line
 * naming the file with PostgreSQL's message, detail and hint: an operator fixes the database
 * (a view of their own on a table a file drops, say), not the code, so a stack trace would
 * only bury what PostgreSQL said.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Sql } from './db.ts';
import { ConfigError } from './errors.ts';
import type { Logger } from './logger.ts';

/** One migration file as read from disk. */
export interface Migration {
  /** The NNN prefix of the file name. */
  version: number;
  /** The file name without its version prefix and `.sql` (e.g. `ops`). */
  name: string;
  /** The file name (e.g. `001_ops.sql`). */
  file: string;
  /** sha256 of the file's bytes with CRLF line ends read as LF, hex. */
  checksum: string;
  sql: string;
}

export interface MigrateOptions {
  /** Directory holding the migration files. @defaultValue the repository's `sql/` */
  dir?: string;
  logger?: Logger;
  /** How long a file's statement waits for a table lock before the attempt gives up. @defaultValue 5000 */
  lockTimeoutMs?: number;
  /** Attempts before a lock that stays taken stops start-up. @defaultValue 6 */
  lockAttempts?: number;
}

export interface MigrateResult {
  /** File names applied by this call, in order; empty when the database was up to date. */
  applied: string[];
}

/** The repository's `sql/` directory, resolved relative to this module. */
export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../sql/', import.meta.url));

/**
 * Key of the transaction-scoped advisory lock that serialises migrators ("bullpen" in
 * ASCII, truncated to fit a JS safe integer). Any fixed bigint works; it only has to be
 * the same in every process.
 */
export const MIGRATION_LOCK_KEY = 0x62756c6c706e;

const DEFAULT_LOCK_TIMEOUT_MS = 5000;
const DEFAULT_LOCK_ATTEMPTS = 6;
/** The pause before attempt n+1 is n times this. */
const RETRY_PAUSE_MS = 1000;

const FILE_NAME = /^(\d{3})_([a-z0-9_]+)\.sql$/;

/** Formats a version as its three-digit file prefix (7 → "007"). */
function formatVersion(version: number): string {
  return String(version).padStart(3, '0');
}

/**
 * Reads every file in `dir`, sorted by version. Throws ConfigError for a file not named
 * `NNN_snake_name.sql` or for two files sharing a version.
 */
export async function loadMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const migrations: Migration[] = [];
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const match = FILE_NAME.exec(entry.name);
    if (!match) {
      throw new ConfigError(
        `migration file "${entry.name}" in ${dir} is not named NNN_snake_name.sql (three digits, underscore, lowercase letters, digits or underscores)`,
      );
    }
    const text = (await readFile(path.join(dir, entry.name), 'utf8')).replaceAll('\r\n', '\n');
    migrations.push({
      version: Number(match[1]),
      name: match[2] ?? '',
      file: entry.name,
      // A checkout that turned LF into CRLF (git's autocrlf on Windows) holds the same file: same checksum.
      checksum: createHash('sha256').update(text).digest('hex'),
      sql: text,
    });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    const previous = migrations[i - 1];
    const current = migrations[i];
    if (previous && current && previous.version === current.version) {
      throw new ConfigError(`migration files "${previous.file}" and "${current.file}" share version ${formatVersion(current.version)}`);
    }
  }
  return migrations;
}

function describeKnown(migrations: readonly Migration[]): string {
  const last = migrations.at(-1);
  return last ? `up to ${last.file}` : 'no migrations';
}

interface LedgerRow {
  version: number;
  name: string;
  checksum: string;
}

/** When this database was first migrated: when the deployment began. */
export async function installedAt(sql: Sql): Promise<Date | null> {
  const [row] = await sql<{ at: Date | null }[]>`select min(applied_at) as at from ops.schema_migrations`;
  return row?.at ?? null;
}

/**
 * PostgreSQL's refusal on one line: its message, the line of `text` it points at (a file
 * runs as one query, so its position counts from the file's start), its detail and its hint.
 */
function describeDatabaseError(error: unknown, text?: string): string {
  if (!(error instanceof Error)) return String(error);
  const { position, detail, hint } = error as { position?: unknown; detail?: unknown; hint?: unknown };
  const flat = (value: string) => value.trim().replace(/\s*\n\s*/g, '; ');
  let line = flat(error.message);
  const offset = Number(position);
  if (text !== undefined && Number.isInteger(offset) && offset >= 1 && offset <= text.length + 1) {
    line += ` (line ${text.slice(0, offset - 1).split('\n').length})`;
  }
  if (typeof detail === 'string' && detail.trim()) line += `; DETAIL: ${flat(detail)}`;
  if (typeof hint === 'string' && hint.trim()) line += `; HINT: ${flat(hint)}`;
  return line;
}

/**
 * Brings the database up to date with the migration files, in one transaction. Safe to
 * call from several processes at once: the advisory lock makes the others wait, and they
 * then find nothing left to apply.
 */
export async function migrate(sql: Sql, options: MigrateOptions = {}): Promise<MigrateResult> {
  const dir = options.dir ?? DEFAULT_MIGRATIONS_DIR;
  const logger = options.logger;
  const migrations = await loadMigrations(dir);
  const byVersion = new Map(migrations.map((m) => [m.version, m]));

  const lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const lockAttempts = options.lockAttempts ?? DEFAULT_LOCK_ATTEMPTS;
  let applied: string[] | undefined;
  for (let attempt = 1; applied === undefined; attempt++) {
    try {
      applied = await applyPending(sql, migrations, byVersion, lockTimeoutMs, logger);
    } catch (error) {
      if (!(error instanceof LockBusy)) throw error;
      if (attempt >= lockAttempts) {
        throw new ConfigError(
          `migration ${error.file} could not take a table lock within ${lockTimeoutMs} ms, ${lockAttempts} times (nothing was applied): another session holds it (a long query or an open transaction on that table; see pg_locks and pg_stat_activity), end it and start again`,
          { cause: error.cause },
        );
      }
      logger?.warn({ migration: error.file, attempt, of: lockAttempts }, 'migration waits for a table lock another session holds: trying again');
      await setTimeout(RETRY_PAUSE_MS * attempt);
    }
  }

  if (applied.length > 0) logger?.info({ applied }, 'migrations applied');
  else logger?.debug('database schema is up to date');
  return { applied };
}

/**
 * A file's statement waited lock_timeout for a table lock. Waiting on would queue every later
 * query on that table behind the migration (a running worker's included) until the holder
 * ends: the attempt gives up instead, and migrate tries again a little later.
 */
class LockBusy extends Error {
  constructor(readonly file: string, options: { cause: unknown }) {
    super(`migration ${file}: lock timeout`, options);
  }
}

/** PostgreSQL's lock_not_available, which lock_timeout raises. */
const LOCK_NOT_AVAILABLE = '55P03';

/** One attempt: the ledger checks, then every pending file, in one transaction. Returns the files applied. */
async function applyPending(sql: Sql, migrations: readonly Migration[], byVersion: ReadonlyMap<number, Migration>, lockTimeoutMs: number, logger: Logger | undefined): Promise<string[]> {
  return sql.begin(async (tx) => {
    let rows: LedgerRow[];
    try {
      // The lock comes first: even CREATE SCHEMA IF NOT EXISTS races with a concurrent twin.
      await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY}::bigint)`;
      await tx`create schema if not exists ops`;
      await tx`
        create table if not exists ops.schema_migrations (
          version    integer     primary key,
          name       text        not null,
          checksum   text        not null,
          applied_at timestamptz not null default now()
        )`;
      rows = await tx<LedgerRow[]>`select version, name, checksum from ops.schema_migrations order by version`;
    } catch (error) {
      throw new ConfigError(`cannot set up the migration ledger ops.schema_migrations (nothing was applied): ${describeDatabaseError(error)}`, { cause: error });
    }

    const done = new Set<number>();
    for (const row of rows) {
      const migration = byVersion.get(row.version);
      if (!migration) {
        throw new ConfigError(
          `database is at migration ${formatVersion(row.version)} which this version of bullpen does not know; upgrade bullpen (ledger row ${formatVersion(row.version)}_${row.name}; this version knows ${describeKnown(migrations)})`,
        );
      }
      if (migration.checksum !== row.checksum) {
        throw new ConfigError(
          `migration ${migration.file} was edited after it was applied (checksum ${row.checksum.slice(0, 12)}… in the database, ${migration.checksum.slice(0, 12)}… on disk); migrations are append-only: restore the file and add a new one instead`,
        );
      }
      done.add(row.version);
    }

    // Files apply in version order only: a pending file older than the newest applied one (a
    // branch merged late, a file restored) was written against a schema that has moved on.
    const newest = rows.at(-1);
    const late = migrations.find((m) => !done.has(m.version) && newest !== undefined && m.version < newest.version);
    if (late && newest) {
      throw new ConfigError(
        `migration ${late.file} is pending but the database already applied the newer ${formatVersion(newest.version)}_${newest.name}.sql; migrations apply in order only: renumber ${late.file} after the newest file (or restore the database) instead`,
      );
    }

    // After the migrators' own lock, which is waited for as long as it takes.
    await tx`select set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, true)`;
    const appliedNow: string[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      logger?.info({ migration: migration.file }, 'applying migration');
      // Every file runs in the one transaction: after a failure none of them was applied.
      try {
        // No parameters: postgres.js uses the simple protocol, so a file may hold many statements.
        await tx.unsafe(migration.sql);
      } catch (error) {
        if ((error as { code?: unknown }).code === LOCK_NOT_AVAILABLE) throw new LockBusy(migration.file, { cause: error });
        throw new ConfigError(`migration ${migration.file} failed (nothing was applied): ${describeDatabaseError(error, migration.sql)}`, { cause: error });
      }
      try {
        await tx`
          insert into ops.schema_migrations (version, name, checksum)
          values (${migration.version}, ${migration.name}, ${migration.checksum})`;
      } catch (error) {
        throw new ConfigError(`cannot record migration ${migration.file} in ops.schema_migrations (nothing was applied): ${describeDatabaseError(error)}`, { cause: error });
      }
      appliedNow.push(migration.file);
    }
    return appliedNow;
  });
}
