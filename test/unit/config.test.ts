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
  ])('rejects %o naming the variable', (env, expected) => {
    expect(problems(env)).toContain(expected);
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

  it('validates cron patterns with and without seconds', () => {
    expect(isValidCron('*/5 * * * *')).toBe(true);
    expect(isValidCron('*/2 * * * * *')).toBe(true);
    expect(isValidCron('61 * * * *')).toBe(false);
    expect(isValidCron('* *')).toBe(false);
  });
});
