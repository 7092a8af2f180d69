/**
 * What is specific to txscope/sqlite: one writer whose transactions queue, the statements
 * sent, one isolation level, read-only through query_only, yielding between statements.
 * The contract suites (test/contract) run on this driver too, through the harness.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { createDatabase, type Database, sql, Transactional, TxScopeError } from 'txscope';
import { type SqliteOptions, sqlite } from 'txscope/sqlite';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { instrument, type Probe } from '../support/drivers.js';
import { insertItem, itemsTable } from '../support/schema.js';

function gate(): { open: () => void; wait: Promise<void> } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, wait };
}

describe('txscope/sqlite on better-sqlite3', () => {
  let dir: string;
  let file: string;
  let observer: BetterSqlite3.Database;
  const open: Database[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'txscope-sqlite-driver-'));
  });
  beforeEach((context) => {
    file = join(dir, `${context.task.id}.db`);
    observer = new BetterSqlite3(file);
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((db) => db.close()));
    observer.close();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function createDb(
    source: string | BetterSqlite3.Database = file,
    options?: SqliteOptions,
  ): { db: Database; probe: Probe } {
    const { driver, probe } = instrument(sqlite(source, options));
    const db = createDatabase({ driver, default: true });
    open.push(db);
    return { db, probe };
  }

  const tags = () =>
    (observer.prepare('select tag from items order by id').all() as Array<{ tag: string }>).map((r) => r.tag);

  it('a file database is opened in WAL mode; a second connection sees only committed rows', async () => {
    const { db } = createDb();
    await itemsTable(db);
    expect(observer.pragma('journal_mode', { simple: true })).toBe('wal');
    await db.transaction(async () => {
      await insertItem(db, 'pending');
      expect(tags()).toEqual([]);
    });
    expect(tags()).toEqual(['pending']);
  });

  it('sends BEGIN IMMEDIATE for read-write transactions and savepoints for nested ones', async () => {
    const { db, probe } = createDb();
    await itemsTable(db);
    probe.reset();
    await db.transaction(async () => {
      await insertItem(db, 'outer');
      await db.transaction(() => insertItem(db, 'inner'), { propagation: 'nested' });
    });
    expect(probe.statements).toEqual([
      'BEGIN IMMEDIATE',
      'insert into items (tag, n) values (?, ?)',
      'SAVEPOINT txscope_sp_1',
      'insert into items (tag, n) values (?, ?)',
      'RELEASE SAVEPOINT txscope_sp_1',
      'COMMIT',
    ]);
    expect(tags()).toEqual(['outer', 'inner']);
  });

  it('50 concurrent scopes each running a write transaction all commit: they queue, never SQLITE_BUSY', async () => {
    const { db, probe } = createDb();
    await itemsTable(db);
    probe.reset();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        db.scope(() =>
          db.transaction(async () => {
            const { rows } = await db.query<{ n: number }>('select count(*) as n from items');
            await new Promise((resolve) => setImmediate(resolve));
            await insertItem(db, `t${i}`, Number(rows[0]?.n));
          }),
        ),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    // Each transaction saw every one committed before it: they ran one after another.
    const rows = observer.prepare('select n from items order by id').all() as Array<{ n: number }>;
    expect(rows.map((r) => r.n)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(probe.acquires).toBe(50);
    expect(db.stats()).toMatchObject({ commits: 50, rollbacks: 0, checkedOut: 0 });
  });

  it('a read-only transaction: BEGIN DEFERRED with query_only; a write fails (SQLITE_READONLY), later ones work', async () => {
    const { db, probe } = createDb();
    await itemsTable(db);
    probe.reset();
    const error = await db
      .transaction(() => insertItem(db, 'ro'), { readOnly: true })
      .catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(TxScopeError);
    expect(error).toMatchObject({ code: 'SQLITE_READONLY' });
    expect(probe.statements.slice(0, 2)).toEqual(['BEGIN DEFERRED', 'PRAGMA query_only = ON']);
    const counted = await db.transaction(() => db.query<{ n: number }>('select count(*) as n from items'), {
      readOnly: true,
    });
    expect(counted.rows).toEqual([{ n: 0 }]);
    // query_only ends with the transaction: autocommit and read-write transactions write again.
    await insertItem(db, 'autocommit');
    await db.transaction(() => insertItem(db, 'rw'));
    expect(tags()).toEqual(['autocommit', 'rw']);
  });

  it('in WAL mode a read-only transaction runs on a reader: it never waits for the writer, and sees the last commit', async () => {
    const { db, probe } = createDb();
    await itemsTable(db);
    await insertItem(db, 'committed');
    const writing = gate();
    const finish = gate();
    const writer = db.scope(() =>
      db.transaction(async () => {
        await insertItem(db, 'uncommitted');
        writing.open();
        await finish.wait;
      }),
    );
    await writing.wait;
    // The writer holds the one write connection; the read-only transaction does not queue behind it.
    const seen = await db.scope(() =>
      db.transaction(() => db.query<{ tag: string }>(sql`select tag from items order by id`), {
        readOnly: true,
      }),
    );
    expect(seen.rows).toEqual([{ tag: 'committed' }]);
    expect(probe.checkedOut).toBe(1);
    finish.open();
    await writer;
    expect(tags()).toEqual(['committed', 'uncommitted']);
    // With readers: 0, read-only transactions queue with the writers (the one-connection behaviour).
    const { db: queued } = createDb(file, { readers: 0 });
    const held = gate();
    const release = gate();
    const holder = queued.transaction(async () => {
      await queued.query(sql`select 1 as one`);
      held.open();
      await release.wait;
    });
    await held.wait;
    let done = false;
    const reading = queued
      .transaction(() => queued.query(sql`select 1 as one`), { readOnly: true })
      .then(() => {
        done = true;
      });
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toBe(false);
    release.open();
    await Promise.all([holder, reading]);
    expect(done).toBe(true);
  });

  it('on the wire: k statements in a transaction are k + 2 statements, query_only reset once after a read-only one', async () => {
    // better-sqlite3's verbose hook sees every statement SQLite runs, pragmas and exec() included.
    const wire: string[] = [];
    const { db } = createDb(file, { database: { verbose: (text: unknown) => wire.push(String(text)) } });
    await itemsTable(db);
    wire.length = 0;
    await db.transaction(async () => {
      for (const tag of ['a', 'b', 'c', 'd']) await insertItem(db, tag);
    });
    // (verbose shows each statement with its values bound)
    const inserted = (tag: string) => `insert into items (tag, n) values ('${tag}', 0.0)`;
    expect(wire).toEqual(['BEGIN IMMEDIATE', ...['a', 'b', 'c', 'd'].map(inserted), 'COMMIT']);
    wire.length = 0;
    await db.transaction(() => Promise.all(['e', 'f', 'g'].map((tag) => insertItem(db, tag))));
    expect(wire).toHaveLength(3 + 2);
    wire.length = 0;
    await insertItem(db, 'autocommit');
    expect(wire).toEqual([inserted('autocommit')]);
    wire.length = 0;
    await db.transaction(() => db.query(sql`select count(*) as n from items`), { readOnly: true });
    expect(wire).toEqual([
      'BEGIN DEFERRED',
      'PRAGMA query_only = ON',
      'select count(*) as n from items',
      'COMMIT',
      'PRAGMA query_only = OFF',
    ]);
  });

  it('a Database given by the caller in WAL mode gets readers too: a read-only transaction never waits for its writer', async () => {
    const given = new BetterSqlite3(file);
    given.pragma('journal_mode = WAL');
    const { db } = createDb(given);
    await itemsTable(db);
    await insertItem(db, 'committed');
    const writing = gate();
    const finish = gate();
    const writer = db.transaction(async () => {
      await insertItem(db, 'uncommitted');
      writing.open();
      await finish.wait;
    });
    await writing.wait;
    // Were it queued behind the writer, this would wait for `finish`, which opens only after it.
    const seen = await db.transaction(
      () => db.query<{ tag: string }>(sql`select tag from items order by id`),
      {
        readOnly: true,
      },
    );
    expect(seen.rows).toEqual([{ tag: 'committed' }]);
    finish.open();
    await writer;
    expect(tags()).toEqual(['committed', 'uncommitted']);
  });

  it('isolation: serializable is the one level; any other is ERR_INVALID_OPTION at createDatabase or transaction time', async () => {
    const { db, probe } = createDb();
    expect(db.dialect.isolationLevels).toEqual(['serializable']);
    await expect(
      db.transaction(() => db.query('select 1'), { isolation: 'read committed' }),
    ).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
    });
    expect(() => db.transactional({ isolation: 'repeatable read' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    expect(() =>
      createDatabase({ driver: sqlite(':memory:'), defaults: { isolation: 'read uncommitted' } }),
    ).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(probe.acquires).toBe(0);
    await db.transaction(() => db.query('select 1'), { isolation: 'serializable' });
    expect(probe.statements[0]).toBe('BEGIN IMMEDIATE');
  });

  // @Transactional() can only check isolation against all four levels when decorating; the
  // boundary checks it against the database's dialect at call time.
  it('@Transactional({ isolation }) with a level SQLite lacks rejects ERR_INVALID_OPTION at call time', async () => {
    const { db, probe } = createDb();
    const run = Transactional({ isolation: 'read committed' })(async () => db.query('select 1'));
    await expect(run()).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    expect(probe.statements).toEqual([]);
  });

  it("':memory:' works: one in-memory database for the driver's life, rollbacks included", async () => {
    const { db } = createDb(':memory:');
    expect(db.stats().pool.max).toBe(1);
    await itemsTable(db);
    await db.transaction(() => insertItem(db, 'kept'));
    await expect(
      db.transaction(async () => {
        await insertItem(db, 'dropped');
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const { rows } = await db.query<{ tag: string }>(sql`select tag from items`);
    expect(rows).toEqual([{ tag: 'kept' }]);
  });

  it('a Database given by the caller is used as it is (its journal mode kept) and closed by db.close()', async () => {
    const given = new BetterSqlite3(file);
    const { db } = createDb(given);
    await itemsTable(db);
    await insertItem(db, 'given');
    expect(given.pragma('journal_mode', { simple: true })).toBe('delete');
    expect(tags()).toEqual(['given']);
    await db.close();
    expect(given.open).toBe(false);
  });

  it('a statement that makes SQLite roll the transaction back itself ends it: nothing runs in autocommit after', async () => {
    const { db, probe } = createDb();
    await itemsTable(db);
    await insertItem(db, 'existing');
    probe.reset();
    let swallowed: unknown;
    const result = db.transaction(async () => {
      await insertItem(db, 'first');
      // INSERT OR ROLLBACK: on conflict SQLite rolls back the whole transaction and says so with an error.
      swallowed = await db
        .query(sql`insert or rollback into items (id, tag) values (${1}, ${'duplicate'})`)
        .catch((e: unknown) => e);
      await insertItem(db, 'would be autocommit');
    });
    const error = await result.catch((e: unknown) => e);
    expect(error).toBe(swallowed);
    expect(swallowed).toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    expect(tags()).toEqual(['existing']);
    expect(probe.statements.filter((s) => s.startsWith('insert into'))).toHaveLength(1);
    expect(db.stats().checkedOut).toBe(0);
  });

  it('booleans are bound as 1 and 0', async () => {
    const { db } = createDb();
    await itemsTable(db);
    await db.query(sql`insert into items (tag, n) values (${'yes'}, ${true}), (${'no'}, ${false})`);
    const { rows } = await db.query(sql`select tag, n from items order by id`);
    expect(rows).toEqual([
      { tag: 'yes', n: 1 },
      { tag: 'no', n: 0 },
    ]);
  });

  it('between statements the event loop runs other work: a long transaction does not starve the process', async () => {
    const { db } = createDb();
    await itemsTable(db);
    const events: string[] = [];
    let ticking = true;
    const tick = (): void => {
      events.push('tick');
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    await db.transaction(async () => {
      for (let i = 0; i < 20; i++) {
        await insertItem(db, `s${i}`);
        events.push('statement');
      }
    });
    ticking = false;
    const first = events.indexOf('statement');
    const last = events.lastIndexOf('statement');
    expect(events.slice(first, last).filter((e) => e === 'tick').length).toBeGreaterThanOrEqual(19);
  });

  it('timeoutMs: the running statement cannot be cancelled; the next one rejects ERR_TRANSACTION_TIMEOUT', async () => {
    const { db, probe } = createDb();
    await itemsTable(db);
    probe.reset();
    let statements = 0;
    const error = await db
      .transaction(
        async () => {
          // Only a timer ends this loop: it fires because each statement yields to the event loop.
          for (;;) {
            await insertItem(db, 'loop');
            statements++;
          }
        },
        { timeoutMs: 50 },
      )
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    expect(statements).toBeGreaterThan(0);
    expect(probe.statements.at(-1)).toBe('ROLLBACK');
    expect(tags()).toEqual([]);
  });

  it('one connection: a waiting transaction gets ERR_POOL_TIMEOUT after acquireTimeoutMillis; requires_new inside a begun one is ERR_POOL_DEADLOCK', async () => {
    const { db } = createDb(file, { acquireTimeoutMillis: 100 });
    await itemsTable(db);
    const holding = gate();
    const release = gate();
    const holder = db.transaction(async () => {
      await insertItem(db, 'holder');
      holding.open();
      await release.wait;
      await expect(
        db.transaction(() => insertItem(db, 'new'), { propagation: 'requires_new' }),
      ).rejects.toMatchObject({ code: 'ERR_POOL_DEADLOCK' });
    });
    await holding.wait;
    await expect(db.transaction(() => insertItem(db, 'waiter'))).rejects.toMatchObject({
      code: 'ERR_POOL_TIMEOUT',
    });
    release.open();
    await holder;
    await insertItem(db, 'after');
    expect(tags()).toEqual(['holder', 'after']);
    expect(db.stats().pool).toMatchObject({ total: 1, idle: 1, waiting: 0, max: 1 });
  });

  it('busy errors are retryable; bad options are ERR_INVALID_OPTION', () => {
    const driver = sqlite(':memory:');
    expect(driver.classify(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }))).toBe(
      'retryable',
    );
    expect(driver.classify(Object.assign(new Error('x'), { code: 'SQLITE_CONSTRAINT_UNIQUE' }))).toBe(
      'other',
    );
    expect(driver.label).toBe('sqlite (memory)');
    expect(() => sqlite(42 as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => sqlite(':memory:', { acquireTimeoutMillis: -1 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
  });
});
