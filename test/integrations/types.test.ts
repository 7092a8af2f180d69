/**
 * The clients txscope returns keep their libraries' full types (checked by tsc, which runs over
 * test/; the `it` bodies only hold the checks).
 */

import type { MySqlRemoteDatabase } from 'drizzle-orm/mysql-proxy';
import type { PgRemoteDatabase } from 'drizzle-orm/pg-proxy';
import type { SqliteRemoteDatabase } from 'drizzle-orm/sqlite-proxy';
import type { Knex } from 'knex';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from 'txscope';
import { createDrizzle } from 'txscope/drizzle';
import { createKnex } from 'txscope/knex';
import { createKysely } from 'txscope/kysely';
import { adapter } from 'txscope/prisma';
import { describe, expectTypeOf, it } from 'vitest';
import { mysqlSchema, pgSchema, sqliteSchema } from '../support/clients/drizzle.js';
import type { KyselyDB } from '../support/clients/kysely.js';
import { PrismaClient } from '../support/clients/prisma/generated/postgres/client.js';

// Never called: the checks are the types of its statements.
async function kyselyTypes(db: Database): Promise<void> {
  const kysely = createKysely<KyselyDB>(db);
  expectTypeOf(kysely).toEqualTypeOf<Kysely<KyselyDB>>();
  const user = await kysely.selectFrom('users').select(['id', 'name']).executeTakeFirstOrThrow();
  expectTypeOf(user).toEqualTypeOf<{ id: number; name: string }>();
  await kysely.transaction().execute(async (trx) => {
    expectTypeOf(trx).toEqualTypeOf<Transaction<KyselyDB>>();
  });
  // @ts-expect-error: no such table
  kysely.selectFrom('nope');
}

async function drizzleTypes(db: Database): Promise<void> {
  const pg = createDrizzle(db, { schema: pgSchema });
  expectTypeOf(pg).toEqualTypeOf<PgRemoteDatabase<typeof pgSchema>>();
  const rows = await pg.select({ id: pgSchema.users.id, name: pgSchema.users.name }).from(pgSchema.users);
  expectTypeOf(rows).toEqualTypeOf<{ id: number; name: string }[]>();
  const found = await pg.query.users.findFirst();
  expectTypeOf(found).toEqualTypeOf<{ id: number; name: string } | undefined>();
  expectTypeOf(createDrizzle(db, { schema: mysqlSchema })).toEqualTypeOf<
    MySqlRemoteDatabase<typeof mysqlSchema>
  >();
  expectTypeOf(createDrizzle(db, { schema: sqliteSchema })).toEqualTypeOf<
    SqliteRemoteDatabase<typeof sqliteSchema>
  >();
  expectTypeOf(createDrizzle(db, { dialect: 'postgres' })).toEqualTypeOf<
    PgRemoteDatabase<Record<string, never>>
  >();
  // @ts-expect-error: a schema or a dialect is needed to know the database's type
  createDrizzle(db, {});
}

async function prismaTypes(db: Database): Promise<void> {
  const prisma = new PrismaClient({ adapter: adapter(db) });
  const user = await prisma.user.create({ data: { name: 'ada' } });
  expectTypeOf(user).toEqualTypeOf<{ id: number; name: string }>();
  await prisma.$transaction(async (tx) => {
    expectTypeOf(await tx.user.findMany()).toEqualTypeOf<{ id: number; name: string }[]>();
  });
}

async function knexTypes(db: Database): Promise<void> {
  const knex = createKnex(db, { useNullAsDefault: true });
  expectTypeOf(knex).toEqualTypeOf<Knex>();
  await knex.transaction(async (trx) => {
    expectTypeOf(trx).toEqualTypeOf<Knex.Transaction>();
  });
  // @ts-expect-error: the txscope database owns the connections
  createKnex(db, { connection: 'postgres://localhost/app' });
}

describe('integration types', () => {
  it('createKysely returns Kysely<DB>', () => {
    expectTypeOf(kyselyTypes).toBeFunction();
  });
  it('createDrizzle returns the Drizzle database of the schema’s dialect', () => {
    expectTypeOf(drizzleTypes).toBeFunction();
  });
  it('createKnex returns Knex', () => {
    expectTypeOf(knexTypes).toBeFunction();
  });
  it('adapter(db) fits PrismaClient and keeps the generated model types', () => {
    expectTypeOf(prismaTypes).toBeFunction();
  });
});
