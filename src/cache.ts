/**
 * A value loaded now and then and shared by every caller: the schedules listing that the
 * status page, the API and each /metrics scrape read.
 */

export interface RefreshingCacheOptions {
  /** A value younger than this is served as it is. */
  freshMs: number;
  /**
   * An older one, up to this age, is still served at once while one load replaces it in the
   * background; past it (or before any load succeeded) callers wait for the load and get its
   * error if it fails.
   */
  maxStaleMs: number;
  /** Milliseconds since some origin. @defaultValue Date.now */
  clock?: () => number;
}

/**
 * `load`'s last answer, its age measured from when that load began. At most one load runs at
 * a time, so a slow source (a busy pool, a loaded machine) is asked once however many callers
 * come, and callers do not queue behind it while the last answer is recent.
 */
export function createRefreshingCache<T>(options: RefreshingCacheOptions, load: () => Promise<T>): () => Promise<T> {
  const clock = options.clock ?? Date.now;
  let last: { at: number; value: T } | undefined;
  let loading: Promise<T> | undefined;
  const refresh = (): Promise<T> => {
    if (loading) return loading;
    const at = clock();
    const pending = load().then((value) => {
      if (!last || at >= last.at) last = { at, value };
      return value;
    });
    loading = pending;
    // Cleared whatever the outcome; a failure reaches the callers that wait for this load.
    const done = () => {
      if (loading === pending) loading = undefined;
    };
    pending.then(done, done);
    return pending;
  };
  return () => {
    const age = last ? clock() - last.at : Infinity;
    if (last && age < options.freshMs) return Promise.resolve(last.value);
    if (last && age < options.maxStaleMs) {
      // Nobody waits for this load: its failure shows in the next caller's wait, once the answer is too old.
      refresh().catch(() => {});
      return Promise.resolve(last.value);
    }
    return refresh();
  };
}
