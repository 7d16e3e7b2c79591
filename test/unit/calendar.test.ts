import { describe, expect, it } from 'vitest';
import {
  addTradingDays,
  describeDate,
  earlyClose,
  easterSunday,
  isTradingDay,
  isWeekend,
  nextTradingDay,
  nyseHoliday,
  previousTradingDay,
  tradingDateOf,
  tradingDaysBetween,
} from '../../src/analytics/calendar.ts';

/** Every full-day NYSE closure of a year that falls on a weekday. */
function closuresIn(year: number): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const day of allDatesIn(year)) {
    const name = nyseHoliday(day);
    if (name !== null) out.push([day, name]);
  }
  return out;
}

function allDatesIn(year: number): string[] {
  const days: string[] = [];
  for (let t = Date.UTC(year, 0, 1); t < Date.UTC(year + 1, 0, 1); t += 86_400_000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

const HOLIDAYS: Record<number, Array<[string, string]>> = {
  2023: [
    ['2023-01-02', "New Year's Day (observed)"],
    ['2023-01-16', 'Martin Luther King Jr. Day'],
    ['2023-02-20', "Washington's Birthday"],
    ['2023-04-07', 'Good Friday'],
    ['2023-05-29', 'Memorial Day'],
    ['2023-06-19', 'Juneteenth National Independence Day'],
    ['2023-07-04', 'Independence Day'],
    ['2023-09-04', 'Labor Day'],
    ['2023-11-23', 'Thanksgiving Day'],
    ['2023-12-25', 'Christmas Day'],
  ],
  2024: [
    ['2024-01-01', "New Year's Day"],
    ['2024-01-15', 'Martin Luther King Jr. Day'],
    ['2024-02-19', "Washington's Birthday"],
    ['2024-03-29', 'Good Friday'],
    ['2024-05-27', 'Memorial Day'],
    ['2024-06-19', 'Juneteenth National Independence Day'],
    ['2024-07-04', 'Independence Day'],
    ['2024-09-02', 'Labor Day'],
    ['2024-11-28', 'Thanksgiving Day'],
    ['2024-12-25', 'Christmas Day'],
  ],
  2025: [
    ['2025-01-01', "New Year's Day"],
    ['2025-01-09', 'Jimmy Carter national day of mourning'],
    ['2025-01-20', 'Martin Luther King Jr. Day'],
    ['2025-02-17', "Washington's Birthday"],
    ['2025-04-18', 'Good Friday'],
    ['2025-05-26', 'Memorial Day'],
    ['2025-06-19', 'Juneteenth National Independence Day'],
    ['2025-07-04', 'Independence Day'],
    ['2025-09-01', 'Labor Day'],
    ['2025-11-27', 'Thanksgiving Day'],
    ['2025-12-25', 'Christmas Day'],
  ],
  2026: [
    ['2026-01-01', "New Year's Day"],
    ['2026-01-19', 'Martin Luther King Jr. Day'],
    ['2026-02-16', "Washington's Birthday"],
    ['2026-04-03', 'Good Friday'],
    ['2026-05-25', 'Memorial Day'],
    ['2026-06-19', 'Juneteenth National Independence Day'],
    ['2026-07-03', 'Independence Day (observed)'],
    ['2026-09-07', 'Labor Day'],
    ['2026-11-26', 'Thanksgiving Day'],
    ['2026-12-25', 'Christmas Day'],
  ],
};

describe('nyseHoliday: full holiday lists', () => {
  describe.each(Object.keys(HOLIDAYS).map(Number))('%i', (year) => {
    const expected = HOLIDAYS[year] ?? [];

    it.each(expected)('%s is %s', (date, name) => {
      expect(nyseHoliday(date)).toBe(name);
      expect(isTradingDay(date)).toBe(false);
      expect(isWeekend(date)).toBe(false);
    });

    it('has no other weekday closures', () => {
      expect(closuresIn(year)).toEqual(expected);
    });
  });
});

describe('nyseHoliday: observance rules', () => {
  it.each([
    // [date, holiday name or null]
    ['2022-06-20', 'Juneteenth National Independence Day (observed)'], // Sun Jun 19 → Mon
    ['2027-06-18', 'Juneteenth National Independence Day (observed)'], // Sat Jun 19 → Fri
    ['2021-06-18', null], // Juneteenth is not an NYSE holiday before 2022
    ['2021-12-24', 'Christmas Day (observed)'], // Sat Dec 25 → Fri
    ['2022-12-26', 'Christmas Day (observed)'], // Sun Dec 25 → Mon
    ['2021-07-05', 'Independence Day (observed)'], // Sun Jul 4 → Mon
    ['2020-07-03', 'Independence Day (observed)'], // Sat Jul 4 → Fri
    ['2023-01-02', "New Year's Day (observed)"], // Sun Jan 1 → Mon
    ['2021-12-31', null], // Sat Jan 1 2022 is NOT observed on Fri Dec 31
    ['2022-01-01', null], // ... and a Saturday is no holiday of its own
    ['2022-01-03', null],
    ['1997-01-20', null], // MLK day is an NYSE holiday from 1998
    ['1998-01-19', 'Martin Luther King Jr. Day'],
    ['2019-04-19', 'Good Friday'],
    ['2008-03-21', 'Good Friday'],
    ['2038-04-23', 'Good Friday'],
    ['2100-03-26', 'Good Friday'],
    ['2026-07-04', null], // Saturday
    ['2026-03-09', null],
  ])('%s → %s', (date, name) => {
    expect(nyseHoliday(date)).toBe(name);
  });

  it.each([
    [2024, '2024-03-31'],
    [2025, '2025-04-20'],
    [2026, '2026-04-05'],
    [2000, '2000-04-23'],
    [2008, '2008-03-23'],
    [2038, '2038-04-25'],
    [2100, '2100-03-28'],
  ])('Easter %i is %s', (year, date) => {
    expect(easterSunday(year)).toBe(date);
  });
});

describe('special closures', () => {
  it.each([
    ['1994-04-27', 'Richard Nixon national day of mourning'],
    ['2001-09-11', 'September 11 attacks'],
    ['2001-09-12', 'September 11 attacks'],
    ['2001-09-13', 'September 11 attacks'],
    ['2001-09-14', 'September 11 attacks'],
    ['2004-06-11', 'Ronald Reagan national day of mourning'],
    ['2007-01-02', 'Gerald Ford national day of mourning'],
    ['2012-10-29', 'Hurricane Sandy'],
    ['2012-10-30', 'Hurricane Sandy'],
    ['2018-12-05', 'George H. W. Bush national day of mourning'],
    ['2025-01-09', 'Jimmy Carter national day of mourning'],
  ])('%s is closed (%s)', (date, name) => {
    expect(nyseHoliday(date)).toBe(name);
    expect(isTradingDay(date)).toBe(false);
  });

  it('reopened after the one-off closures', () => {
    expect(nextTradingDay('2001-09-10')).toBe('2001-09-17');
    expect(nextTradingDay('2012-10-26')).toBe('2012-10-31');
    expect(nextTradingDay('2025-01-08')).toBe('2025-01-10');
    expect(previousTradingDay('2025-01-10')).toBe('2025-01-08');
  });
});

describe('weekends', () => {
  it.each([
    ['2026-03-07', true], // Saturday
    ['2026-03-08', true], // Sunday
    ['2026-03-09', false], // Monday
    ['2026-03-13', false], // Friday
    ['2026-07-04', true],
  ])('isWeekend(%s) is %s', (date, weekend) => {
    expect(isWeekend(date)).toBe(weekend);
    if (weekend) {
      expect(isTradingDay(date)).toBe(false);
      expect(nyseHoliday(date)).toBeNull();
    }
  });

  it.each(['2026-03-09', '2026-03-10', '2026-03-11', '2026-03-12', '2026-03-13'])('%s is a trading day', (date) => {
    expect(isTradingDay(date)).toBe(true);
  });
});

describe('next / previous trading day', () => {
  it.each([
    // [date, next, previous]
    ['2026-03-11', '2026-03-12', '2026-03-10'], // mid-week
    ['2026-03-13', '2026-03-16', '2026-03-12'], // Friday → Monday
    ['2026-03-14', '2026-03-16', '2026-03-13'], // from a Saturday
    ['2026-01-16', '2026-01-20', '2026-01-15'], // MLK long weekend
    ['2026-04-02', '2026-04-06', '2026-04-01'], // Good Friday long weekend
    ['2026-07-02', '2026-07-06', '2026-07-01'], // Jul 3 (observed) + weekend
    ['2026-07-06', '2026-07-07', '2026-07-02'],
    ['2026-11-25', '2026-11-27', '2026-11-24'], // Thanksgiving
    ['2026-12-24', '2026-12-28', '2026-12-23'], // Christmas Friday
    ['2025-12-31', '2026-01-02', '2025-12-30'], // year end
    ['2022-12-30', '2023-01-03', '2022-12-29'], // Sun Jan 1 observed Mon Jan 2
    ['2021-12-23', '2021-12-27', '2021-12-22'], // Sat Christmas observed Fri
  ])('%s → next %s, previous %s', (date, next, previous) => {
    expect(nextTradingDay(date)).toBe(next);
    expect(previousTradingDay(date)).toBe(previous);
  });

  it('is strict even on a trading day', () => {
    expect(nextTradingDay('2026-03-09')).toBe('2026-03-10');
    expect(previousTradingDay('2026-03-09')).toBe('2026-03-06');
  });
});

describe('tradingDaysBetween', () => {
  it.each([
    [2023, 250],
    [2024, 252],
    [2025, 250],
    [2026, 251],
    [2020, 253],
    [2021, 252],
    [2022, 251],
  ])('%i has %i trading days', (year, count) => {
    expect(tradingDaysBetween(`${year}-01-01`, `${year}-12-31`)).toHaveLength(count);
  });

  it('is inclusive at both ends and skips closures', () => {
    expect(tradingDaysBetween('2026-07-01', '2026-07-07')).toEqual([
      '2026-07-01',
      '2026-07-02',
      '2026-07-06',
      '2026-07-07',
    ]);
    expect(tradingDaysBetween('2026-03-09', '2026-03-09')).toEqual(['2026-03-09']);
    expect(tradingDaysBetween('2026-03-07', '2026-03-08')).toEqual([]);
  });

  it('returns [] when from is after to', () => {
    expect(tradingDaysBetween('2026-03-10', '2026-03-09')).toEqual([]);
  });
});

describe('addTradingDays', () => {
  it.each([
    ['2026-07-02', 1, '2026-07-06'],
    ['2026-07-06', -1, '2026-07-02'],
    ['2026-07-04', 1, '2026-07-06'], // from a non-trading day
    ['2026-07-04', -1, '2026-07-02'],
    ['2026-03-09', 5, '2026-03-16'],
    ['2026-03-16', -5, '2026-03-09'],
    ['2024-01-02', 251, '2024-12-31'],
    ['2026-03-09', 0, '2026-03-09'],
  ])('addTradingDays(%s, %i) = %s', (date, n, expected) => {
    expect(addTradingDays(date, n)).toBe(expected);
  });

  it('throws for n = 0 on a non-trading day, and for a non-integer n', () => {
    expect(() => addTradingDays('2026-07-03', 0)).toThrow(/2026-07-03 is not a trading day/);
    expect(() => addTradingDays('2026-07-03', 1.5)).toThrow(/1.5/);
  });
});

describe('earlyClose', () => {
  it.each([
    ['2024-07-03', '13:00'],
    ['2024-11-29', '13:00'],
    ['2024-12-24', '13:00'],
    ['2025-07-03', '13:00'],
    ['2025-11-28', '13:00'],
    ['2025-12-24', '13:00'],
    ['2026-11-27', '13:00'],
    ['2026-12-24', '13:00'],
    ['2023-07-03', '13:00'],
    ['2026-07-03', null], // Independence Day observed: closed all day
    ['2026-07-02', null],
    ['2021-12-24', null], // Christmas observed: closed all day
    ['2023-12-22', null], // Dec 24 2023 was a Sunday
    ['2026-03-09', null],
    ['2026-03-07', null],
  ])('%s → %s', (date, expected) => {
    expect(earlyClose(date)).toBe(expected);
  });
});

describe('describeDate', () => {
  it.each([
    [
      '2026-07-03',
      {
        date: '2026-07-03',
        dateKey: 20260703,
        dayOfWeek: 5,
        isWeekend: false,
        isTradingDay: false,
        holidayName: 'Independence Day (observed)',
        earlyClose: null,
      },
    ],
    [
      '2026-07-05',
      {
        date: '2026-07-05',
        dateKey: 20260705,
        dayOfWeek: 7,
        isWeekend: true,
        isTradingDay: false,
        holidayName: null,
        earlyClose: null,
      },
    ],
    [
      '2026-11-27',
      {
        date: '2026-11-27',
        dateKey: 20261127,
        dayOfWeek: 5,
        isWeekend: false,
        isTradingDay: true,
        holidayName: null,
        earlyClose: '13:00',
      },
    ],
    [
      '2026-03-09',
      {
        date: '2026-03-09',
        dateKey: 20260309,
        dayOfWeek: 1,
        isWeekend: false,
        isTradingDay: true,
        holidayName: null,
        earlyClose: null,
      },
    ],
  ])('%s', (date, expected) => {
    expect(describeDate(date)).toEqual(expected);
  });
});

describe('tradingDateOf', () => {
  it.each([
    // 06:30Z on the DST-start Sunday is 01:30 EST, before the 02:00 jump.
    ['2026-03-08T06:30:00Z', 'America/New_York', '2026-03-08'],
    // After DST ended (Nov 1, 06:00Z) New York is UTC-5: 01:30Z Nov 2 is 20:30 EST Nov 1.
    ['2026-11-02T01:30:00Z', 'America/New_York', '2026-11-01'],
    // A Sunday-evening New York fill (18:00 EST) belongs to Sunday, not to Monday's UTC date.
    ['2026-01-11T23:00:00Z', 'America/New_York', '2026-01-11'],
    ['2026-01-11T18:00:00-05:00', 'America/New_York', '2026-01-11'],
    ['2026-03-09T03:59:59Z', 'America/New_York', '2026-03-08'], // 23:59:59 EDT Sunday
    ['2026-03-09T04:00:00Z', 'America/New_York', '2026-03-09'], // midnight EDT Monday
    ['2026-01-11T23:00:00Z', 'UTC', '2026-01-11'],
    ['2026-01-11T23:00:00Z', 'Asia/Tokyo', '2026-01-12'],
    ['2026-01-12T08:30:00+09:00', 'Europe/London', '2026-01-11'],
  ])('%s in %s is %s', (instant, tz, expected) => {
    expect(tradingDateOf(instant, tz)).toBe(expected);
  });

  it('accepts a Date', () => {
    expect(tradingDateOf(new Date('2026-01-11T23:00:00Z'), 'America/New_York')).toBe('2026-01-11');
  });

  it.each([
    ['2026-01-11T23:00:00', 'America/New_York', /offset/], // no offset: would depend on the host zone
    ['not-an-instant', 'America/New_York', /not-an-instant/],
    ['2026-01-11T23:00:00Z', 'Mars/Olympus_Mons', /Mars\/Olympus_Mons/],
    ['2026-02-30T10:00:00Z', 'UTC', /2026-02-30/],
  ])('rejects %s in %s', (instant, tz, message) => {
    expect(() => tradingDateOf(instant, tz)).toThrow(message);
  });

  it('rejects an invalid Date', () => {
    expect(() => tradingDateOf(new Date('nope'), 'UTC')).toThrow(/invalid/i);
  });
});

describe('input validation', () => {
  const fns: Array<[string, (date: string) => unknown]> = [
    ['nyseHoliday', nyseHoliday],
    ['isWeekend', isWeekend],
    ['isTradingDay', isTradingDay],
    ['nextTradingDay', nextTradingDay],
    ['previousTradingDay', previousTradingDay],
    ['earlyClose', earlyClose],
    ['describeDate', describeDate],
    ['addTradingDays', (d) => addTradingDays(d, 1)],
    ['tradingDaysBetween(from)', (d) => tradingDaysBetween(d, '2026-12-31')],
    ['tradingDaysBetween(to)', (d) => tradingDaysBetween('2026-01-01', d)],
  ];
  const bad = ['not-a-date', '2026-02-30', '2026-13-01', '2026-00-10', '2026-1-5', '2026-01-05T00:00:00Z', '', '2025-02-29'];

  describe.each(fns)('%s', (_name, fn) => {
    it.each(bad)('rejects %j, naming it', (value) => {
      expect(() => fn(value)).toThrow(value === '' ? /''/ : value);
    });
  });

  it('accepts a leap day', () => {
    expect(isTradingDay('2024-02-29')).toBe(true);
  });
});
