import { describe, expect, it } from 'vitest';
import { createDimDateRows, missingDimDateRanges } from '../../src/analytics/dim-date.ts';

describe('missingDimDateRanges', () => {
  it.each([
    ['empty table: the whole years of the range', { from: null, to: null }, '2026-03-02', '2026-03-05', [['2026-01-01', '2026-12-31']]],
    ['covered: nothing', { from: '2025-01-01', to: '2026-12-31' }, '2025-06-01', '2026-02-01', []],
    ['earlier years, up to the day before coverage', { from: '2025-01-01', to: '2026-12-31' }, '2019-07-05', '2025-01-02', [['2019-01-01', '2024-12-31']]],
    ['later years, from the day after coverage', { from: '2025-01-01', to: '2026-12-31' }, '2026-11-21', '2027-12-31', [['2027-01-01', '2027-12-31']]],
    ['both sides', { from: '2025-01-01', to: '2025-12-31' }, '2024-02-29', '2026-01-01', [['2024-01-01', '2024-12-31'], ['2026-01-01', '2026-12-31']]],
  ] as const)('%s', (_, coverage, from, to, expected) => {
    expect(missingDimDateRanges(coverage, from, to)).toEqual(expected);
  });
});

describe('createDimDateRows', () => {
  it('names NYSE closures on weekdays only and marks half days', () => {
    const rows = createDimDateRows('2026-11-26', '2026-11-29');
    expect(rows.map((r) => [r.date, r.dayName, r.isTradingDay, r.isHoliday, r.holidayName, r.earlyClose])).toEqual([
      ['2026-11-26', 'Thursday', false, true, expect.stringMatching(/Thanksgiving/), null],
      ['2026-11-27', 'Friday', true, false, null, '13:00'],
      ['2026-11-28', 'Saturday', false, false, null, null],
      ['2026-11-29', 'Sunday', false, false, null, null],
    ]);
  });
});
