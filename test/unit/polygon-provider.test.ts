import { afterEach, describe, expect, it } from 'vitest';
import { barOpen, isExpectedBarOpen } from '../../src/analytics/timeframes.ts';
import { classifyError, ProviderResponseError, RateLimitedError, UpstreamUnavailableError } from '../../src/errors.ts';
import { createPolygonProvider } from '../../src/enrichment/providers/polygon.ts';
import type { FetchRequest } from '../../src/enrichment/providers/types.ts';
import { fakePolygonAggregates, fakePolygonBars, startFakePolygon, type FakePolygon, type FakePolygonOptions } from '../helpers/fake-polygon.ts';

const SECRET = 'SECRET-KEY-0123456789';
const AAPL_1M: FetchRequest = { symbol: 'AAPL', assetClass: 'stock', timeframe: '1m', from: '2024-01-02', to: '2024-01-03' };

let fake: FakePolygon | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(options: FakePolygonOptions = {}, timeoutMs?: number) {
  fake = await startFakePolygon({ apiKey: SECRET, ...options });
  return { fake, provider: createPolygonProvider({ apiKey: SECRET, baseUrl: fake.url, timeoutMs }) };
}

/** Runs a fetch expected to fail and returns the error. */
async function failure(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return error as Error;
}

/** Everything an error says, causes included. */
function allText(error: unknown): string {
  const parts: string[] = [];
  for (let e = error; e instanceof Error; e = e.cause) parts.push(e.message, e.stack ?? '');
  return parts.join('\n');
}

/** A fetch stub answering every call with one JSON body, remembering the URLs. */
function stubFetch(body: unknown, urls: string[] = []): typeof fetch {
  return async (input) => {
    urls.push(String(input));
    return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status: 200 });
  };
}

describe('polygon provider against the fake', () => {
  it('pages through next_url and returns the regular-session bars', async () => {
    const { fake, provider } = await setup({ pageSize: 100 });
    const result = await provider.fetchBars(AAPL_1M);
    expect(result.bars).toEqual(fakePolygonBars(AAPL_1M));
    expect(result.bars).toHaveLength(2 * 390);
    expect(result.bars[0]?.ts).toBe(Date.parse('2024-01-02T14:30:00Z'));
    expect(result.bars.at(-1)?.ts).toBe(Date.parse('2024-01-03T20:59:00Z'));
    expect(result.bars.every((b) => isExpectedBarOpen(b.ts, '1m', 'nyse'))).toBe(true);

    // Widened by a day each side; the following pages carry the cursor and the key.
    expect(fake.requests[0]?.path).toBe('/v2/aggs/ticker/AAPL/range/1/minute/2024-01-01/2024-01-04');
    expect(fake.requests[0]?.query).toEqual({ adjusted: 'true', sort: 'asc', limit: '50000', apiKey: SECRET });
    expect(fake.requests.length).toBeGreaterThan(10);
    expect(result.requests).toBe(fake.requests.length);
    for (const r of fake.requests.slice(1)) {
      expect(r.query.cursor).toBeTruthy();
      expect(r.query.apiKey).toBe(SECRET);
      expect(r.status).toBe(200);
    }
    expect(result.responseTimeMs).toBeGreaterThan(0);
    expect(result.quotaRemaining).toBeNull();
  });

  it('drops extended-hours bars the fake sends', async () => {
    const { provider } = await setup();
    const raw = fakePolygonAggregates('AAPL', 5, 'minute', Date.parse('2024-01-02T05:00:00Z'), Date.parse('2024-01-03T05:00:00Z') - 1);
    expect(raw[0]?.t).toBe(Date.parse('2024-01-02T09:00:00Z')); // 04:00 ET
    expect(raw).toHaveLength(16 * 12);
    const request: FetchRequest = { ...AAPL_1M, timeframe: '5m', to: '2024-01-02' };
    const { bars } = await provider.fetchBars(request);
    expect(bars).toHaveLength(78);
    expect(bars).toEqual(fakePolygonBars(request));
  });

  it.each(['1m', '5m', '15m', '30m', '1h', '4h', '1d', '1w'] as const)('%s matches fakePolygonBars for a stock and a coin', async (timeframe) => {
    const { provider } = await setup({ pageSize: 500 });
    for (const [symbol, assetClass] of [['MSFT', 'stock'], ['ETHUSD', 'crypto']] as const) {
      const request: FetchRequest = { symbol, assetClass, timeframe, from: '2024-03-04', to: '2024-03-12' };
      const { bars } = await provider.fetchBars(request);
      expect(bars.length).toBeGreaterThan(0);
      expect(bars).toEqual(fakePolygonBars(request));
    }
  });

  it('moves 1w bars from polygon’s Sunday to our Monday, and keeps 1d at local midnight', async () => {
    const { provider } = await setup();
    // 2024-03-10 is the Sunday of the DST switch.
    const weeks = await provider.fetchBars({ ...AAPL_1M, timeframe: '1w', from: '2024-03-04', to: '2024-03-18' });
    expect(weeks.bars.map((b) => new Date(b.ts).toISOString())).toEqual(['2024-03-04T05:00:00.000Z', '2024-03-11T04:00:00.000Z', '2024-03-18T04:00:00.000Z']);
    const days = await provider.fetchBars({ ...AAPL_1M, timeframe: '1d', from: '2024-03-08', to: '2024-03-11' });
    expect(days.bars.map((b) => new Date(b.ts).toISOString())).toEqual(['2024-03-08T05:00:00.000Z', '2024-03-11T04:00:00.000Z']);
  });

  it('prefixes crypto tickers with X: and keeps every hour', async () => {
    const { fake, provider } = await setup();
    const request: FetchRequest = { symbol: 'BTCUSD', assetClass: 'crypto', timeframe: '1h', from: '2024-01-06', to: '2024-01-07' };
    const { bars } = await provider.fetchBars(request);
    expect(fake.requests[0]?.path).toBe('/v2/aggs/ticker/X:BTCUSD/range/1/hour/2024-01-05/2024-01-08');
    expect(bars).toHaveLength(48);
    expect(bars[0]?.ts).toBe(Date.parse('2024-01-06T00:00:00Z'));
  });

  it('returns no bars when polygon has none (no results field), and accepts DELAYED', async () => {
    const { fake, provider } = await setup({ status: 'DELAYED' });
    // Christmas 2022 fell on a Sunday: the widened request, Saturday..Monday, has no session at all.
    const result = await provider.fetchBars({ ...AAPL_1M, from: '2022-12-25', to: '2022-12-25' });
    expect(result).toMatchObject({ bars: [], requests: 1 });
    expect(fake.requests[0]?.status).toBe(200);
    expect((await provider.fetchBars(AAPL_1M)).bars).toHaveLength(780);
  });

  it('reports X-RateLimit-Remaining when sent', async () => {
    const { provider } = await setup({ maxPerWindow: 10 });
    expect((await provider.fetchBars(AAPL_1M)).quotaRemaining).toBe(9);
  });
});

describe('polygon provider errors', () => {
  it('429 → RateLimitedError with Retry-After, 60 s without it', async () => {
    const { fake, provider } = await setup({ fail: [{ kind: '429', retryAfterSeconds: 7 }, { kind: '429' }] });
    const first = await failure(provider.fetchBars(AAPL_1M));
    expect(first).toBeInstanceOf(RateLimitedError);
    expect((first as RateLimitedError).retryAfterMs).toBe(7000);
    expect(first.message).toContain('exceeded the maximum requests per minute');
    expect(classifyError(first)).toBe('retryable');
    const second = await failure(provider.fetchBars(AAPL_1M));
    expect((second as RateLimitedError).retryAfterMs).toBe(60_000);
    expect(fake.requests.map((r) => r.status)).toEqual([429, 429]);
    expect((await provider.fetchBars(AAPL_1M)).bars).toHaveLength(780);
  });

  it('the fake’s rate limit answers 429 with Retry-After', async () => {
    const { provider } = await setup({ maxPerWindow: 1, windowMs: 30_000 });
    await provider.fetchBars({ ...AAPL_1M, timeframe: '1d' });
    const error = await failure(provider.fetchBars({ ...AAPL_1M, timeframe: '1d' }));
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBeGreaterThan(0);
    expect((error as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(30_000);
  });

  it.each(['500', '503', 'reset'] as const)('%s → UpstreamUnavailableError (retryable)', async (kind) => {
    const { provider } = await setup({ fail: [{ kind, ticker: 'AAPL' }] });
    const error = await failure(provider.fetchBars(AAPL_1M));
    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect(error.message).toMatch(/^polygon AAPL 1m 2024-01-02\.\.2024-01-03: /);
    expect(classifyError(error)).toBe('retryable');
  });

  it('a timeout → UpstreamUnavailableError; the caller’s abort is rethrown as is', async () => {
    const { fake, provider } = await setup({ fail: [{ kind: 'timeout', times: 2 }] }, 200);
    const error = await failure(provider.fetchBars(AAPL_1M));
    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect(error.message).toContain('no answer within 200 ms');
    expect(classifyError(error)).toBe('retryable');

    const slow = createPolygonProvider({ apiKey: SECRET, baseUrl: fake.url, timeoutMs: 60_000 });
    const controller = new AbortController();
    const reason = new Error('job cancelled');
    const pending = slow.fetchBars({ ...AAPL_1M, signal: controller.signal });
    setTimeout(() => controller.abort(reason), 50);
    expect(await failure(pending)).toBe(reason);
  });

  it('a refused connection → UpstreamUnavailableError', async () => {
    const { fake } = await setup();
    const url = fake.url;
    await fake.close();
    const provider = createPolygonProvider({ apiKey: SECRET, baseUrl: url });
    const error = await failure(provider.fetchBars(AAPL_1M));
    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect(classifyError(error)).toBe('retryable');
  });

  it.each([
    ['garbage', 'results is not an array'],
    ['not-json', 'body is not JSON: <html>'],
    ['no-status', 'body has no status'],
  ] as const)('%s → ProviderResponseError "%s" (permanent)', async (kind, message) => {
    const { provider } = await setup({ fail: [{ kind }] });
    const error = await failure(provider.fetchBars(AAPL_1M));
    expect(error).toBeInstanceOf(ProviderResponseError);
    expect(error.message.startsWith(`polygon AAPL 1m 2024-01-02..2024-01-03: ${message}`)).toBe(true);
    expect(classifyError(error)).toBe('permanent');
  });

  it.each([
    ['401', 401, 'Unknown API Key'],
    ['403', 403, 'You are not entitled to this data'],
    ['400', 400, 'Could not parse the time parameter'],
  ] as const)('%s → ProviderResponseError with the provider’s message and status', async (kind, status, message) => {
    const { provider } = await setup({ fail: [{ kind }] });
    const error = await failure(provider.fetchBars(AAPL_1M));
    expect(error).toBeInstanceOf(ProviderResponseError);
    expect((error as ProviderResponseError).status).toBe(status);
    expect(error.message).toContain(message);
    expect(classifyError(error)).toBe('permanent');
  });

  it('a wrong key is a 401 whose message holds neither key', async () => {
    const { fake } = await setup();
    const provider = createPolygonProvider({ apiKey: 'WRONG-KEY-98765', baseUrl: fake.url });
    const error = await failure(provider.fetchBars(AAPL_1M));
    expect((error as ProviderResponseError).status).toBe(401);
    expect(error.message).toContain('Unknown API Key');
    expect(allText(error)).not.toContain('WRONG-KEY-98765');
    expect(fake.requests[0]?.query.apiKey).toBe('WRONG-KEY-98765');
  });

  it('never puts the key in an error or its causes', async () => {
    const urls: string[] = [];
    const provider = createPolygonProvider({
      apiKey: SECRET,
      fetch: async (input) => {
        urls.push(String(input));
        throw new TypeError(`Failed to parse URL from ${String(input)}`, { cause: new Error(`bad ${SECRET}`) });
      },
    });
    const error = await failure(provider.fetchBars(AAPL_1M));
    expect(urls[0]).toContain(`apiKey=${SECRET}`);
    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect(error.message).toContain('apiKey=REDACTED');
    expect(allText(error)).not.toContain(SECRET);

    const echo = createPolygonProvider({ apiKey: SECRET, fetch: async (input) => new Response(`<p>${String(input)}</p>`, { status: 200 }) });
    expect(allText(await failure(echo.fetchBars(AAPL_1M)))).not.toContain(SECRET);
  });

  it('bad values become NaN bars, not errors', async () => {
    const { provider } = await setup({ fail: [{ kind: 'bad-values' }] });
    const { bars } = await provider.fetchBars({ ...AAPL_1M, timeframe: '1d', from: '2024-01-02', to: '2024-01-08' });
    expect(bars).toHaveLength(5);
    expect(bars[0]?.open).toBeNaN();
    expect(bars[1]?.high).toBeNaN();
    expect(bars[2]!.high).toBeLessThan(bars[2]!.low);
    expect(bars[3]?.volume).toBeNaN();
    expect(Number.isFinite(bars[4]?.volume)).toBe(true);
  });
});

describe('polygon provider on crafted bodies', () => {
  const ok = (results: unknown, extra: Record<string, unknown> = {}) => ({ status: 'OK', request_id: 'x', results, ...extra });

  it('keeps misaligned and NaN-stamped bars for validation, drops aligned extended hours', async () => {
    const t = (iso: string) => Date.parse(iso);
    const results = [
      { t: t('2024-01-02T13:00:00Z'), o: 1, h: 1, l: 1, c: 1, v: 1 }, // 08:00 ET: pre-market, dropped
      { t: t('2024-01-02T14:30:00Z'), o: 1, h: 1, l: 1, c: 1, v: 1 }, // 09:30 ET
      { t: t('2024-01-02T14:32:30Z'), o: 1, h: 1, l: 1, c: 1, v: 1 }, // misaligned, kept
      { t: t('2024-01-02T22:02:30Z'), o: 1, h: 1, l: 1, c: 1, v: 1 }, // misaligned after hours, kept
      { t: null, o: '2.5', h: true, l: 1, c: 1 }, // NaN ts kept; numeric string read; boolean → NaN
      { t: t('2024-01-04T14:30:00Z'), o: 1, h: 1, l: 1, c: 1, v: 1 }, // after `to`, dropped
    ];
    const provider = createPolygonProvider({ apiKey: SECRET, fetch: stubFetch(ok(results)) });
    const { bars } = await provider.fetchBars({ ...AAPL_1M, to: '2024-01-02' });
    expect(bars.map((b) => b.ts)).toEqual([t('2024-01-02T14:30:00Z'), t('2024-01-02T14:32:30Z'), t('2024-01-02T22:02:30Z'), NaN]);
    expect(bars[3]).toMatchObject({ open: 2.5, high: NaN, volume: NaN });
  });

  it('normalises polygon’s own 1d and 1w stamps', async () => {
    const day = (ts: number) => createPolygonProvider({ apiKey: SECRET, fetch: stubFetch(ok([{ t: ts, o: 1, h: 1, l: 1, c: 1, v: 1 }])) });
    // polygon's example daily bar: 2021-02-01 midnight ET.
    expect((await day(1612155600000).fetchBars({ ...AAPL_1M, timeframe: '1d', from: '2021-02-01', to: '2021-02-01' })).bars[0]?.ts).toBe(1612155600000);
    // A crypto day stamped at ET midnight lands on UTC midnight of the same date.
    const crypto = await day(Date.parse('2024-01-02T05:00:00Z')).fetchBars({ symbol: 'BTCUSD', assetClass: 'crypto', timeframe: '1d', from: '2024-01-02', to: '2024-01-02' });
    expect(crypto.bars[0]?.ts).toBe(Date.parse('2024-01-02T00:00:00Z'));
    // A week stamped Sunday 2024-11-03 00:00 EDT (DST ends that night) → Monday 2024-11-04 00:00 EST.
    const week = await day(Date.parse('2024-11-03T04:00:00Z')).fetchBars({ ...AAPL_1M, timeframe: '1w', from: '2024-11-04', to: '2024-11-04' });
    expect(week.bars[0]?.ts).toBe(Date.parse('2024-11-04T05:00:00Z'));
    expect(week.bars[0]?.ts).toBe(barOpen(Date.parse('2024-11-06T12:00:00Z'), '1w', 'nyse'));
  });

  it('sends the key with a next_url of another origin only under baseUrl', async () => {
    const urls: string[] = [];
    let calls = 0;
    const provider = createPolygonProvider({
      apiKey: SECRET,
      baseUrl: 'https://proxy.example/polygon/',
      fetch: async (input) => {
        urls.push(String(input));
        calls += 1;
        const body = calls === 1 ? ok([], { next_url: 'https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/minute/1/2?cursor=abc%3D' }) : ok([]);
        return new Response(JSON.stringify(body), { status: 200 });
      },
    });
    expect((await provider.fetchBars(AAPL_1M)).requests).toBe(2);
    expect(urls).toEqual([
      `https://proxy.example/polygon/v2/aggs/ticker/AAPL/range/1/minute/2024-01-01/2024-01-04?adjusted=true&sort=asc&limit=50000&apiKey=${SECRET}`,
      `https://proxy.example/polygon/v2/aggs/ticker/AAPL/range/1/minute/1/2?cursor=abc%3D&apiKey=${SECRET}`,
    ]);
  });

  it.each([
    [[1], 'results[0] is not an object'],
    [[null], 'results[0] is not an object'],
    [{ a: 1 }, 'results is not an array'],
  ])('rejects results %j: %s', async (results, message) => {
    const provider = createPolygonProvider({ apiKey: SECRET, fetch: stubFetch(ok(results)) });
    const error = await failure(provider.fetchBars(AAPL_1M));
    expect(error).toBeInstanceOf(ProviderResponseError);
    expect(error.message).toBe(`polygon AAPL 1m 2024-01-02..2024-01-03: ${message}`);
  });

  it('retries a page holding fewer results than its resultsCount, or none of them, rather than keep it', async () => {
    // Kept, a page cut short (or one that lost its results array) would be stored as the chunk's
    // whole answer: the ledger would mark the chunk complete, holes and all, and never fetch it again.
    const bar = { v: 1000, vw: 10, o: 10, c: 10.5, h: 11, l: 9.5, t: Date.parse('2024-01-02T05:00:00Z'), n: 10 };
    const request: FetchRequest = { ...AAPL_1M, timeframe: '1d', from: '2024-01-02', to: '2024-01-04' };
    for (const body of [ok([bar], { queryCount: 3, resultsCount: 3 }), { status: 'OK', request_id: 'x', queryCount: 3, resultsCount: 3 }]) {
      const error = await failure(createPolygonProvider({ apiKey: SECRET, fetch: stubFetch(body) }).fetchBars(request));
      expect(error).toBeInstanceOf(UpstreamUnavailableError);
      expect(classifyError(error)).toBe('retryable');
      expect(error.message).toMatch(/results/);
    }
    // A page holding what it counts is the answer.
    const whole = createPolygonProvider({ apiKey: SECRET, fetch: stubFetch(ok([bar], { queryCount: 1, resultsCount: 1 })) });
    expect((await whole.fetchBars(request)).bars).toHaveLength(1);
  });

  it('says a DELAYED answer’s data runs 15 minutes late, and an OK answer’s nothing', async () => {
    const delayed = createPolygonProvider({ apiKey: SECRET, fetch: stubFetch(ok([], { status: 'DELAYED' })) });
    expect((await delayed.fetchBars(AAPL_1M)).dataDelayMs).toBe(15 * 60_000);
    const current = createPolygonProvider({ apiKey: SECRET, fetch: stubFetch(ok([])) });
    expect((await current.fetchBars(AAPL_1M)).dataDelayMs).toBeUndefined();
  });

  it('rejects a body that is not an object or has an error status', async () => {
    const array = createPolygonProvider({ apiKey: SECRET, fetch: stubFetch([1, 2]) });
    expect((await failure(array.fetchBars(AAPL_1M))).message).toContain('body is not a JSON object');
    const status = createPolygonProvider({ apiKey: SECRET, fetch: stubFetch({ status: 'ERROR', error: 'nope' }) });
    expect((await failure(status.fetchBars(AAPL_1M))).message).toContain('status ERROR: nope');
  });
});
