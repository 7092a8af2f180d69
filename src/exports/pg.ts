/** `txscope/pg`: the node-postgres driver. */

export { classifyPostgresError } from '../drivers/postgres/classify.js';
export { postgresDialect } from '../drivers/postgres/dialect.js';
export { type PgConfig, type PgPoolLike, pg } from '../drivers/postgres/pg.js';
export type { PgClientLike } from '../drivers/postgres/pg-connection.js';
