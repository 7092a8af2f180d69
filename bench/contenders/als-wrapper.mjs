// The reference of issue 12: "a 40-line AsyncLocalStorage wrapper over the same pool", the simplest
// correct ambient transaction. A request scope per unit (what a middleware would open), a
// `transactional` wrapper that joins an enclosing transaction, and a `query` that takes the
// connection on the transaction's first statement, sends BEGIN, and COMMIT/ROLLBACK and release at
// the end. No timeouts, retries, events or checks: what is left between this and the baseline is
// the cost of an ambient context itself.
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import { runContender } from '../lib/child.mjs';
import { statements as s, seedId, signupInput } from '../lib/config.mjs';

// ---- the wrapper (40 lines) ----

/** @param {pg.Pool} pool */
function ambient(pool) {
  /** @typedef {{ client: pg.PoolClient | null, ready: Promise<pg.PoolClient> | null }} Tx */
  /** @type {AsyncLocalStorage<{ tx: Tx | null }>} */
  const als = new AsyncLocalStorage();
  /** @template T @param {() => Promise<T>} fn */
  const scope = (fn) => als.run({ tx: null }, fn);
  /** @template {(...args: any[]) => Promise<any>} F @param {F} fn @returns {F} */
  const transactional = (fn) =>
    /** @type {F} */ (
      async function (...args) {
        if (als.getStore()?.tx) return fn.apply(this, args);
        /** @type {Tx} */
        const tx = { client: null, ready: null };
        let broken = false;
        try {
          const result = await als.run({ tx }, () => fn.apply(this, args));
          if (tx.ready !== null) await (await tx.ready).query('COMMIT');
          return result;
        } catch (error) {
          if (tx.client !== null) await tx.client.query('ROLLBACK').catch(() => (broken = true));
          throw error;
        } finally {
          tx.client?.release(broken);
        }
      }
    );
  /** @param {string} text @param {unknown[]} values */
  async function query(text, values) {
    const tx = als.getStore()?.tx;
    if (!tx) return pool.query(text, values);
    tx.ready ??= pool.connect().then(async (client) => {
      tx.client = client;
      await client.query('BEGIN');
      return client;
    });
    return (await tx.ready).query(text, values);
  }
  return { scope, transactional, query };
}

// ---- the workloads, written as with txscope: module-level repositories, no client passed ----

/** @param {{ url: string, pool: number }} context */
function setup({ url, pool: max }) {
  const pool = new pg.Pool({ connectionString: url, max });
  const { scope, transactional, query } = ambient(pool);

  const users = {
    insert: async (email, name) => (await query(s.insertUser, [email, name])).rows[0].id,
    find: async (id) => (await query(s.selectUser, [id])).rows[0],
  };
  const profiles = {
    insert: async (userId, bio) => {
      await query(s.insertProfile, [userId, bio]);
    },
  };
  const audit = {
    record: async (userId, action) => {
      await query(s.insertAudit, [userId, action]);
    },
  };
  const catalog = {
    user: async (id) => (await query(s.readUser, [id])).rows[0],
    profile: async (id) => (await query(s.readProfile, [id])).rows[0],
    account: async (id) => (await query(s.readAccount, [id])).rows[0],
  };

  class UserService {
    /** @param {{ email: string, name: string, bio: string }} input */
    async signUp(input) {
      const id = await users.insert(input.email, input.name);
      await profiles.insert(id, input.bio);
      await audit.record(id, 'user.signed_up');
      return users.find(id);
    }

    /** @param {number} id */
    async overview(id) {
      const user = await catalog.user(id);
      const profile = await catalog.profile(id);
      const account = await catalog.account(id);
      return { user, profile, account };
    }
  }
  UserService.prototype.signUp = transactional(UserService.prototype.signUp);
  return { scope, service: new UserService(), close: () => pool.end() };
}

await runContender({
  async signup(context) {
    const { scope, service, close } = setup(context);
    return {
      unit: (i) =>
        scope(async () => {
          const input = signupInput(context.tag, i);
          const user = await service.signUp(input);
          if (user.email !== input.email) throw new Error('signup read back the wrong user');
        }),
      close,
    };
  },
  async read(context) {
    const { scope, service, close } = setup(context);
    return {
      unit: (i) =>
        scope(async () => {
          const { user } = await service.overview(seedId(i));
          if (user.id !== seedId(i)) throw new Error('read the wrong row');
        }),
      close,
    };
  },
});
