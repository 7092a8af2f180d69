/** Rule 19: test transactions (`txscope/testing`), on every driver. */
import { AsyncResource } from 'node:async_hooks';
import { type Database, sql, TxScopeError } from 'txscope';
import { withRollback } from 'txscope/testing';
import { expect, it } from 'vitest';
import { forEachDriver } from '../support/drivers.js';
import { insertItem, itemsTable, sleepStatement } from '../support/schema.js';

/** Runs `fn` from an async context that belongs to no test, scope or transaction (a server's). */
const outside = AsyncResource.bind(<T>(fn: () => Promise<T>): Promise<T> => fn());

/** A real error the database itself raises, which txscope retries (serialization failure, deadlock). */
function raiseRetryable(db: Database): string | null {
  switch (db.dialect.name) {
    case 'postgres':
      return `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$`;
    case 'mysql':
      return `SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'conflict'`;
    default:
      return null;
  }
}

async function count(db: Database): Promise<number> {
  const { rows } = await db.query<{ c: number | string }>(sql`select count(*) as c from items`);
  return Number(rows[0]?.c);
}

forEachDriver('test transactions', (env) => {
  const seen = async () =>
    (await env.observe<{ tag: string }>('select tag from items order by id')).map((r) => r.tag);

  it('withRollback: one connection, BEGIN … ROLLBACK; the work is visible inside and never outside', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    const during: string[][] = [];
    const result = await withRollback(db, async () => {
      await insertItem(db, 'a');
      await insertItem(db, 'b');
      expect(await count(db)).toBe(2);
      if (env.capabilities.observerIsolated) during.push(await seen());
      return 'done';
    });
    expect(result).toBe('done');
    expect(probe.statements[0]).toMatch(/^BEGIN|^START TRANSACTION/);
    expect(probe.statements.at(-1)).toBe(db.dialect.rollback);
    expect(probe.acquires).toBe(1);
    expect(probe.checkedOut).toBe(0);
    if (env.capabilities.observerIsolated) expect(during).toEqual([[]]);
    expect(await seen()).toEqual([]);
  });

  it('a test that runs no statement costs no connection', async () => {
    const { db, probe } = env.createDb();
    probe.reset();
    await withRollback(db, () => {});
    expect(probe.acquires).toBe(0);
    expect(probe.statements).toEqual([]);
  });

  it('the app’s boundaries are savepoints: release runs afterCommit, failure rolls back to it and runs afterRollback', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    const hooks: string[] = [];
    probe.reset();
    await withRollback(db, async () => {
      await insertItem(db, 'before');
      await db.transaction(async () => {
        await insertItem(db, 'committed');
        db.beforeCommit(() => {
          hooks.push(`beforeCommit in transaction: ${db.current.inTransaction}`);
        });
        db.afterCommit(() => {
          hooks.push(`afterCommit in transaction: ${db.current.inTransaction}`);
        });
        db.afterCompletion((status) => {
          hooks.push(`afterCompletion ${status}`);
        });
      });
      await expect(
        db.transaction(async () => {
          await insertItem(db, 'rolled back');
          db.afterCommit(() => hooks.push('never'));
          db.afterRollback(() => hooks.push('afterRollback'));
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(db.current.inTransaction).toBe(false);
      const { rows } = await db.query<{ tag: string }>(sql`select tag from items order by id`);
      expect(rows.map((r) => r.tag)).toEqual(['before', 'committed']);
    });
    expect(hooks).toEqual([
      'beforeCommit in transaction: true',
      'afterCommit in transaction: false',
      'afterCompletion committed',
      'afterRollback',
    ]);
    const control = probe.statements.filter((s) => /SAVEPOINT/i.test(s));
    expect(control).toEqual([
      db.dialect.savepoint('txscope_sp_1'),
      db.dialect.releaseSavepoint('txscope_sp_1'),
      db.dialect.savepoint('txscope_sp_2'),
      db.dialect.rollbackToSavepoint('txscope_sp_2'),
    ]);
    expect(probe.acquires).toBe(1);
    expect(await seen()).toEqual([]);
  });

  it('requires_new and nested are savepoints on the one connection: requires_new never waits for another', async () => {
    const { db, probe } = env.createDb({ max: 1 });
    await itemsTable(db);
    probe.reset();
    await withRollback(db, async () => {
      await db.transaction(async () => {
        await insertItem(db, 'outer');
        await db.transaction(() => insertItem(db, 'new'), { propagation: 'requires_new' });
        await expect(
          db.transaction(
            async () => {
              await insertItem(db, 'nested, undone');
              throw new Error('inner');
            },
            { propagation: 'nested' },
          ),
        ).rejects.toThrow('inner');
      });
      const { rows } = await db.query<{ tag: string }>(sql`select tag from items order by id`);
      expect(rows.map((r) => r.tag)).toEqual(['outer', 'new']);
    });
    expect(probe.acquires).toBe(1);
    expect(new Set(probe.statements.filter((s) => /^SAVEPOINT/i.test(s))).size).toBe(3);
    expect(await seen()).toEqual([]);
  });

  it('rollback-only and the refusals of rules 6 and 7 behave as in production', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    await withRollback(db, async () => {
      await expect(db.transaction(() => 1, { propagation: 'mandatory' })).rejects.toMatchObject({
        code: 'ERR_NO_TRANSACTION',
      });
      await expect(db.transaction(() => 1, { propagation: 'never' })).resolves.toBe(1);
      const swallowed = db.transaction(async () => {
        await insertItem(db, 'doomed');
        await db.transaction(() => Promise.reject(new Error('inner'))).catch(() => {});
      });
      await expect(swallowed).rejects.toMatchObject({ code: 'ERR_ROLLBACK_ONLY' });
      await db.transaction(
        async () => {
          await expect(db.transaction(() => 1, { propagation: 'never' })).rejects.toMatchObject({
            code: 'ERR_EXISTING_TRANSACTION',
          });
          await expect(db.transaction(() => 1, { readOnly: false })).rejects.toMatchObject({
            code: 'ERR_INCOMPATIBLE_TRANSACTION',
          });
        },
        { readOnly: true },
      );
      expect(await count(db)).toBe(0);
    });
  });

  it('a retryable error the database raises inside a boundary re-runs it; failed attempts leave nothing', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    const raise = raiseRetryable(db);
    const hooks: string[] = [];
    let attempts = 0;
    await withRollback(db, async () => {
      await insertItem(db, 'kept');
      await db.transaction(
        async () => {
          attempts++;
          await insertItem(db, `attempt ${attempts}`);
          db.afterCommit(() => hooks.push(`commit ${attempts}`));
          db.afterRollback(() => hooks.push(`rollback ${attempts}`));
          if (attempts < 3) {
            if (raise !== null) await db.query(raise);
            else {
              probe.fault = () => Object.assign(new Error('busy'), { code: 'SQLITE_BUSY' });
              await db.query('select 1').finally(() => {
                probe.fault = undefined;
              });
            }
          }
        },
        { retry: { attempts: 3, baseDelayMs: 1 } },
      );
      const { rows } = await db.query<{ tag: string }>(sql`select tag from items order by id`);
      expect(rows.map((r) => r.tag)).toEqual(['kept', 'attempt 3']);
    });
    expect(attempts).toBe(3);
    expect(hooks).toEqual(['commit 3']);
    expect(await seen()).toEqual([]);
  });

  // A server with its own sessions, where a cancelled statement shows (not PGlite, not SQLite).
  it.runIf(env.name !== 'pglite' && env.name !== 'sqlite')(
    'a boundary past its timeoutMs is cancelled on the server and rolled back to its savepoint; the test goes on',
    async () => {
      const { db } = env.createDb();
      await itemsTable(db);
      const sleep = sleepStatement(db, 30) as string;
      await withRollback(db, async () => {
        await insertItem(db, 'kept');
        const started = performance.now();
        await expect(
          db.transaction(
            async () => {
              await insertItem(db, 'timed out');
              await db.query(sleep);
            },
            { timeoutMs: 300 },
          ),
        ).rejects.toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
        expect(performance.now() - started).toBeLessThan(10_000);
        const { rows } = await db.query<{ tag: string }>(sql`select tag from items order by id`);
        expect(rows.map((r) => r.tag)).toEqual(['kept']);
      });
      const running = await env.observe<{ n: number | string }>(
        db.dialect.name === 'postgres'
          ? "select count(*) as n from pg_stat_activity where query like 'select pg_sleep(30)%'"
          : "select count(*) as n from information_schema.processlist where info like 'select sleep(30)%'",
      );
      expect(Number(running[0]?.n)).toBe(0);
    },
  );

  it.runIf(env.name !== 'mysql')(
    'a read-only boundary rejects writes with the database’s own error, and the test writes again after it',
    async () => {
      const { db } = env.createDb();
      await itemsTable(db);
      await withRollback(db, async () => {
        const write = db.transaction(() => insertItem(db, 'refused'), { readOnly: true });
        await expect(write).rejects.not.toBeInstanceOf(TxScopeError);
        await expect(write).rejects.toThrow(/read-only|readonly/i);
        await insertItem(db, 'after');
        expect(await count(db)).toBe(1);
      });
    },
  );

  it('statements from other scopes, detached work and contexts outside any scope join the test transaction', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await withRollback(db, async () => {
      await outside(() => db.scope(() => insertItem(db, 'request scope')));
      await outside(() => insertItem(db, 'no scope at all'));
      await db.detached(() => insertItem(db, 'detached'));
      await outside(() => db.transaction(() => insertItem(db, 'transaction from outside')));
      await outside(() => db.connection(() => insertItem(db, 'pinned')));
      expect(await count(db)).toBe(5);
    });
    expect(probe.acquires).toBe(1);
    expect(await seen()).toEqual([]);
  });

  it('whatever the test leaves behind is rolled back, and a late statement rejects ERR_TRANSACTION_CLOSED, never landing in the next test', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    let late: Promise<unknown> | undefined;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    await expect(
      withRollback(db, async () => {
        await insertItem(db, 'thrown away');
        late = gate.then(() => insertItem(db, 'late'));
        late.catch(() => {});
        void db.transaction(() => insertItem(db, 'never awaited')).catch(() => {});
        throw new Error('test failed');
      }),
    ).rejects.toThrow('test failed');
    await withRollback(db, async () => {
      release();
      await expect(late).rejects.toMatchObject({ code: 'ERR_TRANSACTION_CLOSED' });
      expect(await count(db)).toBe(0);
    });
    expect(await seen()).toEqual([]);
  });

  it('two test transactions at once on one database are refused, never mixed', async () => {
    const { db } = env.createDb();
    let release!: () => void;
    const first = withRollback(db, () => new Promise<void>((resolve) => (release = resolve)));
    await expect(withRollback(db, () => 1)).rejects.toMatchObject({ code: 'ERR_EXISTING_TRANSACTION' });
    await expect(withRollback(db, () => withRollback(db, () => 1))).rejects.toMatchObject({
      code: 'ERR_EXISTING_TRANSACTION',
    });
    release();
    await first;
    await expect(withRollback(db, () => 2)).resolves.toBe(2);
  });

  it('concurrent app transactions take turns on the one connection, each in its own savepoint', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await withRollback(db, async () => {
      const results = await Promise.allSettled(
        ['a', 'b', 'c'].map((tag) =>
          db.transaction(async () => {
            await insertItem(db, `${tag}1`);
            await insertItem(db, `${tag}2`);
            if (tag === 'b') throw new Error('b fails');
          }),
        ),
      );
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      const { rows } = await db.query<{ tag: string }>(sql`select tag from items order by id`);
      expect(rows.map((r) => r.tag)).toEqual(['a1', 'a2', 'c1', 'c2']);
    });
    const inserts = probe.statements.filter((s) => /^insert/i.test(s)).length;
    expect(inserts).toBe(6);
    expect(probe.acquires).toBe(1);
  });
});
