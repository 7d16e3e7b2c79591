import { Decimal } from 'decimal.js';
import { describe, expect, it } from 'vitest';
import { BadInputError } from '../../src/errors.ts';
import {
  applyFill,
  applyFills,
  averageCost,
  compareFills,
  emptyPosition,
  positionQuantity,
  type Fill,
  type FillResult,
  type Lot,
  type Position,
} from '../../src/analytics/fifo.ts';

/** Fill n of a sequence: id String(n), executed n minutes after 14:30Z, so ids and times agree. */
function fill(n: number, side: 'BUY' | 'SELL', quantity: string, price: string): Fill {
  return { executionId: String(n), executedAt: at(n), side, quantity, price };
}

function at(n: number): string {
  return new Date(Date.UTC(2026, 2, 2, 14, 30 + n)).toISOString();
}

function lot(quantity: string, price: string, n: number): Lot {
  return { quantity, price, openedAt: at(n), executionId: String(n) };
}

/** The fields of a FillResult a case spells out; executionId is implied by order. */
type Expected = [realizedPnl: string, closedQuantity: string, openedQuantity: string, positionAfter: string];

interface Case {
  name: string;
  fills: Fill[];
  results: Expected[];
  side: Position['side'];
  lots: Lot[];
}

const CASES: Case[] = [
  {
    // buy 100 @ 10, sell 100 @ 12.5: 100 × (12.5 − 10) = 250; flat.
    name: 'simple long round trip',
    fills: [fill(1, 'BUY', '100', '10'), fill(2, 'SELL', '100', '12.5')],
    results: [
      ['0', '0', '100', '100'],
      ['250', '100', '0', '0'],
    ],
    side: 'FLAT',
    lots: [],
  },
  {
    // buy 10 @ 100.50, sell 10 @ 99.25: 10 × (99.25 − 100.50) = 10 × −1.25 = −12.5.
    name: 'long round trip at a loss',
    fills: [fill(1, 'BUY', '10', '100.50'), fill(2, 'SELL', '10', '99.25')],
    results: [
      ['0', '0', '10', '10'],
      ['-12.5', '10', '0', '0'],
    ],
    side: 'FLAT',
    lots: [],
  },
  {
    // buy 100 @ 10, sell 40 @ 12: 40 × (12 − 10) = 80; the lot keeps 100 − 40 = 60 @ 10,
    // still opened by fill 1 at its own time.
    name: 'partial close',
    fills: [fill(1, 'BUY', '100', '10'), fill(2, 'SELL', '40', '12')],
    results: [
      ['0', '0', '100', '100'],
      ['80', '40', '0', '60'],
    ],
    side: 'LONG',
    lots: [lot('60', '10', 1)],
  },
  {
    // buy 10 @ 1, 20 @ 2, 30 @ 3 (60 long), sell 45 @ 4, oldest first:
    // 10 × (4 − 1) + 20 × (4 − 2) + 15 × (4 − 3) = 30 + 40 + 15 = 85; 30 − 15 = 15 left @ 3.
    name: 'close across many lots',
    fills: [fill(1, 'BUY', '10', '1'), fill(2, 'BUY', '20', '2'), fill(3, 'BUY', '30', '3'), fill(4, 'SELL', '45', '4')],
    results: [
      ['0', '0', '10', '10'],
      ['0', '0', '20', '30'],
      ['0', '0', '30', '60'],
      ['85', '45', '0', '15'],
    ],
    side: 'LONG',
    lots: [lot('15', '3', 3)],
  },
  {
    // sell 50 @ 20, buy 50 @ 18: short lot, 50 × (18 − 20) × −1 = +100.
    name: 'short open and cover',
    fills: [fill(1, 'SELL', '50', '20'), fill(2, 'BUY', '50', '18')],
    results: [
      ['0', '0', '50', '-50'],
      ['100', '50', '0', '0'],
    ],
    side: 'FLAT',
    lots: [],
  },
  {
    // sell 50 @ 20, buy 30 @ 23: 30 × (23 − 20) × −1 = −90; short 20 @ 20 left.
    name: 'short cover at a loss (partial)',
    fills: [fill(1, 'SELL', '50', '20'), fill(2, 'BUY', '30', '23')],
    results: [
      ['0', '0', '50', '-50'],
      ['-90', '30', '0', '-20'],
    ],
    side: 'SHORT',
    lots: [lot('20', '20', 1)],
  },
  {
    // buy 100 @ 10, sell 150 @ 12: closes 100 × (12 − 10) = 200, opens the other
    // 150 − 100 = 50 short at the fill price 12; one result with the full 150.
    name: 'flip long → short',
    fills: [fill(1, 'BUY', '100', '10'), fill(2, 'SELL', '150', '12')],
    results: [
      ['0', '0', '100', '100'],
      ['200', '100', '50', '-50'],
    ],
    side: 'SHORT',
    lots: [lot('50', '12', 2)],
  },
  {
    // sell 30 @ 31, sell 50 @ 29 (80 short), buy 100 @ 25:
    // 30 × (25 − 31) × −1 + 50 × (25 − 29) × −1 = 180 + 200 = 380; opens 100 − 80 = 20 long @ 25.
    name: 'flip short → long across lots',
    fills: [fill(1, 'SELL', '30', '31'), fill(2, 'SELL', '50', '29'), fill(3, 'BUY', '100', '25')],
    results: [
      ['0', '0', '30', '-30'],
      ['0', '0', '50', '-80'],
      ['380', '80', '20', '20'],
    ],
    side: 'LONG',
    lots: [lot('20', '25', 3)],
  },
  {
    // buy 10 @ 5, sell 10 @ 4 (−10, flat), then sell 5 @ 6 opens a fresh short, buy 2 @ 7:
    // 2 × (7 − 6) × −1 = −2; short 3 @ 6.
    name: 'flat then reopen the other way',
    fills: [fill(1, 'BUY', '10', '5'), fill(2, 'SELL', '10', '4'), fill(3, 'SELL', '5', '6'), fill(4, 'BUY', '2', '7')],
    results: [
      ['0', '0', '10', '10'],
      ['-10', '10', '0', '0'],
      ['0', '0', '5', '-5'],
      ['-2', '2', '0', '-3'],
    ],
    side: 'SHORT',
    lots: [lot('3', '6', 3)],
  },
  {
    // Binary floats: 3 × 0.3 − 3 × 0.1 = 0.5999999999999999. Exact: 3 × (0.3 − 0.1) = 0.6.
    name: 'exact: 0.1 / 0.3 prices',
    fills: [fill(1, 'BUY', '3', '0.1'), fill(2, 'SELL', '3', '0.3')],
    results: [
      ['0', '0', '3', '3'],
      ['0.6', '3', '0', '0'],
    ],
    side: 'FLAT',
    lots: [],
  },
  {
    // 1e9 × (12345.6789 − 12345.6788) = 1e9 × 0.0001 = 100000 exactly;
    // binary floats give 1e9 × (12345.6789 − 12345.6788) = 100000.00111176632.
    name: 'exact: 1e9 shares, one-tick move',
    fills: [fill(1, 'BUY', '1000000000', '12345.6788'), fill(2, 'SELL', '1000000000', '12345.6789')],
    results: [
      ['0', '0', '1000000000', '1000000000'],
      ['100000', '1000000000', '0', '0'],
    ],
    side: 'FLAT',
    lots: [],
  },
  {
    // 1e9 × (24691.3578 − 12345.6789) = 1e9 × 12345.6789 = 12345678900000; then a
    // fractional, 27-significant-digit quantity: q = 123456789012345678.123456789,
    // q × (12345.6789 − 0.000000001) = q × 12345.678899999 = 1524157875171344421125.939729340928643211.
    name: 'exact: large notionals',
    fills: [
      fill(1, 'BUY', '1000000000', '12345.6789'),
      fill(2, 'SELL', '1000000000', '24691.3578'),
      fill(3, 'BUY', '123456789012345678.123456789', '0.000000001'),
      fill(4, 'SELL', '123456789012345678.123456789', '12345.6789'),
    ],
    results: [
      ['0', '0', '1000000000', '1000000000'],
      ['12345678900000', '1000000000', '0', '0'],
      ['0', '0', '123456789012345678.123456789', '123456789012345678.123456789'],
      ['1524157875171344421125.939729340928643211', '123456789012345678.123456789', '0', '0'],
    ],
    side: 'FLAT',
    lots: [],
  },
  {
    // Inputs as postgres numeric text: '187.2500' comes back canonical as '187.25'.
    // 0.5 × (187.3 − 187.25) = 0.025; 25.5 left.
    name: 'normalisation of numeric strings',
    fills: [fill(1, 'BUY', '26.000', '187.2500'), fill(2, 'SELL', '0.50', '187.3000')],
    results: [
      ['0', '0', '26', '26'],
      ['0.025', '0.5', '0', '25.5'],
    ],
    side: 'LONG',
    lots: [lot('25.5', '187.25', 1)],
  },
];

function expectResults(results: FillResult[], expected: Expected[], ids: string[]): void {
  expect(results.map((r) => [r.realizedPnl, r.closedQuantity, r.openedQuantity, r.positionAfter])).toEqual(expected);
  expect(results.map((r) => r.executionId)).toEqual(ids);
}

describe('applyFills: hand-worked cases', () => {
  it.each(CASES)('$name', ({ fills, results: expected, side, lots }) => {
    const { position, results } = applyFills(emptyPosition(), fills);
    expectResults(results, expected, fills.map((f) => f.executionId));
    expect(position.side).toBe(side);
    expect(position.lots).toStrictEqual(lots);
    expect(positionQuantity(position)).toBe(expected.at(-1)?.[3]);
  });

  it.each(CASES)('$name: one fill at a time gives the same', ({ fills }) => {
    const batch = applyFills(emptyPosition(), fills);
    let position = emptyPosition();
    const results: FillResult[] = [];
    for (const f of fills) {
      const step = applyFill(position, f);
      position = step.position;
      results.push(step.result);
    }
    expect(results).toEqual(batch.results);
    expect(position).toEqual(batch.position);
  });

  it.each(CASES)('$name: any arrival order gives the same', ({ fills }) => {
    const inOrder = applyFills(emptyPosition(), fills);
    for (const shuffled of [[...fills].reverse(), rotate(fills, 1), rotate(fills, 2)]) {
      expect(applyFills(emptyPosition(), shuffled)).toEqual(inOrder);
    }
  });
});

function rotate<T>(items: T[], by: number): T[] {
  const k = by % Math.max(items.length, 1);
  return [...items.slice(k), ...items.slice(0, k)];
}

describe('order', () => {
  it('breaks executedAt ties by executionId numerically: 9 before 10', () => {
    const t = '2026-03-02T14:30:00Z';
    const buy: Fill = { executionId: '9', executedAt: t, side: 'BUY', quantity: '10', price: '5' };
    const sell: Fill = { executionId: '10', executedAt: t, side: 'SELL', quantity: '10', price: '7' };
    expect(compareFills(buy, sell)).toBeLessThan(0);
    expect(compareFills(sell, buy)).toBeGreaterThan(0);
    // '9' opens long 10 @ 5, then '10' closes it: 10 × (7 − 5) = 20, credited to '10'
    // (string order would run '10' first and credit the 20 to '9').
    for (const fills of [[buy, sell], [sell, buy]]) {
      const { results } = applyFills(emptyPosition(), fills);
      expect(results.map((r) => [r.executionId, r.realizedPnl])).toEqual([
        ['9', '0'],
        ['10', '20'],
      ]);
    }
  });

  it('compares executedAt as exact instants, offsets and microseconds included', () => {
    const f = (executionId: string, executedAt: string): Fill => ({ executionId, executedAt, side: 'BUY', quantity: '1', price: '1' });
    // The same instant in two offsets (and postgres text form): a tie, broken by id.
    expect(compareFills(f('2', '2026-03-02T15:00:00Z'), f('1', '2026-03-02T10:00:00-05:00'))).toBeGreaterThan(0);
    expect(compareFills(f('1', '2026-03-02 15:00:00+00'), f('2', '2026-03-02T10:00:00.000-0500'))).toBeLessThan(0);
    // Microseconds beat the id: .000002 is later than .000001 even with a smaller id.
    expect(compareFills(f('1', '2026-03-02T15:00:00.000002Z'), f('2', '2026-03-02T15:00:00.000001Z'))).toBeGreaterThan(0);
    // '.12' < '.123' < '.2' as fractions.
    expect(compareFills(f('9', '2026-03-02T15:00:00.12Z'), f('1', '2026-03-02T15:00:00.123Z'))).toBeLessThan(0);
    expect(compareFills(f('9', '2026-03-02T15:00:00.123Z'), f('1', '2026-03-02T15:00:00.2Z'))).toBeLessThan(0);
    // Across midnight and a date line: 2026-03-01T23:30-05:00 is 2026-03-02T04:30Z.
    expect(compareFills(f('1', '2026-03-01T23:30:00-05:00'), f('2', '2026-03-02T04:00:00Z'))).toBeGreaterThan(0);
    // Integer ids in numeric order; integer ids before other ids.
    expect(compareFills(f('100', '2026-03-02T15:00:00Z'), f('99', '2026-03-02T15:00:00Z'))).toBeGreaterThan(0);
    expect(compareFills(f('100', '2026-03-02T15:00:00Z'), f('1a', '2026-03-02T15:00:00Z'))).toBeLessThan(0);
  });

  it('orders negative integer ids numerically, as PostgreSQL orders bigints: -10 < -5 < 0 < 3', () => {
    const t = '2026-03-02T14:30:00Z';
    const id = (executionId: string): Fill => ({ executionId, executedAt: t, side: 'BUY', quantity: '1', price: '1' });
    expect(compareFills(id('-5'), id('3'))).toBeLessThan(0);
    expect(compareFills(id('-10'), id('-5'))).toBeLessThan(0);
    expect(compareFills(id('-5'), id('0'))).toBeLessThan(0);
    expect(compareFills(id('-1'), id('1a'))).toBeLessThan(0);
    // -5 opens long 10 @ 10, then 3 closes it: 10 × (12 − 10) = 20, credited to 3.
    const buy: Fill = { executionId: '-5', executedAt: t, side: 'BUY', quantity: '10', price: '10' };
    const sell: Fill = { executionId: '3', executedAt: t, side: 'SELL', quantity: '10', price: '12' };
    const { position, results } = applyFills(emptyPosition(), [sell, buy]);
    expect(results.map((r) => [r.executionId, r.realizedPnl])).toEqual([
      ['-5', '0'],
      ['3', '20'],
    ]);
    // Applied one at a time, as two ETL runs would: 3 sorts after the stored -5.
    const first = applyFill(emptyPosition(), buy).position;
    expect(applyFill(first, sell).result.realizedPnl).toBe('20');
    expect(position.lastFill?.executionId).toBe('3');
  });

  it('refuses a fill that sorts before one already applied (a late fill must be replayed)', () => {
    const { position } = applyFills(emptyPosition(), [fill(1, 'BUY', '10', '5'), fill(3, 'SELL', '10', '6')]);
    expect(position.side).toBe('FLAT');
    expect(position.lastFill).toEqual({ executionId: '3', executedAt: at(3) });
    expect(() => applyFill(position, fill(2, 'SELL', '1', '6'))).toThrow(BadInputError);
    expect(() => applyFill(position, fill(2, 'SELL', '1', '6'))).toThrow(/fill 2: .*does not sort after fill 3/);
    // Without lastFill, the open lots' opening fills still bound the order.
    const open: Position = { side: 'LONG', lots: [lot('10', '5', 4)] };
    expect(() => applyFill(open, fill(2, 'SELL', '1', '6'))).toThrow(/does not sort after fill 4/);
    expect(applyFill(open, fill(5, 'SELL', '1', '6')).result.realizedPnl).toBe('1');
  });

  it('refuses the same executionId twice in one batch', () => {
    expect(() => applyFills(emptyPosition(), [fill(1, 'BUY', '10', '5'), { ...fill(1, 'BUY', '10', '5'), executedAt: at(2) }])).toThrow(
      /fill 1: executionId appears more than once/,
    );
  });
});

describe('positions', () => {
  it('averageCost after partial fills', () => {
    // buy 100 @ 10, buy 50 @ 13: (100 × 10 + 50 × 13) / 150 = 1650 / 150 = 11.
    let { position } = applyFills(emptyPosition(), [fill(1, 'BUY', '100', '10'), fill(2, 'BUY', '50', '13')]);
    expect(averageCost(position)).toBe('11');
    // sell 120 @ 15: 100 × (15 − 10) + 20 × (15 − 13) = 500 + 40 = 540; 30 @ 13 left.
    const sold = applyFill(position, fill(3, 'SELL', '120', '15'));
    expect(sold.result.realizedPnl).toBe('540');
    position = sold.position;
    expect(position.lots).toEqual([lot('30', '13', 2)]);
    expect(averageCost(position)).toBe('13');
    // buy 10 @ 17: (30 × 13 + 10 × 17) / 40 = 560 / 40 = 14.
    position = applyFill(position, fill(4, 'BUY', '10', '17')).position;
    expect(averageCost(position)).toBe('14');
    expect(positionQuantity(position)).toBe('40');
  });

  it('averageCost of a short, and of flat', () => {
    // sell 10 @ 20.5, sell 30 @ 20.1: (205 + 603) / 40 = 808 / 40 = 20.2.
    const { position } = applyFills(emptyPosition(), [fill(1, 'SELL', '10', '20.5'), fill(2, 'SELL', '30', '20.1')]);
    expect(averageCost(position)).toBe('20.2');
    expect(positionQuantity(position)).toBe('-40');
    expect(averageCost(emptyPosition())).toBeNull();
    expect(positionQuantity(emptyPosition())).toBe('0');
  });

  it('averageCost rounds half-even to 12 places (or the largest price scale)', () => {
    const avg = (...lots: Lot[]): string | null => averageCost({ side: 'LONG', lots });
    // (1 × 1 + 2 × 2) / 3 = 5 / 3 = 1.666666666666|67 → 1.666666666667.
    expect(avg(lot('1', '1', 1), lot('2', '2', 2))).toBe('1.666666666667');
    // (1 + 1.000000000001) / 2 = 1.000000000000|5, a tie: half-even keeps the even 1.000000000000.
    expect(avg(lot('1', '1', 1), lot('1', '1.000000000001', 2))).toBe('1');
    // (1.000000000001 + 1.000000000002) / 2 = 1.000000000001|5 → even 1.000000000002.
    expect(avg(lot('1', '1.000000000001', 1), lot('1', '1.000000000002', 2))).toBe('1.000000000002');
    // A price with 15 places widens the scale so one lot's average is its price.
    expect(avg(lot('7', '0.000000000000001', 1))).toBe('0.000000000000001');
    // (1e9 × 12345.6789 + 1 × 0.0001) / 1000000001 = 12345.678887654321|2123… → 12 places, rounded down.
    expect(avg(lot('1000000000', '12345.6789', 1), lot('1', '0.0001', 2))).toBe('12345.678887654321');
  });

  it('carries strategyKey from the opening fill, and keeps a partial lot’s openedAt and id', () => {
    const { position } = applyFills(emptyPosition(), [
      { ...fill(1, 'BUY', '10', '5'), strategyKey: 7 },
      { ...fill(2, 'BUY', '10', '6'), strategyKey: 8 },
      { ...fill(3, 'SELL', '15', '7'), strategyKey: 9 },
    ]);
    expect(position.lots).toStrictEqual([{ quantity: '5', price: '6', openedAt: at(2), executionId: '2', strategyKey: 8 }]);
  });

  it('never mutates its inputs', () => {
    const start: Position = { side: 'LONG', lots: [lot('10', '1', 1), lot('20', '2', 2)] };
    const fills = [fill(4, 'SELL', '45', '4'), fill(3, 'BUY', '1', '3')];
    const snapshot = structuredClone({ start, fills });
    const { position, results } = applyFills(Object.freeze(start), fills);
    expect({ start, fills }).toEqual(snapshot);
    expect(results.map((r) => r.realizedPnl)).toEqual(['0', '71']);
    // 10 × 3 + 20 × 2 + 1 × 1 = 71 realized; 45 − 31 = 14 short @ 4.
    expect(position).toEqual({ side: 'SHORT', lots: [lot('14', '4', 4)], lastFill: { executionId: '4', executedAt: at(4) } });
  });
});

describe('validation', () => {
  const good = fill(42, 'BUY', '10', '5');
  const BAD_FILLS: Array<[string, Partial<Record<keyof Fill, unknown>>, string]> = [
    ['quantity 0', { quantity: '0' }, 'quantity'],
    ['quantity -5', { quantity: '-5' }, 'quantity'],
    ['quantity NaN', { quantity: 'NaN' }, 'quantity'],
    ['quantity empty', { quantity: '' }, 'quantity'],
    ['quantity Infinity', { quantity: 'Infinity' }, 'quantity'],
    ['quantity exponent', { quantity: '1e3' }, 'quantity'],
    ['quantity padded', { quantity: ' 5' }, 'quantity'],
    ['quantity a number', { quantity: 5 }, 'quantity'],
    ['quantity 0.000', { quantity: '0.000' }, 'quantity'],
    ['price 0', { price: '0' }, 'price'],
    ['price -1.5', { price: '-1.5' }, 'price'],
    ['price missing', { price: undefined }, 'price'],
    ['price of 101 digits', { price: '1'.repeat(101) }, 'price'],
    ['side lower-case', { side: 'buy' }, 'side'],
    ['side LONG', { side: 'LONG' }, 'side'],
    ['executedAt without offset', { executedAt: '2026-03-02T14:30:00' }, 'executedAt'],
    ['executedAt Feb 30', { executedAt: '2026-02-30T14:30:00Z' }, 'executedAt'],
  ];

  it.each(BAD_FILLS)('%s: BadInputError naming the execution id and field', (_name, patch, field) => {
    const bad = { ...good, ...patch } as Fill;
    expect(() => applyFill(emptyPosition(), bad)).toThrow(BadInputError);
    expect(() => applyFill(emptyPosition(), bad)).toThrow(new RegExp(`^fill 42: ${field} `));
  });

  it('names the fill even when it comes second in a batch', () => {
    expect(() => applyFills(emptyPosition(), [good, { ...fill(43, 'SELL', '1', '5'), quantity: '0' }])).toThrow(
      /^fill 43: quantity must be greater than 0, got '0'$/,
    );
    expect(() => applyFill(emptyPosition(), { ...good, side: 'buy' as never })).toThrow(
      /^fill 42: side must be exactly BUY or SELL, got 'buy'$/,
    );
  });

  it('refuses a missing executionId and an inconsistent position', () => {
    expect(() => applyFill(emptyPosition(), { ...good, executionId: '' })).toThrow(/executionId must be a non-empty string/);
    expect(() => applyFill({ side: 'FLAT', lots: [lot('1', '1', 1)] }, good)).toThrow(BadInputError);
    expect(() => applyFill({ side: 'LONG', lots: [] }, good)).toThrow(/FLAT exactly when it has no lots/);
    expect(() => positionQuantity({ side: 'LONG', lots: [lot('0', '1', 7)] })).toThrow(/^position lot 7: quantity must be greater than 0/);
  });
});

describe('fast paths agree with the general ones', () => {
  /** Deterministic PRNG (mulberry32), so a failure is reproducible. */
  function prng(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const byTime = (executionId: string, executedAt: string): Fill => ({ executionId, executedAt, side: 'BUY', quantity: '1', price: '1' });
  /** Two spellings name the same instant when ids alone order them, both ways round. */
  function expectSameInstant(x: string, y: string): void {
    expect(compareFills(byTime('1', x), byTime('2', y)), `${x} vs ${y}`).toBeLessThan(0);
    expect(compareFills(byTime('2', x), byTime('1', y)), `${x} vs ${y}`).toBeGreaterThan(0);
  }

  it('instants: fixed-width forms (fast path) equal the comma and no-seconds forms (general parser)', () => {
    const random = prng(7);
    const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
    for (let i = 0; i < 500; i++) {
      // Any instant from 1900 to 2100 with microseconds, written in a zone from −12:00 to +14:00.
      const micros = Math.floor(random() * 1e6);
      const ms = Date.UTC(1900, 0, 1) + Math.floor(random() * 200 * 365.25 * 86_400) * 1000;
      const zoneMinutes = (Math.floor(random() * 105) - 48) * 15;
      const wall = new Date(ms + zoneMinutes * 60_000).toISOString(); // the local wall clock, in ISO shape
      const sign = zoneMinutes < 0 ? '-' : '+';
      const [oh, om] = [pad(Math.floor(Math.abs(zoneMinutes) / 60)), pad(Math.abs(zoneMinutes) % 60)];
      const date = wall.slice(0, 10);
      const time = wall.slice(11, 19);
      const fraction = pad(micros, 6);
      const fast = [`${date} ${time}.${fraction}${sign}${oh}:${om}`, `${date}T${time}.${fraction}${sign}${oh}${om}`];
      if (om === '00') fast.push(`${date} ${time}.${fraction}${sign}${oh}`);
      if (zoneMinutes === 0) fast.push(`${date}T${time}.${fraction}Z`, `${date}T${time}.${fraction}000z`);
      const general = `${date}T${time},${fraction}${sign}${oh}:${om}`; // ',' is left to the general parser
      for (const form of fast) expectSameInstant(form, general);
      // One microsecond later is later, whatever the ids say.
      const next = micros === 999_999 ? null : `${date}T${time},${pad(micros + 1, 6)}${sign}${oh}:${om}`;
      if (next !== null) expect(compareFills(byTime('2', fast[0] as string), byTime('1', next))).toBeLessThan(0);
      // Whole seconds: no fraction, and the minute-only form the general parser alone reads.
      if (wall.slice(17, 19) === '00') expectSameInstant(`${date} ${time}${sign}${oh}${om}`, `${date}T${wall.slice(11, 16)}${sign}${oh}:${om}`);
    }
  });

  it('instants: fixed-width strings the fast path refuses are still refused with the usual message', () => {
    const good = fill(42, 'BUY', '10', '5');
    const bad = [
      '2026-02-29 14:30:00+00', // not a leap year
      '2100-02-29T14:30:00Z', // nor is 2100
      '2026-04-31T14:30:00Z',
      '2026-00-10T14:30:00Z',
      '2026-03-00T14:30:00Z',
      '2026-03-02 24:00:00+00',
      '2026-03-02T14:60:00Z',
      '2026-03-02T14:30:60Z',
      '2026-03-02T14:30:00+24',
      '2026-03-02T14:30:00+05:60',
      '2026-03-02T14:30:00+5',
      '2026-03-02T14:30:00+05:3',
      '2026-03-02T14:30:00+05:00:00',
      '2026-03-02T14:30:00.Z',
      '2026-03-02T14:30:00.123',
      '2026-03-02T14:30:00.12a+00',
      '2026-03-02T14:30:00ZZ',
      '2026-03-02t14:30:00Z',
      '2026-3-02T14:30:00.000Z',
      '２026-03-02T14:30:00Z', // a full-width digit
    ];
    for (const executedAt of bad) {
      expect(() => applyFill(emptyPosition(), { ...good, executedAt }), executedAt).toThrow(
        new RegExp(`^fill 42: executedAt must be an ISO 8601 instant with an offset, e\\.g\\. .*got '${executedAt.replace(/[.+]/g, '\\$&')}'$`),
      );
    }
    // Leap days that exist are accepted on both paths.
    expectSameInstant('2024-02-29 23:59:59.5+00', '2024-02-29T23:59:59,500Z');
    expectSameInstant('2000-02-29T00:00:00Z', '2000-02-29T00:00+00:00');
  });

  it('execution ids with leading zeros compare numerically, then by spelling', () => {
    const t = '2026-03-02T15:00:00Z';
    expect(compareFills(byTime('010', t), byTime('9', t))).toBeGreaterThan(0);
    expect(compareFills(byTime('0009', t), byTime('10', t))).toBeLessThan(0);
    // The same number spelled twice: code unit order keeps the order total ('09' < '9').
    expect(compareFills(byTime('09', t), byTime('9', t))).toBeLessThan(0);
    expect(compareFills(byTime('9', t), byTime('09', t))).toBeGreaterThan(0);
    expect(compareFills(byTime('0', t), byTime('00', t))).toBeLessThan(0);
    expect(compareFills(byTime('00', t), byTime('a', t))).toBeLessThan(0);
  });
});

describe('exact fixed-point arithmetic', () => {
  const HighPrecision = Decimal.clone({ precision: 1000, toExpNeg: -9e15, toExpPos: 9e15 });
  const canonical = (value: Decimal): string => (value.isZero() ? '0' : value.toFixed());

  it('integers past 2^53 and at the 15/16-digit boundary stay exact', () => {
    // buy q @ 1, sell q @ 2 realizes exactly q; a double would turn 9007199254740993 into …992.
    for (const q of ['999999999999999', '9007199254740993', '90071992547409.93', '0.000000000000001', '1000000000000000']) {
      const { results } = applyFills(emptyPosition(), [fill(1, 'BUY', q, '1'), fill(2, 'SELL', q, '2')]);
      expect(results[1]?.realizedPnl).toBe(q);
      expect(results[0]?.positionAfter).toBe(q);
    }
  });

  it('many fraction digits and the 100-digit limit', () => {
    const q = `${'9'.repeat(50)}.${'9'.repeat(50)}`; // 100 digits: accepted
    const p1 = `0.${'0'.repeat(98)}1`; // 100 digits, the smallest price there is
    const p2 = `${'8'.repeat(60)}.${'7'.repeat(40)}`;
    const { position, results } = applyFills(emptyPosition(), [fill(1, 'SELL', q, p1), fill(2, 'BUY', '3.5', p2)]);
    const realized = new HighPrecision('3.5').mul(new HighPrecision(p1).sub(p2)); // short lot: qty × (lot − fill)
    expect(results[1]).toEqual({
      executionId: '2',
      realizedPnl: canonical(realized),
      closedQuantity: '3.5',
      openedQuantity: '0',
      positionAfter: canonical(new HighPrecision(q).sub('3.5').neg()),
      openCost: canonical(new HighPrecision(q).sub('3.5').mul(p1)),
    });
    expect(position.lots).toStrictEqual([{ quantity: canonical(new HighPrecision(q).sub('3.5')), price: p1, openedAt: at(1), executionId: '1' }]);
    expect(() => applyFill(emptyPosition(), fill(3, 'BUY', `${q}9`, '1'))).toThrow(/^fill 3: quantity has 101 digits, more than the 100 accepted$/);
  });

  it('stored lots at one scale meet fills at another (and trailing zeros stay canonical)', () => {
    const start: Position = {
      side: 'LONG',
      lots: [
        { quantity: '100', price: '187.2500', openedAt: at(1), executionId: '1' },
        { quantity: '0.125000', price: '23.4567', openedAt: at(2), executionId: '2' },
        { quantity: '7', price: '010.5', openedAt: at(3), executionId: '3' },
      ],
    };
    // sell 100.1 @ 190.123456789: 100 × (190.123456789 − 187.25) + 0.1 × (190.123456789 − 23.4567)
    //   = 287.3456789 + 16.6666756789 = 304.0123545789; 0.025 @ 23.4567 and 7 @ 10.5 left.
    const { position, results } = applyFills(start, [fill(4, 'SELL', '100.10', '190.123456789')]);
    expect(results[0]).toEqual({ executionId: '4', realizedPnl: '304.0123545789', closedQuantity: '100.1', openedQuantity: '0', positionAfter: '7.025', openCost: '74.0864175' });
    expect(position.lots).toStrictEqual([
      { quantity: '0.025', price: '23.4567', openedAt: at(2), executionId: '2' },
      { quantity: '7', price: '10.5', openedAt: at(3), executionId: '3' },
    ]);
    // openCost 0.025 × 23.4567 + 7 × 10.5 = 74.0864175; / 7.025 = 10.54610925266903914… → 12 places.
    expect(averageCost(position)).toBe('10.546109252669');
    expect(positionQuantity(start)).toBe('107.125');
  });

  it('random batches: realized PnL of a round trip is Σ sell notional − Σ buy notional, and batches equal single steps', () => {
    let seed = 20260302;
    const random = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
    const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
    const decimal = (): string => {
      const scale = int(0, 12);
      const digits = String(int(1, 10 ** Math.min(9, scale + 4)));
      const padded = digits.padStart(scale + 1, '0');
      const text = scale === 0 ? padded : `${padded.slice(0, -scale)}.${padded.slice(-scale)}`;
      return `${text}${scale > 0 && random() < 0.2 ? '00' : ''}`; // sometimes non-canonical trailing zeros
    };
    for (let round = 0; round < 40; round++) {
      const fills: Fill[] = [];
      let net = new HighPrecision(0);
      let cash = new HighPrecision(0); // Σ sell notional − Σ buy notional
      for (let n = 1; n <= 40; n++) {
        const side = random() < 0.5 ? 'BUY' : 'SELL';
        const f = fill(n, side, decimal(), decimal());
        fills.push(f);
        const notional = new HighPrecision(f.quantity).mul(f.price);
        net = side === 'BUY' ? net.add(f.quantity) : net.sub(f.quantity);
        cash = side === 'BUY' ? cash.sub(notional) : cash.add(notional);
      }
      if (!net.isZero()) {
        const f = fill(41, net.gt(0) ? 'SELL' : 'BUY', canonical(net.abs()), decimal());
        fills.push(f);
        const notional = net.abs().mul(f.price);
        cash = net.gt(0) ? cash.add(notional) : cash.sub(notional);
      }
      const batch = applyFills(emptyPosition(), [...fills].reverse());
      expect(batch.position.side).toBe('FLAT');
      const total = batch.results.reduce((sum, r) => sum.add(r.realizedPnl), new HighPrecision(0));
      expect(canonical(total)).toBe(canonical(cash));
      let running = new HighPrecision(0);
      for (const [i, r] of batch.results.entries()) {
        const f = fills[i] as Fill;
        expect(canonical(new HighPrecision(r.closedQuantity).add(r.openedQuantity))).toBe(canonical(new HighPrecision(f.quantity)));
        running = f.side === 'BUY' ? running.add(f.quantity) : running.sub(f.quantity);
        expect(r.positionAfter).toBe(canonical(running));
      }
      // The same fills in small batches, each continuing from the stored (string) position.
      let position = emptyPosition();
      const stepped: FillResult[] = [];
      for (let i = 0; i < fills.length; i += 7) {
        const next = applyFills(position, fills.slice(i, i + 7));
        position = next.position;
        stepped.push(...next.results);
        // openCost is kept incrementally; it must equal the open lots' Σ quantity × price.
        const lotCost = next.position.lots.reduce((sum, lot) => sum.add(new HighPrecision(lot.quantity).mul(lot.price)), new HighPrecision(0));
        expect(next.results.at(-1)?.openCost).toBe(canonical(lotCost));
      }
      expect(stepped).toEqual(batch.results);
      expect(position).toEqual(batch.position);
    }
  });
});
