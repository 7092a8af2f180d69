// Hand-written postgres.js: the baseline of txscope over postgres.js. Repositories take the `sql`
// (the pool, or the transaction's own from `sql.begin`); the service opens the transaction with
// `sql.begin`. Statements go through `unsafe(text, values, { prepare: true })`, the same SQL text
// as every other contender, prepared and cached per connection as postgres.js's tagged `sql` does.
import postgres from 'postgres';
import { runContender } from '../lib/child.mjs';
import { statements as s, seedId, signupInput, sleep, slowCallMs } from '../lib/config.mjs';

const prepared = { prepare: true };
/** @param {any} c @param {string} text @param {unknown[]} values */
const run = (c, text, values) => c.unsafe(text, values, prepared);

const users = {
  insert: async (c, email, name) => (await run(c, s.insertUser, [email, name]))[0].id,
  find: async (c, id) => (await run(c, s.selectUser, [id]))[0],
};
const profiles = {
  insert: async (c, userId, bio) => {
    await run(c, s.insertProfile, [userId, bio]);
  },
};
const audit = {
  record: async (c, userId, action) => {
    await run(c, s.insertAudit, [userId, action]);
  },
};
const catalog = {
  user: async (c, id) => (await run(c, s.readUser, [id]))[0],
  profile: async (c, id) => (await run(c, s.readProfile, [id]))[0],
  account: async (c, id) => (await run(c, s.readAccount, [id]))[0],
};

class UserService {
  constructor(sql) {
    this.sql = sql;
  }

  signUp(input) {
    return this.sql.begin(async (tx) => {
      const id = await users.insert(tx, input.email, input.name);
      await profiles.insert(tx, id, input.bio);
      await audit.record(tx, id, 'user.signed_up');
      return users.find(tx, id);
    });
  }

  async overview(id) {
    const user = await catalog.user(this.sql, id);
    const profile = await catalog.profile(this.sql, id);
    const account = await catalog.account(this.sql, id);
    return { user, profile, account };
  }

  recordVisit(id) {
    return this.sql.begin(async (tx) => {
      await audit.record(tx, null, 'visit');
      await catalog.user(tx, id);
      return catalog.account(tx, id);
    });
  }
}

/** @param {{ url: string, pool: number }} context */
function setup({ url, pool: max }) {
  const sql = postgres(url, { max, onnotice: () => {} });
  return { service: new UserService(sql), close: () => sql.end({ timeout: 5 }) };
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
