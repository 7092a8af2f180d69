/** The shared integration scenarios (test/support/clients/suite.ts) for Kysely, and what only Kysely has. */
import { CamelCasePlugin, sql } from 'kysely';
import { createKysely } from 'txscope/kysely';
import { expect, it } from 'vitest';
import { prepareSchema } from '../support/clients/index.js';
import { type KyselyDB, kyselyCase } from '../support/clients/kysely.js';
import { integrationSuite } from '../support/clients/suite.js';

integrationSuite(kyselyCase, (env) => {
  const users = async () =>
    (await env.observe<{ name: string }>('select name from users order by id')).map((r) => r.name);

  async function setup() {
    const { db, probe } = env.createDb();
    await prepareSchema(env, db);
    const kysely = createKysely<KyselyDB>(db);
    probe.reset();
    return { db, probe, kysely };
  }

  it('sql`` raw queries join the ambient transaction and roll back with it', async () => {
    const { db, probe, kysely } = await setup();
    await expect(
      db.transaction(async () => {
        await sql`insert into users (name) values (${'raw'})`.execute(kysely);
        const { rows } = await sql<{ n: number }>`select count(*) as n from users`.execute(kysely);
        expect(Number(rows[0]?.n)).toBe(1);
        throw new Error('undo');
      }),
    ).rejects.toThrow('undo');
    expect(await users()).toEqual([]);
    expect(probe.acquires).toBe(1);
  });

  it('reports affected rows of writes, as Kysely drivers do', async () => {
    const { kysely } = await setup();
    await kysely
      .insertInto('users')
      .values([{ name: 'a' }, { name: 'b' }])
      .execute();
    const updated = await kysely
      .updateTable('users')
      .set({ name: 'c' })
      .where('name', '=', 'a')
      .executeTakeFirst();
    expect(updated.numUpdatedRows).toBe(1n);
    const deleted = await kysely.deleteFrom('users').executeTakeFirst();
    expect(deleted.numDeletedRows).toBe(2n);
  });

  it('kysely.connection() pins one connection for its callback, without a transaction', async () => {
    const { db, probe, kysely } = await setup();
    await kysely.connection().execute(async (conn) => {
      await conn.insertInto('users').values({ name: 'a' }).execute();
      await kysely.insertInto('users').values({ name: 'b' }).execute();
      expect(db.current.inTransaction).toBe(false);
    });
    expect(await users()).toEqual(['a', 'b']);
    expect(probe.acquires).toBe(1);
    expect(probe.statements.some((s) => s === db.dialect.commit)).toBe(false);
  });

  it('kysely.startTransaction() is a txscope transaction: commit, rollback, savepoints', async () => {
    const { db, probe, kysely } = await setup();
    const trx = await kysely.startTransaction().execute();
    await trx.insertInto('users').values({ name: 'kept' }).execute();
    const sp = await trx.savepoint('sp1').execute();
    await sp.insertInto('users').values({ name: 'undone' }).execute();
    await sp.rollbackToSavepoint('sp1').execute();
    await trx.commit().execute();
    expect(trx.isCommitted).toBe(true);
    const other = await kysely.startTransaction().execute();
    await other.insertInto('users').values({ name: 'rolled back' }).execute();
    await other.rollback().execute();
    expect(await users()).toEqual(['kept']);
    expect(probe.statements.filter((s) => s === db.dialect.commit)).toHaveLength(1);
    expect(probe.acquires).toBe(2);
    expect(probe.checkedOut).toBe(0);
  });

  it('the transaction object is a Kysely Transaction; isolation and access mode reach BEGIN', async () => {
    const { db, probe, kysely } = await setup();
    const level = db.dialect.isolationLevels.includes('serializable') ? 'serializable' : undefined;
    const builder =
      level === undefined ? kysely.transaction() : kysely.transaction().setIsolationLevel(level);
    await builder.execute(async (trx) => {
      expect(trx.isTransaction).toBe(true);
      expect(db.current.isolation).toBe(level ?? null);
      await trx.selectFrom('users').selectAll().execute();
    });
    for (const text of db.dialect.begin({ isolation: level, readOnly: false }))
      expect(probe.statements).toContain(text);
    await kysely
      .transaction()
      .setAccessMode('read only')
      .execute(async () => {
        expect(db.current.readOnly).toBe(true);
      });
  });

  it('instances derived with plugins keep txscope transactions', async () => {
    const { db, probe, kysely } = await setup();
    const camel = kysely.withPlugin(new CamelCasePlugin());
    await expect(
      camel.transaction().execute(async (trx) => {
        await trx.insertInto('users').values({ name: 'a' }).execute();
        await kysely.insertInto('users').values({ name: 'b' }).execute();
        expect(db.current.inTransaction).toBe(true);
        throw new Error('undo');
      }),
    ).rejects.toThrow('undo');
    expect(await users()).toEqual([]);
    expect(probe.acquires).toBe(1);
  });

  it('stream() hands out the buffered result in chunks', async () => {
    const { kysely } = await setup();
    await kysely
      .insertInto('users')
      .values([{ name: 'a' }, { name: 'b' }, { name: 'c' }])
      .execute();
    const seen: string[] = [];
    for await (const row of kysely.selectFrom('users').select('name').orderBy('id').stream(2))
      seen.push(row.name);
    expect(seen).toEqual(['a', 'b', 'c']);
  });

  it('createKysely rejects what is not a txscope database', () => {
    expect(() => createKysely({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
