/** `txscope/pg`: the node-postgres driver. */

export { type PgConfig, type PgPoolLike, pg } from '../drivers/postgres/pg.js';
export type { PgClientLike } from '../drivers/postgres/pg-connection.js';
