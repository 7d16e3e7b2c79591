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
 * numerically when both ids are integers, signed ones included ('-5' before '3', '9' before
 * '10'), as PostgreSQL orders the bigint execution_id the ETL plans with; integer ids sort
 * before any other id, others by UTF-16 code unit order, which keeps the order total.
 * Positions remember the last fill applied (`lastFill`); a fill that does not sort after
 * it, or after the opening fill of any open lot, is refused: it means the caller is
 * applying a late fill incrementally and must replay from an earlier snapshot instead.
 *
 * Numbers: every quantity, price and PnL crosses the API as a decimal string
 * (PostgreSQL numeric arrives from postgres.js as a string) and is computed as an exact
 * fixed-point BigInt, never with binary floats. Inputs must be plain decimals — digits
 * with an optional fraction, no sign, exponent or whitespace — strictly greater than zero,
 * with at most MAX_INPUT_DIGITS digits. Each call parses every input once into
 * `units / 10^scale` and aligns all its quantities to the largest quantity scale it holds
 * and all its prices to the largest price scale, so sums, differences and products are
 * plain integer arithmetic: a realized PnL lives at quantity scale + price scale and is
 * never rounded. The digit bound keeps those integers small (a fill's PnL has at most
 * 2 × 100 fraction digits and about 200 integer digits).
 *
 * Normalisation: every decimal string this module returns (realized PnL, quantities, lot
 * prices, positions) is canonical — plain notation without exponent, no leading '+',
 * trailing fraction zeros and a trailing '.' removed, no negative zero: '187.2500' →
 * '187.25', '100.0' → '100', '-0' → '0'. Compare results as strings safely only in this
 * form. The one inexact value is `averageCost`, a quotient, rounded half-even to
 * max(12, largest lot price scale) decimal places (exact whenever it terminates there).
 *
 * Speed: `applyFills` is the hot loop of the trade ETL (about a million fills per run), so
 * the common path avoids per-value regex matches, decimal-library objects, per-fill
 * spreads and eager error strings. Every input is still validated, once per call, with the
 * checks and messages described here; each shortcut says next to it why it is exact.
 *
 * Pure: no I/O, no clock; inputs are never mutated.
 */
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
  /** Cost basis of the open lots after the fill: Σ lot quantity × lot price ('0' flat). */
  openCost: string;
}

/** Most digits (integer + fraction) accepted in an input quantity or price; see the header. */
export const MAX_INPUT_DIGITS = 100;
/** Fewest decimal places `averageCost` rounds to. */
export const AVERAGE_COST_MIN_DECIMALS = 12;

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
  // Validate everything first, in the order the errors are promised (position, then each
  // fill, then duplicates); only then align scales, sort and match.
  const state = readPosition(position);
  const checked = fills.map(checkFill);
  const seen = new Set<string>();
  let quantityScale = state.quantityScale;
  let priceScale = state.priceScale;
  for (const f of checked) {
    if (seen.has(f.id)) {
      throw new BadInputError(`fill ${f.id}: executionId appears more than once in the batch; resolve amendments before matching`);
    }
    seen.add(f.id);
    if (f.quantity.scale > quantityScale) quantityScale = f.quantity.scale;
    if (f.price.scale > priceScale) priceScale = f.price.scale;
  }
  alignPosition(state, quantityScale, priceScale);
  for (const f of checked) {
    rescale(f.quantity, quantityScale);
    rescale(f.price, priceScale);
  }
  checked.sort(compareKeys);
  const results = checked.map((f) => step(state, f));
  return { position: writePosition(state), results };
}

/** DESIGN order: executedAt as an exact instant, then executionId (numeric when both are integers). */
export function compareFills(a: Fill, b: Fill): number {
  // Same evaluation (and so error) order as before: a's instant, a's id, b's instant, b's id.
  const aAt = parseInstant(a.executedAt, 'fill', describeId(a.executionId), 'executedAt');
  const aKey = fillKey(aAt, checkId(a.executionId, 'fill'));
  const bAt = parseInstant(b.executedAt, 'fill', describeId(b.executionId), 'executedAt');
  return compareKeys(aKey, fillKey(bAt, checkId(b.executionId, 'fill')));
}

/** Signed open quantity: + long, − short, '0' flat. */
export function positionQuantity(position: Position): string {
  const state = readPosition(position);
  alignPosition(state, state.quantityScale, state.priceScale);
  return format(state.sign === -1 ? -state.total : state.total, state.quantityScale);
}

/**
 * Quantity-weighted average open price Σ(qty × price) / Σ qty, null when flat. Rounded
 * half-even to max(AVERAGE_COST_MIN_DECIMALS, largest lot price scale) decimal places.
 */
export function averageCost(position: Position): string | null {
  const state = readPosition(position);
  if (state.sign === 0) return null;
  // The common price scale is the largest canonical lot price scale, i.e. the largest
  // number of decimal places any lot price has once trailing zeros are dropped.
  const priceScale = state.priceScale;
  alignPosition(state, state.quantityScale, priceScale);
  let notional = 0n; // Σ qty × price, at quantityScale + priceScale
  for (let i = state.head; i < state.lots.length; i++) {
    const lot = state.lots[i] as OpenLot;
    notional += lot.quantity.units * lot.price.units;
  }
  // (notional / 10^(qs + ps)) / (total / 10^qs) = notional / (total × 10^ps); scaled to
  // `decimals` places that is notional × 10^(decimals − ps) / total (decimals ≥ ps).
  const decimals = Math.max(AVERAGE_COST_MIN_DECIMALS, priceScale);
  return format(divideHalfEven(notional * pow10(decimals - priceScale), state.total), decimals);
}

// ---------------------------------------------------------------------------------------
// Exact fixed-point amounts

/**
 * An exact positive decimal `units / 10^scale`. Parsed at its own canonical scale (trailing
 * fraction zeros dropped), then `rescale`d to the common scale of its kind for the call.
 */
interface Amount {
  units: bigint;
  scale: number;
  /** Its canonical string, or null once the value changed and has to be formatted. */
  text: string | null;
}

/** Digits that fit a double's exact integer range (10^15 − 1 < 2^53); see toUnits. */
const MAX_SAFE_DIGITS = 15;

const POW10: bigint[] = [1n];

/** 10^n as a BigInt, cached: the same few scales recur in every call. */
function pow10(n: number): bigint {
  while (POW10.length <= n) POW10.push((POW10[POW10.length - 1] as bigint) * 10n);
  return POW10[n] as bigint;
}

/** Re-expresses `amount` at a scale ≥ its own; the value (and so its text) is unchanged. */
function rescale(amount: Amount, scale: number): void {
  if (amount.scale !== scale) {
    amount.units *= pow10(scale - amount.scale);
    amount.scale = scale;
  }
}

function textOf(amount: Amount): string {
  return (amount.text ??= format(amount.units, amount.scale));
}

/**
 * Parses a plain positive decimal string (/^\d+(\.\d+)?$/, at most MAX_INPUT_DIGITS
 * digits, > 0) with one pass over its characters instead of a regex match, and keeps its
 * canonical form: the input string itself when it already is canonical, as usual.
 */
function parseAmount(value: unknown, kind: string, id: string, field: string): Amount {
  const n = typeof value === 'string' ? value.length : 0;
  let point = -1; // index of the '.', −1 when there is none
  let plain = n > 0;
  for (let i = 0; i < n && plain; i++) {
    const c = (value as string).charCodeAt(i);
    if (c === 46 /* . */ && point === -1) point = i;
    else if (c < 48 || c > 57) plain = false;
  }
  // A '.' needs a digit on both sides ('5.' and '.5' are not plain decimals).
  if (!plain || point === 0 || point === n - 1) {
    throw new BadInputError(`${kind} ${id}: ${field} must be a finite positive decimal string like '187.25', got ${quote(value)}`);
  }
  const s = value as string;
  const digitCount = point === -1 ? n : n - 1;
  if (digitCount > MAX_INPUT_DIGITS) {
    throw new BadInputError(`${kind} ${id}: ${field} has ${digitCount} digits, more than the ${MAX_INPUT_DIGITS} accepted`);
  }
  // Canonical digits: s[start, intEnd) + s[intEnd + 1, end) — leading zeros (but one) and
  // trailing fraction zeros (and then the '.') removed.
  const intEnd = point === -1 ? n : point;
  let start = 0;
  while (start < intEnd - 1 && s.charCodeAt(start) === 48) start++;
  let end = n;
  if (point !== -1) {
    while (end > point + 1 && s.charCodeAt(end - 1) === 48) end--;
    if (end === point + 1) end = point;
  }
  const scale = end > intEnd ? end - intEnd - 1 : 0;
  const units = toUnits(s, start, intEnd, end);
  if (units === 0n) {
    throw new BadInputError(`${kind} ${id}: ${field} must be greater than 0, got ${quote(value)}`);
  }
  return { units, scale, text: start === 0 && end === n ? s : s.slice(start, end) };
}

/**
 * The integer spelled by the digits s[start, intEnd) followed by s[intEnd + 1, end).
 * BigInt(string) costs several times the rest of a value's parsing, so up to
 * MAX_SAFE_DIGITS digits are first accumulated as an integer-valued number — every
 * intermediate is a whole number below 10^15 < 2^53, which a double holds exactly, so no
 * fraction or rounding is ever involved — and converted with BigInt(number), exact for
 * safe integers. All arithmetic on the value then happens in BigInt. Longer inputs use
 * BigInt(string).
 */
function toUnits(s: string, start: number, intEnd: number, end: number): bigint {
  const fractionDigits = end > intEnd ? end - intEnd - 1 : 0;
  if (intEnd - start + fractionDigits > MAX_SAFE_DIGITS) {
    return BigInt(fractionDigits === 0 ? s.slice(start, intEnd) : s.slice(start, intEnd) + s.slice(intEnd + 1, end));
  }
  let v = 0;
  for (let i = start; i < intEnd; i++) v = v * 10 + (s.charCodeAt(i) - 48);
  for (let i = intEnd + 1; i < end; i++) v = v * 10 + (s.charCodeAt(i) - 48);
  return BigInt(v);
}

/** Canonical plain decimal string of `units / 10^scale` (see the header). */
function format(units: bigint, scale: number): string {
  if (units === 0n) return '0'; // also rules out '-0'
  const digits = units.toString();
  if (scale === 0) return digits;
  const negative = units < 0n;
  let s = negative ? digits.slice(1) : digits;
  if (s.length <= scale) s = '0'.repeat(scale - s.length + 1) + s; // at least one integer digit
  const point = s.length - scale;
  let end = s.length;
  while (end > point && s.charCodeAt(end - 1) === 48) end--;
  const body = end === point ? s.slice(0, point) : `${s.slice(0, point)}.${s.slice(point, end)}`;
  return negative ? `-${body}` : body;
}

/** numerator / denominator (numerator ≥ 0, denominator > 0) rounded half-even to an integer. */
function divideHalfEven(numerator: bigint, denominator: bigint): bigint {
  const quotient = numerator / denominator; // truncated
  const twiceRemainder = (numerator - quotient * denominator) * 2n;
  const roundUp = twiceRemainder > denominator || (twiceRemainder === denominator && (quotient & 1n) === 1n);
  return roundUp ? quotient + 1n : quotient;
}

// ---------------------------------------------------------------------------------------
// Matching

interface OpenLot {
  /** Owned by this lot (mutated when partially consumed). */
  quantity: Amount;
  /** Never mutated after alignment, so a lot may share its opening fill's price. */
  price: Amount;
  openedAt: string;
  executionId: string;
  strategyKey?: number;
}

interface FillKey {
  at: Instant;
  id: string;
  /** The id's digits without leading zeros when it is an integer ('-'? digits), else null (precomputed for compareIds). */
  numeric: string | null;
  /** The id is a negative integer ('-0' counts as zero, not negative). */
  negative: boolean;
}

interface State {
  /** +1 long, −1 short, 0 flat. */
  sign: 1 | -1 | 0;
  /** Lots from index `head` on are open (a queue without O(n) shifts). */
  lots: OpenLot[];
  head: number;
  /** Largest scale of the lot quantities and prices; after alignPosition, the common scales. */
  quantityScale: number;
  priceScale: number;
  /** Σ open lot quantities (positive), at quantityScale; set by alignPosition. */
  total: bigint;
  /** Σ open lot quantity × price, at quantityScale + priceScale; set by alignPosition. */
  cost: bigint;
  /** Every later fill must sort after this key. */
  after: FillKey | null;
  /** The position's lastFill as given; replaced by the last fill applied, if any. */
  lastFill: { executionId: string; executedAt: string } | undefined;
  lastApplied: CheckedFill | null;
}

interface CheckedFill extends FillKey {
  executedAt: string;
  sign: 1 | -1;
  quantity: Amount;
  price: Amount;
  strategyKey: number | undefined;
}

function step(state: State, fill: CheckedFill): FillResult {
  // Fills arrive sorted with distinct ids, so only a batch's first fill can fail this; with
  // precomputed keys the check costs a couple of comparisons, so it simply stays per fill.
  if (state.after !== null && compareKeys(fill, state.after) <= 0) {
    throw new BadInputError(
      `fill ${fill.id}: executedAt ${fill.executedAt} does not sort after fill ${state.after.id} already in the position; ` +
        'fills must be applied in (executedAt, executionId) order — replay from an earlier position',
    );
  }
  const quantity = fill.quantity.units;
  let remaining = quantity;
  let realized = 0n; // at quantityScale + priceScale
  if (state.sign === -fill.sign) {
    const lots = state.lots;
    const price = fill.price.units;
    const long = state.sign === 1;
    while (remaining > 0n && state.head < lots.length) {
      const lot = lots[state.head] as OpenLot;
      const held = lot.quantity.units;
      const matched = held <= remaining ? held : remaining;
      // long lot: matched × (fill − lot); short lot: matched × (lot − fill)
      realized += matched * (long ? price - lot.price.units : lot.price.units - price);
      state.cost -= matched * lot.price.units;
      remaining -= matched;
      if (matched === held) {
        state.head++;
      } else {
        // Our own Amount (readPosition and the opening step built it), so the input is untouched.
        lot.quantity.units = held - matched;
        lot.quantity.text = null;
      }
    }
    state.total -= quantity - remaining;
    if (state.head === lots.length) {
      state.lots = [];
      state.head = 0;
      state.sign = 0;
    }
  }
  const quantityText = fill.quantity.text as string; // parsed amounts always carry their text
  if (remaining > 0n) {
    const lot: OpenLot = {
      quantity: { units: remaining, scale: state.quantityScale, text: remaining === quantity ? quantityText : null },
      price: fill.price,
      openedAt: fill.executedAt,
      executionId: fill.id,
    };
    if (fill.strategyKey !== undefined) lot.strategyKey = fill.strategyKey;
    state.lots.push(lot);
    state.total += remaining;
    state.cost += remaining * fill.price.units;
    state.sign = fill.sign;
  }
  state.after = fill;
  state.lastApplied = fill;
  // Whole-fill quantities reuse the input's canonical text instead of formatting again.
  return {
    executionId: fill.id,
    realizedPnl: realized === 0n ? '0' : format(realized, state.quantityScale + state.priceScale),
    closedQuantity: remaining === 0n ? quantityText : remaining === quantity ? '0' : format(quantity - remaining, state.quantityScale),
    openedQuantity: remaining === quantity ? quantityText : remaining === 0n ? '0' : format(remaining, state.quantityScale),
    positionAfter: format(state.sign === -1 ? -state.total : state.total, state.quantityScale),
    openCost: state.cost === 0n ? '0' : format(state.cost, state.quantityScale + state.priceScale),
  };
}

// ---------------------------------------------------------------------------------------
// Validation and conversion

/** Validates a position and copies its lots; amounts stay at their own scales until alignPosition. */
function readPosition(position: Position): State {
  if (position === null || typeof position !== 'object' || !Array.isArray(position.lots)) {
    throw new BadInputError('position: must be an object with a lots array');
  }
  const side = position.side;
  if (side !== 'LONG' && side !== 'SHORT' && side !== 'FLAT') {
    throw new BadInputError(`position: side must be exactly LONG, SHORT or FLAT, got ${quote(side)}`);
  }
  const source = position.lots;
  if ((side === 'FLAT') !== (source.length === 0)) {
    throw new BadInputError(`position: side ${side} with ${source.length} lot(s); a position is FLAT exactly when it has no lots`);
  }
  let after: FillKey | null = null;
  let quantityScale = 0;
  let priceScale = 0;
  const lots = new Array<OpenLot>(source.length);
  for (let i = 0; i < source.length; i++) {
    const lot = source[i];
    if (lot === null || typeof lot !== 'object') throw new BadInputError('position: every lot must be an object');
    const id = checkId(lot.executionId, 'position lot');
    const quantity = parseAmount(lot.quantity, 'position lot', id, 'quantity');
    const price = parseAmount(lot.price, 'position lot', id, 'price');
    const key = fillKey(parseInstant(lot.openedAt, 'position lot', id, 'openedAt'), id);
    if (after === null || compareKeys(key, after) > 0) after = key;
    if (quantity.scale > quantityScale) quantityScale = quantity.scale;
    if (price.scale > priceScale) priceScale = price.scale;
    const out: OpenLot = { quantity, price, openedAt: lot.openedAt, executionId: id };
    if (lot.strategyKey !== undefined) out.strategyKey = checkStrategyKey(lot.strategyKey, 'position lot', id);
    lots[i] = out;
  }
  let lastFill: State['lastFill'];
  if (position.lastFill !== undefined) {
    const id = checkId(position.lastFill?.executionId, 'position lastFill');
    const key = fillKey(parseInstant(position.lastFill.executedAt, 'position lastFill', id, 'executedAt'), id);
    if (after === null || compareKeys(key, after) > 0) after = key;
    lastFill = { executionId: id, executedAt: position.lastFill.executedAt };
  }
  const sign = side === 'LONG' ? 1 : side === 'SHORT' ? -1 : 0;
  return { sign, lots, head: 0, quantityScale, priceScale, total: 0n, cost: 0n, after, lastFill, lastApplied: null };
}

/** Brings every lot to the common scales (≥ the position's own) and sums the open quantity. */
function alignPosition(state: State, quantityScale: number, priceScale: number): void {
  let total = 0n;
  let cost = 0n;
  for (const lot of state.lots) {
    rescale(lot.quantity, quantityScale);
    rescale(lot.price, priceScale);
    total += lot.quantity.units;
    cost += lot.quantity.units * lot.price.units;
  }
  state.total = total;
  state.cost = cost;
  state.quantityScale = quantityScale;
  state.priceScale = priceScale;
}

function writePosition(state: State): Position {
  const lots: Lot[] = [];
  for (let i = state.head; i < state.lots.length; i++) {
    const lot = state.lots[i] as OpenLot;
    const out: Lot = { quantity: textOf(lot.quantity), price: textOf(lot.price), openedAt: lot.openedAt, executionId: lot.executionId };
    if (lot.strategyKey !== undefined) out.strategyKey = lot.strategyKey;
    lots.push(out);
  }
  const position: Position = { side: state.sign === 1 ? 'LONG' : state.sign === -1 ? 'SHORT' : 'FLAT', lots };
  // The lastFill object is built once here rather than after every step.
  const last = state.lastApplied;
  if (last !== null) position.lastFill = { executionId: last.id, executedAt: last.executedAt };
  else if (state.lastFill !== undefined) position.lastFill = state.lastFill;
  return position;
}

function checkFill(fill: Fill): CheckedFill {
  if (fill === null || typeof fill !== 'object') throw new BadInputError('fill: must be an object');
  const id = checkId(fill.executionId, 'fill');
  const side: unknown = fill.side;
  if (side !== 'BUY' && side !== 'SELL') {
    throw new BadInputError(`fill ${id}: side must be exactly BUY or SELL, got ${quote(side)}`);
  }
  // Checked in this order: executedAt, quantity, price, strategyKey.
  const at = parseInstant(fill.executedAt, 'fill', id, 'executedAt');
  const quantity = parseAmount(fill.quantity, 'fill', id, 'quantity');
  const price = parseAmount(fill.price, 'fill', id, 'price');
  const strategyKey = fill.strategyKey === undefined ? undefined : checkStrategyKey(fill.strategyKey, 'fill', id);
  const numeric = numericId(id);
  return { at, id, numeric, negative: isNegative(id, numeric), executedAt: fill.executedAt, sign: side === 'BUY' ? 1 : -1, quantity, price, strategyKey };
}

function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new BadInputError(`${what} (executionId ${quote(value)}): executionId must be a non-empty string`);
  }
  return value;
}

function checkStrategyKey(value: unknown, kind: string, id: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new BadInputError(`${kind} ${id}: strategyKey must be an integer, got ${quote(value)}`);
  }
  return value;
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

/**
 * Error messages name `${kind} ${id}`; both parts are passed separately so the common,
 * valid path never builds the string.
 */
function parseInstant(value: unknown, kind: string, id: string, field: string): Instant {
  return (typeof value === 'string' ? parseInstantFast(value) : null) ?? parseInstantGeneral(value, `${kind} ${id}`, field);
}

const ISO_INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)$/;

/** The full parser: every form the Fill docs accept, and the one place invalid instants are worded. */
function parseInstantGeneral(value: unknown, where: string, field: string): Instant {
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

/**
 * The forms the ETL actually sees — 'YYYY-MM-DD HH:MM:SS[.ffffff]' ('T' or a space) then
 * 'Z', 'z', '±hh', '±hh:mm' or '±hhmm', as postgres.js and toISOString write them — read
 * with fixed-position character arithmetic instead of a regex and its capture array.
 * Returns null for anything else, out-of-range fields included, so parseInstantGeneral
 * decides (and words the error): this path accepts a subset of what the general one
 * accepts and yields the same Instant for it (tested).
 */
function parseInstantFast(s: string): Instant | null {
  const n = s.length;
  if (n < 20) return null; // 19 characters of date and time, at least 1 of zone
  const sep = s.charCodeAt(10);
  if (
    s.charCodeAt(4) !== 45 /* - */ ||
    s.charCodeAt(7) !== 45 ||
    (sep !== 84 /* T */ && sep !== 32) /* space */ ||
    s.charCodeAt(13) !== 58 /* : */ ||
    s.charCodeAt(16) !== 58
  ) {
    return null;
  }
  const year = digitsAt(s, 0, 4);
  const month = digitsAt(s, 5, 2);
  const day = digitsAt(s, 8, 2);
  const hour = digitsAt(s, 11, 2);
  const minute = digitsAt(s, 14, 2);
  const second = digitsAt(s, 17, 2);
  // digitsAt gives −1 for a non-digit, which every one of these range checks refuses.
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) {
    return null;
  }
  if (day > daysInMonth(year, month)) return null;
  let i = 19;
  let fraction = '';
  if (s.charCodeAt(i) === 46 /* . */) {
    const start = ++i;
    while (i < n && isDigit(s.charCodeAt(i))) i++;
    if (i === start) return null;
    let end = i;
    while (end > start && s.charCodeAt(end - 1) === 48) end--; // trailing zeros do not count
    if (end > start) fraction = s.slice(start, end);
  }
  let offsetSeconds = 0;
  const zone = s.charCodeAt(i);
  if (zone === 90 /* Z */ || zone === 122 /* z */) {
    if (i + 1 !== n) return null;
  } else if (zone === 43 /* + */ || zone === 45 /* - */) {
    const rest = n - i - 1;
    const oh = rest >= 2 ? digitsAt(s, i + 1, 2) : -1;
    let om = 0;
    if (rest === 4) om = digitsAt(s, i + 3, 2); // ±hhmm
    else if (rest === 5 && s.charCodeAt(i + 3) === 58) om = digitsAt(s, i + 4, 2); // ±hh:mm
    else if (rest !== 2) return null; // not ±hh either
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return null;
    offsetSeconds = (zone === 45 ? -1 : 1) * (oh * 3600 + om * 60);
  } else {
    return null;
  }
  const seconds = daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds;
  return { seconds, fraction };
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** The value of the `count` ASCII digits of s from `at`, or −1 if any is not a digit (or missing). */
function digitsAt(s: string, at: number, count: number): number {
  let v = 0;
  for (let i = at; i < at + count; i++) {
    const c = s.charCodeAt(i); // NaN past the end, which isDigit refuses
    if (!isDigit(c)) return -1;
    v = v * 10 + (c - 48);
  }
  return v;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
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

function fillKey(at: Instant, id: string): FillKey {
  const numeric = numericId(id);
  return { at, id, numeric, negative: isNegative(id, numeric) };
}

/**
 * The digits of an integer id ('-'? ASCII digits) without leading zeros (keeping one digit),
 * else null. The sign is read separately (isNegative), so magnitudes compare as before.
 */
function numericId(id: string): string | null {
  const n = id.length;
  const first = n > 1 && id.charCodeAt(0) === 45 /* - */ ? 1 : 0;
  if (n === first) return null;
  for (let i = first; i < n; i++) {
    if (!isDigit(id.charCodeAt(i))) return null;
  }
  let lead = first;
  while (lead < n - 1 && id.charCodeAt(lead) === 48) lead++;
  return lead === 0 ? id : id.slice(lead);
}

/** A negative integer id: a '-' before a non-zero magnitude ('-0' is zero, as in PostgreSQL). */
function isNegative(id: string, numeric: string | null): boolean {
  return numeric !== null && id.charCodeAt(0) === 45 && numeric !== '0';
}

function compareKeys(a: FillKey, b: FillKey): number {
  if (a.at.seconds !== b.at.seconds) return a.at.seconds < b.at.seconds ? -1 : 1;
  // Trimmed fraction digits compare as numbers when compared as strings ('12' < '123' < '2').
  if (a.at.fraction !== b.at.fraction) return a.at.fraction < b.at.fraction ? -1 : 1;
  return compareIds(a, b);
}

/**
 * Integer ids first, in numeric order (-10 < -5 < 0 < 3 < 9 < 10: the ETL plans restatements
 * and appends in PostgreSQL's bigint order, so FIFO must agree or it credits PnL to the wrong
 * fill and refuses fills the plan put after the stored position); then the rest by code unit order.
 */
function compareIds(a: FillKey, b: FillKey): number {
  if (a.id === b.id) return 0;
  const an = a.numeric;
  const bn = b.numeric;
  if ((an === null) !== (bn === null)) return an !== null ? -1 : 1;
  if (an !== null && bn !== null) {
    if (a.negative !== b.negative) return a.negative ? -1 : 1;
    // Same sign: compare magnitudes, reversed for negatives (-10 < -9).
    let byMagnitude = 0;
    if (an.length !== bn.length) byMagnitude = an.length < bn.length ? -1 : 1;
    else if (an !== bn) byMagnitude = an < bn ? -1 : 1;
    if (byMagnitude !== 0) return a.negative ? -byMagnitude : byMagnitude;
    // Same number spelled differently ('09' and '9', '-0' and '0'): fall through to keep the order total.
  }
  return a.id < b.id ? -1 : 1;
}
