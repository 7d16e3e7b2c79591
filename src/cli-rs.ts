/**
 * `bullpen rs`: the relative-strength table of a scored date (GET /api/v1/rs as a terminal
 * table), and `bullpen universe add | remove | list`: the symbols refresh-rs scores, in
 * market.sector_mapping (issue 6: users add or change symbols with SQL or a command). Bad input
 * throws BadInputError, which the CLI's main prints with exit code 1.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ASSET_CLASSES, type AssetClass } from './analytics/timeframes.ts';
import type { Config } from './config.ts';
import { openDatabase } from './app.ts';
import type { Sql } from './db.ts';
import { SYMBOL_PATTERN } from './enrichment/backfills.ts';
import { BadInputError } from './errors.ts';
import { parseSymbol } from './http/enrichment.ts';
import { parseDateParam } from './http/params.ts';
import { assertKnownSector, assertScoredSector, describeRsPage, resolveRsDate, RS_MAX_LIMIT, RS_MAX_OFFSET, RS_REFRESH_HINT, RsNotFoundError } from './http/rs.ts';
import type { Logger } from './logger.ts';
import { migrate } from './migrate.ts';
import { MARKET_BENCHMARK } from './queries/rs.ts';
import {
  countRsTable,
  loadRsDateCounts,
  loadRsTable,
  loadRsWarnings,
  loadSectors,
  loadUniverse,
  loadUniverseMember,
  type RsTableRow,
  type RsWarning,
  type UniverseMember,
} from './queries/rs-read.ts';

/** What cli.ts lends this module: its configuration loading and its one-shot logger. */
export interface RsCommandContext {
  loadConfig(): Config;
  createLogger(config: Config): Logger;
}

/** Longest sector or industry name taken (sector_mapping's are at most ~40). */
const MAX_NAME = 100;
/** Calendar days of 1d history a new symbol needs for its 12-month return, with room for holidays. */
const HISTORY_DAYS = 400;

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function table(header: string[], rows: string[][], rightAligned: ReadonlySet<number> = new Set()): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/**
 * Runs `fn` on a migrated database (the embedded one when DATABASE_URL is unset), closed after.
 * Only PostgreSQL: these commands queue nothing, so they work while Redis is down.
 */
async function withDatabase<T>(ctx: RsCommandContext, fn: (db: Sql) => Promise<T>): Promise<T> {
  const cfg = ctx.loadConfig();
  const logger = ctx.createLogger(cfg);
  const database = await openDatabase(cfg, { logger, db: { max: 2, applicationName: 'bullpen-cli' } });
  try {
    await migrate(database.db, { logger });
    return await fn(database.db);
  } finally {
    await database.close();
  }
}

// ---------------------------------------------------------------------------------------------
// bullpen rs

/** 0.1234 → "+12.3%"; null → "—". */
export function formatPercent(fraction: number | null): string {
  if (fraction === null) return '—';
  const pct = fraction * 100;
  return `${pct > 0 ? '+' : ''}${pct.toFixed(1)}%`;
}

/** 12.345 → "+12.35"; null → "—". */
function formatScore(score: number | null): string {
  if (score === null) return '—';
  return `${score > 0 ? '+' : ''}${score.toFixed(2)}`;
}

export interface RsTableView {
  asOf: string;
  sector?: string;
  leadersOnly: boolean;
  top: number;
  /** Rows of the order skipped (`--offset`): the first row shown ranks offset + 1. */
  offset: number;
  /** Rows the filters match in all. */
  total: number;
  counts: { symbols: number; scored: number; rated: number };
  rows: readonly RsTableRow[];
  /** The date's warnings (of the sector shown): printed below the table. */
  warnings?: readonly RsWarning[];
}

/** One line of `bullpen rs` for a warning of the date. */
export function describeRsWarning(w: RsWarning): string {
  if (w.kind === 'sector_etf_unavailable') {
    const n = w.members ?? 0;
    return `warning: sector ETF ${w.symbol} unavailable (${w.note ?? 'no score'}): ${n} ${n === 1 ? 'member' : 'members'} scored without rs_sector_score`;
  }
  return `warning: ${w.symbol}: ${w.note ?? w.kind}`;
}

/** The header line and table `bullpen rs` prints. */
export function renderRsTable(v: RsTableView): string {
  const filters = [v.sector ? `sector ${v.sector}` : '', v.leadersOnly ? 'sector leaders only' : ''].filter(Boolean).join(', ');
  const shown = v.offset === 0 ? `top ${v.top}` : `from rank ${v.offset + 1}, ${v.top} rows`;
  const lines = [
    `RS as of ${v.asOf}: ${v.counts.scored} of ${v.counts.symbols} symbols scored, ${v.counts.rated} stocks rated; ${shown}${filters ? ` (${filters})` : ''}`,
  ];
  if (v.rows.length === 0) {
    lines.push('no symbol matches', ...(v.warnings ?? []).map(describeRsWarning));
    return lines.join('\n');
  }
  const withNotes = v.rows.some((r) => r.note);
  const header = ['RANK', 'SYMBOL', 'SECTOR', 'RATING', 'SCORE', '3M', '12M', 'LEADER', ...(withNotes ? ['NOTE'] : [])];
  const rows = v.rows.map((r, i) => [
    String(v.offset + i + 1),
    r.symbol,
    r.sector_name ?? '—',
    r.rs_rating === null ? '—' : String(r.rs_rating),
    formatScore(r.rs_score),
    formatPercent(r.return_63d),
    formatPercent(r.return_252d),
    r.is_sector_leader ? '*' : '',
    ...(withNotes ? [r.note ?? ''] : []),
  ]);
  lines.push(...table(header, rows, new Set([0, 3, 4, 5, 6])));
  if (v.rows.some((r) => r.is_sector_leader)) lines.push('* sector leader: top 20% of RS score in its sector');
  const next = v.offset + v.rows.length;
  if (next < v.total) lines.push(`${v.total - next} more ${v.total - next === 1 ? 'row' : 'rows'}: --offset ${next}`);
  lines.push(...(v.warnings ?? []).map(describeRsWarning));
  return lines.join('\n');
}

interface RsOptions {
  top: number;
  offset: number;
  sector?: string;
  leaders?: boolean;
  date?: string;
  json?: boolean;
}

async function commandRs(ctx: RsCommandContext, options: RsOptions): Promise<number> {
  const asked = parseDateParam(options.date, '--date');
  return withDatabase(ctx, async (db) => {
    let asOf: string;
    try {
      asOf = await resolveRsDate(db, asked);
    } catch (error) {
      if (!(error instanceof RsNotFoundError)) throw error;
      // An empty history is a state to explain, not a failure; a date never scored is bad input.
      if (asked === undefined) {
        if (options.json) out(JSON.stringify({ as_of_date: null, sector: options.sector ?? null, leaders_only: Boolean(options.leaders), symbols: [], note: `nothing scored yet: ${RS_REFRESH_HINT}` }, null, 2));
        else out(`nothing scored yet: ${RS_REFRESH_HINT}`);
        return 0;
      }
      throw new BadInputError(error.message, { cause: error });
    }
    // The sector a row was scored in that day: a date before a rename is asked for by its name then.
    if (options.sector !== undefined) await assertScoredSector(db, asOf, options.sector, '--sector');
    const leadersOnly = Boolean(options.leaders);
    const total = await countRsTable(db, { date: asOf, sector: options.sector, leadersOnly });
    const rows = await loadRsTable(db, { date: asOf, sector: options.sector, leadersOnly, limit: options.top, offset: options.offset });
    const warnings = await loadRsWarnings(db, asOf, options.sector);
    if (options.json) {
      const page = describeRsPage(total, options.offset, options.top);
      out(JSON.stringify({ as_of_date: asOf, sector: options.sector ?? null, leaders_only: leadersOnly, ...page, warnings, symbols: rows }, null, 2));
    } else {
      out(renderRsTable({ asOf, sector: options.sector, leadersOnly, top: options.top, offset: options.offset, total, counts: await loadRsDateCounts(db, asOf), rows, warnings }));
    }
    return 0;
  });
}

// ---------------------------------------------------------------------------------------------
// bullpen universe

/** A ticker given as --etf: the symbol pattern, upper-cased. */
function parseEtf(raw: string): string {
  const etf = raw.trim().toUpperCase();
  if (!SYMBOL_PATTERN.test(etf)) throw new BadInputError(`--etf: must be 1–20 letters, digits, "." or "-", starting with a letter or digit (got ${JSON.stringify(raw)})`);
  return etf;
}

function parseName(raw: string | undefined, field: string): string | undefined {
  if (raw === undefined) return undefined;
  const name = raw.trim();
  if (name === '' || name.length > MAX_NAME || /[\u0000-\u001f]/.test(name)) throw new BadInputError(`${field}: must be 1–${MAX_NAME} printable characters (got ${JSON.stringify(raw)})`);
  return name;
}

export interface UniverseChange {
  symbol: string;
  sector?: string;
  industry?: string;
  /** A ticker sets it, false clears it (scored against SPY only), undefined keeps it. */
  etf?: string | false;
  assetClass?: AssetClass;
}

/**
 * Adds a symbol, or changes the fields given of one already there (the others are kept).
 * Returns the row before (undefined when new) and after.
 */
export async function saveUniverseMember(sql: Sql, c: UniverseChange): Promise<{ before: UniverseMember | undefined; after: UniverseMember }> {
  return sql.begin(async (tx) => {
    const db = tx as unknown as Sql;
    const [before] = await db<UniverseMember[]>`
      select symbol, sector_name, industry, sector_etf, asset_class, rs_score::text, rs_rating, is_sector_leader, last_updated
      from market.sector_mapping where symbol = ${c.symbol} for update`;
    if (!before && c.sector === undefined) throw new BadInputError(`--sector: required for ${c.symbol}, which is not in the universe yet`);
    const etf = c.etf === false ? null : (c.etf ?? null);
    await db`
      insert into market.sector_mapping (symbol, sector_name, industry, sector_etf, asset_class)
      values (${c.symbol}, ${c.sector ?? ''}, ${c.industry ?? null}, ${etf}, ${c.assetClass ?? 'stock'})
      on conflict (symbol) do update set
        sector_name = case when ${c.sector !== undefined} then excluded.sector_name else market.sector_mapping.sector_name end,
        industry = case when ${c.industry !== undefined} then excluded.industry else market.sector_mapping.industry end,
        sector_etf = case when ${c.etf !== undefined} then excluded.sector_etf else market.sector_mapping.sector_etf end,
        asset_class = case when ${c.assetClass !== undefined} then excluded.asset_class else market.sector_mapping.asset_class end`;
    const after = await loadUniverseMember(db, c.symbol);
    return { before, after: after as UniverseMember };
  });
}

/** Removes a symbol from the universe (its RS history stays); false when it was not there. */
export async function deleteUniverseMember(sql: Sql, symbol: string): Promise<boolean> {
  const result = await sql`delete from market.sector_mapping where symbol = ${symbol}`;
  return result.count > 0;
}

function describeMember(m: UniverseMember): string {
  return `${m.sector_name}${m.industry ? ` / ${m.industry}` : ''}, ${m.sector_etf ? `sector ETF ${m.sector_etf}` : 'no sector ETF'}, ${m.asset_class}`;
}

interface AddOptions {
  sector?: string;
  industry?: string;
  etf?: string | boolean;
  assetClass?: AssetClass;
}

async function commandUniverseAdd(ctx: RsCommandContext, rawSymbol: string, options: AddOptions): Promise<number> {
  const symbol = parseSymbol(rawSymbol);
  const change: UniverseChange = {
    symbol,
    sector: parseName(options.sector, '--sector'),
    industry: parseName(options.industry, '--industry'),
    etf: typeof options.etf === 'string' ? parseEtf(options.etf) : options.etf === false ? false : undefined,
    assetClass: options.assetClass,
  };
  return withDatabase(ctx, async (db) => {
    const sectorsBefore = change.sector === undefined ? [] : await loadSectors(db);
    const { before, after } = await saveUniverseMember(db, change);
    if (!before) out(`added ${symbol} to the universe: ${describeMember(after)}`);
    else out(`updated ${symbol}: ${describeMember(before)} → ${describeMember(after)}`);
    if (change.sector !== undefined && !sectorsBefore.includes(change.sector)) out(`note: "${change.sector}" is a new sector in market.sector_mapping`);
    if (after.sector_etf === null) {
      if (after.asset_class === 'stock') out(`note: ${symbol} has no sector ETF: it is scored against ${MARKET_BENCHMARK} only`);
    } else if (!(await loadUniverseMember(db, after.sector_etf))) {
      out(`note: ${after.sector_etf} is not in the universe, so ${symbol} is scored against ${MARKET_BENCHMARK} only until it is added (bullpen universe add ${after.sector_etf} --sector "${after.sector_name}" --asset-class etf)`);
    }
    // RS compares closes of NYSE sessions: a 24x7 series is fetched, never scored (its row says so).
    const crypto = after.asset_class === 'crypto';
    if (crypto) out(`note: ${symbol} is crypto: it is kept for enrichment but not scored by refresh-rs (RS compares closes of NYSE sessions)`);
    if (before) {
      out('the change shows from the next refresh-rs run (bullpen run refresh-rs --wait)');
    } else {
      // A score needs 253 sessions: about 400 calendar days of 1d bars (refresh-rs's window).
      // The class goes with the command: without it the backfill plans the symbol as a stock
      // (NYSE sessions), which for a coin stamps the wrong days.
      const from = new Date(Date.now() - HISTORY_DAYS * 86_400_000).toISOString().slice(0, 10);
      const assetClass = after.asset_class === 'stock' ? '' : ` --asset-class ${after.asset_class}`;
      const backfill = `bullpen backfill --symbols ${symbol} --from ${from} --timeframes 1d${assetClass} --wait`;
      out(crypto
        ? `its 1d bars come with enrichment-daily; to fetch its history now: ${backfill}`
        : `its 1d bars come with enrichment-daily, its scores with the next refresh-rs run; to fetch its history now: ${backfill}`);
    }
    return 0;
  });
}

async function commandUniverseRemove(ctx: RsCommandContext, rawSymbol: string): Promise<number> {
  const symbol = parseSymbol(rawSymbol);
  return withDatabase(ctx, async (db) => {
    if (!(await deleteUniverseMember(db, symbol))) throw new BadInputError(`${symbol} is not in the universe (market.sector_mapping); bullpen universe list shows it`);
    const [history] = await db<{ n: number }[]>`select count(*)::int as n from market.rs_scores where symbol = ${symbol}`;
    const rows = history?.n ?? 0;
    out(`removed ${symbol} from the universe; its ${rows} ${rows === 1 ? 'row' : 'rows'} of RS history in market.rs_scores ${rows === 1 ? 'is' : 'are'} kept`);
    const [dependants] = await db<{ n: number }[]>`select count(*)::int as n from market.sector_mapping where sector_etf = ${symbol}`;
    if (dependants?.n) out(`note: ${dependants.n} ${dependants.n === 1 ? 'symbol names' : 'symbols name'} ${symbol} as their sector ETF: they are scored against ${MARKET_BENCHMARK} only until it is back`);
    if (symbol === MARKET_BENCHMARK) out(`warning: ${MARKET_BENCHMARK} is the RS benchmark: without it refresh-rs scores nothing (bullpen universe add ${MARKET_BENCHMARK} --sector Benchmark --asset-class etf)`);
    return 0;
  });
}

/** The table `bullpen universe list` prints. */
export function renderUniverse(members: readonly UniverseMember[]): string {
  if (members.length === 0) return 'the universe is empty (bullpen universe add SYMBOL --sector "…")';
  const header = ['SYMBOL', 'SECTOR', 'INDUSTRY', 'ETF', 'CLASS', 'RATING', 'LEADER'];
  const rows = members.map((m) => [
    m.symbol,
    m.sector_name,
    m.industry ?? '—',
    m.sector_etf ?? '—',
    m.asset_class,
    m.rs_rating === null ? '—' : String(m.rs_rating),
    m.is_sector_leader ? '*' : '',
  ]);
  const classes = ASSET_CLASSES.map((c) => [c, members.filter((m) => m.asset_class === c).length] as const)
    .filter(([, n]) => n > 0)
    .map(([c, n]) => `${n} ${c}`)
    .join(', ');
  return [...table(header, rows, new Set([5])), `${members.length} ${members.length === 1 ? 'symbol' : 'symbols'} (${classes})`].join('\n');
}

async function commandUniverseList(ctx: RsCommandContext, options: { sector?: string; json?: boolean }): Promise<number> {
  return withDatabase(ctx, async (db) => {
    if (options.sector !== undefined) await assertKnownSector(db, options.sector, '--sector');
    const members = await loadUniverse(db, options.sector);
    out(options.json ? JSON.stringify({ symbols: members }, null, 2) : renderUniverse(members));
    return 0;
  });
}

// ---------------------------------------------------------------------------------------------
// Commands

function parseTop(value: string): number {
  const n = /^\d{1,9}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= RS_MAX_LIMIT)) throw new InvalidArgumentError(`must be a whole number from 1 to ${RS_MAX_LIMIT}`);
  return n;
}

function parseOffset(value: string): number {
  const n = /^\d{1,9}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 0 && n <= RS_MAX_OFFSET)) throw new InvalidArgumentError(`must be a whole number from 0 to ${RS_MAX_OFFSET}`);
  return n;
}

/** `rs` and `universe` with its subcommands. */
export function createRsCommands(ctx: RsCommandContext): Command[] {
  const rs = new Command('rs')
    .description('relative-strength table of a scored date: rank, symbol, sector, RS rating and score, 3- and 12-month returns, sector leaders')
    .option('--top <n>', `how many rows (1–${RS_MAX_LIMIT})`, parseTop, 20)
    .option('--offset <n>', 'rows of the table to skip first, to read past --top (the next page)', parseOffset, 0)
    .option('--sector <name>', 'only this sector (exact name, as in bullpen universe list)')
    .option('--leaders', 'only sector leaders (top 20% of RS score in their sector)')
    .option('--date <date>', 'as-of date YYYY-MM-DD (default: the newest scored)')
    .option('--json', 'print JSON (the shape of GET /api/v1/rs, without its next link)')
    .action(async (options: RsOptions) => {
      process.exitCode = await commandRs(ctx, options);
    });

  const universe = new Command('universe').description('the symbols refresh-rs scores (market.sector_mapping): add, remove, list');
  universe
    .command('add <symbol>')
    .description('add a symbol, or change the fields given of one already there')
    .option('--sector <name>', 'GICS sector name, e.g. "Information Technology" (required for a new symbol)')
    .option('--industry <name>', 'industry, e.g. "Semiconductors & Semiconductor Equipment"')
    .option('--etf <ticker>', 'sector ETF to score against besides SPY, e.g. XLK')
    .option('--no-etf', 'no sector ETF: scored against SPY only')
    .addOption(new Option('--asset-class <class>', 'asset class (default stock for a new symbol)').choices(ASSET_CLASSES))
    .action(async (symbol: string, options: AddOptions) => {
      process.exitCode = await commandUniverseAdd(ctx, symbol, options);
    });
  universe
    .command('remove <symbol>')
    .description('remove a symbol from the universe (its RS history is kept)')
    .action(async (symbol: string) => {
      process.exitCode = await commandUniverseRemove(ctx, symbol);
    });
  universe
    .command('list')
    .description('the universe with each symbol’s current RS rating')
    .option('--sector <name>', 'only this sector')
    .option('--json', 'print JSON')
    .action(async (options: { sector?: string; json?: boolean }) => {
      process.exitCode = await commandUniverseList(ctx, options);
    });

  return [rs, universe];
}
