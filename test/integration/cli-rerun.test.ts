/**
 * `bullpen run <job> --data … [--wait]` runs a partition that ops.job_runs says is not done, even
 * while a *completed* BullMQ job is kept under the partition's deterministic id (removeOnComplete
 * keeps them 7 days): that old job's outcome is not the answer.
 *
 * README "Commands": a run not made because another job holds its partition exits 1, so the user
 * tries again later; the next try runs it once it is free, instead of repeating the old skip (or
 * an old success of a partition whose later forced re-run failed).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { runCli } from '../../src/cli.ts';
import { loadRun } from '../../src/runs.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let rt: TestRuntime;
const savedEnv = { ...process.env };

beforeAll(async () => {
  rt = await createTestRuntime('clirerun', JOBS);
  Object.assign(process.env, rt.env, { LOG_LEVEL: 'error' });
});

afterAll(async () => {
  process.env = savedEnv;
  await rt?.close();
});

async function bullpen(args: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  });
  try {
    const code = await runCli(args);
    return { code, stdout };
  } finally {
    spy.mockRestore();
  }
}

describe('bullpen run: a partition that is not done is run, not answered from an old completed BullMQ job', () => {
  it('run --wait after a "running elsewhere" skip runs the partition once the other run has gone', async () => {
    const date = '2026-11-17';
    // Another run (another BullMQ job id, live heartbeat) holds the partition.
    await rt.db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, started_at, heartbeat_at, worker)
      values ('nightly-report', ${date}, 'reports', 'someone-else', 'running', 1, 1, now(), now(), 'elsewhere')`;
    const first = await bullpen(['run', 'nightly-report', '--data', JSON.stringify({ date }), '--wait']);
    expect(first.code).toBe(1); // README: held by another job → exit 1, try again later
    expect(first.stdout).toContain('running elsewhere');

    // The other run failed; the partition is free and not done.
    await rt.db.sql`update ops.job_runs set status = 'failed', error = 'boom', finished_at = now(), heartbeat_at = null where job = 'nightly-report' and partition = ${date}`;

    const second = await bullpen(['run', 'nightly-report', '--data', JSON.stringify({ date }), '--wait']);
    expect(second.stdout).not.toContain('already queued');
    expect(second.code).toBe(0);
    expect(await loadRun(rt.db.sql, 'nightly-report', date)).toMatchObject({ status: 'succeeded' });
  });

  it('run --wait on a partition whose forced re-run failed runs it, instead of printing the old success and exiting 0', async () => {
    const date = '2026-11-18';
    const ok = await bullpen(['run', 'nightly-report', '--data', JSON.stringify({ date }), '--wait']);
    expect(ok.code).toBe(0);
    // A later forced re-run failed: the partition is failed in ops.job_runs (the record of what was done).
    await rt.db.sql`update ops.job_runs set status = 'failed', error = 'forced re-run failed', job_id = 'nightly-report@2026-11-18@force-1' where job = 'nightly-report' and partition = ${date}`;

    const again = await bullpen(['run', 'nightly-report', '--data', JSON.stringify({ date }), '--wait']);
    expect(again.stdout).not.toContain('already queued');
    expect(await loadRun(rt.db.sql, 'nightly-report', date)).toMatchObject({ status: 'succeeded' });
  });
});
