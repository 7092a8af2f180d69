/** Rule 15: pool limits, recycling, clean release, and deadlock detection for requires_new. */

import { createDatabase, sql } from 'txscope';
import { expect, it } from 'vitest';
import { forEachDriver, instrument, until } from '../support/drivers.js';
import { postgresServerDriver } from '../support/postgresjs-case.js';
import { idleInTransaction, insertItem, itemsTable } from '../support/schema.js';

function gate(): { open: () => void; wait: Promise<void> } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, wait };
}

forEachDriver('pool', (env) => {
  const observe = (text: string) => env.observe<Record<string, unknown>>(text);

  it.runIf(env.capabilities.multiConnection)(
    'requires_new that can never be served rejects ERR_POOL_DEADLOCK at once, not after the acquire timeout',
    async () => {
      const { db, probe } = env.createDb({ max: 2 });
      await itemsTable(db);
      const bothBegun = gate();
      let begun = 0;
      const outer = (name: string) =>
        db.scope(() =>
          db.transaction(async () => {
            await insertItem(db, name);
            if (++begun === 2) bothBegun.open();
            await bothBegun.wait;
            await db.transaction(() => insertItem(db, `${name}:audit`), { propagation: 'requires_new' });
          }),
        );
      // The harness's drivers wait 5 s for a connection: a hang would show as a pool timeout.
      const results = await Promise.allSettled([outer('a'), outer('b')]);
      const codes = results.map((r) =>
        r.status === 'rejected' ? (r.reason as { code?: string }).code : 'ok',
      );
      expect(codes).toContain('ERR_POOL_DEADLOCK');
      expect(codes).not.toContain('ERR_POOL_TIMEOUT');
      await until(() => probe.checkedOut === 0, 5000, 'release');
    },
  );

  it('a connection goes back only clean: an open transaction left by hand is rolled back first', async () => {
    const { db, probe } = env.createDb({ max: 1 });
    await itemsTable(db);
    probe.reset();
    await db.connection(async () => {
      await db.query(db.dialect.begin({ isolation: undefined, readOnly: false })[0] as string);
      await insertItem(db, 'left open');
    });
    expect(probe.statements.at(-1)).toBe(db.dialect.rollback);
    expect(probe.destroyed).toBe(0);
    expect(await idleInTransaction(observe, db.dialect.name)).toBe(0);
    expect(await env.observe('select tag from items')).toEqual([]);
    await db.transaction(() => insertItem(db, 'next'));
    expect((await env.observe<{ tag: string }>('select tag from items')).map((r) => r.tag)).toEqual(['next']);
  });

  it.runIf(env.name === 'pg' || env.name === 'pgbouncer' || env.name === 'postgresjs')(
    'acquireTimeoutMillis rejects ERR_POOL_TIMEOUT with the pool counts in the message',
    async () => {
      const { driver } = instrument(
        postgresServerDriver(env.name, { url: env.url as string, max: 1, acquireTimeoutMillis: 200 }),
      );
      const db = createDatabase({ driver, name: 'tiny' });
      const holding = gate();
      const release = gate();
      const holder = db.scope(() =>
        db.transaction(async () => {
          await db.query(sql`select 1 as one`);
          holding.open();
          await release.wait;
        }),
      );
      await holding.wait;
      const error = await db.scope(() => db.query(sql`select 2 as two`)).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'ERR_POOL_TIMEOUT' });
      expect((error as Error).message).toMatch(/pool of 1, 1 open, 0 idle, \d+ waiting/);
      release.open();
      await holder;
      await db.close();
    },
  );

  // Behind PgBouncer it recycles the client's connections to the pooler; the backend (whose pid
  // this observes) is PgBouncer's to keep, by its own server_lifetime.
  it.runIf(env.name === 'pg' || env.name === 'postgresjs')(
    'maxLifetimeSeconds recycles connections',
    async () => {
      const db = createDatabase({
        driver: postgresServerDriver(env.name, { url: env.url as string, max: 1, lifetimeSeconds: 1 }),
        name: 'recycled',
      });
      const pid = async () =>
        Number((await db.query<{ pid: number }>(sql`select pg_backend_pid() as pid`)).rows[0]?.pid);
      const first = await pid();
      await until(async () => (await pid()) !== first, 5000, 'a recycled connection');
      await db.close();
    },
  );
});

it('PGlite: a turn on its one connection waits at most acquireTimeoutMillis', async () => {
  const { pglite } = await import('txscope/pglite');
  const db = createDatabase({
    driver: pglite(undefined, { acquireTimeoutMillis: 100 }),
    name: 'one-connection',
  });
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let holding!: () => void;
  const isHolding = new Promise<void>((resolve) => {
    holding = resolve;
  });
  const holder = db.transaction(async () => {
    await db.query(sql`select 1 as one`);
    holding();
    await held;
  });
  await isHolding;
  await expect(db.query(sql`select 2 as two`)).rejects.toMatchObject({ code: 'ERR_POOL_TIMEOUT' });
  release();
  await holder;
  expect((await db.query<{ two: number }>(sql`select 2 as two`)).rows).toEqual([{ two: 2 }]);
  await db.close();
});
