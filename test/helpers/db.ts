/**
 * PostgreSQL helpers for tests. Each integration test file gets its own database, cloned
 * from the template that test/global-setup.ts migrated once for this run.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { createDb, type Sql } from '../../src/db.ts';

/** Database URL used for administration (CREATE/DROP DATABASE). @defaultValue postgres://postgres@127.0.0.1:5432/test (override with TEST_DATABASE_URL) */
export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A database of a test file: its URL and name, an open pool, and `drop()` to remove it. */
export interface TestDatabase {
  url: string;
  name: string;
  sql: Sql;
  /** Ends the pool and drops the database WITH (FORCE). Safe to call twice. */
  drop(): Promise<void>;
}

/** The URL of database `name` on the admin server (same host, port, user, options). */
export function databaseUrl(name: string, base: string = adminUrl): string {
  const url = new URL(base);
  url.pathname = `/${encodeURIComponent(name)}`;
  return url.toString();
}

/** A one-connection admin pool; the caller must `end()` it. */
export function createAdminSql(url: string = adminUrl): Sql {
  return postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5, connection: { application_name: 'bullpen-test-admin' } });
}

/** Quotes an identifier for DDL that cannot take parameters. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Runs `fn` with a short-lived admin connection. */
export async function withAdmin<T>(fn: (admin: Sql) => Promise<T>): Promise<T> {
  const admin = createAdminSql();
  try {
    return await fn(admin);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** The template database global setup prepared; throws outside the integration project. */
export function templateDatabaseName(): string {
  const name = inject('templateDatabase');
  if (!name) throw new Error('no template database was provided: run integration tests through vitest with test/global-setup.ts');
  return name;
}

/**
 * Creates `bullpen_t_<random>` cloned from the migrated template (or, with `empty: true`,
 * a database with no bullpen schemas at all, for migration tests) and opens a pool on it.
 */
export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const name = `bullpen_t_${randomBytes(6).toString('hex')}`;
  const template = options.empty ? undefined : templateDatabaseName();
  await withAdmin(async (admin) => {
    await admin.unsafe(`CREATE DATABASE ${quoteIdent(name)}${template ? ` TEMPLATE ${quoteIdent(template)}` : ''}`);
  });
  const url = databaseUrl(name);
  const sql = createDb(url, { max: 4, applicationName: 'bullpen-test' });
  let dropped = false;
  return {
    url,
    name,
    sql,
    async drop() {
      if (dropped) return;
      dropped = true;
      await sql.end({ timeout: 5 });
      await withAdmin(async (admin) => {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      });
    },
  };
}
