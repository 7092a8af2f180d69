import type { Generated } from 'kysely';
import type { Database } from 'txscope';
import { createKysely } from 'txscope/kysely';
import type { ClientCase, Repos } from './index.js';

export interface KyselyDB {
  users: { id: Generated<number>; name: string };
  orders: { id: Generated<number>; user_id: number; total: number };
  audit: { id: Generated<number>; event: string };
}

type Queries = ReturnType<typeof createKysely<KyselyDB>>;

function repositories(kysely: Queries, db: Database): Repos {
  return {
    async createUser(name) {
      if (db.dialect.name === 'mysql') {
        const { insertId } = await kysely.insertInto('users').values({ name }).executeTakeFirstOrThrow();
        return Number(insertId);
      }
      const row = await kysely.insertInto('users').values({ name }).returning('id').executeTakeFirstOrThrow();
      return row.id;
    },
    async addOrder(userId, total) {
      await kysely.insertInto('orders').values({ user_id: userId, total }).execute();
    },
    async audit(event) {
      await kysely.insertInto('audit').values({ event }).execute();
    },
    async userNames() {
      const rows = await kysely.selectFrom('users').select('name').orderBy('id').execute();
      return rows.map((r) => r.name);
    },
  };
}

export const kyselyCase: ClientCase = {
  name: 'kysely',
  callbackJoins: true,
  wrapsWrites: () => false,
  create(db) {
    const kysely = createKysely<KyselyDB>(db);
    return {
      repos: repositories(kysely, db),
      ownTransaction: (fn) => kysely.transaction().execute((trx) => fn(repositories(trx, db))),
      close: () => kysely.destroy(),
    };
  },
};
