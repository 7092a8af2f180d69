// txscope over Knex: repositories build queries on a module-level Knex from `createKnex(db)`
// (txscope/knex), the service's boundary is `db.transactional()`, each unit runs in `db.scope`.
import pg from 'pg';
import { createDatabase } from 'txscope';
import { createKnex } from 'txscope/knex';
import { pg as pgDriver } from 'txscope/pg';
import { runContender } from '../lib/child.mjs';
import { seedId, signupInput } from '../lib/config.mjs';
import { knexRepositories } from '../lib/knex-repositories.mjs';

/** @param {{ url: string, pool: number }} context */
function setup({ url, pool: max }) {
  const db = createDatabase({ driver: pgDriver(new pg.Pool({ connectionString: url, max })) });
  const { users, profiles, audit, catalog } = knexRepositories(createKnex(db));

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
  return { db, service: new UserService(), close: () => db.close() };
}

await runContender({
  async signup(context) {
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
  },
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
});
