/**
 * refresh-rs: relative strength of every symbol of market.sector_mapping vs SPY and its sector
 * ETF, RS rating 1–99 and sector leaders, as of a trading date, from market.bars 1d. Partition:
 * the NYSE trading date scored. Writes that date's rows of market.rs_scores (replaced whole, so
 * a rerun is harmless) and, when it is the newest date scored, the current values in
 * sector_mapping.
 *
 * Fresh data first: when a member (crypto aside: it is not scored) has no bar for the date yet,
 * the run asks the enrichment pipeline for those members' 1d bars through that date (one
 * backfill request, tagged with this partition) and goes back on its queue until that request
 * ends. A benchmark still missing then fails the run retryably, naming it: the data may arrive
 * later, and each attempt asks again. A stock still missing is scored NULL with a note (a halt:
 * waiting longer would not help), keeping its current values in sector_mapping.
 *
 * Stale members: one without a bar for STALE_AFTER_SESSIONS sessions or more (delisted, most
 * likely) is not asked for or waited on any more, gets no rating (its current values are
 * cleared), and is named in the summary and the log with the command that removes it.
 * enrichment-daily still brings its bars should it trade again, and it is scored again from then.
 *
 * A session not closed yet is refused as bad input (`bullpen run refresh-rs` at noon, a payload
 * naming today or a later date): its bars are partial or yesterday's, and a success would stand
 * as that date's scores and current values. The scheduled run, after the close, is the one.
 */
import { DateTime } from 'luxon';
import { nextTradingDay, previousTradingDay, tradingDateOf, tradingDaysBetween } from '../src/analytics/calendar.ts';
import { addCalendarDays, dayNumberOfIsoDate, sessionCloseMs, type AssetClass } from '../src/analytics/timeframes.ts';
import { createBackfill, createContextEnqueuer, planBackfill } from '../src/enrichment/backfills.ts';
import { BadInputError, UpstreamUnavailableError } from '../src/errors.ts';
import { basePayload, defineJob, payloadDate, scheduledInstant } from '../src/job-definition.ts';
import { tickDate } from '../src/cron.ts';
import { loadLateMembers, loadUnscored, publishCurrentScores, scoreRelativeStrength, STALE_AFTER_SESSIONS } from '../src/queries/rs.ts';

const TZ = 'America/New_York';
/** How often a run waiting for its enrichment request looks again. */
const FRESHNESS_POLL_MS = 3_000;
/** Calendar days of 1d history a score needs (253 sessions) with room for holidays; chunks already stored are not fetched again. */
const HISTORY_DAYS = 400;
/** Unscored symbols listed by name in the summary (the count is always there). */
const LISTED_UNSCORED = 50;
/** Removal commands spelled out in the summary's hint; staleSymbols lists the rest. */
const LISTED_REMOVALS = 5;

const payload = basePayload.extend({ date: payloadDate.optional() });

export const refreshRs = defineJob({
  name: 'refresh-rs',
  queue: 'rs',
  description: 'RS vs SPY and sector ETF, RS rating 1–99, sector leaders, history',
  payload,
  schedule: { cron: '0 18 * * 1-5', tz: TZ, calendar: 'nyse', overlap: 'skip' },
  partition: (p) => p.date ?? tickDate(scheduledInstant(p), TZ),
  // Missed evenings are filled in order: five trading days fit in a week.
  catchup: { mode: 'all', windowHours: 7 * 24, max: 5 },
  process: async (ctx) => {
    const asOf = ctx.partition;
    assertSessionClosed(asOf, Date.now());
    const [universe] = await ctx.db<{ n: number }[]>`select count(*)::int as n from market.sector_mapping`;
    if (!universe?.n) return { asOf, symbols: 0, note: 'market.sector_mapping is empty: nothing to score' };

    const members = await loadLateMembers(ctx.db, asOf, TZ);
    // A stale member is not waited for: the bar of a symbol that stopped trading never comes, and
    // each evening would ask for it and wait for the request to fail.
    const stale = members.filter((m) => m.stale);
    const late = members.filter((m) => !m.stale);
    if (late.length > 0) {
      const tag = `refresh-rs@${asOf}`;
      // The latest request for the date, and whether this attempt made it: ops.job_runs.started_at
      // is when the attempt (or run) began, kept while it waits on its queue between looks.
      const [request] = await ctx.db<{ backfill_id: string; status: string; earlier: boolean }[]>`
        select b.backfill_id::text, b.status,
          b.created_at < coalesce((select r.started_at from ops.job_runs r where r.job = 'refresh-rs' and r.partition = ${asOf}), '-infinity') as earlier
        from enrichment.backfills b where b.requested_by = ${tag} order by b.created_at desc limit 1`;
      const active = request !== undefined && ['queued', 'in_progress', 'cancelling'].includes(request.status);
      // Asked once per attempt, for the members without the day's bar only (in a universe of
      // thousands a few are halted or delisted on any day: asking for every member would make a
      // flow of thousands of series each evening). A request of an earlier attempt or run that
      // ended without the bar says nothing of now (the provider may have it since), so a retry
      // asks again. The first ask covers the scoring window, chunks already stored skipped (a new
      // member's history comes with it); a retry's fetches the chunk holding the date anew: one
      // fetched before the vendor published the day's bar is complete as far as its ledger knows,
      // and a chunk fetches its whole cell.
      if (!request || (!active && request.earlier)) {
        const again = request !== undefined;
        // A date not come yet (a payload may name one) has nothing to fetch past today.
        const today = tickDate(new Date(), TZ);
        const classes = await ctx.db<{ symbol: string; asset_class: AssetClass }[]>`select symbol, asset_class from market.sector_mapping order by symbol`;
        const plan = planBackfill(
          {
            symbols: late.map((m) => m.symbol),
            timeframes: '1d',
            from: again ? (asOf < today ? asOf : today) : addCalendarDays(asOf, -HISTORY_DAYS),
            to: asOf,
            reprocess: again ? 'all' : 'missing',
            requested_by: tag,
          },
          { defaultSource: ctx.config.marketDataSource, maxBars: Number.MAX_SAFE_INTEGER, now: Date.now(), assetClasses: new Map(classes.map((s) => [s.symbol, s.asset_class])) },
        );
        const created = await createBackfill(
          { db: ctx.db, enqueue: createContextEnqueuer(ctx.enqueueFlow) },
          plan,
        );
        ctx.logger.info(
          { late: late.slice(0, LISTED_UNSCORED).map((m) => m.symbol), lateCount: late.length, backfillId: created.backfillId, again },
          `${late.length} ${late.length === 1 ? 'member has' : 'members have'} no bar for the date yet: enrichment asked for ${again ? 'them again' : 'them'}, waiting`,
        );
        return ctx.requeue(FRESHNESS_POLL_MS);
      }
      if (active) return ctx.requeue(FRESHNESS_POLL_MS);
      const missing = late.filter((m) => m.benchmark).map((m) => m.symbol);
      if (missing.length > 0) {
        throw new UpstreamUnavailableError(
          `no 1d bar for ${asOf} of ${missing.join(', ')} (enrichment request ${request.backfill_id} ended ${request.status} without it); the data may arrive later`,
        );
      }
      // Stocks still without the bar after this attempt's request: scored NULL with a note.
    }

    const { counts, published, unscored } = await ctx.db.begin(async (tx) => {
      const sql = tx as unknown as typeof ctx.db;
      const counts = await scoreRelativeStrength(sql, asOf, TZ);
      const published = await publishCurrentScores(sql, asOf, TZ);
      return { counts, published, unscored: await loadUnscored(sql, asOf) };
    });
    const staleSymbols = stale.slice(0, LISTED_UNSCORED).map((m) => ({
      symbol: m.symbol,
      lastBar: m.last_bar,
      sessionsWithoutBar: m.last_bar === null ? null : tradingDaysBetween(nextTradingDay(m.last_bar), asOf).length,
    }));
    const summary = {
      asOf,
      ...counts,
      unscored: unscored.length,
      unscoredSymbols: unscored.slice(0, LISTED_UNSCORED).map((u) => ({ symbol: u.symbol, reason: u.note })),
      stale: stale.length,
      ...(stale.length > 0 ? { staleSymbols, staleHint: removalHint(stale.map((m) => m.symbol)) } : {}),
      current: published > 0,
    };
    if (unscored.length > 0) ctx.logger.warn({ asOf, unscored: unscored.length, first: unscored.slice(0, 5) }, 'symbols without a score (reasons in the summary)');
    if (stale.length > 0) {
      ctx.logger.warn(
        { asOf, stale: stale.length, staleSymbols },
        `${stale.length} ${stale.length === 1 ? 'member has' : 'members have'} had no 1d bar for ${STALE_AFTER_SESSIONS} sessions or more (delisted?): not waited for or rated; ${removalHint(stale.map((m) => m.symbol))}`,
      );
    }
    return summary;
  },
});

/** The instant NYSE closes on `date` (13:00 New York on an early close, else 16:00), with that time; null when it is no session. */
function sessionClose(date: string): { at: number; time: string } | null {
  const at = sessionCloseMs(dayNumberOfIsoDate(date), 'nyse');
  return at === null ? null : { at, time: DateTime.fromMillis(at, { zone: TZ }).toFormat('HH:mm') };
}

/**
 * Refuses to score a session before its close: its 1d bars are the day so far, or missing (the
 * scores would then be the day before's under this date). Recorded as done, the date's scores
 * and the current values would stand on them until something ran it again.
 */
function assertSessionClosed(asOf: string, now: number): void {
  const close = sessionClose(asOf);
  // A date that is no session never gets here: the worker records it as skipped.
  if (!close || now >= close.at) return;
  const today = tradingDateOf(new Date(now), TZ);
  const todayClose = sessionClose(today);
  const lastClosed = todayClose && now >= todayClose.at ? today : previousTradingDay(today);
  throw new BadInputError(
    `refresh-rs ${asOf}: the NYSE session has not closed yet (it closes at ${close.time} ${TZ}, ${new Date(close.at).toISOString()}); ` +
      `RS is scored from closing bars: the scheduled evening run scores this session. Run it after the close, or score the last closed session: ` +
      `bullpen run refresh-rs --data '{"date":"${lastClosed}"}' --wait`,
  );
}

/** What an operator runs to drop members that stopped trading from the universe (their RS history is kept). */
function removalHint(symbols: readonly string[]): string {
  const commands = symbols.slice(0, LISTED_REMOVALS).map((s) => `bullpen universe remove ${s}`).join('; ');
  const more = symbols.length - LISTED_REMOVALS;
  return `remove members that no longer trade: ${commands}${more > 0 ? `; and ${more} more (the run's staleSymbols lists the first ${LISTED_UNSCORED})` : ''}`;
}
