/** Which errors a re-run may cure, and how long to wait before it. */

import type { ErrorKind } from '../driver.js';
import { classifyMysqlError } from '../drivers/mysql/classify.js';
import { classifyPostgresError } from '../drivers/postgres/classify.js';
import { classifySqliteCode } from '../drivers/sqlite/classify.js';
import type { RetryOptions } from '../options.js';

/** The databases' own error tables: the same functions the drivers classify with. */
const classifiers: readonly ((error: unknown) => ErrorKind)[] = [
  classifyPostgresError,
  classifyMysqlError,
  classifySqliteCode,
];

/**
 * True for errors that re-running the whole transaction may cure: PostgreSQL serialization
 * failures and deadlocks (40001, 40P01), MySQL deadlocks (1213) and SQLite busy or locked
 * errors. The driver error may sit in `cause`.
 *
 * @example
 * ```ts
 * catch (err) { if (isRetryable(err)) return res.status(503).send('try again'); throw err; }
 * ```
 */
export function isRetryable(error: unknown): boolean {
  let e = error;
  for (let depth = 0; e !== null && typeof e === 'object' && depth < 5; depth++) {
    for (const classify of classifiers) if (classify(e) === 'retryable') return true;
    e = (e as { cause?: unknown }).cause;
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
