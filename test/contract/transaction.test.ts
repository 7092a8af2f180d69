/** Rules 4 (transaction lifetime) and 5 (outcome), and the `sql` tag against a real database. */

import { sql } from 'txscope';
import { expect, it } from 'vitest';
import { forEachDriver } from '../support/drivers.js';
import { insertItem, itemsTable } from '../support/schema.js';

forEachDriver('transaction lifetime and outcome', (env) => {
  const tags = async () =>
    (await env.observe<{ tag: string }>('select tag from items order by id')).map((r) => r.tag);

  it('rule 4: a transaction of 4 statements takes 1 connection and sends BEGIN, the 4, COMMIT', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await db.scope(() =>
      db.transaction(async () => {
        await insertItem(db, 'a');
        await insertItem(db, 'b');
        await insertItem(db, 'c');
        await db.query(sql`select count(*) as c from items`);
      }),
    );
    expect(probe.acquires).toBe(1);
    expect(probe.releases).toBe(1);
    const begin = db.dialect.begin({ isolation: undefined, readOnly: false });
    expect(probe.statements).toHaveLength(begin.length + 5);
    expect(probe.statements.slice(0, begin.length)).toEqual(begin);
    expect(probe.statements.at(-1)).toBe(db.dialect.commit);
    expect(await tags()).toEqual(['a', 'b', 'c']);
  });

  it('rule 4: BEGIN carries isolation and read-only mode', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    const isolation = db.dialect.isolationLevels.at(-1);
    await db.transaction(() => db.query(sql`select count(*) as c from items`), { isolation, readOnly: true });
    const begin = db.dialect.begin({ isolation, readOnly: true });
    expect(probe.statements.slice(0, begin.length)).toEqual(begin);
    probe.reset();
    await expect(db.transaction(() => insertItem(db, 'ro'), { readOnly: true })).rejects.toBeDefined();
    expect(await tags()).toEqual([]);
  });

  it.runIf(env.capabilities.observerIsolated)(
    'rule 4: rows are visible to a second connection only after COMMIT',
    async () => {
      const { db } = env.createDb();
      await itemsTable(db);
      await db.transaction(async () => {
        await insertItem(db, 'pending');
        expect(await tags()).toEqual([]);
      });
      expect(await tags()).toEqual(['pending']);
    },
  );

  it('rule 4: the connection is back in the pool before after-commit callbacks run', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    const seen: Array<{ checkedOut: number; stats: number; idle: number }> = [];
    await db.transaction(async () => {
      await insertItem(db, 'a');
      db.afterCommit(async () => {
        const activity = env.capabilities.serverSessions
          ? await env.observe<{ n: number | string }>(
              "select count(*) as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'",
            )
          : [{ n: 0 }];
        seen.push({
          checkedOut: probe.checkedOut,
          stats: db.stats().checkedOut,
          idle: Number(activity[0]?.n),
        });
      });
    });
    expect(seen).toEqual([{ checkedOut: 0, stats: 0, idle: 0 }]);
  });

  it.runIf(
    env.name === 'pg' || env.name === 'pgbouncer' || env.name === 'postgresjs' || env.name === 'pglite',
  )('rule 4: a COMMIT answered with a ROLLBACK tag rejects, never passes as a commit', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const result = db.transaction(async () => {
      await insertItem(db, 'lost');
      await db.query('select 1/0').catch(() => 'swallowed');
    });
    await expect(result).rejects.toMatchObject({ code: 'ERR_ROLLBACK_ONLY' });
    expect(await tags()).toEqual([]);
    expect(db.stats().checkedOut).toBe(0);
  });

  it('rule 5: fn throws → rollback, and the original error is rethrown', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    const boom = new Error('boom');
    const result = db.transaction(async () => {
      await insertItem(db, 'a');
      await insertItem(db, 'b');
      throw boom;
    });
    await expect(result).rejects.toBe(boom);
    expect(probe.statements.at(-1)).toBe(db.dialect.rollback);
    expect(await tags()).toEqual([]);
    expect(probe.checkedOut).toBe(0);
  });

  it('rule 5: a failing ROLLBACK never masks the original error, and the connection is not pooled', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    probe.fault = (text) => (text === db.dialect.rollback ? new Error('rollback failed') : undefined);
    const boom = new Error('boom');
    await expect(
      db.transaction(async () => {
        await insertItem(db, 'a');
        throw boom;
      }),
    ).rejects.toBe(boom);
    probe.fault = undefined;
    expect(probe.destroyed).toBe(1);
    expect(await tags()).toEqual([]);
  });

  it('rule 5: driver errors reach the caller unchanged', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const error = await db
      .transaction(() => db.query('select * from no_such_table'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as { name: string }).name).not.toBe('TxScopeError');
  });

  it('rollbackOn: an error it declines commits the work and still rejects with the error', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    class Expected extends Error {}
    await expect(
      db.transaction(
        async () => {
          await insertItem(db, 'kept');
          throw new Expected('business outcome');
        },
        { rollbackOn: (e) => !(e instanceof Expected) },
      ),
    ).rejects.toBeInstanceOf(Expected);
    expect(await tags()).toEqual(['kept']);
  });

  it('sql: values are always bound, identifiers quoted, lists joined, fragments nested', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const hostile = "x'); drop table items; --";
    await db.query(sql`insert into ${sql.id('items')} (tag, n) values (${hostile}, ${1})`);
    const where = sql`n in (${sql.join([1, 2, 3])})`;
    const { rows } = await db.query<{ tag: string }>(
      sql`select ${sql.join([sql.id('tag')], ', ')} from items where ${where} and tag = ${hostile}`,
    );
    expect(rows).toEqual([{ tag: hostile }]);
    const raw = await db.query<{ tag: string }>(
      db.dialect.name === 'postgres'
        ? 'select tag from items where n = $1'
        : 'select tag from items where n = ?',
      [1],
    );
    expect(raw.rows).toEqual([{ tag: hostile }]);
    expect(raw.rowCount).toBe(1);
  });
});
