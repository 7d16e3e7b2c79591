/**
 * The `bullpen` command itself, as a user runs it: migrate, run --wait, schedules.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { loadRun } from '../../src/runs.ts';
import { spawnNode, startWorkerProcess, waitFor, type Child } from '../helpers/processes.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';
import { findFreePort } from '../helpers/services.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';
import { JOBS } from '../../jobs/index.ts';

let rt: TestRuntime;
const reportsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-cli-reports-'));

beforeAll(async () => {
  rt = await createTestRuntime('cli', JOBS, { REPORTS_DIR: reportsDir });
});

afterAll(async () => {
  await rt?.close();
  fs.rmSync(reportsDir, { recursive: true, force: true });
});

async function bullpen(args: string[], env: Record<string, string> = {}) {
  const child = spawnNode('bin/bullpen.js', args, { ...rt.env, ...env });
  const { code } = await child.exited;
  return { code, output: child.output() };
}

/**
 * Runs `bullpen start` with `env` (its own prefix) until `url` answers /healthz, hands the child
 * to `check`, then stops it with SIGTERM and removes the prefix's keys.
 */
async function whileStarted(args: string[], env: Record<string, string>, url: string, check: (child: Child) => Promise<void>): Promise<void> {
  const prefix = createTestPrefix('cli-start');
  const child = spawnNode('bin/bullpen.js', ['start', ...args], { ...rt.env, BULLPEN_PREFIX: prefix, ...env });
  let exited = false;
  void child.exited.then(() => (exited = true));
  try {
    await waitFor(async () => exited || (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)), 45_000, () => `${url}/healthz:\n${child.output()}`);
    expect(exited, child.output()).toBe(false);
    await check(child);
  } finally {
    child.kill('SIGTERM');
    await child.exited;
    await cleanupPrefix(TEST_REDIS_URL, prefix);
  }
}

describe('bullpen CLI', () => {
  it('migrate reports the database up to date', async () => {
    const { code, output } = await bullpen(['migrate']);
    expect(code).toBe(0);
    expect(output).toContain('migrations are up to date');
  });

  it('run --wait with no worker running runs the job here and prints its summary', async () => {
    const { code, output } = await bullpen(['run', 'nightly-report', '--data', '{"date":"2026-11-20"}', '--wait']);
    expect(code).toBe(0);
    expect(output).toContain('enqueued nightly-report partition 2026-11-20 as job nightly-report@2026-11-20');
    expect(output).toContain('"status": "succeeded"');
    expect(output).toContain('"hasTrading": false');
    expect(await loadRun(rt.db.sql, 'nightly-report', '2026-11-20')).toMatchObject({ status: 'succeeded', run_count: 1 });
  });

  it('run --wait runs the job here when the worker running it dies during the wait, and shows it going on', async () => {
    // Short locks, so the dead worker's job is found stalled in seconds (the CLI looks for
    // workers at the same pace); the rollups lock held here keeps the job running until the kill.
    const env = { ...rt.env, LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000' };
    const holder = await rt.db.sql.reserve();
    let worker: Child | undefined;
    let cli: Child | undefined;
    try {
      await holder`select pg_advisory_lock(hashtext('bullpen.rollups'))`;
      worker = await startWorkerProcess({ ...env, JOBS: 'catalogue', ROLE: 'worker' });
      cli = spawnNode('bin/bullpen.js', ['run', 'build-rollups', '--data', '{"full":true}', '--wait'], env);
      const running = async () => (await rt.db.sql`select 1 from ops.job_runs where job = 'build-rollups' and status = 'running'`).length > 0;
      const output = cli.output;
      await waitFor(running, 20_000, () => `build-rollups running in the worker process\n${output()}`);
      expect(output()).not.toContain('no worker is running');
      worker.kill('SIGKILL');
      await worker.exited;
      await waitFor(() => output().includes('no worker is running for queue rollups any more: running this job in this process'), 20_000, output);
      await holder`select pg_advisory_unlock(hashtext('bullpen.rollups'))`;
      const { code } = await cli.exited;
      expect(code, cli.output()).toBe(0);
      expect(cli.output()).toContain('"status": "succeeded"');
      // Not a terminal: plain progress lines while it went on (build-rollups reports no progress of its own).
      expect(cli.output()).toMatch(/^build-rollups full@\S+: running \d+s$/m);
      const [run] = await rt.db.sql<{ status: string; worker: string }[]>`select status, worker from ops.job_runs where job = 'build-rollups'`;
      expect(run).toMatchObject({ status: 'succeeded', worker: expect.stringMatching(/^cli:/) });
    } finally {
      worker?.kill('SIGKILL');
      cli?.kill('SIGKILL');
      await holder`select pg_advisory_unlock_all()`;
      holder.release();
    }
  });

  it('report --date generates that date now, again if it exists, and prints its files', async () => {
    const { code, output } = await bullpen(['report', '--date', '2026-11-20']);
    expect(code).toBe(0);
    expect(output).toContain('report of 2026-11-20: no trading that day');
    expect(output).toContain(path.join(reportsDir, 'daily_20261120.html'));
    expect(fs.existsSync(path.join(reportsDir, 'daily_20261120.json'))).toBe(true);
    const bad = await bullpen(['report', '--date', '2026-02-30']);
    expect(bad.code).toBe(1);
    expect(bad.output).toMatch(/bad payload for nightly-report: date: /);
    const future = await bullpen(['report', '--date', '2099-01-02']);
    expect(future.code).toBe(1);
    expect(future.output).toMatch(/bad payload for nightly-report: date 2099-01-02 is after today/);
    expect(fs.existsSync(path.join(reportsDir, 'daily_20990102.json'))).toBe(false);
  });

  it('run --wait says when a run was not made: exit 0 for a partition already done, 1 for one another job holds', async () => {
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, finished_at)
      values ('nightly-report', '2026-11-18', 'reports', 'nightly-report@2026-11-18@earlier', 'succeeded', 1, now())`;
    const done = await bullpen(['run', 'nightly-report', '--data', '{"date":"2026-11-18"}', '--wait']);
    expect(done.code).toBe(0);
    expect(done.output).toContain('"status": "skipped"');
    expect(done.output).toContain('"error": "not run: already done"');

    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, heartbeat_at)
      values ('nightly-report', '2026-11-17', 'reports', 'nightly-report@2026-11-17@elsewhere', 'running', 1, now())`;
    try {
      const held = await bullpen(['run', 'nightly-report', '--data', '{"date":"2026-11-17"}', '--wait']);
      expect(held.code).toBe(1);
      expect(held.output).toContain('"error": "not run: running elsewhere"');
    } finally {
      // A live run of the schedule would make every later run of it wait.
      await rt.db.sql`delete from ops.job_runs where job = 'nightly-report' and partition = '2026-11-17'`;
    }
  });

  it('names DATABASE_URL, password hidden, in one line when PostgreSQL cannot be reached or the database is missing', async () => {
    for (const url of ['postgres://postgres:pgS3cret@127.0.0.1:5432/bullpen_no_such_db', 'postgres://postgres:pgS3cret@127.0.0.1:1/test']) {
      for (const args of [['migrate'], ['rs']]) {
        const { code, output } = await bullpen(args, { DATABASE_URL: url });
        expect(code, args.join(' ')).toBe(1);
        expect(output).toMatch(/^bullpen: DATABASE_URL: cannot connect to postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:/m);
        expect(output).not.toContain('pgS3cret');
        expect(output).not.toMatch(/^\s+at /m);
      }
    }
  });

  it('start with its port in use stops with one line, before registering a schedule or running anything', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const prefix = createTestPrefix('cli-port');
    try {
      const { code, output } = await bullpen(['start'], { PORT: String(port), HOST: '127.0.0.1', BULLPEN_PREFIX: prefix });
      expect(code).toBe(1);
      expect(output).toContain(`bullpen: cannot listen on 127.0.0.1:${port} (PORT, HOST): the port is in use`);
      expect(output).not.toMatch(/^\s+at /m);
      // Opening the queues writes their meta keys; nothing else: no scheduler, no job.
      expect((await rt.redis.keys(`${prefix}:*`)).filter((key) => !key.endsWith(':meta'))).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('run refuses a bad payload and an unknown job with a clear message', async () => {
    const bad = await bullpen(['run', 'nightly-report', '--data', '{"date":"yesterday"}']);
    expect(bad.code).toBe(1);
    expect(bad.output).toMatch(/bad payload for nightly-report: date: /);
    // A misspelt key is refused, naming it and the keys the job knows, rather than run with defaults.
    const typo = await bullpen(['run', 'nightly-report', '--data', '{"dat":"2026-11-20"}']);
    expect(typo.code).toBe(1);
    expect(typo.output).toMatch(/bad payload for nightly-report: \(payload\): Unrecognized key: "dat" \(known keys: scheduledFor, force, catchup, date\)/);
    const unknown = await bullpen(['run', 'nightly-reprot']);
    expect(unknown.code).toBe(1);
    expect(unknown.output).toContain('no job named "nightly-reprot"');
    const json = await bullpen(['run', 'nightly-report', '--data', '{oops']);
    expect(json.code).not.toBe(0);
    expect(json.output).toContain('--data is not valid JSON');
  });

  it('schedules --next lists each schedule with its next fire times in its zone', async () => {
    const { code, output } = await bullpen(['schedules', '--next', '2']);
    expect(code).toBe(0);
    expect(output).toMatch(/^NAME\s+CRON\s+TZ\s+NEXT RUN\s+LAST SUCCESS\s+LAST FAILURE\s+LAG\s+STATE/m);
    expect(output).toMatch(/nightly-report\s+50 23 \* \* \*\s+UTC/);
    expect(output).toMatch(/→ \d{4}-\d{2}-\d{2} 23:50:00 UTC \(\+00:00\)/);
    expect(output).toMatch(/refresh-rs\s+0 18 \* \* 1-5\s+America\/New_York/);
    expect(output).toMatch(/→ \d{4}-\d{2}-\d{2} 18:00:00 E[SD]T \(-0[45]:00\)/);
    const json = await bullpen(['schedules', '--json'], { SCHEDULE_REFRESH_RS: 'off' });
    const parsed = JSON.parse(json.output) as { schedules: { name: string; last_success: string | null }[] };
    expect(parsed.schedules.map((s) => s.name)).not.toContain('refresh-rs');
    expect(parsed.schedules.find((s) => s.name === 'nightly-report')?.last_success).not.toBeNull();
  });
});

describe('bullpen start', () => {
  it('HOST=[::1], an IPv6 loopback written as in a URL, serves there without board credentials', async () => {
    const port = await findFreePort();
    await whileStarted(['--role', 'web'], { HOST: '[::1]', PORT: String(port) }, `http://[::1]:${port}`, async () => {
      expect((await fetch(`http://[::1]:${port}/admin/queues`)).status).toBe(401);
    });
  });

  it.each(['warn', 'silent'])('without BOARD_USER/BOARD_PASSWORD on loopback, shows the generated admin password at LOG_LEVEL=%s', async (level) => {
    const port = await findFreePort();
    const url = `http://127.0.0.1:${port}`;
    await whileStarted(['--role', 'web'], { PORT: String(port), LOG_LEVEL: level }, url, async (child) => {
      const password = /"boardPassword":"([\w-]+)"|password ([\w-]+)$/m.exec(child.output())?.slice(1).find(Boolean);
      expect(password, child.output()).toBeDefined();
      expect((await fetch(`${url}/admin/queues`)).status).toBe(401);
      const board = await fetch(`${url}/admin/queues`, { headers: { authorization: formatBasicAuthorization({ user: 'admin', password: password! }) } });
      expect(board.status).toBe(200);
    });
  });

  it('--queues naming a queue twice starts one worker for it (CONCURRENCY_<QUEUE> is per worker)', async () => {
    const prefix = createTestPrefix('cli-queues');
    const child = spawnNode('bin/bullpen.js', ['start', '--role', 'worker', '--queues', 'etl,etl'], { ...rt.env, BULLPEN_PREFIX: prefix, LOG_LEVEL: 'info' });
    try {
      const started = () => child.output().split('\n').find((line) => line.includes('"msg":"workers started"'));
      await waitFor(() => started() !== undefined, 45_000, child.output);
      expect(JSON.parse(started()!)).toMatchObject({ queues: ['etl'] });
    } finally {
      child.kill('SIGTERM');
      await child.exited;
      await cleanupPrefix(TEST_REDIS_URL, prefix);
    }
  });

  it('refuses --queues naming no queue, and --queues with a role that runs no workers', async () => {
    for (const list of ['', ' , ']) {
      const { code, output } = await bullpen(['start', '--role', 'worker', '--queues', list]);
      expect(code, list).toBe(1);
      expect(output).toContain(`error: option '--queues <list>' argument '${list}' is invalid. it names no queue; give one or more of etl, rollups, rs, enrichment, reports, maintenance`);
    }
    for (const role of ['web', 'scheduler']) {
      const { code, output } = await bullpen(['start', '--role', role, '--queues', 'etl']);
      expect(code, role).toBe(1);
      expect(output).toBe(`bullpen: --queues chooses the queues this process works, and --role ${role} runs no workers; use it with --role worker or all\n`);
    }
  });

  it('a HOST that resolves to nothing stops start with one line naming HOST, before anything is migrated', async () => {
    const prefix = createTestPrefix('cli-host');
    const empty = await createTestDatabase({ empty: true });
    try {
      // Not loopback, so it takes credentials to get as far as listening.
      const env = { HOST: 'localhots', PORT: '0', BOARD_USER: 'ops', BOARD_PASSWORD: 'x', BULLPEN_PREFIX: prefix, DATABASE_URL: empty.url };
      const { code, output } = await bullpen(['start'], env);
      expect(code).toBe(1);
      expect(output).toMatch(/^bullpen: HOST: cannot listen on "localhots": (no such host|its name could not be resolved now); HOST is an address of this machine [^\n]*\n$/);
      const [row] = await empty.sql`select to_regclass('ops.schema_migrations') as ledger`;
      expect(row?.ledger).toBeNull();
    } finally {
      await empty.drop();
      await cleanupPrefix(TEST_REDIS_URL, prefix);
    }
  });

  it('a PORT in use stops start with one line naming PORT, before anything is migrated', async () => {
    const empty = await createTestDatabase({ empty: true });
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const { code, output } = await bullpen(['start'], { HOST: '127.0.0.1', PORT: String(port), DATABASE_URL: empty.url, BULLPEN_PREFIX: createTestPrefix('cli-port') });
      expect(code).toBe(1);
      expect(output).toBe(`bullpen: cannot listen on 127.0.0.1:${port} (PORT, HOST): the port is in use\n`);
      const [row] = await empty.sql`select to_regclass('ops.schema_migrations') as ledger`;
      expect(row?.ledger).toBeNull();
    } finally {
      taken.close();
      await empty.drop();
    }
  });
});
