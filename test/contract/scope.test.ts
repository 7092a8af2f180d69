/**
 * Rules 1 (scope), 2 (lazy connection), 3 (routing), 9 (no silent escape),
 * 10 (scope end) and 17 (strict mode).
 */

import { sql, TxScopeError } from 'txscope';
import { expect, it } from 'vitest';
import { forEachDriver, until } from '../support/drivers.js';
import { insertItem, itemsTable } from '../support/schema.js';

function gate(): { open: () => void; wait: Promise<void> } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, wait };
}

forEachDriver('scope and routing', (env) => {
  const tags = async () =>
    (await env.observe<{ tag: string }>('select tag from items order by id')).map((r) => r.tag);

  it('rule 1: a scope binds one session for the life of fn; a scope inside a scope joins it', async () => {
    const { db } = env.createDb();
    expect(db.current.inScope).toBe(false);
    await db.scope(async () => {
      const outer = db.current.scope;
      expect(db.current.inScope).toBe(true);
      expect(outer).not.toBeNull();
      await db.scope(async () => {
        expect(db.current.scope).toBe(outer);
      });
      await Promise.resolve();
      expect(db.current.scope).toBe(outer);
    });
    expect(db.current.inScope).toBe(false);
  });

  it('rule 1: concurrent scopes each see their own session', async () => {
    const { db } = env.createDb();
    const ids = await Promise.all(
      Array.from({ length: 20 }, () =>
        db.scope(async () => {
          const id = db.current.scope?.id;
          await new Promise((resolve) => setImmediate(resolve));
          expect(db.current.scope?.id).toBe(id);
          return id;
        }),
      ),
    );
    expect(new Set(ids).size).toBe(20);
  });

  it('rule 2: a scope or transaction that runs no statement takes no connection and sends nothing', async () => {
    const { db, probe } = env.createDb();
    let committed = false;
    await db.scope(async () => {
      await db.transaction(async () => {
        await db.transaction(async () => {}, { propagation: 'nested' });
        await db.transaction(async () => {});
        db.afterCommit(() => {
          committed = true;
        });
      });
    });
    expect(probe.acquires).toBe(0);
    expect(probe.statements).toEqual([]);
    expect(committed).toBe(true);
    expect(db.stats().acquired).toBe(0);
  });

  it('rule 3: outside a transaction each statement borrows a connection for itself alone', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await db.scope(async () => {
      await insertItem(db, 'a');
      expect(probe.checkedOut).toBe(0);
      await insertItem(db, 'b');
    });
    expect(probe.acquires).toBe(2);
    expect(probe.releases).toBe(2);
    expect(probe.statements).toHaveLength(2);
    expect(await tags()).toEqual(['a', 'b']);
  });

  it('rule 3: inside a transaction every statement runs on its one connection', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await db.scope(() =>
      db.transaction(async () => {
        await insertItem(db, 'a');
        await (async function deeper() {
          await insertItem(db, 'b');
        })();
        expect(probe.checkedOut).toBe(1);
      }),
    );
    expect(probe.acquires).toBe(1);
  });

  it('rule 9: a statement from a promise that outlived its transaction rejects ERR_TRANSACTION_CLOSED and never runs', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    const g = gate();
    let escaped: Promise<unknown> | undefined;
    await db.scope(async () => {
      await db.transaction(async () => {
        await insertItem(db, 'inside');
        escaped = (async () => {
          await g.wait;
          return insertItem(db, 'escaped');
        })();
      });
      // Another transaction is open when the escaped statement tries to run: it must not land there.
      await db.transaction(async () => {
        await insertItem(db, 'second');
        const sent = probe.statements.length;
        g.open();
        await expect(escaped).rejects.toMatchObject({ code: 'ERR_TRANSACTION_CLOSED' });
        expect(probe.statements.length).toBe(sent);
      });
    });
    expect(await tags()).toEqual(['inside', 'second']);
  });

  it('rule 9: a statement from a scope that has ended rejects ERR_SCOPE_CLOSED; db.detached work runs on purpose', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const g = gate();
    let escaped: Promise<unknown> | undefined;
    let detached: Promise<unknown> | undefined;
    await db.scope(async () => {
      escaped = (async () => {
        await g.wait;
        return insertItem(db, 'escaped');
      })();
      detached = db.detached(async () => {
        await g.wait;
        expect(db.current.inScope).toBe(false);
        return insertItem(db, 'detached');
      });
    });
    g.open();
    await expect(escaped).rejects.toMatchObject({ code: 'ERR_SCOPE_CLOSED' });
    await detached;
    expect(await tags()).toEqual(['detached']);
  });

  it('rule 10: a transaction still open when its scope ends is rolled back and its connection released', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    const g = gate();
    const written = gate();
    let pending: Promise<unknown> | undefined;
    await db.scope(async () => {
      pending = db.transaction(async () => {
        await insertItem(db, 'abandoned');
        written.open();
        await g.wait;
      });
      await written.wait;
    });
    // The scope resolved only after the rollback: nothing is held, nothing committed.
    expect(probe.checkedOut).toBe(0);
    expect(probe.statements.at(-1)).toBe(db.dialect.rollback);
    await expect(pending).rejects.toMatchObject({ code: 'ERR_SCOPE_CLOSED' });
    g.open();
    expect(await tags()).toEqual([]);
    expect(db.stats().checkedOut).toBe(0);
  });

  it.runIf(env.capabilities.multiConnection)(
    'rule 9: a lazy thenable from db.detached (a Prisma query) runs detached where it is awaited',
    async () => {
      const { db } = env.createDb();
      await itemsTable(db);
      // Starts its work when `then` is first called, as a Prisma or Knex query does.
      const lazy = (work: () => Promise<unknown>) => ({
        label: 'lazy',
        // biome-ignore lint/suspicious/noThenProperty: a lazy thenable on purpose, as a Prisma query is
        then: (done: (value: unknown) => unknown, failed: (error: unknown) => unknown) =>
          work().then(done, failed),
      });
      await expect(
        db.transaction(async () => {
          await insertItem(db, 'rolled back');
          const query = db.detached(() => lazy(() => insertItem(db, 'detached')));
          expect(query.label).toBe('lazy');
          await query;
          throw new Error('undo');
        }),
      ).rejects.toThrow('undo');
      expect(await tags()).toEqual(['detached']);
    },
  );

  it('rule 17: strict mode rejects statements outside any scope or transaction', async () => {
    const { db, probe } = env.createDb({ strict: true });
    await itemsTable(db);
    probe.reset();
    const outside = db.query(sql`select 1 as one`);
    await expect(outside).rejects.toBeInstanceOf(TxScopeError);
    await expect(outside).rejects.toMatchObject({ code: 'ERR_OUTSIDE_SCOPE' });
    expect(probe.statements).toEqual([]);
    await db.scope(() => insertItem(db, 'scope'));
    await db.transaction(() => insertItem(db, 'transaction'));
    await db.detached(() => insertItem(db, 'detached'));
    expect(await tags()).toEqual(['scope', 'transaction', 'detached']);
  });

  it('rule 2/4: the connection of a transaction is taken only at its first statement', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await db.transaction(async () => {
      await Promise.resolve();
      expect(probe.acquires).toBe(0);
      await insertItem(db, 'x');
      expect(probe.acquires).toBe(1);
    });
    await until(() => probe.checkedOut === 0, 2000, 'release');
  });
});
