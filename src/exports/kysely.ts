/** `txscope/kysely`: a Kysely whose queries join the ambient transaction. */
export { type CreateKyselyOptions, createKysely } from '../integrations/kysely/kysely.js';
