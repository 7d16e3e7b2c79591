/**
 * Bull Board: one BullMQ adapter per queue, each carrying the JSON Schema of the payloads
 * its jobs accept, so "Add job" in the board shows operators the shape to type.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Express } from 'express';
import { z } from 'zod';
import type { JobDefinition } from '../job-definition.ts';
import type { Logger } from '../logger.ts';
import type { QueueMap } from '../queues.ts';

type JsonSchema = Record<string, unknown>;

/**
 * @bull-board/express 9.10.1 pins @bull-board/api 9.10.1 while we use api 9.10.2, so its
 * adapter is typed against a second copy of api's classes (private fields make them
 * nominal). At run time it only needs the structural IServerAdapter, which both satisfy.
 */
type ServerAdapter = Parameters<typeof createBullBoard>[0]['serverAdapter'];

// The board's own schemas (job options) are draft-07, and so is its editor's validator.
const SCHEMA_DIALECT = 'http://json-schema.org/draft-07/schema#';

/** The input JSON Schema of one job's payload, without `$schema`, titled with the job name. */
function payloadSchema(definition: JobDefinition): JsonSchema {
  const { $schema: _dialect, ...schema } = z.toJSONSchema(definition.payload, {
    target: 'draft-07',
    io: 'input',
    unrepresentable: 'any',
  }) as JsonSchema;
  return { title: definition.name, description: definition.description, ...schema };
}

/**
 * The `jobDataSchema` of each queue. bull-board takes one schema per queue, while a queue
 * may carry several jobs (enrichment runs backfills and the daily job), so those become an
 * `anyOf` with one titled branch per job name. A payload zod cannot express is logged and
 * left out rather than failing start-up.
 */
export function createJobDataSchemas(definitions: readonly JobDefinition[], logger: Logger): Map<string, JsonSchema> {
  const branches = new Map<string, JsonSchema[]>();
  for (const definition of definitions) {
    try {
      const list = branches.get(definition.queue) ?? [];
      list.push(payloadSchema(definition));
      branches.set(definition.queue, list);
    } catch (error) {
      logger.warn({ err: error, job: definition.name }, 'payload schema has no JSON Schema form; Bull Board will not show it');
    }
  }
  const schemas = new Map<string, JsonSchema>();
  for (const [queue, list] of branches) {
    const [only] = list;
    if (list.length === 1 && only) schemas.set(queue, { $schema: SCHEMA_DIALECT, ...only });
    else schemas.set(queue, { $schema: SCHEMA_DIALECT, title: `${queue} jobs`, anyOf: list });
  }
  return schemas;
}

export interface BoardOptions {
  /** Where the board is mounted; bull-board's base path must equal it. */
  basePath: string;
  queues: QueueMap;
  definitions: readonly JobDefinition[];
  logger: Logger;
  /**
   * bull-board's read-only mode on every queue: no add, retry, clean, pause or edit buttons,
   * and its queue API refuses those calls. Mount it behind `forbidWrites` too, which also
   * covers the board-wide calls (pause all) bull-board merely filters. @defaultValue false
   */
  readOnly?: boolean;
}

/**
 * The board's Express app (mount it at `basePath`, behind authentication). It is an
 * Express app of its own, so it gets its own `x-powered-by` switched off.
 */
export function createBoardRouter(options: BoardOptions): Express {
  const schemas = createJobDataSchemas(options.definitions, options.logger);
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(options.basePath);
  createBullBoard({
    queues: [...options.queues].map(([name, queue]) => {
      const jobDataSchema = schemas.get(name);
      return new BullMQAdapter(queue, { readOnlyMode: options.readOnly === true, ...(jobDataSchema ? { jobDataSchema } : {}) });
    }),
    serverAdapter: serverAdapter as unknown as ServerAdapter,
    options: { uiConfig: { boardTitle: options.readOnly ? 'bullpen (read-only)' : 'bullpen' } },
  });
  const router = serverAdapter.getRouter() as Express;
  router.disable('x-powered-by');
  return router;
}
