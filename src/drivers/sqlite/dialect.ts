/** SQLite syntax. */

import type { Dialect, IsolationLevel } from '../../driver.js';
import { standardSavepoints } from '../runtime.js';

/** Turns a connection read-only for the rest of a read-only transaction (SQLite has no READ ONLY). */
export const QUERY_ONLY_ON = 'PRAGMA query_only = ON';
export const QUERY_ONLY_OFF = 'PRAGMA query_only = OFF';

/**
 * SQLite has one isolation level (serializable); it has no read-only transaction, so a read-only
 * one turns on `PRAGMA query_only` for its duration.
 */
export const sqliteDialect: Dialect = {
  name: 'sqlite',
  placeholder: () => '?',
  quoteIdentifier: (name) => `"${name.replaceAll('"', '""')}"`,
  // IMMEDIATE takes the write lock up front: a read-write transaction never fails half-way with
  // SQLITE_BUSY when it upgrades from reading to writing. DEFERRED takes only a read snapshot.
  begin: ({ readOnly }) => (readOnly ? ['BEGIN DEFERRED', QUERY_ONLY_ON] : ['BEGIN IMMEDIATE']),
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  ...standardSavepoints,
  // A connection setting, not a transaction's: turned off again by hand at the savepoint's end.
  readOnlySavepoint: { begin: QUERY_ONLY_ON, end: QUERY_ONLY_OFF },
  isolationLevels: ['serializable'] as IsolationLevel[],
  committed: () => true,
};
