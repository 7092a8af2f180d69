/**
 * How each database's errors are classified, and `isRetryable` agreeing with the drivers: both
 * read the same table per database.
 */

import { type ErrorKind, isRetryable } from 'txscope';
import { classifyMysqlError } from 'txscope/mysql';
import { classifySqliteError } from 'txscope/sqlite';
import { describe, expect, it } from 'vitest';
import { classifyPostgresError } from '../../src/drivers/postgres/classify.js';

const error = (fields: Record<string, unknown>, message = 'driver error'): Error =>
  Object.assign(new Error(message), fields);

const postgres: [string, Error, ErrorKind][] = [
  ['serialization failure', error({ code: '40001' }), 'retryable'],
  ['deadlock', error({ code: '40P01' }), 'retryable'],
  ['unique violation', error({ code: '23505', severity: 'ERROR' }), 'other'],
  ['cancelled statement', error({ code: '57014' }), 'cancelled'],
  ['admin shutdown', error({ code: '57P01', severity: 'FATAL' }), 'connection_lost'],
  ['connection failure', error({ code: '08006' }), 'connection_lost'],
  [
    'a pooler closing the connection (PgBouncer: database removed)',
    error({ code: '08P01', severity: 'FATAL' }),
    'connection_lost',
  ],
  ['a protocol violation that keeps the connection', error({ code: '08P01', severity: 'ERROR' }), 'other'],
  ['socket reset', error({ code: 'ECONNRESET' }), 'connection_lost'],
  ['closed client', error({}, 'Connection terminated unexpectedly'), 'connection_lost'],
];

const mysql: [string, Error, ErrorKind][] = [
  ['deadlock', error({ errno: 1213, code: 'ER_LOCK_DEADLOCK' }), 'retryable'],
  ['lock-wait timeout', error({ errno: 1205, code: 'ER_LOCK_WAIT_TIMEOUT' }), 'transaction_aborted'],
  ['KILL QUERY', error({ errno: 1317, code: 'ER_QUERY_INTERRUPTED' }), 'cancelled'],
  ['server gone', error({ errno: 2006 }), 'connection_lost'],
  ['fatal', error({ fatal: true, code: 'PROTOCOL_CONNECTION_LOST' }), 'connection_lost'],
  ['duplicate key', error({ errno: 1062, code: 'ER_DUP_ENTRY' }), 'other'],
];

const sqlite: [string, Error, ErrorKind][] = [
  ['busy', error({ code: 'SQLITE_BUSY' }), 'retryable'],
  ['busy snapshot', error({ code: 'SQLITE_BUSY_SNAPSHOT' }), 'retryable'],
  ['locked', error({ code: 'SQLITE_LOCKED' }), 'retryable'],
  ['locked shared cache', error({ code: 'SQLITE_LOCKED_SHAREDCACHE' }), 'retryable'],
  ['interrupt', error({ code: 'SQLITE_INTERRUPT' }), 'cancelled'],
  ['constraint', error({ code: 'SQLITE_CONSTRAINT_UNIQUE' }), 'other'],
];

describe.each([
  ['PostgreSQL', classifyPostgresError, postgres],
  ['MySQL', classifyMysqlError, mysql],
  ['SQLite', classifySqliteError, sqlite],
] as const)('%s errors', (_, classify, table) => {
  it.each(table)('%s', (_name, e, kind) => {
    expect(classify(e)).toBe(kind);
  });

  it.each(table)('isRetryable agrees with the driver: %s', (_name, e, kind) => {
    expect(isRetryable(e)).toBe(kind === 'retryable');
    // Wrapped as a cause (a TxScopeError or an application error): still found.
    expect(isRetryable(new Error('wrapped', { cause: e }))).toBe(kind === 'retryable');
  });
});

it('isRetryable is false for anything else', () => {
  for (const value of [null, undefined, 'SQLITE_BUSY', 40001, new Error('plain'), { code: 40001 }]) {
    expect(isRetryable(value)).toBe(false);
  }
});
