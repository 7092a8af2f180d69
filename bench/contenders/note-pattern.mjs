// The pattern of the seed note, ported to Node: a request-scoped session (AsyncLocalStorage in
// place of the ContextVar) that takes a connection on its first statement and gives it back when
// the request ends (the middleware's `Session.remove()`), and a `transactional` wrapper that sends
// BEGIN/COMMIT on that session. Only workload 4 uses it: the connection is held through the slow call.
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import { runContender } from '../lib/child.mjs';
import { statements as s, seedId, sleep, slowCallMs } from '../lib/config.mjs';

class ScopedSession {
  /** @param {pg.Pool} pool */
  constructor(pool) {
    this.pool = pool;
    /** @type {Promise<pg.PoolClient> | null} */
    this.client = null;
  }

  /** @param {string} text @param {unknown[]} values */
  async query(text, values) {
    this.client ??= this.pool.connect();
    return (await this.client).query(text, values);
  }

  async remove() {
    if (this.client !== null) (await this.client).release();
    this.client = null;
  }
}

/** @type {AsyncLocalStorage<ScopedSession>} */
const registry = new AsyncLocalStorage();
const session = () => {
  const current = registry.getStore();
  if (current === undefined) throw new Error('no request session');
  return current;
};

/** The note's middleware: one session per request, removed when the request ends. */
async function request(pool, fn) {
  const scoped = new ScopedSession(pool);
  try {
    return await registry.run(scoped, fn);
  } finally {
    await scoped.remove();
  }
}

/** The note's decorator, as a wrapper: commit on success, roll back on error. */
const transactional =
  (fn) =>
  async (...args) => {
    await session().query('BEGIN', []);
    try {
      const result = await fn(...args);
      await session().query('COMMIT', []);
      return result;
    } catch (error) {
      await session()
        .query('ROLLBACK', [])
        .catch(() => {});
      throw error;
    }
  };

const recordVisit = transactional(async (id) => {
  await session().query(s.insertAudit, [null, 'visit']);
  await session().query(s.readUser, [id]);
  return (await session().query(s.readAccount, [id])).rows[0];
});

await runContender({
  async slow({ url, pool: max }) {
    const pool = new pg.Pool({ connectionString: url, max });
    return {
      unit: (i) =>
        request(pool, async () => {
          await recordVisit(seedId(i));
          await sleep(slowCallMs);
        }),
      close: () => pool.end(),
    };
  },
});
