/** `txscope/postgresjs`: the postgres.js driver. */

export { postgresDialect } from '../drivers/postgres/dialect.js';
export {
  classifyPostgresJsError,
  type PostgresJsOptions,
  type PostgresJsParsedOptions,
  type PostgresJsSqlLike,
  postgresjs,
} from '../drivers/postgres/postgresjs.js';
export type { PostgresJsReservedLike } from '../drivers/postgres/postgresjs-connection.js';
