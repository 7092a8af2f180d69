/** Rule 8 (concurrency inside one transaction), and the 1,000-scope soak the project keeps. */

import { type Database, sql, TxScopeError } from 'txscope';
import { expect, it } from 'vitest';
import { forEachDriver } from '../support/drivers.js';
import { insertItem, itemsTable, sleepStatement } from '../support/schema.js';

forEachDriver('concurrency', (env) => {
  const tags = async () =>
    (await env.observe<{ tag: string }>('select tag from items order by id')).map((r) => r.tag);

  it('rule 8: statements issued at once run on the one connection, in issue order; one acquire', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    const names = Array.from({ length: 12 }, (_, i) => `s${i}`);
    await db.transaction(() => Promise.all(names.map((name) => insertItem(db, name))));
    expect(probe.acquires).toBe(1);
    const inserts = probe.statements.filter((s) => s.startsWith('insert'));
    expect(inserts).toHaveLength(12);
    expect(await tags()).toEqual(names);
  });

  it('rule 8: concurrent savepoint frames run one after another, in the order they began, under unique names', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    const events: string[] = [];
    await db.transaction(async () => {
      await Promise.all(
        ['a', 'b', 'c'].map((name) =>
          db
            .transaction(
              async () => {
                events.push(`${name}:start`);
                await insertItem(db, name);
                await new Promise((resolve) => setImmediate(resolve));
                await insertItem(db, `${name}2`);
                events.push(`${name}:end`);
                if (name === 'b') throw new Error('b fails');
              },
              { propagation: 'nested' },
            )
            .catch(() => undefined),
        ),
      );
    });
    expect(events).toEqual(['a:start', 'a:end', 'b:start', 'b:end', 'c:start', 'c:end']);
    const savepoints = probe.statements.filter((s) => /^SAVEPOINT /i.test(s));
    expect(new Set(savepoints).size).toBe(3);
    expect(probe.acquires).toBe(1);
    expect(await tags()).toEqual(['a', 'a2', 'c', 'c2']);
  });

  it('rule 8: when fn rejects with statements in flight, the rollback waits for them and none lands after it', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    const slow = sleepStatement(db, 0.2) ?? 'select 1';
    let late: Promise<unknown> | undefined;
    const result = db.transaction(async () => {
      await insertItem(db, 'first');
      const inFlight = db.query(slow);
      late = inFlight.then(() => insertItem(db, 'late'));
      late.catch(() => {});
      throw new Error('fail while a statement is in flight');
    });
    await expect(result).rejects.toThrow('in flight');
    await expect(late).rejects.toMatchObject({ code: 'ERR_TRANSACTION_CLOSED' });
    const rollbackAt = probe.statements.lastIndexOf(db.dialect.rollback);
    expect(probe.statements.indexOf(slow)).toBeLessThan(rollbackAt);
    expect(probe.statements.slice(rollbackAt + 1)).toEqual([]);
    expect(await tags()).toEqual([]);
  });

  it('soak: 1,000 concurrent scopes on a pool of 5 with a random mix of propagation modes', async () => {
    const { db, probe } = env.createDb({ max: 5 });
    await itemsTable(db);
    const outcomes = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => db.scope(() => unitOfWork(db, i))),
    );
    const expected = outcomes.flat().sort();
    const committed = (await tags()).sort();
    expect(committed).toEqual(expected);
    expect(probe.checkedOut).toBe(0);
    expect(db.stats().checkedOut).toBe(0);
    expect(db.stats().activeTransactions).toBe(0);
  }, 60_000);
});

/** One scope's work; returns the tags that must be committed if it behaved. */
async function unitOfWork(db: Database, id: number): Promise<string[]> {
  const committed: string[] = [];
  const mode = id % 6;
  const tag = (part: string) => `${id}:${part}`;
  try {
    await db.transaction(async () => {
      await insertItem(db, tag('outer'));
      switch (mode) {
        case 0:
          break;
        case 1: {
          // A failed savepoint: only its row goes.
          await db
            .transaction(
              async () => {
                await insertItem(db, tag('nested'));
                throw new Error('nested fails');
              },
              { propagation: 'nested' },
            )
            .catch(() => undefined);
          break;
        }
        case 2: {
          await db.transaction(() => insertItem(db, tag('nested-ok')), { propagation: 'nested' });
          committed.push(tag('nested-ok'));
          break;
        }
        case 3: {
          // requires_new commits on its own, even though the outer then rolls back.
          try {
            await db.transaction(() => insertItem(db, tag('new')), { propagation: 'requires_new' });
            committed.push(tag('new'));
          } catch (error) {
            if (!(error instanceof TxScopeError && error.code === 'ERR_POOL_DEADLOCK')) throw error;
          }
          throw new Error('outer rolls back');
        }
        case 4: {
          // A joined failure swallowed: the whole transaction is rollback-only.
          await db
            .transaction(async () => {
              await insertItem(db, tag('joined'));
              throw new Error('joined fails');
            })
            .catch(() => undefined);
          break;
        }
        default: {
          await Promise.all([
            insertItem(db, tag('p1')),
            insertItem(db, tag('p2')),
            db.query(sql`select 1 as one`),
          ]);
          committed.push(tag('p1'), tag('p2'));
        }
      }
    });
    committed.push(tag('outer'));
    return committed;
  } catch {
    // The outer rolled back: only work that committed on its own stays.
    return committed.filter((t) => t.endsWith(':new'));
  }
}
