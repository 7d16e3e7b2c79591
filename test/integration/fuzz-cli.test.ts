/**
 * Bad input on the command line (issue 9): property-based fuzzing with fast-check of every
 * `bullpen` command and its options, in-process: `runCli` from src/cli.ts (the program of
 * `createProgram()`, commander set to throw instead of exiting, main()'s own error handling)
 * runs in worker threads of this test process (test/fixtures/cli-thread.ts), each with the
 * environment of a test database, the test Redis and a BullMQ prefix of its own, stdout and
 * stderr captured. Threads rather than this one: a command that blocked its event loop would
 * otherwise stop the timer that is to report it; from here it is timed out and the thread ended.
 *
 * The property, for every command line: it ends within CASE_TIMEOUT_MS with exit code 0 or 1
 * (commander's help: 0); a failure says why on stderr in one line — `bullpen: …` (BadInputError,
 * ConfigError) or commander's `error: …` — or, for a waited-for run, in the run's summary; no
 * stack trace anywhere (which is how runCli prints an unexpected TypeError and the like), and no
 * uncaught exception or unhandled rejection in the thread.
 *
 * What is not fuzzed into success: `start` and `demo` would start the whole app or seed and run
 * the demo pipeline, so each of their cases carries at least one argument commander refuses
 * (test/integration/processes.test.ts and demo.test.ts run them for real); `run enrichment-daily`
 * with a valid payload and `--wait` on refresh-rs or enrichment-daily would enrich the whole
 * universe, so those are left out. Argument strings hold no NUL (no process can be given one).
 *
 * Cases per command: FUZZ_RUNS (default 100; `npm run test:chaos` runs 1,000), THREADS
 * at a time (one fast-check run is one batch of THREADS command lines). FUZZ_SEED replays a run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { QUEUE_NAMES } from '../../src/queues.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { fieldValue, fuzzSettings, hostileJson, hostileString } from '../helpers/hostile.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';

/** 100 cases per command in `npm test`; a few ms each, up to a second or so for the slowest. */
const { runs: RUNS, seed: SEED, timeoutMs: FUZZ_TIMEOUT_MS } = fuzzSettings(100, 300);
/** Worker threads running command lines side by side. */
const THREADS = 4;
/** A command line that has not ended after this long hangs (a waited-for run included). */
const CASE_TIMEOUT_MS = 20_000;
const RS_DATE = '2025-11-18';

const JOB_NAMES = JOBS.map((j) => j.name);
const SYMBOLS = ['AAPL', 'MSFT', 'msft', 'SPY', 'BRK.B', 'ZZZZ', 'BTC-USD', 'AAPL,MSFT', 'AAPL, MSFT ,'];
const DATES = ['2024-03-01', '2024-03-08', '2024-12-31', RS_DATE, '2026-01-02', '9999-12-31', '1970-01-01', '2000-02-29'];
const TIMEFRAMES = ['1d', '1h', '1w', '1d,1h', '2h', '1m', ''];
const SECTORS = ['Information Technology', 'Energy', 'information technology', 'Benchmark'];

let db: TestDatabase;
let prefix: string;
let root: string;
let threads: CliThread[] = [];
/** Backfill ids that exist. */
const backfillIds: string[] = [];
const stats = new Map<string, { codes: Map<number, number>; ms: number[] }>();
/** The environment of the CLI threads (a replacement for a hung one gets the same). */
let threadEnv: Record<string, string> = {};

// ---------------------------------------------------------------------------------------------
// Threads

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  uncaught: string[];
  ms: number;
}

const TSX_BOOT = (entry: string) => `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;

class CliThread {
  private worker: Worker;
  private pending = new Map<number, (result: Omit<CliResult, 'ms'>) => void>();
  private nextId = 1;
  private failure: string | undefined;
  readonly ready: Promise<void>;

  constructor(env: Record<string, string>) {
    this.worker = new Worker(TSX_BOOT(new URL('../fixtures/cli-thread.ts', import.meta.url).href), { eval: true, env, stdout: false, stderr: false });
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('error', reject);
      this.worker.on('message', (message: { ready?: boolean; id?: number } & Omit<CliResult, 'ms'>) => {
        if (message.ready) {
          resolve();
          return;
        }
        const settle = message.id === undefined ? undefined : this.pending.get(message.id);
        if (message.id !== undefined) this.pending.delete(message.id);
        settle?.(message);
      });
    });
    this.worker.on('error', (error) => (this.failure ??= `the CLI thread died: ${error.stack ?? String(error)}`));
    this.worker.on('exit', (code) => (this.failure ??= `the CLI thread exited (code ${code}): a command called process.exit`));
  }

  /** Runs one command line; rejects when it does not end within CASE_TIMEOUT_MS or the thread is gone. */
  run(args: readonly string[]): Promise<CliResult> {
    if (this.failure) return Promise.reject(new Error(this.failure));
    const id = this.nextId++;
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        clearInterval(exited);
        // It runs nothing more: ended here, replaced before the next test (beforeEach).
        this.failure ??= `an earlier command line hung the thread: ${describeArgs(args)}`;
        void this.worker.terminate();
        reject(new Error(`no exit within ${CASE_TIMEOUT_MS} ms (a hang)`));
      }, CASE_TIMEOUT_MS);
      const exited = setInterval(() => {
        if (!this.failure) return;
        clearTimeout(timer);
        clearInterval(exited);
        reject(new Error(this.failure));
      }, 200);
      this.pending.set(id, (result) => {
        clearTimeout(timer);
        clearInterval(exited);
        resolve({ ...result, ms: performance.now() - started });
      });
      this.worker.postMessage({ id, args: [...args] });
    });
  }

  get dead(): boolean {
    return this.failure !== undefined;
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}

function describeArgs(args: readonly string[]): string {
  return `bullpen ${args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a.length > 300 ? `${a.slice(0, 300)}…` : a))).join(' ')}`;
}

/** What is wrong with how a command line ended, or undefined. */
function problemOf(result: CliResult): string | undefined {
  const output = `${result.stdout}\n${result.stderr}`;
  if (result.uncaught.length > 0) return `left an unhandled error: ${result.uncaught.join('\n')}`;
  if (result.code !== 0 && result.code !== 1) return `exit code ${result.code}`;
  if (/\n\s+at .+[(:]\d+/.test(output) || /^\s*at .+\.(ts|js):\d+/m.test(output)) return `printed a stack trace (an unexpected exception):\n${result.stderr.slice(0, 1500) || result.stdout.slice(0, 1500)}`;
  if (result.code === 1) {
    const stderr = result.stderr.trim();
    const summary = /"status": "(failed|retrying)"/.test(result.stdout) || /backfill [0-9a-f-]{36}: (failed|cancelled|cancelling)/.test(result.stdout);
    if (stderr === '' && !summary) return 'exit code 1 without a message';
    // A missing subcommand (`bullpen`, `bullpen universe`) prints the usage, as commander does.
    if (stderr !== '' && !/^(bullpen: |error: )\S/m.test(stderr) && !/^Usage: bullpen/.test(stderr)) return `a failure message that is neither "bullpen: …" nor commander's "error: …": ${stderr.slice(0, 300)}`;
  }
  return undefined;
}

function record(command: string, result: CliResult): void {
  let entry = stats.get(command);
  if (!entry) stats.set(command, (entry = { codes: new Map(), ms: [] }));
  entry.codes.set(result.code, (entry.codes.get(result.code) ?? 0) + 1);
  entry.ms.push(result.ms);
}

/** Runs RUNS command lines of `arbitrary`, THREADS at a time; throws on the first bad ending (shrunk). */
async function fuzz(command: string, arbitrary: fc.Arbitrary<string[]>, runs = RUNS): Promise<void> {
  /** The first hang or dead thread: later cases of this command fail at once with it (no waiting while shrinking). */
  let fatal: string | undefined;
  const lines = arbitrary.map((args) => Object.assign(args, { [fc.toStringMethod]: () => describeArgs(args) }));
  const property = fc.asyncProperty(fc.array(lines, { minLength: THREADS, maxLength: THREADS }), async (batch) => {
    if (fatal) throw new Error(fatal);
    const results = await Promise.all(
      batch.map(async (args, i) => {
        try {
          const result = await (threads[i] as CliThread).run(args);
          if (process.env.FUZZ_DEBUG) fs.appendFileSync(process.env.FUZZ_DEBUG, `[${i}] ${describeArgs(args)} → ${result.code}\n${result.stderr}\n`);
          record(command, result);
          return { args, result, problem: problemOf(result) };
        } catch (error) {
          return { args, result: undefined, problem: (error as Error).message };
        }
      }),
    );
    const bad = results.find((r) => r.problem !== undefined);
    if (!bad) return;
    const message = `${describeArgs(bad.args)}: ${bad.problem}${bad.result ? `\n  stdout: ${bad.result.stdout.slice(0, 500)}\n  stderr: ${bad.result.stderr.slice(0, 1500)}` : ''}`;
    // A thread that hangs or died runs nothing more: stop here rather than shrink against it.
    if (bad.result === undefined) fatal = `a command line stopped the run: ${message}`;
    throw new Error(message);
  });
  await fc.assert(property, { numRuns: Math.ceil(runs / THREADS), seed: SEED, verbose: 0 });
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** No process receives a NUL in an argument: keep them out of what a shell could not pass. */
const noNul = (text: string) => text.replace(/\u0000/g, '');
const value = (valid: readonly string[]) => fieldValue(valid).map(noNul);
const stray = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('--', '-', '--nope', '-x', '--version', '--json', '--wait', '--force', '--all', '--leaders', '--no-etf', '--help', '-h', 'extra') },
  { weight: 2, arbitrary: hostileString().map(noNul) },
);

type OptionSpec = readonly string[] | 'flag';

/** `--name value`, `--name=value`, or `--name` without its value. */
function optionPiece(name: string, spec: OptionSpec): fc.Arbitrary<string[]> {
  if (spec === 'flag') return fc.oneof({ weight: 8, arbitrary: fc.constant<string[]>([name]) }, { weight: 1, arbitrary: value([]).map((v) => [`${name}=${v}`]) });
  return fc.oneof(
    { weight: 6, arbitrary: value(spec).map((v) => [name, v]) },
    { weight: 2, arbitrary: value(spec).map((v) => [`${name}=${v}`]) },
    { weight: 1, arbitrary: fc.constant<string[]>([name]) },
  );
}

/**
 * A command line: the command's words, its positionals, and option pieces — either random
 * (hostile values, strays, repeats) or valid values with at most one hostile piece — sometimes shuffled.
 */
function commandLine(words: readonly string[], options: Record<string, OptionSpec>, positionals: fc.Arbitrary<string[]> = fc.constant([])): fc.Arbitrary<string[]> {
  const names = Object.keys(options);
  const piece = names.length > 0 ? fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...names).chain((n) => optionPiece(n, options[n] as OptionSpec)) }, { weight: 1, arbitrary: stray.map((s) => [s]) }) : stray.map((s) => [s]);
  const validNames = names.filter((n) => options[n] === 'flag' || (options[n] as readonly string[]).length > 0);
  const validPiece = (n: string): fc.Arbitrary<string[]> => {
    const spec = options[n] as OptionSpec;
    return spec === 'flag' ? fc.constant([n]) : fc.constantFrom(...spec).map((v) => [n, v]);
  };
  const random = fc.array(piece, { maxLength: 5 });
  const mostlyValid = fc.tuple(fc.subarray(validNames).chain((chosen) => fc.tuple(...chosen.map(validPiece))), fc.array(piece, { maxLength: 1 })).map(([good, bad]) => [...good, ...bad]);
  return fc
    .tuple(positionals, fc.oneof({ weight: 2, arbitrary: random }, { weight: 3, arbitrary: mostlyValid }), fc.boolean())
    .chain(([pos, pieces, shuffle]) => {
      const rest = [...pos.map((p) => [p]), ...pieces];
      return (shuffle ? fc.shuffledSubarray(rest, { minLength: rest.length, maxLength: rest.length }) : fc.constant(rest)).map((ordered) => [...words, ...ordered.flat()]);
    });
}

const idArg = () =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...backfillIds, ...backfillIds.map((id) => id.toUpperCase())) },
    { weight: 2, arbitrary: fc.uuid().map(String) },
    { weight: 5, arbitrary: value(['00000000-0000-0000-0000-000000000000', '3f2b1c4d-0000-4000-8000-00000000000', 'null', '1']) },
  );

/** --data values: valid payloads of each job, hostile JSON, and text that is not JSON. */
const dataArg = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('{}', '{"date":"2024-03-01"}', '{"date":"9999-12-31"}', '{"date":"1970-01-01"}', '{"pending":true}', '{"full":true}', '{"from":"2024-03-01","to":"2024-03-05"}', '{"monthsAhead":36}', '{"batchSize":1,"maxBatches":1}', '{"backfillId":"00000000-0000-4000-8000-000000000000"}', '{"scheduledFor":"9999-12-31T23:59:59Z"}') },
  { weight: 3, arbitrary: hostileJson(['2024-03-01', 'AAPL', '1d']).map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 2, arbitrary: fc.constantFrom('{', '', 'null', '[]', '"x"', '1', "{'date':'2024-03-01'}", '{"date":"2024-03-01",}', '{"__proto__":{"date":"2024-03-01"}}') },
  { weight: 1, arbitrary: hostileString().map(noNul) },
);

/** Jobs whose run --wait would enrich or score the whole universe (minutes): never waited for. */
const SLOW_WAITS = new Set(['enrichment-daily', 'refresh-rs']);

function hasValidDailyPayload(args: readonly string[]): boolean {
  // Commander takes the last --data; without one the payload is {}.
  const at = args.findLastIndex((a) => a === '--data' || a.startsWith('--data='));
  const raw = at < 0 ? '{}' : (args[at] as string).startsWith('--data=') ? (args[at] as string).slice('--data='.length) : args[at + 1];
  try {
    const parsed: unknown = JSON.parse(raw ?? '');
    const definition = JOBS.find((j) => j.name === 'enrichment-daily');
    return definition !== undefined && definition.payload.safeParse({ ...(parsed as object), scheduledFor: new Date().toISOString() }).success;
  } catch {
    return false;
  }
}

/** A piece commander certainly refuses: it keeps `start` and `demo` from ever running. */
function refusedPiece(option: string, isValid: (v: string) => boolean): fc.Arbitrary<string[]> {
  return fc.oneof(
    value([]).filter((v) => !isValid(v) && !v.startsWith('-')).map((v) => [option, v]),
    value([]).filter((v) => !isValid(v)).map((v) => [`${option}=${v}`]),
    fc.constantFrom<string[]>(['--nope'], ['-x'], ['unexpected-argument'], ['--version']),
  );
}

function validDays(v: string): boolean {
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 1000;
}

/** At least one queue, each a known one (an empty list is refused). */
function validQueues(v: string): boolean {
  const queues = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return queues.length > 0 && queues.every((q) => (QUEUE_NAMES as readonly string[]).includes(q));
}

// ---------------------------------------------------------------------------------------------
// Set-up

async function cli(args: string[]): Promise<CliResult> {
  return (threads[0] as CliThread).run(args);
}

beforeAll(async () => {
  db = await createTestDatabase();
  prefix = createTestPrefix('fuzz-cli');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-fuzz-cli-'));
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    BULLPEN_PREFIX: prefix,
    BULLPEN_HOME: path.join(root, 'home'),
    REPORTS_DIR: path.join(root, 'reports'),
    LOG_LEVEL: 'silent',
    // Small enough that an accepted backfill (and its --wait) is over in moments.
    ENRICHMENT_MAX_BARS: '500',
    MARKET_DATA_SOURCE: 'synthetic',
    JOB_ATTEMPTS: '1',
    JOB_BACKOFF_MS: '50',
    SHUTDOWN_TIMEOUT_MS: '2000',
  };
  delete env.POLYGON_API_KEY;
  delete env.MARKET_DATA_CSV_DIR;
  threadEnv = env;
  threads = Array.from({ length: THREADS }, () => new CliThread(env));
  await Promise.all(threads.map((t) => t.ready));

  // Two backfills to aim status, resume and cancel at, and RS scores of one date.
  for (const symbol of ['AAPL', 'MSFT']) {
    const queued = await cli(['backfill', '--symbols', symbol, '--from', '2024-03-01', '--to', '2024-03-08']);
    expect(queued.code, queued.stderr).toBe(0);
    backfillIds.push(/queued backfill ([0-9a-f-]{36})/.exec(queued.stdout)?.[1] ?? '');
  }
  expect(backfillIds.every(Boolean)).toBe(true);
  await db.sql`
    insert into market.rs_scores (symbol, as_of_date, sector_name, sessions, rs_score, rs_rating, is_sector_leader)
    select symbol, ${RS_DATE}::date, sector_name, 253, 10 - row_number() over (order by symbol), 99 - row_number() over (order by symbol), true
    from market.sector_mapping where symbol in ('AAPL', 'MSFT', 'NVDA')`;
});

// A thread an earlier test hung (or a command ended) is replaced, so one finding does not hide the others.
beforeEach(async () => {
  threads = await Promise.all(
    threads.map(async (thread) => {
      if (!thread.dead) return thread;
      await thread.stop();
      const fresh = new CliThread(threadEnv);
      await fresh.ready;
      return fresh;
    }),
  );
});

afterAll(async () => {
  await Promise.all(threads.map((t) => t.stop()));
  if (prefix) await cleanupPrefix(TEST_REDIS_URL, prefix);
  await db?.drop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
  if (stats.size > 0) {
    const lines = [...stats].map(([command, { codes, ms }]) => {
      const sorted = [...ms].sort((a, b) => a - b);
      const pct = (p: number) => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0).toFixed(0);
      const exits = [...codes].sort(([a], [b]) => a - b).map(([c, n]) => `exit ${c}×${n}`).join(' ');
      return `  ${command.padEnd(22)} ${String(ms.length).padStart(5)} runs  p50 ${pct(0.5).padStart(5)} ms  p99 ${pct(0.99).padStart(6)} ms  ${exits}`;
    });
    process.stdout.write(`\nfuzz-cli: ${RUNS} command lines per command, ${THREADS} threads${SEED === undefined ? '' : `, seed ${SEED}`}\n${lines.join('\n')}\n`);
  }
});

// ---------------------------------------------------------------------------------------------
// The commands

describe(`every command under hostile arguments (${RUNS} command lines each)`, () => {
  it('bullpen <anything>: unknown commands, help, no command', async () => {
    const words = fc.array(fc.oneof(value(['help', 'migrate', 'backfill', 'universe', 'rs', 'status', 'list', '--help']), stray), { maxLength: 4 });
    await fuzz('<anything>', words.filter((args) => !args.includes('start') && !args.includes('demo')));
  }, FUZZ_TIMEOUT_MS);

  it('migrate', async () => {
    await fuzz('migrate', commandLine(['migrate'], {}));
  }, FUZZ_TIMEOUT_MS);

  it('start (always refused before it starts)', async () => {
    const roles = ['all', 'worker', 'scheduler', 'web'];
    const refused = fc.oneof(refusedPiece('--role', (v) => roles.includes(v)), refusedPiece('--queues', validQueues));
    const line = fc.tuple(commandLine(['start'], { '--role': roles, '--queues': ['etl', 'etl,rollups', 'enrichment'] }), refused);
    await fuzz('start', line.map(([args, refused]) => [...args, ...refused]));
  }, FUZZ_TIMEOUT_MS);

  it('run <job> [--data] [--wait] [--force]', async () => {
    await fuzz(
      'run',
      commandLine(['run'], { '--data': [], '--wait': 'flag', '--force': 'flag' }, value(JOB_NAMES).map((job) => [job]))
        .chain((args) => dataArg.map((data) => (args.includes('--data') ? args : [...args, '--data', data])))
        .filter((args) => {
          // Shuffled, the job may stand anywhere: judged by any argument naming it.
          if (args.includes('enrichment-daily') && hasValidDailyPayload(args)) return false;
          return !(args.some((a) => SLOW_WAITS.has(a)) && args.some((a) => a === '--wait' || a.startsWith('--wait=')));
        }),
    );
  }, FUZZ_TIMEOUT_MS);

  it('demo (always refused before it seeds)', async () => {
    await fuzz('demo', fc.tuple(commandLine(['demo'], { '--days': ['1', '60', '1000'] }), refusedPiece('--days', validDays)).map(([args, refused]) => [...args, ...refused]));
  }, FUZZ_TIMEOUT_MS);

  it('schedules [--next N] [--json]', async () => {
    // --next 1000 is valid but walks 6,000 cron ticks (a second or more): 100 stands for the large ones.
    await fuzz('schedules', commandLine(['schedules'], { '--next': ['1', '5', '100', '1001', '0'], '--json': 'flag' }));
  }, FUZZ_TIMEOUT_MS);

  it('backfill --symbols … --from … (request)', async () => {
    await fuzz(
      'backfill',
      commandLine(['backfill'], {
        '--symbols': SYMBOLS,
        '--all': 'flag',
        '--from': DATES,
        '--to': DATES,
        '--timeframes': TIMEFRAMES,
        '--source': ['synthetic', 'csv', 'polygon', 'yahoo'],
        '--reprocess': ['missing', 'failed', 'all', 'none'],
        '--asset-class': ['stock', 'etf', 'crypto', 'bond'],
        '--wait': 'flag',
      }),
    );
  }, FUZZ_TIMEOUT_MS);

  it('backfill status [id] [--json] [--status] [--limit]', async () => {
    await fuzz(
      'backfill status',
      commandLine(['backfill', 'status'], { '--json': 'flag', '--status': ['queued', 'completed', 'cancelled', 'done'], '--limit': ['1', '20', '500', '501'] }, fc.option(idArg(), { nil: undefined }).map((id) => (id === undefined ? [] : [id]))),
    );
  }, FUZZ_TIMEOUT_MS);

  it('backfill resume <id> [--wait]', async () => {
    await fuzz('backfill resume', commandLine(['backfill', 'resume'], { '--wait': 'flag' }, idArg().map((id) => [id])));
  }, FUZZ_TIMEOUT_MS);

  it('backfill cancel <id>', async () => {
    await fuzz('backfill cancel', commandLine(['backfill', 'cancel'], {}, idArg().map((id) => [id])));
  }, FUZZ_TIMEOUT_MS);

  it('rs [--top] [--sector] [--leaders] [--date] [--json]', async () => {
    await fuzz('rs', commandLine(['rs'], { '--top': ['1', '20', '5000', '5001'], '--sector': SECTORS, '--leaders': 'flag', '--date': [RS_DATE, '2025-11-19', ...DATES], '--json': 'flag' }));
  }, FUZZ_TIMEOUT_MS);

  it('report --date', async () => {
    // Mostly dates that fail: a valid one generates that date's report here (a second or so).
    const date = fc.oneof({ weight: 1, arbitrary: fc.constantFrom('2024-03-01', '9999-12-31', '1970-01-01') }, { weight: 12, arbitrary: hostileString().map(noNul) });
    await fuzz('report', fc.tuple(commandLine(['report'], {}), fc.option(date, { nil: undefined }), fc.boolean()).map(([args, d, eq]) => (d === undefined ? args : [...args, ...(eq ? [`--date=${d}`] : ['--date', d])])));
  }, FUZZ_TIMEOUT_MS);

  it('universe list [--sector] [--json]', async () => {
    await fuzz('universe list', commandLine(['universe', 'list'], { '--sector': SECTORS, '--json': 'flag' }));
  }, FUZZ_TIMEOUT_MS);

  it('universe add <symbol> [--sector] [--industry] [--etf|--no-etf] [--asset-class]', async () => {
    await fuzz(
      'universe add',
      commandLine(['universe', 'add'], { '--sector': SECTORS, '--industry': ['Semiconductors', 'x'.repeat(101)], '--etf': ['XLK', 'xlk', 'SPY'], '--no-etf': 'flag', '--asset-class': ['stock', 'etf', 'crypto', 'bond'] }, value(['NEWCO', 'ZZTOP', 'AAPL']).map((s) => [s])),
    );
  }, FUZZ_TIMEOUT_MS);

  it('universe remove <symbol>', async () => {
    // Removals of the symbols the other cases lean on would change what they reach: fuzzed names, and ones the add cases create.
    await fuzz('universe remove', commandLine(['universe', 'remove'], {}, value(['NEWCO', 'ZZTOP', 'NOPE']).map((s) => [s])));
  }, FUZZ_TIMEOUT_MS);
});

describe('what the fuzzing found, pinned', () => {
  // run build-rollups --data '{"date":"9999-12-31"}' stretched dim_date over every year to 9999
  // (millions of rows, minutes of CPU); a future date is now refused as bad input.
  it('run build-rollups --wait for 9999-12-31 fails at once, naming the date', async () => {
    await cli(['run', 'build-rollups', '--wait', '--force', '--data', '{"date":"2024-03-01"}']);
    const result = await cli(['run', 'build-rollups', '--wait', '--force', '--data', '{"date":"9999-12-31"}']);
    expect(problemOf(result)).toBeUndefined();
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('date 9999-12-31 is after today');
    expect(result.ms).toBeLessThan(10_000);
  });

  // The same through a payload's scheduledFor (the tick a run stands for), which build-rollups and
  // maintain-partitions take as today: refused on the command line.
  it.each(['maintain-partitions', 'build-rollups'])('run %s with a future scheduledFor is refused by --data', async (job) => {
    const result = await cli(['run', job, '--wait', '--data', '{"scheduledFor":"9999-12-31T23:59:59Z"}']);
    expect(problemOf(result)).toBeUndefined();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('--data: scheduledFor 9999-12-31T23:59:59Z is in the future');
  });

  // backfill --all refused at once (range too large) closed the queues before BullMQ's start-up
  // INFO was written: "[ioredis] Unhandled error event: Error: write EPIPE" and a stack on stderr.
  it('a command refused right after connecting prints its message and nothing else', async () => {
    for (let i = 0; i < 20; i++) {
      const result = await cli(['backfill', '--all']);
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toMatch(/^bullpen: range too large: [^\n]+$/);
    }
  });
});
