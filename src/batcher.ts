/**
 * Group commit: calls made while a flush is in flight are collected and sent together as
 * soon as it returns, so each caller still awaits its own durable write but concurrent
 * callers share one round trip. (BASELINES.md: one INSERT per job costs 64% of BullMQ's
 * throughput at concurrency 50; grouping recovers most of it.)
 */
export interface Batcher<I, O> {
  (item: I): Promise<O>;
  /** Resolves when nothing is pending or in flight. */
  drain(): Promise<void>;
}

interface Pending<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/**
 * `flush` must return one result per item, in order. A batch that fails is sent again item by
 * item, so that only the items at fault fail: repeating a flush must be harmless.
 */
export function createBatcher<I, O>(flush: (items: I[]) => Promise<O[]>, options: { maxBatch?: number } = {}): Batcher<I, O> {
  const maxBatch = options.maxBatch ?? 500;
  let pending: Pending<I, O>[] = [];
  let inFlight: Promise<void> | null = null;
  let scheduled = false;

  const run = async (): Promise<void> => {
    while (pending.length > 0) {
      const batch = pending.slice(0, maxBatch);
      pending = pending.slice(batch.length);
      try {
        const results = await flush(batch.map((p) => p.item));
        batch.forEach((p, i) => p.resolve(results[i] as O));
      } catch (error) {
        if (batch.length === 1) batch[0]!.reject(error);
        // One bad item must not fail the others: each is sent again on its own.
        else await Promise.all(batch.map((p) => flush([p.item]).then((results) => p.resolve(results[0] as O), p.reject)));
      }
    }
  };

  const kick = (): void => {
    if (inFlight || scheduled) return;
    scheduled = true;
    // One microtask lets callers from the same tick join the first batch.
    queueMicrotask(() => {
      scheduled = false;
      inFlight = run().finally(() => {
        inFlight = null;
        if (pending.length > 0) kick();
      });
    });
  };

  const batcher = ((item: I) =>
    new Promise<O>((resolve, reject) => {
      pending.push({ item, resolve, reject });
      kick();
    })) as Batcher<I, O>;
  batcher.drain = async () => {
    while (inFlight || scheduled || pending.length > 0) {
      await (inFlight ?? new Promise((resolve) => setImmediate(resolve)));
    }
  };
  return batcher;
}
