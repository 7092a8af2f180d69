/**
 * The shared integration scenarios: repositories are module functions over one module-level
 * client (Kysely, Drizzle or Prisma), and they join the ambient transaction. One suite,
 * parameterized by client and by driver; each client's file runs it (test/integrations.*.test.ts),
 * so the three run in parallel. Assertions are on what the database and the driver saw.
 */

import { type Database, Transactional } from 'txscope';
import { withRollback } from 'txscope/testing';
import { expect, it } from 'vitest';
import { type DriverEnv, forEachDriver, type Probe } from '../drivers.js';
import { type Client, type ClientCase, prepareSchema } from './index.js';

const boom = new Error('boom');

/**
 * Runs the shared scenarios for `client` against every driver, then `more` (the client's own
 * tests) in the same describe, so they share its database (a PGlite start or a CREATE DATABASE
 * costs more than the tests).
 */
export function integrationSuite(client: ClientCase, more?: (env: DriverEnv) => void): void {
  forEachDriver(`integration ${client.name}`, (env) => {
    suite(client, env);
    more?.(env);
  });
}

function suite(client: ClientCase, env: DriverEnv): void {
  const isolated = env.capabilities.observerIsolated;
  const multi = env.capabilities.multiConnection;

  async function setup(): Promise<{ db: Database; probe: Probe; c: Client }> {
    const { db, probe } = env.createDb();
    await prepareSchema(env, db);
    const c = client.create(db);
    // The first statement of a client may warm it up (Prisma compiles, Kysely initialises): not counted.
    await c.repos.userNames();
    probe.reset();
    return { db, probe, c };
  }

  const names = async (table: 'users' | 'audit', column: 'name' | 'event') =>
    (await env.observe<Record<string, string>>(`select ${column} from ${table} order by id`)).map(
      (r) => r[column],
    );
  const count = async (table: string) =>
    Number((await env.observe<{ n: number | string }>(`select count(*) as n from ${table}`))[0]?.n);
  const begins = (db: Database, probe: Probe) =>
    probe.statements.filter((s) => s === db.dialect.begin({ isolation: undefined, readOnly: false })[0])
      .length;
  const commits = (db: Database, probe: Probe) =>
    probe.statements.filter((s) => s === db.dialect.commit).length;

  it('a @Transactional() service calling three repositories commits once, on one connection', async () => {
    const { db, probe, c } = await setup();
    const seenBeforeCommit: number[] = [];
    // @Transactional() in its higher-order form (the test transformer has no decorator syntax).
    const placeOrder = Transactional()(async (name: string) => {
      const id = await c.repos.createUser(name);
      await c.repos.addOrder(id, 42);
      await c.repos.audit(`order for ${name}`);
      if (isolated) seenBeforeCommit.push(await count('users'), await count('orders'), await count('audit'));
      return id;
    });
    const id = await placeOrder('ada');
    expect(typeof id).toBe('number');
    if (isolated) expect(seenBeforeCommit).toEqual([0, 0, 0]);
    expect(await names('users', 'name')).toEqual(['ada']);
    expect(await count('orders')).toBe(1);
    expect(await names('audit', 'event')).toEqual(['order for ada']);
    expect(probe.acquires).toBe(1);
    expect(begins(db, probe)).toBe(1);
    expect(commits(db, probe)).toBe(1);
    expect(probe.checkedOut).toBe(0);
  });

  it('an error in the service rolls back all three repositories', async () => {
    const { db, probe, c } = await setup();
    const placeOrder = db.transactional()(async (name: string) => {
      const id = await c.repos.createUser(name);
      await c.repos.addOrder(id, 42);
      await c.repos.audit(`order for ${name}`);
      throw boom;
    });
    await expect(placeOrder('ada')).rejects.toBe(boom);
    expect([await count('users'), await count('orders'), await count('audit')]).toEqual([0, 0, 0]);
    expect(probe.acquires).toBe(1);
    expect(probe.statements.filter((s) => s === db.dialect.rollback)).toHaveLength(1);
    expect(commits(db, probe)).toBe(0);
  });

  it('a nested boundary is a savepoint: its failure undoes only its own repositories', async () => {
    const { db, probe, c } = await setup();
    await db.transaction(async () => {
      await c.repos.createUser('outer');
      await db
        .transaction(
          async () => {
            await c.repos.createUser('inner');
            await c.repos.audit('inner');
            throw boom;
          },
          { propagation: 'nested' },
        )
        .catch(() => 'handled');
      await c.repos.audit('after');
    });
    expect(await names('users', 'name')).toEqual(['outer']);
    expect(await names('audit', 'event')).toEqual(['after']);
    expect(probe.statements.some((s) => /^ROLLBACK TO SAVEPOINT /i.test(s))).toBe(true);
    expect(probe.acquires).toBe(1);
  });

  it("the library's own transaction is txscope's: commit, rollback, one connection", async () => {
    const { db, probe, c } = await setup();
    const id = await c.ownTransaction(async (tx) => {
      const user = await tx.createUser('ada');
      await tx.addOrder(user, 1);
      expect(db.current.inTransaction).toBe(client.callbackJoins);
      return user;
    });
    expect(typeof id).toBe('number');
    await expect(
      c.ownTransaction(async (tx) => {
        await tx.createUser('bob');
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await names('users', 'name')).toEqual(['ada']);
    expect(await count('orders')).toBe(1);
    expect(begins(db, probe)).toBe(2);
    expect(commits(db, probe)).toBe(1);
    expect(probe.acquires).toBe(2);
  });

  it.runIf(client.callbackJoins)(
    "module-level repositories join the library's own transaction when called in its callback",
    async () => {
      const { probe, c } = await setup();
      await expect(
        c.ownTransaction(async (tx) => {
          const id = await tx.createUser('ada');
          await c.repos.addOrder(id, 1);
          await c.repos.audit('module-level');
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect([await count('users'), await count('orders'), await count('audit')]).toEqual([0, 0, 0]);
      expect(probe.acquires).toBe(1);
    },
  );

  it("the library's own transaction inside a txscope transaction is a savepoint", async () => {
    const { db, probe, c } = await setup();
    await db.transaction(async () => {
      await c.repos.createUser('outer');
      await c
        .ownTransaction(async (tx) => {
          await tx.createUser('inner');
          throw boom;
        })
        .catch(() => 'handled');
      await c.ownTransaction((tx) => tx.audit('kept'));
    });
    expect(await names('users', 'name')).toEqual(['outer']);
    expect(await names('audit', 'event')).toEqual(['kept']);
    expect(begins(db, probe)).toBe(1);
    // At least the two of the library's transactions (Prisma adds its own around a MySQL create).
    expect(probe.statements.filter((s) => /^SAVEPOINT /i.test(s)).length).toBeGreaterThanOrEqual(2);
    expect(probe.acquires).toBe(1);
  });

  it.runIf(multi)('requires_new commits on its own while the outer transaction rolls back', async () => {
    const { db, probe, c } = await setup();
    await expect(
      db.transaction(async () => {
        await c.repos.createUser('doomed');
        await db.transaction(() => c.repos.audit('kept'), { propagation: 'requires_new' });
        if (isolated) expect(await names('audit', 'event')).toEqual(['kept']);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await count('users')).toBe(0);
    expect(await names('audit', 'event')).toEqual(['kept']);
    expect(probe.acquires).toBe(2);
    expect(probe.checkedOut).toBe(0);
  });

  it('Promise.all inside a transaction stays on its one connection', async () => {
    const { db, probe, c } = await setup();
    await db.transaction(async () => {
      const ids = await Promise.all([
        c.repos.createUser('a'),
        c.repos.createUser('b'),
        c.repos.createUser('c'),
      ]);
      await Promise.all(ids.map((id) => c.repos.addOrder(id, 5)));
    });
    expect(await names('users', 'name')).toEqual(expect.arrayContaining(['a', 'b', 'c']));
    expect(await count('orders')).toBe(3);
    expect(probe.acquires).toBe(1);
    expect(begins(db, probe)).toBe(1);
  });

  it('outside a transaction each statement runs in autocommit on a borrowed connection', async () => {
    const { db, probe, c } = await setup();
    const id = await c.repos.createUser('solo');
    if (isolated) expect(await names('users', 'name')).toEqual(['solo']);
    await c.repos.addOrder(id, 1);
    if (!client.wrapsWrites(db)) expect(begins(db, probe)).toBe(0);
    expect(probe.checkedOut).toBe(0);
    expect(probe.releases).toBe(probe.acquires);
    expect(await count('orders')).toBe(1);
  });

  it('inside a test transaction (txscope/testing): repositories and the library’s own transaction join it, nothing is committed', async () => {
    const { db, probe, c } = await setup();
    await withRollback(db, async () => {
      const id = await c.repos.createUser('in a test');
      await c.ownTransaction(async (tx) => {
        await tx.addOrder(id, 5);
        await tx.audit('own transaction');
      });
      expect(await c.repos.userNames()).toEqual(['in a test']);
      if (isolated) expect(await count('users')).toBe(0);
    });
    expect(probe.acquires).toBe(1);
    expect(probe.statements.filter((s) => /^SAVEPOINT/i.test(s)).length).toBeGreaterThan(0);
    expect(await c.repos.userNames()).toEqual([]);
    expect(await count('orders')).toBe(0);
    expect(await count('audit')).toBe(0);
  });
}
