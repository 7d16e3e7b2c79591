/**
 * BinaryCopyWriter (src/copy-binary.ts) against the real thing: rows encoded in PostgreSQL's
 * binary COPY format load through `COPY … FROM STDIN (FORMAT binary)` and read back equal,
 * float8 bit for bit and timestamptz to the microsecond.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BinaryCopyWriter } from '../../src/copy-binary.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

interface Row {
  id: number;
  label: string | null;
  x: number | null;
  small: number | null;
  flag: boolean | null;
  at: number | null;
}

interface Stored {
  id: number;
  label: string | null;
  x: number | null;
  x_bits: Buffer | null;
  small: number | null;
  flag: boolean | null;
  at: Date | null;
  at_text: string | null;
}

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

function encode(rows: readonly Row[], initialBytes?: number): Buffer {
  const w = new BinaryCopyWriter(initialBytes);
  for (const r of rows) {
    w.row(6).int2(r.id).text(r.label).float8(r.x).int2(r.small).bool(r.flag);
    if (r.at === null) w.null();
    else w.timestamptz(r.at);
  }
  return w.finish();
}

/** Loads `payload` into a fresh temporary table in one transaction and reads it back in id order. */
async function load(payload: Buffer): Promise<Stored[]> {
  return db.sql.begin(async (tx) => {
    await tx`create temp table t (id int2 not null, label text, x float8, small int2, flag bool, at timestamptz) on commit drop`;
    const target = await tx.unsafe('copy t from stdin (format binary)').writable();
    await pipeline(Readable.from([payload]), target);
    return tx<Stored[]>`
      select id, label, x, float8send(x) as x_bits, small, flag, at,
        to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as at_text
      from t order by id`;
  }) as Promise<Stored[]>;
}

const bitsOf = (x: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(x);
  return b;
};

/** A comparable form of a row: float8 as its 8 bytes (so −0 and NaN compare), timestamptz as text to the µs. */
function normalize(r: Row) {
  return {
    id: r.id,
    label: r.label,
    xBits: r.x === null ? null : bitsOf(r.x).toString('hex'),
    small: r.small,
    flag: r.flag,
    at: r.at,
    // A whole-ms instant has .xxx000 microseconds.
    atText: r.at === null ? null : `${new Date(r.at).toISOString().slice(0, 23)}000`,
  };
}

function expectRoundTrip(stored: readonly Stored[], rows: readonly Row[]): void {
  const got = stored.map((s) => ({
    id: s.id,
    label: s.label,
    xBits: s.x_bits === null ? null : Buffer.from(s.x_bits).toString('hex'),
    small: s.small,
    flag: s.flag,
    at: s.at === null ? null : s.at.getTime(),
    atText: s.at_text,
  }));
  expect(got).toEqual(rows.map(normalize));
  // postgres.js parses float8 text back to the same number.
  stored.forEach((s, i) => expect(Object.is(s.x, (rows[i] as Row).x), `row ${s.id}: ${s.x}`).toBe(true));
}

const row = (id: number, over: Partial<Row> = {}): Row => ({
  id,
  label: 'x',
  x: 1.5,
  small: 1,
  flag: true,
  at: Date.parse('2024-06-11T13:30:00Z'),
  ...over,
});

describe('BinaryCopyWriter through COPY FROM STDIN (FORMAT binary)', () => {
  it('writes the header and trailer: no rows load as an empty table', async () => {
    const payload = new BinaryCopyWriter().finish();
    expect(payload.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
    expect(payload).toHaveLength(19 + 2);
    expect(await load(payload)).toEqual([]);
  });

  it('round-trips nulls in every column', async () => {
    const rows = [row(1, { label: null, x: null, small: null, flag: null, at: null }), row(2), row(3, { label: null, flag: false })];
    expectRoundTrip(await load(encode(rows)), rows);
  });

  it('round-trips text: empty, unicode, multi-byte and astral characters, quotes and control characters', async () => {
    const labels = [
      '',
      'AAPL',
      'Ünïcödé — € £ ¥',
      '日本語のテキスト',
      '📈🚀 emoji 𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
      'tab\tnewline\nbackslash\\quote\'"',
      'a'.repeat(5000),
      '\u00ff\u0100\u07ff\u0800\uffff',
    ];
    const rows = labels.map((label, i) => row(i + 1, { label }));
    expectRoundTrip(await load(encode(rows)), rows);
  });

  it('round-trips float8 exactly: negatives, huge, tiny, subnormal, −0, NaN and ±Infinity', async () => {
    const values = [
      0,
      -0,
      1,
      -1,
      0.1,
      -123.456,
      Math.PI,
      1e308,
      -1.7976931348623157e308,
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      2.2250738585072014e-308,
      Number.EPSILON,
      9007199254740993,
      -9007199254740991,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
    ];
    const rows = values.map((x, i) => row(i + 1, { x }));
    expectRoundTrip(await load(encode(rows)), rows);
  });

  it('round-trips int2 and bool over their ranges', async () => {
    const rows = [-32768, -1, 0, 1, 255, 256, 32767].map((small, i) => row(i + 1, { small, flag: i % 2 === 0 }));
    expectRoundTrip(await load(encode(rows)), rows);
  });

  it('round-trips timestamptz before 2000, before 1970, after 2038, with milliseconds', async () => {
    const instants = [
      '2000-01-01T00:00:00.000Z', // the PostgreSQL epoch: 0 µs
      '2000-01-01T00:00:00.001Z',
      '1999-12-31T23:59:59.999Z',
      '1970-01-01T00:00:00.000Z',
      '1969-12-31T23:59:59.999Z',
      '1900-02-28T12:34:56.789Z',
      '1850-06-01T00:00:00.001Z',
      '2024-03-10T07:00:00.000Z',
      '2024-06-11T13:30:00.123Z',
      '2038-01-19T03:14:07.000Z',
      '2038-01-19T03:14:08.001Z',
      '2100-12-31T23:59:59.999Z',
      '2262-04-11T23:47:16.854Z',
    ];
    const rows = instants.map((text, i) => row(i + 1, { at: Date.parse(text) }));
    expectRoundTrip(await load(encode(rows)), rows);
  });

  it('round-trips timestamptz far from 2000, where µs exceed 2^53 (1600, 2500, 9999)', async () => {
    const instants = ['1600-03-01T00:00:00.001Z', '2500-07-04T12:00:00.007Z', '9999-12-31T23:59:59.999Z', '1000-01-01T00:00:00.001Z'];
    const rows = instants.map((text, i) => row(i + 1, { at: Date.parse(text) }));
    expectRoundTrip(await load(encode(rows)), rows);
  });

  it('encodes timestamptz as PostgreSQL’s int64 µs since 2000 across the whole Date range', () => {
    const samples = [0, 1, -1, 946_684_800_000, 946_684_799_999, 2 ** 31, -(2 ** 31), 8.64e15, -8.64e15, 253_402_300_799_999];
    for (let i = 0; i < 2000; i++) samples.push(Math.round((Math.sin(i * 12.9898) * 0.5 + Math.cos(i * 78.233) * 0.5) * 8.64e15));
    for (const ms of samples) {
      const payload = new BinaryCopyWriter().row(1).timestamptz(ms).finish();
      expect(payload.readInt32BE(21), String(ms)).toBe(8);
      expect(payload.readBigInt64BE(25), String(ms)).toBe((BigInt(ms) - 946_684_800_000n) * 1000n);
    }
  });

  it('grows its buffer from a tiny initial size over many rows', async () => {
    const rows: Row[] = [];
    for (let i = 0; i < 20_000; i++) {
      rows.push({
        id: i - 10_000,
        label: i % 7 === 0 ? null : `sym-${i}-€${'ü'.repeat(i % 13)}`,
        x: i % 11 === 0 ? null : (i - 10_000) * 1.000_001 ** i,
        small: i % 5 === 0 ? null : (i % 65_536) - 32_768,
        flag: i % 3 === 0 ? null : i % 2 === 0,
        at: i % 17 === 0 ? null : Date.parse('1999-12-31T23:00:00Z') + i * 60_001,
      });
    }
    const payload = encode(rows, 1);
    expect(payload.equals(encode(rows))).toBe(true);
    expectRoundTrip(await load(payload), rows);
  });

  it('grows its buffer for a single value larger than twice the buffer', async () => {
    const rows = [row(1, { label: '€'.repeat(100_000) }), row(2, { label: 'after' })];
    const payload = encode(rows, 1);
    expect(payload.equals(encode(rows))).toBe(true);
    expectRoundTrip(await load(payload), rows);
  });
});
