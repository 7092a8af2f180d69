/** `txscope/pglite`: the PGlite driver (an in-process PostgreSQL). */
export { type PGliteLike, type PGliteOptions, pglite } from '../drivers/postgres/pglite.js';
