/**
 * Throwaway services for failure scenarios ("Redis is down", "Redis came back"): each
 * call starts its own redis-server on a free port, so stopping it disturbs no other test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../src/embedded.ts';
import { pingRedis } from './redis.ts';

/** A redis-server owned by one test. */
export interface RedisServer {
  port: number;
  url: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: nothing is persisted) and waits for PING. */
  restart(): Promise<void>;
}

const running = new Set<ChildProcess>();
// A crashed or interrupted test must not leave redis-servers behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export { findFreePort };

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<Error>((resolve) => {
    child.once('error', (error) => resolve(error));
    child.once('exit', (code, signal) => resolve(new Error(`redis-server on port ${port} exited (code ${code}, signal ${signal}): ${stderr.trim()}`)));
  });
  child.once('exit', () => running.delete(child));
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const outcome = await Promise.race([pingRedis(url, 500), exited]);
    if (outcome === true) return child;
    if (outcome instanceof Error) throw outcome;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  await waitForExit(child);
  throw new Error(`redis-server on port ${port} did not answer PING within 10 s: ${stderr.trim()}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = waitForExit(child);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exit;
  clearTimeout(timer);
}

/** Spawns `redis-server` on a free port (no persistence) and resolves once it answers PING. */
export async function startRedisServer(): Promise<RedisServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'bullpen-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;
  // Another process may take the port between our probe and redis-server's bind: retry.
  for (let attempt = 1; !child; attempt++) {
    port = await findFreePort();
    try {
      child = await spawnRedis(port, dir);
    } catch (error) {
      if (attempt >= 3) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  let current: ChildProcess | undefined = child;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (!current) return;
      const stopping = current;
      current = undefined;
      await stopChild(stopping);
      await rm(dir, { recursive: true, force: true });
    },
    async restart() {
      if (current) await stopChild(current);
      current = undefined;
      await mkdir(dir, { recursive: true });
      current = await spawnRedis(port, dir);
    },
  };
}
