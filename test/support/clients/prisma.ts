import type { Database } from 'txscope';
import { adapter } from 'txscope/prisma';
import type { ClientCase, Repos } from './index.js';
import { PrismaClient as MysqlClient } from './prisma/generated/mysql/client.js';
import { PrismaClient as PostgresClient } from './prisma/generated/postgres/client.js';
import { PrismaClient as SqliteClient } from './prisma/generated/sqlite/client.js';

/** The generated clients share their model API; the Postgres one stands for all three. */
export type Prisma = InstanceType<typeof PostgresClient>;
type PrismaTx = Parameters<Parameters<Prisma['$transaction']>[0]>[0];

/** A PrismaClient generated for `db`'s provider, over txscope's adapter. */
export function prismaFor(db: Database): Prisma {
  switch (db.dialect.name) {
    case 'postgres':
      return new PostgresClient({ adapter: adapter(db) });
    case 'mysql':
      return new MysqlClient({ adapter: adapter(db) }) as unknown as Prisma;
    case 'sqlite':
      return new SqliteClient({ adapter: adapter(db) }) as unknown as Prisma;
  }
}

function repositories(prisma: Prisma | PrismaTx): Repos {
  return {
    async createUser(name) {
      return (await prisma.user.create({ data: { name } })).id;
    },
    async addOrder(userId, total) {
      await prisma.order.create({ data: { userId, total } });
    },
    async audit(event) {
      await prisma.audit.create({ data: { event } });
    },
    async userNames() {
      return (await prisma.user.findMany({ orderBy: { id: 'asc' }, select: { name: true } })).map(
        (u) => u.name,
      );
    },
  };
}

export const prismaCase: ClientCase = {
  name: 'prisma',
  callbackJoins: false,
  // Without RETURNING, Prisma inserts and reads the row back (LAST_INSERT_ID) in one transaction.
  wrapsWrites: (db) => db.dialect.name === 'mysql',
  create(db) {
    const prisma = prismaFor(db);
    return {
      repos: repositories(prisma),
      ownTransaction: (fn) => prisma.$transaction((tx) => fn(repositories(tx))),
      close: () => prisma.$disconnect(),
    };
  },
};
