/**
 * The job catalogue, listed explicitly (a test checks it against the files in this folder).
 */
import type { JobDefinition } from '../src/job-definition.ts';
import { buildRollups } from './build-rollups.ts';
import { enrichmentBackfill } from './enrichment-backfill.ts';
import { enrichmentDaily } from './enrichment-daily.ts';
import { maintainPartitions } from './maintain-partitions.ts';
import { nightlyReport } from './nightly-report.ts';
import { refreshRs } from './refresh-rs.ts';
import { tradeEtl } from './trade-etl.ts';

export const JOBS: readonly JobDefinition[] = [
  tradeEtl,
  buildRollups,
  refreshRs,
  enrichmentBackfill,
  enrichmentDaily,
  nightlyReport,
  maintainPartitions,
] as unknown as readonly JobDefinition[];
