/** `txscope/knex`: a Knex instance whose queries join the ambient transaction. */
export { type CreateKnexConfig, createKnex } from '../integrations/knex/knex.js';
