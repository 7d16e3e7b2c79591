/**
 * Child bullpen processes for tests: spawn, wait for "ready", signal, and wait for exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Child {
  process: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

/** Spawns `node --import tsx <script> …args` from the repository root. */
export function spawnNode(script: string, args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return { process: child, output: () => output, exited, kill: (signal) => child.kill(signal) };
}

/** Starts the fixture worker process and waits until it prints "ready". */
export async function startWorkerProcess(env: Record<string, string>, timeoutMs = 30_000): Promise<Child> {
  const child = spawnNode('test/fixtures/worker-process.ts', [], env);
  await waitFor(() => child.output().includes('ready'), timeoutMs, () => `worker process did not start:\n${child.output()}`);
  return child;
}

/** Polls `check` until it is true (it may be async), failing after `timeoutMs` with `describe()`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, describe: () => string = () => 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
