/** The core API surface: option validation, the default database, pins, state, stats, close. */

import { createDatabase, type Driver, Propagation, sql, Transactional, TxScopeError } from 'txscope';
import { pg } from 'txscope/pg';
import { pglite } from 'txscope/pglite';
import { postgresjs } from 'txscope/postgresjs';
import { describe, expect, it } from 'vitest';
import { forEachDriver } from '../support/drivers.js';
import { insertItem, itemsTable } from '../support/schema.js';

const driver = (): Driver => pglite();

describe('option validation (ERR_INVALID_OPTION at creation, naming the option and the allowed values)', () => {
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['missing driver', () => createDatabase({} as never), /createDatabase\.driver/],
    [
      'unknown option',
      () => createDatabase({ driver: driver(), pool: 3 } as never),
      /createDatabase\.pool.*allowed/,
    ],
    [
      'bad propagation default',
      () => createDatabase({ driver: driver(), defaults: { propagation: 'sometimes' as never } }),
      /defaults\.propagation.*'requires_new'/,
    ],
    [
      'bad isolation',
      () => createDatabase({ driver: driver(), defaults: { isolation: 'snapshot' as never } }),
      /defaults\.isolation.*'serializable'/,
    ],
    ['bad timeout', () => createDatabase({ driver: driver(), defaults: { timeoutMs: -1 } }), /timeoutMs/],
    [
      'bad retry',
      () => createDatabase({ driver: driver(), defaults: { retry: { attempts: 0 } } }),
      /retry\.attempts.*>= 1/,
    ],
    [
      'bad leakDetectionMs',
      () => createDatabase({ driver: driver(), leakDetectionMs: 'soon' as never }),
      /leakDetectionMs/,
    ],
    [
      'bad strict',
      () => createDatabase({ driver: driver(), strict: 'yes' as never }),
      /strict.*true or false/,
    ],
    ['bad pg max', () => pg({ max: 0 }), /pg\.max/],
    ['bad postgresjs idle_timeout', () => postgresjs({ idle_timeout: -1 }), /postgresjs\.idle_timeout/],
    ['bad postgresjs max', () => postgresjs({ max: 0 }), /postgresjs\.max/],
    ['decorator option', () => Transactional({ readOnly: 'no' as never }), /@Transactional\.readOnly/],
  ];
  for (const [name, make, message] of cases) {
    it(name, () => {
      let error: unknown;
      try {
        make();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TxScopeError);
      expect((error as TxScopeError).code).toBe('ERR_INVALID_OPTION');
      expect((error as Error).message).toMatch(message);
    });
  }

  it('db.transaction rejects bad options before running fn', async () => {
    const db = createDatabase({ driver: driver() });
    let ran = false;
    await expect(
      db.transaction(
        async () => {
          ran = true;
        },
        { propagation: 'often' as never },
      ),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    expect(ran).toBe(false);
    await db.close();
  });

  it('Propagation constants match the string names', () => {
    expect(Propagation).toEqual({
      REQUIRED: 'required',
      REQUIRES_NEW: 'requires_new',
      NESTED: 'nested',
      MANDATORY: 'mandatory',
      SUPPORTS: 'supports',
      NOT_SUPPORTED: 'not_supported',
      NEVER: 'never',
    });
  });
});

forEachDriver('core API', (env) => {
  it('@Transactional() looks up the default database when the method is called, not when decorated', async () => {
    const wrapped = Transactional()(async () => {
      await insertItem(later, 'late-bound');
      return later.current.inTransaction;
    });
    const { db: later } = env.createDb();
    await itemsTable(later);
    expect(await wrapped()).toBe(true);
    const { db: claimed } = env.createDb({ name: 'claimed', default: true });
    const which = Transactional()(async () => claimed.current.inTransaction);
    expect(await which()).toBe(true);
  });

  it('db.connection pins one connection for fn, without a transaction', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    await db.connection(async () => {
      expect(db.current.inTransaction).toBe(false);
      await insertItem(db, 'a');
      await insertItem(db, 'b');
      await db.transaction(() => insertItem(db, 'c'));
    });
    expect(probe.acquires).toBe(1);
    expect(probe.checkedOut).toBe(0);
    const rows = await env.observe<{ tag: string }>('select tag from items order by id');
    expect(rows.map((r) => r.tag)).toEqual(['a', 'b', 'c']);
  });

  it('db.current tells scope, transaction, depth, read-only and isolation', async () => {
    const { db } = env.createDb();
    const isolation = db.dialect.isolationLevels.at(-1);
    await db.scope(() =>
      db.transaction(
        async () => {
          await db.transaction(async () => {
            expect(db.current).toMatchObject({
              inScope: true,
              inTransaction: true,
              depth: 2,
              readOnly: true,
              isolation,
            });
          });
        },
        { readOnly: true, isolation },
      ),
    );
    expect(db.current).toMatchObject({ inScope: false, inTransaction: false, depth: 0, isolation: null });
  });

  it('db.stats counts connections, statements and outcomes', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    const before = db.stats();
    await db.transaction(() => insertItem(db, 'x'));
    await db.transaction(() => Promise.reject(new Error('no'))).catch(() => {});
    await db
      .transaction(async () => {
        await insertItem(db, 'y');
        throw new Error('rolled back');
      })
      .catch(() => {});
    const after = db.stats();
    expect(after.commits - before.commits).toBe(1);
    expect(after.rollbacks - before.rollbacks).toBe(1);
    expect(after.checkedOut).toBe(0);
    expect(after.pool.max).toBeGreaterThanOrEqual(1);
  });

  it('db.close: later calls reject ERR_DATABASE_CLOSED', async () => {
    const { db } = env.createDb();
    await db.query(sql`select 1 as one`);
    await db.close();
    await expect(db.query(sql`select 1 as one`)).rejects.toMatchObject({ code: 'ERR_DATABASE_CLOSED' });
    await expect(db.transaction(async () => {})).rejects.toMatchObject({ code: 'ERR_DATABASE_CLOSED' });
  });

  it('db.bind: a callback called later, from outside, runs its statements in the captured transaction', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    probe.reset();
    let later: (() => Promise<unknown>) | undefined;
    const emitter = new EventTarget();
    const result = db.transaction(async () => {
      later = db.bind(() => insertItem(db, 'bound'));
      // An emitter calls its listeners in its own context: bound, they still join the transaction.
      const heard = new Promise<unknown>((resolve) => {
        emitter.addEventListener(
          'go',
          db.bind(() => resolve(insertItem(db, 'heard'))),
          { once: true },
        );
      });
      await db.detached(async () => {
        await (later as () => Promise<unknown>)();
        emitter.dispatchEvent(new Event('go'));
      });
      await heard;
      if (env.capabilities.observerIsolated) expect(await env.observe('select tag from items')).toEqual([]);
    });
    await result;
    expect(probe.acquires).toBe(1);
    const rows = await env.observe<{ tag: string }>('select tag from items order by id');
    expect(rows.map((r) => r.tag)).toEqual(['bound', 'heard']);
    // Called after the transaction ended, it never runs in autocommit.
    await expect((later as () => Promise<unknown>)()).rejects.toMatchObject({
      code: 'ERR_TRANSACTION_CLOSED',
    });
  });

  it('the database object carries the public API only: no internals are reachable on it', () => {
    const { db } = env.createDb();
    const publicNames = [
      'name',
      'dialect',
      'query',
      'transaction',
      'transactional',
      'scope',
      'connection',
      'detached',
      'bind',
      'beforeCommit',
      'afterCommit',
      'afterRollback',
      'afterCompletion',
      'current',
      'stats',
      'close',
    ];
    expect(Object.keys(db)).toEqual([]);
    const prototype = Object.getPrototypeOf(db) as object;
    const names = Object.getOwnPropertyNames(prototype).filter((name) => name !== 'constructor');
    expect(names.sort()).toEqual([...publicNames].sort());
  });

  it('db.query refuses values next to an sql`` statement', async () => {
    const { db } = env.createDb();
    await expect(db.query(sql`select ${1} as one`, [1])).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
    });
  });
});
