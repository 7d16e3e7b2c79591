import { describe, expect, it } from 'vitest';
import { dayNumberOfIsoDate } from '../../src/analytics/timeframes.ts';
import { coveredThrough, fetchEnd, lastClosedDay, MIN_RATE_LIMIT_WAIT_MS, rateLimitWaitMs, sessionsBehind } from '../../src/enrichment/series-step.ts';

const utc = (text: string) => Date.parse(text);

describe('sessionsBehind', () => {
  const cases: Array<[string, string, string, 'nyse' | '24x7', number]> = [
    ['same day', '2024-06-11T19:59:00Z', '2024-06-11T20:30:00Z', 'nyse', 0],
    ['next morning, before the open', '2024-06-11T19:59:00Z', '2024-06-12T12:00:00Z', 'nyse', 0],
    ['a session in between', '2024-06-11T19:59:00Z', '2024-06-13T12:00:00Z', 'nyse', 1],
    ['Friday to Monday: a weekend is no session', '2024-06-07T19:59:00Z', '2024-06-10T15:00:00Z', 'nyse', 0],
    ['Friday to Tuesday', '2024-06-07T19:59:00Z', '2024-06-11T15:00:00Z', 'nyse', 1],
    ['over the Independence Day holiday', '2024-07-03T16:59:00Z', '2024-07-08T15:00:00Z', 'nyse', 1],
    ['four sessions', '2024-06-10T19:59:00Z', '2024-06-17T15:00:00Z', 'nyse', 4],
    // 01:00Z on Jun 12 is still Jun 11 in New York.
    ['dates are New York dates', '2024-06-11T19:59:00Z', '2024-06-12T01:00:00Z', 'nyse', 0],
    ['crypto counts every UTC day', '2024-06-07T23:59:00Z', '2024-06-10T00:01:00Z', '24x7', 2],
    ['crypto same day', '2024-06-15T00:00:00Z', '2024-06-15T23:00:00Z', '24x7', 0],
    ['now before the latest bar', '2024-06-11T19:59:00Z', '2024-06-10T15:00:00Z', 'nyse', 0],
    // Today's session counts once it has closed.
    ["today's session still open", '2024-06-11T19:59:00Z', '2024-06-12T19:00:00Z', 'nyse', 0],
    ["today's session closed", '2024-06-11T19:59:00Z', '2024-06-12T20:30:00Z', 'nyse', 1],
    ['an early close (13:00 on July 3)', '2024-07-02T19:59:00Z', '2024-07-03T17:30:00Z', 'nyse', 1],
    ['a Saturday evening is no session', '2024-06-07T19:59:00Z', '2024-06-08T22:00:00Z', 'nyse', 0],
    ['a crypto day closes at midnight', '2024-06-14T23:59:00Z', '2024-06-15T23:00:00Z', '24x7', 0],
  ];
  it.each(cases)('%s', (_name, latest, now, calendar, expected) => {
    expect(sessionsBehind(utc(latest), utc(now), calendar)).toBe(expected);
  });

  it('stops counting far beyond the stale threshold', () => {
    const behind = sessionsBehind(utc('2000-01-03T15:00:00Z'), utc('2024-06-11T15:00:00Z'), 'nyse');
    expect(behind).toBeGreaterThan(3);
    expect(behind).toBeLessThanOrEqual(31);
  });
});

describe('fetchEnd', () => {
  it('is the chunk end, or the request’s last date when it comes first', () => {
    const chunk = { start: '2024-06-01', end: '2024-06-30' };
    expect(fetchEnd(chunk, { to_date: '2024-12-31' })).toBe('2024-06-30');
    expect(fetchEnd(chunk, { to_date: '2024-06-30' })).toBe('2024-06-30');
    expect(fetchEnd(chunk, { to_date: '2024-06-11' })).toBe('2024-06-11');
  });
});

describe('rateLimitWaitMs', () => {
  it('never pauses a source for less than the floor: Retry-After 0 or a date already past would send its series straight back', () => {
    expect(MIN_RATE_LIMIT_WAIT_MS).toBeGreaterThanOrEqual(1000);
    expect(rateLimitWaitMs(0)).toBe(MIN_RATE_LIMIT_WAIT_MS);
    expect(rateLimitWaitMs(-5)).toBe(MIN_RATE_LIMIT_WAIT_MS);
    expect(rateLimitWaitMs(0.4)).toBe(MIN_RATE_LIMIT_WAIT_MS);
    expect(rateLimitWaitMs(7000)).toBe(7000);
    expect(rateLimitWaitMs(1500.2)).toBe(1501);
  });

  it('waits a minute when the provider did not say', () => {
    expect(rateLimitWaitMs(undefined)).toBe(60_000);
    expect(rateLimitWaitMs(Number.NaN)).toBe(60_000);
  });
});

describe('lastClosedDay', () => {
  const cases: Array<[string, string, 'nyse' | '24x7', string]> = [
    ['mid-session: yesterday', '2024-01-31T17:00:00Z', 'nyse', '2024-01-30'],
    ['before the open: yesterday', '2024-01-31T13:00:00Z', 'nyse', '2024-01-30'],
    ['after the close: today', '2024-01-31T21:00:00Z', 'nyse', '2024-01-31'],
    ['01:30 New York the next day', '2024-02-01T06:30:00Z', 'nyse', '2024-01-31'],
    ['Friday after the close: through Sunday', '2024-02-02T21:30:00Z', 'nyse', '2024-02-04'],
    ['Friday mid-session: Thursday', '2024-02-02T17:00:00Z', 'nyse', '2024-02-01'],
    ['a Saturday: through Sunday', '2024-02-03T17:00:00Z', 'nyse', '2024-02-04'],
    ['an early close (13:00 on July 3)', '2024-07-03T17:30:00Z', 'nyse', '2024-07-04'],
    ['a holiday (New Year 2025): that day', '2025-01-01T17:00:00Z', 'nyse', '2025-01-01'],
    ['a coin day closes at midnight', '2024-02-03T23:00:00Z', '24x7', '2024-02-02'],
  ];
  it.each(cases)('%s', (_name, now, calendar, expected) => {
    expect(lastClosedDay(utc(now), calendar)).toBe(dayNumberOfIsoDate(expected));
  });
});

describe('coveredThrough', () => {
  it('leaves out a day whose session had not closed when fetched', () => {
    expect(coveredThrough('2024-01-31', '1m', 'nyse', utc('2024-01-31T17:00:00Z'))).toBe('2024-01-30');
    expect(coveredThrough('2024-01-31', '1d', 'nyse', utc('2024-01-31T21:00:00Z'))).toBe('2024-01-31');
    expect(coveredThrough('2024-01-31', '1m', 'nyse', utc('2024-02-01T06:30:00Z'))).toBe('2024-01-31');
    // A range that ended long before the fetch is covered to its end.
    expect(coveredThrough('2023-06-30', '1h', 'nyse', utc('2024-01-31T17:00:00Z'))).toBe('2023-06-30');
    // The first day of a chunk mid-session: before the chunk, i.e. nothing covered.
    expect(coveredThrough('2024-02-01', '1m', 'nyse', utc('2024-02-01T17:00:00Z'))).toBe('2024-01-31');
    expect(coveredThrough('2024-02-03', '1h', '24x7', utc('2024-02-03T12:00:00Z'))).toBe('2024-02-02');
  });

  it('1w: a week not over when fetched is not covered from its Monday on', () => {
    // Fetched on New Year's Day 2025 through Tue 31 Dec: the week of Mon 30 Dec has sessions to come.
    expect(coveredThrough('2024-12-31', '1w', 'nyse', utc('2025-01-01T17:00:00Z'))).toBe('2024-12-29');
    // A week later that week is over: covered to the chunk's end.
    expect(coveredThrough('2024-12-31', '1w', 'nyse', utc('2025-01-08T17:00:00Z'))).toBe('2024-12-31');
    // Friday after the close: the week is over (no weekend sessions).
    expect(coveredThrough('2024-02-02', '1w', 'nyse', utc('2024-02-02T21:30:00Z'))).toBe('2024-02-02');
    // Friday mid-session: back to the Sunday before.
    expect(coveredThrough('2024-02-02', '1w', 'nyse', utc('2024-02-02T17:00:00Z'))).toBe('2024-01-28');
    // A coin's week ends with Sunday's day.
    expect(coveredThrough('2024-02-04', '1w', '24x7', utc('2024-02-04T12:00:00Z'))).toBe('2024-01-28');
    expect(coveredThrough('2024-02-04', '1w', '24x7', utc('2024-02-05T00:30:00Z'))).toBe('2024-02-04');
  });
});
