// TypeORM with typeorm-transactional: repositories call `dataSource.query` (patched by
// typeorm-transactional to join the ambient transaction), the service's boundary is
// `wrapInTransaction` (what its `@Transactional()` decorator calls).
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import {
  addTransactionalDataSource,
  initializeTransactionalContext,
  StorageDriver,
  wrapInTransaction,
} from 'typeorm-transactional';
import { runContender } from '../lib/child.mjs';
import { statements as s, seedId, signupInput } from '../lib/config.mjs';

/** @param {{ url: string, pool: number }} context */
async function setup({ url, pool }) {
  initializeTransactionalContext({ storageDriver: StorageDriver.ASYNC_LOCAL_STORAGE });
  const ds = addTransactionalDataSource(
    new DataSource({ type: 'postgres', url, poolSize: pool, entities: [] }),
  );
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
  UserService.prototype.signUp = wrapInTransaction(UserService.prototype.signUp);
  return { service: new UserService(), close: () => ds.destroy() };
}

await runContender({
  async signup(context) {
    const { service, close } = await setup(context);
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
    const { service, close } = await setup(context);
    return {
      async unit(i) {
        const { user } = await service.overview(seedId(i));
        if (user.id !== seedId(i)) throw new Error('read the wrong row');
      },
      close,
    };
  },
});
