/** The shared integration scenarios (test/support/clients/suite.ts) for Drizzle, and what only Drizzle has. */
import { asc, eq, sql } from 'drizzle-orm';
import type { Database } from 'txscope';
import { createDrizzle } from 'txscope/drizzle';
import { expect, it } from 'vitest';
import { drizzleCase, drizzleFor, mysqlSchema, pgSchema, sqliteSchema } from '../support/clients/drizzle.js';
import { prepareSchema } from '../support/clients/index.js';
import { integrationSuite } from '../support/clients/suite.js';

/** The dialect's tables, typed as Postgres ones: the three share column names and query shapes. */
function tablesFor(db: Database): typeof pgSchema {
  const byDialect = { postgres: pgSchema, mysql: mysqlSchema, sqlite: sqliteSchema };
  return byDialect[db.dialect.name] as unknown as typeof pgSchema;
}

integrationSuite(drizzleCase, (env) => {
  const users = async () =>
    (await env.observe<{ name: string }>('select name from users order by id')).map((r) => r.name);

  async function setup() {
    const { db, probe } = env.createDb();
    await prepareSchema(env, db);
    const { orm } = drizzleFor(db);
    probe.reset();
    // One query shape for the three dialects' databases.
    return { db, probe, orm: orm as ReturnType<typeof createDrizzle<typeof pgSchema>>, s: tablesFor(db) };
  }

  it('a join of columns with the same name maps each value to its own column', async () => {
    const { db, orm, s } = await setup();
    await db.query(`insert into users (name) values ('ada'), ('bob')`);
    const [ada, bob] = await orm.select().from(s.users).orderBy(asc(s.users.id));
    await db.query(`insert into orders (user_id, total) values (${bob?.id}, 7), (${ada?.id}, 9)`);
    const rows = await orm
      .select()
      .from(s.orders)
      .innerJoin(s.users, eq(s.orders.userId, s.users.id))
      .orderBy(asc(s.orders.id));
    expect(rows.map((r) => [r.orders.userId, r.users.id, r.users.name, r.orders.total])).toEqual([
      [bob?.id, bob?.id, 'bob', 7],
      [ada?.id, ada?.id, 'ada', 9],
    ]);
    expect(rows[0]?.orders.id).not.toBe(rows[0]?.users.id);
    const computed = await orm.select({ a: sql<number>`1`, b: sql<number>`2` }).from(s.users).limit(1);
    expect(computed.map((r) => [Number(r.a), Number(r.b)])).toEqual([[1, 2]]);
  });

  it('relational queries (db.query) run through txscope', async () => {
    const { db, probe, orm } = await setup();
    await db.transaction(async () => {
      await db.query(`insert into users (name) values ('ada')`);
      const found = await orm.query.users.findMany();
      expect(found.map((u) => u.name)).toEqual(['ada']);
    });
    expect(probe.acquires).toBe(1);
  });

  it('tx.rollback() and nested tx.transaction() savepoints', async () => {
    const { probe, orm, s } = await setup();
    await orm.transaction(async (tx) => {
      await tx.insert(s.users).values({ name: 'outer' });
      await tx
        .transaction(async (inner) => {
          await inner.insert(s.users).values({ name: 'inner' });
          inner.rollback();
        })
        .catch(() => 'rolled back');
    });
    await expect(
      orm.transaction(async (tx) => {
        await tx.insert(s.users).values({ name: 'doomed' });
        tx.rollback();
      }),
    ).rejects.toThrow(/rollback/i);
    expect(await users()).toEqual(['outer']);
    expect(probe.statements.some((t) => /^ROLLBACK TO SAVEPOINT /i.test(t))).toBe(true);
    expect(probe.acquires).toBe(2);
  });

  it('transaction config reaches BEGIN; options txscope cannot honour are refused before anything runs', async () => {
    const { db, probe, orm } = await setup();
    if (db.dialect.name !== 'sqlite') {
      await orm.transaction(
        async () => {
          expect(db.current.isolation).toBe('serializable');
          await db.query('select 1');
        },
        { isolationLevel: 'serializable' },
      );
      for (const text of db.dialect.begin({ isolation: 'serializable', readOnly: false }))
        expect(probe.statements).toContain(text);
    }
    const refused = {
      postgres: { deferrable: true },
      mysql: { withConsistentSnapshot: true },
      sqlite: { behavior: 'immediate' },
    }[db.dialect.name];
    probe.reset();
    await expect(orm.transaction(async () => {}, refused as never)).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
    });
    expect(probe.acquires).toBe(0);
  });

  it('createDrizzle refuses a schema or dialect of another database', () => {
    const { db } = env.createDb();
    const other = db.dialect.name === 'postgres' ? sqliteSchema : pgSchema;
    expect(() => createDrizzle(db, { schema: other })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    const dialect = db.dialect.name === 'mysql' ? 'sqlite' : 'mysql';
    expect(() => createDrizzle(db, { dialect })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
  });
});
