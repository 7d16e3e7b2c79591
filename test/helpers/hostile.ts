/**
 * Hostile input for the bad-input fuzz tests (issue 9): fast-check arbitraries of strings and
 * JSON values an attacker or a careless script would send — SQL injection, NUL bytes,
 * backslashes, unicode, numbers that are not numbers, huge values — mixed with valid values so
 * that the deeper code paths are reached too.
 */
import fc from 'fast-check';

/**
 * The fuzz tests' knobs: FUZZ_RUNS cases per property (`npm run test:chaos` sets 1000; else
 * `defaultRuns`), FUZZ_SEED to replay a run, and each fuzzed test's time limit, grown with the
 * number of cases (`msPerCase` each, at least a minute).
 */
export function fuzzSettings(defaultRuns: number, msPerCase: number): { runs: number; seed: number | undefined; timeoutMs: number } {
  const runs = Math.max(1, Number.parseInt(process.env.FUZZ_RUNS ?? '', 10) || defaultRuns);
  const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
  return { runs, seed, timeoutMs: Math.max(60_000, runs * msPerCase) };
}

/** SQL injection and other interpreter-bait strings: each must be inert (a 4xx, nothing run). */
export const SQL_INJECTION: readonly string[] = [
  "'; drop table market.bars; --",
  "AAPL'; drop table market.bars; --",
  '1 or 1=1',
  "' or '1'='1",
  "1' or '1'='1' --",
  "2024-01-01' or '1'='1",
  '$$',
  '$$; drop schema ops cascade; $$',
  '$1',
  '\\',
  "\\'",
  '\\\\',
  "E'\\\\x00'",
  '\u0000',
  'AAPL\u0000',
  '2024-01-01\u0000',
  "'); delete from enrichment.backfills where ('1'='1",
  '1; select pg_sleep(30); --',
  "AAPL' union select password from pg_shadow --",
  '"; drop schema market cascade; --',
  '%',
  '_',
  '*',
  '`id`',
  '$(id)',
  '${7*7}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  '../../../../etc/passwd',
  '..\\..\\..\\windows\\win.ini',
  '\r\nX-Injected: yes',
  '\uFEFFAAPL',
  '\uD800',
  'A'.repeat(21),
];

/** Number-like strings that are not the number a parser expects. */
export const WEIRD_NUMBERS: readonly string[] = [
  'NaN',
  'Infinity',
  '-Infinity',
  '-1',
  '0',
  '-0',
  '1.5',
  '1e3',
  '1e309',
  '9'.repeat(400),
  '0x1F',
  '1_000',
  '\uFF11\uFF12',
  ' 7',
  '7 ',
  '+7',
  '007',
  '9007199254740993',
  '-9223372036854775809',
  'null',
  'undefined',
  'true',
  'false',
  '[]',
  '{}',
  '[object Object]',
  '',
];

/** Dates that are almost dates. */
export const WEIRD_DATES: readonly string[] = [
  '2024-02-30',
  '2023-02-29',
  '2024-13-01',
  '2024-00-10',
  '2024-01-00',
  '0000-01-01',
  '0001-01-01',
  '1969-12-31',
  '9999-12-31',
  '10000-01-01',
  '-2024-01-01',
  '+002024-01-01',
  '2024-1-1',
  '20240101',
  '2024/01/01',
  '2024-01-01T00:00:00Z',
  '2024-01-01 ',
  'today',
  'yesterday',
];

/** Text with percent-escapes that do not decode (for raw, unencoded use in URLs). */
export const MALFORMED_ESCAPES: readonly string[] = ['%', '%Z', '%ZZ', '%E0%A4%A', '%C0%AE%C0%AE', '%FF%FE', '%u0041', '%%41', '%2', '%00', '%0a%0d'];

/** Any string, from printable unicode to control characters and huge numbers. */
export function hostileString(options: { maxLength?: number } = {}): fc.Arbitrary<string> {
  const maxLength = options.maxLength ?? 40;
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...SQL_INJECTION) },
    { weight: 3, arbitrary: fc.constantFrom(...WEIRD_NUMBERS) },
    { weight: 2, arbitrary: fc.constantFrom(...WEIRD_DATES) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 500, maxLength: 2000 }) },
    { weight: 1, arbitrary: fc.double().map(String) },
    { weight: 1, arbitrary: fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String) },
    { weight: 1, arbitrary: fc.integer().map(String) },
    { weight: 1, arbitrary: fc.date().map((d) => (Number.isNaN(d.getTime()) ? 'Invalid Date' : d.toISOString().slice(0, 10))) },
  );
}

/** A value for a field: mostly hostile, sometimes one of `valid` (so the request can get further). */
export function fieldValue(valid: readonly string[], options: { maxLength?: number } = {}): fc.Arbitrary<string> {
  if (valid.length === 0) return hostileString(options);
  return fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...valid) }, { weight: 3, arbitrary: hostileString(options) });
}

/** Any JSON value, with hostile strings and numbers, nesting, prototype keys. */
export function hostileJson(valid: readonly string[] = []): fc.Arbitrary<unknown> {
  const leaf = fc.oneof(
    fieldValue(valid),
    fc.double(),
    fc.integer(),
    fc.constantFrom(null, true, false, 0, -1, Number.MAX_SAFE_INTEGER, 1e308, -1e308),
  );
  return fc.oneof(
    { weight: 4, arbitrary: leaf },
    { weight: 1, arbitrary: fc.array(leaf, { maxLength: 5 }) },
    { weight: 1, arbitrary: fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString')), leaf, { maxKeys: 4 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  );
}

/**
 * An object over `fields`: all hostile, all valid (a request that gets through to the database
 * and the queue), or valid but for one hostile field — the one most likely to reach a deep path.
 */
export function hostileObject(fields: Record<string, readonly string[]>): fc.Arbitrary<Record<string, unknown>> {
  const names = Object.keys(fields);
  const hostile: Record<string, fc.Arbitrary<unknown>> = {};
  const valid: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [field, values] of Object.entries(fields)) {
    hostile[field] = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...(values.length > 0 ? values : ['x'])) }, { weight: 4, arbitrary: hostileJson(values) });
    valid[field] = fc.constantFrom(...(values.length > 0 ? values : ['x']));
  }
  const extraKeys = fc.dictionary(fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor')), hostileJson(), { maxKeys: 2 });
  const allHostile = fc.tuple(fc.record(hostile, { requiredKeys: [] }), extraKeys).map(([known, extra]) => ({ ...extra, ...known }));
  const allValid = fc.record(valid, { requiredKeys: [] });
  const oneHostile = fc.tuple(allValid, fc.constantFrom(...(names.length > 0 ? names : ['x'])), hostileJson()).map(([record, field, value]) => ({ ...record, [field]: value }));
  return fc.oneof({ weight: 2, arbitrary: allHostile }, { weight: 1, arbitrary: allValid }, { weight: 2, arbitrary: oneHostile });
}

/** Percent-encodes every byte of the UTF-8 form except RFC 3986's unreserved characters (lone surrogates become U+FFFD). */
export function percentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** A URL component: encoded text, or raw malformed escapes and traversal that a client sends unencoded. */
export function pathComponent(valid: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fieldValue(valid).map(percentEncode) },
    { weight: 1, arbitrary: fc.constantFrom(...MALFORMED_ESCAPES) },
    { weight: 1, arbitrary: fc.constantFrom('..', '.', '..%2F..%2F..%2Fetc%2Fpasswd', '%2e%2e%2f%2e%2e%2f', '..%5C..%5C', '%252e%252e%252f', 'a%2Fb', ';x=1', 'A%00.json') },
  );
}

/**
 * A query string over `fields`: random pairs (repeated keys, bracket and prototype keys,
 * malformed escapes, hostile values), or valid values for some fields plus at most one hostile pair.
 */
export function queryString(fields: Record<string, readonly string[]>): fc.Arbitrary<string> {
  const names = Object.keys(fields);
  const key = fc.oneof(
    { weight: 6, arbitrary: names.length > 0 ? fc.constantFrom(...names) : fc.constant('x') },
    { weight: 1, arbitrary: fc.constantFrom(...names.flatMap((n) => [`${n}[]`, `${n}[0]`, `${n}[a]`]), '__proto__', 'constructor', 'hasOwnProperty', '') },
    { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  );
  const pair = key.chain((k) =>
    fc.oneof(
      { weight: 8, arbitrary: pathComponent(Object.hasOwn(fields, k) ? (fields[k] ?? []) : []).map((v) => `${percentEncode(k)}=${v}`) },
      { weight: 1, arbitrary: fc.constant(percentEncode(k)) },
      { weight: 1, arbitrary: fc.constantFrom(...MALFORMED_ESCAPES).map((v) => `${v}=${v}`) },
    ),
  );
  const validNames = names.filter((n) => (fields[n] ?? []).length > 0);
  const validPairs = fc
    .subarray(validNames)
    .chain((chosen) => fc.tuple(...chosen.map((n) => fc.constantFrom(...(fields[n] ?? [])).map((v) => `${percentEncode(n)}=${percentEncode(v)}`))));
  const mostlyValid = fc.tuple(validPairs, fc.array(pair, { maxLength: 1 })).map(([good, bad]) => [...good, ...bad]);
  return fc
    .oneof({ weight: 2, arbitrary: fc.array(pair, { maxLength: 6 }) }, { weight: 3, arbitrary: mostlyValid })
    .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.join('&')}`));
}
