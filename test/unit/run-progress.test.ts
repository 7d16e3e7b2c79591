/**
 * What `run --wait` prints while a run goes on (src/run-progress.ts): the line, and when plain
 * lines are printed, driven by a fake clock and BullMQ-shaped events.
 */
import { EventEmitter } from 'node:events';
import type { Job, QueueEvents } from 'bullmq';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { describeProgress, formatDuration, renderRunProgress, watchRunProgress } from '../../src/run-progress.ts';

describe('the progress line', () => {
  it('draws a percentage as a bar and counts with their names', () => {
    expect(describeProgress(45)).toBe('[#########-----------] 45%');
    expect(describeProgress(140)).toBe('[####################] 100%');
    expect(describeProgress({ batches: 12, extracted: 12000, loaded: 11990, rejected: 10 })).toBe('batches 12, extracted 12,000, loaded 11,990, rejected 10');
    expect(describeProgress(undefined)).toBe('');
    expect(describeProgress({ nested: { a: 1 }, list: [1] })).toBe('');
  });

  it('says the state and how long', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(185)).toBe('3m 05s');
    expect(formatDuration(3_720)).toBe('1h 02m');
    expect(renderRunProgress('x', 'running', 999, undefined)).toBe('x: running 0s');
    expect(renderRunProgress('trade-etl 2026-11-21T225112Z', 'running', 12_000, { batches: 2 })).toBe('trade-etl 2026-11-21T225112Z: running 12s · batches 2');
    expect(renderRunProgress('build-rollups full', 'waiting', 3_000, undefined)).toBe('build-rollups full: waiting 3s');
  });
});

describe('plain lines while a run goes on', () => {
  let clock = 0;
  beforeEach(() => {
    vi.useFakeTimers();
    clock = 1_000_000;
  });
  afterEach(() => vi.useRealTimers());

  const advance = (ms: number) => {
    for (let t = 0; t < ms; t += 1000) {
      clock += 1000;
      vi.advanceTimersByTime(1000);
    }
  };

  it('prints what changed every few seconds, and the elapsed time now and then when nothing does', async () => {
    const events = new EventEmitter();
    const job = { id: 'trade-etl@x', progress: 0, processedOn: undefined, getState: async () => 'waiting' } as unknown as Job;
    const lines: string[] = [];
    const watch = await watchRunProgress(events as unknown as QueueEvents, job, 'trade-etl x', { tty: false, out: (l) => lines.push(l), now: () => clock });
    advance(1000);
    expect(lines).toEqual(['trade-etl x: waiting 1s']);
    events.emit('active', { jobId: 'trade-etl@x' });
    events.emit('progress', { jobId: 'other', data: 99 });
    events.emit('progress', { jobId: 'trade-etl@x', data: { batches: 1, loaded: 5000 } });
    advance(1000);
    expect(lines).toHaveLength(1); // changed, but not 3 s since the last line
    advance(2000);
    expect(lines.at(-1)).toBe('trade-etl x: running 3s · batches 1, loaded 5,000');
    advance(10_000); // nothing new
    expect(lines).toHaveLength(2);
    advance(20_000);
    expect(lines.at(-1)).toBe('trade-etl x: running 33s · batches 1, loaded 5,000');
    watch.stop();
    advance(60_000);
    expect(lines).toHaveLength(3);
    expect(events.listenerCount('progress') + events.listenerCount('active')).toBe(0);
  });
});
