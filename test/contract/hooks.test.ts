/** Rule 11 (hooks). */
import diagnostics from 'node:diagnostics_channel';
import type { ErrorEvent } from 'txscope';
import { afterEach, expect, it } from 'vitest';
import { forEachDriver } from '../support/drivers.js';
import { insertItem, itemsTable } from '../support/schema.js';

const reported: ErrorEvent[] = [];
const onError = (message: unknown) => reported.push(message as ErrorEvent);
diagnostics.subscribe('txscope:error', onError);
afterEach(() => {
  reported.length = 0;
});

forEachDriver('hooks', (env) => {
  const tags = async () =>
    (await env.observe<{ tag: string }>('select tag from items order by id')).map((r) => r.tag);

  it('beforeCommit runs inside the transaction, before COMMIT: its statements commit with it', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await db.transaction(async () => {
      await insertItem(db, 'work');
      db.beforeCommit(async () => {
        expect(db.current.inTransaction).toBe(true);
        await insertItem(db, 'outbox');
      });
    });
    expect(probe.acquires).toBe(1);
    expect(probe.statements.at(-1)).toBe(db.dialect.commit);
    expect(await tags()).toEqual(['work', 'outbox']);
  });

  it('beforeCommit may throw: the transaction rolls back and rejects with that error', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const veto = new Error('veto');
    const after: string[] = [];
    await expect(
      db.transaction(async () => {
        await insertItem(db, 'work');
        db.beforeCommit(() => {
          throw veto;
        });
        db.afterCommit(() => after.push('commit'));
        db.afterRollback(() => after.push('rollback'));
      }),
    ).rejects.toBe(veto);
    expect(after).toEqual(['rollback']);
    expect(await tags()).toEqual([]);
  });

  it('afterCommit runs after the outermost commit, connection released, one after another in order; errors are reported, not thrown', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    const order: string[] = [];
    await db.transaction(async () => {
      await insertItem(db, 'a');
      db.afterCommit(async () => {
        order.push('first:start');
        expect(probe.checkedOut).toBe(0);
        await Promise.resolve();
        order.push('first:end');
      });
      await db.transaction(async () => {
        db.afterCommit(() => {
          order.push('second');
          throw new Error('second fails');
        });
      });
      db.afterCommit(() => {
        order.push('third');
      });
      db.afterCompletion((status) => {
        order.push(`completion:${status}`);
      });
      expect(order).toEqual([]);
    });
    expect(order).toEqual(['first:start', 'first:end', 'second', 'third', 'completion:committed']);
    expect(reported.map((e) => [e.source, (e.error as Error).message])).toEqual([
      ['afterCommit', 'second fails'],
    ]);
  });

  it('afterCommit callbacks run outside the finished transaction: their statements autocommit', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    await db.transaction(async () => {
      await insertItem(db, 'work');
      db.afterCommit(async () => {
        expect(db.current.inTransaction).toBe(false);
        await insertItem(db, 'after');
      });
    });
    expect(await tags()).toEqual(['work', 'after']);
  });

  it('afterRollback and afterCompletion(rolled_back) run after a rollback; afterCommit does not', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const seen: string[] = [];
    await db
      .transaction(async () => {
        await insertItem(db, 'x');
        db.afterCommit(() => seen.push('commit'));
        db.afterRollback(() => seen.push('rollback'));
        db.afterCompletion((s) => seen.push(s));
        throw new Error('fail');
      })
      .catch(() => {});
    expect(seen).toEqual(['rollback', 'rolled_back']);
  });

  it('a savepoint callback moves to the parent on release and is dropped when the savepoint rolls back', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const seen: string[] = [];
    await db.transaction(async () => {
      await insertItem(db, 'outer');
      await db.transaction(
        async () => {
          await insertItem(db, 'kept');
          db.afterCommit(() => seen.push('released'));
        },
        { propagation: 'nested' },
      );
      expect(seen).toEqual([]);
      await db
        .transaction(
          async () => {
            await insertItem(db, 'dropped');
            db.afterCommit(() => seen.push('rolled back'));
            db.afterRollback(() => seen.push('rolled back (afterRollback)'));
            throw new Error('savepoint fails');
          },
          { propagation: 'nested' },
        )
        .catch(() => {});
    });
    expect(seen).toEqual(['released']);
    expect(await tags()).toEqual(['outer', 'kept']);
  });

  it('outside a transaction afterCommit runs at once; beforeCommit rejects ERR_NO_TRANSACTION', async () => {
    const { db } = env.createDb();
    const seen: string[] = [];
    db.afterCommit(() => seen.push('now'));
    expect(seen).toEqual(['now']);
    expect(() => db.beforeCommit(() => {})).toThrow(expect.objectContaining({ code: 'ERR_NO_TRANSACTION' }));
  });
});
