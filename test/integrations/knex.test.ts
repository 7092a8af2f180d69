/** The shared integration scenarios (test/support/clients/suite.ts) for Knex, and what only Knex has. */
import type { Knex } from 'knex';
import { createKnex } from 'txscope/knex';
import { expect, it } from 'vitest';
import { prepareSchema } from '../support/clients/index.js';
import { knexCase, knexRepositories } from '../support/clients/knex.js';
import { integrationSuite } from '../support/clients/suite.js';

const boom = new Error('boom');

integrationSuite(knexCase, (env) => {
  const users = async () =>
    (await env.observe<{ name: string }>('select name from users order by id')).map((r) => r.name);

  async function setup() {
    const { db, probe } = env.createDb();
    await prepareSchema(env, db);
    const knex = createKnex(db, { useNullAsDefault: true });
    probe.reset();
    return { db, probe, knex };
  }

  it('knex.raw joins the ambient transaction and rolls back with it', async () => {
    const { db, probe, knex } = await setup();
    await expect(
      db.transaction(async () => {
        await knex.raw('insert into users (name) values (?)', ['raw']);
        const [row] = await knex('users').count({ n: '*' });
        expect(Number(row?.n)).toBe(1);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await users()).toEqual([]);
    expect(probe.acquires).toBe(1);
  });

  it('trx.transaction() and trx.savepoint() are savepoints: their failure undoes only their own work', async () => {
    const { db, probe, knex } = await setup();
    await knex.transaction(async (trx) => {
      await trx('users').insert({ name: 'outer' });
      await trx
        .transaction(async (inner) => {
          await inner('users').insert({ name: 'inner' });
          throw boom;
        })
        .catch(() => 'handled');
      await trx.savepoint(async (sp) => {
        await sp('users').insert({ name: 'saved' });
      });
    });
    expect(await users()).toEqual(['outer', 'saved']);
    expect(probe.statements.filter((s) => /^SAVEPOINT /i.test(s))).toHaveLength(2);
    expect(probe.statements.filter((s) => /^ROLLBACK TO SAVEPOINT /i.test(s))).toHaveLength(1);
    expect(probe.statements.filter((s) => s === db.dialect.commit)).toHaveLength(1);
    expect(probe.acquires).toBe(1);
  });

  it('knex.transaction() without a callback is a controlled trx: commit, rollback, executionPromise', async () => {
    const { db, probe, knex } = await setup();
    const trx = await knex.transaction();
    await trx('users').insert({ name: 'kept' });
    expect(trx.isCompleted()).toBe(false);
    if (env.capabilities.observerIsolated) expect(await users()).toEqual([]);
    await trx.commit('done');
    expect(trx.isCompleted()).toBe(true);
    await expect(trx.executionPromise).resolves.toBe('done');
    expect(await users()).toEqual(['kept']);
    // Statements through a completed trx reject; none of them runs.
    await expect(trx('users').insert({ name: 'late' })).rejects.toThrow(/already complete/);

    const undone = await knex.transaction();
    await undone('users').insert({ name: 'undone' });
    await undone.rollback();
    await expect(undone.executionPromise).resolves.toBeUndefined();
    const failed = await knex.transaction();
    await failed('users').insert({ name: 'failed' });
    await failed.rollback(boom);
    await expect(failed.executionPromise).rejects.toBe(boom);

    expect(await users()).toEqual(['kept']);
    expect(probe.statements.filter((s) => s === db.dialect.commit)).toHaveLength(1);
    expect(probe.statements.filter((s) => s === db.dialect.rollback)).toHaveLength(2);
    expect(probe.statements.some((s) => /late/.test(s))).toBe(false);
    expect(probe.acquires).toBe(3);
    expect(probe.checkedOut).toBe(0);
  });

  it('.transacting(trx) on the module-level knex runs in that transaction', async () => {
    const { probe, knex } = await setup();
    const trx = await knex.transaction();
    await knex('users').insert({ name: 'a' }).transacting(trx);
    const rows = await knex('users').select('name').transacting(trx);
    expect(rows).toEqual([{ name: 'a' }]);
    await trx.rollback();
    expect(await users()).toEqual([]);
    expect(probe.acquires).toBe(1);
  });

  it('a trx keeps to its transaction wherever it is used, even from another async context', async () => {
    const { db, probe, knex } = await setup();
    let escaped: Knex.Transaction | undefined;
    const done = knex.transaction(async (trx) => {
      escaped = trx;
      await trx('users').insert({ name: 'inside' });
      await new Promise((resolve) => setTimeout(resolve, 0));
    });
    await new Promise<void>((resolve) => setImmediate(resolve));
    // Outside the callback, with no txscope transaction here, the trx still runs in its own.
    expect(db.current.inTransaction).toBe(false);
    await done;
    expect(escaped?.isCompleted()).toBe(true);
    expect(await users()).toEqual(['inside']);
    expect(probe.acquires).toBe(1);
  });

  it('a joined frame that failed makes the Knex commit reject: nothing is committed', async () => {
    const { db, knex } = await setup();
    await expect(
      knex.transaction(async (trx) => {
        await trx('users').insert({ name: 'doomed' });
        await db
          .transaction(async () => {
            await knex('users').insert({ name: 'joined' });
            throw boom;
          })
          .catch(() => 'swallowed');
      }),
    ).rejects.toMatchObject({ code: 'ERR_ROLLBACK_ONLY' });
    expect(await users()).toEqual([]);
  });

  it('isolationLevel and readOnly reach BEGIN', async () => {
    const { db, probe, knex } = await setup();
    const level = db.dialect.isolationLevels.includes('repeatable read') ? 'repeatable read' : undefined;
    await knex.transaction(
      async (trx) => {
        expect(db.current.isolation).toBe(level ?? null);
        await trx('users').select('name');
      },
      level === undefined ? {} : { isolationLevel: level },
    );
    for (const text of db.dialect.begin({ isolation: level, readOnly: false }))
      expect(probe.statements).toContain(text);
    probe.reset();
    await knex.transaction(
      async (trx) => {
        expect(db.current.readOnly).toBe(true);
        await trx('users').select('name');
      },
      { readOnly: true },
    );
    for (const text of db.dialect.begin({ isolation: undefined, readOnly: true }))
      expect(probe.statements).toContain(text);
  });

  it.runIf(env.name !== 'mysql')('returning gives the rows written, inside a transaction too', async () => {
    const { db, knex } = await setup();
    const inserted = await knex('users').insert([{ name: 'a' }, { name: 'b' }], ['id', 'name']);
    expect(inserted.map((r: { name: string }) => r.name)).toEqual(['a', 'b']);
    await knex.transaction(async (trx) => {
      const updated = await trx('users').where({ name: 'a' }).update({ name: 'c' }, ['name']);
      expect(updated).toEqual([{ name: 'c' }]);
      // Knex's SQLite compiler has returning for insert and update only.
      const deleted = await trx('users').where({ name: 'b' }).del(['name']);
      expect(deleted).toEqual(db.dialect.name === 'postgres' ? [{ name: 'b' }] : 1);
    });
    expect(await users()).toEqual(['c']);
  });

  it('insert ids, affected rows and first() come back as Knex reports them', async () => {
    const { db, knex } = await setup();
    const inserted = await knex('users').insert({ name: 'a' });
    // Knex's pg client answers an insert without returning with the driver's result, the others with ids.
    if (db.dialect.name === 'postgres') expect(inserted).toMatchObject({ command: 'INSERT', rowCount: 1 });
    else expect(Number(inserted[0])).toBeGreaterThan(0);
    await knex('users').insert({ name: 'b' });
    expect(await knex('users').where({ name: 'a' }).update({ name: 'c' })).toBe(1);
    expect(await knex('users').where({ name: 'c' }).first()).toMatchObject({ name: 'c' });
    expect(await knex('users').orderBy('id').pluck('name')).toEqual(['c', 'b']);
    expect(await knex('users').del()).toBe(2);
  });

  it('.stream() inside a transaction reads through it, on its one connection', async () => {
    const { db, probe, knex } = await setup();
    await db
      .transaction(async () => {
        await knex('users').insert([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
        const seen: string[] = [];
        // Module-level knex: the uncommitted rows are visible, so the stream joined the transaction.
        for await (const row of knex('users').select('name').orderBy('id').stream())
          seen.push((row as { name: string }).name);
        expect(seen).toEqual(['a', 'b', 'c']);
        throw boom;
      })
      .catch(() => 'rolled back');
    const trx = await knex.transaction();
    await trx('users').insert({ name: 'in trx' });
    const streamed: string[] = [];
    for await (const row of trx('users').select('name').stream())
      streamed.push((row as { name: string }).name);
    await trx.rollback();
    expect(streamed).toEqual(['in trx']);
    expect(await users()).toEqual([]);
    expect(probe.acquires).toBe(2);
    expect(probe.checkedOut).toBe(0);
  });

  it('knex.migrate.latest() runs migrations and records them', async () => {
    const { db, knex } = await setup();
    const migrationSource = {
      getMigrations: async () => ['001_things', '002_seed'],
      getMigrationName: (name: string) => name,
      getMigration: async (name: string) =>
        name === '001_things'
          ? {
              up: (k: Knex) =>
                k.schema.createTable('things', (t) => {
                  t.increments('id');
                  t.string('label').notNullable();
                }),
              down: (k: Knex) => k.schema.dropTable('things'),
            }
          : {
              up: (k: Knex) => k('things').insert({ label: 'first' }),
              down: (k: Knex) => k('things').del(),
            },
    };
    const [batch, log] = await knex.migrate.latest({ migrationSource });
    expect([batch, log]).toEqual([1, ['001_things', '002_seed']]);
    expect(await env.observe('select label from things')).toEqual([{ label: 'first' }]);
    const recorded = await env.observe<{ name: string }>('select name from knex_migrations order by id');
    expect(recorded.map((r) => r.name)).toEqual(['001_things', '002_seed']);
    const [again] = await knex.migrate.latest({ migrationSource });
    expect(again).toBe(1);
    await knex.migrate.rollback({ migrationSource }, true);
    expect(await knex.schema.hasTable('things')).toBe(false);
    expect(db.current.inTransaction).toBe(false);
  });

  it.runIf(env.name === 'sqlite')(
    "SQLite's table rebuilds (alter column) run in a transaction of their own",
    async () => {
      const { db, probe, knex } = await setup();
      await knex.schema.dropTableIfExists('rebuilt');
      await knex.schema.createTable('rebuilt', (t) => {
        t.increments('id');
        t.string('a');
        t.integer('b');
      });
      await knex('rebuilt').insert({ a: 'x', b: 1 });
      probe.reset();
      await knex.schema.alterTable('rebuilt', (t) => {
        t.text('a').notNullable().alter();
      });
      await knex.transaction((trx) =>
        trx.schema.alterTable('rebuilt', (t) => {
          t.dropColumn('b');
        }),
      );
      expect(await env.observe('select * from rebuilt')).toEqual([{ id: 1, a: 'x' }]);
      const [table] = await env.observe<{ sql: string }>(
        "select sql from sqlite_master where name = 'rebuilt'",
      );
      expect(table?.sql).toMatch(/`a` text NOT NULL/);
      const drop = probe.statements.findIndex((text) => /^DROP TABLE "rebuilt"/.test(text));
      expect(
        probe.statements
          .slice(0, drop)
          .filter((text) => text === db.dialect.begin({ isolation: undefined, readOnly: false })[0]).length,
      ).toBeGreaterThan(0);
      expect(probe.checkedOut).toBe(0);
    },
  );

  it('knex.destroy() closes nothing of the txscope pool: db.close() does', async () => {
    const { db, probe, knex } = await setup();
    await knex('users').insert({ name: 'a' });
    const sessions = async () =>
      Number(
        (
          await env.observe<{ n: number | string }>(
            'select count(*) as n from pg_stat_activity where datname = current_database()',
          )
        )[0]?.n,
      );
    const before = env.capabilities.serverSessions ? await sessions() : 0;
    const open = db.stats().pool.total;
    await knex.destroy();
    if (env.capabilities.serverSessions) expect(await sessions()).toBe(before);
    expect(db.stats().pool.total).toBe(open);
    // The database and its pool work on; the same knex still runs through them.
    expect((await db.query<{ n: number | string }>('select count(*) as n from users')).rows[0]?.n).toEqual(
      expect.anything(),
    );
    await knex('users').insert({ name: 'b' });
    expect(await users()).toEqual(['a', 'b']);
    expect(probe.destroyed).toBe(0);
  });

  it('repositories over a trx and over the module-level knex share its transaction', async () => {
    const { db, probe, knex } = await setup();
    const repos = knexRepositories(knex, db);
    await expect(
      knex.transaction(async (trx) => {
        const id = await knexRepositories(trx, db).createUser('ada');
        await repos.addOrder(id, 1);
        await repos.audit('module-level');
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await users()).toEqual([]);
    expect(probe.acquires).toBe(1);
  });

  it('a transaction txscope refuses is refused on entry: the callback never runs, nothing is sent', async () => {
    const { probe, knex } = await setup();
    let ran = false;
    await expect(
      knex.transaction(
        async () => {
          ran = true;
        },
        { isolationLevel: 'snapshot' },
      ),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    expect(ran).toBe(false);
    expect(probe.statements).toEqual([]);
  });

  it("Knex's query events still fire, for the module-level knex and for a trx", async () => {
    const { knex } = await setup();
    const seen: string[] = [];
    knex.on('query', (query: { sql: string }) => seen.push(query.sql));
    await knex('users').select('name');
    await knex.transaction((trx) => trx('users').insert({ name: 'a' }));
    expect(seen.some((text) => /^select/i.test(text))).toBe(true);
    expect(seen.some((text) => /^insert/i.test(text))).toBe(true);
  });

  it('an empty knex.transaction costs nothing: no connection, no BEGIN', async () => {
    const { probe, knex } = await setup();
    await knex.transaction(async () => {});
    const trx = await knex.transaction();
    await trx.commit();
    expect(probe.acquires).toBe(0);
    expect(probe.statements).toEqual([]);
  });

  it('.timeout(ms, { cancel: true }) is refused as the query is built, naming the alternative', async () => {
    const { probe, knex } = await setup();
    expect(() => knex('users').select('name').timeout(10, { cancel: true })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('timeoutMs') }),
    );
    expect(probe.statements).toEqual([]);
  });

  it('createKnex refuses what would give Knex connections of its own, and what is not a txscope database', () => {
    const { db } = env.createDb();
    expect(() => createKnex({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    for (const config of [{ connection: 'postgres://x' }, { client: 'pg' }, { pool: { max: 1 } }])
      expect(() => createKnex(db, config as never)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
      );
  });
});
