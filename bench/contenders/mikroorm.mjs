// MikroORM: repositories run `em.execute` on the global EntityManager, which resolves to the
// transaction's fork inside `em.transactional` (MikroORM's own ambient context); each unit runs in
// `RequestContext.create`, as its middleware would run a request.
import { MikroORM, RequestContext } from '@mikro-orm/postgresql';
import { runContender } from '../lib/child.mjs';
import { seedId, signupInput, statements } from '../lib/config.mjs';

// MikroORM's SQL drivers (knex) take `?` placeholders.
const s = Object.fromEntries(Object.entries(statements).map(([k, v]) => [k, v.replace(/\$\d+/g, '?')]));

/** @param {{ url: string, pool: number }} context */
async function setup({ url, pool }) {
  const orm = await MikroORM.init({
    clientUrl: url,
    entities: [],
    discovery: { warnWhenNoEntities: false },
    pool: { min: 0, max: pool },
    debug: false,
  });
  const em = orm.em;

  const users = {
    insert: async (email, name) => (await em.execute(s.insertUser, [email, name], 'get')).id,
    find: (id) => em.execute(s.selectUser, [id], 'get'),
  };
  const profiles = { insert: (userId, bio) => em.execute(s.insertProfile, [userId, bio], 'run') };
  const audit = { record: (userId, action) => em.execute(s.insertAudit, [userId, action], 'run') };
  const catalog = {
    user: (id) => em.execute(s.readUser, [id], 'get'),
    profile: (id) => em.execute(s.readProfile, [id], 'get'),
    account: (id) => em.execute(s.readAccount, [id], 'get'),
  };

  class UserService {
    signUp(input) {
      return em.transactional(async () => {
        const id = await users.insert(input.email, input.name);
        await profiles.insert(id, input.bio);
        await audit.record(id, 'user.signed_up');
        return users.find(id);
      });
    }

    async overview(id) {
      const user = await catalog.user(id);
      const profile = await catalog.profile(id);
      const account = await catalog.account(id);
      return { user, profile, account };
    }
  }
  return { em, service: new UserService(), close: () => orm.close(true) };
}

await runContender({
  async signup(context) {
    const { em, service, close } = await setup(context);
    return {
      unit: (i) =>
        RequestContext.create(em, async () => {
          const input = signupInput(context.tag, i);
          const user = await service.signUp(input);
          if (user.email !== input.email) throw new Error('signup read back the wrong user');
        }),
      close,
    };
  },
  async read(context) {
    const { em, service, close } = await setup(context);
    return {
      unit: (i) =>
        RequestContext.create(em, async () => {
          const { user } = await service.overview(seedId(i));
          if (user.id !== seedId(i)) throw new Error('read the wrong row');
        }),
      close,
    };
  },
});
