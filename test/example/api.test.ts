/**
 * The example app's HTTP API, served in this process and driven with fetch, every test inside a
 * test transaction (`rollbackAfterEach` from `txscope/testing`): the requests see each other's
 * rows within a test, the services' own transactions are savepoints whose after-commit callbacks
 * still run, and nothing is ever committed. The README's testing section is this file.
 *
 * `TXSCOPE_EXAMPLE_ISOLATION=truncate` runs the same tests the way users isolate tests without
 * txscope/testing (everything committed, tables truncated after each test), for the timing the
 * docs report.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { sql } from 'txscope';
import { rollbackAfterEach } from 'txscope/testing';
import { afterAll, afterEach, aroundEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { freshPgDatabase } from '../support/databases.js';
import { buildExample } from '../support/example-app.js';

const truncating = process.env.TXSCOPE_EXAMPLE_ISOLATION === 'truncate';

// The example as tsc builds it (vitest's transform has no TC39 decorators); its `txscope` imports
// resolve to the same sources as this file's. Its db module reads DATABASE_URL on first import.
await buildExample();
const fresh = await freshPgDatabase();
process.env.DATABASE_URL = fresh.url;
const example = '../../examples/user-service/dist';
const { db } = (await import(`${example}/db.js`)) as typeof import('../../examples/user-service/src/db.js');
const { migrate } = (await import(
  `${example}/schema.js`
)) as typeof import('../../examples/user-service/src/schema.js');
const { createApp } = (await import(
  `${example}/app.js`
)) as typeof import('../../examples/user-service/src/app.js');
const { mailer } = (await import(
  `${example}/mailer.js`
)) as typeof import('../../examples/user-service/src/mailer.js');

if (truncating) {
  // What users do without test transactions: each test in a scope of its own, the tables emptied after it.
  aroundEach((runTest) => db.scope(runTest));
  afterEach(() =>
    db.detached(async () => {
      await db.query(sql`truncate users, profiles, audit_log restart identity cascade`);
      await db.query(sql`update accounts set balance = 1000`);
    }),
  );
} else {
  // aroundEach runs each test inside its test transaction: the test body may query the strict db.
  rollbackAfterEach(db, { aroundEach });
}

let server: Server;
let baseUrl: string;
const observer = new pg.Pool({ connectionString: fresh.url, max: 1 });

beforeAll(async () => {
  await migrate();
  const { app, activity } = createApp();
  server = app.listen(0, '127.0.0.1');
  await new Promise((listening) => server.once('listening', listening));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  server.once('close', () => activity.close());
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((closed) => server.close(closed));
  await db.close();
  await observer.end();
  await fresh.drop();
});

beforeEach(() => {
  mailer.sent.length = 0;
});

async function call(method: string, path: string, body?: unknown) {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** What another connection sees: with test transactions, never anything a test wrote. */
async function committedUsers(): Promise<number> {
  const { rows } = await observer.query<{ n: number }>('select count(*)::int as n from users');
  return rows[0]?.n ?? -1;
}

it('signs a user up, reads it back, and sends the welcome email once the sign-up committed', async () => {
  const created = await call('POST', '/users', { email: 'ada@example.com', name: 'Ada', bio: 'first' });
  expect(created.status).toBe(201);
  const read = await call('GET', `/users/${created.json.id}`);
  expect(read.json).toMatchObject({ email: 'ada@example.com', bio: 'first' });
  expect(mailer.sent).toEqual([{ to: 'ada@example.com', subject: 'Welcome, Ada' }]);
  if (!truncating) expect(await committedUsers()).toBe(0);
});

it('a duplicate email answers 409, keeps the first user and sends no second email', async () => {
  await call('POST', '/users', { email: 'bob@example.com', name: 'Bob' });
  const duplicate = await call('POST', '/users', { email: 'bob@example.com', name: 'Bobby' });
  expect(duplicate.status).toBe(409);
  expect(duplicate.json).toMatchObject({ field: 'email' });
  const { rows } = await db.query<{ name: string }>(sql`select name from users`);
  expect(rows).toEqual([{ name: 'Bob' }]);
  expect(mailer.sent).toHaveLength(1);
});

it('starts from a clean database: nothing of the tests before it is left', async () => {
  const { rows } = await db.query<{ n: number }>(sql`select count(*)::int as n from users`);
  expect(rows[0]?.n).toBe(0);
});

it('transfers money; insufficient funds answers 422 and writes nothing', async () => {
  const moved = await call('POST', '/transfers', { from: 1, to: 2, amount: 10 });
  expect(moved.status).toBe(200);
  const overdraw = await call('POST', '/transfers', { from: 1, to: 2, amount: 10_000_000 });
  expect(overdraw.status).toBe(422);
  const accounts = (await call('GET', '/accounts')).json as unknown as { balance: number }[];
  expect(accounts.map((a) => a.balance)).toEqual([990, 1010, 1000]);
});

it('concurrent transfers take turns inside the test and conserve the total', async () => {
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      call('POST', '/transfers', { from: 1 + (i % 3), to: 1 + ((i + 1) % 3), amount: 1 + i }),
    ),
  );
  expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
  const accounts = (await call('GET', '/accounts')).json as unknown as { balance: number }[];
  expect(accounts.reduce((sum, a) => sum + a.balance, 0)).toBe(3000);
});

it('bad input gets a 400 naming the field at fault, and nothing is written', async () => {
  expect((await call('POST', '/users', { email: 'nope', name: 'x' })).json).toMatchObject({ field: 'email' });
  expect((await call('POST', '/transfers', { from: 1, to: 2, amount: -5 })).status).toBe(400);
  const { rows } = await db.query<{ n: number }>(sql`select count(*)::int as n from users`);
  expect(rows[0]?.n).toBe(0);
});
