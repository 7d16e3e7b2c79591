import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyError, ProviderResponseError } from '../../src/errors.ts';
import { createCsvProvider, parseCsvTimestamp } from '../../src/enrichment/providers/csv.ts';
import type { FetchRequest } from '../../src/enrichment/providers/types.ts';

let dir = '';

async function write(symbol: string, timeframe: string, text: string): Promise<void> {
  await mkdir(join(dir, symbol), { recursive: true });
  await writeFile(join(dir, symbol, `${timeframe}.csv`), text);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bullpen-csv-'));
  await write(
    'AAPL',
    '1m',
    [
      'timestamp,open,high,low,close,volume',
      '2024-01-01T14:30:00Z,1,1,1,1,1', // before from
      '2024-01-02T09:30:00-05:00,185.5,186,185,185.75,1200',
      '1704205860000,185.75,186.1,185.7,186,900', // epoch ms: 2024-01-02T14:31:00Z
      '',
      '2024-01-02T09:32:00-0500,abc,,185,186,',
      'yesterday,1,2,0.5,1.5,10',
      '2024-01-02T09:33:00,1,2,0.5,1.5,10', // no offset: ts NaN
      '2024-01-03T20:59:00Z,2,2,2,2,2', // 15:59 ET, the last date
      '2024-01-04T02:00:00Z,3,3,3,3,3', // 21:00 ET on 2024-01-03: still that date in New York
      '2024-01-04T05:00:00Z,4,4,4,4,4', // after to
    ].join('\r\n') + '\r\n',
  );
  await write('BTCUSD', '1d', '\uFEFFVolume,Close,Low,High,Open,Timestamp,source\n5,4,3,5,4,2024-01-02T00:00:00Z,x\n6,4,3,5,4,2024-01-02T23:00:00-05:00,x\n');
  await write('MSFT', '1d', 'timestamp,open,high,close\n2024-01-02T00:00:00-05:00,1,2,3\n');
  await write('EMPTY', '1d', '');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const AAPL: FetchRequest = { symbol: 'AAPL', assetClass: 'stock', timeframe: '1m', from: '2024-01-02', to: '2024-01-03' };

describe('csv provider', () => {
  it('returns the rows of from..to by New York date, NaN for bad fields, in file order', async () => {
    const result = await createCsvProvider({ dir }).fetchBars(AAPL);
    expect(result.requests).toBe(0);
    expect(result.quotaRemaining).toBeNull();
    expect(result.bars).toEqual([
      { ts: Date.parse('2024-01-02T14:30:00Z'), open: 185.5, high: 186, low: 185, close: 185.75, volume: 1200 },
      { ts: Date.parse('2024-01-02T14:31:00Z'), open: 185.75, high: 186.1, low: 185.7, close: 186, volume: 900 },
      { ts: Date.parse('2024-01-02T14:32:00Z'), open: NaN, high: NaN, low: 185, close: 186, volume: NaN },
      { ts: NaN, open: 1, high: 2, low: 0.5, close: 1.5, volume: 10 },
      { ts: NaN, open: 1, high: 2, low: 0.5, close: 1.5, volume: 10 },
      { ts: Date.parse('2024-01-03T20:59:00Z'), open: 2, high: 2, low: 2, close: 2, volume: 2 },
      { ts: Date.parse('2024-01-04T02:00:00Z'), open: 3, high: 3, low: 3, close: 3, volume: 3 },
    ]);
  });

  it('reads columns by name in any order and case, dates by UTC for crypto', async () => {
    const { bars } = await createCsvProvider({ dir }).fetchBars({ symbol: 'BTCUSD', assetClass: 'crypto', timeframe: '1d', from: '2024-01-02', to: '2024-01-02' });
    // 23:00 New York is 04:00 UTC the next day: outside the range for a coin.
    expect(bars).toEqual([{ ts: Date.parse('2024-01-02T00:00:00Z'), open: 4, high: 5, low: 3, close: 4, volume: 5 }]);
  });

  it('a missing file is a permanent ProviderResponseError naming the path', async () => {
    const provider = createCsvProvider({ dir });
    for (const request of [{ ...AAPL, timeframe: '5m' as const }, { ...AAPL, symbol: 'NOPE' }]) {
      const error = await provider.fetchBars(request).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderResponseError);
      expect((error as Error).message).toContain(join(dir, request.symbol, `${request.timeframe}.csv`));
      expect(classifyError(error)).toBe('permanent');
    }
    const climbing = await provider.fetchBars({ ...AAPL, symbol: '../AAPL' }).catch((e: unknown) => e);
    expect(climbing).toBeInstanceOf(ProviderResponseError);
  });

  it('a header without a required column names it; an empty file says so', async () => {
    const provider = createCsvProvider({ dir });
    const missing = await provider.fetchBars({ ...AAPL, symbol: 'MSFT', timeframe: '1d' }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ProviderResponseError);
    expect((missing as Error).message).toContain('header lacks columns low, volume');
    const empty = await provider.fetchBars({ ...AAPL, symbol: 'EMPTY', timeframe: '1d' }).catch((e: unknown) => e);
    expect((empty as Error).message).toContain('is empty (no header)');
  });

  it('rethrows the caller’s abort', async () => {
    const controller = new AbortController();
    const reason = new Error('cancelled');
    controller.abort(reason);
    await expect(createCsvProvider({ dir }).fetchBars({ ...AAPL, signal: controller.signal })).rejects.toBe(reason);
  });

  it.each([
    ['1704205860000', 1704205860000],
    ['2024-01-02T09:31:00-05:00', 1704205860000],
    ['2024-01-02T14:31:00.000Z', 1704205860000],
    ['2024-01-02T20:01:00+0530', 1704205860000],
    ['2024-01-02T09:31:00', NaN],
    ['2024-01-02', NaN],
    ['', NaN],
    ['2024-13-02T09:31:00Z', NaN],
    ['2024-02-30T09:31:00Z', NaN],
    ['2024-02-29T25:00:00Z', NaN],
  ])('parseCsvTimestamp(%j) = %d', (field, expected) => {
    expect(parseCsvTimestamp(field)).toBe(expected);
  });
});
