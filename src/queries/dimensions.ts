/**
 * Type-2 slowly changing dimensions fed from the OLTP source, and dim_date coverage.
 *
 * The source's member tables are small (accounts, instruments, strategies), so each run reads
 * them whole from the source database (which may be another server) and merges them here
 * set-based: a member whose tracked attributes changed gets its current version closed at the
 * source row's updated_at and a new version opened there; a new member's first version is
 * effective from -infinity so every old trade resolves. Facts already loaded with the old
 * version but executed after the new version's start are re-pointed, so a fact always
 * carries the version in force at its executed_at whatever order things arrived in.
 */
import type { Sql, TransactionSql } from 'postgres';
import { createDimDateRows, missingDimDateRanges } from '../analytics/dim-date.ts';

type Tx = TransactionSql<Record<string, never>>;

interface DimensionSpec {
  /** Source table in oltp and target table in warehouse. */
  source: string;
  target: string;
  id: string;
  key: string;
  /** Tracked attributes and their SQL types; a change in any of them opens a new version. */
  attributes: ReadonlyArray<readonly [string, string]>;
  /** Which fact_trades rows' rollups change when a version of this dimension changes. */
  affectsRollups: boolean;
  /**
   * The rollups resolve this member's key by date, not from facts (equity_curve and
   * performance_metrics carry the account version in force at the end of each date), so a
   * new version restates the member's rollups from its start even when no fact moved.
   */
  keyedByDate: boolean;
  /**
   * fact_positions_daily carries the version in force at the end of each date (and marks at its
   * symbol's bars), so a new version restates the positions of every account holding the member
   * from its start, even when no fact moved.
   */
  heldByDate: boolean;
}

export const DIMENSIONS: readonly DimensionSpec[] = [
  {
    source: 'oltp.accounts',
    target: 'warehouse.dim_account',
    id: 'account_id',
    key: 'account_key',
    attributes: [
      ['account_number', 'text'],
      ['account_name', 'text'],
      ['account_type', 'text'],
      ['broker', 'text'],
      ['currency', 'text'],
      ['risk_tier', 'text'],
    ],
    affectsRollups: true,
    keyedByDate: true,
    heldByDate: false,
  },
  {
    source: 'oltp.instruments',
    target: 'warehouse.dim_instrument',
    id: 'instrument_id',
    key: 'instrument_key',
    attributes: [
      ['symbol', 'text'],
      ['exchange', 'text'],
      ['instrument_type', 'text'],
      ['full_name', 'text'],
      ['sector', 'text'],
      ['industry', 'text'],
      ['currency', 'text'],
      ['tick_size', 'numeric'],
      ['lot_size', 'integer'],
      ['is_active', 'boolean'],
    ],
    // fact_instrument_daily carries the version of each fill, fact_positions_daily the one in force each date.
    affectsRollups: true,
    keyedByDate: false,
    heldByDate: true,
  },
  {
    source: 'oltp.strategies',
    target: 'warehouse.dim_strategy',
    id: 'strategy_id',
    key: 'strategy_key',
    attributes: [
      ['strategy_name', 'text'],
      ['strategy_type', 'text'],
      ['risk_tier', 'text'],
      ['version', 'integer'],
      ['is_active', 'boolean'],
    ],
    affectsRollups: true,
    keyedByDate: false,
    heldByDate: false,
  },
];

/** Natural ids fact_trades carries. */
const FACT_COLUMNS = new Set(['account_id', 'instrument_id']);

export interface DimensionSyncResult {
  dimension: string;
  added: number;
  changed: number;
  /** Facts moved to a newer version of their member. */
  repointed: number;
}

/** Reads one dimension's source rows, timestamps as text so microseconds survive the trip. */
export async function loadSourceMembers(sourceDb: Sql | Tx, spec: DimensionSpec): Promise<Record<string, unknown>[]> {
  const columns = [spec.id, ...spec.attributes.map(([name]) => name)].join(', ');
  return sourceDb.unsafe(`SELECT ${columns}, updated_at::text AS updated_at FROM ${spec.source}`);
}

/**
 * Merges source members into a type-2 dimension inside `tx` and re-points facts; returns
 * what changed. `now` stands in for a changed row's missing or infinite updated_at. Stale rollup
 * partitions of re-pointed facts are recorded in ops.rollup_requests, and for a member keyed
 * by date (an account) the partition where its new version starts, so that the next pending
 * build-rollups run restates its curve and metrics from there even if it never trades again.
 */
export async function syncDimension(
  tx: Tx,
  spec: DimensionSpec,
  members: readonly Record<string, unknown>[],
  now: Date,
  requestedBy: string,
): Promise<DimensionSyncResult> {
  const attrs = spec.attributes.map(([name]) => name);
  const recordType = [`${spec.id} bigint`, ...spec.attributes.map(([name, type]) => `${name} ${type}`), 'updated_at timestamptz'].join(', ');
  const tuple = (alias: string) => `(${attrs.map((a) => `${alias}.${a}`).join(', ')})`;
  const insertColumns = [spec.id, ...attrs, 'source_updated_at', 'effective_from', 'is_current'].join(', ');
  const selectColumns = (alias: string) => [spec.id, ...attrs].map((c) => `${alias}.${c}`).join(', ');

  await tx.unsafe(`CREATE TEMP TABLE dim_source (${recordType}) ON COMMIT DROP`);
  await tx.unsafe(`INSERT INTO dim_source SELECT * FROM jsonb_to_recordset($1::text::jsonb) AS s(${recordType})`, [JSON.stringify(members)]);
  // A member changed at the source: the new version starts at its updated_at (never before the
  // current version's own start, so versions stay ordered even with a skewed source clock). An
  // infinite updated_at counts as a missing one: ±infinity + 1 µs is ±infinity, so the new
  // version would start where the current one does and collide with it (UNIQUE (id,
  // effective_from)), failing every run. So every start but a first version's -infinity is
  // finite, and a new one is finite and after its current version's.
  // (CREATE TABLE AS takes no bind parameters; the one value inlined is our own Date.)
  await tx.unsafe(
    `CREATE TEMP TABLE dim_changed ON COMMIT DROP AS
     SELECT d.${spec.key} AS old_key, s.*,
            greatest(CASE WHEN isfinite(s.updated_at) THEN s.updated_at ELSE ${timestampLiteral(now)} END,
                     d.effective_from + interval '1 microsecond') AS starts_at
     FROM dim_source s JOIN ${spec.target} d ON d.${spec.id} = s.${spec.id} AND d.is_current
     WHERE ${tuple('d')} IS DISTINCT FROM ${tuple('s')}`,
  );
  // Statistics, so that the re-pointing below probes fact_trades per changed member (a handful)
  // instead of hashing them and scanning every fact (seconds at a few million).
  await tx.unsafe('ANALYZE dim_changed');
  await tx.unsafe(`UPDATE ${spec.target} d SET effective_to = c.starts_at, is_current = false FROM dim_changed c WHERE d.${spec.key} = c.old_key`);
  const changed = await tx.unsafe(
    `INSERT INTO ${spec.target} (${insertColumns})
     SELECT ${selectColumns('c')}, c.updated_at, c.starts_at, true FROM dim_changed c`,
  );
  const added = await tx.unsafe(
    `INSERT INTO ${spec.target} (${insertColumns})
     SELECT ${selectColumns('s')}, s.updated_at, '-infinity', true FROM dim_source s
     WHERE s.${spec.id} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${spec.target} d WHERE d.${spec.id} = s.${spec.id})`,
  );
  let repointed = 0;
  if (changed.count > 0) {
    const moved = await tx.unsafe(
      `WITH versions AS (
         SELECT c.${spec.id} AS member_id, c.old_key, d.${spec.key} AS new_key, d.effective_from
         FROM dim_changed c JOIN ${spec.target} d ON d.${spec.id} = c.${spec.id} AND d.is_current
       ), moved AS (
         UPDATE warehouse.fact_trades f SET ${spec.key} = v.new_key
         FROM versions v
         WHERE f.${spec.key} = v.old_key AND f.executed_at >= v.effective_from
           -- Index bounds: a trade date is never before the UTC date of its instant less a day (in
           -- any zone), and facts carry the account and instrument ids (fact_trades has no index
           -- leading with account_key, one leading with account_id).
           AND f.trade_date >= (v.effective_from AT TIME ZONE 'UTC')::date - 1
           ${FACT_COLUMNS.has(spec.id) ? `AND f.${spec.id} = v.member_id` : ''}
         RETURNING f.trade_date, f.account_key
       ), requested AS (
         INSERT INTO ops.rollup_requests (trade_date, account_id, requested_at, requested_by)
         SELECT DISTINCT m.trade_date, a.account_id, $1::timestamptz, $2
         FROM moved m JOIN warehouse.dim_account a ON a.account_key = m.account_key
         WHERE $3::boolean
         ON CONFLICT (trade_date, account_id) DO UPDATE SET requested_at = excluded.requested_at, requested_by = excluded.requested_by
       )
       SELECT count(*)::int AS n FROM moved`,
      [now, requestedBy, spec.affectsRollups],
    );
    repointed = (moved[0] as unknown as { n: number }).n;
    if (spec.keyedByDate) {
      // EXCHANGE_TZ is not known here: the day before the start's UTC date is on or before its
      // date in any zone, and rebuilding one day more than needed is harmless. A start in the
      // future (a skewed source clock) is requested as of now, so no curve is stretched past today.
      await tx.unsafe(
        `INSERT INTO ops.rollup_requests (trade_date, account_id, requested_at, requested_by)
         SELECT DISTINCT (least(c.starts_at, $1::timestamptz) AT TIME ZONE 'UTC')::date - 1, c.${spec.id}, $1::timestamptz, $2
         FROM dim_changed c
         ON CONFLICT (trade_date, account_id) DO UPDATE SET requested_at = excluded.requested_at, requested_by = excluded.requested_by`,
        [now, requestedBy],
      );
    }
    if (spec.heldByDate) {
      // The accounts holding it in the week before the start or since (positions rows exist on
      // curve dates only, so the day before may be a weekend): rebuilt from the day before, as above.
      await tx.unsafe(
        `INSERT INTO ops.rollup_requests (trade_date, account_id, requested_at, requested_by)
         SELECT DISTINCT v.day_before, p.account_id, $1::timestamptz, $2
         FROM dim_changed c
         CROSS JOIN LATERAL (SELECT (least(c.starts_at, $1::timestamptz) AT TIME ZONE 'UTC')::date - 1 AS day_before) v
         JOIN warehouse.fact_positions_daily p ON p.instrument_id = c.${spec.id} AND p.trade_date >= v.day_before - 6
         ON CONFLICT (trade_date, account_id) DO UPDATE SET requested_at = excluded.requested_at, requested_by = excluded.requested_by`,
        [now, requestedBy],
      );
    }
  }
  await tx.unsafe('DROP TABLE dim_source, dim_changed');
  return { dimension: spec.target, added: added.count, changed: changed.count, repointed };
}

/** Date range dim_date already covers (it is generated in whole years, without gaps). */
async function loadDimDateCoverage(tx: Tx | Sql): Promise<{ from: string | null; to: string | null }> {
  const [row] = await tx<{ from: string | null; to: string | null }[]>`
    select min(date)::text as from, max(date)::text as to from warehouse.dim_date`;
  return row ?? { from: null, to: null };
}

/**
 * Extends dim_date so it covers `from`..`to` (ISO dates), in whole calendar years and without
 * gaps next to what is there. Returns the number of dates added.
 */
export async function ensureDimDates(tx: Tx | Sql, from: string, to: string): Promise<number> {
  let added = 0;
  for (const [start, end] of missingDimDateRanges(await loadDimDateCoverage(tx), from, to)) {
    const rows = createDimDateRows(start, end);
    const result = await tx`
      insert into warehouse.dim_date
      select * from unnest(
        ${rows.map((r) => r.dateKey)}::int[], ${rows.map((r) => r.date)}::date[], ${rows.map((r) => r.year)}::int[],
        ${rows.map((r) => r.quarter)}::int[], ${rows.map((r) => r.month)}::int[], ${rows.map((r) => r.monthName)}::text[],
        ${rows.map((r) => r.dayOfMonth)}::int[], ${rows.map((r) => r.dayOfWeek)}::int[], ${rows.map((r) => r.dayName)}::text[],
        ${rows.map((r) => r.weekOfYear)}::int[], ${rows.map((r) => String(r.isWeekend))}::text[]::boolean[],
        ${rows.map((r) => String(r.isTradingDay))}::text[]::boolean[], ${rows.map((r) => String(r.isHoliday))}::text[]::boolean[],
        ${rows.map((r) => r.holidayName)}::text[], ${rows.map((r) => r.earlyClose)}::text[]::time[],
        ${rows.map((r) => r.fiscalYear)}::int[], ${rows.map((r) => r.fiscalQuarter)}::int[], ${rows.map((r) => r.fiscalMonth)}::int[]
      )
      on conflict (date_key) do nothing`;
    added += result.count;
  }
  return added;
}

function timestampLiteral(date: Date): string {
  return `'${date.toISOString()}'::timestamptz`;
}
