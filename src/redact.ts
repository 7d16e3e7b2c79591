/**
 * Masks secrets inside free text: error messages, stacks and log lines can quote a
 * connection URL or a request URL, and pino's path-based `redact` never looks inside a
 * string. Used by the root logger's serializers and at the two error boundaries (the
 * worker, whose messages reach ops.job_runs and Bull Board, and the HTTP error handler).
 */

/** What a masked secret becomes. */
export const REDACTED = '***';

// scheme://user:password@host — the password runs to the last "@" before whitespace, so an
// unescaped "/" or "@" inside it cannot cut the mask short (over-masking beats a leak).
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*:)[^\s]*@/gi;

// key=value pairs in query strings and libpq-style DSNs: ?apiKey=…, &token=…, password=….
const KEY_VALUE = /\b(api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|secret|password|passwd|pwd)=[^&\s#"',;]+/gi;

// Authorization header values quoted in a message.
const AUTH_SCHEME = /\b(Basic|Bearer)\s+[A-Za-z0-9+/._~-]{8,}=*/g;

/** Hides the password of a connection URL (postgres://u:secret@h → postgres://u:***@h, redis://:pw@h → redis://:***@h). */
export function redactUrl(url: string): string {
  return url.includes('@') ? url.replace(URL_PASSWORD, `$1${REDACTED}@`) : url;
}

/**
 * Masks URL passwords, `apiKey=`/`token=`/`password=` values and Basic/Bearer credentials
 * anywhere in `text`; everything else is kept, so the message still says what went wrong.
 */
export function redactSecrets(text: string): string {
  // Most strings logged (job names, ids, partitions, messages) hold none of the three; the
  // worker masks its per-job logger's bindings, so this runs several times per job.
  if (!text.includes('@') && !text.includes('=') && !text.includes('Basic') && !text.includes('Bearer')) return text;
  return redactUrl(text).replace(KEY_VALUE, `$1=${REDACTED}`).replace(AUTH_SCHEME, `$1 ${REDACTED}`);
}

/**
 * Redacts an error's message and stack in place (and its causes'), keeping its class and
 * fields: retry decisions (Retry-After, status codes) still see the same error. Returns it.
 */
export function redactError<E extends Error>(error: E): E {
  let current: unknown = error;
  // Bounded: a cause chain that loops must not hang the worker.
  for (let depth = 0; depth < 8 && current instanceof Error; depth += 1) {
    const redacted = redactSecrets(current.message);
    if (redacted !== current.message) current.message = redacted;
    if (typeof current.stack === 'string') {
      const stack = redactSecrets(current.stack);
      if (stack !== current.stack) current.stack = stack;
    }
    current = current.cause;
  }
  return error;
}
