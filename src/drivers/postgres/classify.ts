/** What a PostgreSQL error means for a transaction, by SQLSTATE (the one table every PostgreSQL driver uses). */
import type { ErrorKind } from '../../driver.js';

/** serialization_failure, deadlock_detected: re-running the transaction may succeed. */
const retryable = new Set(['40001', '40P01']);

/** Shutdown, crash, connection exceptions, and the socket errors under them. */
const lost = new Set([
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08003',
  '08006',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
]);

/** node-postgres reports a closed client by message only, with no code. */
const lostMessage =
  /Connection terminated|Client has encountered a connection error|Client was closed|connection is closed|terminating connection/i;

/** Classifies a PostgreSQL error by SQLSTATE, socket code or, for closed clients, message. */
export function classifyPostgresError(error: unknown): ErrorKind {
  if (error === null || typeof error !== 'object') return 'other';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (retryable.has(code)) return 'retryable';
    if (code === '57014') return 'cancelled';
    if (lost.has(code)) return 'connection_lost';
    // After a FATAL error the server (or a pooler: PgBouncer's "database removed") closes the connection.
    const severity = (error as { severity?: unknown }).severity;
    if (severity === 'FATAL' || severity === 'PANIC') return 'connection_lost';
    return 'other';
  }
  const message = (error as { message?: unknown }).message;
  if (code === undefined && typeof message === 'string' && lostMessage.test(message))
    return 'connection_lost';
  return 'other';
}
