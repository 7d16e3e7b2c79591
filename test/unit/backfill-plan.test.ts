import { describe, expect, it } from 'vitest';
import { planBackfill, yearBefore } from '../../src/enrichment/backfills.ts';

describe('a backfill request without from', () => {
  it('starts a calendar year before its end, across 29 February too', () => {
    expect(yearBefore('2026-11-20')).toBe('2025-11-20');
    expect(yearBefore('2024-03-01')).toBe('2023-03-01');
    expect(yearBefore('2025-03-01')).toBe('2024-03-01');
    expect(yearBefore('2024-02-29')).toBe('2023-02-28');
    const plan = planBackfill({ symbols: ['AAPL'], timeframes: '1d', to: '2024-03-01' }, { defaultSource: 'synthetic', maxBars: 1e9, now: Date.parse('2026-11-20T12:00:00Z') });
    expect(plan.from).toBe('2023-03-01');
  });
});
