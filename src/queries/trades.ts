/**
 * The statements of one trade-ETL batch, in the order the loader runs them inside one
 * transaction (src/trade-loader.ts). Work happens in temp tables that vanish at commit:
 *
 *   etl_stage    the source rows of the batch, COPYed in when the source is another database
 *   etl_batch    each row judged: reject reason, dimension keys as of executed_at, and its
 *                status against what is loaded (new, unchanged, amended, removed, rejected)
 *   etl_pairs    the account × instrument lot queues the batch touches, and from where
 *                they must be recomputed (append after the last fill, or restate)
 *   etl_results  realized PnL and position after each recomputed fill, from src/analytics/fifo.ts
 *   etl_restated existing fills whose PnL or position changed in a restatement
 *
 * Only the identifiers and time zone below are spliced into SQL text, never row data.
 */
import type { PendingQuery, Row, Sql, TransactionSql } from 'postgres';

type Tx = TransactionSql<Record<string, never>>;

export const EXECUTIONS_SOURCE = 'oltp.executions';

/** Columns of a source row, in etl_stage order; the strategy comes from the fill's order. */
const STAGE_COLUMNS = `
  execution_id bigint, order_id bigint, account_id bigint, instrument_id bigint,
  executed_at timestamptz, ingested_at timestamptz, side text, quantity numeric, price numeric,
  commission numeric, fees numeric, liquidity_flag text, venue text, reported_at timestamptz,
  strategy_id bigint`;

/** etl_stage's column names, in order. */
export const STAGE_COLUMN_NAMES: readonly string[] = STAGE_COLUMNS.split(',').map((c) => (c.trim().split(/\s+/)[0] as string));

export interface Watermark {
  ingestedAt: string;
  executionId: string;
}

/**
 * Which source rows a batch reads. `watermark`: after the watermark and ingested at or before
 * `until` (the run's start, one finite bound for the whole run), oldest ingestion first; a row
 * stamped later (a skewed source clock, a typo like 2099) waits for a run that starts after it,
 * instead of carrying the watermark past every row ingested before it; rows ingested at -infinity
 * are left out of it. `not-finite`: the rows ingested at ±infinity, which the window never reads
 * (no finite bound reaches +infinity, and -infinity sorts before any watermark that has moved: a
 * row stamped so after the first run would never be read); they are read by id, only to quarantine
 * them. `retry`: the rows of open rejects whose account or instrument has appeared since
 * (loadRetryableRejects), by id, whatever their ingested_at.
 */
export type BatchWindow =
  | { kind: 'watermark'; after: Watermark | null; until: Date; limit: number }
  | { kind: 'not-finite'; afterId: string | null; limit: number }
  | { kind: 'retry'; ids: readonly string[] };

/** The source query for one batch (see BatchWindow). */
export function sourceBatchQuery(window: BatchWindow): string {
  let inner: string;
  if (window.kind === 'watermark') {
    const until = `e.ingested_at <= '${window.until.toISOString()}'::timestamptz AND e.ingested_at > '-infinity'`;
    const after = window.after === null ? '' : ` AND (e.ingested_at, e.execution_id) > (${literalTimestamp(window.after.ingestedAt)}, ${literalBigint(window.after.executionId)})`;
    inner = `SELECT * FROM oltp.executions e WHERE ${until}${after} ORDER BY e.ingested_at, e.execution_id LIMIT ${Math.trunc(window.limit)}`;
  } else if (window.kind === 'not-finite') {
    // not isfinite(ingested_at), as the two ends of the watermark index, each read in id order:
    // the index serves an equality on ingested_at, not the function.
    const after = window.afterId === null ? '' : ` AND e.execution_id > ${literalBigint(window.afterId)}`;
    const limit = `ORDER BY e.execution_id LIMIT ${Math.trunc(window.limit)}`;
    const end = (value: string) => `(SELECT * FROM oltp.executions e WHERE e.ingested_at = '${value}'${after} ${limit})`;
    inner = `SELECT * FROM (${end('-infinity')} UNION ALL ${end('infinity')}) e ${limit}`;
  } else {
    // Ids from our own ops.etl_rejects, each checked to be a bigint: primary-key probes.
    const ids = window.ids.map(checkedBigint).join(',');
    inner = `SELECT * FROM oltp.executions e WHERE e.execution_id = ANY('{${ids}}'::bigint[]) ORDER BY e.execution_id`;
  }
  // Limit first, then join orders: the watermark index serves the inner query alone.
  return `
    SELECT e.execution_id, e.order_id, e.account_id, e.instrument_id, e.executed_at, e.ingested_at, e.side,
           e.quantity, e.price, e.commission, e.fees, e.liquidity_flag, e.venue, e.reported_at, o.strategy_id
    FROM (${inner}) e
    -- A probe per fill (LIMIT keeps it one): the orders table only grows, a hash join would scan it all.
    LEFT JOIN LATERAL (SELECT o.strategy_id FROM oltp.orders o WHERE o.order_id = e.order_id LIMIT 1) o ON true`;
}

// The query is spliced as text into other statements (the classification, the cross-database
// cursor), so the watermark is inlined; both values come from our own ops.etl_watermarks row and
// are checked to be what they claim. BC instants are valid watermarks (such rows are read, and
// quarantined, before the others), and so is '-infinity', which runs saved when the window still
// read the rows ingested then.
function literalTimestamp(value: string): string {
  if (!/^(-infinity|[0-9: .+-]+( BC)?)$/.test(value)) throw new Error(`watermark timestamp ${JSON.stringify(value)} is not a PostgreSQL timestamptz`);
  return `'${value}'::timestamptz`;
}
function literalBigint(value: string): string {
  return `${checkedBigint(value)}::bigint`;
}
function checkedBigint(value: string): string {
  if (!/^-?\d{1,19}$/.test(value)) throw new Error(`execution id ${JSON.stringify(value)} is not a bigint`);
  return value;
}

export async function lockEtl(tx: Tx): Promise<void> {
  await tx`select pg_advisory_xact_lock(hashtext('bullpen.trade-etl'))`;
}

export async function loadWatermark(tx: Tx): Promise<Watermark | null> {
  const [row] = await tx<{ ingested_at: string; execution_id: string }[]>`
    select last_ingested_at::text as ingested_at, last_execution_id::text as execution_id
    from ops.etl_watermarks where source = ${EXECUTIONS_SOURCE} and last_ingested_at is not null`;
  return row ? { ingestedAt: row.ingested_at, executionId: row.execution_id } : null;
}

export async function saveWatermark(tx: Tx, watermark: Watermark, now: Date): Promise<void> {
  await tx`
    insert into ops.etl_watermarks (source, last_ingested_at, last_execution_id, updated_at)
    values (${EXECUTIONS_SOURCE}, ${watermark.ingestedAt}::text::timestamptz, ${watermark.executionId}::bigint, ${now})
    on conflict (source) do update set last_ingested_at = excluded.last_ingested_at,
      last_execution_id = excluded.last_execution_id, updated_at = excluded.updated_at`;
}

/** The batch's temp tables (etl_stage only when the rows come from another database). */
export async function createStage(tx: Tx, landing: boolean): Promise<void> {
  // UTC text for instants: the FIFO module reads them back as ISO strings with an offset. A
  // batch's sorts and hashes (100,000 rows) fit in memory instead of spilling to disk. No JIT:
  // the per-pair lookups look costly to the planner, and compiling them took longer (0.5–0.7 s
  // a batch) than running them.
  await tx`set local timezone = 'UTC'`;
  await tx`set local work_mem = '64MB'`;
  await tx`set local jit = off`;
  if (landing) await tx.unsafe(`CREATE TEMP TABLE etl_stage (${STAGE_COLUMNS}) ON COMMIT DROP`);
  await tx.unsafe(`CREATE TEMP TABLE etl_restated (execution_id bigint, trade_date date, account_id bigint, realized_pnl numeric, position_after numeric, open_cost numeric) ON COMMIT DROP`);
}

/** Last row of the batch in watermark order, or null when the batch is empty. */
export async function batchWatermark(tx: Tx): Promise<Watermark | null> {
  const [row] = await tx<{ ingested_at: string; execution_id: string }[]>`
    select ingested_at::text, execution_id::text from etl_batch order by ingested_at desc, execution_id desc limit 1`;
  return row ? { ingestedAt: row.ingested_at, executionId: row.execution_id } : null;
}

/**
 * The hash of source row `s` as loaded, with `strategy` for its order's strategy: 64 bits over the
 * values (not their text: equal numbers hash equal, and no formatting cost); an amendment going
 * unnoticed would need a collision between two versions of one execution.
 */
const rowHash = (tx: Tx, strategy: PendingQuery<Row[]>) => tx`
  hash_record_extended(row(s.order_id, s.account_id, s.instrument_id, s.executed_at, s.side, s.quantity, s.price,
    s.commission, s.fees, s.liquidity_flag, s.venue, s.reported_at, ${strategy}), 0)`;

/**
 * A reject `r` of batch row `b` as it stands: the same raw row, or the same one read while its
 * order had no strategy (the raw row carries the order's strategy; the execution did not change).
 */
const sameRaw = (tx: Tx) => tx`
  (r.raw_hash = md5(b.raw::text) or (b.strategy_id is not null and r.raw_hash = md5((b.raw || '{"strategy_id": null}'::jsonb)::text)))`;

/**
 * Reads the batch and judges every row (DESIGN.md "Rejected": one reason code each, first
 * failing check wins), resolves its dimension keys as of executed_at, and compares it with what
 * is loaded. `source`: read straight from oltp when it is in this database (no landing table),
 * else from etl_stage, where the rows were copied first. Returns the rows read.
 */
export async function classifyBatch(
  tx: Tx,
  now: Date,
  tz: string,
  source: { kind: 'same-database'; window: BatchWindow } | { kind: 'staged' },
): Promise<number> {
  const rows = source.kind === 'staged' ? tx.unsafe('etl_stage') : tx.unsafe(`(${sourceBatchQuery(source.window)})`);
  await tx.unsafe(`
    CREATE TEMP TABLE etl_batch (${STAGE_COLUMNS},
      row_hash bigint, reason text, raw jsonb, status text NOT NULL, local_at timestamp, trade_date date,
      account_key integer, instrument_key integer, strategy_key integer,
      old_account_id bigint, old_instrument_id bigint, old_executed_at timestamptz, old_trade_date date, old_hash bigint
    ) ON COMMIT DROP`);
  const inserted = await tx`
    insert into etl_batch
    select s.*, h.row_hash, r.reason,
      -- the raw row, kept for quarantine and the amendment audit only
      case when r.reason is not null or k.row_hash <> h.row_hash then to_jsonb(s) end,
      case when r.reason is not null then case when k.execution_id is null then 'rejected' else 'removed' end
           when k.execution_id is null then 'new'
           when k.row_hash = h.row_hash then 'unchanged'
           -- Loaded while its order had no strategy (hashed with none): the row is the same, and the
           -- reassign pass moves the fact to the strategy its order has now.
           when s.strategy_id is not null and k.row_hash = ${rowHash(tx, tx`null::bigint`)} then 'unchanged'
           else 'amended' end,
      t.local_at, t.local_at::date,
      a.account_key, i.instrument_key, coalesce(st.strategy_key, 0),
      null, null, null, k.trade_date, k.row_hash
    from ${rows} s
    cross join lateral (select s.executed_at at time zone ${tz} as local_at) t
    cross join lateral (select ${rowHash(tx, tx`s.strategy_id`)} as row_hash) h
    left join warehouse.dim_account a
      on a.account_id = s.account_id and s.executed_at >= a.effective_from and s.executed_at < a.effective_to
    left join warehouse.dim_instrument i
      on i.instrument_id = s.instrument_id and s.executed_at >= i.effective_from and s.executed_at < i.effective_to
    left join warehouse.dim_strategy st
      on st.strategy_id = s.strategy_id and s.executed_at >= st.effective_from and s.executed_at < st.effective_to
    -- One index probe per row (LIMIT keeps it a probe): cost stays flat as the warehouse grows,
    -- where a hash join would scan every key loaded so far in every batch.
    left join lateral (
      select k.execution_id, k.trade_date, k.row_hash from warehouse.fact_trade_keys k where k.execution_id = s.execution_id limit 1
    ) k on true
    -- Everything src/analytics/fifo.ts and insertFacts would refuse is refused here first: one
    -- row they throw on would roll back its whole batch, run after run.
    cross join lateral (select case
      -- ±infinity has no place in the watermark order (such rows are only read to be quarantined).
      when not isfinite(s.ingested_at) then 'ingested_at_not_finite'
      when s.quantity is null then 'quantity_missing'
      when s.quantity in ('NaN', 'Infinity', '-Infinity') then 'quantity_not_a_number'
      when s.quantity <= 0 then 'quantity_not_positive'
      -- FIFO takes at most 100 digits (MAX_INPUT_DIGITS, counted on the text, trailing zeros
      -- included); at most 50 on each side of the point keeps a partly closed lot's remainder
      -- (integer digits of one fill, decimals of another) within that when it is read back.
      when s.quantity >= 1e50 or scale(s.quantity) > 50 then 'quantity_too_many_digits'
      when s.price is null then 'price_missing'
      when s.price in ('NaN', 'Infinity', '-Infinity') then 'price_not_a_number'
      when s.price <= 0 then 'price_not_positive'
      when s.price >= 1e50 or scale(s.price) > 50 then 'price_too_many_digits'
      when s.side is null or s.side not in ('BUY', 'SELL') then 'side_invalid'
      when s.executed_at is null then 'executed_at_missing'
      -- FIFO reads executed_at as 'YYYY-MM-DD hh:mm:ss+00' text (no infinities, BC or 5-digit
      -- years), and dim_date's calendar (src/analytics/calendar.ts) knows trading dates in years
      -- 1583–9999 only.
      when not isfinite(s.executed_at) or t.local_at < '1583-01-01' or t.local_at >= '10000-01-01'
        or s.executed_at >= '10000-01-01 00:00:00+00' then 'executed_at_out_of_range'
      -- The worker's clock, no tolerance: only rows ingested by the run's start are read, so a
      -- fill later than this is also later than its own ingested_at (a skewed clock only delays reading).
      when s.executed_at > ${now} then 'executed_at_in_future'
      when s.executed_at > s.ingested_at then 'executed_at_after_ingested_at'
      when s.account_id is null then 'account_missing'
      when a.account_key is null then 'account_unknown'
      when s.instrument_id is null then 'instrument_missing'
      when i.instrument_key is null then 'instrument_unknown'
      when s.commission in ('NaN', 'Infinity', '-Infinity') or s.fees in ('NaN', 'Infinity', '-Infinity') then 'fees_not_a_number'
    end as reason) r`;
  // Statistics on the two columns later joins need, so they hash rather than loop (a temp
  // table has none of its own and the planner would guess).
  await tx`analyze etl_batch (execution_id, status)`;
  return inserted.count;
}

/**
 * The not-finite pass reads every row ingested at ±infinity on every run: drops those already
 * quarantined as they are now (same raw row), so each is reported once. Returns the largest
 * id read (where the next slice starts), or null when nothing was read.
 */
export async function dropQuarantined(tx: Tx): Promise<string | null> {
  const [last] = await tx<{ id: string | null }[]>`select max(execution_id)::text as id from etl_batch`;
  await dropAlreadyQuarantined(tx);
  return last?.id ?? null;
}

/** Drops from etl_batch the rejected rows already in quarantine as they stand (same raw row). */
async function dropAlreadyQuarantined(tx: Tx): Promise<void> {
  await tx`
    delete from etl_batch b using ops.etl_rejects r
    where b.reason is not null and r.source = ${EXECUTIONS_SOURCE} and r.source_key = b.execution_id::text
      and ${sameRaw(tx)}`;
}

/**
 * Up to `limit` execution ids, after `afterId` in bigint order, whose latest open reject is an
 * unknown account or instrument that the dimensions now hold (both members the raw row names:
 * an account_unknown row may also name an unknown instrument). An older open reject of the same
 * id describes a version the source has since replaced, so only the latest counts. One query
 * over the open rejects of two reasons, members probed by their current-version index; nothing
 * to retry costs just this.
 */
export async function loadRetryableRejects(sql: Sql, afterId: string | null, limit: number): Promise<string[]> {
  // Its estimate of the partial index's rows follows the reasons of every reject ever stored, and
  // the cost it reaches had JIT compile the plan: ~140 ms a run for a ~0.1 ms query.
  const rows = await sql.begin(async (tx) => {
    await tx`set local jit = off`;
    return tx<{ id: string }[]>`
      select r.source_key as id from ops.etl_rejects r
      -- A probe of the open-rejects index per candidate (a hash anti-join would scan every open reject).
      cross join lateral (
        select max(n.reject_id) as reject_id from ops.etl_rejects n
        where n.source = r.source and n.source_key = r.source_key and n.resolved_at is null
      ) latest
      -- The reasons a source can cure without touching the row (its account or instrument appears
      -- later), written out as sql/014's partial index states them, so that every plan can use it.
      where r.source = ${EXECUTIONS_SOURCE} and r.resolved_at is null and r.reason in ('account_unknown', 'instrument_unknown')
        and (${afterId}::bigint is null or r.source_key::bigint > ${afterId}::bigint)
        and latest.reject_id = r.reject_id
        and exists (select 1 from warehouse.dim_account a where a.account_id = (r.raw->>'account_id')::bigint and a.is_current)
        -- a missing instrument is judged as such on the retry (instrument_missing), and not retried again
        and (r.raw->>'instrument_id' is null
          or exists (select 1 from warehouse.dim_instrument i where i.instrument_id = (r.raw->>'instrument_id')::bigint and i.is_current))
      order by r.source_key::bigint
      limit ${Math.trunc(limit)}`;
  });
  return rows.map((r) => r.id);
}

/**
 * The retry pass re-reads quarantined rows: one rejected again as it stands (same raw row) is
 * already in quarantine and is dropped from the batch, so it is not reported twice. If its
 * reason moved on (its account appeared but its fees are NaN), the open reject takes the new
 * reason and detail, so it is not retried on every run.
 */
export async function dropRequarantined(tx: Tx, now: Date): Promise<void> {
  await tx`
    update ops.etl_rejects r set reason = b.reason, detail = ${rejectDetail(tx, now)}
    from etl_batch b
    where b.reason is not null and r.source = ${EXECUTIONS_SOURCE} and r.source_key = b.execution_id::text
      and ${sameRaw(tx)} and r.resolved_at is null and r.reason <> b.reason`;
  await dropAlreadyQuarantined(tx);
}

/** Where amended and removed executions sat before: their lot queue and place in it. */
export async function loadPreviousVersions(tx: Tx): Promise<void> {
  await tx`
    update etl_batch b set old_account_id = f.account_id, old_instrument_id = f.instrument_id, old_executed_at = f.executed_at
    from warehouse.fact_trades f
    where b.status in ('amended', 'removed') and f.trade_date = b.old_trade_date and f.execution_id = b.execution_id`;
}

export interface BatchCounts {
  new: number;
  unchanged: number;
  amended: number;
  removed: number;
  rejected: number;
}

export async function countStatuses(tx: Tx): Promise<BatchCounts> {
  const rows = await tx<{ status: keyof BatchCounts; n: number }[]>`select status, count(*)::int as n from etl_batch group by status`;
  const counts: BatchCounts = { new: 0, unchanged: 0, amended: 0, removed: 0, rejected: 0 };
  for (const row of rows) counts[row.status] = row.n;
  return counts;
}

/** A reject's readable detail, from etl_batch row `b` and its reason. */
function rejectDetail(tx: Tx, now: Date) {
  return tx`
    case b.reason
      when 'quantity_not_positive' then 'quantity ' || b.quantity || ' is not greater than 0'
      when 'quantity_not_a_number' then 'quantity is ' || b.quantity
      when 'price_not_positive' then 'price ' || b.price || ' is not greater than 0'
      when 'price_not_a_number' then 'price is ' || b.price
      when 'quantity_too_many_digits' then 'quantity has ' || length(trunc(b.quantity)::text) || ' digits before the decimal point and '
        || scale(b.quantity) || ' after; at most 50 of each are accepted'
      when 'price_too_many_digits' then 'price has ' || length(trunc(b.price)::text) || ' digits before the decimal point and '
        || scale(b.price) || ' after; at most 50 of each are accepted'
      when 'ingested_at_not_finite' then 'ingested_at is ' || b.ingested_at
      when 'executed_at_out_of_range' then 'executed_at ' || b.executed_at || ' is outside the years 1583 to 9999 (trading date in the exchange zone)'
      when 'side_invalid' then 'side ' || coalesce('''' || b.side || '''', 'NULL') || ' is not exactly BUY or SELL'
      when 'executed_at_in_future' then 'executed_at ' || b.executed_at || ' is later than the load time ' || ${now}::timestamptz
      when 'executed_at_after_ingested_at' then 'executed_at ' || b.executed_at || ' is later than ingested_at ' || b.ingested_at
      when 'account_unknown' then 'account_id ' || b.account_id || ' is not in oltp.accounts'
      when 'instrument_unknown' then 'instrument_id ' || b.instrument_id || ' is not in oltp.instruments'
      when 'fees_not_a_number' then 'commission ' || coalesce(b.commission::text, 'NULL') || ', fees ' || coalesce(b.fees::text, 'NULL')
      else replace(b.reason, '_', ' ')
    end`;
}

/**
 * Quarantines rejected rows with their reason and the raw row (a re-run adds nothing), and
 * marks earlier rejects of rows that now load as resolved. Returns rejects per reason.
 */
export async function quarantineRejects(tx: Tx, partition: string, now: Date): Promise<Record<string, number>> {
  const rows = await tx<{ reason: string; n: number }[]>`
    with raw as (
      select b.execution_id, b.reason, b.ingested_at, b.raw,
        ${rejectDetail(tx, now)} as detail
      from etl_batch b
      where b.reason is not null
    ), inserted as (
      insert into ops.etl_rejects (source, source_key, reason, detail, raw, raw_hash, ingested_at, run_partition, rejected_at)
      select ${EXECUTIONS_SOURCE}, execution_id::text, reason, detail, raw, md5(raw::text), ingested_at, ${partition}, ${now}
      from raw
      on conflict (source, source_key, raw_hash) do nothing
    )
    select reason, count(*)::int as n from raw group by reason`;
  await tx`
    update ops.etl_rejects r set resolved_at = ${now}
    from etl_batch b
    where b.status in ('new', 'amended', 'unchanged') and r.source = ${EXECUTIONS_SOURCE}
      and r.source_key = b.execution_id::text and r.resolved_at is null`;
  return Object.fromEntries(rows.map((r) => [r.reason, r.n]));
}

/**
 * Audits amendments (the fact as it was, the source row replacing it) and takes the old
 * versions out of fact_trades and fact_trade_keys, so the pairs they lived in can be restated.
 */
export async function retireAmended(tx: Tx, partition: string, now: Date): Promise<void> {
  await tx`
    insert into ops.etl_amendments (source, execution_id, previous_hash, current_hash, previous, current, run_partition, amended_at)
    select ${EXECUTIONS_SOURCE}, b.execution_id, b.old_hash::text, b.row_hash::text, to_jsonb(f), b.raw, ${partition}, ${now}
    from etl_batch b
    join warehouse.fact_trades f on f.trade_date = b.old_trade_date and f.execution_id = b.execution_id
    where b.status in ('amended', 'removed')
    on conflict (source, execution_id, previous_hash, current_hash, amended_at) do nothing`;
  await tx`
    delete from warehouse.fact_trades f using etl_batch b
    where b.status in ('amended', 'removed') and f.trade_date = b.old_trade_date and f.execution_id = b.execution_id`;
  await tx`
    delete from warehouse.fact_trade_keys k using etl_batch b
    where b.status in ('amended', 'removed') and k.execution_id = b.execution_id`;
}

/**
 * The lot queues to recompute and from where: 'append' when everything the batch brings sorts
 * after the pair's last fill (continue from the stored lots), else 'restate' from the last
 * point before the earliest change where the position was flat (the lot queue is empty
 * there, so nothing earlier can matter).
 */
export async function planPairs(tx: Tx): Promise<void> {
  await tx`
    create temp table etl_pairs on commit drop as
    with changes as (
      select account_id, instrument_id, executed_at, execution_id from etl_batch where status in ('new', 'amended')
      union all
      select old_account_id, old_instrument_id, old_executed_at, execution_id from etl_batch where status in ('amended', 'removed')
    ), earliest as (
      select distinct on (account_id, instrument_id) account_id, instrument_id, executed_at as from_at, execution_id as from_id
      from changes order by account_id, instrument_id, executed_at, execution_id
    )
    select e.account_id, e.instrument_id,
      case when p.account_id is null or (e.from_at, e.from_id) > (p.last_executed_at, p.last_execution_id) then 'append' else 'restate' end as mode,
      p.position, anchor.executed_at as anchor_at, anchor.execution_id as anchor_id
    from earliest e
    left join warehouse.fifo_positions p on p.account_id = e.account_id and p.instrument_id = e.instrument_id
    left join lateral (
      select f.executed_at, f.execution_id from warehouse.fact_trades f
      where p.account_id is not null and (e.from_at, e.from_id) <= (p.last_executed_at, p.last_execution_id)
        and f.account_id = e.account_id and f.instrument_id = e.instrument_id
        and (f.executed_at, f.execution_id) < (e.from_at, e.from_id) and f.position_after = 0
      order by f.executed_at desc, f.execution_id desc limit 1
    ) anchor on true`;
}

export interface PairRow {
  account_id: string;
  instrument_id: string;
  mode: 'append' | 'restate';
  position: unknown;
  anchor_at: string | null;
  anchor_id: string | null;
}

export async function loadPairs(tx: Tx): Promise<PairRow[]> {
  return tx<PairRow[]>`select account_id::text, instrument_id::text, mode, position, anchor_at::text, anchor_id::text from etl_pairs`;
}

export interface FillRow {
  account_id: string;
  instrument_id: string;
  execution_id: string;
  executed_at: string;
  side: 'BUY' | 'SELL';
  quantity: string;
  price: string;
  is_new: boolean;
}

/**
 * Every fill to (re)match, in no particular order: the batch's new and amended ones, plus the loaded
 * fills of restated pairs after their anchor. (bigint columns arrive as strings.)
 */
export async function loadFillsToMatch(tx: Tx): Promise<FillRow[]> {
  return tx<FillRow[]>`
    select b.account_id, b.instrument_id, b.execution_id, b.executed_at::text, b.side,
           b.quantity::text, b.price::text, true as is_new
    from etl_batch b where b.status in ('new', 'amended')
    union all
    select f.account_id, f.instrument_id, f.execution_id, f.executed_at::text, f.side,
           f.quantity::text, f.price::text, false
    from etl_pairs p
    join warehouse.fact_trades f on f.account_id = p.account_id and f.instrument_id = p.instrument_id
      and (p.anchor_at is null or (f.executed_at, f.execution_id) > (p.anchor_at, p.anchor_id))
    where p.mode = 'restate'`;
}

export interface MatchResults {
  executionIds: string[];
  realized: string[];
  positionAfter: string[];
  openCost: string[];
  isNew: boolean[];
}

/** COPY is the cheapest way in for tens of thousands of rows (no bind-parameter arrays to build). */
export async function saveMatchResults(tx: Tx, results: MatchResults): Promise<void> {
  await tx`create temp table etl_results (execution_id bigint, realized_pnl numeric, position_after numeric, open_cost numeric, is_new boolean) on commit drop`;
  const target = await tx`copy etl_results from stdin`.writable();
  let text = '';
  for (let i = 0; i < results.executionIds.length; i++) {
    text += `${results.executionIds[i]}\t${results.realized[i]}\t${results.positionAfter[i]}\t${results.openCost[i]}\t${results.isNew[i] ? 't' : 'f'}\n`;
  }
  await new Promise<void>((resolve, reject) => target.end(text, (error?: Error | null) => (error ? reject(error) : resolve())));
}

/** Records where the batch's new and amended facts will live, with their row hashes. */
export async function insertFactKeys(tx: Tx): Promise<void> {
  await tx`
    insert into warehouse.fact_trade_keys (execution_id, trade_date, row_hash)
    select execution_id, trade_date, row_hash from etl_batch where status in ('new', 'amended')`;
}

/** Writes restated PnL and positions of fills already loaded where they changed; returns how many changed. */
export async function applyRestatements(tx: Tx): Promise<number> {
  const restated = await tx`
    with changed as (
      update warehouse.fact_trades f set realized_pnl = r.realized_pnl, position_after = r.position_after, open_cost = r.open_cost
      from etl_results r join warehouse.fact_trade_keys k using (execution_id)
      where not r.is_new and f.trade_date = k.trade_date and f.execution_id = r.execution_id
        and (f.realized_pnl, f.position_after, f.open_cost) is distinct from (r.realized_pnl, r.position_after, r.open_cost)
      returning f.execution_id, f.trade_date, f.account_id, f.realized_pnl, f.position_after, f.open_cost
    )
    insert into etl_restated select * from changed`;
  return restated.count;
}

/** Months and dates the batch's loadable rows fall on. */
export async function loadBatchDates(tx: Tx): Promise<{ from: string | null; to: string | null; months: string[] }> {
  const [row] = await tx<{ from: string | null; to: string | null; months: string[] | null }[]>`
    select min(trade_date)::text as from, max(trade_date)::text as to,
           array_agg(distinct date_trunc('month', trade_date)::date::text) as months
    from etl_batch where status in ('new', 'amended')`;
  return { from: row?.from ?? null, to: row?.to ?? null, months: row?.months ?? [] };
}

/** Creates missing monthly partitions; returns the months created. */
export async function ensurePartitions(tx: Tx, months: readonly string[]): Promise<string[]> {
  if (months.length === 0) return [];
  const rows = await tx<{ month: string; created: boolean }[]>`
    select m::text as month, warehouse.ensure_fact_trades_partition(m) as created
    from unnest(${months as string[]}::date[]) as m order by m`;
  return rows.filter((r) => r.created).map((r) => r.month);
}

export async function insertFacts(tx: Tx): Promise<number> {
  const result = await tx`
    insert into warehouse.fact_trades (trade_date, execution_id, date_key, time_key, account_key, instrument_key, strategy_key,
      account_id, instrument_id, order_id, executed_at, side, quantity, price, notional_value, commission, fees, realized_pnl, position_after, open_cost,
      liquidity_flag, venue, latency_ms)
    select b.trade_date, b.execution_id,
      (extract(year from b.trade_date) * 10000 + extract(month from b.trade_date) * 100 + extract(day from b.trade_date))::int,
      (extract(hour from b.local_at) * 10000 + extract(minute from b.local_at) * 100 + floor(extract(second from b.local_at)))::int,
      b.account_key, b.instrument_key, b.strategy_key, b.account_id, b.instrument_id, b.order_id, b.executed_at, b.side, b.quantity, b.price,
      b.quantity * b.price, coalesce(b.commission, 0), coalesce(b.fees, 0), r.realized_pnl, r.position_after, r.open_cost,
      b.liquidity_flag, b.venue,
      -- Compared, not subtracted, first: an infinite or far-off reported_at has no latency, and
      -- subtracting it would fail (infinite timestamps, interval overflow). ±24 days fits an int of ms.
      case when b.reported_at between b.executed_at - interval '24 days' and b.executed_at + interval '24 days'
           then round(extract(epoch from b.reported_at - b.executed_at) * 1000)::int end
    from etl_batch b
    join etl_results r using (execution_id)
    where r.is_new`;
  return result.count;
}

export interface PositionWrite {
  account_id: string;
  instrument_id: string;
  /** src/analytics/fifo.ts Position, stored as json. */
  position: unknown;
  quantity: string;
  last_executed_at: string;
  last_execution_id: string;
}

/** Upserts the pairs' lots and deletes pairs left without any fill; one JSON document each way. */
export async function savePositions(tx: Tx, writes: readonly PositionWrite[], emptied: ReadonlyArray<{ account_id: string; instrument_id: string }>): Promise<void> {
  if (writes.length > 0) {
    await tx`
      insert into warehouse.fifo_positions (account_id, instrument_id, position, quantity, last_executed_at, last_execution_id)
      select * from json_to_recordset(${JSON.stringify(writes)}::text::json) as p(
        account_id bigint, instrument_id bigint, position json, quantity numeric, last_executed_at timestamptz, last_execution_id bigint)
      on conflict (account_id, instrument_id) do update set position = excluded.position, quantity = excluded.quantity,
        last_executed_at = excluded.last_executed_at, last_execution_id = excluded.last_execution_id`;
  }
  if (emptied.length > 0) {
    await tx`
      delete from warehouse.fifo_positions p
      using json_to_recordset(${JSON.stringify(emptied)}::text::json) as e(account_id bigint, instrument_id bigint)
      where p.account_id = e.account_id and p.instrument_id = e.instrument_id`;
  }
}

/** Records the (date, account) rollup partitions the batch changed; returns them. */
export async function requestRollups(tx: Tx, requestedBy: string, now: Date): Promise<Array<{ trade_date: string; account_id: string }>> {
  return tx<{ trade_date: string; account_id: string }[]>`
    insert into ops.rollup_requests (trade_date, account_id, requested_at, requested_by)
    select distinct trade_date, account_id, ${now}::timestamptz, ${requestedBy} from (
      select trade_date, account_id from etl_batch where status in ('new', 'amended')
      union all
      select old_trade_date, old_account_id from etl_batch where status in ('amended', 'removed')
      union all
      select trade_date, account_id from etl_restated
    ) t
    on conflict (trade_date, account_id) do update set requested_at = excluded.requested_at, requested_by = excluded.requested_by
    returning trade_date::text, account_id::text`;
}

/**
 * Up to `limit` order ids, after `afterId` in bigint order, of facts loaded under the
 * 'unassigned' strategy (key 0) although they name an order: it, or its strategy, was not known
 * when they loaded. sql/017's partial index, one index-only scan per month partition.
 */
export async function loadUnassignedOrders(sql: Sql, afterId: string | null, limit: number): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    select order_id::text as id from (
      select distinct order_id from warehouse.fact_trades
      -- coalesce, not "is null or": the bound stays an index condition, so each slice seeks to its start.
      where strategy_key = 0 and order_id is not null and order_id > coalesce(${afterId}::bigint, '-9223372036854775808'::bigint)
      order by order_id limit ${Math.trunc(limit)}
    ) o order by order_id`;
  return rows.map((r) => r.id);
}

/** The source's strategy of each of some orders that has one (primary-key probes). */
export async function loadOrderStrategies(sourceDb: Sql, orderIds: readonly string[]): Promise<Array<{ order_id: string; strategy_id: string }>> {
  return sourceDb<{ order_id: string; strategy_id: string }[]>`
    select order_id::text, strategy_id::text from oltp.orders
    where order_id = any(${orderIds as string[]}::bigint[]) and strategy_id is not null`;
}

/**
 * Moves unassigned facts of the given orders to their strategy's version in force at each
 * fill's executed_at, where dim_strategy has one, and requests the rollup partitions they sit
 * in. FIFO lots are per account × instrument, shared by every strategy, so nothing else changes.
 * Returns the partitions requested and how many facts moved.
 */
export async function reassignStrategies(
  tx: Tx,
  orders: ReadonlyArray<{ order_id: string; strategy_id: string }>,
  requestedBy: string,
  now: Date,
): Promise<{ moved: number; rollupRequests: Array<{ trade_date: string; account_id: string }> }> {
  const [row] = await tx<{ moved: number; requests: Array<{ trade_date: string; account_id: string }> | null }[]>`
    with moved as (
      update warehouse.fact_trades f set strategy_key = st.strategy_key
      from unnest(${orders.map((o) => o.order_id)}::bigint[], ${orders.map((o) => o.strategy_id)}::bigint[]) as o(order_id, strategy_id)
      join warehouse.dim_strategy st on st.strategy_id = o.strategy_id
      where f.strategy_key = 0 and f.order_id = o.order_id
        and f.executed_at >= st.effective_from and f.executed_at < st.effective_to
      returning f.trade_date, f.account_id
    ), requested as (
      insert into ops.rollup_requests (trade_date, account_id, requested_at, requested_by)
      select distinct trade_date, account_id, ${now}::timestamptz, ${requestedBy} from moved
      on conflict (trade_date, account_id) do update set requested_at = excluded.requested_at, requested_by = excluded.requested_by
      returning trade_date::text, account_id::text
    )
    select (select count(*)::int from moved) as moved,
           (select json_agg(json_build_object('trade_date', trade_date, 'account_id', account_id)) from requested) as requests`;
  return { moved: row?.moved ?? 0, rollupRequests: row?.requests ?? [] };
}

/** Whether any rollup partition is waiting for a rebuild (also those of a run that died before enqueueing). */
export async function hasPendingRollups(sql: Sql): Promise<boolean> {
  const [row] = await sql<{ pending: boolean }[]>`select exists (select 1 from ops.rollup_requests) as pending`;
  return row?.pending ?? false;
}
