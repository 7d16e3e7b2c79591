/**
 * Shared helpers for the benchmarks (DESIGN.md "Benchmarks"): timing, medians, peak RSS,
 * number formatting, the final line, and throwaway PostgreSQL databases and Redis prefixes
 * that are removed again when a benchmark ends.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import postgres from 'postgres';
import type { Sql } from '../src/db.ts';
import type { Redis } from '../src/redis.ts';

/** Server used to CREATE/DROP the bench database. @defaultValue postgres://postgres@127.0.0.1:5432/test (BENCH_DATABASE_URL) */
export const BENCH_ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Redis the benchmarks use. @defaultValue REDIS_URL, else redis://127.0.0.1:6379 */
export const BENCH_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Eight random hex characters, for database names and Redis prefixes. */
export function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}

/** A whole number from the environment, or `fallback` when unset or not a positive integer. */
export function envInt(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

/** Milliseconds since `start` (a `process.hrtime.bigint()` reading). */
export function elapsedMs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Runs `fn` and returns its result with the wall time it took in milliseconds. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const start = process.hrtime.bigint();
  const result = await fn();
  return { result, ms: elapsedMs(start) };
}

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Calls `fn(run)` `runs` times in sequence and returns every result. */
export async function repeat<T>(runs: number, fn: (run: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let run = 0; run < runs; run++) results.push(await fn(run));
  return results;
}

/** Peak resident set size of this process so far, in MB (maxRSS is reported in KiB). */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** 16234.7 → "16,235". */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** 16234.7 → "16,235/s". */
export function formatRate(perSecond: number): string {
  return `${formatCount(perSecond)}/s`;
}

/** ours / floor with two decimals (throughput ratio: higher is better). */
export function formatRatio(ours: number, floor: number): string {
  return floor > 0 ? (ours / floor).toFixed(2) : 'n/a';
}

/** Left-aligned columns separated by two spaces. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('   ')).join('\n');
}

/**
 * `host: 2 CPUs, load average 0.4 → 2.1`: other work on the machine skews both sides of a
 * ratio, and the floor most (it is CPU bound); a load near or above the CPU count means re-run.
 */
export function formatHostLoad(loadAtStart: number): string {
  return `host: ${os.availableParallelism()} CPUs, 1-min load average ${loadAtStart.toFixed(1)} at start → ${(os.loadavg()[0] ?? 0).toFixed(1)} at end`;
}

/** The 1-minute load average now. */
export function loadAverage(): number {
  return os.loadavg()[0] ?? 0;
}

/** `peak RSS: 180 MB` */
export function formatPeakRss(): string {
  return `peak RSS: ${Math.round(peakRssMb())} MB`;
}

/**
 * The line every benchmark ends with (DESIGN.md): `<name>: ours <N> <unit>/s, floor <M> <unit>/s, ratio <r>`.
 */
export function finalLine(name: string, unit: string, ours: number, floor: number): string {
  return `${name}: ours ${Math.round(ours)} ${unit}/s, floor ${Math.round(floor)} ${unit}/s, ratio ${formatRatio(ours, floor)}`;
}

// ---------------------------------------------------------------------------------------------
// Throwaway resources

type Cleanup = () => Promise<void>;
const cleanups: Cleanup[] = [];
let interrupted = false;

/** Registers `fn` to run (last registered first) by `runCleanups`, also on Ctrl-C. */
export function onCleanup(fn: Cleanup): void {
  cleanups.push(fn);
}

/** Runs and forgets every registered cleanup; a failing one is reported and the rest still run. */
export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop() as Cleanup;
    try {
      await fn();
    } catch (error) {
      console.error(`bench: cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

/** On SIGINT/SIGTERM: remove the bench database and Redis keys before exiting. */
export function installSignalCleanup(): void {
  const handler = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`bench: ${signal}: cleaning up`);
    void runCleanups().finally(() => process.exit(130));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function adminSql(url: string): Sql {
  return postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10, connection: { application_name: 'bullpen-bench-admin' } });
}

/** Creates database `bullpen_bench_<random>` on the admin server; `drop` is registered as a cleanup. */
export async function createBenchDatabase(adminUrl: string = BENCH_ADMIN_URL): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `bullpen_bench_${randomSuffix()}`;
  const admin = adminSql(adminUrl);
  try {
    await admin.unsafe(`CREATE DATABASE ${quoteIdent(name)}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    const a = adminSql(adminUrl);
    try {
      await a.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    } finally {
      await a.end({ timeout: 5 });
    }
  };
  onCleanup(drop);
  return { name, url: url.toString(), drop };
}

/** Deletes every key `<prefix>:*` with SCAN + UNLINK; returns how many. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}:*`;
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}
