/** Rule 12: timeouts roll back, cancel the statement on the server, and only ever shorten. */

import { sql } from 'txscope';
import { expect, it } from 'vitest';
import { forEachDriver, until } from '../support/drivers.js';
import {
  idleInTransaction,
  insertItem,
  itemsTable,
  runningStatements,
  sleepStatement,
} from '../support/schema.js';

forEachDriver('timeouts', (env) => {
  const tags = async () =>
    (await env.observe<{ tag: string }>('select tag from items order by id')).map((r) => r.tag);
  // PGlite runs in-process on one thread: it has no second session to cancel from.
  const cancellable =
    env.name === 'pg' || env.name === 'pgbouncer' || env.name === 'postgresjs' || env.name === 'mysql';
  const observe = (text: string) => env.observe<Record<string, unknown>>(text);

  it('past timeoutMs the transaction rolls back and rejects ERR_TRANSACTION_TIMEOUT, even while fn awaits', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    const never = new Promise<void>(() => {});
    await expect(
      db.transaction(
        async () => {
          await insertItem(db, 'timed out');
          await never;
        },
        { timeoutMs: 100 },
      ),
    ).rejects.toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    expect(probe.statements.at(-1)).toBe(db.dialect.rollback);
    expect(probe.checkedOut).toBe(0);
    expect(probe.destroyed).toBe(0);
    expect(await tags()).toEqual([]);
  });

  it.runIf(cancellable)(
    'the statement running on the server is cancelled, and the connection goes back clean',
    async () => {
      const { db, probe } = env.createDb();
      await itemsTable(db);
      const slow = sleepStatement(db, 30) as string;
      const marker = db.dialect.name === 'postgres' ? 'pg_sleep(30)' : 'sleep(30)';
      probe.reset();
      const result = db.transaction(
        async () => {
          await insertItem(db, 'timed out');
          await db.query(slow);
        },
        { timeoutMs: 300 },
      );
      await until(
        async () => (await runningStatements(observe, db.dialect.name, marker)) === 1,
        5000,
        'the sleep to run',
      );
      await expect(result).rejects.toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
      await until(
        async () => (await runningStatements(observe, db.dialect.name, marker)) === 0,
        5000,
        'cancellation',
      );
      expect(probe.checkedOut).toBe(0);
      expect(probe.destroyed).toBe(0);
      expect(await idleInTransaction(observe, db.dialect.name)).toBe(0);
      expect(await tags()).toEqual([]);
      // The connection that was cancelled is healthy in the pool.
      await db.transaction(() => insertItem(db, 'next'));
      expect(await tags()).toEqual(['next']);
    },
  );

  it('an inner frame may shorten the deadline', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const never = new Promise<void>(() => {});
    await expect(
      db.transaction(
        async () => {
          await insertItem(db, 'outer');
          await db.transaction(() => never, { timeoutMs: 100 });
        },
        { timeoutMs: 60_000 },
      ),
    ).rejects.toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    expect(await tags()).toEqual([]);
  });

  it('an inner frame never extends the deadline', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const never = new Promise<void>(() => {});
    let inner: unknown;
    await expect(
      db.transaction(
        async () => {
          await insertItem(db, 'outer');
          await db
            .transaction(() => never, { timeoutMs: 60_000, propagation: 'nested' })
            .catch((error: unknown) => {
              inner = error;
              throw error;
            });
        },
        { timeoutMs: 100 },
      ),
    ).rejects.toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    // The inner frame's own (longer) deadline did not keep it waiting: it failed with the outer's.
    expect(inner).toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    expect(await tags()).toEqual([]);
  });

  it('statements issued after the timeout reject with it and never run', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    let resume!: () => void;
    const paused = new Promise<void>((resolve) => {
      resume = resolve;
    });
    let late: Promise<unknown> | undefined;
    await expect(
      db.transaction(
        async () => {
          await insertItem(db, 'first');
          late = paused.then(() => insertItem(db, 'late'));
          await late;
        },
        { timeoutMs: 100 },
      ),
    ).rejects.toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    const sent = probe.statements.length;
    resume();
    await expect(late).rejects.toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    expect(probe.statements.length).toBe(sent);
    await db.query(sql`select 1 as one`);
  });
});
