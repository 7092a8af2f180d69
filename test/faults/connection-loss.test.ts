/**
 * Rule 14 (connection loss) against a real PostgreSQL through node-postgres and postgres.js:
 * backends terminated by an admin connection, and a fault-injecting proxy that cuts the
 * connection with COMMIT in flight or resets it mid-transaction.
 */
import pgLib from 'pg';
import {
  createDatabase,
  type Database,
  type Driver,
  type DriverConnection,
  sql,
  TxScopeError,
} from 'txscope';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { classifyPostgresJsError } from '../../src/drivers/postgres/postgresjs.js';
import { type FreshDatabase, freshPgDatabase } from '../support/databases.js';
import { instrument, type Probe, until } from '../support/drivers.js';
import { runPgBouncer, throughPgBouncer } from '../support/pooler.js';
import { postgresServerDriver } from '../support/postgresjs-case.js';
import { type FaultProxy, type ProxyMessage, startProxy } from '../support/proxy.js';

let fresh: FreshDatabase;
/** The URL the databases under test connect to: the server's, or the same database through PgBouncer. */
let base: () => string = () => fresh.url;
/** The driver under test: node-postgres or postgres.js. */
let driverName: 'pg' | 'postgresjs' = 'pg';
let admin: pgLib.Pool;
const open: Database[] = [];
const proxies: FaultProxy[] = [];
// An 'error' event nobody listens to becomes an uncaught exception: the monitor sees it
// without changing how the process (or vitest) handles it.
const crashes: unknown[] = [];
const onCrash = (error: unknown): void => {
  crashes.push(error);
};

beforeAll(async () => {
  fresh = await freshPgDatabase();
  admin = new pgLib.Pool({ connectionString: fresh.url, max: 2 });
  admin.on('error', () => {});
  await admin.query('create table items (id serial primary key, tag text not null)');
  process.on('uncaughtExceptionMonitor', onCrash);
});

afterAll(async () => {
  process.off('uncaughtExceptionMonitor', onCrash);
  await admin?.end();
  await fresh?.drop();
});

beforeEach(async () => {
  crashes.length = 0;
  await admin.query('truncate items');
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((db) => db.close()));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  expect(crashes).toEqual([]);
});

/** A database over the driver under test, counted by the harness's probe; `connections` are the ones it checked out. */
function makeDb(app: string, options: { url?: string; max?: number } = {}) {
  const { driver, probe } = instrument(
    postgresServerDriver(driverName, {
      url: options.url ?? base(),
      max: options.max ?? 1,
      acquireTimeoutMillis: 5000,
      applicationName: app,
    }),
  );
  const connections: DriverConnection[] = [];
  const tracked: Driver = {
    ...driver,
    async acquire() {
      const connection = await driver.acquire();
      connections.push(connection);
      return connection;
    },
    release: (connection, o) => driver.release(connection, o),
    classify: (error) => driver.classify(error),
    counts: () => driver.counts(),
    close: () => driver.close(),
  };
  const db = createDatabase({ driver: tracked, name: app });
  open.push(db);
  return { db, probe, connections };
}

async function proxied(): Promise<FaultProxy> {
  const target = new URL(base());
  const proxy = await startProxy({
    target: { host: target.hostname, port: Number(target.port || 5432) },
  });
  proxies.push(proxy);
  return proxy;
}

/** BEGIN on the wire: a simple Query of its own, or the Parse that rides ahead of the first statement. */
const isBegin = (m: ProxyMessage): boolean =>
  (m.type === 'Q' || m.type === 'P') && m.text.startsWith('BEGIN');

const insert = (db: Database, tag: string) => db.query(sql`insert into items (tag) values (${tag})`);

async function pidOf(db: Database): Promise<number> {
  const { rows } = await db.query<{ pid: number }>('select pg_backend_pid() as pid');
  return (rows[0] as { pid: number }).pid;
}

/** Terminates backend `pid` from the admin connection and waits until the server has let it go. */
async function terminate(pid: number): Promise<void> {
  const { rows } = await admin.query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [pid]);
  expect(rows[0]?.ok).toBe(true);
  await until(
    async () => (await admin.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount === 0,
    5000,
    `backend ${pid} to exit`,
  );
}

/** The driver has seen its connection die ('failed' today; a driver may say 'closed'). */
function noticedLoss(connection: DriverConnection | undefined): boolean {
  return connection !== undefined && ['failed', 'closed'].includes(connection.status());
}

async function tags(prefix: string): Promise<string[]> {
  const { rows } = await admin.query<{ tag: string }>(
    "select tag from items where tag like $1 || '%' order by id",
    [prefix],
  );
  return rows.map((r) => r.tag);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, it resolved');
}

/** The error is ERR_CONNECTION_LOST / ERR_COMMIT_UNKNOWN carrying the driver's own error as `cause`. */
function expectLoss(error: unknown, code: 'ERR_CONNECTION_LOST' | 'ERR_COMMIT_UNKNOWN'): void {
  expect(error).toBeInstanceOf(TxScopeError);
  expect((error as TxScopeError).code).toBe(code);
  const cause = (error as TxScopeError).cause;
  expect(cause).toBeInstanceOf(Error);
  expect(cause).not.toBeInstanceOf(TxScopeError);
  // (postgres.js's own connection codes, then the PostgreSQL table node-postgres errors go by)
  expect(classifyPostgresJsError(cause)).toBe('connection_lost');
}

/** Counters after the dust settled: nothing checked out, on either side. */
function expectNothingHeld(db: Database, probe: Probe): void {
  expect(probe.checkedOut).toBe(0);
  expect(db.stats().checkedOut).toBe(0);
}

/** Directly, and through PgBouncer in transaction mode (rule 21: a pooler changes nothing here). */
const targets = [
  { name: 'pg', driver: 'pg', url: () => fresh.url, available: true },
  {
    name: 'pgbouncer',
    driver: 'pg',
    url: () => throughPgBouncer(fresh.url),
    available: runPgBouncer() !== null,
  },
  { name: 'postgresjs', driver: 'postgresjs', url: () => fresh.url, available: true },
] as const;

for (const target of targets) {
  describe.runIf(target.available)(`rule 14: connection loss [${target.name}]`, () => {
    beforeAll(() => {
      base = target.url;
      driverName = target.driver;
    });

    it('(a) an idle pooled connection that dies before the first statement: the next transaction simply works', async () => {
      const { db, probe } = makeDb('loss_a');
      const dead = await pidOf(db);
      await terminate(dead);
      // Behind PgBouncer the client's connection is to the pooler, which just drops the dead backend.
      if (target.name !== 'pgbouncer')
        await until(() => db.stats().pool.total === 0, 5000, 'the pool to drop its dead idle connection');
      probe.reset();

      const pid = await db.transaction(async () => {
        await insert(db, 'a1');
        return pidOf(db);
      });

      expect(pid).not.toBe(dead);
      expect(await tags('a')).toEqual(['a1']);
      // The pool dropped the dead connection itself: txscope never held it.
      expect(probe.acquires).toBe(1);
      expect(probe.destroyed).toBe(0);
      expectNothingHeld(db, probe);
    });

    it('(a) a pooled connection found dead at BEGIN is replaced: the transaction runs once, on a fresh connection', async () => {
      const proxy = await proxied();
      const { db, probe } = makeDb('loss_a2', { url: proxy.url(base()) });
      await db.query('select 1');
      probe.reset();
      // What a pool hands out after a failover or a NAT timeout: a connection that is already
      // gone, found out only when BEGIN (and the first statement riding with it) is written to it.
      // Nothing of the transaction ran.
      const fault = proxy.setFault({
        when: isBegin,
        action: 'reset',
      });
      let runs = 0;
      await db.transaction(async () => {
        runs++;
        await insert(db, 'a2-1');
      });
      expect(fault.count).toBe(1);
      expect(runs).toBe(1);
      expect(await tags('a2-')).toEqual(['a2-1']);
      expect(probe.acquires).toBe(2);
      expect(probe.destroyed).toBe(1);
      expectNothingHeld(db, probe);
    });

    it('(a) killed right before the transaction, before the pool noticed: the transaction still works', async () => {
      const { db, probe } = makeDb('loss_a3');
      for (let i = 1; i <= 5; i++) {
        const dead = await pidOf(db);
        await admin.query('select pg_terminate_backend($1)', [dead]);
        // No waiting: the pool may hand out the dying connection, and BEGIN finds it dead.
        const pid = await db.transaction(async () => {
          await insert(db, `a3-${i}`);
          return pidOf(db);
        });
        expect(pid).not.toBe(dead);
      }
      expect(await tags('a3-')).toEqual(['a3-1', 'a3-2', 'a3-3', 'a3-4', 'a3-5']);
      expectNothingHeld(db, probe);
    });

    it('(b) killed between statements: the next statement and the transaction reject ERR_CONNECTION_LOST; the connection is destroyed', async () => {
      const { db, probe } = makeDb('loss_b');
      let seenByFn: unknown;
      const error = await rejection(
        db.transaction(async () => {
          await insert(db, 'b1');
          await terminate(await pidOf(db));
          try {
            await insert(db, 'b2');
          } catch (e) {
            seenByFn = e;
            throw e;
          }
        }),
      );

      expectLoss(error, 'ERR_CONNECTION_LOST');
      expect(seenByFn).toBe(error);
      expect(await tags('b')).toEqual([]);
      expect(probe.destroyed).toBe(1);
      expectNothingHeld(db, probe);

      await db.transaction(() => insert(db, 'b3'));
      expect(await tags('b')).toEqual(['b3']);
      expect(probe.destroyed).toBe(1);
      expectNothingHeld(db, probe);
    });

    it('(b) the lost statement caught inside fn still rejects the transaction with ERR_CONNECTION_LOST', async () => {
      const { db, probe } = makeDb('loss_b2');
      const error = await rejection(
        db.transaction(async () => {
          await insert(db, 'b2-1');
          await terminate(await pidOf(db));
          await insert(db, 'b2-2').catch(() => {});
          return 'swallowed';
        }),
      );
      expectLoss(error, 'ERR_CONNECTION_LOST');
      expect(await tags('b2-')).toEqual([]);
      expect(probe.destroyed).toBe(1);
      expectNothingHeld(db, probe);
    });

    it('(c) killed during a long statement: ERR_CONNECTION_LOST at once, not when the statement would have ended', async () => {
      const { db, probe } = makeDb('loss_c');
      // pg_sleep(600) outlasts the test timeout: the test passes only if the loss is reported at once.
      const running = db.transaction(async () => {
        await insert(db, 'c1');
        await db.query('select pg_sleep(600)');
      });
      running.catch(() => {});
      let pid = 0;
      await until(
        async () => {
          const { rows } = await admin.query<{ pid: number }>(
            "select pid from pg_stat_activity where application_name = 'loss_c' and state = 'active' and query like 'select pg_sleep%'",
          );
          pid = rows[0]?.pid ?? 0;
          return pid !== 0;
        },
        5000,
        'pg_sleep to be running',
      );
      await terminate(pid);

      const error = await rejection(running);
      expectLoss(error, 'ERR_CONNECTION_LOST');
      expect(await tags('c')).toEqual([]);
      expect(probe.destroyed).toBe(1);
      expectNothingHeld(db, probe);
      await db.transaction(() => insert(db, 'c2'));
      expect(await tags('c')).toEqual(['c2']);
    });

    it('(d) COMMIT in flight, connection cut: ERR_COMMIT_UNKNOWN, never retried, and the server did commit', async () => {
      const proxy = await proxied();
      const { db, probe } = makeDb('loss_d', { url: proxy.url(base()) });
      const fault = proxy.setFault({
        when: (m) => m.type === 'Q' && m.text.toUpperCase().startsWith('COMMIT'),
        action: 'cut',
      });
      let runs = 0;
      const error = await rejection(
        db.transaction(
          async () => {
            runs++;
            await insert(db, 'd1');
          },
          { isolation: 'serializable', retry: { attempts: 5, baseDelayMs: 1 } },
        ),
      );

      expectLoss(error, 'ERR_COMMIT_UNKNOWN');
      expect(runs).toBe(1);
      expect(fault.count).toBe(1);
      expect((await fault.fired).text).toBe('COMMIT');
      // Why "unknown" is the honest answer: the server received COMMIT and committed.
      await until(async () => (await tags('d')).length === 1, 5000, 'the committed row to be visible');
      expect(await tags('d')).toEqual(['d1']);
      expect(probe.destroyed).toBe(1);
      expectNothingHeld(db, probe);

      await db.transaction(() => insert(db, 'd2'));
      expect(await tags('d')).toEqual(['d1', 'd2']);
      expectNothingHeld(db, probe);
    });

    it('(e) a TCP reset in the middle of a transaction: ERR_CONNECTION_LOST, nothing committed', async () => {
      const proxy = await proxied();
      const { db, probe } = makeDb('loss_e', { url: proxy.url(base()) });
      const fault = proxy.setFault({ when: (m) => m.text.includes('/* reset here */'), action: 'reset' });
      const error = await rejection(
        db.transaction(async () => {
          await insert(db, 'e1');
          await db.query(sql`/* reset here */ insert into items (tag) values (${'e2'})`);
        }),
      );

      expectLoss(error, 'ERR_CONNECTION_LOST');
      // Parameterized: the extended protocol's Parse carried the text.
      expect((await fault.fired).type).toBe('P');
      expect(await tags('e')).toEqual([]);
      expect(probe.destroyed).toBe(1);
      expectNothingHeld(db, probe);
      await db.transaction(() => insert(db, 'e3'));
      expect(await tags('e')).toEqual(['e3']);
    });

    it('(f) a connection that dies while checked out and idle in a transaction does not crash the process', async () => {
      const { db, probe, connections } = makeDb('loss_f');
      const error = await rejection(
        db.transaction(async () => {
          await insert(db, 'f1');
          await terminate(await pidOf(db));
          // The client has emitted 'error' while txscope held it, between statements.
          await until(() => noticedLoss(connections[0]), 5000, 'the client to notice the loss');
          await insert(db, 'f2');
        }),
      );
      expectLoss(error, 'ERR_CONNECTION_LOST');
      expect(await tags('f')).toEqual([]);
      expect(probe.destroyed).toBe(1);
      expectNothingHeld(db, probe);
      await db.transaction(() => insert(db, 'f3'));
      expect(await tags('f')).toEqual(['f3']);
    });

    it('(f) dead before COMMIT was sent: ERR_CONNECTION_LOST (nothing committed), not ERR_COMMIT_UNKNOWN', async () => {
      const { db, probe, connections } = makeDb('loss_f2');
      const error = await rejection(
        db.transaction(async () => {
          await insert(db, 'f2-1');
          await terminate(await pidOf(db));
          await until(() => noticedLoss(connections[0]), 5000, 'the client to notice the loss');
          // fn ends without another statement: the driver knows the connection is dead before COMMIT.
        }),
      );
      expect(await tags('f2-')).toEqual([]);
      expectLoss(error, 'ERR_CONNECTION_LOST');
      expect(probe.destroyed).toBe(1);
      expectNothingHeld(db, probe);
    });

    // Behind a transaction pooler a pin outside a transaction holds no backend: there is none to kill
    // (docs/poolers.md: db.connection(fn) keeps no session there).
    it.runIf(target.name !== 'pgbouncer')(
      '(f) inside db.connection(fn): the dead pinned connection rejects ERR_CONNECTION_LOST, is destroyed, the process lives',
      async () => {
        const { db, probe, connections } = makeDb('loss_f3');
        const errors = await db.connection(async () => {
          await terminate(await pidOf(db));
          await until(() => noticedLoss(connections[0]), 5000, 'the client to notice the loss');
          // Both the next statement and any after it: the pin never silently moves to a new connection.
          return [await rejection(db.query('select 1')), await rejection(db.query('select 2'))];
        });
        for (const error of errors) expectLoss(error, 'ERR_CONNECTION_LOST');
        expect(probe.destroyed).toBe(1);
        expectNothingHeld(db, probe);
        expect((await db.query<{ n: number }>('select 1 as n')).rows).toEqual([{ n: 1 }]);
      },
    );

    it('(f) a transaction inside db.connection(fn) that loses the connection: later statements of the block reject ERR_CONNECTION_LOST', async () => {
      const { db, probe } = makeDb('loss_f4');
      const errors = await db.connection(async () => {
        const lost = await rejection(
          db.transaction(async () => {
            await terminate(await pidOf(db));
            await insert(db, 'f4-1');
          }),
        );
        return [lost, await rejection(db.query('select 1'))];
      });
      for (const error of errors) expectLoss(error, 'ERR_CONNECTION_LOST');
      expect(await tags('f4-')).toEqual([]);
      expect(probe.destroyed).toBe(1);
      expectNothingHeld(db, probe);
      expect((await db.query<{ n: number }>('select 1 as n')).rows).toEqual([{ n: 1 }]);
    });

    // node-postgres's gap between startup and checkout; behind PgBouncer startup is the pooler's.
    it.runIf(target.name === 'pg')(
      'a backend that dies the moment its new connection is handed out does not crash the process',
      async () => {
        const proxy = await proxied();
        const { db, probe } = makeDb('loss_startup', { url: proxy.url(base()) });
        // Hold the server's first ReadyForQuery (the end of startup) until the backend has been
        // terminated: its FATAL error then reaches the client in the same chunk, so the pool hands
        // the client out and the client errors in one go, before the caller got hold of it.
        const fault = proxy.setFault({
          direction: 'server-to-client',
          when: (m) => m.type === 'Z',
          action: 'hold',
        });
        const query = db.query<{ n: number }>('select 1 as n');
        query.catch(() => {});
        const held = await fault.fired;
        const { rows } = await admin.query<{ pid: number }>(
          "select pid from pg_stat_activity where application_name = 'loss_startup'",
        );
        await terminate((rows[0] as { pid: number }).pid);
        await until(
          () => held.connection.messages['server-to-client'] > held.index,
          5000,
          'the FATAL error to reach the proxy',
        );
        fault.release();

        expectLoss(await rejection(query), 'ERR_CONNECTION_LOST');
        expect(crashes).toEqual([]);
        expect(probe.destroyed).toBe(1);
        expectNothingHeld(db, probe);
        expect((await db.query<{ n: number }>('select 1 as n')).rows).toEqual([{ n: 1 }]);
      },
    );

    it('the proxy: a delay keeps messages in order and the transaction commits', async () => {
      const proxy = await proxied();
      const { db, probe } = makeDb('loss_delay', { url: proxy.url(base()) });
      const fault = proxy.setFault({
        when: isBegin,
        action: { delayMs: 30 },
      });
      await db.transaction(async () => {
        await Promise.all([insert(db, 'g1'), insert(db, 'g2'), insert(db, 'g3')]);
      });
      expect(fault.count).toBe(1);
      expect(await tags('g')).toEqual(['g1', 'g2', 'g3']);
      expect(probe.destroyed).toBe(0);
      expectNothingHeld(db, probe);
    });
  });
}
