/** `txscope/prisma`: a Prisma driver adapter that joins the ambient transaction. */
export { adapter } from '../integrations/prisma/prisma.js';
export type {
  PrismaArgType,
  PrismaColumnType,
  PrismaDriverAdapter,
  PrismaDriverAdapterFactory,
  PrismaProvider,
  PrismaQueryable,
  PrismaSqlQuery,
  PrismaSqlResultSet,
  PrismaTransaction,
} from '../integrations/prisma/values.js';
