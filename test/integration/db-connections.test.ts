/**
 * A PostgreSQL connection ended while postgres.js sets it up (a restart catching a new
 * connection) must not end a bullpen process: postgres.js leaves that rejection unhandled
 * (porsager/postgres#1192), and src/process-guards.ts logs it instead. Each case runs in a
 * child process, since the test runner reports unhandled rejections itself.
 */
import { describe, expect, it } from 'vitest';
import { adminUrl } from '../helpers/db.ts';
import { spawnNode } from '../helpers/processes.ts';

async function run(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawnNode('test/fixtures/type-fetch-drop.ts', [], { DATABASE_URL: adminUrl, ...env });
  const { code } = await child.exited;
  return { code, output: child.output() };
}

describe('a connection lost while postgres.js fetches its array types', () => {
  it('ends an unguarded process (the defect the guard is for; when this fails, postgres.js has fixed it)', async () => {
    const { code, output } = await run({});
    expect(code, output).not.toBe(0);
    expect(output).toContain('terminating connection due to administrator command');
  });

  it('with the guard: logged as a warning, the process lives on and its next queries succeed', async () => {
    const { code, output } = await run({ GUARD: '1' });
    expect(code, output).toBe(0);
    expect(output).toMatch(/"level":40.*lost while it was being set up/);
    expect(output).toContain('query 2: 2');
    expect(output).toContain('query 3: 3');
  });

  it('with the guard: any other unhandled rejection is logged and still ends the process', async () => {
    const { code, output } = await run({ GUARD: '1', OTHER: '1' });
    expect(code, output).not.toBe(0);
    expect(output).toMatch(/"level":60.*unhandled promise rejection/);
    expect(output).toContain('some other rejection nobody handled');
  });
});
