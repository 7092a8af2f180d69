/**
 * A scope per HTTP request (rule 1), client disconnect as abort (rule 16) and no escape
 * from an ended request (rule 9), for every web adapter: one scenario suite, run against
 * each framework over real HTTP on an ephemeral port, with the real PostgreSQL.
 */
import { EventEmitter } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { NestFactory } from '@nestjs/core';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import pgLib from 'pg';
import { createDatabase, type Database } from 'txscope';
import { middleware as expressMiddleware } from 'txscope/express';
import { plugin } from 'txscope/fastify';
import { middleware as honoMiddleware } from 'txscope/hono';
import { withScope } from 'txscope/http';
import { middleware as koaMiddleware } from 'txscope/koa';
import { TXSCOPE_DATABASE, TxScopeModule } from 'txscope/nestjs';
import { pg } from 'txscope/pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startExpress } from '../support/apps/express.js';
import { startExpress4 } from '../support/apps/express4.js';
import { startFastify } from '../support/apps/fastify.js';
import { startHono } from '../support/apps/hono.js';
import { startKoa } from '../support/apps/koa.js';
import { listen, running } from '../support/apps/listen.js';
import { compileNestFixture, nestMajor, startNest } from '../support/apps/nestjs.js';
import { startNodeHttp } from '../support/apps/node-http.js';
import { gates, type Mine, outcomes, type RunningApp, useDatabase } from '../support/apps/service.js';
import { type FreshDatabase, freshPgDatabase } from '../support/databases.js';
import { instrument, type Probe, until } from '../support/drivers.js';

const allFrameworks: [string, (db: Database) => Promise<RunningApp>][] = [
  ['express5', startExpress],
  ['express4', startExpress4],
  ['koa', startKoa],
  ['hono', startHono],
  ['fastify', startFastify],
  ['nestjs-express', (db) => startNest(db, 'express')],
  ['nestjs-fastify', (db) => startNest(db, 'fastify')],
  ['node-http', startNodeHttp],
];
// vitest.nestjs11.config.ts runs this file again on NestJS 11: then only what involves NestJS.
const nestOnly = process.env.TXSCOPE_NESTJS_MAJOR !== undefined;
const frameworks = allFrameworks.filter(([name]) => !nestOnly || name.startsWith('nestjs-'));

const POOL_MAX = 5;
const TIMING = /^db;dur=\d+\.\d;desc="(\d+) quer(?:y|ies), (\d+) tx"$/;

let fresh: FreshDatabase;
let observer: pgLib.Pool;

beforeAll(async () => {
  // The NestJS fixture compiles with tsc while the database is made.
  const nest = compileNestFixture();
  fresh = await freshPgDatabase();
  observer = new pgLib.Pool({ connectionString: fresh.url, max: 2 });
  await observer.query('create table http_items (id serial primary key, tag text not null)');
  await observer.query('create index on http_items (tag text_pattern_ops)');
  await nest;
}, 60_000);

afterAll(async () => {
  await observer?.end();
  await fresh?.drop();
});

async function committed(prefix: string): Promise<string[]> {
  const { rows } = await observer.query<{ tag: string }>(
    'select tag from http_items where tag like $1 order by id',
    [`${prefix}%`],
  );
  return rows.map((r) => r.tag);
}

/** Sessions of the test database the server sees inside a transaction. */
async function openTransactions(): Promise<number> {
  const { rows } = await observer.query<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity
      where datname = current_database() and state like 'idle in transaction%'`,
  );
  return rows[0]?.n ?? -1;
}

interface Reply {
  status: number;
  /** The Server-Timing header, or ''. */
  timing: string;
  body: unknown;
}

/** One request over node:http (lighter than fetch for the 200 concurrent ones). */
function call(
  agent: Agent | false,
  method: 'GET' | 'POST',
  url: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers: { 'content-type': contentType } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => {
        const timing = res.headers['server-timing'];
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // an error page: keep the text
        }
        resolve({
          status: res.statusCode ?? 0,
          timing: typeof timing === 'string' ? timing : '',
          body: parsed,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
  });
}

describe.each(frameworks)('%s', (name, start) => {
  let db: Database;
  let probe: Probe;
  let app: RunningApp;
  let seq = 0;
  const id = (what: string) => `${name}-${what}-${++seq}`;

  let agent: Agent;
  const post = (path: string, requestId: string) => call(agent, 'POST', `${app.url}${path}`, { requestId });

  beforeAll(async () => {
    const instrumented = instrument(
      pg({
        connectionString: fresh.url,
        max: POOL_MAX,
        acquireTimeoutMillis: 10_000,
        // Durability of the test's commits is not under test; waiting for each WAL flush is most of scenario 5.
        options: '-c synchronous_commit=off',
      }),
    );
    probe = instrumented.probe;
    db = createDatabase({ driver: instrumented.driver, name, default: true });
    useDatabase(db);
    app = await start(db);
    agent = new Agent({ keepAlive: true });
  });

  afterAll(async () => {
    agent?.destroy();
    await app?.close();
    await db?.close();
  });

  beforeEach(() => probe.reset());

  it('1. a request that does not touch the database runs in a scope and acquires no connection', async () => {
    const response = await call(agent, 'GET', `${app.url}/ping`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ inScope: true });
    expect(TIMING.exec(response.timing)?.slice(1)).toEqual(['0', '0']);
    expect(probe.acquires).toBe(0);
    expect(probe.statements).toEqual([]);
  });

  it('2. three repository calls under @Transactional() commit once, on one connection', async () => {
    const requestId = id('orders');
    const response = await post('/orders', requestId);
    expect(response.status).toBe(201);
    expect((response.body as Mine).tags).toEqual([`${requestId}:a`, `${requestId}:b`]);
    expect(probe.acquires).toBe(1);
    expect(probe.statements.filter((s) => /^begin/i.test(s))).toHaveLength(1);
    expect(probe.statements.filter((s) => /^commit/i.test(s))).toHaveLength(1);
    expect(probe.statements).toHaveLength(5); // BEGIN, 3 statements, COMMIT
    expect(await committed(requestId)).toEqual([`${requestId}:a`, `${requestId}:b`]);
    // Server-Timing counts the request's statements (BEGIN/COMMIT aside) and transactions.
    expect(TIMING.exec(response.timing)?.slice(1)).toEqual(['3', '1']);
  });

  it('3. a handler error after two writes leaves nothing committed', async () => {
    const requestId = id('fail');
    const response = await post('/fail', requestId);
    expect(response.status).toBe(500);
    expect(probe.statements.filter((s) => /^insert/i.test(s))).toHaveLength(2);
    expect(probe.statements.at(-1)).toMatch(/^rollback/i);
    expect(probe.checkedOut).toBe(0);
    expect(await committed(requestId)).toEqual([]);
  });

  it('4. a client that disconnects mid-transaction: rolled back, connection back in the pool', async () => {
    const requestId = id('gone');
    const client = request(`${app.url}/hang`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json' },
    });
    client.on('error', () => {}); // the socket is destroyed on purpose
    client.end(JSON.stringify({ requestId }));
    await gates.reached(requestId);
    // The handler waits mid-transaction, after its first write.
    expect(probe.checkedOut).toBe(1);
    expect(await openTransactions()).toBe(1);

    client.destroy();
    await until(async () => probe.checkedOut === 0 && (await openTransactions()) === 0, 5000, 'the rollback');
    expect(probe.statements.at(-1)).toMatch(/^rollback/i);
    expect(db.stats().checkedOut).toBe(0);

    // The handler goes on: its next statement is refused, nothing it did is committed.
    gates.open(requestId);
    expect(await outcomes.of(requestId)).toBe('ERR_ABORTED');
    await until(() => db.stats().activeScopes === 0, 5000, 'the scope to end');
    expect(await committed(requestId)).toEqual([]);
    expect(probe.checkedOut).toBe(0);
  });

  it('5. 200 concurrent requests on a pool of 5: each sees only its own rows and transaction', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `${name}-many-${i}-`);
    const results = await Promise.all(
      ids.map(async (requestId) => {
        const response = await post('/orders', requestId);
        return { requestId, status: response.status, body: response.body as Mine };
      }),
    );
    for (const { requestId, status, body } of results) {
      expect(status).toBe(201);
      // What this transaction wrote, and what it can see of this request's rows: its own two.
      expect(body.tags).toEqual([`${requestId}:a`, `${requestId}:b`]);
      expect(body.visible).toBe(2);
    }
    expect(new Set(results.map((r) => r.body.txid)).size).toBe(200);
    expect(probe.acquires).toBe(200);
    expect(probe.checkedOut).toBe(0);
    expect(db.stats().checkedOut).toBe(0);
    expect(db.stats().pool.max).toBe(POOL_MAX);
    expect(await committed(`${name}-many-`)).toHaveLength(400);
  });

  it('6. work left behind by request A gets ERR_SCOPE_CLOSED and never runs inside request B', async () => {
    const a = id('leak');
    const response = await post('/leak', a);
    expect(response.body).toEqual({ left: true });
    await until(() => db.stats().activeScopes === 0, 5000, 'request A to end');

    // Request B is mid-transaction when A's leftover work queries.
    const b = id('next');
    const pending = post('/hang', b);
    await gates.reached(b);
    gates.open(`leak:${a}`);
    expect(await outcomes.of(`leak:${a}`)).toBe('ERR_SCOPE_CLOSED');
    gates.open(b);
    const second = await pending;
    expect(second.status).toBe(200);
    expect((second.body as Mine).tags).toEqual([`${b}:a`, `${b}:b`]);
    expect(await outcomes.of(b)).toBe('ran');
    expect(await committed(a)).toEqual([]);
    expect(await committed(b)).toEqual([`${b}:a`, `${b}:b`]);
    // Only B's two writes reached the server.
    expect(probe.statements.filter((s) => /^insert/i.test(s))).toHaveLength(2);
  });
});

describe.skipIf(nestOnly)('adapter details', () => {
  let db: Database;

  beforeAll(() => {
    db = createDatabase({ driver: pg({ connectionString: fresh.url, max: 2 }), name: 'details' });
  });

  afterAll(async () => {
    await db?.close();
  });

  it('Server-Timing is appended to a header the application set, by setHeader or by writeHead', async () => {
    const server = createServer(
      withScope(
        db,
        async (req, res) => {
          await db.query('select 1');
          if (req.url === '/set') {
            res.setHeader('Server-Timing', 'app;dur=1');
            res.end();
          } else if (req.url === '/object') {
            res.writeHead(200, { 'Server-Timing': 'app;dur=2' }).end();
          } else {
            res.writeHead(200, ['Server-Timing', 'app;dur=3']).end();
          }
        },
        { serverTiming: true },
      ),
    );
    const running = await listen(server);
    try {
      for (const [path, app] of [
        ['/set', 'app;dur=1'],
        ['/object', 'app;dur=2'],
        ['/raw', 'app;dur=3'],
      ] as const) {
        const header = (await call(false, 'GET', `${running.url}${path}`)).timing;
        expect(header.startsWith(`${app}, `)).toBe(true);
        expect(TIMING.exec(header.slice(app.length + 2))?.slice(1)).toEqual(['1', '0']);
      }
    } finally {
      await running.close();
    }
  });

  it('node:http: callbacks of the request body events run in the scope', async () => {
    const server = createServer(
      withScope(db, (req, res) => {
        let chunks = 0;
        req.on('data', () => {
          chunks++;
        });
        // Node emits 'end' from the socket's async context: without the scope bound to the
        // request's events, this callback would see none.
        req.on('end', () => {
          res.end(JSON.stringify({ chunks, inScope: db.current.inScope }));
        });
      }),
    );
    const running = await listen(server);
    try {
      const { body } = (await call(false, 'POST', running.url, 'x'.repeat(1 << 20), 'text/plain')) as {
        body: { chunks: number; inScope: boolean };
      };
      expect(body.chunks).toBeGreaterThan(1);
      expect(body.inScope).toBe(true);
    } finally {
      await running.close();
    }
  });

  it('Fastify: a body parser or hook that resumes in another async context does not lose the scope', async () => {
    const elsewhere = new EventEmitter();
    const app = Fastify();
    await app.register(plugin, { db });
    app.addContentTypeParser('application/x-elsewhere', (_request, payload, done) => {
      payload.resume();
      elsewhere.once('parse', () => done(null, { parsed: true }));
    });
    // A hook registered after the plugin that calls back from another async context.
    app.addHook('preValidation', (_request, _reply, done) => {
      elsewhere.once('validate', () => done());
    });
    app.post('/', async (request) => ({ body: request.body, inScope: db.current.inScope }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const response = call(false, 'POST', `${running(app.server).url}/`, 'x', 'application/x-elsewhere');
      // Emitted from the test's own async context, outside any scope.
      for (const step of ['parse', 'validate']) {
        await until(() => elsewhere.listenerCount(step) === 1, 5000, `the ${step} step to wait`);
        elsewhere.emit(step);
      }
      expect((await response).body).toEqual({ body: { parsed: true }, inScope: true });
    } finally {
      await app.close();
    }
  });

  it('a server started inside a scope that has ended since still gives each request a fresh scope', async () => {
    const server = createServer(
      withScope(db, async (_req, res) => {
        const { rows } = await db.query<{ one: number }>('select 1 as one');
        res.end(JSON.stringify({ one: rows[0]?.one, scope: db.current.scope?.id }));
      }),
    );
    // Startup code in a scope: the server's connections inherit its async context.
    const started = await db.scope(async () => ({ app: await listen(server), scope: db.current.scope?.id }));
    try {
      const first = (await call(false, 'GET', started.app.url)).body as { one: number; scope: number };
      const second = (await call(false, 'GET', started.app.url)).body as { one: number; scope: number };
      expect(first.one).toBe(1);
      expect(new Set([started.scope, first.scope, second.scope]).size).toBe(3);
    } finally {
      await started.app.close();
    }
  });

  it('bad arguments are refused when the middleware is created', () => {
    const code = { code: 'ERR_INVALID_OPTION' };
    expect(() => expressMiddleware({} as Database)).toThrow(expect.objectContaining(code));
    expect(() => koaMiddleware(db, { serverTiming: 'yes' as unknown as boolean })).toThrow(
      expect.objectContaining(code),
    );
    expect(() => honoMiddleware(db, { timing: true } as never)).toThrow(expect.objectContaining(code));
    expect(() => withScope(db, 'handler' as never)).toThrow(expect.objectContaining(code));
    expect(() => TxScopeModule.forRoot({ db: null as unknown as Database })).toThrow(
      expect.objectContaining(code),
    );
  });

  it('Express: a scope that cannot start (closed database) goes to the error handler', async () => {
    const closed = createDatabase({ driver: pg({ connectionString: fresh.url, max: 1 }), name: 'closed' });
    await closed.close();
    const app = express();
    app.use(expressMiddleware(closed));
    app.get('/', (_req, res) => {
      res.end('reached');
    });
    let seen: unknown;
    app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      seen = error;
      res.status(503).end();
    });
    const running = await listen(createServer(app));
    try {
      expect((await call(false, 'GET', running.url)).status).toBe(503);
      expect(seen).toMatchObject({ code: 'ERR_DATABASE_CLOSED' });
    } finally {
      await running.close();
    }
  });

  it('Hono without node bindings (app.request): a scope for the handlers, Server-Timing on the response', async () => {
    const app = new Hono();
    app.use(honoMiddleware(db, { serverTiming: true }));
    app.get('/', async (c) => {
      await db.query('select 1');
      return c.json({ inScope: db.current.inScope });
    });
    const response = await app.request('/');
    expect(await response.json()).toEqual({ inScope: true });
    expect(TIMING.exec(response.headers.get('server-timing') ?? '')?.slice(1)).toEqual(['1', '0']);
    expect(db.stats().activeScopes).toBe(0);
  });

  it("docs/frameworks.md's web framework recipes are exactly the ones the type check compiles", () => {
    // The page is one subject, web frameworks: every ```ts block on it is a recipe.
    const docs = readFileSync(new URL('../../docs/frameworks.md', import.meta.url), 'utf8');
    const blocks = [...docs.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
    const dir = new URL('../fixtures/recipes/', import.meta.url);
    const recipes = readdirSync(dir)
      .filter((file) => file.endsWith('.ts'))
      .map((file) =>
        readFileSync(new URL(file, dir), 'utf8')
          .replaceAll("'../../../src/index.js'", "'txscope'")
          .replace(/'\.\.\/\.\.\/\.\.\/src\/exports\/([a-z]+)\.js'/g, "'txscope/$1'"),
      );
    expect(recipes).toHaveLength(6);
    expect([...blocks].sort()).toEqual([...recipes].sort());
  });
});

describe(`NestJS ${nestMajor}`, () => {
  let db: Database;

  beforeAll(() => {
    db = createDatabase({ driver: pg({ connectionString: fresh.url, max: 2 }), name: 'nest' });
  });

  afterAll(async () => {
    await db?.close();
  });

  it('the Nest packages loaded are the version under test', async () => {
    const versions = await Promise.all(
      [
        import('@nestjs/common/package.json'),
        import('@nestjs/core/package.json'),
        import('@nestjs/platform-express/package.json'),
        import('@nestjs/platform-fastify/package.json'),
      ].map(async (manifest) => Number((await manifest).default.version.split('.')[0])),
    );
    expect(versions).toEqual([nestMajor, nestMajor, nestMajor, nestMajor]);
  });

  it('an application context without HTTP starts with the module and installs nothing', async () => {
    const context = await NestFactory.createApplicationContext(TxScopeModule.forRoot({ db }), {
      logger: false,
    });
    try {
      expect(context.get(TXSCOPE_DATABASE)).toBe(db);
    } finally {
      await context.close();
    }
  });
});
