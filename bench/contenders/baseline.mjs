// Hand-written node-postgres: the baseline. Repositories take the client; the service takes it from
// the pool, sends BEGIN/COMMIT itself and releases it in `finally`.
import pg from 'pg';
import { runContender } from '../lib/child.mjs';
import { statements as s, seedId, signupInput, sleep, slowCallMs } from '../lib/config.mjs';

/** @typedef {pg.PoolClient | pg.Pool} Queryable */

const users = {
  /** @param {Queryable} c @param {string} email @param {string} name */
  insert: async (c, email, name) => (await c.query(s.insertUser, [email, name])).rows[0].id,
  /** @param {Queryable} c @param {number} id */
  find: async (c, id) => (await c.query(s.selectUser, [id])).rows[0],
};
const profiles = {
  /** @param {Queryable} c @param {number} userId @param {string} bio */
  insert: async (c, userId, bio) => {
    await c.query(s.insertProfile, [userId, bio]);
  },
};
const audit = {
  /** @param {Queryable} c @param {number} userId @param {string} action */
  record: async (c, userId, action) => {
    await c.query(s.insertAudit, [userId, action]);
  },
};
const catalog = {
  /** @param {Queryable} c @param {number} id */
  user: async (c, id) => (await c.query(s.readUser, [id])).rows[0],
  /** @param {Queryable} c @param {number} id */
  profile: async (c, id) => (await c.query(s.readProfile, [id])).rows[0],
  /** @param {Queryable} c @param {number} id */
  account: async (c, id) => (await c.query(s.readAccount, [id])).rows[0],
};

/**
 * The transaction, by hand.
 * @template T
 * @param {pg.Pool} pool
 * @param {(client: pg.PoolClient) => Promise<T>} fn
 * @returns {Promise<T>}
 */
async function transaction(pool, fn) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

class UserService {
  /** @param {pg.Pool} pool */
  constructor(pool) {
    this.pool = pool;
  }

  /** @param {{ email: string, name: string, bio: string }} input */
  signUp(input) {
    return transaction(this.pool, async (client) => {
      const id = await users.insert(client, input.email, input.name);
      await profiles.insert(client, id, input.bio);
      await audit.record(client, id, 'user.signed_up');
      return users.find(client, id);
    });
  }

  /** @param {number} id */
  async overview(id) {
    const user = await catalog.user(this.pool, id);
    const profile = await catalog.profile(this.pool, id);
    const account = await catalog.account(this.pool, id);
    return { user, profile, account };
  }

  /** Workload 4's transaction; the slow call comes after it, with the connection already back. */
  recordVisit(id) {
    return transaction(this.pool, async (client) => {
      await audit.record(client, null, 'visit');
      await catalog.user(client, id);
      return catalog.account(client, id);
    });
  }
}

/** @param {{ url: string, pool: number }} context */
function setup({ url, pool: max }) {
  const pool = new pg.Pool({ connectionString: url, max });
  return { pool, service: new UserService(pool), close: () => pool.end() };
}

/** @param {{ url: string, pool: number, tag: string }} context */
async function signup(context) {
  const { service, close } = setup(context);
  return {
    async unit(i) {
      const input = signupInput(context.tag, i);
      const user = await service.signUp(input);
      if (user.email !== input.email) throw new Error('signup read back the wrong user');
    },
    close,
  };
}

await runContender({
  signup,
  // Workload 6: the same signup, with the database behind the delay proxy (the runner passes --url).
  remote: signup,
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
  async slow(context) {
    const { service, close } = setup(context);
    return {
      async unit(i) {
        await service.recordVisit(seedId(i));
        await sleep(slowCallMs);
      },
      close,
    };
  },
});
