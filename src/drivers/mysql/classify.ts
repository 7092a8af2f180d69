/** What a MySQL/MariaDB error means for a transaction (the one table the driver and `isRetryable` use). */
import type { ErrorKind } from '../../driver.js';

/** ER_LOCK_DEADLOCK: InnoDB has already rolled the whole transaction back. */
export const ER_LOCK_DEADLOCK = 1213;
/** ER_LOCK_WAIT_TIMEOUT: only the statement was rolled back; the transaction is still open. */
export const ER_LOCK_WAIT_TIMEOUT = 1205;

const cancelledErrno = new Set([
  1317, // ER_QUERY_INTERRUPTED (KILL QUERY)
  1969, // MariaDB ER_STATEMENT_TIMEOUT (max_statement_time)
  3024, // MySQL ER_QUERY_TIMEOUT (max_execution_time)
]);

const lostErrno = new Set([
  1053, // ER_SERVER_SHUTDOWN
  1927, // MariaDB ER_CONNECTION_KILLED
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
  4031, // MySQL 8 ER_CLIENT_INTERACTION_TIMEOUT
]);

const lostCodes = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ER_CONNECTION_KILLED',
  'ER_SERVER_SHUTDOWN',
]);

const lostMessage = /Can't add new command when connection is in closed state|Connection lost|closed state/i;

/**
 * Classifies a mysql2 error by `errno`, then `code`, then mysql2's `fatal` flag (set
 * when the connection itself failed and cannot be used again).
 */
export function classifyMysqlError(error: unknown): ErrorKind {
  if (error === null || typeof error !== 'object') return 'other';
  const { errno, code, fatal, message } = error as {
    errno?: unknown;
    code?: unknown;
    fatal?: unknown;
    message?: unknown;
  };
  if (errno === ER_LOCK_DEADLOCK || code === 'ER_LOCK_DEADLOCK') return 'retryable';
  if (errno === ER_LOCK_WAIT_TIMEOUT || code === 'ER_LOCK_WAIT_TIMEOUT') return 'transaction_aborted';
  if (typeof errno === 'number' && cancelledErrno.has(errno)) return 'cancelled';
  if (code === 'ER_QUERY_INTERRUPTED') return 'cancelled';
  if (typeof errno === 'number' && lostErrno.has(errno)) return 'connection_lost';
  if (typeof code === 'string' && lostCodes.has(code)) return 'connection_lost';
  if (fatal === true) return 'connection_lost';
  if (typeof message === 'string' && errno === undefined && lostMessage.test(message))
    return 'connection_lost';
  return 'other';
}
