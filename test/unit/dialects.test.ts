/** The SQL each dialect writes for transactions and savepoints, and how it reads COMMIT's answer. */

import { mysqlDialect } from 'txscope/mysql';
import { sqliteDialect } from 'txscope/sqlite';
import { describe, expect, it } from 'vitest';
import { postgresDialect } from '../../src/drivers/postgres/dialect.js';

describe('dialect SQL', () => {
  it('PostgreSQL puts isolation and access mode into BEGIN', () => {
    expect(postgresDialect.begin({ isolation: undefined, readOnly: false })).toEqual(['BEGIN']);
    expect(postgresDialect.begin({ isolation: 'serializable', readOnly: true })).toEqual([
      'BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY',
    ]);
    expect(postgresDialect.begin({ isolation: 'read committed', readOnly: false })).toEqual([
      'BEGIN ISOLATION LEVEL READ COMMITTED',
    ]);
  });

  it('PostgreSQL answers COMMIT of an aborted transaction with ROLLBACK: that is no commit', () => {
    expect(postgresDialect.committed({ rows: [], rowCount: 0, command: 'COMMIT' })).toBe(true);
    expect(postgresDialect.committed({ rows: [], rowCount: 0, command: 'ROLLBACK' })).toBe(false);
  });

  it('MySQL sets the isolation level just before START TRANSACTION, only when asked', () => {
    expect(mysqlDialect.begin({ isolation: undefined, readOnly: false })).toEqual(['START TRANSACTION']);
    expect(mysqlDialect.begin({ isolation: 'repeatable read', readOnly: true })).toEqual([
      'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ',
      'START TRANSACTION READ ONLY',
    ]);
  });

  it('SQLite takes the write lock up front, and makes a read-only transaction query_only', () => {
    expect(sqliteDialect.begin({ isolation: undefined, readOnly: false })).toEqual(['BEGIN IMMEDIATE']);
    expect(sqliteDialect.begin({ isolation: 'serializable', readOnly: true })).toEqual([
      'BEGIN DEFERRED',
      'PRAGMA query_only = ON',
    ]);
    expect(sqliteDialect.isolationLevels).toEqual(['serializable']);
  });

  it('savepoints, with the names the core gives them', () => {
    for (const dialect of [postgresDialect, mysqlDialect, sqliteDialect]) {
      expect(dialect.savepoint('txscope_sp_1')).toBe('SAVEPOINT txscope_sp_1');
      expect(dialect.releaseSavepoint('txscope_sp_1')).toBe('RELEASE SAVEPOINT txscope_sp_1');
      expect(dialect.rollbackToSavepoint('txscope_sp_1')).toBe('ROLLBACK TO SAVEPOINT txscope_sp_1');
      expect(dialect.placeholder(2)).toBe(dialect.name === 'postgres' ? '$2' : '?');
    }
  });
});
