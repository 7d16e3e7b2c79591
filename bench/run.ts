/**
 * `npm run bench -- <name>…`: runs the named benchmarks (DESIGN.md "Benchmarks"), or every
 * one that exists when no name is given. A benchmark is `bench/<name>.ts` exporting
 * `run(): Promise<void>`. Benchmarks print; this never exits non-zero over a slow figure,
 * nor over an unknown or not-yet-built name.
 */
import { existsSync } from 'node:fs';
import { installSignalCleanup } from './lib.ts';

const BENCHMARKS = ['framework', 'etl', 'rollups', 'enrichment', 'rs'] as const;
type BenchName = (typeof BENCHMARKS)[number];

interface BenchModule {
  run(): Promise<void>;
}

function isBenchName(name: string): name is BenchName {
  return (BENCHMARKS as readonly string[]).includes(name);
}

function moduleUrl(name: BenchName): URL {
  return new URL(`./${name}.ts`, import.meta.url);
}

function isBuilt(name: BenchName): boolean {
  return existsSync(moduleUrl(name));
}

async function runOne(name: BenchName): Promise<boolean> {
  const mod = (await import(moduleUrl(name).href)) as Partial<BenchModule>;
  if (typeof mod.run !== 'function') {
    console.log(`bench: ${name}: bench/${name}.ts exports no run(); skipped`);
    return true;
  }
  try {
    await mod.run();
    return true;
  } catch (error) {
    console.error(`bench: ${name} could not run: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return false;
  }
}

async function main(argv: string[]): Promise<number> {
  installSignalCleanup();
  const requested = argv.filter((arg) => arg.trim() !== '');
  const available = BENCHMARKS.filter(isBuilt);
  const names: BenchName[] = [];
  if (requested.length === 0) {
    names.push(...available);
    const missing = BENCHMARKS.filter((name) => !isBuilt(name));
    if (missing.length > 0) console.log(`bench: not built yet, skipped: ${missing.join(', ')}`);
  } else {
    for (const name of requested) {
      if (!isBenchName(name)) {
        console.log(`bench: unknown benchmark "${name}"; known: ${BENCHMARKS.join(', ')} (built: ${available.join(', ') || 'none'})`);
      } else if (!isBuilt(name)) {
        console.log(`bench: ${name} is not built yet (no bench/${name}.ts); built: ${available.join(', ') || 'none'}`);
      } else {
        names.push(name);
      }
    }
  }
  let ok = true;
  for (const [index, name] of names.entries()) {
    if (index > 0) console.log('');
    ok = (await runOne(name)) && ok;
  }
  // A benchmark that could not run at all (no PostgreSQL, no Redis) is an error; a slow one is not.
  return ok ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
