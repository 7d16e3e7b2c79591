/**
 * The only module that reads the environment. `loadConfig(env)` is pure: it validates
 * every variable with one zod schema and returns a frozen, typed object, or throws a
 * ConfigError that names every bad variable and what is allowed.
 */
import { CronExpressionParser } from 'cron-parser';
import { IANAZone } from 'luxon';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { QUEUE_NAMES, type QueueName } from './queues.ts';
import { redactSecrets } from './redact.ts';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** Whether a HOST binds to loopback only (board credentials are optional there). */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Checks a cron pattern (5 fields, or 6 with seconds) the way BullMQ will parse it. cron-parser's
 * `H` (a value hashed at random on every parse) is refused: BullMQ and bullpen's own walkers
 * (catch-up, lag, deadlines) would each pick a different time for the same schedule.
 */
export function isValidCron(pattern: string, tz = 'UTC'): boolean {
  const fields = pattern.trim().split(/\s+/);
  if (fields.length < 5) return false;
  // No month or weekday name starts with H.
  if (fields.some((field) => field.split(',').some((item) => /^h/i.test(item)))) return false;
  try {
    CronExpressionParser.parse(pattern, { tz });
    return true;
  } catch {
    return false;
  }
}

const positiveInt = (what: string) =>
  z.coerce.number({ error: `must be ${what}` }).int(`must be ${what}`).positive(`must be ${what}`);

/** Node's longest timer: a longer delay fires after 1 ms (TimeoutOverflowWarning). */
const MAX_TIMER_MS = 2_147_483_647;

/** A delay bullpen sets a timer with: `min` (1, or 0 where none is allowed) to MAX_TIMER_MS. */
const milliseconds = (min: 0 | 1 = 1) => {
  const what = `a whole number of milliseconds from ${min} to ${MAX_TIMER_MS} (about 24.8 days, the longest timer Node keeps)`;
  return z.coerce.number({ error: `must be ${what}` }).int(`must be ${what}`).min(min, `must be ${what}`).max(MAX_TIMER_MS, `must be ${what}`);
};

const urlWithScheme = (schemes: string[]) =>
  z
    .string()
    .trim()
    .refine((value) => {
      try {
        return schemes.includes(new URL(value).protocol.replace(/:$/, ''));
      } catch {
        return false;
      }
    }, `must be a URL starting with ${schemes.map((s) => `${s}://`).join(' or ')}`);

const optionalString = z
  .string()
  .trim()
  .optional()
  .transform((value) => (value === '' ? undefined : value));

/** A password: kept exactly as given (spaces are characters of it, so nothing is trimmed). */
const optionalSecret = z.string().optional();

/**
 * A basic-auth user name: the Authorization header splits user from password at the first
 * colon, so a name containing one could never log in.
 */
const optionalUser = optionalString.refine((value) => value === undefined || !value.includes(':'), 'must not contain ":" (basic auth splits user and password at the first colon)');

/**
 * The environment with empty values removed. One rule for every variable: empty, or nothing but
 * whitespace, means unset, so the default applies (`PORT=` in a compose file or .env is not
 * port 0, `ENRICHMENT_TRIGGER_RATE=` does not switch the limit off).
 */
function withoutEmpty(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value.trim() !== '') kept[key] = value;
  return kept;
}

const EnvSchema = z.object({
  DATABASE_URL: urlWithScheme(['postgres', 'postgresql']).optional(),
  SOURCE_DATABASE_URL: urlWithScheme(['postgres', 'postgresql']).optional(),
  REDIS_URL: urlWithScheme(['redis', 'rediss']).optional(),
  BULLPEN_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, 'must be letters, digits, "_", "." or "-" (no ":")')
    .default('bullpen'),
  BULLPEN_HOME: z.string().min(1).default('.bullpen'),
  PORT: z.coerce
    .number({ error: 'must be a port number 0–65535' })
    .int('must be a port number 0–65535')
    .min(0, 'must be a port number 0–65535')
    .max(65535, 'must be a port number 0–65535')
    .default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  BOARD_USER: optionalUser,
  BOARD_PASSWORD: optionalSecret,
  BOARD_VIEWER_USER: optionalUser,
  BOARD_VIEWER_PASSWORD: optionalSecret,
  REPORTS_DIR: z.string().min(1).default('reports'),
  MARKET_DATA_SOURCE: z.enum(['synthetic', 'csv', 'polygon'], { error: 'must be one of synthetic, csv, polygon' }).default('synthetic'),
  MARKET_DATA_CSV_DIR: optionalString,
  POLYGON_API_KEY: optionalString,
  POLYGON_BASE_URL: urlWithScheme(['http', 'https']).default('https://api.polygon.io'),
  ENRICHMENT_RATE_MAX: z.coerce
    .number({ error: 'must be a whole number ≥ 0 (0: no limit)' })
    .int('must be a whole number ≥ 0 (0: no limit)')
    .min(0, 'must be a whole number ≥ 0 (0: no limit)')
    .optional(),
  ENRICHMENT_RATE_WINDOW_MS: milliseconds().default(60000),
  POLYGON_RATE_MAX: z.coerce
    .number({ error: 'must be a whole number ≥ 0 (0: no limit)' })
    .int('must be a whole number ≥ 0 (0: no limit)')
    .min(0, 'must be a whole number ≥ 0 (0: no limit)')
    .optional(),
  POLYGON_RATE_WINDOW_MS: milliseconds().optional(),
  ENRICHMENT_CHUNK_RETRIES: z.coerce
    .number({ error: 'must be a whole number ≥ 0' })
    .int('must be a whole number ≥ 0')
    .min(0, 'must be a whole number ≥ 0')
    .default(3),
  ENRICHMENT_RETRY_BASE_MS: milliseconds().default(1000),
  ENRICHMENT_MAX_BARS: positiveInt('a whole number ≥ 1').default(50_000_000),
  ENRICHMENT_TRIGGER_RATE: z.coerce
    .number({ error: 'must be a whole number of requests per minute ≥ 0 (0: no limit)' })
    .int('must be a whole number of requests per minute ≥ 0 (0: no limit)')
    .min(0, 'must be a whole number of requests per minute ≥ 0 (0: no limit)')
    .default(30),
  EXCHANGE_TZ: z
    .string()
    .refine((tz) => IANAZone.isValidZone(tz), 'must be an IANA time zone such as America/New_York')
    .default('America/New_York'),
  STARTING_CAPITAL: z.coerce.number({ error: 'must be a positive number' }).positive('must be a positive number').default(100000),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      error: 'must be one of fatal, error, warn, info, debug, trace, silent',
    })
    .default('info'),
  JOB_ATTEMPTS: positiveInt('a whole number ≥ 1').default(5),
  JOB_BACKOFF_MS: milliseconds().default(5000),
  ROLLUP_DEBOUNCE_MS: milliseconds(0).default(30000),
  SHUTDOWN_TIMEOUT_MS: milliseconds().default(30000),
  SCHEDULER_INTERVAL_MS: milliseconds().default(120000),
  LOCK_DURATION_MS: milliseconds().default(30000),
  STALLED_INTERVAL_MS: milliseconds().default(30000),
  JOB_MAX_STALLS: positiveInt('a whole number ≥ 1').default(2),
});

/** Validated, frozen configuration. Defaults are noted on each field. */
export interface Config {
  /** PostgreSQL URL. @defaultValue unset: an embedded PostgreSQL under `home` */
  readonly databaseUrl: string | undefined;
  /** OLTP source database. @defaultValue databaseUrl */
  readonly sourceDatabaseUrl: string | undefined;
  /** Redis URL. @defaultValue redis://127.0.0.1:6379 (started under `home` if nothing answers and redis-server exists) */
  readonly redisUrl: string;
  /** True when REDIS_URL was set explicitly (then bullpen never starts a Redis of its own). */
  readonly redisUrlExplicit: boolean;
  /** BullMQ key prefix. @defaultValue bullpen */
  readonly prefix: string;
  /** Directory for embedded data. @defaultValue .bullpen */
  readonly home: string;
  /** @defaultValue 3000 */
  readonly port: number;
  /** True when PORT was set (worker and scheduler roles serve /healthz, /readyz and /metrics only then). */
  readonly portExplicit: boolean;
  /** @defaultValue 127.0.0.1 */
  readonly host: string;
  /** Basic-auth user for Bull Board, the status page and mutating API calls. @defaultValue admin on loopback */
  readonly boardUser: string | undefined;
  readonly boardPassword: string | undefined;
  /**
   * Basic-auth user with read-only access: the status page, /reports/, GET /api/v1/* and a
   * read-only Bull Board at /viewer/queues; every mutating request answers 403.
   * @defaultValue unset: no viewer account
   */
  readonly boardViewerUser: string | undefined;
  readonly boardViewerPassword: string | undefined;
  /** @defaultValue reports */
  readonly reportsDir: string;
  /** @defaultValue synthetic */
  readonly marketDataSource: 'synthetic' | 'csv' | 'polygon';
  readonly marketDataCsvDir: string | undefined;
  readonly polygonApiKey: string | undefined;
  /** @defaultValue https://api.polygon.io */
  readonly polygonBaseUrl: string;
  /**
   * The request budget of MARKET_DATA_SOURCE (ENRICHMENT_RATE_MAX per ENRICHMENT_RATE_WINDOW_MS):
   * its fetches only, counted in PostgreSQL across every worker (enrichment.provider_budget);
   * backfills from the other sources are not held to it.
   * @defaultValue 5 per 60 s for polygon (its free tier), none otherwise
   */
  readonly enrichmentRateLimit: { readonly max: number; readonly durationMs: number } | null;
  /**
   * Polygon's request budget where MARKET_DATA_SOURCE is another source (POLYGON_RATE_MAX per
   * POLYGON_RATE_WINDOW_MS, counted as enrichmentRateLimit is). Null where polygon is the
   * default source: enrichmentRateLimit is its budget there, so one source has one budget.
   * @defaultValue 5 per 60 s (polygon's free tier)
   */
  readonly polygonRateLimit: { readonly max: number; readonly durationMs: number } | null;
  /** Retries of a chunk's fetch inside one step before the job's own retry takes over. @defaultValue 3 */
  readonly enrichmentChunkRetries: number;
  /** First delay of those retries (doubling, with jitter). @defaultValue 1000 */
  readonly enrichmentRetryBaseMs: number;
  /** Largest backfill request, in estimated bars (symbols × timeframes × sessions × bars per session). @defaultValue 50,000,000 */
  readonly enrichmentMaxBars: number;
  /**
   * POST /api/v1/enrichment/trigger calls per minute per client (authenticated user + IP),
   * counted in each web process's memory; 0: no limit. @defaultValue 30
   */
  readonly enrichmentTriggerRate: number;
  /** @defaultValue America/New_York */
  readonly exchangeTz: string;
  /** @defaultValue 100000 */
  readonly startingCapital: number;
  /** @defaultValue info */
  readonly logLevel: string;
  /** Attempts per job before it fails for good. @defaultValue 5 */
  readonly jobAttempts: number;
  /** First retry delay; doubles each attempt, with jitter. @defaultValue 5000 */
  readonly jobBackoffMs: number;
  /** How long a rollup rebuild the trade ETL asks for waits, gathering later ETL runs into it. */
  readonly rollupDebounceMs: number;
  /** How long SIGTERM waits for active jobs before closing anyway. @defaultValue 30000 */
  readonly shutdownTimeoutMs: number;
  /** How often catch-up, the schedule reconciler and deadline checks run. @defaultValue 120000 */
  readonly schedulerIntervalMs: number;
  /** How long a worker's lock on an active job lasts without renewal (BullMQ lockDuration). @defaultValue 30000 */
  readonly lockDurationMs: number;
  /** How often workers look for jobs whose worker died (BullMQ stalledInterval). @defaultValue 30000 */
  readonly stalledIntervalMs: number;
  /** Times a job may be re-run after its worker died before it fails (BullMQ maxStalledCount; backfill series excepted). @defaultValue 2 */
  readonly jobMaxStalls: number;
  /** `SCHEDULE_<JOB>` overrides, keyed by kebab-case job name: a cron pattern or "off". */
  readonly scheduleOverrides: Readonly<Record<string, string>>;
  /** `CONCURRENCY_<QUEUE>` overrides, keyed by queue name. */
  readonly concurrency: Readonly<Partial<Record<QueueName, number>>>;
}

function envKeyToName(key: string, prefix: string): string {
  return key.slice(prefix.length).toLowerCase().replace(/_/g, '-');
}

/**
 * Validates the environment. Throws ConfigError listing every bad variable, one per line,
 * each naming the variable, what is wrong and what is allowed.
 */
export function loadConfig(rawEnv: Readonly<Record<string, string | undefined>>): Config {
  const problems: string[] = [];
  const env = withoutEmpty(rawEnv);
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? '(environment)');
      const got = env[key];
      // A URL with a password in it must not reach the start-up error (and the logs) verbatim.
      problems.push(`${key}: ${issue.message}${got === undefined ? '' : ` (got "${redactSecrets(got)}")`}`);
    }
  }

  const scheduleOverrides: Record<string, string> = {};
  const concurrency: Partial<Record<QueueName, number>> = {};
  const tz = parsed.success ? parsed.data.EXCHANGE_TZ : 'UTC';
  for (const [key, raw] of Object.entries(env)) {
    const value = raw.trim();
    if (key.startsWith('SCHEDULE_')) {
      if (value === 'off' || isValidCron(value, tz)) scheduleOverrides[envKeyToName(key, 'SCHEDULE_')] = value;
      else problems.push(`${key}: must be a cron pattern ("*/5 * * * *", seconds optional, no random "H" fields) or "off" (got "${raw}")`);
    } else if (key.startsWith('CONCURRENCY_')) {
      const queue = envKeyToName(key, 'CONCURRENCY_');
      const n = Number(value);
      if (!(QUEUE_NAMES as readonly string[]).includes(queue)) {
        problems.push(`${key}: unknown queue "${queue}"; queues are ${QUEUE_NAMES.join(', ')}`);
      } else if (!Number.isInteger(n) || n < 1 || n > 1000) {
        problems.push(`${key}: must be a whole number from 1 to 1000 (got "${raw}")`);
      } else {
        concurrency[queue as QueueName] = n;
      }
    }
  }

  if (parsed.success) {
    const data = parsed.data;
    const onLoopback = isLoopbackHost(data.HOST);
    if (!onLoopback && (!data.BOARD_USER || !data.BOARD_PASSWORD)) {
      problems.push(`BOARD_USER / BOARD_PASSWORD: required when HOST is not loopback (HOST is "${data.HOST}")`);
    } else if (Boolean(data.BOARD_USER) !== Boolean(data.BOARD_PASSWORD)) {
      problems.push('BOARD_USER / BOARD_PASSWORD: set both or neither');
    }
    if (Boolean(data.BOARD_VIEWER_USER) !== Boolean(data.BOARD_VIEWER_PASSWORD)) {
      problems.push('BOARD_VIEWER_USER / BOARD_VIEWER_PASSWORD: set both or neither (the read-only viewer account is optional)');
    } else if (data.BOARD_VIEWER_USER && data.BOARD_VIEWER_USER === (data.BOARD_USER ?? 'admin')) {
      problems.push(`BOARD_VIEWER_USER: must differ from the admin user "${data.BOARD_USER ?? 'admin'}" (BOARD_USER)`);
    }
    if (data.MARKET_DATA_SOURCE === 'polygon' && !data.POLYGON_API_KEY) {
      problems.push('POLYGON_API_KEY: required when MARKET_DATA_SOURCE is polygon');
    }
    if (data.MARKET_DATA_SOURCE === 'polygon') {
      // Two budgets for one source would meter it twice, each refusal of one costing the other a slot.
      for (const key of ['POLYGON_RATE_MAX', 'POLYGON_RATE_WINDOW_MS'] as const) {
        if (data[key] !== undefined) problems.push(`${key}: not used when MARKET_DATA_SOURCE is polygon (ENRICHMENT_RATE_MAX / ENRICHMENT_RATE_WINDOW_MS are its budget then); unset it`);
      }
    }
    if (data.MARKET_DATA_SOURCE === 'csv' && !data.MARKET_DATA_CSV_DIR) {
      problems.push('MARKET_DATA_CSV_DIR: required when MARKET_DATA_SOURCE is csv');
    }
  }

  if (problems.length > 0 || !parsed.success) {
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const data = parsed.data;
  return Object.freeze({
    databaseUrl: data.DATABASE_URL,
    sourceDatabaseUrl: data.SOURCE_DATABASE_URL ?? data.DATABASE_URL,
    redisUrl: data.REDIS_URL ?? 'redis://127.0.0.1:6379',
    redisUrlExplicit: data.REDIS_URL !== undefined,
    prefix: data.BULLPEN_PREFIX,
    home: data.BULLPEN_HOME,
    port: data.PORT,
    portExplicit: env.PORT !== undefined,
    host: data.HOST,
    boardUser: data.BOARD_USER,
    boardPassword: data.BOARD_PASSWORD,
    boardViewerUser: data.BOARD_VIEWER_USER,
    boardViewerPassword: data.BOARD_VIEWER_PASSWORD,
    reportsDir: data.REPORTS_DIR,
    marketDataSource: data.MARKET_DATA_SOURCE,
    marketDataCsvDir: data.MARKET_DATA_CSV_DIR,
    polygonApiKey: data.POLYGON_API_KEY,
    polygonBaseUrl: data.POLYGON_BASE_URL,
    enrichmentRateLimit: rateLimitOf(data.ENRICHMENT_RATE_MAX ?? (data.MARKET_DATA_SOURCE === 'polygon' ? 5 : 0), data.ENRICHMENT_RATE_WINDOW_MS),
    polygonRateLimit: data.MARKET_DATA_SOURCE === 'polygon' ? null : rateLimitOf(data.POLYGON_RATE_MAX ?? 5, data.POLYGON_RATE_WINDOW_MS ?? 60_000),
    enrichmentChunkRetries: data.ENRICHMENT_CHUNK_RETRIES,
    enrichmentRetryBaseMs: data.ENRICHMENT_RETRY_BASE_MS,
    enrichmentMaxBars: data.ENRICHMENT_MAX_BARS,
    enrichmentTriggerRate: data.ENRICHMENT_TRIGGER_RATE,
    exchangeTz: data.EXCHANGE_TZ,
    startingCapital: data.STARTING_CAPITAL,
    logLevel: data.LOG_LEVEL,
    jobAttempts: data.JOB_ATTEMPTS,
    jobBackoffMs: data.JOB_BACKOFF_MS,
    rollupDebounceMs: data.ROLLUP_DEBOUNCE_MS,
    shutdownTimeoutMs: data.SHUTDOWN_TIMEOUT_MS,
    schedulerIntervalMs: data.SCHEDULER_INTERVAL_MS,
    lockDurationMs: data.LOCK_DURATION_MS,
    stalledIntervalMs: data.STALLED_INTERVAL_MS,
    jobMaxStalls: data.JOB_MAX_STALLS,
    scheduleOverrides: Object.freeze(scheduleOverrides),
    concurrency: Object.freeze(concurrency),
  });
}

function rateLimitOf(max: number, durationMs: number): Config['enrichmentRateLimit'] {
  return max > 0 ? Object.freeze({ max, durationMs }) : null;
}
