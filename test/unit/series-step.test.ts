import { describe, expect, it } from 'vitest';
import { fetchEnd, sessionsBehind } from '../../src/enrichment/series-step.ts';

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
