/**
 * Stored daily reports made again ("remakes") when what they show changed after they were made:
 * a rollup rebuild restated their dates, or marked their positions at a 1d close that arrived
 * late (from build-rollups, or from a backfill's bars). Each remake is a forced nightly-report
 * run, one waiting per date however often it is asked for, behind the reports queue's other runs.
 */
import type { Sql } from '../db.ts';
import type { JobContext } from '../job-definition.ts';
import type { RollupSummary } from '../rollups.ts';
import { loadReportDatesFrom } from './store.ts';

/**
 * The BullMQ priority of remakes: behind every run without one on the reports queue (the nightly
 * tick, catch-up, `bullpen report`), which would otherwise wait behind a year of remakes asked
 * for just before 23:50 UTC, past the report's deadline.
 */
const REMAKE_PRIORITY = 10;

/**
 * From which date a rollup rebuild made the stored reports out of date: 'all' for a full rebuild,
 * else the earlier of the first date it restated and the first date whose positions it marked
 * (null: neither). Not only the dates it restated: the curve, metrics and positions are
 * cumulative, so a restated Monday changes the equity, drawdown and ratios of every report after
 * it, and the firm's figures sum the accounts. A marked date's report showed its positions
 * without a close, market value or unrealized PnL, and so did the reports of the days after it
 * that show that date's positions (a weekend's or a holiday's).
 */
export function outdatedReportsFrom(summary: Pick<RollupSummary, 'scope' | 'promotedToFull' | 'from' | 'markedFrom'>): string | 'all' | null {
  if (summary.scope === 'full' || summary.promotedToFull) return 'all';
  const { from, markedFrom } = summary;
  if (from === null) return markedFrom;
  return markedFrom !== null && markedFrom < from ? markedFrom : from;
}

/**
 * Asks for every stored report from `first` on ('all': every one) to be made again; returns their
 * dates. A date without a report yet gets one from its own tick. Every one, with no cap: a report
 * takes ~50 ms (10 accounts, a year of history), so restating a date a year back costs some 20 s,
 * whereas a cap would leave the older reports wrong for good with only a log line to act on.
 */
export async function askForReportRemakes(db: Sql, enqueue: JobContext<unknown>['enqueue'], first: string | 'all'): Promise<string[]> {
  const dates = await loadReportDatesFrom(db, first);
  for (const date of dates) {
    // Forced: the report's partition is done.
    await enqueue('nightly-report', { date }, { force: true, deduplicationId: `nightly-report.restated.${date}`, priority: REMAKE_PRIORITY });
  }
  return dates;
}
