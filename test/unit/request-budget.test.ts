import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { requestBudgetOf } from '../../src/enrichment/providers/index.ts';
import { firstFit, releasePlace, takeRequest, type BudgetState, type RequestBudget } from '../../src/enrichment/request-budget.ts';
import { MAX_WAIT_STEP_MS, waitDelayMs } from '../../src/enrichment/series-step.ts';
import { isGated } from '../../src/enrichment/source-gate.ts';

const EMPTY: BudgetState = { grants: [], places: {}, pausedUntil: null };
const T0 = 1_800_000_000_000;

/** Most grants of `instants` in any window of `durationMs` (ending at one of them). */
function busiestWindow(instants: readonly number[], durationMs: number): number {
  const sorted = [...instants].sort((a, b) => a - b);
  return Math.max(0, ...sorted.map((end) => sorted.filter((at) => at > end - durationMs && at <= end).length));
}

describe('takeRequest', () => {
  const budget: RequestBudget = { max: 2, durationMs: 60_000 };

  it('grants while the window has room, then gives each taker refused a place of its own, in the order they asked', () => {
    let state = EMPTY;
    const waits: number[] = [];
    for (const [i, taker] of ['a', 'b', 'c', 'd', 'e', 'f'].entries()) {
      const taken = takeRequest(state, T0 + i, budget, taker);
      waits.push(taken.waitMs);
      state = taken.state;
    }
    expect(waits).toEqual([0, 0, 59_998, 59_998, 119_996, 119_996]);
    expect(state.places).toEqual({ c: T0 + 60_000, d: T0 + 60_001, e: T0 + 120_000, f: T0 + 120_001 });
    expect(busiestWindow(state.grants, budget.durationMs)).toBe(budget.max);
  });

  it('keeps the place of a taker asking again before it comes, and grants it once it has, at the instant it is made', () => {
    let state = takeRequest(takeRequest(takeRequest(EMPTY, T0, budget, 'a').state, T0, budget, 'b').state, T0, budget, 'c').state;
    const early = takeRequest(state, T0 + 20_000, budget, 'c');
    expect(early.waitMs).toBe(40_000);
    expect(early.state).toBe(state);
    // Woken 300 ms late: the request is made now, and later places are measured from now.
    const due = takeRequest(state, T0 + 60_300, budget, 'c');
    expect(due.waitMs).toBe(0);
    expect(due.state.places).toEqual({});
    expect(due.state.grants).toEqual([T0 + 60_300]);
    state = due.state;
    expect(takeRequest(state, T0 + 60_400, budget, 'd').waitMs).toBe(0);
    expect(takeRequest(takeRequest(state, T0 + 60_400, budget, 'd').state, T0 + 60_500, budget, 'e').waitMs).toBe(59_800);
  });

  it('gives another taker nothing of a place held: it waits behind it', () => {
    const state = takeRequest(takeRequest(takeRequest(EMPTY, T0, budget, 'a').state, T0, budget, 'b').state, T0, budget, 'c').state;
    // At c's instant, b's grant has left too, so one more fits beside c's.
    expect(takeRequest(state, T0 + 60_000, budget, 'd').waitMs).toBe(0);
    const full = takeRequest(takeRequest(state, T0 + 60_000, budget, 'd').state, T0 + 60_000, budget, 'e');
    expect(full.waitMs).toBe(60_000);
  });

  it('voids a place its taker never came for once its instant has left the window', () => {
    const state = takeRequest(takeRequest(takeRequest(EMPTY, T0, budget, 'a').state, T0, budget, 'b').state, T0, budget, 'c').state;
    const later = takeRequest(state, T0 + 200_000, budget, 'x');
    expect(later.waitMs).toBe(0);
    expect(later.state.places).toEqual({});
    expect(later.state.grants).toEqual([T0 + 200_000]);
  });

  it('fills the gap a released place leaves', () => {
    let state = EMPTY;
    for (const taker of ['a', 'b', 'c', 'd', 'e']) state = takeRequest(state, T0, budget, taker).state;
    expect(state.places).toEqual({ c: T0 + 60_000, d: T0 + 60_000, e: T0 + 120_000 });
    state = releasePlace(state, 'c');
    expect(releasePlace(state, 'nobody')).toBe(state);
    expect(takeRequest(state, T0 + 1, budget, 'f')).toMatchObject({ waitMs: 59_999 });
  });

  it('holds every taker while the provider is paused; with a budget, places start at the pause end', () => {
    const paused: BudgetState = { ...EMPTY, pausedUntil: T0 + 5_000 };
    expect(takeRequest(paused, T0, null, 'a').waitMs).toBe(5_000);
    expect(takeRequest(paused, T0 + 5_000, null, 'a').waitMs).toBe(0);
    let state = paused;
    const waits: number[] = [];
    for (const taker of ['a', 'b', 'c']) {
      const taken = takeRequest(state, T0, budget, taker);
      waits.push(taken.waitMs);
      state = taken.state;
    }
    expect(waits).toEqual([5_000, 5_000, 65_000]);
  });

  it('moves a place that a later pause covers to after the pause', () => {
    let state = EMPTY;
    for (const taker of ['a', 'b', 'c']) state = takeRequest(state, T0, budget, taker).state;
    expect(state.places).toEqual({ c: T0 + 60_000 });
    state = { ...state, pausedUntil: T0 + 90_000 };
    const moved = takeRequest(state, T0 + 60_000, budget, 'c');
    expect(moved.waitMs).toBe(30_000);
    expect(moved.state.places).toEqual({ c: T0 + 90_000 });
  });

  it('without a budget, grants at once and stores nothing', () => {
    expect(takeRequest(EMPTY, T0, null, 'a')).toEqual({ waitMs: 0, state: EMPTY });
  });

  it('a herd of series waiting on one budget: each asks twice at most, and no window ever holds more than the budget', () => {
    const herdBudget: RequestBudget = { max: 3, durationMs: 10_000 };
    let state = EMPTY;
    const asks = new Map<string, number>();
    const made: number[] = [];
    // Every series asks at once, then again exactly when told.
    const pending = Array.from({ length: 20 }, (_, i) => ({ taker: `s${i}`, at: T0 + i }));
    while (pending.length > 0) {
      pending.sort((x, y) => x.at - y.at);
      const { taker, at } = pending.shift()!;
      asks.set(taker, (asks.get(taker) ?? 0) + 1);
      const taken = takeRequest(state, at, herdBudget, taker);
      state = taken.state;
      if (taken.waitMs === 0) made.push(at);
      else pending.push({ taker, at: at + taken.waitMs });
    }
    expect(made).toHaveLength(20);
    expect(Math.max(...asks.values())).toBe(2);
    expect(busiestWindow(made, herdBudget.durationMs)).toBe(herdBudget.max);
    // Seven windows for twenty requests at three a window: no slot left idle.
    expect(Math.max(...made) - T0).toBeLessThan(7 * herdBudget.durationMs);
  });
});

describe('firstFit', () => {
  it('is the earliest instant a grant fits, checking the windows after it too', () => {
    const budget = { max: 2, durationMs: 100 };
    expect(firstFit([], 5, budget)).toBe(5);
    expect(firstFit([0, 50], 60, budget)).toBe(100);
    // 130 fits the window ending there, but not the one ending at 180 (150, 180 and it).
    expect(firstFit([0, 150, 180], 120, budget)).toBe(250);
  });
});

describe('waitDelayMs', () => {
  it('puts a series off until its place, asking again at least every MAX_WAIT_STEP_MS, with a little spread', () => {
    expect(waitDelayMs(5_000, () => 0)).toBe(5_000);
    expect(waitDelayMs(5_000, () => 0.999)).toBe(5_249);
    expect(waitDelayMs(100, () => 0.999)).toBe(199);
    expect(waitDelayMs(10 * MAX_WAIT_STEP_MS, () => 0)).toBe(MAX_WAIT_STEP_MS);
  });
});

describe('per-source budgets', () => {
  it('ENRICHMENT_RATE_MAX is the default source’s budget only: where polygon is the default, the other sources have none', () => {
    const config = loadConfig({ MARKET_DATA_SOURCE: 'polygon', POLYGON_API_KEY: 'k' });
    expect(requestBudgetOf(config, 'polygon')).toEqual({ max: 5, durationMs: 60_000 });
    expect(requestBudgetOf(config, 'synthetic')).toBeNull();
    expect(requestBudgetOf(config, 'csv')).toBeNull();
    expect(requestBudgetOf(loadConfig({ MARKET_DATA_SOURCE: 'polygon', POLYGON_API_KEY: 'k', ENRICHMENT_RATE_MAX: '20', ENRICHMENT_RATE_WINDOW_MS: '1000' }), 'polygon')).toEqual({ max: 20, durationMs: 1000 });
    expect(requestBudgetOf(loadConfig({ MARKET_DATA_SOURCE: 'polygon', POLYGON_API_KEY: 'k', ENRICHMENT_RATE_MAX: '0' }), 'polygon')).toBeNull();
  });

  it('elsewhere polygon has POLYGON_RATE_MAX, and ENRICHMENT_RATE_MAX meters the default source', () => {
    const config = loadConfig({ MARKET_DATA_SOURCE: 'csv', MARKET_DATA_CSV_DIR: '/data', ENRICHMENT_RATE_MAX: '10', POLYGON_RATE_MAX: '100' });
    expect(requestBudgetOf(config, 'csv')).toEqual({ max: 10, durationMs: 60_000 });
    expect(requestBudgetOf(config, 'polygon')).toEqual({ max: 100, durationMs: 60_000 });
    expect(requestBudgetOf(config, 'synthetic')).toBeNull();
  });

  it('gates polygon even without a budget (its 429 pauses must hold its series), and a local source only with one', () => {
    const unmetered = loadConfig({ MARKET_DATA_SOURCE: 'polygon', POLYGON_API_KEY: 'k', ENRICHMENT_RATE_MAX: '0' });
    expect(isGated(unmetered, 'polygon')).toBe(true);
    expect(isGated(unmetered, 'synthetic')).toBe(false);
    expect(isGated(loadConfig({ ENRICHMENT_RATE_MAX: '3' }), 'synthetic')).toBe(true);
  });
});
