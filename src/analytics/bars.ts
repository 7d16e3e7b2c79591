/**
 * A price bar as the enrichment pipeline passes it around: open time in epoch milliseconds
 * (UTC), prices and volume as JS numbers. Providers hand over whatever the source sent (a
 * field may be NaN); validation decides which bars are stored.
 */
export interface Bar {
  /** Bar open, epoch ms UTC, aligned as `barOpen` in timeframes.ts says. */
  ts: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}
