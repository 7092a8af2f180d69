/**
 * The fault soak (rules 13 and 14 together): concurrent money transfers at SERIALIZABLE
 * with retry on a small pool, while backends are terminated and proxied connections cut
 * at random. Money is never created or lost, each transfer committed once or rejected
 * with a TxScopeError, and nothing is left checked out.
 */
import pgLib from 'pg';
import { createDatabase, type Database, sql, TxScopeError } from 'txscope';
import { pg } from 'txscope/pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PgBouncer, startPgBouncer } from '../setup/pgbouncer.js';
import { type FreshDatabase, freshPgDatabase } from '../support/databases.js';
import { instrument, type Probe, until } from '../support/drivers.js';
import { runPgBouncer } from '../support/pooler.js';
import { type FaultProxy, startProxy } from '../support/proxy.js';

const ACCOUNTS = 20;
const OPENING_BALANCE = 1000;
const TRANSFERS = 300;
const APP = 'txscope_soak';
/** The fault loop stops when the transfers are done, or after this many faults at most. */
const MAX_FAULTS = 150;

let fresh: FreshDatabase;
let admin: pgLib.Pool;
let proxy: FaultProxy;
let db: Database;
let probe: Probe;
let bouncer: PgBouncer | undefined;
const crashes: unknown[] = [];
const onCrash = (error: unknown): void => {
  crashes.push(error);
};

function randomInt(n: number): number {
  return Math.floor(Math.random() * n);
}

interface Outcome {
  id: number;
  runs: number;
  error?: unknown;
}

async function transfer(id: number): Promise<Outcome> {
  const from = 1 + randomInt(ACCOUNTS);
  const to = 1 + ((from - 1 + 1 + randomInt(ACCOUNTS - 1)) % ACCOUNTS);
  const amount = 1 + randomInt(100);
  const outcome: Outcome = { id, runs: 0 };
  try {
    await db.transaction(
      async () => {
        outcome.runs++;
        await db.query(sql`update accounts set balance = balance - ${amount} where id = ${from}`);
        await db.query(sql`update accounts set balance = balance + ${amount} where id = ${to}`);
        await db.query(
          sql`insert into transfers (id, src, dst, amount) values (${id}, ${from}, ${to}, ${amount})`,
        );
      },
      { isolation: 'serializable', retry: { attempts: 10, baseDelayMs: 2, maxDelayMs: 50 } },
    );
  } catch (error) {
    outcome.error = error;
  }
  return outcome;
}

/** Every few ms: terminate a random backend of the pool, or cut a random proxied connection. */
async function faults(done: () => boolean): Promise<{ kills: number; cuts: number }> {
  let kills = 0;
  let cuts = 0;
  for (let i = 0; i < MAX_FAULTS && !done(); i++) {
    // Pacing, not waiting for a state.
    await new Promise((resolve) => setTimeout(resolve, 3 + randomInt(10)));
    if (done()) break;
    if (Math.random() < 0.5) {
      const { rows } = await admin.query<{ killed: boolean }>(
        'select pg_terminate_backend(pid) as killed from pg_stat_activity ' +
          'where datname = $1 and application_name = $2 and pid <> pg_backend_pid() order by random() limit 1',
        [fresh.name, APP],
      );
      if (rows[0]?.killed) kills++;
    } else if (cutRandom()) {
      cuts++;
    }
  }
  return { kills, cuts };
}

/**
 * Cuts a random proxied connection. Behind PgBouncer a connection that carries a CancelRequest
 * (the server side never answers one: no message back) is spared: PgBouncer 1.18 crashes when a
 * cancel's client goes away before PgBouncer has passed the cancel on (pgbouncer/pgbouncer#801,
 * "disconnect_client(): bad client state: 0"), and txscope never closes that socket itself before
 * PgBouncer does.
 */
function cutRandom(): boolean {
  if (bouncer === undefined) return proxy.cutRandom();
  const sessions = proxy.connections.filter((c) => c.open && c.messages['server-to-client'] > 0);
  const chosen = sessions[randomInt(sessions.length)];
  chosen?.cut();
  return chosen !== undefined;
}

function describeError(error: unknown): string {
  if (error instanceof TxScopeError) return error.code;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `${error.constructor.name}${code === undefined ? '' : `(${String(code)})`}: ${error.message}`;
  }
  return String(error);
}

/** Directly, and through PgBouncer in transaction mode (rule 21). */
const targets = [
  { through: 'server', available: true },
  { through: 'pgbouncer', available: runPgBouncer() !== null },
] as const;

for (const { through, available } of targets) {
  describe.runIf(available)(`fault soak [${through === 'server' ? 'pg' : 'pgbouncer'}]`, () => {
    beforeAll(async () => {
      process.on('uncaughtExceptionMonitor', onCrash);
      fresh = await freshPgDatabase();
      admin = new pgLib.Pool({ connectionString: fresh.url, max: 2, application_name: 'txscope_soak_admin' });
      admin.on('error', () => {});
      await admin.query('create table accounts (id int primary key, balance int not null)');
      await admin.query(
        'create table transfers (id int primary key, src int not null, dst int not null, amount int not null)',
      );
      await admin.query('insert into accounts select i, $1 from generate_series(1, $2) as i', [
        OPENING_BALANCE,
        ACCOUNTS,
      ]);
      // The proxy sits between the pool and the server, or between the pool and PgBouncer.
      // A PgBouncer of this file's own: its log is at hand when something goes wrong.
      if (through === 'pgbouncer') bouncer = await startPgBouncer({ serverUrl: fresh.url });
      const url = bouncer?.through(fresh.url) ?? fresh.url;
      const target = new URL(url);
      proxy = await startProxy({ target: { host: target.hostname, port: Number(target.port || 5432) } });
      // The default acquire timeout (10 s): on a loaded machine a shorter one turns most of the
      // queue into ERR_POOL_TIMEOUT (allowed, but it would leave little of the soak to check).
      const instrumented = instrument(
        pg({ connectionString: proxy.url(url), max: 5, application_name: APP }),
      );
      probe = instrumented.probe;
      db = createDatabase({ driver: instrumented.driver, name: 'soak' });
    });

    afterAll(async () => {
      process.off('uncaughtExceptionMonitor', onCrash);
      await db?.close();
      await proxy?.close();
      if (process.env.TXSCOPE_SOAK_VERBOSE && bouncer)
        console.info(`[soak] pgbouncer log:\n${await bouncer.log()}`);
      await bouncer?.stop();
      bouncer = undefined;
      await admin?.end();
      await fresh?.drop();
    });

    it('300 transfers at SERIALIZABLE with retry survive backends killed and connections cut', async () => {
      let finished = false;
      const faulting = faults(() => finished);
      const outcomes = await Promise.all(Array.from({ length: TRANSFERS }, (_, i) => transfer(i + 1)));
      finished = true;
      const { kills, cuts } = await faulting;

      // Money is neither created nor lost, and every committed transfer is in the log exactly once
      // with the balances it moved.
      const { rows: totals } = await admin.query<{ total: string }>(
        'select sum(balance) as total from accounts',
      );
      expect(Number(totals[0]?.total)).toBe(ACCOUNTS * OPENING_BALANCE);
      const { rows: drift } = await admin.query(
        `select a.id from accounts a
       left join (select src as id, -sum(amount) as delta from transfers group by src
                  union all select dst, sum(amount) from transfers group by dst) t on t.id = a.id
     group by a.id, a.balance having a.balance <> $1 + coalesce(sum(t.delta), 0)`,
        [OPENING_BALANCE],
      );
      expect(drift).toEqual([]);

      const { rows: logged } = await admin.query<{ id: number }>('select id from transfers');
      const inLog = new Set(logged.map((r) => r.id));
      const codes: Record<string, number> = {};
      const escaped: string[] = [];
      let committed = 0;
      for (const o of outcomes) {
        expect(o.runs).toBeGreaterThanOrEqual(1);
        if (o.error === undefined) {
          committed++;
          expect(inLog.has(o.id), `transfer ${o.id} resolved but is not in the log`).toBe(true);
          continue;
        }
        const what = describeError(o.error);
        codes[what] = (codes[what] ?? 0) + 1;
        if (!(o.error instanceof TxScopeError)) {
          escaped.push(`transfer ${o.id}: ${what}`);
          continue;
        }
        // ERR_COMMIT_UNKNOWN may have committed or not; any other rejection committed nothing.
        if (o.error.code !== 'ERR_COMMIT_UNKNOWN') {
          expect(inLog.has(o.id), `transfer ${o.id} rejected ${o.error.code} but is in the log`).toBe(false);
        }
      }
      if (process.env.TXSCOPE_SOAK_VERBOSE) {
        console.info(
          `[soak] committed ${committed}/${TRANSFERS}, logged ${inLog.size}, faults: ${kills} kills, ${cuts} cuts, ` +
            `rejections: ${JSON.stringify(codes)}, fn runs: ${outcomes.reduce((n, o) => n + o.runs, 0)}, ` +
            `destroyed: ${probe.destroyed}`,
        );
      }
      // Only TxScopeErrors reject: no raw driver error escapes the fault handling.
      expect(escaped).toEqual([]);
      // The faults did hit: the soak is not vacuous.
      expect(kills + cuts).toBeGreaterThan(0);

      expect(db.stats().checkedOut).toBe(0);
      expect(probe.checkedOut).toBe(0);
      // The pool keeps only live connections once the last fault has been noticed by both sides.
      // Behind PgBouncer the server holds PgBouncer's connections, at most its pool, not the client's.
      if (through === 'pgbouncer') {
        await until(
          () => proxy.connections.length === db.stats().pool.total,
          5000,
          'the pool and the proxy to agree',
        );
        const { rows } = await admin.query<{ n: string }>(
          'select count(*) as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
          [fresh.name],
        );
        expect(Number(rows[0]?.n)).toBeLessThanOrEqual((bouncer?.poolSize ?? 0) + 1);
        // A backend killed at the end takes its client's connection to PgBouncer down a moment
        // later (PgBouncer closes it): an autocommit statement taking that one may still reject
        // ERR_CONNECTION_LOST, and only that, until the pool has let it go.
        await until(
          () =>
            db.query('select 1 as ok').then(
              () => true,
              (error: unknown) => {
                if (process.env.TXSCOPE_SOAK_VERBOSE)
                  console.info(
                    `[soak] after: ${String((error as Error).cause)} ${JSON.stringify(db.stats().pool)} proxy ${proxy.connections.length}`,
                  );
                expect(error).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
                return false;
              },
            ),
          5000,
          'the pool to hand out only live connections',
        );
      } else
        await until(
          async () => {
            const { rows } = await admin.query<{ n: string }>(
              'select count(*) as n from pg_stat_activity where datname = $1 and application_name = $2',
              [fresh.name, APP],
            );
            return (
              Number(rows[0]?.n) === db.stats().pool.total &&
              proxy.connections.length === db.stats().pool.total
            );
          },
          5000,
          'the pool, the proxy and the server to agree on the live connections',
        );
      expect((await db.query<{ ok: number }>('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
      await db.transaction(() => db.query(sql`update accounts set balance = balance where id = 1`));
      expect(crashes).toEqual([]);
    });
  });
}
