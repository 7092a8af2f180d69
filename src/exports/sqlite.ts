/** `txscope/sqlite`: the better-sqlite3 driver. */
export {
  classifySqliteError,
  type SqliteDatabaseLike,
  type SqliteStatementLike,
} from '../drivers/sqlite/connection.js';
export { sqliteDialect } from '../drivers/sqlite/dialect.js';
export { type SqliteOptions, sqlite } from '../drivers/sqlite/driver.js';
