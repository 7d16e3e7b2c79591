/**
 * Rows in PostgreSQL's binary COPY format, for the loads where formatting numbers as text
 * would cost more than the load itself (a float8 is 8 bytes here, ~20 characters of
 * shortest-decimal formatting in text). Only the types bullpen writes this way.
 */
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Milliseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
const PG_EPOCH_MS = 946_684_800_000;
const TWO_32 = 4_294_967_296;

/** Strings up to this length are encoded once per writer: symbols, timeframes and sources repeat on every row. */
const CACHED_TEXT_MAX = 32;
const CACHED_TEXT_ENTRIES = 256;

export class BinaryCopyWriter {
  private buffer: Buffer;
  private view: DataView;
  private offset = 0;
  private readonly texts = new Map<string, Buffer>();

  constructor(initialBytes = 1 << 16) {
    this.buffer = Buffer.allocUnsafe(Math.max(initialBytes, 64));
    this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
    SIGNATURE.copy(this.buffer, 0);
    this.view.setInt32(11, 0); // flags
    this.view.setInt32(15, 0); // header extension length
    this.offset = 19;
  }

  private ensure(bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.offset + bytes));
    this.buffer.copy(grown, 0, 0, this.offset);
    this.buffer = grown;
    this.view = new DataView(grown.buffer, grown.byteOffset, grown.byteLength);
  }

  row(fields: number): this {
    this.ensure(2);
    this.view.setInt16(this.offset, fields);
    this.offset += 2;
    return this;
  }

  null(): this {
    this.ensure(4);
    this.view.setInt32(this.offset, -1);
    this.offset += 4;
    return this;
  }

  text(value: string | null): this {
    if (value === null) return this.null();
    if (value.length <= CACHED_TEXT_MAX) {
      let encoded = this.texts.get(value);
      if (!encoded) {
        const bytes = Buffer.from(value, 'utf8');
        encoded = Buffer.allocUnsafe(4 + bytes.length);
        encoded.writeInt32BE(bytes.length, 0);
        bytes.copy(encoded, 4);
        if (this.texts.size < CACHED_TEXT_ENTRIES) this.texts.set(value, encoded);
      }
      this.ensure(encoded.length);
      encoded.copy(this.buffer, this.offset);
      this.offset += encoded.length;
      return this;
    }
    this.ensure(4 + value.length * 3);
    const length = this.buffer.write(value, this.offset + 4, 'utf8');
    this.view.setInt32(this.offset, length);
    this.offset += 4 + length;
    return this;
  }

  float8(value: number | null): this {
    if (value === null) return this.null();
    this.ensure(12);
    this.view.setInt32(this.offset, 8);
    this.view.setFloat64(this.offset + 4, value);
    this.offset += 12;
    return this;
  }

  int2(value: number | null): this {
    if (value === null) return this.null();
    this.ensure(6);
    this.view.setInt32(this.offset, 2);
    this.view.setInt16(this.offset + 4, value);
    this.offset += 6;
    return this;
  }

  bool(value: boolean | null): this {
    if (value === null) return this.null();
    this.ensure(5);
    this.view.setInt32(this.offset, 1);
    this.view.setUint8(this.offset + 4, value ? 1 : 0);
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
    this.view.setInt32(this.offset, 8);
    this.view.setInt32(this.offset + 4, msHigh * 1000 + carry);
    this.view.setUint32(this.offset + 8, lowMicros - carry * TWO_32);
    this.offset += 12;
    return this;
  }

  /** The whole COPY payload, trailer included; the writer must not be used afterwards. */
  finish(): Buffer {
    this.ensure(2);
    this.view.setInt16(this.offset, -1);
    this.offset += 2;
    return this.buffer.subarray(0, this.offset);
  }
}
