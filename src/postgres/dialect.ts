import type { Dialect, DriverResult, ErrorKind, IsolationLevel } from '../driver.js';

/** PostgreSQL syntax, shared by the node-postgres and PGlite drivers. */
export const postgresDialect: Dialect = {
  name: 'postgres',
  placeholder: (index) => `$${index}`,
  quoteIdentifier: (name) => `"${name.replaceAll('"', '""')}"`,
  begin({ isolation, readOnly }) {
    let text = 'BEGIN';
    if (isolation !== undefined) text += ` ISOLATION LEVEL ${isolation.toUpperCase()}`;
    if (readOnly) text += ' READ ONLY';
    return [text];
  },
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  savepoint: (name) => `SAVEPOINT ${name}`,
  releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
  rollbackToSavepoint: (name) => `ROLLBACK TO SAVEPOINT ${name}`,
  isolationLevels: [
    'read uncommitted',
    'read committed',
    'repeatable read',
    'serializable',
  ] as IsolationLevel[],
  // PostgreSQL answers COMMIT of an aborted transaction with the ROLLBACK tag, not an error.
  committed: (result: DriverResult) =>
    result.command === undefined || result.command.toUpperCase() !== 'ROLLBACK',
};

const lostCodes = new Set([
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
const lostMessage =
  /Connection terminated|Client has encountered a connection error|Client was closed|connection is closed|terminating connection/i;

/** Classifies a PostgreSQL error by SQLSTATE, socket code or, for closed clients, message. */
export function classifyPostgresError(error: unknown): ErrorKind {
  if (error === null || typeof error !== 'object') return 'other';
  const code = (error as { code?: unknown }).code;
  if (code === '40001' || code === '40P01') return 'retryable';
  if (code === '57014') return 'cancelled';
  if (typeof code === 'string' && lostCodes.has(code)) return 'connection_lost';
  const message = (error as { message?: unknown }).message;
  if (code === undefined && typeof message === 'string' && lostMessage.test(message))
    return 'connection_lost';
  return 'other';
}
