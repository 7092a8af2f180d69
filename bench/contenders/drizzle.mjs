// Plain Drizzle over node-postgres, no ambient context: `db.transaction(tx => …)` on the same pg.Pool as
// the baseline, `tx` passed to the repositories. Statements use Drizzle's `sql` tag, the spelling of the
// @nestjs-cls Drizzle contender (and the closest to txscope's own `sql`), so the two Drizzle rows differ
// only by @nestjs-cls's ambient transaction.
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { runContender } from '../lib/child.mjs';
import { seedId, signupInput } from '../lib/config.mjs';

/** @typedef {import('drizzle-orm/node-postgres').NodePgDatabase} Db */

const users = {
  /** @param {Db} db @param {string} email @param {string} name */
  insert: async (db, email, name) =>
    (await db.execute(sql`insert into users (email, name) values (${email}, ${name}) returning id`)).rows[0]
      .id,
  /** @param {Db} db @param {number} id */
  find: async (db, id) => (await db.execute(sql`select id, email, name from users where id = ${id}`)).rows[0],
};
const profiles = {
  /** @param {Db} db @param {number} userId @param {string} bio */
  insert: async (db, userId, bio) => {
    await db.execute(sql`insert into profiles (user_id, bio) values (${userId}, ${bio})`);
  },
};
const audit = {
  /** @param {Db} db @param {number} userId @param {string} action */
  record: async (db, userId, action) => {
    await db.execute(sql`insert into audit_log (user_id, action) values (${userId}, ${action})`);
  },
};
const catalog = {
  /** @param {Db} db @param {number} id */
  user: async (db, id) =>
    (await db.execute(sql`select id, email, name from seed_users where id = ${id}`)).rows[0],
  /** @param {Db} db @param {number} id */
  profile: async (db, id) =>
    (await db.execute(sql`select user_id, bio from seed_profiles where user_id = ${id}`)).rows[0],
  /** @param {Db} db @param {number} id */
  account: async (db, id) =>
    (await db.execute(sql`select id, owner, balance from seed_accounts where id = ${id}`)).rows[0],
};

/** @param {{ url: string, pool: number }} context */
function setup({ url, pool: max }) {
  const pool = new pg.Pool({ connectionString: url, max });
  const db = drizzle(pool);

  class UserService {
    /** @param {{ email: string, name: string, bio: string }} input */
    signUp(input) {
      return db.transaction(async (tx) => {
        const id = await users.insert(tx, input.email, input.name);
        await profiles.insert(tx, id, input.bio);
        await audit.record(tx, id, 'user.signed_up');
        return users.find(tx, id);
      });
    }

    /** @param {number} id */
    async overview(id) {
      const user = await catalog.user(db, id);
      const profile = await catalog.profile(db, id);
      const account = await catalog.account(db, id);
      return { user, profile, account };
    }
  }
  return { service: new UserService(), close: () => pool.end() };
}

await runContender({
  async signup(context) {
    const { service, close } = setup(context);
    return {
      async unit(i) {
        const input = signupInput(context.tag, i);
        const user = await service.signUp(input);
        if (user.email !== input.email) throw new Error('signup read back the wrong user');
      },
      close,
    };
  },
  async read(context) {
    const { service, close } = setup(context);
    return {
      async unit(i) {
        const { user } = await service.overview(seedId(i));
        if (user.id !== seedId(i)) throw new Error('read the wrong row');
      },
      close,
    };
  },
});
