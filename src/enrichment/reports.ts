/**
 * Reads behind the enrichment API and `bullpen backfill status`: recent requests with their
 * progress, a symbol's status (derived now from the stored facts and the clock), the pipeline's
 * fetch/compute/quality metrics, and a symbol's data-quality report.
 *
 * Windows: fetch and compute metrics cover the last 24 hours of logging; the pipeline-wide
 * quality averages the last 7 days by metric date. A symbol's status and quality report look at
 * the 7 (or `days`) days ending at that symbol's newest metric date, so a historical backfill
 * still reports what it stored instead of nothing.
 */
import { enrichmentStatus } from '../analytics/data-quality.ts';
import { calendarOf, type AssetClass } from '../analytics/timeframes.ts';
import type { PendingQuery, Row } from 'postgres';
import type { Sql } from '../db.ts';
import type { BackfillStatus } from '../queries/enrichment.ts';
import { sessionsBehind } from './series-step.ts';
import { backfillPace, progressPct, type BackfillReport } from './backfills.ts';

const num = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value));
const round = (value: number | null, places: number): number | null => (value === null ? null : Math.round(value * 10 ** places) / 10 ** places);
const iso = (value: Date | null | undefined): string | null => (value ? value.toISOString() : null);

/**
 * The validation rate of a set of quality rows, in %: validated bars over delivered ones, not the
 * mean of the rows' rates, which would weigh a day's one 1d bar like its seven 1h bars and answer
 * a rate its own record counts contradict. Rows without bars rate 0, as the pipeline stores them;
 * no rows, no rate.
 */
function validationRate(db: Sql): PendingQuery<Row[]> {
  return db`(case when sum(total_records) > 0 then sum(validated_records) * 100.0 / sum(total_records) when count(*) > 0 then 0 end)::float8`;
}

/** A line of the backfill list: the report's request and progress fields, and an ETA. */
export interface BackfillListItem
  extends Pick<
    BackfillReport,
    | 'backfill_id'
    | 'status'
    | 'symbols'
    | 'timeframes'
    | 'asset_class'
    | 'from'
    | 'to'
    | 'source'
    | 'requested_by'
    | 'chunks_total'
    | 'chunks_done'
    | 'chunks_failed'
    | 'progress_pct'
    | 'bars_written'
    | 'created_at'
    | 'started_at'
    | 'finished_at'
  > {
  /** Bars written per second of wall time since it started (until it finished); null before it starts and after a resume. */
  bars_per_second: number | null;
  /** Seconds left at the chunk rate so far, while it runs and once a chunk is handled, unless resumed; null otherwise. */
  eta_seconds: number | null;
}

/** Recent backfill requests, newest first, with their progress. */
export async function listBackfills(db: Sql, options: { status?: BackfillStatus; limit: number }): Promise<BackfillListItem[]> {
  const rows = await db<
    (Omit<BackfillListItem, 'progress_pct' | 'bars_written' | 'created_at' | 'started_at' | 'finished_at' | 'bars_per_second' | 'eta_seconds'> & {
      bars_written: string;
      created_at: Date;
      started_at: Date | null;
      finished_at: Date | null;
      db_now: Date;
      resumes: number;
    })[]
  >`
    select b.backfill_id::text, b.status, b.symbols, b.timeframes, b.asset_class, b.from_date::text as from, b.to_date::text as to,
      b.source, b.requested_by, b.created_at, b.started_at, b.finished_at, b.resumes,
      -- The database's clock, the one started_at and finished_at were written with.
      now() as db_now,
      t.chunks_total, t.chunks_done, t.chunks_failed, t.bars_written
    -- The newest requests first, then only their series summed: summing every request ever made
    -- before the limit grew with history (the status page asks every few seconds).
    from (
      select * from enrichment.backfills b
      where ${options.status ?? null}::text is null or b.status = ${options.status ?? null}::text
      order by b.created_at desc, b.backfill_id
      limit ${options.limit}
    ) b
    cross join lateral (
      select coalesce(sum(jsonb_array_length(s.chunks)), 0)::int as chunks_total,
        coalesce(sum(s.chunks_done + s.chunks_skipped + s.chunks_failed), 0)::int as chunks_done,
        coalesce(sum(s.chunks_failed), 0)::int as chunks_failed,
        coalesce(sum(s.bars_written), 0)::text as bars_written
      from enrichment.backfill_state s where s.backfill_job_id = b.backfill_id
    ) t
    order by b.created_at desc, b.backfill_id`;
  return rows.map((r) => {
    const bars = Number(r.bars_written);
    const pace = backfillPace({
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      now: r.db_now,
      resumes: r.resumes,
      status: r.status,
      barsWritten: bars,
      chunksDone: r.chunks_done,
      chunksTotal: r.chunks_total,
    });
    return {
      backfill_id: r.backfill_id,
      status: r.status,
      symbols: r.symbols,
      timeframes: r.timeframes,
      asset_class: r.asset_class,
      from: r.from,
      to: r.to,
      source: r.source,
      requested_by: r.requested_by,
      chunks_total: r.chunks_total,
      chunks_done: r.chunks_done,
      chunks_failed: r.chunks_failed,
      progress_pct: progressPct(r.chunks_done, r.chunks_total),
      bars_written: bars,
      created_at: r.created_at.toISOString(),
      started_at: iso(r.started_at),
      finished_at: iso(r.finished_at),
      bars_per_second: pace.barsPerSecond,
      eta_seconds: pace.etaSeconds,
    };
  });
}

/** GET /api/v1/enrichment/status/:symbol: the status is derived now, from the stored facts and the clock. */
export async function loadEnrichmentStatus(db: Sql, symbol: string, options: { now: number; nextEnrichment: string | null }): Promise<Record<string, unknown>> {
  const [row] = await db<
    {
      asset_class: AssetClass;
      status: string;
      last_enrichment_time: Date | null;
      latest_bar_ts: Date | null;
      records_available: string;
      timeframes_available: string[];
      error_message: string | null;
    }[]
  >`
    select asset_class, status, last_enrichment_time, latest_bar_ts, records_available::text, timeframes_available, error_message
    from enrichment.status where symbol = ${symbol}`;
  const timestamp = new Date(options.now).toISOString();
  if (!row) {
    const [mapped] = await db<{ asset_class: string }[]>`select asset_class from market.sector_mapping where symbol = ${symbol}`;
    return {
      symbol,
      asset_class: mapped?.asset_class ?? null,
      status: 'not_enriched',
      last_enrichment_time: null,
      data_age_seconds: null,
      records_available: 0,
      quality_score: null,
      validation_rate: null,
      timeframes_available: [],
      next_enrichment: options.nextEnrichment,
      error_message: null,
      timestamp,
    };
  }
  const [quality] = await db<{ quality_score: number | null; validation_rate: number | null }[]>`
    select avg(q.avg_quality_score)::float8 as quality_score, ${validationRate(db)} as validation_rate
    from enrichment.data_quality_metrics q
    where q.symbol = ${symbol}
      and q.metric_date > (select max(metric_date) from enrichment.data_quality_metrics where symbol = ${symbol}) - 7`;
  const qualityScore = round(quality?.quality_score ?? null, 2);
  const latest = row.latest_bar_ts?.getTime() ?? null;
  const status = enrichmentStatus({
    failed: row.status === 'error',
    qualityScore,
    sessionsBehind: latest === null ? null : sessionsBehind(latest, options.now, calendarOf(row.asset_class)),
  });
  return {
    symbol,
    asset_class: row.asset_class,
    status,
    last_enrichment_time: iso(row.last_enrichment_time),
    data_age_seconds: latest === null ? null : Math.max(0, Math.round((options.now - latest) / 1000)),
    records_available: Number(row.records_available),
    quality_score: qualityScore,
    validation_rate: round(quality?.validation_rate ?? null, 2),
    timeframes_available: row.timeframes_available,
    next_enrichment: options.nextEnrichment,
    error_message: row.error_message,
    timestamp,
  };
}

const rateOf = (successful: number, total: number): number | null => (total === 0 ? null : round((successful / total) * 100, 2));

/** GET /api/v1/enrichment/metrics. */
export async function loadEnrichmentMetrics(db: Sql, now: number): Promise<Record<string, unknown>> {
  const at = new Date(now);
  const [fetches] = await db<{ total: number; successful: number; avg_ms: number | null; quota: number | null }[]>`
    select count(*)::int as total, count(*) filter (where success)::int as successful, avg(source_response_time_ms)::float8 as avg_ms,
      (select api_quota_remaining from enrichment.fetch_log
        where created_at > ${at}::timestamptz - interval '24 hours' and api_quota_remaining is not null
        order by created_at desc, id desc limit 1) as quota
    from enrichment.fetch_log where created_at > ${at}::timestamptz - interval '24 hours'`;
  const [computes] = await db<{ total: number; successful: number; avg_ms: number | null }[]>`
    select count(*)::int as total, count(*) filter (where success)::int as successful, avg(computation_time_ms)::float8 as avg_ms
    from enrichment.compute_log where created_at > ${at}::timestamptz - interval '24 hours'`;
  const [quality] = await db<{ symbols: number; validation_rate: number | null; quality_score: number | null }[]>`
    select (select count(*)::int from enrichment.status) as symbols,
      ${validationRate(db)} as validation_rate, avg(avg_quality_score)::float8 as quality_score
    from enrichment.data_quality_metrics
    where metric_date > (${at}::timestamptz at time zone 'America/New_York')::date - 7`;
  const counts = await db<{ status: BackfillStatus; n: number }[]>`select status, count(*)::int as n from enrichment.backfills group by status`;
  const count = (status: BackfillStatus) => counts.find((c) => c.status === status)?.n ?? 0;
  return {
    fetch_pipeline: {
      total_fetches: fetches?.total ?? 0,
      successful: fetches?.successful ?? 0,
      success_rate: rateOf(fetches?.successful ?? 0, fetches?.total ?? 0),
      avg_response_time_ms: round(fetches?.avg_ms ?? null, 0),
      api_quota_remaining: fetches?.quota ?? null,
    },
    compute_pipeline: {
      total_computations: computes?.total ?? 0,
      successful: computes?.successful ?? 0,
      success_rate: rateOf(computes?.successful ?? 0, computes?.total ?? 0),
      avg_computation_time_ms: round(computes?.avg_ms ?? null, 0),
    },
    data_quality: {
      symbols_tracked: quality?.symbols ?? 0,
      avg_validation_rate: round(quality?.validation_rate ?? null, 2),
      avg_quality_score: round(quality?.quality_score ?? null, 2),
    },
    backfill_progress: {
      // A cancelling request is still running: its series stop at their next chunk boundary.
      in_progress: count('in_progress') + count('cancelling'),
      completed: count('completed'),
      failed: count('failed'),
      pending: count('queued'),
      cancelled: count('cancelled'),
    },
    timestamp: at.toISOString(),
  };
}

/** GET /api/v1/data/quality/:symbol: the `days` days ending at the symbol's newest metric date, summed over timeframes per day. */
export async function loadQualityReport(db: Sql, symbol: string, days: number, now: number): Promise<Record<string, unknown>> {
  const [{ latest } = { latest: null }] = await db<{ latest: string | null }[]>`
    select max(metric_date)::text as latest from enrichment.data_quality_metrics where symbol = ${symbol}`;
  const daily = latest
    ? await db<
        {
          date: string;
          total_records: number;
          validated_records: number;
          validation_rate: number;
          gaps_detected: number;
          anomalies_detected: number;
          avg_quality_score: number;
          data_completeness: number;
        }[]
      >`
        select metric_date::text as date, sum(total_records)::int as total_records, sum(validated_records)::int as validated_records,
          ${validationRate(db)} as validation_rate, sum(gaps_detected)::int as gaps_detected,
          sum(anomalies_detected)::int as anomalies_detected, avg(avg_quality_score)::float8 as avg_quality_score,
          avg(data_completeness)::float8 as data_completeness
        from enrichment.data_quality_metrics
        where symbol = ${symbol} and metric_date > ${latest}::date - ${days}::int
        group by metric_date order by metric_date desc`
    : [];
  const [summary] = latest
    ? await db<{ validation_rate: number | null; quality_score: number | null; gaps: number; anomalies: number }[]>`
        select ${validationRate(db)} as validation_rate, avg(avg_quality_score)::float8 as quality_score,
          coalesce(sum(gaps_detected), 0)::int as gaps, coalesce(sum(anomalies_detected), 0)::int as anomalies
        from enrichment.data_quality_metrics
        where symbol = ${symbol} and metric_date > ${latest}::date - ${days}::int`
    : [];
  const logs = await db<
    {
      source: string;
      timeframe: string;
      records_fetched: number;
      records_inserted: number;
      response_time_ms: number | null;
      success: boolean;
      error: string | null;
      created_at: Date;
    }[]
  >`
    select source, timeframe, records_fetched, records_inserted, source_response_time_ms as response_time_ms, success, error, created_at
    from enrichment.fetch_log where symbol = ${symbol}
    order by created_at desc, id desc limit 10`;
  return {
    symbol,
    period_days: days,
    period_end: latest,
    summary: {
      avg_validation_rate: round(summary?.validation_rate ?? null, 2),
      avg_quality_score: round(summary?.quality_score ?? null, 2),
      total_gaps_detected: summary?.gaps ?? 0,
      total_anomalies: summary?.anomalies ?? 0,
    },
    daily_metrics: daily.map((d) => ({
      date: d.date,
      total_records: d.total_records,
      validated_records: d.validated_records,
      validation_rate: round(d.validation_rate, 2),
      gaps_detected: d.gaps_detected,
      anomalies_detected: d.anomalies_detected,
      avg_quality_score: round(d.avg_quality_score, 2),
      data_completeness: round(d.data_completeness, 2),
    })),
    recent_fetch_logs: logs.map((l) => ({
      source: l.source,
      timeframe: l.timeframe,
      records_fetched: l.records_fetched,
      records_inserted: l.records_inserted,
      response_time_ms: num(l.response_time_ms),
      success: l.success,
      error: l.error,
      timestamp: l.created_at.toISOString(),
    })),
    timestamp: new Date(now).toISOString(),
  };
}
