/**
 * Rule 19 over HTTP: with `rollbackAfterEach`, requests the app serves in the same process
 * (every framework's middleware) run inside the test's transaction: they see the test's rows,
 * their own transactions are savepoints, and nothing is ever visible to another connection.
 */
import { randomBytes } from 'node:crypto';
import pgLib from 'pg';
import supertest from 'supertest';
import { createDatabase, sql } from 'txscope';
import { pg } from 'txscope/pg';
import { rollbackAfterEach } from 'txscope/testing';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startExpress } from '../support/apps/express.js';
import { startExpress4 } from '../support/apps/express4.js';
import { startFastify } from '../support/apps/fastify.js';
import { startHono } from '../support/apps/hono.js';
import { startKoa } from '../support/apps/koa.js';
import { compileNestFixture, startNest } from '../support/apps/nestjs.js';
import { startNodeHttp } from '../support/apps/node-http.js';
import { items, type Mine, type RunningApp, useDatabase } from '../support/apps/service.js';
import { instrument } from '../support/drivers.js';

const frameworks: [string, (db: typeof database) => Promise<RunningApp>][] = [
  ['express5', startExpress],
  ['express4', startExpress4],
  ['koa', startKoa],
  ['hono', startHono],
  ['fastify', startFastify],
  ['nestjs-express', (db) => startNest(db, 'express')],
  ['nestjs-fastify', (db) => startNest(db, 'fastify')],
  ['node-http', startNodeHttp],
];

// The apps' SQL names `http_items`: a schema of this file's own holds it, first on the search path.
const schema = `txscope_t_${randomBytes(6).toString('hex')}`;
const url = inject('pgUrl');
const instrumented = instrument(
  pg({ connectionString: url, max: 4, options: `-c search_path=${schema}`, acquireTimeoutMillis: 10_000 }),
);
const probe = instrumented.probe;
const database = createDatabase({ driver: instrumented.driver, name: 'http-tests', default: true });
useDatabase(database);
const observer = new pgLib.Pool({ connectionString: url, max: 2, options: `-c search_path=${schema}` });

rollbackAfterEach(database, { beforeEach, afterEach });

beforeAll(async () => {
  const nest = compileNestFixture();
  await observer.query(`create schema ${schema}`);
  await observer.query('create table http_items (id serial primary key, tag text not null)');
  await nest;
}, 60_000);

afterAll(async () => {
  await database.close();
  await observer.query(`drop schema ${schema} cascade`);
  await observer.end();
});

async function committed(): Promise<number> {
  const { rows } = await observer.query<{ n: number }>('select count(*)::int as n from http_items');
  return rows[0]?.n ?? -1;
}

async function post(app: RunningApp, path: string, requestId: string): Promise<Response> {
  return fetch(`${app.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ requestId }),
  });
}

/** Rows in the test transaction, read from the test body (outside any scope: the app is not strict). */
async function visible(): Promise<number> {
  const { rows } = await database.query<{ n: number }>(sql`select count(*)::int as n from http_items`);
  return rows[0]?.n ?? -1;
}

describe.each(frameworks)('%s', (name, start) => {
  let app: RunningApp;
  let seq = 0;
  const id = () => `${name}-${++seq}`;

  beforeAll(async () => {
    app = await start(database);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('a request sees the rows the test wrote, and its transaction (a savepoint) is seen by the test, never by another connection', async () => {
    const requestId = id();
    probe.reset();
    await items.insert(`${requestId}:seed`);
    const response = await post(app, '/orders', requestId);
    expect(response.status).toBe(201);
    const mine = (await response.json()) as Mine;
    expect(mine.visible).toBe(3);
    expect(await visible()).toBe(3);
    expect(await committed()).toBe(0);
    expect(probe.acquires).toBe(1);
    expect(probe.statements.filter((s) => /^SAVEPOINT/.test(s))).toHaveLength(1);
    expect(probe.statements.filter((s) => /^RELEASE SAVEPOINT/.test(s))).toHaveLength(1);
  });

  it('the previous test left nothing behind; a failing request rolls back to its savepoint and the test goes on', async () => {
    expect(await visible()).toBe(0);
    await items.insert(`${id()}:kept`);
    const response = await post(app, '/fail', id());
    expect(response.status).toBeGreaterThanOrEqual(500);
    expect(await visible()).toBe(1);
    expect(await committed()).toBe(0);
  });
});

describe('supertest', () => {
  let app: RunningApp;
  beforeAll(async () => {
    app = await startExpress(database);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('drives the app against its URL, inside the test transaction', async () => {
    await items.insert('supertest:seed');
    const response = await supertest(app.url).post('/orders').send({ requestId: 'supertest' }).expect(201);
    expect((response.body as Mine).visible).toBe(3);
    expect(await committed()).toBe(0);
  });
});

describe('after every test of the file', () => {
  it('nothing was ever committed, and no connection is held between tests', async () => {
    expect(await committed()).toBe(0);
    expect(database.stats().checkedOut).toBe(0);
  });
});
