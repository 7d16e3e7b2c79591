/**
 * An in-process bullpen runtime on a test database and a test BullMQ prefix, for tests
 * that drive the scheduler and workers directly.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FlowProducer, type Worker } from 'bullmq';
import { loadConfig, type Config } from '../../src/config.ts';
import type { JobDefinition } from '../../src/job-definition.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { closeQueues, createDefaultJobOptions, createQueues, type QueueMap } from '../../src/queues.ts';
import { createRedis, type Redis } from '../../src/redis.ts';
import { createRunRecorder, type RunRecorder } from '../../src/runs.ts';
import { createDefinitionMap, startWorkers, stopWorkers, type WorkerRuntime } from '../../src/worker.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from './redis.ts';

export interface TestRuntime {
  db: TestDatabase;
  prefix: string;
  config: Config;
  redis: Redis;
  queues: QueueMap;
  metrics: Metrics;
  recorder: RunRecorder;
  workerRuntime: WorkerRuntime;
  /** Starts workers for the definitions' queues; they are stopped by close(). */
  startWorkers(): Worker[];
  /** Environment a child bullpen process needs to share this database and prefix. */
  env: Record<string, string>;
  close(): Promise<void>;
}

export async function createTestRuntime(label: string, definitions: readonly JobDefinition[], env: Record<string, string> = {}): Promise<TestRuntime> {
  const db = await createTestDatabase();
  const prefix = createTestPrefix(label);
  // Reports go to a directory of this runtime's own, removed by close().
  const reportsDir = fs.mkdtempSync(path.join(os.tmpdir(), `bullpen-${label}-reports-`));
  const childEnv = { DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, BULLPEN_PREFIX: prefix, JOB_BACKOFF_MS: '50', JOB_ATTEMPTS: '3', REPORTS_DIR: reportsDir, ...env };
  const config = loadConfig({ ...childEnv, LOG_LEVEL: 'silent' });
  const logger = createLogger({ level: 'silent', pretty: false });
  const redis = createRedis(TEST_REDIS_URL);
  const jobOptions = createDefaultJobOptions({ attempts: config.jobAttempts, backoffMs: config.jobBackoffMs });
  const queues = createQueues(redis, prefix, jobOptions);
  const flows = new FlowProducer({ connection: redis, prefix });
  const metrics = createMetrics({ defaultMetrics: false });
  const recorder = createRunRecorder(db.sql, { worker: `test:${process.pid}` });
  const workerRuntime: WorkerRuntime = {
    config,
    db: db.sql,
    sourceDb: db.sql,
    logger,
    metrics,
    recorder,
    queues,
    definitions: createDefinitionMap(definitions),
    flows,
    jobOptions,
  };
  const workers: Worker[] = [];
  return {
    db,
    prefix,
    config,
    redis,
    queues,
    metrics,
    recorder,
    workerRuntime,
    env: childEnv,
    startWorkers() {
      const started = startWorkers(workerRuntime, { connection: redis });
      workers.push(...started);
      return started;
    },
    async close() {
      await stopWorkers(workers, 5000, logger);
      await recorder.drain();
      await closeQueues(queues);
      await flows.close();
      await cleanupPrefix(redis, prefix);
      await redis.quit();
      await db.drop();
      fs.rmSync(reportsDir, { recursive: true, force: true });
    },
  };
}
