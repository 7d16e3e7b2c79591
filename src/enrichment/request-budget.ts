/**
 * A provider's request budget as a sliding window with places in line: pure, no I/O. The state
 * lives in PostgreSQL (enrichment.provider_budget, src/queries/enrichment.ts), where every worker
 * process shares it under a row lock; "now" is PostgreSQL's clock, passed in.
 *
 * A taker the budget cannot serve now is given a place: the earliest instant at which its request
 * fits the window, counted as a grant from then on. It waits until then and its request is
 * granted, without asking anyone else. Series waiting for the same freed request would otherwise
 * all wake when it frees, one would get it and the rest would queue again, every time.
 */

/** At most `max` requests in any `durationMs`. */
export interface RequestBudget {
  readonly max: number;
  readonly durationMs: number;
}

export interface BudgetState {
  /** Instants (ms) of the grants counted, ascending: requests made within the window, and places given. */
  readonly grants: readonly number[];
  /** Takers waiting for their place: taker → the instant of its grant (one of `grants`). */
  readonly places: Readonly<Record<string, number>>;
  /** Until when the provider refuses every request (the Retry-After of its last 429), or null. */
  readonly pausedUntil: number | null;
}

export interface Taken {
  /** 0: granted now; else how long the taker waits for its place (or for the pause, with no budget). */
  readonly waitMs: number;
  /** The state to store; the same object when nothing changed. */
  readonly state: BudgetState;
}

/** Index of the first of `sorted` greater than `value`. */
function upperBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Grants in the window ending at `end`: (end − durationMs, end]. */
function countInWindow(grants: readonly number[], end: number, durationMs: number): number {
  return upperBound(grants, end) - upperBound(grants, end - durationMs);
}

/**
 * Whether one more grant at `at` keeps every window at `max` or fewer. Only windows ending from
 * `at` to `at` + durationMs hold it, and their counts only rise at a grant, so those ending at
 * `at` and at each grant after it within durationMs are the ones to check.
 */
function fits(grants: readonly number[], at: number, budget: RequestBudget): boolean {
  if (countInWindow(grants, at, budget.durationMs) >= budget.max) return false;
  for (let i = upperBound(grants, at); i < grants.length && (grants[i] as number) < at + budget.durationMs; i++) {
    if (countInWindow(grants, grants[i] as number, budget.durationMs) >= budget.max) return false;
  }
  return true;
}

/**
 * The earliest instant from `from` on at which one more grant fits. A window's count only drops
 * when a grant leaves it, at that grant + durationMs, so those instants are the candidates; the
 * gaps a released place leaves are filled. Candidates are whole milliseconds, so a place read
 * back from a timestamptz equals the one given.
 */
export function firstFit(grants: readonly number[], from: number, budget: RequestBudget): number {
  if (fits(grants, from, budget)) return from;
  for (const grant of grants) {
    const at = Math.ceil(grant + budget.durationMs);
    if (at > from && fits(grants, at, budget)) return at;
  }
  // Unreachable: once the last grant has left the window, nothing is counted.
  return Math.ceil(Math.max(from, (grants[grants.length - 1] ?? from) + budget.durationMs));
}

function insertSorted(sorted: readonly number[], value: number): number[] {
  const at = upperBound(sorted, value);
  return [...sorted.slice(0, at), value, ...sorted.slice(at)];
}

function removeOne(sorted: readonly number[], value: number): number[] {
  // Within half a millisecond: a place is a whole millisecond, its grant read back from a timestamptz.
  const at = sorted.findIndex((grant) => Math.abs(grant - value) < 0.5);
  return at < 0 ? [...sorted] : [...sorted.slice(0, at), ...sorted.slice(at + 1)];
}

/**
 * Takes a request for `taker` at `now`. Without a budget only a pause holds it. With one: a
 * taker holding a place waits for it, and is granted once it has come (the grant moves to now,
 * when the request is really made, so later places are measured from it); any other is granted
 * now if the window has room, else given the earliest place that fits. A place falling in a
 * pause that began after it was given is given up for one after the pause. A place whose instant
 * has left the window is void (its taker never came for it: a job removed, a cancelled series).
 */
export function takeRequest(state: BudgetState, now: number, budget: RequestBudget | null, taker: string): Taken {
  const pausedUntil = state.pausedUntil !== null && state.pausedUntil > now ? state.pausedUntil : null;
  if (!budget) return { waitMs: pausedUntil === null ? 0 : Math.ceil(pausedUntil - now), state };

  const windowStart = now - budget.durationMs;
  let grants = state.grants.filter((at) => at > windowStart);
  const places: Record<string, number> = {};
  for (const [holder, at] of Object.entries(state.places)) if (at > windowStart) places[holder] = at;

  const held = places[taker];
  if (held !== undefined) {
    if (pausedUntil === null || held >= pausedUntil) {
      if (held > now) return { waitMs: Math.ceil(held - now), state };
      delete places[taker];
      grants = insertSorted(removeOne(grants, held), now);
      return { waitMs: 0, state: { grants, places, pausedUntil: state.pausedUntil } };
    }
    delete places[taker];
    grants = removeOne(grants, held);
  }

  const at = firstFit(grants, pausedUntil === null ? now : Math.ceil(pausedUntil), budget);
  if (at <= now) return { waitMs: 0, state: { grants: insertSorted(grants, now), places, pausedUntil: state.pausedUntil } };
  places[taker] = at;
  return { waitMs: Math.ceil(at - now), state: { grants: insertSorted(grants, at), places, pausedUntil: state.pausedUntil } };
}

/** Gives up `taker`'s place, if it holds one (its series was cancelled): the next taker may have it. */
export function releasePlace(state: BudgetState, taker: string): BudgetState {
  const held = state.places[taker];
  if (held === undefined) return state;
  const { [taker]: _released, ...places } = state.places;
  return { grants: removeOne(state.grants, held), places, pausedUntil: state.pausedUntil };
}
