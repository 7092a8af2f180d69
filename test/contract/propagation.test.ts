/** Rules 6 (propagation) and 7 (compatibility of joined frames). */

import { Propagation, sql } from 'txscope';
import { expect, it } from 'vitest';
import { forEachDriver } from '../support/drivers.js';
import { insertItem, itemsTable } from '../support/schema.js';

forEachDriver('propagation', (env) => {
  const tags = async () =>
    (await env.observe<{ tag: string }>('select tag from items order by id')).map((r) => r.tag);
  const multi = env.capabilities.multiConnection;

  it('required joins the active transaction: same connection, one commit', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await db.transaction(async () => {
      await insertItem(db, 'outer');
      await db.transaction(async () => {
        expect(db.current.depth).toBe(2);
        await insertItem(db, 'inner');
      });
    });
    expect(probe.acquires).toBe(1);
    expect(probe.statements.filter((s) => s === db.dialect.commit)).toHaveLength(1);
    expect(await tags()).toEqual(['outer', 'inner']);
  });

  it('required: a joined frame that throws makes the outer commit reject ERR_ROLLBACK_ONLY, nothing committed', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const result = db.transaction(async () => {
      await insertItem(db, 'outer');
      await db
        .transaction(async () => {
          await insertItem(db, 'inner');
          throw new Error('inner failed');
        })
        .catch(() => 'swallowed');
      await insertItem(db, 'after');
    });
    await expect(result).rejects.toMatchObject({ code: 'ERR_ROLLBACK_ONLY' });
    expect(await tags()).toEqual([]);
    expect(db.stats().checkedOut).toBe(0);
  });

  it('nested: a savepoint whose failure rolls back only its own work', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await db.transaction(async () => {
      await insertItem(db, 'outer');
      await db
        .transaction(
          async () => {
            await insertItem(db, 'nested');
            throw new Error('nested failed');
          },
          { propagation: 'nested' },
        )
        .catch(() => 'handled');
      await db.transaction(() => insertItem(db, 'kept'), { propagation: Propagation.NESTED });
    });
    expect(await tags()).toEqual(['outer', 'kept']);
    const savepoints = probe.statements.filter((s) => /^SAVEPOINT /i.test(s));
    expect(savepoints).toHaveLength(2);
    expect(new Set(savepoints).size).toBe(2);
    expect(probe.statements.some((s) => /^ROLLBACK TO SAVEPOINT /i.test(s))).toBe(true);
    expect(probe.acquires).toBe(1);
  });

  it('nested without a transaction begins one', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await db.transaction(() => insertItem(db, 'x'), { propagation: 'nested' });
    expect(probe.statements[0]).toBe(db.dialect.begin({ isolation: undefined, readOnly: false })[0]);
    expect(probe.statements.some((s) => /SAVEPOINT/i.test(s))).toBe(false);
    expect(await tags()).toEqual(['x']);
  });

  it.runIf(multi)(
    'requires_new suspends the transaction (its connection stays held) and runs on a second one',
    async () => {
      const { db, probe } = env.createDb();
      await itemsTable(db);
      probe.reset();
      const result = db.transaction(async () => {
        await insertItem(db, 'outer');
        await db.transaction(
          async () => {
            await insertItem(db, 'audit');
            expect(probe.checkedOut).toBe(2);
          },
          { propagation: 'requires_new' },
        );
        expect(await tags()).toEqual(['audit']);
        throw new Error('outer fails after the inner committed');
      });
      await expect(result).rejects.toThrow('outer fails');
      expect(probe.acquires).toBe(2);
      expect(await tags()).toEqual(['audit']);
    },
  );

  it.runIf(!multi)(
    'requires_new inside a begun transaction on a one-connection driver rejects ERR_POOL_DEADLOCK at once',
    async () => {
      const { db } = env.createDb();
      await itemsTable(db);
      let ran = false;
      const result = db.transaction(async () => {
        await insertItem(db, 'outer');
        await db.transaction(
          async () => {
            ran = true;
            await insertItem(db, 'inner');
          },
          { propagation: 'requires_new' },
        );
      });
      await expect(result).rejects.toMatchObject({ code: 'ERR_POOL_DEADLOCK' });
      expect(ran).toBe(true);
      expect(await tags()).toEqual([]);
    },
  );

  it.runIf(multi)('not_supported suspends the transaction and runs in autocommit', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    await db
      .transaction(async () => {
        await insertItem(db, 'outer');
        await db.transaction(
          async () => {
            expect(db.current.inTransaction).toBe(false);
            await insertItem(db, 'autocommit');
          },
          { propagation: 'not_supported' },
        );
        expect(db.current.inTransaction).toBe(true);
        expect(await tags()).toEqual(['autocommit']);
        throw new Error('roll back the outer');
      })
      .catch(() => {});
    expect(await tags()).toEqual(['autocommit']);
  });

  it('supports joins a transaction if there is one, else runs without', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await db.transaction(
      async () => {
        expect(db.current.inTransaction).toBe(false);
        await insertItem(db, 'alone');
      },
      { propagation: 'supports' },
    );
    expect(probe.statements).toHaveLength(1);
    await db.transaction(async () => {
      await db.transaction(
        async () => {
          expect(db.current.inTransaction).toBe(true);
          await insertItem(db, 'joined');
        },
        { propagation: 'supports' },
      );
    });
    expect(await tags()).toEqual(['alone', 'joined']);
  });

  it('mandatory without a transaction rejects ERR_NO_TRANSACTION on entry: fn never runs, nothing sent', async () => {
    const { db, probe } = env.createDb();
    probe.reset();
    let ran = false;
    await expect(
      db.transaction(
        async () => {
          ran = true;
        },
        { propagation: 'mandatory' },
      ),
    ).rejects.toMatchObject({ code: 'ERR_NO_TRANSACTION' });
    expect(ran).toBe(false);
    expect(probe.statements).toEqual([]);
    await db.transaction(async () => {
      await db.transaction(
        async () => {
          ran = true;
        },
        { propagation: 'mandatory' },
      );
    });
    expect(ran).toBe(true);
  });

  it('never inside a transaction rejects ERR_EXISTING_TRANSACTION on entry; outside it runs', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    let ran = false;
    await db.transaction(async () => {
      await insertItem(db, 'outer');
      const sent = probe.statements.length;
      await expect(
        db.transaction(
          async () => {
            ran = true;
          },
          { propagation: 'never' },
        ),
      ).rejects.toMatchObject({ code: 'ERR_EXISTING_TRANSACTION' });
      expect(probe.statements.length).toBe(sent);
    });
    expect(ran).toBe(false);
    await db.transaction(() => insertItem(db, 'never'), { propagation: 'never' });
    expect(await tags()).toEqual(['outer', 'never']);
  });

  it('rule 7: joining with a different isolation rejects ERR_INCOMPATIBLE_TRANSACTION on entry', async () => {
    const { db, probe } = env.createDb();
    const levels = db.dialect.isolationLevels;
    const outer = levels.at(-1);
    const other = levels.find((l) => l !== outer);
    let ran = false;
    await db.transaction(
      async () => {
        await db.query(sql`select 1 as one`);
        if (other !== undefined) {
          await expect(
            db.transaction(
              async () => {
                ran = true;
              },
              { isolation: other },
            ),
          ).rejects.toMatchObject({ code: 'ERR_INCOMPATIBLE_TRANSACTION' });
          await expect(
            db.transaction(
              async () => {
                ran = true;
              },
              { isolation: other, propagation: 'nested' },
            ),
          ).rejects.toMatchObject({ code: 'ERR_INCOMPATIBLE_TRANSACTION' });
        }
        // Same isolation, or none stated: joins.
        await db.transaction(() => db.query(sql`select 1 as one`), { isolation: outer });
        await db.transaction(() => db.query(sql`select 1 as one`));
      },
      { isolation: outer },
    );
    expect(ran).toBe(false);
    // An outer frame that stated no isolation accepts an inner one that does.
    await db.transaction(async () => {
      await db.transaction(() => db.query(sql`select 1 as one`), { isolation: outer });
    });
    expect(probe.checkedOut).toBe(0);
  });

  it('rule 7: readOnly: false cannot join a read-only transaction; a read-only frame may join a read-write one', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    let ran = false;
    await db.transaction(
      async () => {
        await expect(
          db.transaction(
            async () => {
              ran = true;
            },
            { readOnly: false },
          ),
        ).rejects.toMatchObject({ code: 'ERR_INCOMPATIBLE_TRANSACTION' });
        await db.transaction(async () => {
          expect(db.current.readOnly).toBe(true);
        });
      },
      { readOnly: true },
    );
    expect(ran).toBe(false);
    await db.transaction(async () => {
      await insertItem(db, 'rw');
      await db.transaction(
        async () => {
          expect(db.current.readOnly).toBe(true);
          await db.query(sql`select count(*) as c from items`);
        },
        { readOnly: true },
      );
    });
    expect(await tags()).toEqual(['rw']);
  });
});
