// @nestjs-cls/transactional: its Kysely and pg-promise adapters are not on the registry this bench
// installs from, so it runs with its Drizzle adapter over node-postgres (raw `sql` statements,
// Drizzle adds no ORM work). A minimal Nest application context wires ClsModule and the plugin, as
// in a Nest app; repositories run on `txHost.tx`, the boundary is `txHost.withTransaction` (what its
// `@Transactional()` calls), each unit runs in `cls.run` (what its middleware does per request).
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClsPluginTransactional, TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterDrizzleOrm } from '@nestjs-cls/transactional-adapter-drizzle-orm';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { ClsModule, ClsService } from 'nestjs-cls';
import pg from 'pg';
import { runContender } from '../lib/child.mjs';
import { seedId, signupInput } from '../lib/config.mjs';

const DRIZZLE = Symbol('DRIZZLE');

/** @param {{ url: string, pool: number }} context */
async function setup({ url, pool: max }) {
  const pool = new pg.Pool({ connectionString: url, max });
  class DrizzleModule {}
  Module({ providers: [{ provide: DRIZZLE, useValue: drizzle(pool) }], exports: [DRIZZLE] })(DrizzleModule);
  class AppModule {}
  Module({
    imports: [
      ClsModule.forRoot({
        global: true,
        plugins: [
          new ClsPluginTransactional({
            imports: [DrizzleModule],
            adapter: new TransactionalAdapterDrizzleOrm({ drizzleInstanceToken: DRIZZLE }),
          }),
        ],
      }),
    ],
  })(AppModule);
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const txHost = app.get(TransactionHost);
  const cls = app.get(ClsService);

  const users = {
    insert: async (email, name) =>
      (await txHost.tx.execute(sql`insert into users (email, name) values (${email}, ${name}) returning id`))
        .rows[0].id,
    find: async (id) =>
      (await txHost.tx.execute(sql`select id, email, name from users where id = ${id}`)).rows[0],
  };
  const profiles = {
    insert: (userId, bio) =>
      txHost.tx.execute(sql`insert into profiles (user_id, bio) values (${userId}, ${bio})`),
  };
  const audit = {
    record: (userId, action) =>
      txHost.tx.execute(sql`insert into audit_log (user_id, action) values (${userId}, ${action})`),
  };
  const catalog = {
    user: async (id) =>
      (await txHost.tx.execute(sql`select id, email, name from seed_users where id = ${id}`)).rows[0],
    profile: async (id) =>
      (await txHost.tx.execute(sql`select user_id, bio from seed_profiles where user_id = ${id}`)).rows[0],
    account: async (id) =>
      (await txHost.tx.execute(sql`select id, owner, balance from seed_accounts where id = ${id}`)).rows[0],
  };

  class UserService {
    signUp(input) {
      return txHost.withTransaction(async () => {
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
  return {
    cls,
    service: new UserService(),
    close: async () => {
      await app.close();
      await pool.end();
    },
  };
}

await runContender({
  async signup(context) {
    const { cls, service, close } = await setup(context);
    return {
      unit: (i) =>
        cls.run(async () => {
          const input = signupInput(context.tag, i);
          const user = await service.signUp(input);
          if (user.email !== input.email) throw new Error('signup read back the wrong user');
        }),
      close,
    };
  },
  async read(context) {
    const { cls, service, close } = await setup(context);
    return {
      unit: (i) =>
        cls.run(async () => {
          const { user } = await service.overview(seedId(i));
          if (user.id !== seedId(i)) throw new Error('read the wrong row');
        }),
      close,
    };
  },
});
