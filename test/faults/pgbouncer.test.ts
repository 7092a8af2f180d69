/**
 * Rule 21 where a pooler changes things: behind PgBouncer in transaction mode the backend a
 * client talks to changes between transactions, and the pooler itself can go away. This file
 * starts a PgBouncer of its own (restarting the run's would disturb every other file), with
 * fewer server connections than the client pool has, and observes the server directly.
 */
import pgLib from 'pg';
import { createDatabase, type Database, sql, TxScopeError } from 'txscope';
import { pg } from 'txscope/pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { classifyPostgresError } from '../../src/drivers/postgres/classify.js';
import { type PgBouncer, pgbouncerInstalled, startPgBouncer } from '../setup/pgbouncer.js';
import { type FreshDatabase, freshPgDatabase } from '../support/databases.js';
import { instrument, type Probe, until } from '../support/drivers.js';
import { runPgBouncer } from '../support/pooler.js';

/** The run's global setup already failed (CI=true) or warned when PgBouncer is missing. */
const available = pgbouncerInstalled() && runPgBouncer() !== null;

let fresh: FreshDatabase;
let admin: pgLib.Pool;
let bouncer: PgBouncer;
const open: Array<{ close(): Promise<void> }> = [];
const crashes: unknown[] = [];
const onCrash = (error: unknown): void => {
  crashes.push(error);
};

describe.runIf(available)('behind PgBouncer (transaction mode)', () => {
  beforeAll(async () => {
    process.on('uncaughtExceptionMonitor', onCrash);
    fresh = await freshPgDatabase();
    admin = new pgLib.Pool({ connectionString: fresh.url, max: 2 });
    admin.on('error', () => {});
    await admin.query('create table items (id serial primary key, tag text not null)');
    bouncer = await startPgBouncer({ serverUrl: fresh.url, poolSize: 2 });
  });

  afterAll(async () => {
    process.off('uncaughtExceptionMonitor', onCrash);
    await bouncer?.stop();
    await admin?.end();
    await fresh?.drop();
  });

  beforeEach(async () => {
    crashes.length = 0;
    await admin.query('truncate items');
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((db) => db.close()));
    expect(crashes).toEqual([]);
  });

  function makeDb(name: string, max = 5): { db: Database; probe: Probe } {
    const { driver, probe } = instrument(
      pg({
        connectionString: bouncer.through(fresh.url),
        max,
        acquireTimeoutMillis: 10_000,
        application_name: name,
      }),
    );
    const db = createDatabase({ driver, name });
    open.push(db);
    return { db, probe };
  }

  /** A plain node-postgres client through the same PgBouncer: "another client" of the pooler. */
  function otherClient(): pgLib.Pool {
    const pool = new pgLib.Pool({ connectionString: bouncer.through(fresh.url), max: 1 });
    pool.on('error', () => {});
    open.push({ close: () => pool.end() });
    return pool;
  }

  async function running(marker: string): Promise<number> {
    const { rows } = await admin.query(
      "select 1 from pg_stat_activity where datname = $1 and state = 'active' and query like $2",
      [fresh.name, `%${marker}%`],
    );
    return rows.length;
  }

  async function serverConnections(): Promise<number> {
    const { rows } = await admin.query(
      'select 1 from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [fresh.name],
    );
    // The admin pool's other connection may be on this database too.
    return rows.length;
  }

  async function adminConsole<Row>(command: string): Promise<Row[]> {
    const client = new pgLib.Client({ connectionString: bouncer.adminUrl });
    client.on('error', () => {});
    await client.connect();
    try {
      // Without values node-postgres sends a simple Query, the only protocol the console speaks.
      return (await client.query(command)).rows as Row[];
    } finally {
      await client.end().catch(() => {});
    }
  }

  async function committedTags(prefix: string): Promise<string[]> {
    const { rows } = await admin.query<{ tag: string }>(
      "select tag from items where tag like $1 || '%' order by tag",
      [prefix],
    );
    return rows.map((r) => r.tag);
  }

  it("with pooler: 'transaction', db.connection(fn) is refused (no session to keep), and transactions run as ever", async () => {
    const db = createDatabase({
      driver: pg({ connectionString: bouncer.through(fresh.url), max: 2, pooler: 'transaction' }),
      name: 'declared-pooler',
    });
    open.push(db);
    await expect(db.connection(() => db.query(sql`select 1`))).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      message: expect.stringContaining("transaction-mode pooler (pooler: 'transaction')"),
    });
    await db.transaction(async () => {
      await db.query(sql`insert into items (tag) values ('declared')`);
      // Inside a transaction one backend serves it all: db.connection(fn) just runs fn there.
      await db.connection(() => db.query(sql`select 1`));
    });
    const { rows } = await admin.query('select tag from items');
    expect(rows).toEqual([{ tag: 'declared' }]);
    expect(() => pg({ connectionString: fresh.url, pooler: 'session' as 'transaction' })).toThrow(
      TxScopeError,
    );
  });

  it('a timeout cancels the statement on the server through PgBouncer; the backend serves the next client cleanly', async () => {
    const { db, probe } = makeDb('pgb_timeout');
    const result = db.transaction(
      async () => {
        await db.query(sql`insert into items (tag) values ('timed out')`);
        await db.query('select pg_sleep(30) -- pgb_timeout');
      },
      // Long enough for the sleep to be seen running on a loaded machine.
      { timeoutMs: 1500 },
    );
    await until(async () => (await running('pgb_timeout')) === 1, 5000, 'the sleep to run');
    await expect(result).rejects.toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    // What the server says, not what the client was told.
    await until(async () => (await running('pgb_timeout')) === 0, 5000, 'the server to cancel pg_sleep');
    expect(probe.checkedOut).toBe(0);
    expect(await committedTags('timed')).toEqual([]);
    const other = otherClient();
    expect((await other.query('select 1 as n')).rows).toEqual([{ n: 1 }]);
  });

  it('an abort cancels the statement on the server through PgBouncer', async () => {
    const { db } = makeDb('pgb_abort');
    const controller = new AbortController();
    const scope = db.scope(() => db.transaction(() => db.query('select pg_sleep(30) -- pgb_abort')), {
      signal: controller.signal,
    });
    await until(async () => (await running('pgb_abort')) === 1, 5000, 'the sleep to run');
    controller.abort();
    await expect(scope).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await until(async () => (await running('pgb_abort')) === 0, 5000, 'the server to cancel pg_sleep');
  });

  it("a cancel never lands on another client's statement that runs on the same backend", async () => {
    // A pool of one server connection: the aborted transaction and the other client take turns
    // on the same backend, so a cancel aimed at the backend after the transaction ended would
    // hit the other client (what pg_cancel_backend(pid) did, 16 times out of 20).
    const small = await startPgBouncer({ serverUrl: fresh.url, poolSize: 1 });
    open.push({ close: () => small.stop() });
    const db = createDatabase({
      driver: pg({ connectionString: small.through(fresh.url), max: 2 }),
      name: 'pgb_cancel',
    });
    open.push(db);
    const other = new pgLib.Pool({ connectionString: small.through(fresh.url), max: 1 });
    other.on('error', () => {});
    open.push({ close: () => other.end() });
    const failures: string[] = [];
    let stop = false;
    const otherLoop = (async () => {
      let runs = 0;
      while (!stop) {
        runs++;
        await other.query('select pg_sleep(0.004)').catch((error: { code?: string }) => {
          failures.push(String(error.code));
        });
      }
      return runs;
    })();
    let aborted = 0;
    for (let attempt = 0; attempt < 40; attempt++) {
      const controller = new AbortController();
      const outcome = await db
        .scope(
          () =>
            db.transaction(async () => {
              const statement = db.query('select pg_sleep(0.003)');
              setTimeout(() => controller.abort(), 1 + (attempt % 4));
              await statement;
              await db.query('select 1');
            }),
          { signal: controller.signal },
        )
        .then(
          () => 'ok',
          (error: { code?: string }) => String(error.code),
        );
      if (outcome === 'ERR_ABORTED') aborted++;
      else expect(outcome).toBe('ok');
    }
    stop = true;
    const otherRuns = await otherLoop;
    expect(aborted).toBeGreaterThan(0);
    expect(otherRuns).toBeGreaterThan(0);
    expect(failures).toEqual([]);
    expect(db.stats().checkedOut).toBe(0);
  });

  it("a startup parameter PgBouncer does not know fails the first statement with PgBouncer's message", async () => {
    const db = createDatabase({
      driver: pg({ connectionString: bouncer.through(fresh.url), statement_timeout: 5000 }),
      name: 'pgb_startup',
    });
    open.push(db);
    // PgBouncer closes the connection with a FATAL error: a lost connection, its message the cause.
    const error = await db.query(sql`select 1 as n`).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    expect(String((error as TxScopeError).cause)).toMatch(/unsupported startup parameter: statement_timeout/);
    expect(db.stats().checkedOut).toBe(0);
  });

  /**
   * As many transactions as the client pool has connections, so all of them are in flight: each
   * inserts, then sleeps on the server. With PgBouncer's 2 server connections, 2 run on the
   * server and the rest wait in PgBouncer's queue with BEGIN sent.
   */
  const inFlight = 5;
  function load(db: Database, prefix: string): Promise<PromiseSettledResult<string>[]> {
    return Promise.allSettled(
      Array.from({ length: inFlight }, async (_, i) => {
        const tag = `${prefix}-${i}`;
        await db.transaction(async () => {
          await db.query(sql`insert into items (tag) values (${tag})`);
          // Long enough to still be running when the test has seen it and acted, on a loaded machine too.
          await db.query(`select pg_sleep(2) -- ${prefix}`);
        });
        return tag;
      }),
    );
  }

  /**
   * Every rejection is a lost connection (or an unknown commit) carrying the driver's error; what
   * committed is exactly what resolved (a transaction found dead at BEGIN, before anything of it
   * ran, may have been re-run on a fresh connection).
   */
  async function expectOnlyLosses(prefix: string, outcomes: PromiseSettledResult<string>[]): Promise<number> {
    let lost = 0;
    const committed: string[] = [];
    const unknown: string[] = [];
    outcomes.forEach((outcome, i) => {
      if (outcome.status === 'fulfilled') {
        committed.push(outcome.value);
        return;
      }
      const error = outcome.reason as TxScopeError;
      expect(error).toBeInstanceOf(TxScopeError);
      expect(['ERR_CONNECTION_LOST', 'ERR_COMMIT_UNKNOWN']).toContain(error.code);
      expect(classifyPostgresError(error.cause)).toBe('connection_lost');
      if (error.code === 'ERR_CONNECTION_LOST') lost++;
      else unknown.push(`${prefix}-${i}`);
    });
    // One in COMMIT's window may or may not have committed; nothing else may differ.
    const seen = await committedTags(`${prefix}-`);
    expect(seen.filter((tag) => !unknown.includes(tag))).toEqual(committed.sort());
    return lost;
  }

  async function expectRecovered(db: Database, probe: Probe, prefix: string): Promise<void> {
    await until(() => db.stats().checkedOut === 0 && probe.checkedOut === 0, 5000, 'every connection back');
    // The pool recovers by itself: the next transactions simply work.
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        db.transaction(() => db.query(sql`insert into items (tag) values (${`after-${prefix}-${i}`})`)),
      ),
    );
    expect(await committedTags(`after-${prefix}-`)).toHaveLength(8);
    expect(db.stats().checkedOut).toBe(0);
    expect(probe.checkedOut).toBe(0);
  }

  it("PgBouncer's KILL during load: in-flight transactions reject ERR_CONNECTION_LOST, the pool recovers", async () => {
    const { db, probe } = makeDb('pgb_kill');
    const outcomes = load(db, 'kill');
    await until(async () => (await running('-- kill')) === 2, 5000, 'two transactions on the server');
    await adminConsole(`KILL ${fresh.name}`);
    await adminConsole(`RESUME ${fresh.name}`);
    const settled = await outcomes;
    // At least the two that were running on the server (the others may have been re-run).
    expect(await expectOnlyLosses('kill', settled)).toBeGreaterThanOrEqual(2);
    const lost = settled.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    // PgBouncer's own FATAL 08P01 "database removed" (or the socket closing) as the cause.
    expect(String((lost.reason as TxScopeError).cause)).toMatch(/database removed|Connection terminated/);
    await expectRecovered(db, probe, 'kill');
  });

  it('RECONNECT during load: running transactions finish, later ones get new server connections', async () => {
    const { db, probe } = makeDb('pgb_reconnect');
    const before = await admin.query<{ pid: number }>(
      'select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [fresh.name],
    );
    const outcomes = load(db, 'reconnect');
    await until(async () => (await running('-- reconnect')) === 2, 5000, 'two transactions on the server');
    await adminConsole(`RECONNECT ${fresh.name}`);
    const settled = await outcomes;
    expect(settled.filter((o) => o.status === 'rejected')).toEqual([]);
    expect(await committedTags('reconnect-')).toHaveLength(inFlight);
    const pidAfter = Number(
      (await db.query<{ pid: number }>(sql`select pg_backend_pid() as pid`)).rows[0]?.pid,
    );
    expect(before.rows.map((r) => r.pid)).not.toContain(pidAfter);
    await expectRecovered(db, probe, 'reconnect');
  });

  it('a PgBouncer restart during load: in-flight transactions reject ERR_CONNECTION_LOST, the process and the pool recover', async () => {
    const { db, probe } = makeDb('pgb_restart');
    const outcomes = load(db, 'restart');
    await until(async () => (await running('-- restart')) === 2, 5000, 'two transactions on the server');
    await bouncer.restart();
    expect(await expectOnlyLosses('restart', await outcomes)).toBeGreaterThanOrEqual(2);
    // The server side let go of what the old PgBouncer held.
    await until(async () => (await running('-- restart')) === 0, 5000, 'the server to end the sleeps');
    await expectRecovered(db, probe, 'restart');
    expect(await serverConnections()).toBeLessThanOrEqual(bouncer.poolSize + 1);
  });
});
