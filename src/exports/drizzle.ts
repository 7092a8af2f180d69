/** `txscope/drizzle`: a Drizzle database whose queries join the ambient transaction. */
export {
  type CreateDrizzleOptions,
  createDrizzle,
  type DialectOfSchema,
  type DrizzleDatabase,
  type DrizzleDialect,
} from '../integrations/drizzle/drizzle.js';
