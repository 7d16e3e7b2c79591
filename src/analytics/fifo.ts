/**
 * FIFO lot matching with exact decimal money (DESIGN.md "Definitions": Order, Realized PnL).
 *
 * One lot queue per (account, instrument), shared by every strategy; the caller keys the
 * positions, this module only matches. A fill first consumes the oldest opposite lots;
 * each match realizes `qty × (fill price − lot price)` for a long lot and
 * `qty × (lot price − fill price)` for a short one. A partially consumed lot keeps its
 * price and openedAt. A fill larger than the open position flips it: it closes every old
 * lot and opens the remainder at the fill price, reported as one FillResult carrying the
 * full quantity (closedQuantity + openedQuantity = fill quantity). Commission and fees
 * never enter the cost basis and are not seen here.
 *
 * Order: `applyFills` sorts by executedAt (compared as exact instants, so '…T10:00:00Z' and
 * '…T05:00:00-05:00' are the same moment and microseconds count), then by executionId —
 * numerically when both ids are unsigned integers ('9' before '10'); all-digit ids sort
 * before any other id, others by UTF-16 code unit order, which keeps the order total.
 * Positions remember the last fill applied (`lastFill`); a fill that does not sort after
 * it, or after the opening fill of any open lot, is refused: it means the caller is
 * applying a late fill incrementally and must replay from an earlier snapshot instead.
 *
 * Numbers: every quantity, price and PnL crosses the API as a decimal string
 * (PostgreSQL numeric arrives from postgres.js as a string) and is computed with
 * decimal.js, never with binary floats. Inputs must be plain decimals — digits with an
 * optional fraction, no sign, exponent or whitespace — strictly greater than zero, with
 * at most MAX_INPUT_DIGITS digits. That bound makes every sum and product exact: a fill's
 * realized PnL has at most 2 × 100 fraction digits and about 200 integer digits, far inside
 * the working precision of 1000 significant digits, so decimal.js never rounds.
 *
 * Normalisation: every decimal string this module returns (realized PnL, quantities, lot
 * prices, positions) is canonical — plain notation without exponent, no leading '+',
 * trailing fraction zeros and a trailing '.' removed, no negative zero: '187.2500' →
 * '187.25', '100.0' → '100', '-0' → '0'. Compare results as strings safely only in this
 * form. The one inexact value is `averageCost`, a quotient, rounded half-even to
 * max(12, largest lot price scale) decimal places (exact whenever it terminates there).
 *
 * Pure: no I/O, no clock; inputs are never mutated.
 */
import { Decimal } from 'decimal.js';
import { BadInputError } from '../errors.ts';

export type Side = 'BUY' | 'SELL';

/** An open lot. `quantity` is always positive; its direction is the position's side. */
export interface Lot {
  quantity: string;
  price: string;
  /** executedAt of the fill that opened it (ISO 8601 with an offset). */
  openedAt: string;
  /** The fill that opened it. */
  executionId: string;
  /** The opening fill's strategy, when the caller tracks it (copied from Fill.strategyKey). */
  strategyKey?: number;
}

export interface Position {
  side: 'LONG' | 'SHORT' | 'FLAT';
  /** Oldest first, all in the position's direction; empty exactly when FLAT. */
  lots: Lot[];
  /** The last fill applied to this position, set by applyFill/applyFills; see the ordering guard. */
  lastFill?: { executionId: string; executedAt: string };
}

export interface Fill {
  executionId: string;
  /** ISO 8601 instant with an offset: 'Z', '+hh:mm', '+hhmm' or '+hh' ('T' or a space between date and time). */
  executedAt: string;
  side: Side;
  quantity: string;
  price: string;
  /** Optional: copied into the lot this fill opens. Realized PnL belongs to the fill's own strategy regardless. */
  strategyKey?: number;
}

export interface FillResult {
  executionId: string;
  /** Canonical decimal; '0' for a purely opening fill. */
  realizedPnl: string;
  /** Quantity matched against older lots (0 for a purely opening fill). */
  closedQuantity: string;
  /** Quantity added as a new lot (the remainder on a flip). */
  openedQuantity: string;
  /** Signed position after the fill: + long, − short, '0' flat. */
  positionAfter: string;
}

/** Most digits (integer + fraction) accepted in an input quantity or price; see the header. */
export const MAX_INPUT_DIGITS = 100;
/** Fewest decimal places `averageCost` rounds to. */
export const AVERAGE_COST_MIN_DECIMALS = 12;

// A private Decimal constructor: sums and products of bounded inputs never reach 1000
// significant digits, so they are exact; division is done by hand in averageCost. Every
// value must come from `Dec` (an instance computes with its own constructor's precision).
const Dec = Decimal.clone({ precision: 1000, rounding: Decimal.ROUND_HALF_EVEN, toExpNeg: -9e15, toExpPos: 9e15 });
type Dec = Decimal;
const ZERO = new Dec(0);

const PLAIN_DECIMAL = /^(\d+)(?:\.(\d+))?$/;

// ---------------------------------------------------------------------------------------
// Public API

export function emptyPosition(): Position {
  return { side: 'FLAT', lots: [] };
}

/** Applies one fill; returns a new position and the fill's result. */
export function applyFill(position: Position, fill: Fill): { position: Position; result: FillResult } {
  const { position: after, results } = applyFills(position, [fill]);
  return { position: after, result: results[0] as FillResult };
}

/**
 * Applies fills in DESIGN order (executedAt, then executionId), whatever order they are
 * given in. Results come back in that processing order. Two fills with the same
 * executionId in one batch are refused: resolve amendments before matching.
 */
export function applyFills(position: Position, fills: Fill[]): { position: Position; results: FillResult[] } {
  const state = readPosition(position);
  const checked = fills.map(checkFill);
  const seen = new Set<string>();
  for (const f of checked) {
    if (seen.has(f.executionId)) {
      throw new BadInputError(`fill ${f.executionId}: executionId appears more than once in the batch; resolve amendments before matching`);
    }
    seen.add(f.executionId);
  }
  checked.sort(compareChecked);
  const results = checked.map((f) => step(state, f));
  return { position: writePosition(state), results };
}

/** DESIGN order: executedAt as an exact instant, then executionId (numeric when both are integers). */
export function compareFills(a: Fill, b: Fill): number {
  return compareKeys(
    { at: parseInstant(a.executedAt, `fill ${describeId(a.executionId)}`, 'executedAt'), id: checkId(a.executionId, 'fill') },
    { at: parseInstant(b.executedAt, `fill ${describeId(b.executionId)}`, 'executedAt'), id: checkId(b.executionId, 'fill') },
  );
}

/** Signed open quantity: + long, − short, '0' flat. */
export function positionQuantity(position: Position): string {
  const state = readPosition(position);
  return format(state.total.mul(state.sign));
}

/**
 * Quantity-weighted average open price Σ(qty × price) / Σ qty, null when flat. Rounded
 * half-even to max(AVERAGE_COST_MIN_DECIMALS, largest lot price scale) decimal places.
 */
export function averageCost(position: Position): string | null {
  const state = readPosition(position);
  if (state.sign === 0) return null;
  let notional = ZERO;
  let scale = AVERAGE_COST_MIN_DECIMALS;
  for (let i = state.head; i < state.lots.length; i++) {
    const lot = state.lots[i] as OpenLot;
    notional = notional.add(lot.quantity.mul(lot.price));
    scale = Math.max(scale, lot.price.decimalPlaces());
  }
  return format(divideRounded(notional, state.total, scale));
}

// ---------------------------------------------------------------------------------------
// Matching

interface OpenLot {
  quantity: Dec;
  price: Dec;
  openedAt: string;
  executionId: string;
  strategyKey?: number;
}

interface FillKey {
  at: Instant;
  id: string;
}

interface State {
  /** +1 long, −1 short, 0 flat. */
  sign: 1 | -1 | 0;
  /** Lots from index `head` on are open (a queue without O(n) shifts). */
  lots: OpenLot[];
  head: number;
  /** Σ open lot quantities (positive). */
  total: Dec;
  /** Every later fill must sort after this key. */
  after: FillKey | null;
  lastFill: { executionId: string; executedAt: string } | undefined;
}

interface CheckedFill extends FillKey {
  executionId: string;
  executedAt: string;
  sign: 1 | -1;
  quantity: Dec;
  price: Dec;
  strategyKey: number | undefined;
}

function step(state: State, fill: CheckedFill): FillResult {
  if (state.after !== null && compareKeys(fill, state.after) <= 0) {
    throw new BadInputError(
      `fill ${fill.executionId}: executedAt ${fill.executedAt} does not sort after fill ${state.after.id} already in the position; ` +
        'fills must be applied in (executedAt, executionId) order — replay from an earlier position',
    );
  }
  let remaining = fill.quantity;
  let realized = ZERO;
  if (state.sign === -fill.sign) {
    const lotSign = state.sign;
    while (remaining.gt(0) && state.head < state.lots.length) {
      const lot = state.lots[state.head] as OpenLot;
      // (Not Decimal.min: statics of the global constructor would build default-precision values.)
      const matched = lot.quantity.lte(remaining) ? lot.quantity : remaining;
      // long lot: matched × (fill − lot); short lot: matched × (lot − fill)
      realized = realized.add(matched.mul(fill.price.sub(lot.price)).mul(lotSign));
      remaining = remaining.sub(matched);
      state.total = state.total.sub(matched);
      const left = lot.quantity.sub(matched);
      if (left.isZero()) {
        state.head++;
      } else {
        // Our own copy (readPosition copied every lot), so replacing it keeps the input untouched.
        state.lots[state.head] = { ...lot, quantity: left };
      }
    }
    if (state.head === state.lots.length) {
      state.lots = [];
      state.head = 0;
      state.sign = 0;
    }
  }
  const closed = fill.quantity.sub(remaining);
  if (remaining.gt(0)) {
    const lot: OpenLot = { quantity: remaining, price: fill.price, openedAt: fill.executedAt, executionId: fill.executionId };
    if (fill.strategyKey !== undefined) lot.strategyKey = fill.strategyKey;
    state.lots.push(lot);
    state.total = state.total.add(remaining);
    state.sign = fill.sign;
  }
  state.after = fill;
  state.lastFill = { executionId: fill.executionId, executedAt: fill.executedAt };
  return {
    executionId: fill.executionId,
    realizedPnl: format(realized),
    closedQuantity: format(closed),
    openedQuantity: format(remaining),
    positionAfter: format(state.total.mul(state.sign)),
  };
}

// ---------------------------------------------------------------------------------------
// Validation and conversion

function readPosition(position: Position): State {
  if (position === null || typeof position !== 'object' || !Array.isArray(position.lots)) {
    throw new BadInputError('position: must be an object with a lots array');
  }
  const side = position.side;
  if (side !== 'LONG' && side !== 'SHORT' && side !== 'FLAT') {
    throw new BadInputError(`position: side must be exactly LONG, SHORT or FLAT, got ${quote(side)}`);
  }
  if ((side === 'FLAT') !== (position.lots.length === 0)) {
    throw new BadInputError(`position: side ${side} with ${position.lots.length} lot(s); a position is FLAT exactly when it has no lots`);
  }
  let total = ZERO;
  let after: FillKey | null = null;
  const lots = position.lots.map((lot): OpenLot => {
    if (lot === null || typeof lot !== 'object') throw new BadInputError('position: every lot must be an object');
    const id = checkId(lot.executionId, 'position lot');
    const where = `position lot ${id}`;
    const quantity = parsePositive(lot.quantity, where, 'quantity');
    const price = parsePositive(lot.price, where, 'price');
    const key: FillKey = { at: parseInstant(lot.openedAt, where, 'openedAt'), id };
    if (after === null || compareKeys(key, after) > 0) after = key;
    total = total.add(quantity);
    const out: OpenLot = { quantity, price, openedAt: lot.openedAt, executionId: id };
    if (lot.strategyKey !== undefined) out.strategyKey = checkStrategyKey(lot.strategyKey, where);
    return out;
  });
  let lastFill: State['lastFill'];
  if (position.lastFill !== undefined) {
    const id = checkId(position.lastFill?.executionId, 'position lastFill');
    const key: FillKey = { at: parseInstant(position.lastFill.executedAt, `position lastFill ${id}`, 'executedAt'), id };
    if (after === null || compareKeys(key, after) > 0) after = key;
    lastFill = { executionId: id, executedAt: position.lastFill.executedAt };
  }
  return { sign: side === 'LONG' ? 1 : side === 'SHORT' ? -1 : 0, lots, head: 0, total, after, lastFill };
}

function writePosition(state: State): Position {
  const lots = state.lots.slice(state.head).map((lot): Lot => {
    const out: Lot = { quantity: format(lot.quantity), price: format(lot.price), openedAt: lot.openedAt, executionId: lot.executionId };
    if (lot.strategyKey !== undefined) out.strategyKey = lot.strategyKey;
    return out;
  });
  const position: Position = { side: state.sign === 1 ? 'LONG' : state.sign === -1 ? 'SHORT' : 'FLAT', lots };
  if (state.lastFill !== undefined) position.lastFill = state.lastFill;
  return position;
}

function checkFill(fill: Fill): CheckedFill {
  if (fill === null || typeof fill !== 'object') throw new BadInputError('fill: must be an object');
  const id = checkId(fill.executionId, 'fill');
  const where = `fill ${id}`;
  const side: unknown = fill.side;
  if (side !== 'BUY' && side !== 'SELL') {
    throw new BadInputError(`${where}: side must be exactly BUY or SELL, got ${quote(side)}`);
  }
  return {
    executionId: id,
    executedAt: fill.executedAt,
    id,
    at: parseInstant(fill.executedAt, where, 'executedAt'),
    sign: side === 'BUY' ? 1 : -1,
    quantity: parsePositive(fill.quantity, where, 'quantity'),
    price: parsePositive(fill.price, where, 'price'),
    strategyKey: fill.strategyKey === undefined ? undefined : checkStrategyKey(fill.strategyKey, where),
  };
}

function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new BadInputError(`${what} (executionId ${quote(value)}): executionId must be a non-empty string`);
  }
  return value;
}

function checkStrategyKey(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new BadInputError(`${where}: strategyKey must be an integer, got ${quote(value)}`);
  }
  return value;
}

function parsePositive(value: unknown, where: string, field: string): Dec {
  const match = typeof value === 'string' ? PLAIN_DECIMAL.exec(value) : null;
  if (match === null) {
    throw new BadInputError(`${where}: ${field} must be a finite positive decimal string like '187.25', got ${quote(value)}`);
  }
  const digits = (match[1] as string).length + (match[2]?.length ?? 0);
  if (digits > MAX_INPUT_DIGITS) {
    throw new BadInputError(`${where}: ${field} has ${digits} digits, more than the ${MAX_INPUT_DIGITS} accepted`);
  }
  const parsed = new Dec(value as string);
  if (!parsed.gt(0)) {
    throw new BadInputError(`${where}: ${field} must be greater than 0, got ${quote(value)}`);
  }
  return parsed;
}

/** Canonical plain decimal string (see the header). */
function format(value: Dec): string {
  return value.isZero() ? '0' : value.toFixed();
}

/** numerator / denominator (denominator > 0) rounded half-even to `scale` places, exactly. */
function divideRounded(numerator: Dec, denominator: Dec, scale: number): Dec {
  const scaled = numerator.mul(new Dec(10).pow(scale));
  const quotient = scaled.divToInt(denominator); // truncated; exact well inside the precision
  const twiceRemainder = scaled.sub(quotient.mul(denominator)).mul(2);
  const cmp = twiceRemainder.cmp(denominator);
  const roundUp = cmp > 0 || (cmp === 0 && !quotient.mod(2).isZero());
  return (roundUp ? quotient.add(1) : quotient).div(new Dec(10).pow(scale));
}

function quote(value: unknown): string {
  if (typeof value === 'string') return `'${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function describeId(value: unknown): string {
  return typeof value === 'string' && value.length > 0 ? value : `(executionId ${quote(value)})`;
}

// ---------------------------------------------------------------------------------------
// Ordering: exact instants and execution ids

/** An instant as whole epoch seconds plus the fraction's digits with trailing zeros trimmed. */
interface Instant {
  seconds: number;
  fraction: string;
}

const ISO_INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)$/;

function parseInstant(value: unknown, where: string, field: string): Instant {
  const m = typeof value === 'string' ? ISO_INSTANT.exec(value) : null;
  const bad = (): BadInputError =>
    new BadInputError(`${where}: ${field} must be an ISO 8601 instant with an offset, e.g. '2026-03-02T14:30:00.123456Z', got ${quote(value)}`);
  if (m === null) throw bad();
  const [year, month, day, hour, minute] = [m[1], m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number, number];
  const second = m[6] === undefined ? 0 : Number(m[6]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) throw bad();
  let offsetSeconds = 0;
  const zone = m[8] as string;
  if (zone !== 'Z' && zone !== 'z') {
    const oh = Number(zone.slice(1, 3));
    const om = zone.length > 3 ? Number(zone.slice(-2)) : 0;
    if (oh > 23 || om > 59) throw bad();
    offsetSeconds = (zone[0] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const seconds = daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds;
  return { seconds, fraction: (m[7] ?? '').replace(/0+$/, '') };
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

function compareKeys(a: FillKey, b: FillKey): number {
  if (a.at.seconds !== b.at.seconds) return a.at.seconds < b.at.seconds ? -1 : 1;
  // Trimmed fraction digits compare as numbers when compared as strings ('12' < '123' < '2').
  if (a.at.fraction !== b.at.fraction) return a.at.fraction < b.at.fraction ? -1 : 1;
  return compareIds(a.id, b.id);
}

const UNSIGNED_INTEGER = /^\d+$/;

/** All-digit ids first, in numeric order ('9' < '10'); then the rest by code unit order. */
function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const aNumeric = UNSIGNED_INTEGER.test(a);
  const bNumeric = UNSIGNED_INTEGER.test(b);
  if (aNumeric !== bNumeric) return aNumeric ? -1 : 1;
  if (aNumeric) {
    const an = a.replace(/^0+(?=\d)/, '');
    const bn = b.replace(/^0+(?=\d)/, '');
    if (an.length !== bn.length) return an.length < bn.length ? -1 : 1;
    if (an !== bn) return an < bn ? -1 : 1;
    // Same number spelled differently ('09' and '9'): fall through to keep the order total.
  }
  return a < b ? -1 : 1;
}

function compareChecked(a: CheckedFill, b: CheckedFill): number {
  return compareKeys(a, b);
}
