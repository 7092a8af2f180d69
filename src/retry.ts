import type { RetryOptions } from './options.js';

interface ErrorFields {
  code?: unknown;
  errno?: unknown;
  cause?: unknown;
}

const retryablePostgres = new Set(['40001', '40P01']);
const retryableSqlite = new Set([
  'SQLITE_BUSY',
  'SQLITE_BUSY_SNAPSHOT',
  'SQLITE_BUSY_RECOVERY',
  'SQLITE_LOCKED',
]);

/**
 * True for errors that re-running the whole transaction may cure: PostgreSQL
 * serialization failures and deadlocks (40001, 40P01), MySQL deadlocks (1213) and
 * SQLite busy errors. The driver error may sit in `cause`.
 *
 * @example
 * ```ts
 * catch (err) { if (isRetryable(err)) return res.status(503).send('try again'); throw err; }
 * ```
 */
export function isRetryable(error: unknown): boolean {
  for (let e = error, depth = 0; e !== null && typeof e === 'object' && depth < 5; depth++) {
    const { code, errno } = e as ErrorFields;
    if (typeof code === 'string' && (retryablePostgres.has(code) || retryableSqlite.has(code))) return true;
    if (errno === 1213 || code === 'ER_LOCK_DEADLOCK') return true;
    e = (e as ErrorFields).cause;
  }
  return false;
}

/** Full-jitter exponential backoff before attempt `attempt + 1`. */
export function backoffMs(attempt: number, retry: RetryOptions): number {
  const base = retry.baseDelayMs ?? 10;
  const cap = retry.maxDelayMs ?? 1000;
  const ceiling = Math.min(cap, base * 2 ** (attempt - 1));
  return Math.random() * ceiling;
}
