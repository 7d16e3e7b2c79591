/**
 * Workers in a one-shot command's own process, so that its wait always ends (`run --wait`,
 * `backfill --wait`). They start when no worker is running on the queue anywhere: at the start
 * of the wait, and whenever the last one goes away during it. A worker process that dies
 * mid-job leaves its job active in Redis until some worker's stalled check moves it back to
 * waiting; with no worker left, none would, and the wait would never end.
 */
import type { Services } from './app.ts';
import type { Logger } from './logger.ts';
import { createMetrics } from './metrics.ts';
import type { QueueName } from './queues.ts';
import { createRunRecorder } from './runs.ts';
import { startWorkers, stopWorkers } from './worker.ts';

/** The longest a wait goes between looks at the queue's workers (STALLED_INTERVAL_MS when shorter). */
const CHECK_EVERY_MS = 5_000;

export interface LocalWorkers {
  /** Whether workers run here, started at the beginning of the wait or during it. */
  readonly started: boolean;
  /** Stops looking and stops the workers started here (after their active jobs, within SHUTDOWN_TIMEOUT_MS). */
  stop(): Promise<void>;
}

/**
 * Runs workers for `queue` in this process whenever none is running anywhere, until stopped;
 * says so on stdout (`what`: what they will run, e.g. "this job").
 */
export async function keepAWorker(services: Services, logger: Logger, queue: QueueName, what: string, say: (line: string) => void): Promise<LocalWorkers> {
  const cfg = services.config;
  const bullQueue = services.queues.get(queue);
  if (!bullQueue) throw new Error(`queue ${queue} is not open`);
  // A holder, not a variable: the closures below set it.
  const local: { stop: (() => Promise<void>) | null } = { stop: null };
  const start = () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const recorder = createRunRecorder(services.db, { worker: `cli:${process.pid}` });
    const workers = startWorkers(
      { config: cfg, db: services.db, sourceDb: services.sourceDb, logger, metrics, recorder, queues: services.queues, definitions: services.definitions, flows: services.flows, jobOptions: services.jobOptions },
      { connection: services.redis, queues: [queue] },
    );
    local.stop = async () => {
      await stopWorkers(workers, cfg.shutdownTimeoutMs, logger);
      await recorder.drain();
    };
  };
  const noWorker = async () => (await bullQueue.getWorkers()).length === 0;

  if (await noWorker()) {
    say(`no worker is running for queue ${queue}: running ${what} in this process`);
    start();
  }
  let timer: NodeJS.Timeout | undefined;
  let checking: Promise<void> = Promise.resolve();
  let stopped = false;
  if (local.stop === null) {
    timer = setInterval(() => {
      checking = checking.then(async () => {
        if (stopped || local.stop !== null) return;
        try {
          if (!(await noWorker())) return;
        } catch (error) {
          // Redis away: the wait itself sees it; look again next time.
          logger.warn({ err: error, queue }, 'could not list the queue’s workers');
          return;
        }
        if (stopped) return;
        clearInterval(timer);
        say(`no worker is running for queue ${queue} any more: running ${what} in this process`);
        start();
      });
    }, Math.min(CHECK_EVERY_MS, cfg.stalledIntervalMs));
    timer.unref();
  }
  return {
    get started() {
      return local.stop !== null;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await checking;
      await local.stop?.();
    },
  };
}
