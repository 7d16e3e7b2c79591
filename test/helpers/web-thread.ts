/**
 * Runs the web role (test/fixtures/http-app-thread.ts) in a worker thread of this process,
 * with the TypeScript loaded through tsx as bin/bullpen.js does. A request that blocks that
 * thread's event loop (an endless loop) leaves this thread free to time the request out and
 * to terminate the server; an uncaught exception there is reported, not fatal here.
 */
import { Worker } from 'node:worker_threads';

export interface WebThread {
  url: string;
  port: number;
  /** Why the thread ended early (an uncaught error, or an exit), if it did. */
  failure(): string | undefined;
  /** Stops the app (closing its connections); terminates the thread when it does not answer within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const ENTRY = new URL('../fixtures/http-app-thread.ts', import.meta.url).href;
// Evaluated as a script in the thread: bare specifiers resolve from the working directory (the repository).
const BOOT = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(ENTRY)}); })`;

/** Starts the web role with `env` (DATABASE_URL, REDIS_URL, BULLPEN_PREFIX, BOARD_USER, …) and waits until it listens. */
export async function startWebThread(env: Record<string, string>, timeoutMs = 30_000): Promise<WebThread> {
  const worker = new Worker(BOOT, { eval: true, workerData: { HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'silent', ...env } });
  let failure: string | undefined;
  let exited = false;
  worker.on('error', (error) => {
    failure ??= `the web thread died: ${error.stack ?? String(error)}`;
  });
  worker.on('exit', (code) => {
    exited = true;
    failure ??= `the web thread exited (code ${code})`;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the web thread did not start within ${timeoutMs} ms`)), timeoutMs);
    worker.once('message', (message: { url?: string }) => {
      clearTimeout(timer);
      if (message.url) resolve(message.url);
      else reject(new Error(`the web thread said ${JSON.stringify(message)}`));
    });
    worker.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  return {
    url,
    port: Number(new URL(url).port),
    failure: () => failure,
    async stop(graceMs = 10_000) {
      if (exited) return;
      const stopped = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), graceMs);
        worker.on('message', (message) => {
          if (message === 'stopped' || (message as { stopError?: string }).stopError !== undefined) {
            clearTimeout(timer);
            resolve(true);
          }
        });
      });
      worker.postMessage('stop');
      await stopped;
      await worker.terminate();
    },
  };
}
