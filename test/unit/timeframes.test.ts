import { describe, expect, it } from 'vitest';
import {
  barOpen,
  calendarOf,
  chunkMonths,
  dayNumberOf,
  dayNumberOfIsoDate,
  expectedBarOpens,
  intradayMinutes,
  isExpectedBarOpen,
  isoDateOfDayNumber,
  isSessionDay,
  isTimeframe,
  localMs,
  planChunks,
  sessionMinutes,
  TIMEFRAMES,
  utcMsOfLocal,
  type MarketCalendar,
  type Timeframe,
} from '../../src/analytics/timeframes.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const iso = (ts: number) => new Date(ts).toISOString();
const utc = (text: string) => Date.parse(text);
const day = dayNumberOfIsoDate;

/** An instant written in New York wall time with its offset, e.g. et('2024-06-11T09:30', -4). */
const et = (wall: string, offsetHours: -4 | -5) => utc(`${wall}:00${offsetHours === -4 ? '-04:00' : '-05:00'}`);

describe('timeframe basics', () => {
  it('lists the timeframes and recognises them', () => {
    expect(TIMEFRAMES).toEqual(['1m', '5m', '15m', '30m', '1h', '4h', '1d', '1w']);
    for (const tf of TIMEFRAMES) expect(isTimeframe(tf)).toBe(true);
    for (const bad of ['2m', '1H', '', '1d ', 'day']) expect(isTimeframe(bad)).toBe(false);
  });

  it('gives intraday minutes, null for 1d and 1w', () => {
    expect(TIMEFRAMES.map(intradayMinutes)).toEqual([1, 5, 15, 30, 60, 240, null, null]);
  });

  it('maps asset classes to calendars', () => {
    expect(calendarOf('stock')).toBe('nyse');
    expect(calendarOf('etf')).toBe('nyse');
    expect(calendarOf('crypto')).toBe('24x7');
  });
});

describe('barOpen: stocks (New York clock boundaries)', () => {
  // Tue 2024-06-11, EDT (UTC−4).
  const cases: Array<[string, Timeframe, string]> = [
    ['09:30', '1m', '09:30'],
    ['09:31', '1m', '09:31'],
    ['15:59', '1m', '15:59'],
    ['09:34', '5m', '09:30'],
    ['09:35', '5m', '09:35'],
    ['09:44', '15m', '09:30'],
    ['09:45', '15m', '09:45'],
    ['09:59', '30m', '09:30'],
    ['10:00', '30m', '10:00'],
    ['09:30', '1h', '09:00'],
    ['09:59', '1h', '09:00'],
    ['10:00', '1h', '10:00'],
    ['15:59', '1h', '15:00'],
    ['09:30', '4h', '08:00'],
    ['11:59', '4h', '08:00'],
    ['12:00', '4h', '12:00'],
    ['15:59', '4h', '12:00'],
    ['09:30', '1d', '00:00'],
    ['15:59', '1d', '00:00'],
  ];
  it.each(cases)('%s ET %s opens at %s ET', (time, tf, open) => {
    expect(iso(barOpen(et(`2024-06-11T${time}`, -4), tf, 'nyse'))).toBe(iso(et(`2024-06-11T${open}`, -4)));
  });

  it('truncates seconds and milliseconds inside a minute', () => {
    expect(barOpen(et('2024-06-11T09:30', -4) + 59_999, '1m', 'nyse')).toBe(et('2024-06-11T09:30', -4));
  });

  it('a 1d bar opens at midnight New York time (04:00Z in summer, 05:00Z in winter)', () => {
    expect(iso(barOpen(utc('2024-06-11T19:00:00Z'), '1d', 'nyse'))).toBe('2024-06-11T04:00:00.000Z');
    expect(iso(barOpen(utc('2024-01-09T19:00:00Z'), '1d', 'nyse'))).toBe('2024-01-09T05:00:00.000Z');
  });

  it('a 1w bar opens at midnight ET of the Monday; a Sunday belongs to the previous Monday', () => {
    const monday = '2024-06-10T04:00:00.000Z';
    for (const at of ['2024-06-10T04:00:00Z', '2024-06-11T14:00:00Z', '2024-06-14T19:59:00Z', '2024-06-15T12:00:00Z', '2024-06-16T23:00:00Z']) {
      expect(iso(barOpen(utc(at), '1w', 'nyse')), at).toBe(monday);
    }
    expect(iso(barOpen(utc('2024-06-17T14:00:00Z'), '1w', 'nyse'))).toBe('2024-06-17T04:00:00.000Z');
    // Sunday 2024-01-14 → Monday 2024-01-08 (EST).
    expect(iso(barOpen(utc('2024-01-14T17:00:00Z'), '1w', 'nyse'))).toBe('2024-01-08T05:00:00.000Z');
  });

  it('a 1w bar before 1970 still opens on the Monday before (day numbers are negative there)', () => {
    // Sun 1969-12-28 → Mon 1969-12-22; Tue 1969-12-23 → the same Monday.
    expect(iso(barOpen(utc('1969-12-28T17:00:00Z'), '1w', 'nyse'))).toBe('1969-12-22T05:00:00.000Z');
    expect(iso(barOpen(utc('1969-12-23T17:00:00Z'), '1w', 'nyse'))).toBe('1969-12-22T05:00:00.000Z');
    expect(iso(barOpen(utc('1969-12-23T17:00:00Z'), '1w', '24x7'))).toBe('1969-12-22T00:00:00.000Z');
    expect(iso(barOpen(utc('1970-01-01T12:00:00Z'), '1w', '24x7'))).toBe('1969-12-29T00:00:00.000Z');
  });

  it('is idempotent: the open of a bar open is itself', () => {
    for (const tf of TIMEFRAMES) {
      const open = barOpen(et('2024-06-12T13:47', -4) + 12_345, tf, 'nyse');
      expect(barOpen(open, tf, 'nyse'), tf).toBe(open);
    }
  });
});

describe('barOpen across DST switches', () => {
  it('the UTC instant of a 09:30 ET bar moves by an hour on 2024-03-10 and back on 2024-11-03', () => {
    const cases: Array<[string, string]> = [
      ['2024-03-08', '2024-03-08T14:30:00.000Z'], // Fri, EST
      ['2024-03-11', '2024-03-11T13:30:00.000Z'], // Mon, EDT
      ['2024-11-01', '2024-11-01T13:30:00.000Z'], // Fri, EDT
      ['2024-11-04', '2024-11-04T14:30:00.000Z'], // Mon, EST
    ];
    for (const [date, open] of cases) {
      const opens = expectedBarOpens(day(date), '1m', 'nyse');
      expect(iso(opens[0] as number), date).toBe(open);
      expect(iso(barOpen(utc(open) + 30_000, '1m', 'nyse')), date).toBe(open);
      expect(iso(barOpen(utc(open), '1h', 'nyse')), date).toBe(iso(utc(open) - 30 * MINUTE));
    }
  });

  it('1d and 1w opens follow the local midnight on each side of the switch', () => {
    expect(iso(barOpen(utc('2024-03-08T18:00:00Z'), '1d', 'nyse'))).toBe('2024-03-08T05:00:00.000Z');
    expect(iso(barOpen(utc('2024-03-11T18:00:00Z'), '1d', 'nyse'))).toBe('2024-03-11T04:00:00.000Z');
    // The week of 2024-03-04 (EST Monday) includes DST Sunday 03-10.
    expect(iso(barOpen(utc('2024-03-10T18:00:00Z'), '1w', 'nyse'))).toBe('2024-03-04T05:00:00.000Z');
    expect(iso(barOpen(utc('2024-03-12T18:00:00Z'), '1w', 'nyse'))).toBe('2024-03-11T04:00:00.000Z');
    expect(iso(barOpen(utc('2024-11-05T18:00:00Z'), '1w', 'nyse'))).toBe('2024-11-04T05:00:00.000Z');
  });

  it('crypto bars stay on UTC boundaries whatever New York does', () => {
    expect(iso(barOpen(utc('2024-03-10T07:31:12Z'), '1h', '24x7'))).toBe('2024-03-10T07:00:00.000Z');
    expect(iso(barOpen(utc('2024-03-10T07:31:12Z'), '4h', '24x7'))).toBe('2024-03-10T04:00:00.000Z');
    expect(iso(barOpen(utc('2024-03-10T07:31:12Z'), '1d', '24x7'))).toBe('2024-03-10T00:00:00.000Z');
    expect(iso(barOpen(utc('2024-03-10T07:31:12Z'), '1w', '24x7'))).toBe('2024-03-04T00:00:00.000Z');
    expect(iso(barOpen(utc('2024-03-10T07:31:12Z'), '15m', '24x7'))).toBe('2024-03-10T07:30:00.000Z');
  });
});

describe('expectedBarOpens', () => {
  const counts = (date: string, calendar: MarketCalendar) =>
    Object.fromEntries(TIMEFRAMES.map((tf) => [tf, expectedBarOpens(day(date), tf, calendar).length]));

  it('a normal session (Tue 2024-06-11)', () => {
    expect(counts('2024-06-11', 'nyse')).toEqual({ '1m': 390, '5m': 78, '15m': 26, '30m': 13, '1h': 7, '4h': 2, '1d': 1, '1w': 0 });
  });

  it('lists ascending opens from the session open (or its enclosing bucket) to before the close', () => {
    const d = day('2024-06-11');
    const m1 = expectedBarOpens(d, '1m', 'nyse');
    expect(iso(m1[0] as number)).toBe('2024-06-11T13:30:00.000Z');
    expect(iso(m1.at(-1) as number)).toBe('2024-06-11T19:59:00.000Z');
    for (let i = 1; i < m1.length; i++) expect((m1[i] as number) - (m1[i - 1] as number)).toBe(MINUTE);
    expect(expectedBarOpens(d, '1h', 'nyse').map((ts) => iso(ts).slice(11, 16))).toEqual(['13:00', '14:00', '15:00', '16:00', '17:00', '18:00', '19:00']);
    expect(expectedBarOpens(d, '4h', 'nyse').map(iso)).toEqual(['2024-06-11T12:00:00.000Z', '2024-06-11T16:00:00.000Z']);
    expect(expectedBarOpens(d, '1d', 'nyse').map(iso)).toEqual(['2024-06-11T04:00:00.000Z']);
    for (const tf of TIMEFRAMES) for (const ts of expectedBarOpens(d, tf, 'nyse')) expect(barOpen(ts, tf, 'nyse')).toBe(ts);
  });

  it('a winter session in EST (Tue 2024-01-09)', () => {
    const opens = expectedBarOpens(day('2024-01-09'), '30m', 'nyse');
    expect(opens).toHaveLength(13);
    expect(iso(opens[0] as number)).toBe('2024-01-09T14:30:00.000Z');
    expect(iso(opens.at(-1) as number)).toBe('2024-01-09T20:30:00.000Z');
  });

  it('an early close (2024-11-29, 13:00)', () => {
    expect(counts('2024-11-29', 'nyse')).toMatchObject({ '1m': 210, '5m': 42, '15m': 14, '30m': 7, '1h': 4, '4h': 2, '1d': 1 });
    expect(iso(expectedBarOpens(day('2024-11-29'), '1m', 'nyse').at(-1) as number)).toBe('2024-11-29T17:59:00.000Z');
  });

  it('a holiday and a weekend have none', () => {
    for (const date of ['2024-07-04', '2024-06-15', '2024-06-16', '2024-12-25']) {
      expect(counts(date, 'nyse'), date).toEqual({ '1m': 0, '5m': 0, '15m': 0, '30m': 0, '1h': 0, '4h': 0, '1d': 0, '1w': 0 });
    }
  });

  it('1w only on the Monday of a week with a session, even when that Monday is a holiday', () => {
    expect(expectedBarOpens(day('2024-06-10'), '1w', 'nyse').map(iso)).toEqual(['2024-06-10T04:00:00.000Z']);
    for (const date of ['2024-06-11', '2024-06-14', '2024-06-15', '2024-06-16']) expect(expectedBarOpens(day(date), '1w', 'nyse'), date).toEqual([]);
    // MLK Day 2024-01-15: closed, but the week trades Tue–Fri.
    expect(isSessionDay(day('2024-01-15'), 'nyse')).toBe(false);
    expect(expectedBarOpens(day('2024-01-15'), '1w', 'nyse').map(iso)).toEqual(['2024-01-15T05:00:00.000Z']);
    expect(expectedBarOpens(day('2024-01-15'), '1d', 'nyse')).toEqual([]);
  });

  it('crypto: every UTC day, all day', () => {
    for (const date of ['2024-06-11', '2024-06-15', '2024-07-04', '2024-03-10', '2024-11-03']) {
      expect(counts(date, '24x7'), date).toMatchObject({ '1m': 1440, '5m': 288, '15m': 96, '30m': 48, '1h': 24, '4h': 6, '1d': 1 });
    }
    const opens = expectedBarOpens(day('2024-06-15'), '1h', '24x7');
    expect(iso(opens[0] as number)).toBe('2024-06-15T00:00:00.000Z');
    expect(iso(opens.at(-1) as number)).toBe('2024-06-15T23:00:00.000Z');
    expect(expectedBarOpens(day('2024-06-10'), '1w', '24x7').map(iso)).toEqual(['2024-06-10T00:00:00.000Z']);
    expect(expectedBarOpens(day('2024-06-16'), '1w', '24x7')).toEqual([]);
  });
});

describe('isExpectedBarOpen', () => {
  const cases: Array<[string, number, Timeframe, MarketCalendar, boolean]> = [
    ['first 1m bar', et('2024-06-11T09:30', -4), '1m', 'nyse', true],
    ['last 1m bar', et('2024-06-11T15:59', -4), '1m', 'nyse', true],
    ['1m before the open', et('2024-06-11T09:29', -4), '1m', 'nyse', false],
    ['1m at the close', et('2024-06-11T16:00', -4), '1m', 'nyse', false],
    ['1m after hours', et('2024-06-11T18:30', -4), '1m', 'nyse', false],
    ['1m with seconds', et('2024-06-11T10:00', -4) + 1000, '1m', 'nyse', false],
    ['5m aligned', et('2024-06-11T10:05', -4), '5m', 'nyse', true],
    ['5m misaligned', et('2024-06-11T10:06', -4), '5m', 'nyse', false],
    ['1h at 09:00 (covers 09:30)', et('2024-06-11T09:00', -4), '1h', 'nyse', true],
    ['1h at 08:00', et('2024-06-11T08:00', -4), '1h', 'nyse', false],
    ['1h at 09:30 (misaligned)', et('2024-06-11T09:30', -4), '1h', 'nyse', false],
    ['1h at 16:00', et('2024-06-11T16:00', -4), '1h', 'nyse', false],
    ['4h at 08:00', et('2024-06-11T08:00', -4), '4h', 'nyse', true],
    ['4h at 12:00', et('2024-06-11T12:00', -4), '4h', 'nyse', true],
    ['4h at 16:00', et('2024-06-11T16:00', -4), '4h', 'nyse', false],
    ['4h at 04:00', et('2024-06-11T04:00', -4), '4h', 'nyse', false],
    ['1m on an early close at 12:59', et('2024-11-29T12:59', -5), '1m', 'nyse', true],
    ['1m on an early close at 13:00', et('2024-11-29T13:00', -5), '1m', 'nyse', false],
    ['1h on an early close at 13:00', et('2024-11-29T13:00', -5), '1h', 'nyse', false],
    ['1m on a holiday', et('2024-07-04T10:00', -4), '1m', 'nyse', false],
    ['1m on a Saturday', et('2024-06-15T10:00', -4), '1m', 'nyse', false],
    ['1d at midnight of a session', et('2024-06-11T00:00', -4), '1d', 'nyse', true],
    ['1d at midnight UTC', utc('2024-06-11T00:00:00Z'), '1d', 'nyse', false],
    ['1d on a holiday', et('2024-07-04T00:00', -4), '1d', 'nyse', false],
    ['1w on a Monday', et('2024-06-10T00:00', -4), '1w', 'nyse', true],
    ['1w on a holiday Monday', et('2024-01-15T00:00', -5), '1w', 'nyse', true],
    ['1w on a Tuesday', et('2024-06-11T00:00', -4), '1w', 'nyse', false],
    ['crypto 1m at 03:17 on a Sunday', utc('2024-06-16T03:17:00Z'), '1m', '24x7', true],
    ['crypto 1h at 23:00', utc('2024-07-04T23:00:00Z'), '1h', '24x7', true],
    ['crypto 4h at 20:00', utc('2024-07-04T20:00:00Z'), '4h', '24x7', true],
    ['crypto 4h at 21:00', utc('2024-07-04T21:00:00Z'), '4h', '24x7', false],
    ['crypto 1d at midnight UTC', utc('2024-12-25T00:00:00Z'), '1d', '24x7', true],
    ['crypto 1d at midnight ET', utc('2024-12-25T05:00:00Z'), '1d', '24x7', false],
    ['crypto 1w on a Monday', utc('2024-06-17T00:00:00Z'), '1w', '24x7', true],
  ];
  it.each(cases)('%s', (_name, ts, tf, calendar, expected) => {
    expect(isExpectedBarOpen(ts, tf, calendar)).toBe(expected);
  });

  it('agrees with expectedBarOpens over a whole day, minute by minute', () => {
    for (const calendar of ['nyse', '24x7'] as const) {
      const d = day('2024-11-29');
      const start = utcMsOfLocal(d * DAY, calendar);
      for (const tf of ['5m', '1h', '4h'] as const) {
        const expected = new Set(expectedBarOpens(d, tf, calendar));
        for (let ts = start; ts < start + DAY; ts += MINUTE) expect(isExpectedBarOpen(ts, tf, calendar), `${calendar} ${tf} ${iso(ts)}`).toBe(expected.has(ts));
      }
    }
  });
});

describe('planChunks', () => {
  it('cuts 1m monthly, including a leap February', () => {
    expect(planChunks('2024-01-15', '2024-03-10', '1m')).toEqual([
      { start: '2024-01-01', end: '2024-01-31' },
      { start: '2024-02-01', end: '2024-02-29' },
      { start: '2024-03-01', end: '2024-03-31' },
    ]);
    expect(planChunks('2023-02-01', '2023-02-28', '1m')).toEqual([{ start: '2023-02-01', end: '2023-02-28' }]);
  });

  it('cuts 5m quarterly from January, April, July and October', () => {
    expect(planChunks('2024-02-15', '2024-02-20', '5m')).toEqual([{ start: '2024-01-01', end: '2024-03-31' }]);
    expect(planChunks('2024-05-01', '2025-01-02', '5m')).toEqual([
      { start: '2024-04-01', end: '2024-06-30' },
      { start: '2024-07-01', end: '2024-09-30' },
      { start: '2024-10-01', end: '2024-12-31' },
      { start: '2025-01-01', end: '2025-03-31' },
    ]);
  });

  it('cuts 15m half-yearly and the rest yearly', () => {
    expect(planChunks('2024-03-01', '2024-08-01', '15m')).toEqual([
      { start: '2024-01-01', end: '2024-06-30' },
      { start: '2024-07-01', end: '2024-12-31' },
    ]);
    for (const tf of ['30m', '1h', '4h', '1d', '1w'] as const) {
      expect(planChunks('2023-06-01', '2024-02-01', tf), tf).toEqual([
        { start: '2023-01-01', end: '2023-12-31' },
        { start: '2024-01-01', end: '2024-12-31' },
      ]);
    }
    expect(TIMEFRAMES.map(chunkMonths)).toEqual([1, 3, 6, 12, 12, 12, 12, 12]);
  });

  it('a range inside one cell gives that one cell; a single day too', () => {
    expect(planChunks('2024-06-11', '2024-06-11', '1m')).toEqual([{ start: '2024-06-01', end: '2024-06-30' }]);
    expect(planChunks('2024-12-31', '2024-12-31', '1d')).toEqual([{ start: '2024-01-01', end: '2024-12-31' }]);
  });

  it('a to on the first day of a cell includes that cell', () => {
    expect(planChunks('2024-01-10', '2024-02-01', '1m')).toEqual([
      { start: '2024-01-01', end: '2024-01-31' },
      { start: '2024-02-01', end: '2024-02-29' },
    ]);
  });

  it('from after to gives no chunks', () => {
    expect(planChunks('2024-03-15', '2024-03-10', '1m')).toEqual([]);
    expect(planChunks('2024-05-01', '2024-04-01', '5m')).toEqual([]);
    expect(planChunks('2025-01-01', '2024-12-31', '1d')).toEqual([]);
  });

  it('cells are the same whatever the request', () => {
    for (const tf of TIMEFRAMES) {
      const whole = planChunks('2020-01-01', '2024-12-31', tf);
      for (const [from, to] of [['2021-02-11', '2021-02-11'], ['2022-05-17', '2023-08-03'], ['2024-12-31', '2024-12-31']] as const) {
        const part = planChunks(from, to, tf);
        expect(part.length, `${tf} ${from}`).toBeGreaterThan(0);
        for (const chunk of part) expect(whole, `${tf} ${from}`).toContainEqual(chunk);
        expect((part[0] as { start: string }).start <= from).toBe(true);
        expect((part.at(-1) as { end: string }).end >= to).toBe(true);
      }
      // Contiguous, no overlap.
      for (let i = 1; i < whole.length; i++) {
        const prevEnd = Date.parse(`${(whole[i - 1] as { end: string }).end}T00:00:00Z`);
        expect(Date.parse(`${(whole[i] as { start: string }).start}T00:00:00Z`) - prevEnd, tf).toBe(DAY);
      }
    }
  });
});

describe('day numbers and sessions', () => {
  it('round-trips ISO dates and day numbers', () => {
    expect(day('1970-01-01')).toBe(0);
    expect(isoDateOfDayNumber(0)).toBe('1970-01-01');
    expect(day('1969-12-31')).toBe(-1);
    expect(day('2024-02-29')).toBe(19782);
    for (const date of ['1969-12-28', '2000-02-29', '2024-03-10', '2024-11-03', '2038-01-19', '2100-12-31']) {
      expect(isoDateOfDayNumber(day(date))).toBe(date);
    }
    for (let d = -400; d < 30_000; d += 97) expect(day(isoDateOfDayNumber(d))).toBe(d);
  });

  it('dayNumberOf is the market-local date of an instant', () => {
    // 01:30Z on Jun 12 is 21:30 ET on Jun 11.
    expect(isoDateOfDayNumber(dayNumberOf(utc('2024-06-12T01:30:00Z'), 'nyse'))).toBe('2024-06-11');
    expect(isoDateOfDayNumber(dayNumberOf(utc('2024-06-12T01:30:00Z'), '24x7'))).toBe('2024-06-12');
    expect(isoDateOfDayNumber(dayNumberOf(utc('2024-06-12T04:00:00Z'), 'nyse'))).toBe('2024-06-12');
    expect(isoDateOfDayNumber(dayNumberOf(utc('2024-01-12T04:59:59Z'), 'nyse'))).toBe('2024-01-11');
    expect(isoDateOfDayNumber(dayNumberOf(utc('2024-01-12T05:00:00Z'), 'nyse'))).toBe('2024-01-12');
    for (const open of expectedBarOpens(day('2024-03-11'), '1m', 'nyse')) expect(isoDateOfDayNumber(dayNumberOf(open, 'nyse'))).toBe('2024-03-11');
  });

  it('localMs and utcMsOfLocal invert each other on session instants', () => {
    for (const date of ['2024-03-08', '2024-03-11', '2024-11-01', '2024-11-04', '2024-06-11']) {
      for (const ts of expectedBarOpens(day(date), '1m', 'nyse')) expect(utcMsOfLocal(localMs(ts, 'nyse'), 'nyse')).toBe(ts);
    }
    const ts = utc('2024-06-11T13:30:00Z');
    expect(localMs(ts, 'nyse')).toBe(ts - 4 * HOUR);
    expect(localMs(ts, '24x7')).toBe(ts);
    expect(utcMsOfLocal(ts, '24x7')).toBe(ts);
  });

  it('sessionMinutes: 09:30–16:00, 13:00 on early closes, null when closed, all day for crypto', () => {
    expect(sessionMinutes(day('2024-06-11'), 'nyse')).toEqual({ open: 570, close: 960 });
    expect(sessionMinutes(day('2024-11-29'), 'nyse')).toEqual({ open: 570, close: 780 });
    expect(sessionMinutes(day('2024-12-24'), 'nyse')).toEqual({ open: 570, close: 780 });
    expect(sessionMinutes(day('2024-07-03'), 'nyse')).toEqual({ open: 570, close: 780 });
    expect(sessionMinutes(day('2024-07-04'), 'nyse')).toBeNull();
    expect(sessionMinutes(day('2024-06-15'), 'nyse')).toBeNull();
    expect(sessionMinutes(day('2024-01-15'), 'nyse')).toBeNull();
    expect(sessionMinutes(day('2024-07-04'), '24x7')).toEqual({ open: 0, close: 1440 });
    // Cached: asking twice gives the same answer.
    expect(sessionMinutes(day('2024-11-29'), 'nyse')).toEqual({ open: 570, close: 780 });
  });

  it('isSessionDay', () => {
    expect(isSessionDay(day('2024-06-11'), 'nyse')).toBe(true);
    expect(isSessionDay(day('2024-06-15'), 'nyse')).toBe(false);
    expect(isSessionDay(day('2024-07-04'), 'nyse')).toBe(false);
    expect(isSessionDay(day('2024-06-15'), '24x7')).toBe(true);
  });
});
