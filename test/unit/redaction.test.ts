import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger, redactUrl } from '../../src/logger.ts';
import { redactError, redactSecrets } from '../../src/redact.ts';

const SECRETS = ['pgS3cret', 'redisS3cret', 'POLYKEY123', 'tok3nValue', 'b4sicCreds', 'viewerS3cret'];

/** A logger writing JSON lines into memory. */
function memoryLogger() {
  const lines: string[] = [];
  const logger = createLogger({ level: 'trace', destination: { write: (line: string) => void lines.push(line) } });
  return { logger, lines, text: () => lines.join('') };
}

function expectNoSecret(text: string): void {
  for (const secret of SECRETS) expect(text, `"${secret}" leaked`).not.toContain(secret);
}

describe('redactSecrets', () => {
  it.each([
    ['postgres://bull:pgS3cret@db.internal:5432/warehouse', 'postgres://bull:***@db.internal:5432/warehouse'],
    ['postgresql://bull:pgS3cret@db/x?sslmode=require', 'postgresql://bull:***@db/x?sslmode=require'],
    ['redis://:redisS3cret@cache:6379/0', 'redis://:***@cache:6379/0'],
    ['rediss://default:redisS3cret@cache:6380', 'rediss://default:***@cache:6380'],
    ['connect ECONNREFUSED postgres://u:p%40ss@h/db failed', 'connect ECONNREFUSED postgres://u:***@h/db failed'],
    // An unescaped "@" or "/" in the password must not cut the mask short.
    ['postgres://u:pa@ss/w@h/db', 'postgres://u:***@h/db'],
    ['GET https://api.polygon.io/v2/aggs/ticker/AAPL?adjusted=true&apiKey=POLYKEY123&limit=5', 'GET https://api.polygon.io/v2/aggs/ticker/AAPL?adjusted=true&apiKey=***&limit=5'],
    ['https://x.test/?api_key=POLYKEY123', 'https://x.test/?api_key=***'],
    ['https://x.test/cb?token=tok3nValue#frag', 'https://x.test/cb?token=***#frag'],
    ['host=db user=bull password=pgS3cret dbname=w', 'host=db user=bull password=*** dbname=w'],
    ['Authorization: Basic b4sicCredsAAAA==', 'Authorization: Basic ***'],
    ['Bearer tok3nValue.abc.def', 'Bearer ***'],
  ])('%s', (input, expected) => {
    expect(redactSecrets(input)).toBe(expected);
  });

  it.each([
    'redis://127.0.0.1:6379',
    'http://127.0.0.1:3000/api/v1/backfills?limit=5',
    'postgres://bull@db/warehouse',
    'Error: boom\n    at run (file:///work/src/worker.ts:12:5)',
    'Basic realm="bullpen"',
    'no secrets here: 3 rows, 2 failed',
  ])('leaves %s alone', (input) => {
    expect(redactSecrets(input)).toBe(input);
  });

  it('redactUrl stays the connection-URL mask it was', () => {
    expect(redactUrl('postgres://u:secret@h:5432/db')).toBe('postgres://u:***@h:5432/db');
    expect(redactUrl('postgres://u@h/db')).toBe('postgres://u@h/db');
  });
});

describe('redactError', () => {
  it('masks message, stack and causes in place, keeping the class and fields', () => {
    class UpstreamError extends Error {
      override name = 'UpstreamError';
      readonly retryAfterMs = 1500;
    }
    const error = new UpstreamError('GET https://api.polygon.io/x?apiKey=POLYKEY123 failed', {
      cause: new Error('connect postgres://u:pgS3cret@h/db'),
    });
    expect(redactError(error)).toBe(error);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error.retryAfterMs).toBe(1500);
    expect(error.message).toBe('GET https://api.polygon.io/x?apiKey=*** failed');
    expect(error.stack).toContain('apiKey=***');
    expect((error.cause as Error).message).toBe('connect postgres://u:***@h/db');
    expectNoSecret(`${error.message}${error.stack ?? ''}${(error.cause as Error).message}${(error.cause as Error).stack ?? ''}`);
  });

  it('stops on a cause chain that loops', () => {
    const a = new Error('a postgres://u:pgS3cret@h/db');
    const b = new Error('b', { cause: a });
    a.cause = b;
    redactError(b);
    expect(a.message).toBe('a postgres://u:***@h/db');
  });
});

describe('the root logger', () => {
  it('never writes a secret, whatever shape it is logged in', () => {
    const { logger, text, lines } = memoryLogger();
    const error = new Error('could not connect to postgres://bull:pgS3cret@db/warehouse', {
      cause: new Error('GET https://api.polygon.io/v2/x?apiKey=POLYKEY123'),
    });
    logger.error(error);
    logger.error({ err: error });
    logger.warn({ err: Object.assign(new Error('redis'), { url: 'redis://:redisS3cret@cache:6379' }) }, 'worker error');
    logger.info({ password: 'pgS3cret', apiKey: 'POLYKEY123', POLYGON_API_KEY: 'POLYKEY123', BOARD_VIEWER_PASSWORD: 'viewerS3cret' }, 'flat fields');
    logger.info(
      {
        config: { databaseUrl: 'postgres://bull:pgS3cret@db/w', redisUrl: 'redis://:redisS3cret@cache:6379', polygonApiKey: 'POLYKEY123', boardPassword: 'viewerS3cret' },
        env: { DATABASE_URL: 'postgres://bull:pgS3cret@db/w', POLYGON_API_KEY: 'POLYKEY123' },
      },
      'nested fields',
    );
    logger.info({ req: { headers: { authorization: 'Basic b4sicCredsAAAA==', cookie: 'sid=tok3nValue' } } }, 'a request');
    logger.info({ headers: { authorization: 'Bearer tok3nValue' } }, 'headers');
    logger.info({ fetch: { url: 'https://api.polygon.io/v2/x?apiKey=POLYKEY123' } }, 'free text in a field');
    logger.info({ provider: { apiKey: 'POLYKEY123', nested: { password: 'pgS3cret', sourceDatabaseUrl: 'postgres://bull:pgS3cret@db/w' } } }, 'fields under any parent');
    logger.info('template %s and %s', 'redis://:redisS3cret@cache:6379', 'token=tok3nValue');
    logger.info(`interpolated postgres://bull:pgS3cret@db/w`);
    // Child bindings, whatever their parent, and a child's child.
    logger.child({ config: { databaseUrl: 'postgres://bull:pgS3cret@db/w', polygonApiKey: 'POLYKEY123' } }).info({ apiKey: 'POLYKEY123' }, 'child bindings');
    const jobLogger = logger.child({ job: 'enrichment-backfill', provider: { name: 'polygon', apiKey: 'POLYKEY123' }, source: 'postgres://bull:pgS3cret@db/w' });
    jobLogger.child({ step: { url: 'https://api.polygon.io/v2/x?apiKey=POLYKEY123', nested: { password: 'pgS3cret' } } }).info('grandchild');

    expect(lines).toHaveLength(13);
    expectNoSecret(text());
    // What is left still says what happened and where.
    const [first, , third, , nested] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(first?.msg).toBe('could not connect to postgres://bull:***@db/warehouse');
    expect((first?.err as { message: string }).message).toContain('apiKey=***');
    expect((third?.err as { url: string }).url).toBe('redis://:***@cache:6379');
    expect((nested?.config as Record<string, string>).databaseUrl).toBe('postgres://bull:***@db/w');
    expect((nested?.config as Record<string, string>).polygonApiKey).toBe('***');
    const grandchild = JSON.parse(lines[12] as string) as Record<string, unknown>;
    expect(grandchild).toMatchObject({
      job: 'enrichment-backfill',
      provider: { name: 'polygon', apiKey: '***' },
      source: 'postgres://bull:***@db/w',
      step: { url: 'https://api.polygon.io/v2/x?apiKey=***', nested: { password: '***' } },
      msg: 'grandchild',
    });
  });

  it('keeps a start-up configuration error free of URL passwords', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://bull:pgS3cret@db/w' })).toThrow(/DATABASE_URL: .*\(got "mysql:\/\/bull:\*\*\*@db\/w"\)/);
  });
});
