/**
 * Checks of query and body parameters shared by the API routers; each failure is a
 * BadInputError naming the field, which the routers answer as 400 `{detail}`.
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
