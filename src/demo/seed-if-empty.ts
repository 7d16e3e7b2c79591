/**
 * When bullpen seeds the demo history: `bullpen demo` on any database whose oltp is empty,
 * and `bullpen start` only on the embedded default. Never into an oltp that holds rows, in any
 * of its tables.
 */
import type { Config } from '../config.ts';
import type { Sql } from '../db.ts';
import type { Logger } from '../logger.ts';
import { isOltpEmpty, seedDemoHistory } from './seed.ts';
import { describeDemoHistory, generateDemoHistory, type DemoHistoryDescription } from './synthetic.ts';

/** Trading days of history `bullpen demo` and `bullpen start` seed by default. */
export const DEMO_DAYS = 60;

export interface DemoSeedOptions {
  /** @defaultValue DEMO_DAYS */
  days?: number;
  /** The instant the history ends before. @defaultValue now */
  now?: Date;
}

/**
 * Seeds the demo history into `sql`'s oltp if every oltp table is empty and returns what was
 * seeded, or undefined when oltp already held rows. A session advisory lock spans the check
 * and the seed, so two processes starting together on one database seed it once: the second
 * waits, then finds rows.
 */
export async function seedDemoIfEmpty(sql: Sql, options: DemoSeedOptions = {}): Promise<DemoHistoryDescription | undefined> {
  const lock = await sql.reserve();
  try {
    await lock`select pg_advisory_lock(hashtextextended('bullpen.demo.seed', 0))`;
    try {
      if (!(await isOltpEmpty(sql))) return undefined;
      // Generated only once we know it will be written: 60 days is about 18,000 executions.
      const history = generateDemoHistory({ days: options.days ?? DEMO_DAYS, now: options.now ?? new Date() });
      await seedDemoHistory(sql, history);
      return describeDemoHistory(history);
    } finally {
      await lock`select pg_advisory_unlock(hashtextextended('bullpen.demo.seed', 0))`;
    }
  } finally {
    lock.release();
  }
}

/**
 * Whether `bullpen start` may seed: only on the embedded default, i.e. neither DATABASE_URL
 * nor SOURCE_DATABASE_URL is set. A configured source is someone's real OLTP (or meant to be),
 * so start never writes synthetic rows into it, empty or not.
 */
export function isEmbeddedDefault(config: Pick<Config, 'databaseUrl' | 'sourceDatabaseUrl'>): boolean {
  return config.databaseUrl === undefined && config.sourceDatabaseUrl === undefined;
}

/**
 * What `bullpen start` does before its workers start: on the embedded default with an empty
 * oltp, seed the demo history (so a newcomer sees every job do real work) and log one info
 * line with the counts. Returns what was seeded, or undefined when it did not seed.
 */
export async function seedDemoIfEmbeddedAndEmpty(
  target: { config: Pick<Config, 'databaseUrl' | 'sourceDatabaseUrl'>; sourceDb: Sql; logger: Logger },
  options: DemoSeedOptions = {},
): Promise<DemoHistoryDescription | undefined> {
  if (!isEmbeddedDefault(target.config)) return undefined;
  const seeded = await seedDemoIfEmpty(target.sourceDb, options);
  if (seeded) {
    const { firstTradingDate, lastTradingDate, ...counts } = seeded;
    target.logger.info(
      { ...counts, from: firstTradingDate, to: lastTradingDate },
      `embedded database with an empty oltp: seeded ${options.days ?? DEMO_DAYS} trading days of demo history (${seeded.executions} executions, ${seeded.orders} orders, ${seeded.accounts} accounts) for the jobs to work on`,
    );
  }
  return seeded;
}
