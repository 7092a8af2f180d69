// Plain Knex, no ambient context: Knex's pg client over the same kind of pg.Pool as the baseline
// (`connectionPool`), the service opens `knex.transaction(trx => …)` and passes `trx` to the
// repositories, as Knex apps do. The queries are txscope-knex's own (lib/knex-repositories.mjs), so
// "txscope over Knex ÷ plain Knex" measures what txscope adds to a Knex app.
import knexFactory from 'knex';
import pg from 'pg';
import { runContender } from '../lib/child.mjs';
import { seedId, signupInput } from '../lib/config.mjs';
import { knexQueries } from '../lib/knex-repositories.mjs';

const { users, profiles, audit, catalog } = knexQueries;

/** @param {{ url: string, pool: number }} context */
function setup({ url, pool: max }) {
  const knex = knexFactory({ client: 'pg', connectionPool: new pg.Pool({ connectionString: url, max }) });

  class UserService {
    /** @param {{ email: string, name: string, bio: string }} input */
    signUp(input) {
      return knex.transaction(async (trx) => {
        const id = await users.insert(trx, input.email, input.name);
        await profiles.insert(trx, id, input.bio);
        await audit.record(trx, id, 'user.signed_up');
        return users.find(trx, id);
      });
    }

    /** @param {number} id */
    async overview(id) {
      const user = await catalog.user(knex, id);
      const profile = await catalog.profile(knex, id);
      const account = await catalog.account(knex, id);
      return { user, profile, account };
    }
  }
  return { service: new UserService(), close: () => knex.destroy() };
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
