/**
 * Rule 20 without a replica cluster: option checks, what a database without replicas keeps
 * (nothing), a replica that is never reachable (the primary serves, with no error), and the LSN
 * comparison. The real-replica tests are in replicas.test.ts.
 */
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { createDatabase, type Database, ErrorCode } from 'txscope';
import { middleware } from 'txscope/express';
import { withScope } from 'txscope/http';
import { mysql } from 'txscope/mysql';
import { pg, postgresDialect } from 'txscope/pg';
import { sqlite } from 'txscope/sqlite';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type FreshDatabase, freshMysqlDatabase, freshPgDatabase } from '../support/databases.js';

let fresh: FreshDatabase;
const opened: Database[] = [];

beforeAll(async () => {
  fresh = await freshPgDatabase();
});

afterAll(async () => {
  for (const db of opened) await db.close().catch(() => {});
  await fresh.drop();
});

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 1));
    });
  });
}

describe('replicas options', () => {
  test('replicas must be drivers of the primary dialect, maxReplicaLagMs a positive number', () => {
    const driver = pg({ connectionString: fresh.url });
    const invalid = { code: ErrorCode.INVALID_OPTION };
    expect(() => createDatabase({ driver, replicas: 'x' as never })).toThrow(
      expect.objectContaining(invalid),
    );
    expect(() => createDatabase({ driver, replicas: [{}] as never })).toThrow(/replicas\[0\]/);
    expect(() => createDatabase({ driver, replicas: [sqlite(':memory:')] })).toThrow(/a sqlite driver/);
    expect(() => createDatabase({ driver, replicas: [driver] })).toThrow(/the primary driver itself/);
    expect(() => createDatabase({ driver, maxReplicaLagMs: -1 })).toThrow(/maxReplicaLagMs/);
    expect(() => middleware(createDatabase({ driver }), { readYourWrites: { cookie: 'a b' } })).toThrow(
      /readYourWrites\.cookie/,
    );
    expect(() => middleware(createDatabase({ driver }), { readYourWrites: { maxAgeSeconds: 0 } })).toThrow(
      /maxAgeSeconds/,
    );
  });

  test('a database without replicas reports no targets', async () => {
    const db = createDatabase({ driver: pg({ connectionString: fresh.url }) });
    opened.push(db);
    await db.transaction(() => db.query('select 1'), { readOnly: true });
    expect(db.stats().targets).toBeUndefined();
  });

  test('a replica that never answers: the primary serves every read-only transaction, with no error', async () => {
    const port = await closedPort();
    const db = createDatabase({
      driver: pg({ connectionString: fresh.url }),
      replicas: [pg({ connectionString: `postgres://postgres:pw-never-shown@127.0.0.1:${port}/nowhere` })],
    });
    opened.push(db);
    for (let i = 0; i < 5; i++) {
      const { rows } = await db.transaction(
        () => db.query<{ standby: boolean }>('select pg_is_in_recovery() as standby'),
        { readOnly: true },
      );
      expect(rows[0]?.standby).toBe(false);
    }
    const deadline = Date.now() + 10_000;
    while (db.stats().targets?.[1]?.health !== 'down' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const targets = db.stats().targets ?? [];
    expect(targets.map((t) => [t.label, t.health])).toEqual([
      ['primary', 'healthy'],
      [`nowhere@127.0.0.1:${port}`, 'down'],
    ]);
    expect(targets[0]?.transactions).toBe(5);
    expect(JSON.stringify(targets)).not.toContain('pw-never-shown');
  });
});

describe('readYourWrites in a header', () => {
  test('a request that committed a write answers with the position; one that only read, or brought it back, does not', async () => {
    const db = createDatabase({
      driver: pg({ connectionString: fresh.url }),
      replicas: [pg({ connectionString: `postgres://postgres@127.0.0.1:${await closedPort()}/nowhere` })],
    });
    opened.push(db);
    await db.query('create table if not exists notes (id serial primary key)');
    const server = createHttpServer(
      withScope(
        db,
        async (req, res) => {
          if (req.method === 'POST') await db.transaction(() => db.query('insert into notes default values'));
          else await db.transaction(() => db.query('select count(*) from notes'), { readOnly: true });
          res.end('ok');
        },
        { readYourWrites: { header: 'x-txscope-position' } },
      ),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const written = await fetch(url, { method: 'POST' });
      const position = written.headers.get('x-txscope-position');
      expect(position).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(written.headers.get('set-cookie')).toBeNull();
      const read = await fetch(url);
      expect(read.headers.get('x-txscope-position')).toBeNull();
      const echoed = await fetch(url, { headers: { 'x-txscope-position': position as string } });
      expect(echoed.headers.get('x-txscope-position')).toBeNull();
      // The next write moves it forward.
      const again = await fetch(url, {
        method: 'POST',
        headers: { 'x-txscope-position': position as string },
      });
      const next = again.headers.get('x-txscope-position') as string;
      expect(postgresDialect.replication?.reached(next, position as string)).toBe(true);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('MySQL/MariaDB replicas (no positions: the documented gap)', () => {
  // Not a real replica (the suite has no MariaDB one): a second database on the same server, told
  // apart by a marker row. What it shows: routing, health by reachability, and a scope that wrote
  // reading from the primary, since the MySQL dialect has no positions to wait for.
  test('read-only transactions go to the replica until the scope writes, then to the primary', async (context) => {
    const [primary, replica] = await Promise.all([freshMysqlDatabase(), freshMysqlDatabase()]);
    if (primary === null || replica === null) {
      context.skip();
      return;
    }
    try {
      const setup = [primary, replica].map((d) => createDatabase({ driver: mysql({ uri: d.url }) }));
      for (const [i, d] of setup.entries()) {
        await d.query('create table marker (target varchar(10))');
        await d.query('insert into marker values (?)', [i === 0 ? 'primary' : 'replica']);
        await d.close();
      }
      const db = createDatabase({
        driver: mysql({ uri: primary.url }),
        replicas: [mysql({ uri: replica.url })],
      });
      opened.push(db);
      const target = () =>
        db.transaction(
          async () => (await db.query<{ target: string }>('select target from marker')).rows[0]?.target,
          {
            readOnly: true,
          },
        );
      const deadline = Date.now() + 10_000;
      while ((await target()) !== 'replica' && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(await target()).toBe('replica');
      await db.scope(async () => {
        expect(await target()).toBe('replica');
        await db.transaction(() => db.query("insert into marker values ('x')"));
        expect(await target()).toBe('primary');
      });
      expect(db.stats().targets?.map((t) => [t.role, t.health, t.lagMs])).toEqual([
        ['primary', 'healthy', null],
        ['replica', 'healthy', 0],
      ]);
    } finally {
      await Promise.all([primary.drop(), replica.drop()]);
    }
  });
});

describe('PostgreSQL positions', () => {
  const replication = postgresDialect.replication;
  test('LSNs compare by their two halves, not as text', () => {
    expect(replication?.reached('0/3000148', '0/3000148')).toBe(true);
    expect(replication?.reached('0/A000000', '0/9FFFFFF')).toBe(true);
    expect(replication?.reached('1/0', '0/FFFFFFFF')).toBe(true);
    expect(replication?.reached('0/FFFFFFFF', '1/0')).toBe(false);
    expect(replication?.reached('0/3000148', 'garbage')).toBe(false);
    expect(replication?.isPosition('16/B374D848')).toBe(true);
    expect(replication?.isPosition('16/B374D848; drop')).toBe(false);
  });
});
