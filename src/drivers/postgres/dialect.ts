/** PostgreSQL syntax, shared by every PostgreSQL driver (node-postgres, PGlite). */

import type { Dialect, DriverResult } from '../../driver.js';
import { isolationLevels } from '../../options.js';
import { standardSavepoints } from '../runtime.js';

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
  ...standardSavepoints,
  // Lasts to the savepoint's end: RELEASE and ROLLBACK TO both restore the read-write mode.
  readOnlySavepoint: { begin: 'SET LOCAL transaction_read_only = on' },
  isolationLevels,
  // PostgreSQL answers COMMIT of an aborted transaction with the ROLLBACK tag, not an error.
  committed: (result: DriverResult) =>
    result.command === undefined || result.command.toUpperCase() !== 'ROLLBACK',
};
