// Prisma 7 interactive transactions over @prisma/adapter-pg (the same pg.Pool as the baseline).
// Prisma has no ambient transaction: as Prisma apps do, the service passes `tx` to the repositories.
// Statements are Prisma's raw tagged templates, so the SQL is the other contenders' SQL.
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { runContender } from '../lib/child.mjs';
import { seedId, signupInput } from '../lib/config.mjs';
import { ensurePrismaClient } from '../lib/prisma.mjs';

const { PrismaClient } = await import(await ensurePrismaClient());

const users = {
  insert: async (tx, email, name) =>
    (await tx.$queryRaw`insert into users (email, name) values (${email}, ${name}) returning id`)[0].id,
  find: async (tx, id) => (await tx.$queryRaw`select id, email, name from users where id = ${id}`)[0],
};
const profiles = {
  insert: (tx, userId, bio) => tx.$executeRaw`insert into profiles (user_id, bio) values (${userId}, ${bio})`,
};
const audit = {
  record: (tx, userId, action) =>
    tx.$executeRaw`insert into audit_log (user_id, action) values (${userId}, ${action})`,
};
const catalog = {
  user: async (db, id) => (await db.$queryRaw`select id, email, name from seed_users where id = ${id}`)[0],
  profile: async (db, id) =>
    (await db.$queryRaw`select user_id, bio from seed_profiles where user_id = ${id}`)[0],
  account: async (db, id) =>
    (await db.$queryRaw`select id, owner, balance from seed_accounts where id = ${id}`)[0],
};

/** @param {{ url: string, pool: number }} context */
async function setup({ url, pool: max }) {
  const pool = new pg.Pool({ connectionString: url, max });
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  await prisma.$connect();

  class UserService {
    signUp(input) {
      return prisma.$transaction(async (tx) => {
        const id = await users.insert(tx, input.email, input.name);
        await profiles.insert(tx, id, input.bio);
        await audit.record(tx, id, 'user.signed_up');
        return users.find(tx, id);
      });
    }

    async overview(id) {
      const user = await catalog.user(prisma, id);
      const profile = await catalog.profile(prisma, id);
      const account = await catalog.account(prisma, id);
      return { user, profile, account };
    }
  }
  return {
    service: new UserService(),
    close: async () => {
      await prisma.$disconnect();
      await pool.end().catch(() => {});
    },
  };
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
