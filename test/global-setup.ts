/**
 * Global setup of the integration project: a preflight that names the command starting
 * any service that does not answer, then a template database migrated once per content
 * of sql/ (graphile-worker's setup_template_db), which each test file clones.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { TestProject } from 'vitest/node';
import { createDb } from '../src/db.ts';
import { redactUrl } from '../src/logger.ts';
import { loadMigrations, migrate } from '../src/migrate.ts';
import { adminUrl, databaseUrl, quoteIdent, withAdmin, createAdminSql } from './helpers/db.ts';
import { TEST_REDIS_URL, pingRedis } from './helpers/redis.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Name of the migrated template database that createTestDatabase clones. */
    templateDatabase: string;
  }
}

/** Starts the cluster of whatever PostgreSQL major version is installed. */
export const START_POSTGRES = 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start';
export const START_REDIS = 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no';

async function checkPostgres(): Promise<string | undefined> {
  const admin = createAdminSql();
  try {
    await admin`select 1`;
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await admin.end({ timeout: 1 }).catch(() => {});
  }
}

/** Fails with the commands that start PostgreSQL and Redis when either does not answer. */
export async function assertServicesUp(): Promise<void> {
  const [pgProblem, redisUp] = await Promise.all([checkPostgres(), pingRedis(TEST_REDIS_URL, 3000)]);
  const problems: string[] = [];
  if (pgProblem !== undefined) {
    problems.push(`PostgreSQL at ${redactUrl(adminUrl)} did not answer (${pgProblem}). Start it with:\n    ${START_POSTGRES}`);
  }
  if (!redisUp) {
    problems.push(`Redis at ${redactUrl(TEST_REDIS_URL)} did not answer PING. Start it with:\n    ${START_REDIS}`);
  }
  if (problems.length > 0) {
    throw new Error(
      `Integration tests need PostgreSQL and Redis (override with TEST_DATABASE_URL / TEST_REDIS_URL).\n  ${problems.join('\n  ')}`,
    );
  }
}

/**
 * `bullpen_tpl_<12 hex>`: keyed by every migration's name and content and by the runner
 * itself (it creates the ledger), so a changed file yields a new template, never a stale one.
 */
export async function templateName(): Promise<string> {
  const hash = createHash('sha256');
  for (const migration of await loadMigrations()) hash.update(`${migration.file}\0${migration.sql}\0`);
  hash.update(await readFile(new URL('../src/migrate.ts', import.meta.url)));
  return `bullpen_tpl_${hash.digest('hex').slice(0, 12)}`;
}

async function databaseExists(name: string): Promise<boolean> {
  return withAdmin(async (admin) => (await admin`select 1 from pg_database where datname = ${name}`).length > 0);
}

/**
 * Returns the template's name, creating it if needed: migrated under a random name and
 * then renamed, so a concurrent run never clones a half-migrated template.
 */
export async function ensureTemplateDatabase(): Promise<string> {
  const name = await templateName();
  if (await databaseExists(name)) return name;

  const building = `${name}_tmp_${randomBytes(4).toString('hex')}`;
  await withAdmin((admin) => admin.unsafe(`CREATE DATABASE ${quoteIdent(building)}`));
  try {
    const sql = createDb(databaseUrl(building), { max: 1, applicationName: 'bullpen-test-template' });
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
    await withAdmin((admin) => admin.unsafe(`ALTER DATABASE ${quoteIdent(building)} RENAME TO ${quoteIdent(name)}`));
    return name;
  } catch (error) {
    await withAdmin((admin) => admin.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(building)} WITH (FORCE)`));
    // Another run finished the same template first: use theirs.
    if ((error as { code?: unknown }).code === '42P04' && (await databaseExists(name))) return name;
    throw error;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  await assertServicesUp();
  project.provide('templateDatabase', await ensureTemplateDatabase());
}
