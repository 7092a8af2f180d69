// TypeORM over txscope: the same repositories as typeorm.mjs (`dataSource.query` on the
// module-level data source, here from `createDataSource(db)` of txscope/typeorm), the same
// TypeORM; the service's boundary is `db.transactional()` (what `@Transactional()` calls), each
// unit runs in `db.scope` as the middleware would run a request.
import 'reflect-metadata';
import pg from 'pg';
import { createDatabase } from 'txscope';
import { pg as pgDriver } from 'txscope/pg';
import { createDataSource } from 'txscope/typeorm';
import { runContender } from '../lib/child.mjs';
import { statements as s, seedId, signupInput } from '../lib/config.mjs';

/** @param {{ url: string, pool: number }} context */
async function setup({ url, pool: max }) {
  const db = createDatabase({ driver: pgDriver(new pg.Pool({ connectionString: url, max })) });
  const ds = createDataSource(db, { entities: [] });
  await ds.initialize();

  const users = {
    insert: async (email, name) => (await ds.query(s.insertUser, [email, name]))[0].id,
    find: async (id) => (await ds.query(s.selectUser, [id]))[0],
  };
  const profiles = { insert: (userId, bio) => ds.query(s.insertProfile, [userId, bio]) };
  const audit = { record: (userId, action) => ds.query(s.insertAudit, [userId, action]) };
  const catalog = {
    user: async (id) => (await ds.query(s.readUser, [id]))[0],
    profile: async (id) => (await ds.query(s.readProfile, [id]))[0],
    account: async (id) => (await ds.query(s.readAccount, [id]))[0],
  };

  class UserService {
    async signUp(input) {
      const id = await users.insert(input.email, input.name);
      await profiles.insert(id, input.bio);
      await audit.record(id, 'user.signed_up');
      return users.find(id);
    }

    async overview(id) {
      const user = await catalog.user(id);
      const profile = await catalog.profile(id);
      const account = await catalog.account(id);
      return { user, profile, account };
    }
  }
  UserService.prototype.signUp = db.transactional()(UserService.prototype.signUp);
  return {
    db,
    service: new UserService(),
    close: async () => {
      await ds.destroy();
      await db.close();
    },
  };
}

await runContender({
  async signup(context) {
    const { db, service, close } = await setup(context);
    return {
      unit: (i) =>
        db.scope(async () => {
          const input = signupInput(context.tag, i);
          const user = await service.signUp(input);
          if (user.email !== input.email) throw new Error('signup read back the wrong user');
        }),
      close,
    };
  },
  async read(context) {
    const { db, service, close } = await setup(context);
    return {
      unit: (i) =>
        db.scope(async () => {
          const { user } = await service.overview(seedId(i));
          if (user.id !== seedId(i)) throw new Error('read the wrong row');
        }),
      close,
    };
  },
});
