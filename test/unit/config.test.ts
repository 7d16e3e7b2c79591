import { describe, expect, it } from 'vitest';
import { isValidCron, loadConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';

function problems(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      databaseUrl: undefined,
      redisUrl: 'redis://127.0.0.1:6379',
      redisUrlExplicit: false,
      prefix: 'bullpen',
      port: 3000,
      portExplicit: false,
      host: '127.0.0.1',
      exchangeTz: 'America/New_York',
      startingCapital: 100000,
      marketDataSource: 'synthetic',
      jobAttempts: 5,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('defaults SOURCE_DATABASE_URL to DATABASE_URL', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@h/db' }).sourceDatabaseUrl).toBe('postgres://u@h/db');
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT: must be a port number 0–65535 (got "abc")'],
    [{ PORT: '70000' }, 'PORT: must be a port number'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL: must be a URL starting with postgres:// or postgresql://'],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL: must be a URL starting with redis://'],
    [{ EXCHANGE_TZ: 'Mars/Olympus' }, 'EXCHANGE_TZ: must be an IANA time zone'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL: must be one of'],
    [{ BULLPEN_PREFIX: 'a:b' }, 'BULLPEN_PREFIX: must be letters'],
    [{ MARKET_DATA_SOURCE: 'yahoo' }, 'MARKET_DATA_SOURCE: must be one of synthetic, csv, polygon'],
    [{ MARKET_DATA_SOURCE: 'polygon' }, 'POLYGON_API_KEY: required when MARKET_DATA_SOURCE is polygon'],
    [{ HOST: '0.0.0.0' }, 'BOARD_USER / BOARD_PASSWORD: required when HOST is not loopback'],
    [{ BOARD_USER: 'ops' }, 'BOARD_USER / BOARD_PASSWORD: set both or neither'],
    [{ SCHEDULE_TRADE_ETL: 'every day' }, 'SCHEDULE_TRADE_ETL: must be a cron pattern'],
    [{ CONCURRENCY_ETL: '0' }, 'CONCURRENCY_ETL: must be a whole number from 1 to 1000'],
    [{ CONCURRENCY_FOO: '2' }, 'CONCURRENCY_FOO: unknown queue "foo"'],
    [{ STARTING_CAPITAL: '-5' }, 'STARTING_CAPITAL: must be a positive number'],
    [{ POLYGON_RATE_MAX: '-1' }, 'POLYGON_RATE_MAX: must be a whole number ≥ 0 (0: no limit)'],
    [{ MARKET_DATA_SOURCE: 'polygon', POLYGON_API_KEY: 'k', POLYGON_RATE_MAX: '100' }, 'POLYGON_RATE_MAX: not used when MARKET_DATA_SOURCE is polygon (ENRICHMENT_RATE_MAX / ENRICHMENT_RATE_WINDOW_MS are its budget then); unset it'],
  ])('rejects %o naming the variable', (env, expected) => {
    expect(problems(env)).toContain(expected);
  });

  it("meters polygon by its free tier's budget where it is not the default source, and by ENRICHMENT_RATE_MAX where it is", () => {
    expect(loadConfig({}).polygonRateLimit).toEqual({ max: 5, durationMs: 60000 });
    expect(loadConfig({ MARKET_DATA_SOURCE: 'csv', MARKET_DATA_CSV_DIR: '/data', POLYGON_RATE_MAX: '100', POLYGON_RATE_WINDOW_MS: '1000' }).polygonRateLimit).toEqual({ max: 100, durationMs: 1000 });
    expect(loadConfig({ POLYGON_RATE_MAX: '0' }).polygonRateLimit).toBeNull();
    expect(loadConfig({ ENRICHMENT_RATE_MAX: '50' })).toMatchObject({ enrichmentRateLimit: { max: 50, durationMs: 60000 }, polygonRateLimit: { max: 5, durationMs: 60000 } });
    expect(loadConfig({ MARKET_DATA_SOURCE: 'polygon', POLYGON_API_KEY: 'k' })).toMatchObject({ enrichmentRateLimit: { max: 5, durationMs: 60000 }, polygonRateLimit: null });
  });

  it('lists every bad variable at once', () => {
    const message = problems({ PORT: 'x', LOG_LEVEL: 'loud', SCHEDULE_NIGHTLY_REPORT: 'nope' });
    expect(message).toContain('PORT:');
    expect(message).toContain('LOG_LEVEL:');
    expect(message).toContain('SCHEDULE_NIGHTLY_REPORT:');
  });

  it('accepts credentials off loopback, schedule overrides and per-queue concurrency', () => {
    const config = loadConfig({
      HOST: '0.0.0.0',
      BOARD_USER: 'ops',
      BOARD_PASSWORD: 's3cret',
      SCHEDULE_TRADE_ETL: '*/10 * * * *',
      SCHEDULE_REFRESH_RS: 'off',
      CONCURRENCY_ENRICHMENT: '8',
    });
    expect(config.scheduleOverrides).toEqual({ 'trade-etl': '*/10 * * * *', 'refresh-rs': 'off' });
    expect(config.concurrency).toEqual({ enrichment: 8 });
  });

  it('takes an empty (or blank) variable as unset: its default applies, for every variable', () => {
    const numbers = ['PORT', 'ENRICHMENT_RATE_MAX', 'ENRICHMENT_RATE_WINDOW_MS', 'POLYGON_RATE_MAX', 'POLYGON_RATE_WINDOW_MS', 'ENRICHMENT_CHUNK_RETRIES', 'ENRICHMENT_RETRY_BASE_MS', 'ENRICHMENT_MAX_BARS', 'ENRICHMENT_TRIGGER_RATE', 'STARTING_CAPITAL', 'JOB_ATTEMPTS', 'JOB_BACKOFF_MS', 'ROLLUP_DEBOUNCE_MS', 'SHUTDOWN_TIMEOUT_MS', 'SCHEDULER_INTERVAL_MS', 'LOCK_DURATION_MS', 'STALLED_INTERVAL_MS', 'JOB_MAX_STALLS'];
    const others = ['DATABASE_URL', 'SOURCE_DATABASE_URL', 'REDIS_URL', 'BULLPEN_PREFIX', 'BULLPEN_HOME', 'HOST', 'BOARD_USER', 'BOARD_PASSWORD', 'BOARD_VIEWER_USER', 'BOARD_VIEWER_PASSWORD', 'REPORTS_DIR', 'MARKET_DATA_SOURCE', 'MARKET_DATA_CSV_DIR', 'POLYGON_API_KEY', 'POLYGON_BASE_URL', 'EXCHANGE_TZ', 'LOG_LEVEL', 'SCHEDULE_TRADE_ETL', 'CONCURRENCY_ETL'];
    for (const blank of ['', '  ']) {
      const env = Object.fromEntries([...numbers, ...others].map((key) => [key, blank]));
      expect(loadConfig(env)).toEqual(loadConfig({}));
    }
    expect(loadConfig({ PORT: '' })).toMatchObject({ port: 3000, portExplicit: false });
    expect(loadConfig({ ENRICHMENT_TRIGGER_RATE: '' }).enrichmentTriggerRate).toBe(30);
    expect(loadConfig({ ROLLUP_DEBOUNCE_MS: '' }).rollupDebounceMs).toBe(30000);
    expect(loadConfig({ JOB_ATTEMPTS: '' }).jobAttempts).toBe(5);
    expect(loadConfig({ MARKET_DATA_SOURCE: 'polygon', POLYGON_API_KEY: 'k', ENRICHMENT_RATE_MAX: '' }).enrichmentRateLimit).toEqual({ max: 5, durationMs: 60000 });
    // An explicit 0 still means what the table says.
    expect(loadConfig({ PORT: '0' })).toMatchObject({ port: 0, portExplicit: true });
    expect(loadConfig({ ENRICHMENT_TRIGGER_RATE: '0' }).enrichmentTriggerRate).toBe(0);
  });

  it.each(['BOARD_USER', 'BOARD_VIEWER_USER'])('refuses a %s containing ":" (basic auth splits at the first colon)', (key) => {
    const env = { BOARD_USER: 'ops', BOARD_PASSWORD: 'pw', BOARD_VIEWER_USER: 'viewer', BOARD_VIEWER_PASSWORD: 'pw2', [key]: 'ops:team' };
    expect(problems(env)).toContain(`${key}: must not contain ":"`);
  });

  it('keeps passwords exactly as given, spaces included', () => {
    const config = loadConfig({ BOARD_USER: 'ops', BOARD_PASSWORD: ' secret ', BOARD_VIEWER_USER: 'viewer', BOARD_VIEWER_PASSWORD: 'pw\t' });
    expect(config.boardPassword).toBe(' secret ');
    expect(config.boardViewerPassword).toBe('pw\t');
  });

  // Node fires a longer timer after 1 ms: a 30-day shutdown grace would abort every job at once,
  // a 30-day scheduler interval would loop.
  it.each(['SHUTDOWN_TIMEOUT_MS', 'SCHEDULER_INTERVAL_MS', 'LOCK_DURATION_MS', 'STALLED_INTERVAL_MS', 'JOB_BACKOFF_MS', 'ROLLUP_DEBOUNCE_MS', 'ENRICHMENT_RATE_WINDOW_MS', 'POLYGON_RATE_WINDOW_MS', 'ENRICHMENT_RETRY_BASE_MS'])(
    'refuses a %s longer than the longest timer Node keeps (2^31 − 1 ms)',
    (key) => {
      expect(problems({ [key]: String(30 * 24 * 3600 * 1000) })).toContain(`${key}: must be a whole number of milliseconds from ${key === 'ROLLUP_DEBOUNCE_MS' ? 0 : 1} to 2147483647 (about 24.8 days, the longest timer Node keeps)`);
      expect(loadConfig({ [key]: '2147483647' })).toBeDefined();
    },
  );

  it('validates cron patterns with and without seconds', () => {
    expect(isValidCron('*/5 * * * *')).toBe(true);
    expect(isValidCron('*/2 * * * * *')).toBe(true);
    expect(isValidCron('61 * * * *')).toBe(false);
    expect(isValidCron('* *')).toBe(false);
    // cron-parser's hashed "H" picks a random value on every parse: BullMQ and bullpen would disagree.
    expect(isValidCron('H 2 * * *')).toBe(false);
    expect(isValidCron('0 H/4 * * *')).toBe(false);
    expect(isValidCron('0,H(0-29) * * * *')).toBe(false);
    expect(isValidCron('0 9 * * THU')).toBe(true);
  });
});
