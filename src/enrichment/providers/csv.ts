/**
 * A directory of OHLCV files as a market-data source, for desks that receive vendor dumps.
 *
 * Layout: one file per symbol and timeframe, `{dir}/{SYMBOL}/{timeframe}.csv`, e.g.
 * `data/AAPL/1m.csv`, `data/BTCUSD/1d.csv` (the symbol as the request spells it, the
 * timeframe as in TIMEFRAMES).
 *
 * Format: a header line naming at least `timestamp,open,high,low,close,volume` (any order,
 * any case; other columns ignored), then one bar per line. `timestamp` is the bar open in our
 * convention (timeframes.ts), written as ISO 8601 with an offset (`2024-01-02T09:30:00-05:00`,
 * `…Z`) or as epoch milliseconds. No quoting: fields are split on commas.
 *
 * A request gets the rows whose market-local date (dayNumberOf, calendarOf the asset class)
 * lies within from..to, in file order. Values are not judged: an unreadable number becomes
 * NaN, and a row with an unreadable timestamp is kept with ts NaN (it belongs to no date, so
 * every range gets it), so validation rejects and logs them. A missing file or a header
 * without a required column is a ProviderResponseError (permanent): the source has no such
 * series.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Bar } from '../../analytics/bars.ts';
import { assertIsoDate } from '../../analytics/calendar.ts';
import { calendarOf, dayNumberOf, dayNumberOfIsoDate } from '../../analytics/timeframes.ts';
import { BadInputError, ProviderResponseError } from '../../errors.ts';
import type { FetchRequest, FetchResult, MarketDataProvider } from './types.ts';

export interface CsvProviderOptions {
  /** Root directory holding `{SYMBOL}/{timeframe}.csv`. */
  dir: string;
}

export const CSV_COLUMNS = ['timestamp', 'open', 'high', 'low', 'close', 'volume'] as const;
type CsvColumn = (typeof CSV_COLUMNS)[number];

// A symbol becomes a directory name: nothing that could climb out of `dir`.
const SAFE_SYMBOL = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;
// fs errors that mean "this series is not there"; anything else (EMFILE, EIO…) may pass.
const ABSENT_CODES = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM']);

/** Epoch ms of a timestamp field, NaN when it is neither epoch ms nor ISO 8601 with an offset. */
export function parseCsvTimestamp(field: string): number {
  const value = field.trim();
  if (/^-?\d+$/.test(value)) return Number(value);
  if (!ISO_WITH_OFFSET.test(value)) return NaN;
  // Date.parse rolls 2024-02-30 over to March 1; a date that does not exist is unreadable.
  const [year, month, day] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
  if (new Date(Date.UTC(year, month - 1, day)).getUTCDate() !== day) return NaN;
  // Date.parse wants the offset's colon (+0530 → +05:30).
  return Date.parse(value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
}

function parseNumber(field: string | undefined): number {
  // Number('') is 0: an empty field is a missing value, not a zero.
  if (field === undefined || field.trim() === '') return NaN;
  return Number(field);
}

function splitFields(line: string): string[] {
  return line.split(',').map((field) => field.trim().replace(/^"(.*)"$/, '$1'));
}

/** The market-data source reading `{dir}/{SYMBOL}/{timeframe}.csv`. */
export function createCsvProvider(options: CsvProviderOptions): MarketDataProvider {
  const { dir } = options;
  return {
    name: 'csv',
    async fetchBars(request: FetchRequest): Promise<FetchResult> {
      const { signal } = request;
      signal?.throwIfAborted();
      const started = performance.now();
      const fromDay = dayNumberOfIsoDate(assertIsoDate(request.from));
      const toDay = dayNumberOfIsoDate(assertIsoDate(request.to));
      const label = `csv ${request.symbol} ${request.timeframe} ${request.from}..${request.to}`;
      if (fromDay > toDay) throw new BadInputError(`${label}: from is after to`);
      if (!SAFE_SYMBOL.test(request.symbol)) throw new ProviderResponseError(`${label}: symbol ${JSON.stringify(request.symbol)} cannot name a file`);
      const calendar = calendarOf(request.assetClass);
      const path = join(dir, request.symbol, `${request.timeframe}.csv`);

      let handle: FileHandle;
      try {
        handle = await open(path, 'r');
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (typeof code === 'string' && ABSENT_CODES.has(code)) throw new ProviderResponseError(`${label}: no file ${path} (${code})`, { cause: error });
        throw error;
      }

      const bars: Bar[] = [];
      const lines = createInterface({ input: handle.createReadStream({ encoding: 'utf8', signal }), crlfDelay: Infinity });
      try {
        let columns: Record<CsvColumn, number> | null = null;
        for await (const raw of lines) {
          const line = columns === null ? raw.replace(/^\uFEFF/, '') : raw;
          if (line.trim() === '') continue;
          const fields = splitFields(line);
          if (columns === null) {
            columns = readHeader(fields, path, label);
            continue;
          }
          const ts = parseCsvTimestamp(fields[columns.timestamp] ?? '');
          if (Number.isFinite(ts)) {
            const day = dayNumberOf(ts, calendar);
            if (day < fromDay || day > toDay) continue;
          }
          bars.push({
            ts,
            open: parseNumber(fields[columns.open]),
            high: parseNumber(fields[columns.high]),
            low: parseNumber(fields[columns.low]),
            close: parseNumber(fields[columns.close]),
            volume: parseNumber(fields[columns.volume]),
          });
        }
        if (columns === null) throw new ProviderResponseError(`${label}: ${path} is empty (no header)`);
      } catch (error) {
        // The stream's AbortError stands for the caller's abort: rethrow what the caller gave.
        if (signal?.aborted) throw signal.reason;
        throw error;
      } finally {
        lines.close();
        await handle.close().catch(() => undefined);
      }
      return { bars, requests: 0, responseTimeMs: performance.now() - started, quotaRemaining: null };
    },
  };
}

function readHeader(fields: string[], path: string, label: string): Record<CsvColumn, number> {
  const names = fields.map((field) => field.toLowerCase());
  const missing = CSV_COLUMNS.filter((column) => !names.includes(column));
  if (missing.length > 0) {
    throw new ProviderResponseError(`${label}: ${path} header lacks column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (expected ${CSV_COLUMNS.join(',')})`);
  }
  return Object.fromEntries(CSV_COLUMNS.map((column) => [column, names.indexOf(column)])) as Record<CsvColumn, number>;
}
