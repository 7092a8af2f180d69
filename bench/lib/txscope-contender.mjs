// The txscope contender of workloads 1, 2, 3 and 6, whatever the PostgreSQL driver under it:
// repositories run `db.query(sql...)` on the module-level db, the service marks its boundary with
// `db.transactional()` (the higher-order form of `@Transactional()`), and each unit runs in
// `db.scope` as the framework middleware would run it.
import { createDatabase, sql } from 'txscope';
import { runContender } from './child.mjs';
import { seedId, signupInput, sleep, slowCallMs } from './config.mjs';

/**
 * Runs the txscope contender over the driver `makeDriver` makes (node-postgres or postgres.js): the
 * same repositories, service and units, so only the driver differs between the two.
 *
 * @param {(context: { url: string, pool: number }) => import('txscope').Driver} makeDriver
 */
export async function runTxscopeContender(makeDriver) {
  /** @param {{ url: string, pool: number }} context */
  function setup(context) {
    const db = createDatabase({ driver: makeDriver(context) });

    const users = {
      insert: async (email, name) =>
        (await db.query(sql`insert into users (email, name) values (${email}, ${name}) returning id`)).rows[0]
          .id,
      find: async (id) => (await db.query(sql`select id, email, name from users where id = ${id}`)).rows[0],
    };
    const profiles = {
      insert: async (userId, bio) => {
        await db.query(sql`insert into profiles (user_id, bio) values (${userId}, ${bio})`);
      },
    };
    const audit = {
      record: async (userId, action) => {
        await db.query(sql`insert into audit_log (user_id, action) values (${userId}, ${action})`);
      },
    };
    const catalog = {
      user: async (id) =>
        (await db.query(sql`select id, email, name from seed_users where id = ${id}`)).rows[0],
      profile: async (id) =>
        (await db.query(sql`select user_id, bio from seed_profiles where user_id = ${id}`)).rows[0],
      account: async (id) =>
        (await db.query(sql`select id, owner, balance from seed_accounts where id = ${id}`)).rows[0],
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

      /** @param {number} id */
      async recordVisit(id) {
        await audit.record(null, 'visit');
        await catalog.user(id);
        return catalog.account(id);
      }
    }
    // What `@Transactional()` on these methods compiles to.
    UserService.prototype.signUp = db.transactional()(UserService.prototype.signUp);
    UserService.prototype.recordVisit = db.transactional()(UserService.prototype.recordVisit);

    return { db, service: new UserService(), close: () => db.close() };
  }

  /** @param {{ url: string, pool: number, tag: string }} context */
  async function signup(context) {
    const { db, service, close } = setup(context);
    return {
      unit: (i) =>
        db.scope(async () => {
          const input = signupInput(context.tag, i);
          const user = await service.signUp(input);
          if (user.email !== input.email) throw new Error('signup read back the wrong user');
        }),
      close,
    };
  }

  await runContender({
    signup,
    // Workload 6: the same signup, with the database behind the delay proxy (the runner passes --url).
    remote: signup,
    async read(context) {
      const { db, service, close } = setup(context);
      return {
        unit: (i) =>
          db.scope(async () => {
            const { user } = await service.overview(seedId(i));
            if (user.id !== seedId(i)) throw new Error('read the wrong row');
          }),
        close,
      };
    },
    async slow(context) {
      const { db, service, close } = setup(context);
      return {
        unit: (i) =>
          db.scope(async () => {
            await service.recordVisit(seedId(i));
            await sleep(slowCallMs);
          }),
        close,
      };
    },
  });
}
