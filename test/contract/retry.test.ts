/** Rule 13: retry re-runs the outermost frame on serialization failures and deadlocks. */

import { isRetryable, sql, TxScopeError } from 'txscope';
import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../src/core/retry.js';
import { forEachDriver } from '../support/drivers.js';
import { insertItem, itemsTable } from '../support/schema.js';

function barrier(parties: number): () => Promise<void> {
  let waiting = 0;
  let release!: () => void;
  const all = new Promise<void>((resolve) => {
    release = resolve;
  });
  return () => {
    waiting++;
    if (waiting === parties) release();
    return all;
  };
}

/** An error shaped as the dialect's driver reports a serialization failure or busy database. */
function retryableError(dialect: string, message: string): Error {
  const fields =
    dialect === 'postgres'
      ? { code: '40001' }
      : dialect === 'mysql'
        ? { errno: 1213, code: 'ER_LOCK_DEADLOCK' }
        : { code: 'SQLITE_BUSY' };
  return Object.assign(new Error(message), fields);
}

forEachDriver('retry', (env) => {
  const realConflicts = env.capabilities.multiConnection && env.name !== 'sqlite';

  it.runIf(realConflicts)(
    'a real serialization failure re-runs the whole function; failed attempts leave no callbacks',
    async () => {
      const { db } = env.createDb();
      await itemsTable(db);
      const runs = { a: 0, b: 0 };
      const callbacks: string[] = [];
      const bothRead = barrier(2);
      const writeSkew = (name: 'a' | 'b') =>
        db.transaction(
          async () => {
            runs[name]++;
            const { rows } = await db.query<{ c: number | string }>(sql`select count(*) as c from items`);
            if (runs[name] === 1) await bothRead();
            await insertItem(db, `${name}:saw ${Number(rows[0]?.c)}`);
            db.afterCommit(() => callbacks.push(`${name}:commit`));
            db.afterRollback(() => callbacks.push(`${name}:rollback`));
          },
          { isolation: 'serializable', retry: { attempts: 5, baseDelayMs: 1 } },
        );
      await Promise.all([writeSkew('a'), writeSkew('b')]);
      // One saw the other's row on its second run: the schedule is serializable.
      const rows = await env.observe<{ tag: string }>('select tag from items order by id');
      expect(rows.map((r) => r.tag).sort()).toEqual(
        runs.a === 2 ? ['a:saw 1', 'b:saw 0'] : ['a:saw 0', 'b:saw 1'],
      );
      expect(runs.a + runs.b).toBe(3);
      expect(callbacks.sort()).toEqual(['a:commit', 'b:commit']);
    },
  );

  it.runIf(realConflicts)('a real deadlock is retried', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    await db.query(sql`insert into items (tag, n) values (${'one'}, 0), (${'two'}, 0)`);
    const ids = (await db.query<{ id: number }>(sql`select id from items order by id`)).rows.map((r) => r.id);
    const bothLocked = barrier(2);
    let runs = 0;
    // By primary key: MySQL would lock every row it scans otherwise.
    const lock = (first: number | undefined, second: number | undefined) =>
      db.transaction(
        async () => {
          runs++;
          if (db.dialect.name === 'postgres') await db.query(sql`set local deadlock_timeout = 50`);
          await db.query(sql`update items set n = n + 1 where id = ${first}`);
          if (runs <= 2) await bothLocked();
          await db.query(sql`update items set n = n + 1 where id = ${second}`);
        },
        { retry: { attempts: 3, baseDelayMs: 1 } },
      );
    await Promise.all([lock(ids[0], ids[1]), lock(ids[1], ids[0])]);
    expect(runs).toBe(3);
    const rows = await env.observe<{ n: number }>('select n from items order by id');
    expect(rows.map((r) => Number(r.n))).toEqual([2, 2]);
  });

  it("gives up after `attempts` runs, with the last attempt's error", async () => {
    const { db } = env.createDb();
    let runs = 0;
    const result = db.transaction(
      async () => {
        runs++;
        await db.query(sql`select 1 as one`);
        throw retryableError(db.dialect.name, `conflict #${runs}`);
      },
      { retry: { attempts: 3, baseDelayMs: 1 } },
    );
    await expect(result).rejects.toThrow('conflict #3');
    expect(runs).toBe(3);
  });

  it('is ignored on a joined frame: only the outermost retries', async () => {
    const { db } = env.createDb();
    let inner = 0;
    await expect(
      db.transaction(async () => {
        await db.transaction(
          async () => {
            inner++;
            throw retryableError(db.dialect.name, 'conflict');
          },
          { retry: { attempts: 5 } },
        );
      }),
    ).rejects.toThrow('conflict');
    expect(inner).toBe(1);
  });

  it('never retries errors that are not retryable', async () => {
    const { db } = env.createDb();
    let runs = 0;
    await expect(
      db.transaction(
        async () => {
          runs++;
          throw new Error('plain');
        },
        { retry: { attempts: 5 } },
      ),
    ).rejects.toThrow('plain');
    expect(runs).toBe(1);
  });
});

describe('isRetryable and backoff', () => {
  it('classifies driver errors', () => {
    expect(isRetryable(Object.assign(new Error('x'), { code: '40001' }))).toBe(true);
    expect(isRetryable(Object.assign(new Error('x'), { code: '40P01' }))).toBe(true);
    expect(isRetryable(Object.assign(new Error('x'), { errno: 1213, code: 'ER_LOCK_DEADLOCK' }))).toBe(true);
    expect(isRetryable(Object.assign(new Error('x'), { code: 'SQLITE_BUSY' }))).toBe(true);
    expect(
      isRetryable(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: '40001' }) })),
    ).toBe(true);
    expect(isRetryable(Object.assign(new Error('x'), { code: '23505' }))).toBe(false);
    expect(isRetryable(new TxScopeError('ERR_COMMIT_UNKNOWN', 'unknown'))).toBe(false);
    expect(isRetryable(null)).toBe(false);
  });

  it('backs off exponentially with full jitter, capped', () => {
    const retry = { attempts: 10, baseDelayMs: 10, maxDelayMs: 100 };
    for (let attempt = 1; attempt <= 8; attempt++) {
      const ceiling = Math.min(100, 10 * 2 ** (attempt - 1));
      const delays = Array.from({ length: 50 }, () => backoffMs(attempt, retry));
      expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...delays)).toBeLessThanOrEqual(ceiling);
      expect(new Set(delays).size).toBeGreaterThan(1);
    }
  });
});
