import type { Knex } from 'knex';
import type { Database } from 'txscope';
import { createKnex } from 'txscope/knex';
import type { ClientCase, Repos } from './index.js';

/** Repositories over a Knex instance or a `trx`: the same calls either way. */
export function knexRepositories(k: Knex, db: Database): Repos {
  return {
    async createUser(name) {
      if (db.dialect.name === 'mysql') {
        const [id] = await k('users').insert({ name });
        return Number(id);
      }
      const [row] = await k('users').insert({ name }).returning('id');
      return (row as { id: number }).id;
    },
    async addOrder(userId, total) {
      await k('orders').insert({ user_id: userId, total });
    },
    async audit(event) {
      await k('audit').insert({ event });
    },
    async userNames() {
      const rows: { name: string }[] = await k('users').select('name').orderBy('id');
      return rows.map((r) => r.name);
    },
  };
}

export const knexCase: ClientCase = {
  name: 'knex',
  callbackJoins: true,
  wrapsWrites: () => false,
  create(db) {
    const k = createKnex(db, { useNullAsDefault: true });
    return {
      repos: knexRepositories(k, db),
      ownTransaction: (fn) => k.transaction((trx) => fn(knexRepositories(trx, db))),
      close: () => k.destroy(),
    };
  },
};
