/**
 * What is specific to txscope/mysql on MariaDB: the statements sent, lock-wait timeouts and
 * deadlocks, connection loss with KILL, timeout cancellation with KILL QUERY, the pool.
 * The contract suites (test/contract) run on this driver too, through the harness.
 */
import mysql2, { type Pool, type RowDataPacket } from 'mysql2/promise';
import { createDatabase, type Database, isRetryable, sql, TxScopeError } from 'txscope';
import { type MysqlQueryResult, mysql } from 'txscope/mysql';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { type FreshDatabase, freshMysqlDatabase } from '../support/databases.js';
import { instrument, type Probe, until } from '../support/drivers.js';
import { insertItem, itemsTable } from '../support/schema.js';

function gate(): { open: () => void; wait: Promise<void> } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, wait };
}

// Without a server the global setup prints why, loudly; these tests are then skipped.
describe.skipIf(inject('mysqlUrl') === null)('txscope/mysql on MariaDB', () => {
  let fresh: FreshDatabase;
  let observer: Pool;
  const open: Database[] = [];

  beforeAll(async () => {
    fresh = (await freshMysqlDatabase()) as FreshDatabase;
    observer = mysql2.createPool({ uri: fresh.url, connectionLimit: 3 });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((db) => db.close()));
  });
  afterAll(async () => {
    await observer?.end();
    await fresh?.drop();
  });

  function createDb(options: Parameters<typeof mysql>[0] = {}): { db: Database; probe: Probe } {
    const { driver, probe } = instrument(
      mysql({ uri: fresh.url, max: 3, acquireTimeoutMillis: 5000, ...options }),
    );
    const db = createDatabase({ driver });
    open.push(db);
    return { db, probe };
  }

  async function observe<Row>(text: string, values?: unknown[]): Promise<Row[]> {
    const [rows] = await observer.query<RowDataPacket[]>(text, values);
    return rows as Row[];
  }

  const tags = async () =>
    (await observe<{ tag: string }>('select tag from items order by id')).map((r) => r.tag);

  /** Statements of this test database still running on the server, other than the observer's own. */
  const running = (pattern: string) =>
    observe<{ id: number }>(
      "select ID as id from information_schema.PROCESSLIST where DB = ? and COMMAND = 'Query' and INFO like ?",
      [fresh.name, pattern],
    );

  it('sends SET TRANSACTION ISOLATION LEVEL before START TRANSACTION READ ONLY, and the server runs it so', async () => {
    const { db, probe } = createDb();
    await itemsTable(db);
    probe.reset();
    const seen = await db.transaction(
      async () => {
        await db.query('select count(*) as n from items');
        const { rows } = await db.query<{ level: string; ro: number }>(
          'select trx_isolation_level as level, trx_is_read_only as ro from information_schema.INNODB_TRX ' +
            'where trx_mysql_thread_id = connection_id()',
        );
        return rows;
      },
      { isolation: 'read committed', readOnly: true },
    );
    expect(seen).toEqual([{ level: 'READ COMMITTED', ro: 1 }]);
    expect(probe.statements.slice(0, 2)).toEqual([
      'SET TRANSACTION ISOLATION LEVEL READ COMMITTED',
      'START TRANSACTION READ ONLY',
    ]);
    expect(probe.statements.at(-1)).toBe('COMMIT');

    probe.reset();
    await db.transaction(() => insertItem(db, 'rw'));
    // No isolation asked: no SET TRANSACTION, the server's default applies.
    expect(probe.statements).toEqual([
      'START TRANSACTION',
      'insert into items (tag, n) values (?, ?)',
      'COMMIT',
    ]);
    expect(await tags()).toEqual(['rw']);
  });

  it('a write in a READ ONLY transaction fails with the driver error (1792), unchanged, and nothing commits', async () => {
    const { db } = createDb();
    await itemsTable(db);
    const error = await db
      .transaction(() => insertItem(db, 'ro'), { readOnly: true })
      .catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(TxScopeError);
    expect(error).toMatchObject({ errno: 1792 });
    expect(await tags()).toEqual([]);
  });

  it('INSERT/UPDATE: rows is empty, rowCount the affected rows, insertId the AUTO_INCREMENT value', async () => {
    const { db } = createDb();
    await itemsTable(db);
    const first = (await insertItem(db, 'a')) as MysqlQueryResult;
    const second = (await insertItem(db, 'b')) as MysqlQueryResult;
    expect(first).toMatchObject({ rows: [], rowCount: 1 });
    expect(Number(second.insertId)).toBe(Number(first.insertId) + 1);
    const updated = await db.query(sql`update items set n = n + 1 where tag in (${'a'}, ${'b'})`);
    expect(updated).toMatchObject({ rows: [], rowCount: 2 });
    const selected = await db.query<{ tag: string }>(sql`select tag from items order by id`);
    expect(selected).toMatchObject({ rows: [{ tag: 'a' }, { tag: 'b' }], rowCount: 2 });
  });

  it('a lock-wait timeout (1205) rolls back the whole transaction, not only the statement', async () => {
    const { db, probe } = createDb();
    await itemsTable(db);
    await insertItem(db, 'locked');
    const blocker = await mysql2.createConnection(fresh.url);
    try {
      await blocker.query('start transaction');
      // By primary key: InnoDB locks that one row, not every row a scan passes.
      await blocker.query('update items set n = 1 where id = 1');
      probe.reset();
      let caught: unknown;
      const result = db.transaction(async () => {
        await db.query('set session innodb_lock_wait_timeout = 1');
        await insertItem(db, 'before');
        // MySQL rolls back only this statement; even if the caller swallows the error, the
        // transaction must not go on and commit 'before'.
        caught = await db.query('update items set n = 2 where id = 1').catch((e: unknown) => e);
        await insertItem(db, 'after');
      });
      const error = await result.catch((e: unknown) => e);
      expect(caught).toMatchObject({ errno: 1205 });
      expect(error).toBe(caught);
      expect(probe.statements.filter((s) => s.startsWith('insert'))).toHaveLength(1);
      expect(probe.statements.filter((s) => s.startsWith('update'))).toHaveLength(1);
      expect(probe.statements.at(-1)).toBe('ROLLBACK');
    } finally {
      await blocker.query('rollback');
      await blocker.end();
    }
    expect(await tags()).toEqual(['locked']);
    expect(db.stats().checkedOut).toBe(0);
  });

  it('a deadlock (1213) is retryable: retry { attempts: 3 } re-runs the victim and both commit', async () => {
    const { db } = createDb();
    await itemsTable(db);
    await insertItem(db, 'x');
    await insertItem(db, 'y');
    const lockedX = gate();
    const lockedY = gate();
    const errors: unknown[] = [];
    let runs = 0;
    // By primary key (x is 1, y is 2), so each transaction locks exactly its row.
    const move = (first: number, second: number, locked: () => void, other: Promise<void>) =>
      db.transaction(
        async () => {
          runs++;
          const attempt = runs;
          await db.query(sql`update items set n = n + 1 where id = ${first}`);
          if (attempt <= 2) {
            locked();
            await other;
          }
          await db.query(sql`update items set n = n + 1 where id = ${second}`).catch((e: unknown) => {
            errors.push(e);
            throw e;
          });
        },
        { retry: { attempts: 3, baseDelayMs: 1 } },
      );
    await Promise.all([move(1, 2, lockedX.open, lockedY.wait), move(2, 1, lockedY.open, lockedX.wait)]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ errno: 1213 });
    expect(isRetryable(errors[0])).toBe(true);
    expect(runs).toBe(3);
    expect(await observe('select tag, n from items order by id')).toEqual([
      { tag: 'x', n: 2 },
      { tag: 'y', n: 2 },
    ]);
  });

  it('a deadlock without retry rejects with the driver error (1213), and nothing of the victim commits', async () => {
    const { db } = createDb();
    await itemsTable(db);
    await insertItem(db, 'x');
    await insertItem(db, 'y');
    const lockedX = gate();
    const lockedY = gate();
    // By primary key (x is 1, y is 2), so each transaction locks exactly its row.
    const move = (first: number, second: number, locked: () => void, other: Promise<void>) =>
      db.transaction(async () => {
        await db.query(sql`update items set n = n + 1 where id = ${first}`);
        locked();
        await other;
        await db.query(sql`update items set n = n + 1 where id = ${second}`);
      });
    const outcomes = await Promise.allSettled([
      move(1, 2, lockedX.open, lockedY.wait),
      move(2, 1, lockedY.open, lockedX.wait),
    ]);
    const rejected = outcomes.filter((o) => o.status === 'rejected');
    expect(rejected).toHaveLength(1);
    expect((rejected[0] as PromiseRejectedResult).reason).toMatchObject({ errno: 1213 });
    const rows = await observe<{ n: number }>('select n from items order by id');
    expect(rows.map((r) => r.n)).toEqual([1, 1]);
    expect(db.stats().checkedOut).toBe(0);
  });

  // DDL inside a transaction makes MySQL commit it implicitly; the driver's status() says 'idle',
  // and the core fails the transaction instead of letting later statements run in autocommit.
  it('an implicit commit (DDL in a transaction) ends it loudly: later statements never run in autocommit', async () => {
    const { db } = createDb();
    await itemsTable(db);
    const result = db.transaction(async () => {
      await insertItem(db, 'before');
      await db.query('create table other (id int)');
      await insertItem(db, 'after');
      throw new Error('roll back');
    });
    await expect(result).rejects.toBeDefined();
    // 'before' was committed by MySQL itself; 'after' must not have run at all.
    expect(await tags()).toEqual(['before']);
  });

  it('KILL of the connection mid-transaction: ERR_CONNECTION_LOST, the connection is destroyed, the pool works after', async () => {
    const { db, probe } = createDb({ max: 1 });
    await itemsTable(db);
    probe.reset();
    const error = await db
      .transaction(async () => {
        await insertItem(db, 'lost');
        const { rows } = await db.query<{ id: number }>('select connection_id() as id');
        await observer.query(`KILL ${Number(rows[0]?.id)}`);
        await insertItem(db, 'never');
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TxScopeError);
    expect(error).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect(probe.destroyed).toBe(1);
    await db.transaction(() => insertItem(db, 'after'));
    expect(await tags()).toEqual(['after']);
    expect(db.stats().checkedOut).toBe(0);
  });

  it('a connection killed while idle in the pool does not crash the process and is never handed out', async () => {
    const { db } = createDb({ max: 2 });
    await itemsTable(db);
    // Two transactions at once: the pool opens both its connections.
    const both = gate();
    let arrived = 0;
    const ids = await Promise.all(
      [1, 2].map(() =>
        db.transaction(async () => {
          const { rows } = await db.query<{ id: number }>('select connection_id() as id');
          if (++arrived === 2) both.open();
          await both.wait;
          return Number(rows[0]?.id);
        }),
      ),
    );
    expect(new Set(ids).size).toBe(2);
    for (const id of ids) await observer.query(`KILL ${id}`);
    // mysql2 drops a dead connection from the pool when its 'error' arrives.
    await until(() => db.stats().pool.total === 0, 5000, 'the pool to drop the killed connections');
    await insertItem(db, 'fresh');
    expect(await tags()).toEqual(['fresh']);
  });

  it('timeoutMs cancels the running statement with KILL QUERY: ERR_TRANSACTION_TIMEOUT, nothing left running', async () => {
    const { db, probe } = createDb();
    await itemsTable(db);
    probe.reset();
    const error = await db
      .transaction(
        async () => {
          await insertItem(db, 'timed out');
          await db.query('select sleep(5) as slept');
        },
        { timeoutMs: 200 },
      )
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    // sleep(5) would still be listed for seconds had it not been killed.
    await until(async () => (await running('select sleep(5)%')).length === 0, 2000, 'the sleep to be killed');
    expect(probe.statements.at(-1)).toBe('ROLLBACK');
    expect(await tags()).toEqual([]);
    await db.transaction(() => insertItem(db, 'next'));
    expect(await tags()).toEqual(['next']);
  });

  it('a pool given by the caller works, and its timeouts cancel with its own connection settings', async () => {
    const pool = mysql2.createPool({ uri: fresh.url, connectionLimit: 2 });
    const { driver, probe } = instrument(mysql(pool));
    const db = createDatabase({ driver });
    open.push(db);
    expect(driver.label).toBe(`${fresh.name}@127.0.0.1:3306`);
    await itemsTable(db);
    probe.reset();
    const error = await db
      .transaction(() => db.query('select sleep(5) as slept'), { timeoutMs: 200 })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    await until(async () => (await running('select sleep(5)%')).length === 0, 2000, 'the sleep to be killed');
    await db.close();
    // db.close() ends the pool it was given, as pg() does.
    await expect(pool.query('select 1')).rejects.toThrow(/closed/i);
  });

  it('acquireTimeoutMillis: ERR_POOL_TIMEOUT with the pool counts; the late connection is not leaked', async () => {
    const { db } = createDb({ max: 1, acquireTimeoutMillis: 100 });
    await itemsTable(db);
    const holding = gate();
    const release = gate();
    const holder = db.transaction(async () => {
      await insertItem(db, 'holder');
      holding.open();
      await release.wait;
    });
    await holding.wait;
    const error = await db.transaction(() => insertItem(db, 'waiter')).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_POOL_TIMEOUT' });
    expect((error as Error).message).toMatch(/pool of 1, 1 open, 0 idle/);
    release.open();
    await holder;
    await insertItem(db, 'after');
    expect(await tags()).toEqual(['holder', 'after']);
    expect(db.stats().pool).toMatchObject({ total: 1, idle: 1, waiting: 0, max: 1 });
  });

  it('maxLifetimeSeconds: a connection past its lifetime is closed when released, not pooled again', async () => {
    const { db } = createDb({ max: 1, maxLifetimeSeconds: 0 });
    const first = (await db.query<{ id: number }>('select connection_id() as id')).rows[0]?.id;
    const second = (await db.query<{ id: number }>('select connection_id() as id')).rows[0]?.id;
    expect(first).not.toBe(second);
    await until(
      async () =>
        (await observe('select ID from information_schema.PROCESSLIST where ID = ?', [first])).length === 0,
    );
    expect(db.stats().pool.total).toBeLessThanOrEqual(1);
  });

  it('the label and errors never carry the password; bad pool options are ERR_INVALID_OPTION', () => {
    const driver = mysql({ uri: 'mysql://app:s3cret@db.internal:3307/shop', max: 2 });
    expect(driver.label).toBe('shop@db.internal:3307');
    expect(mysql({ host: 'h', database: 'd', password: 's3cret' }).label).toBe('d@h');
    expect(() => mysql({ max: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => mysql({ acquireTimeoutMillis: -1 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    expect(() => mysql(null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
