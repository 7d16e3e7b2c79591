import { describe, expect, it } from 'vitest';
import { createRefreshingCache } from '../../src/cache.ts';

/** A load whose answers the test hands out one at a time, counting the loads begun. */
function controlledLoad() {
  const pending: { resolve: (value: string) => void; reject: (error: Error) => void }[] = [];
  const load = () =>
    new Promise<string>((resolve, reject) => {
      pending.push({ resolve, reject });
    });
  return {
    load,
    started: () => pending.length,
    resolve: (i: number, value: string) => pending[i]!.resolve(value),
    reject: (i: number, message: string) => pending[i]!.reject(new Error(message)),
  };
}

/** A cache (fresh 1 s, stale up to 5 s) whose first load answered `value` at time 0. */
async function primedCache(value: string) {
  const clock = { now: 0 };
  const source = controlledLoad();
  const get = createRefreshingCache({ freshMs: 1000, maxStaleMs: 5000, clock: () => clock.now }, source.load);
  const first = get();
  source.resolve(0, value);
  await first;
  return { get, source, clock };
}

/** Lets settled promises' callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('refreshing cache', () => {
  it('serves a fresh answer without loading, a stale one at once while a single load replaces it', async () => {
    let now = 0;
    const source = controlledLoad();
    const get = createRefreshingCache({ freshMs: 1000, maxStaleMs: 60_000, clock: () => now }, source.load);

    const first = get();
    const second = get();
    expect(source.started()).toBe(1); // callers before any answer share one load
    source.resolve(0, 'a');
    expect(await first).toBe('a');
    expect(await second).toBe('a');

    now = 999;
    expect(await get()).toBe('a');
    expect(source.started()).toBe(1);

    now = 1000;
    expect(await get()).toBe('a'); // stale, answered at once…
    expect(await get()).toBe('a');
    expect(source.started()).toBe(2); // …while one load runs
    source.resolve(1, 'b');
    await settle();
    expect(await get()).toBe('b');
    expect(source.started()).toBe(2);
  });

  it('makes callers wait for the load once the answer is older than maxStaleMs', async () => {
    const { get, source, clock } = await primedCache('a');

    clock.now = 5000;
    let answered: string | undefined;
    const waiting = get().then((value) => (answered = value));
    await settle();
    expect(answered).toBeUndefined();
    source.resolve(1, 'b');
    await waiting;
    expect(answered).toBe('b');
  });

  it('keeps serving the last answer when a background load fails, then reports the failure to a caller that must wait', async () => {
    const { get, source, clock } = await primedCache('a');

    clock.now = 2000;
    expect(await get()).toBe('a');
    source.reject(1, 'PostgreSQL is down');
    await settle();
    clock.now = 3000;
    expect(await get()).toBe('a'); // a new background load
    expect(source.started()).toBe(3);
    source.reject(2, 'PostgreSQL is down');
    await settle();

    clock.now = 6000;
    const late = get();
    source.reject(3, 'PostgreSQL is still down');
    await expect(late).rejects.toThrow('PostgreSQL is still down');
    const again = get(); // a failure is not kept: the next caller loads again
    expect(source.started()).toBe(5);
    source.resolve(4, 'c');
    expect(await again).toBe('c');
  });

  it('ages an answer from when its load began', async () => {
    let now = 0;
    const source = controlledLoad();
    const get = createRefreshingCache({ freshMs: 1000, maxStaleMs: 60_000, clock: () => now }, source.load);
    const first = get();
    now = 800; // the load took 800 ms
    source.resolve(0, 'a');
    await first;
    now = 1000;
    await get();
    expect(source.started()).toBe(2);
  });
});
