/**
 * Checks of query and body parameters shared by the API routers; each failure is a
 * BadInputError naming the field, which the routers answer as 400 `{detail}`. Every route reads
 * an empty parameter (`?limit=`, what a form with a blank field sends) as absent.
 */
import { assertIsoDate } from '../analytics/calendar.ts';
import { BadInputError } from '../errors.ts';

/** `YYYY-MM-DD` and a real calendar date (2024-02-30 is refused). */
export function assertDateParam(value: string, field: string): string {
  try {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) throw new Error('shape');
    return assertIsoDate(value);
  } catch {
    throw new BadInputError(`${field}: must be a date YYYY-MM-DD (got ${JSON.stringify(value)})`);
  }
}

/** A query parameter given once; an empty value counts as absent (`?job=&from=`). */
export function singleParam(raw: unknown, field: string): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string') throw new BadInputError(`${field}: give it once, as a single value (got ${JSON.stringify(raw)})`);
  return raw;
}

/** `YYYY-MM-DD`, a real calendar date, or a BadInputError naming `field`; undefined when absent. */
export function parseDateParam(raw: unknown, field: string): string | undefined {
  const value = singleParam(raw, field);
  return value === undefined ? undefined : assertDateParam(value, field);
}

/** A whole number from `min` to `max`, `fallback` when absent, or a BadInputError naming `field`. */
export function parseBoundedInt(raw: unknown, field: string, min: number, max: number, fallback: number): number {
  const value = singleParam(raw, field);
  if (value === undefined) return fallback;
  const n = /^\d{1,9}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new BadInputError(`${field}: must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`);
  return n;
}
