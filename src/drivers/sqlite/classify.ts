/** What an SQLite error means for a transaction, by result code (the one table the driver and `isRetryable` use). */
import type { ErrorKind } from '../../driver.js';

/**
 * SQLITE_BUSY and SQLITE_LOCKED with every extended code (`SQLITE_BUSY_SNAPSHOT`,
 * `SQLITE_LOCKED_SHAREDCACHE`, …): another connection holds the lock, and re-running the
 * transaction may succeed.
 */
export function classifySqliteCode(error: unknown): ErrorKind {
  if (error === null || typeof error !== 'object') return 'other';
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return 'other';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'retryable';
  if (code === 'SQLITE_INTERRUPT') return 'cancelled';
  return 'other';
}
