/**
 * refresh-rs: relative strength of every symbol of market.sector_mapping vs SPY and its sector
 * ETF, RS rating 1–99 and sector leaders, as of a trading date, from market.bars 1d. Partition:
 * the NYSE trading date scored. Writes that date's rows of market.rs_scores (replaced whole, so
 * a rerun is harmless) and, when it is the newest date scored, the current values in
 * sector_mapping.
 *
 * Asset classes are those bullpen tracks (loadTrackedAssetClasses, as enrichment plans them): a
 * member the universe lists as a stock but the trading system knows as a coin is crypto, so not
 * scored or asked for, and the summary says to set its class.
 *
 * Fresh data first: when a member (crypto aside: it is not scored) has no bar for the date yet,
 * the run asks the enrichment pipeline for those members' 1d bars through that date (one
 * backfill request, tagged with this partition) and goes back on its queue until that request
 * ends. A benchmark still missing then fails the run retryably, naming it: the data may arrive
 * later, and each attempt asks again. A sector ETF still missing on the last attempt does not:
 * it only feeds rs_sector_score, so its members are scored without that (their note says why)
 * and the summary warns. A stock still missing is scored NULL with a note (a halt: waiting
 * longer would not help), keeping its current values in sector_mapping.
 *
 * Stale and never-found members: one without a bar for STALE_AFTER_SESSIONS sessions or more
 * (delisted, most likely), or without any bar after NEVER_FOUND_AFTER_DATES dates asked for (a
 * typo, a ticker the source does not know), is not asked for or waited on any more, gets no
 * rating (its current values are cleared), and is named in the summary and the log with the
 * command that removes it. A sector ETF in that state leaves its members without rs_sector_score,
 * the summary naming it (sectorEtfsUnavailable, warnings); SPY never is. enrichment-daily still
 * brings their bars should they trade, and they are scored again from then.
 *
 * The summary's `warnings` repeats, one line each, what someone should act on: sector ETFs
 * unavailable or not in the universe, stale and never-found members, classes to set.
 *
 * A session not closed yet is refused as bad input (`bullpen run refresh-rs` at noon, a payload
 * naming today or a later date): its bars are partial or yesterday's, and a success would stand
 * as that date's scores and current values. The scheduled run, after the close, is the one.
 */
import { DateTime } from 'luxon';
import { nextTradingDay, previousTradingDay, tradingDateOf, tradingDaysBetween } from '../src/analytics/calendar.ts';
import { addCalendarDays, dayNumberOfIsoDate, sessionCloseMs, type AssetClass } from '../src/analytics/timeframes.ts';
import { createBackfill, createContextEnqueuer, loadTrackedAssetClasses, planBackfill } from '../src/enrichment/backfills.ts';
import { BadInputError, UpstreamUnavailableError } from '../src/errors.ts';
import { basePayload, defineJob, payloadDate, scheduledInstant } from '../src/job-definition.ts';
import { tickDate } from '../src/cron.ts';
import {
  loadLateMembers,
  loadUnscored,
  MARKET_BENCHMARK,
  NEVER_FOUND_AFTER_DATES,
  publishCurrentScores,
  RS_REQUEST_PREFIX,
  scoreRelativeStrength,
  STALE_AFTER_SESSIONS,
  type RsScoringOptions,
} from '../src/queries/rs.ts';
import { loadUnavailableSectorEtfs, type UnavailableSectorEtf } from '../src/queries/rs-read.ts';
import { someNames } from '../src/text.ts';

const TZ = 'America/New_York';
/** How often a run waiting for its enrichment request looks again. */
const FRESHNESS_POLL_MS = 3_000;
/** Calendar days of 1d history a score needs (253 sessions) with room for holidays; chunks already stored are not fetched again. */
const HISTORY_DAYS = 400;
/** Unscored symbols listed by name in the summary (the count is always there). */
const LISTED_UNSCORED = 50;
/** Commands (and symbols) spelled out in a hint or warning; the summary's lists name the rest. */
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
    const listed = await ctx.db<{ symbol: string; asset_class: AssetClass; sector_etf: string | null }[]>`
      select symbol, asset_class, sector_etf from market.sector_mapping order by symbol`;
    if (listed.length === 0) return { asOf, symbols: 0, note: 'market.sector_mapping is empty: nothing to score' };

    // Each member's class as enrichment plans it: a coin the trading system knows as one is not
    // scored (nor asked for as a stock) where the universe took the default class.
    const tracked = await loadTrackedAssetClasses(ctx.db, listed.map((m) => m.symbol));
    const reclassified = listed.flatMap((m) => {
      const known = tracked.get(m.symbol);
      return known && known.assetClass !== m.asset_class ? [{ symbol: m.symbol, listedAs: m.asset_class, ...known }] : [];
    });
    const options: RsScoringOptions = { assetClasses: new Map(reclassified.map((r) => [r.symbol, r.assetClass])) };

    const members = await loadLateMembers(ctx.db, asOf, TZ, options);
    // A stale or never-found member is not waited for: the bar of a symbol that stopped trading
    // (or never did, under that ticker) does not come, and each evening would ask for it and wait
    // for the request to fail. A sector ETF among them leaves its members without rs_sector_score.
    const late = members.filter((m) => !m.stale && !m.never_found);
    const stale = members.filter((m) => m.stale && !m.benchmark);
    const neverFound = members.filter((m) => m.never_found && !m.benchmark);
    if (late.length > 0) {
      const tag = `${RS_REQUEST_PREFIX}${asOf}`;
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
        const plan = planBackfill(
          {
            symbols: late.map((m) => m.symbol),
            timeframes: '1d',
            from: again ? (asOf < today ? asOf : today) : addCalendarDays(asOf, -HISTORY_DAYS),
            to: asOf,
            reprocess: again ? 'all' : 'missing',
            requested_by: tag,
          },
          { defaultSource: ctx.config.marketDataSource, maxBars: Number.MAX_SAFE_INTEGER, now: Date.now(), assetClasses: tracked },
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
      // Without SPY nothing is scored: the run fails, retryably. A sector ETF only feeds its
      // members' rs_sector_score, so the last attempt scores without it rather than withhold every
      // rating (jobAttempts is the attempts every job is given). Stocks still without the bar after
      // this attempt's request: scored NULL with a note.
      const lastAttempt = ctx.attempt >= ctx.config.jobAttempts;
      if (missing.length > 0 && (missing.includes(MARKET_BENCHMARK) || !lastAttempt)) {
        const etfsOnly = !missing.includes(MARKET_BENCHMARK);
        throw new UpstreamUnavailableError(
          `no 1d bar for ${asOf} of ${missing.join(', ')} (enrichment request ${request.backfill_id} ended ${request.status} without it); the data may arrive later` +
            (etfsOnly
              ? `; attempt ${ctx.attempt} of ${ctx.config.jobAttempts}: the last one scores without ${missing.length === 1 ? 'it' : 'them'}, its members without rs_sector_score`
              : ''),
        );
      }
    }

    const { counts, published, unscored, etfs } = await ctx.db.begin(async (tx) => {
      const sql = tx as unknown as typeof ctx.db;
      const counts = await scoreRelativeStrength(sql, asOf, TZ, options);
      const published = await publishCurrentScores(sql, asOf, TZ, options);
      return { counts, published, unscored: await loadUnscored(sql, asOf), etfs: await loadUnavailableSectorEtfs(sql, asOf) };
    });
    const staleSymbols = stale.slice(0, LISTED_UNSCORED).map((m) => ({
      symbol: m.symbol,
      lastBar: m.last_bar,
      sessionsWithoutBar: m.last_bar === null ? null : tradingDaysBetween(nextTradingDay(m.last_bar), asOf).length,
    }));
    const neverFoundSymbols = neverFound.slice(0, LISTED_UNSCORED).map((m) => ({ symbol: m.symbol, datesAsked: m.dates_asked }));
    const listedSymbols = new Set(listed.map((m) => m.symbol));
    const unknownEtfs = groupBy(listed.filter((m) => m.sector_etf !== null && !listedSymbols.has(m.sector_etf)), (m) => m.sector_etf as string);
    const warnings = [
      ...etfs.map(describeUnavailableEtf),
      ...[...unknownEtfs].map(([etf, named]) => describeUnknownEtf(etf, named.map((m) => m.symbol))),
      ...(stale.length > 0 ? [describeStale(stale.map((m) => m.symbol))] : []),
      ...(neverFound.length > 0 ? [describeNeverFound(neverFound.map((m) => m.symbol))] : []),
      ...[...groupBy(reclassified, (r) => `${r.listedAs}\u0000${r.assetClass}\u0000${r.trackedIn}`).values()].map(describeReclassified),
    ];
    const summary = {
      asOf,
      ...counts,
      unscored: unscored.length,
      unscoredSymbols: unscored.slice(0, LISTED_UNSCORED).map((u) => ({ symbol: u.symbol, reason: u.note })),
      stale: stale.length,
      ...(stale.length > 0 ? { staleSymbols, staleHint: removalHint(stale.map((m) => m.symbol)) } : {}),
      neverFound: neverFound.length,
      ...(neverFound.length > 0 ? { neverFoundSymbols } : {}),
      ...(etfs.length > 0 ? { sectorEtfsUnavailable: etfs } : {}),
      current: published > 0,
      ...(warnings.length > 0 ? { warnings } : {}),
    };
    if (unscored.length > 0) ctx.logger.warn({ asOf, unscored: unscored.length, first: unscored.slice(0, 5) }, 'symbols without a score (reasons in the summary)');
    for (const warning of warnings) ctx.logger.warn({ asOf }, warning);
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

/** The first LISTED_REMOVALS commands, then how many more (the summary's `list` names the first LISTED_UNSCORED). */
function commands(symbols: readonly string[], command: (symbol: string) => string, list: string): string {
  const more = symbols.length - LISTED_REMOVALS;
  return `${symbols.slice(0, LISTED_REMOVALS).map(command).join('; ')}${more > 0 ? `; and ${more} more (the run's ${list} lists the first ${LISTED_UNSCORED})` : ''}`;
}

/** What an operator runs to drop members that stopped trading from the universe (their RS history is kept). */
function removalHint(symbols: readonly string[]): string {
  return `remove members that no longer trade: ${commands(symbols, (s) => `bullpen universe remove ${s}`, 'staleSymbols')}`;
}

const members = (n: number) => `${n} ${n === 1 ? 'member' : 'members'}`;

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}

function describeUnavailableEtf(e: UnavailableSectorEtf): string {
  return (
    `sector ETF ${e.etf} unavailable (${e.reason ?? 'no score'}): ${members(e.members)} scored without rs_sector_score; ` +
    `point ${e.members === 1 ? 'it' : 'them'} at a live ETF (bullpen universe add SYMBOL --etf TICKER) or clear it (--no-etf)`
  );
}

/** A sector ETF named by members but not itself in the universe (a typo, most likely): they are scored against SPY only. */
function describeUnknownEtf(etf: string, named: readonly string[]): string {
  return (
    `sector ETF ${etf}, named by ${members(named.length)} (${someNames(named, LISTED_REMOVALS)}), ` +
    `is not in market.sector_mapping: scored against ${MARKET_BENCHMARK} only; add it (bullpen universe add ${etf} --sector "…" --asset-class etf) ` +
    'or fix their sector ETF (bullpen universe add SYMBOL --etf TICKER, or --no-etf)'
  );
}

function describeStale(symbols: readonly string[]): string {
  return (
    `${symbols.length} ${symbols.length === 1 ? 'member has' : 'members have'} had no 1d bar for ${STALE_AFTER_SESSIONS} sessions or more (delisted?): ` +
    `not waited for or rated; ${removalHint(symbols)}`
  );
}

function describeNeverFound(symbols: readonly string[]): string {
  return (
    `${members(symbols.length)} never had a 1d bar, though refresh-rs asked enrichment for ${symbols.length === 1 ? 'it' : 'them'} ` +
    `on ${NEVER_FOUND_AFTER_DATES} dates or more (a typo, or a ticker the data source does not know?): not asked for or rated any more; ` +
    `fix or remove ${symbols.length === 1 ? 'it' : 'them'}: ${commands(symbols, (s) => `bullpen universe remove ${s}`, 'neverFoundSymbols')}`
  );
}

/** Members of one listed class tracked as another by one record. */
function describeReclassified(group: readonly { symbol: string; listedAs: AssetClass; assetClass: AssetClass; trackedIn: string }[]): string {
  const { listedAs, assetClass, trackedIn } = group[0] as (typeof group)[number];
  const symbols = group.map((r) => r.symbol);
  return (
    `${symbols.length} ${symbols.length === 1 ? 'member is' : 'members are'} ${listedAs} in market.sector_mapping but ${assetClass} in ${trackedIn}: ` +
    `taken as ${assetClass}${assetClass === 'crypto' ? ' (not scored)' : ''}; set the class to silence this: ` +
    commands(symbols, (s) => `bullpen universe add ${s} --asset-class ${assetClass}`, 'warnings')
  );
}
