/**
 * Rows in PostgreSQL's binary COPY format, for the loads where formatting numbers as text
 * would cost more than the load itself (a float8 is 8 bytes here, ~20 characters of
 * shortest-decimal formatting in text). Only the types bullpen writes this way.
 */
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Milliseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
const PG_EPOCH_MS = 946_684_800_000;
const TWO_32 = 4_294_967_296;

export class BinaryCopyWriter {
  private buffer: Buffer;
  private offset = 0;

  constructor(initialBytes = 1 << 16) {
    this.buffer = Buffer.allocUnsafe(Math.max(initialBytes, 64));
    SIGNATURE.copy(this.buffer, 0);
    this.buffer.writeInt32BE(0, 11); // flags
    this.buffer.writeInt32BE(0, 15); // header extension length
    this.offset = 19;
  }

  private ensure(bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.offset + bytes));
    this.buffer.copy(grown, 0, 0, this.offset);
    this.buffer = grown;
  }

  row(fields: number): this {
    this.ensure(2);
    this.buffer.writeInt16BE(fields, this.offset);
    this.offset += 2;
    return this;
  }

  null(): this {
    this.ensure(4);
    this.buffer.writeInt32BE(-1, this.offset);
    this.offset += 4;
    return this;
  }

  text(value: string | null): this {
    if (value === null) return this.null();
    this.ensure(4 + value.length * 3);
    const length = this.buffer.write(value, this.offset + 4, 'utf8');
    this.buffer.writeInt32BE(length, this.offset);
    this.offset += 4 + length;
    return this;
  }

  float8(value: number | null): this {
    if (value === null) return this.null();
    this.ensure(12);
    this.buffer.writeInt32BE(8, this.offset);
    this.buffer.writeDoubleBE(value, this.offset + 4);
    this.offset += 12;
    return this;
  }

  int2(value: number | null): this {
    if (value === null) return this.null();
    this.ensure(6);
    this.buffer.writeInt32BE(2, this.offset);
    this.buffer.writeInt16BE(value, this.offset + 4);
    this.offset += 6;
    return this;
  }

  bool(value: boolean | null): this {
    if (value === null) return this.null();
    this.ensure(5);
    this.buffer.writeInt32BE(1, this.offset);
    this.buffer[this.offset + 4] = value ? 1 : 0;
    this.offset += 5;
    return this;
  }

  /** An instant given in epoch milliseconds (whole ms). */
  timestamptz(epochMs: number): this {
    this.ensure(12);
    // µs = ms × 1000 passes 2^53 some 285 years from 2000, where a double rounds it; multiplying
    // the two 32-bit halves of the ms separately keeps every step an exact integer.
    const ms = epochMs - PG_EPOCH_MS;
    const msHigh = Math.floor(ms / TWO_32);
    const lowMicros = (ms - msHigh * TWO_32) * 1000;
    const carry = Math.floor(lowMicros / TWO_32);
    this.buffer.writeInt32BE(8, this.offset);
    this.buffer.writeInt32BE(msHigh * 1000 + carry, this.offset + 4);
    this.buffer.writeUInt32BE(lowMicros - carry * TWO_32, this.offset + 8);
    this.offset += 12;
    return this;
  }

  /** The whole COPY payload, trailer included; the writer must not be used afterwards. */
  finish(): Buffer {
    this.ensure(2);
    this.buffer.writeInt16BE(-1, this.offset);
    this.offset += 2;
    return this.buffer.subarray(0, this.offset);
  }
}
