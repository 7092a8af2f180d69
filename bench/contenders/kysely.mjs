// Plain Kysely, no ambient context: PostgresDialect over the same pg.Pool as the baseline, the service
// opens `kysely.transaction().execute(trx => …)` and passes `trx` to the repositories, as Kysely apps
// do. The queries are txscope-kysely's own (lib/kysely-repositories.mjs), so "txscope over Kysely ÷
// plain Kysely" measures what txscope adds to a Kysely app.
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { runContender } from '../lib/child.mjs';
import { seedId, signupInput } from '../lib/config.mjs';
import { kyselyQueries } from '../lib/kysely-repositories.mjs';

const { users, profiles, audit, catalog } = kyselyQueries;

/** @param {{ url: string, pool: number }} context */
function setup({ url, pool: max }) {
  const kysely = new Kysely({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max }) }),
  });

  class UserService {
    /** @param {{ email: string, name: string, bio: string }} input */
    signUp(input) {
      return kysely.transaction().execute(async (trx) => {
        const id = await users.insert(trx, input.email, input.name);
        await profiles.insert(trx, id, input.bio);
        await audit.record(trx, id, 'user.signed_up');
        return users.find(trx, id);
      });
    }

    /** @param {number} id */
    async overview(id) {
      const user = await catalog.user(kysely, id);
      const profile = await catalog.profile(kysely, id);
      const account = await catalog.account(kysely, id);
      return { user, profile, account };
    }
  }
  return { service: new UserService(), close: () => kysely.destroy() };
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
