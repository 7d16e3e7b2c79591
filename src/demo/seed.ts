/**
 * Writes a generated demo history into the `oltp` schema: the one place bullpen writes
 * there (DESIGN.md). One transaction, so a failed seed leaves `oltp` as it was; set-based
 * inserts (`unnest` of one array per column, in chunks), never one statement per row.
 *
 * Every value travels as text and is cast explicitly to its column's type in SQL, so decimal
 * strings arrive as exact numerics ('NaN' as numeric NaN) and ISO strings as timestamptz with
 * their microseconds. (Sending text also sidesteps postgres.js's own serializers, which type
 * an array by its first element: a boolean array would be bound as boolean, not boolean[].)
 */
import type { TransactionSql } from 'postgres';
import type { Sql } from '../db.ts';
import type { DemoHistory } from './synthetic.ts';

type Tx = TransactionSql;

/** Rows written per table. */
export interface DemoSeedCounts {
  accounts: number;
  instruments: number;
  strategies: number;
  orders: number;
  executions: number;
}

/** A column of an oltp table and the SQL type its array parameter is cast to. */
interface Column<Row> {
  name: keyof Row & string;
  type: 'bigint' | 'integer' | 'numeric' | 'text' | 'boolean' | 'timestamptz';
}

/**
 * Rows per statement. Each statement sends one array per column, so the limit is bytes, not
 * PostgreSQL's 65,535 bind parameters; 5,000 executions are about 1 MB of parameters.
 */
const CHUNK_ROWS = 5_000;

const ACCOUNT_COLUMNS: ReadonlyArray<Column<DemoHistory['accounts'][number]>> = [
  { name: 'account_id', type: 'bigint' },
  { name: 'account_number', type: 'text' },
  { name: 'account_name', type: 'text' },
  { name: 'account_type', type: 'text' },
  { name: 'broker', type: 'text' },
  { name: 'currency', type: 'text' },
  { name: 'risk_tier', type: 'text' },
  { name: 'updated_at', type: 'timestamptz' },
];

const INSTRUMENT_COLUMNS: ReadonlyArray<Column<DemoHistory['instruments'][number]>> = [
  { name: 'instrument_id', type: 'bigint' },
  { name: 'symbol', type: 'text' },
  { name: 'exchange', type: 'text' },
  { name: 'instrument_type', type: 'text' },
  { name: 'full_name', type: 'text' },
  { name: 'sector', type: 'text' },
  { name: 'industry', type: 'text' },
  { name: 'currency', type: 'text' },
  { name: 'tick_size', type: 'numeric' },
  { name: 'lot_size', type: 'integer' },
  { name: 'is_active', type: 'boolean' },
  { name: 'updated_at', type: 'timestamptz' },
];

const STRATEGY_COLUMNS: ReadonlyArray<Column<DemoHistory['strategies'][number]>> = [
  { name: 'strategy_id', type: 'bigint' },
  { name: 'strategy_name', type: 'text' },
  { name: 'strategy_type', type: 'text' },
  { name: 'risk_tier', type: 'text' },
  { name: 'version', type: 'integer' },
  { name: 'is_active', type: 'boolean' },
  { name: 'updated_at', type: 'timestamptz' },
];

const ORDER_COLUMNS: ReadonlyArray<Column<DemoHistory['orders'][number]>> = [
  { name: 'order_id', type: 'bigint' },
  { name: 'account_id', type: 'bigint' },
  { name: 'instrument_id', type: 'bigint' },
  { name: 'strategy_id', type: 'bigint' },
  { name: 'side', type: 'text' },
  { name: 'quantity', type: 'numeric' },
  { name: 'limit_price', type: 'numeric' },
  { name: 'created_at', type: 'timestamptz' },
];

const EXECUTION_COLUMNS: ReadonlyArray<Column<DemoHistory['executions'][number]>> = [
  { name: 'execution_id', type: 'bigint' },
  { name: 'order_id', type: 'bigint' },
  { name: 'account_id', type: 'bigint' },
  { name: 'instrument_id', type: 'bigint' },
  { name: 'executed_at', type: 'timestamptz' },
  { name: 'ingested_at', type: 'timestamptz' },
  { name: 'side', type: 'text' },
  { name: 'quantity', type: 'numeric' },
  { name: 'price', type: 'numeric' },
  { name: 'commission', type: 'numeric' },
  { name: 'fees', type: 'numeric' },
  { name: 'liquidity_flag', type: 'text' },
  { name: 'venue', type: 'text' },
  { name: 'reported_at', type: 'timestamptz' },
];

/**
 * `insert into <table> (<columns>) select * from unnest($1::text[]::<type>[], …)`. Table and
 * column names come from the constants above, never from input, so building the text is safe.
 */
function insertStatement<Row>(table: string, columns: ReadonlyArray<Column<Row>>): string {
  const names = columns.map((c) => c.name).join(', ');
  const arrays = columns.map((c, i) => `$${i + 1}::text[]::${c.type}[]`).join(', ');
  return `insert into ${table} (${names}) select * from unnest(${arrays})`;
}

function textOf(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new TypeError(`cannot seed a ${typeof value} value`);
}

async function insertRows<Row>(tx: Tx, table: string, columns: ReadonlyArray<Column<Row>>, rows: readonly Row[]): Promise<number> {
  const statement = insertStatement(table, columns);
  for (let start = 0; start < rows.length; start += CHUNK_ROWS) {
    const chunk = rows.slice(start, start + CHUNK_ROWS);
    // One text array per column; null stays NULL.
    const parameters = columns.map((c) => chunk.map((row) => textOf(row[c.name])));
    await tx.unsafe(statement, parameters);
  }
  return rows.length;
}

/**
 * Inserts a demo history into oltp in one transaction and returns the rows written per table.
 * Fails (and writes nothing) if any of its keys already exists; check `isOltpEmpty` first.
 */
export async function seedDemoHistory(sql: Sql, history: DemoHistory): Promise<DemoSeedCounts> {
  return sql.begin(async (tx) => {
    // Reference tables first, as a real source would hold them before any order points at them.
    const accounts = await insertRows(tx, 'oltp.accounts', ACCOUNT_COLUMNS, history.accounts);
    const instruments = await insertRows(tx, 'oltp.instruments', INSTRUMENT_COLUMNS, history.instruments);
    const strategies = await insertRows(tx, 'oltp.strategies', STRATEGY_COLUMNS, history.strategies);
    const orders = await insertRows(tx, 'oltp.orders', ORDER_COLUMNS, history.orders);
    const executions = await insertRows(tx, 'oltp.executions', EXECUTION_COLUMNS, history.executions);
    return { accounts, instruments, strategies, orders, executions };
  });
}

/**
 * The tables of schema oltp holding at least one row (`oltp.accounts`, …), every table of the
 * schema counted, not only those the demo writes: a source with its accounts loaded but no
 * fills yet is someone's data all the same, and the demo's ids (accounts 101–110, …) would
 * collide with theirs.
 */
export async function listOltpTablesWithRows(sql: Sql): Promise<string[]> {
  // A partitioned table is asked once, through its parent, which covers its partitions.
  const tables = await sql<{ name: string }[]>`
    select c.relname as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'oltp' and c.relkind in ('r', 'p') and not c.relispartition
    order by c.relname`;
  const holding: string[] = [];
  for (const { name } of tables) {
    // The name comes from the catalogue, quoted as an identifier: no input reaches this text.
    const [row] = await sql.unsafe<{ any: boolean }[]>(`select exists (select 1 from oltp."${name.replace(/"/g, '""')}") as any`);
    if (row?.any) holding.push(`oltp.${name}`);
  }
  return holding;
}

/** True when no table of oltp holds a row: the demo (or `npm start` on the embedded default) may seed. */
export async function isOltpEmpty(sql: Sql): Promise<boolean> {
  return (await listOltpTablesWithRows(sql)).length === 0;
}
