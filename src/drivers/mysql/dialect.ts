import type { Dialect } from '../../driver.js';
import { isolationLevels } from '../../options.js';
import { standardSavepoints } from '../runtime.js';

/**
 * MySQL/MariaDB syntax. MySQL cannot put the isolation level into `START TRANSACTION`:
 * `SET TRANSACTION ISOLATION LEVEL …` (no SESSION/GLOBAL) applies to the next
 * transaction only, so it is sent just before it, and only when a level was asked for.
 */
export const mysqlDialect: Dialect = {
  name: 'mysql',
  placeholder: () => '?',
  quoteIdentifier: (name) => `\`${name.replaceAll('`', '``')}\``,
  begin({ isolation, readOnly }) {
    const start = readOnly ? 'START TRANSACTION READ ONLY' : 'START TRANSACTION';
    return isolation === undefined
      ? [start]
      : [`SET TRANSACTION ISOLATION LEVEL ${isolation.toUpperCase()}`, start];
  },
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  ...standardSavepoints,
  isolationLevels,
  // MySQL has no aborted-transaction state: COMMIT commits whatever succeeded, or fails with an error.
  committed: () => true,
};
