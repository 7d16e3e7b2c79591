/**
 * What a backfill series asks before each fetch from its source, and tells it after a 429: the
 * source's own request budget and pause, kept in PostgreSQL (enrichment.provider_budget) so every
 * worker process shares them. One source waiting holds none of the others' series, which share
 * the enrichment queue with it.
 */
import type { Config } from '../config.ts';
import type { Sql } from '../db.ts';
import { pauseProvider, releaseProviderPlace, takeProviderRequest } from '../queries/enrichment.ts';
import { requestBudgetOf } from './providers/index.ts';
import type { ProviderName } from './providers/types.ts';

export interface SourceGate {
  /** Takes a request from `source` for `taker` (a series): 0 when granted, else the milliseconds until its place. */
  take(source: ProviderName, taker: string): Promise<number>;
  /** `source` answered 429: none of its series fetches for `ms`. */
  pause(source: ProviderName, ms: number): Promise<void>;
  /** `taker` will not come for its place (its series was cancelled). */
  release(source: ProviderName, taker: string): Promise<void>;
}

/** Sources that answer 429: their pause must hold every series of them even without a budget. */
const RATE_LIMITED_SOURCES: ReadonlySet<ProviderName> = new Set(['polygon']);

/**
 * Whether fetches from `source` go through the gate: a source with a budget, or one that may
 * answer 429. A local source without a budget costs no round trip.
 */
export function isGated(config: Pick<Config, 'marketDataSource' | 'enrichmentRateLimit' | 'polygonRateLimit'>, source: ProviderName): boolean {
  return RATE_LIMITED_SOURCES.has(source) || requestBudgetOf(config, source) !== null;
}

export function createSourceGate(db: Sql, config: Pick<Config, 'marketDataSource' | 'enrichmentRateLimit' | 'polygonRateLimit'>): SourceGate {
  return {
    take: async (source, taker) => (isGated(config, source) ? takeProviderRequest(db, source, requestBudgetOf(config, source), taker) : 0),
    pause: (source, ms) => pauseProvider(db, source, ms),
    release: async (source, taker) => {
      if (isGated(config, source)) await releaseProviderPlace(db, source, taker);
    },
  };
}
