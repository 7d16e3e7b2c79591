import { spawn } from 'node:child_process';
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { DEFAULT_MIGRATIONS_DIR, loadMigrations, migrate } from '../../src/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { spawnNode } from '../helpers/processes.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/migrate-once.ts', import.meta.url));

interface LedgerRow {
  version: number;
  name: string;
  checksum: string;
}

let db: TestDatabase;
let tmp: string | undefined;

beforeEach(async () => {
  db = await createTestDatabase({ empty: true });
});

afterEach(async () => {
  await db.drop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
  tmp = undefined;
});

async function copyMigrations(): Promise<string> {
  tmp = await mkdtemp(path.join(tmpdir(), 'bullpen-migrations-'));
  await cp(DEFAULT_MIGRATIONS_DIR, tmp, { recursive: true });
  return tmp;
}

/** A copy of sql/ holding the files up to `lastVersion` only: what an older bullpen shipped. */
async function olderMigrations(lastVersion: number): Promise<string> {
  tmp = await mkdtemp(path.join(tmpdir(), 'bullpen-migrations-'));
  for (const file of await readdir(DEFAULT_MIGRATIONS_DIR)) {
    if (Number(file.slice(0, 3)) <= lastVersion) await cp(path.join(DEFAULT_MIGRATIONS_DIR, file), path.join(tmp, file));
  }
  return tmp;
}

async function bullpen(args: string[], env: Record<string, string> = {}) {
  const child = spawnNode('bin/bullpen.js', args, { DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, ...env });
  const { code } = await child.exited;
  return { code, output: child.output() };
}

/** Spawns a migrator child, resolving `ready` once it is connected and `done` with its result. */
function spawnMigrator(url: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, url], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (stdout.startsWith('ready\n')) onReady();
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<{ applied: string[] }>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      onReady();
      const last = stdout.trim().split('\n').at(-1) ?? '';
      if (code === 0) resolve(JSON.parse(last) as { applied: string[] });
      else reject(new Error(`migrator exited with ${code}: ${stderr}`));
    });
  });
  return { ready, done, go: () => child.stdin.end('go\n') };
}

describe('migrate', () => {
  it('applies every file in order and records each with its checksum', async () => {
    const files = await loadMigrations();

    const result = await migrate(db.sql);

    expect(result.applied).toEqual(files.map((f) => f.file));
    const ledger = await db.sql<LedgerRow[]>`select version, name, checksum from ops.schema_migrations order by version`;
    expect(ledger).toEqual(files.map((f) => ({ version: f.version, name: f.name, checksum: f.checksum })));
    const [table] = await db.sql`select to_regclass('ops.job_runs') as name`;
    expect(table?.name).toBe('ops.job_runs');
  });

  it('applies nothing on a second run', async () => {
    await migrate(db.sql);

    const again = await migrate(db.sql);

    expect(again.applied).toEqual([]);
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from ops.schema_migrations`;
    expect(row?.n).toBe((await loadMigrations()).length);
  });

  it('lets three processes migrate one empty database at once, applying each file once', async () => {
    const files = (await loadMigrations()).map((f) => f.file);
    const migrators = [spawnMigrator(db.url), spawnMigrator(db.url), spawnMigrator(db.url)];
    await Promise.all(migrators.map((m) => m.ready));

    for (const m of migrators) m.go();
    const results = await Promise.all(migrators.map((m) => m.done));

    const applied = results.flatMap((r) => r.applied);
    expect([...applied].sort()).toEqual([...files].sort());
    expect(new Set(applied).size).toBe(applied.length);
    const ledger = await db.sql<{ version: number; n: number }[]>`
      select version, count(*)::int as n from ops.schema_migrations group by version order by version`;
    expect(ledger.map((r) => r.n)).toEqual(files.map(() => 1));
  });

  it('refuses to run when an applied file was edited, naming the file', async () => {
    const dir = await copyMigrations();
    await migrate(db.sql, { dir });
    await appendFile(path.join(dir, '001_ops.sql'), '\n-- an innocent-looking comment\n');

    const again = migrate(db.sql, { dir });

    await expect(again).rejects.toBeInstanceOf(ConfigError);
    await expect(again).rejects.toThrow(/001_ops\.sql was edited after it was applied/);
  });

  it('refuses a database at a version this code does not know', async () => {
    await migrate(db.sql);
    await db.sql`insert into ops.schema_migrations (version, name, checksum) values (999, 'from_the_future', 'x')`;

    const again = migrate(db.sql);

    await expect(again).rejects.toBeInstanceOf(ConfigError);
    await expect(again).rejects.toThrow(/database is at migration 999 which this version of bullpen does not know; upgrade bullpen/);
  });

  it('refuses a pending file older than the newest applied one, naming it, and applies nothing', async () => {
    const dir = await copyMigrations();
    // Files of its own: the real newest may build on the one before it, and fail without it.
    const older = { file: '998_older_branch.sql', version: 998 };
    const newest = { file: '999_newer_branch.sql' };
    await writeFile(path.join(dir, newest.file), 'create table ops.newer_branch (id int);\n');
    // The older file is missing when the newer one is applied (a branch merged late), then comes back.
    const aside = path.join(dir, 'aside');
    await mkdir(aside);
    await writeFile(path.join(aside, older.file), 'create table ops.older_branch (id int);\n');
    await migrate(db.sql, { dir });
    await rename(path.join(aside, older.file), path.join(dir, older.file));
    const ledger = await db.sql<{ version: number }[]>`select version from ops.schema_migrations order by version`;

    const again = migrate(db.sql, { dir });

    await expect(again).rejects.toBeInstanceOf(ConfigError);
    await expect(again).rejects.toThrow(`migration ${older.file} is pending but the database already applied the newer ${newest.file}`);
    expect(await db.sql`select version from ops.schema_migrations order by version`).toEqual(ledger);
    expect(ledger.map((r) => r.version)).not.toContain(older.version);
  });

  it('rolls back everything when a file fails, and names the file and the line', async () => {
    const dir = await copyMigrations();
    await writeFile(path.join(dir, '900_broken.sql'), 'create table ops.fine (id int);\nselect * from no_such_table;\n');

    const failed = migrate(db.sql, { dir });

    await expect(failed).rejects.toBeInstanceOf(ConfigError);
    await expect(failed).rejects.toThrow('migration 900_broken.sql failed (nothing was applied): relation "no_such_table" does not exist (line 2)');
    const [row] = await db.sql`select to_regclass('ops.schema_migrations') as ledger, to_regclass('ops.job_runs') as job_runs`;
    expect(row).toEqual({ ledger: null, job_runs: null });
  });

  it('reads a checkout with CRLF line ends as the same files: nothing to apply, no checksum mismatch', async () => {
    await migrate(db.sql);
    const dir = await copyMigrations();
    for (const file of await readdir(dir)) {
      const text = await readFile(path.join(dir, file), 'utf8');
      await writeFile(path.join(dir, file), text.replaceAll('\n', '\r\n'));
    }

    const again = await migrate(db.sql, { dir });

    expect(again.applied).toEqual([]);
    expect((await loadMigrations(dir)).map((f) => f.checksum)).toEqual((await loadMigrations()).map((f) => f.checksum));
  });

  describe('a table lock another session holds', () => {
    /** The repository's files, applied, then one more that alters ops.job_runs. */
    async function pendingAlter(): Promise<string> {
      const dir = await copyMigrations();
      await migrate(db.sql, { dir });
      await writeFile(path.join(dir, '900_alter_runs.sql'), 'alter table ops.job_runs add column probe int;\n');
      return dir;
    }

    /** An open transaction holding a lock that ALTER TABLE must wait for; resolves to its release. */
    async function holdLock(): Promise<() => Promise<void>> {
      const holder = await db.sql.reserve();
      await holder`begin`;
      await holder`lock table ops.job_runs in access share mode`;
      return async () => {
        await holder`rollback`;
        holder.release();
      };
    }

    it('gives up after its attempts with one line naming the file, applies nothing, and never holds up the table', async () => {
      const dir = await pendingAlter();
      const release = await holdLock();
      try {
        const failed = migrate(db.sql, { dir, lockTimeoutMs: 200, lockAttempts: 2 });
        // While the migration waits, a plain read of the table is not queued behind it for longer than its lock timeout.
        const started = performance.now();
        await new Promise((resolve) => setTimeout(resolve, 50));
        await db.sql`select count(*) from ops.job_runs`;
        expect(performance.now() - started).toBeLessThan(2000);

        await expect(failed).rejects.toBeInstanceOf(ConfigError);
        await expect(failed).rejects.toThrow(/^migration 900_alter_runs\.sql could not take a table lock within 200 ms, 2 times \(nothing was applied\)/);
      } finally {
        await release();
      }
      const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from ops.schema_migrations where version = 900`;
      expect(row?.n).toBe(0);
    });

    it('applies the file once the lock is released between its attempts', async () => {
      const dir = await pendingAlter();
      const release = await holdLock();
      setTimeout(() => void release(), 400);

      const result = await migrate(db.sql, { dir, lockTimeoutMs: 200, lockAttempts: 5 });

      expect(result.applied).toEqual(['900_alter_runs.sql']);
      const [column] = await db.sql`select 1 from information_schema.columns where table_schema = 'ops' and table_name = 'job_runs' and column_name = 'probe'`;
      expect(column).toBeDefined();
    });
  });

  it('refuses a ledger it cannot use, in one line', async () => {
    await db.sql`create schema ops`;
    await db.sql`create table ops.schema_migrations (version integer primary key)`;

    const failed = migrate(db.sql);

    await expect(failed).rejects.toBeInstanceOf(ConfigError);
    await expect(failed).rejects.toThrow('cannot set up the migration ledger ops.schema_migrations (nothing was applied): column "name" does not exist');
  });
});

describe('bullpen migrate', () => {
  it('needs only PostgreSQL, and prints the files it applied whatever LOG_LEVEL is', async () => {
    await migrate(db.sql, { dir: await olderMigrations(14) });
    const pending = (await loadMigrations()).filter((m) => m.version > 14).map((m) => m.file);
    const env = { REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'silent' };

    const first = await bullpen(['migrate'], env);
    const second = await bullpen(['migrate'], env);

    expect(first).toEqual({ code: 0, output: `applied ${pending.length} migrations: ${pending.join(', ')}\n` });
    expect(second).toEqual({ code: 0, output: 'migrations are up to date\n' });
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from ops.schema_migrations`;
    expect(row?.n).toBe((await loadMigrations()).length);
  });
});

describe('a migration PostgreSQL refuses, through the command line', () => {
  it('migrate and start stop with one line naming the file, with PostgreSQL\'s detail and hint', async () => {
    // What an older bullpen (through 014) created, plus an operator's view on a view 015 replaces.
    await migrate(db.sql, { dir: await olderMigrations(14) });
    await db.sql`create view public.dashboard_top_strategies as select strategy_name, total_pnl from warehouse.mv_top_performing_strategies`;
    const expected =
      'bullpen: migration 015_top_strategies_seed_columns.sql failed (nothing was applied): cannot drop materialized view warehouse.mv_top_performing_strategies because other objects depend on it; ' +
      'DETAIL: view dashboard_top_strategies depends on materialized view warehouse.mv_top_performing_strategies; ' +
      'HINT: Use DROP ... CASCADE to drop the dependent objects too.\n';
    const prefix = createTestPrefix('migrate-start');
    try {
      for (const args of [['migrate'], ['start', '--role', 'web']]) {
        const { code, output } = await bullpen(args, { BULLPEN_PREFIX: prefix, PORT: '0' });
        expect(code, args.join(' ')).toBe(1);
        expect(output, args.join(' ')).toBe(expected);
      }
    } finally {
      await cleanupPrefix(TEST_REDIS_URL, prefix);
    }
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from ops.schema_migrations where version > 14`;
    expect(row?.n).toBe(0);
  });
});
