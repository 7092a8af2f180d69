/**
 * `txscope/otel` (rule 22): a span per transaction, child of the caller's span, with statement
 * spans of @opentelemetry/instrumentation-pg under it; savepoints, retries and rollbacks as span
 * events; the connection pool metrics. Through real HTTP (Express middleware, instrumentation-http)
 * on PostgreSQL, MariaDB and SQLite, with the SDK's in-memory span exporter and a metric reader.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Span, SpanKind, trace } from '@opentelemetry/api';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { type Histogram, MeterProvider, type MetricData, MetricReader } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import Database from 'better-sqlite3';
import express from 'express';
import mysql2 from 'mysql2/promise';
import type pgTypes from 'pg';
import request from 'supertest';
import { createDatabase, sql, Transactional, type Database as TxDatabase } from 'txscope';
import { middleware } from 'txscope/express';
import { mysql } from 'txscope/mysql';
import { instrument } from 'txscope/otel';
import { pg } from 'txscope/pg';
import { sqlite } from 'txscope/sqlite';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { type FreshDatabase, freshMysqlDatabase, freshPgDatabase } from '../support/databases.js';
import { until } from '../support/drivers.js';

const exporter = new InMemorySpanExporter();
const tracerProvider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
tracerProvider.register();
registerInstrumentations({
  tracerProvider,
  instrumentations: [new HttpInstrumentation(), new PgInstrumentation()],
});
// Loaded through require after the instrumentations are registered, so that they patch them.
const require = createRequire(import.meta.url);
require('node:http');
const pgLib = require('pg') as typeof pgTypes;

class TestReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}
const reader = new TestReader();
const meterProvider = new MeterProvider({ readers: [reader] });
const otel = instrument({ tracerProvider, meterProvider });

afterAll(async () => {
  otel.disable();
  await tracerProvider.shutdown();
  await meterProvider.shutdown();
});

/** The driver-specific part: a conflict that fails the first attempt with a retryable error. */
interface Backend {
  readonly name: string;
  readonly system: string;
  db: TxDatabase;
  /** Before the first attempt's first statement (SQLite: another connection takes the write lock). */
  before(): void;
  /** After it (PostgreSQL: another connection commits a write of the row the transaction will write). */
  conflict(): Promise<void>;
  /** Ends what `before` began. */
  resolve(): void;
  /** The retryable error, and how many statements the failed first attempt ran. */
  readonly retryableCode: string;
  readonly firstAttemptStatements: number;
  /** The pool's size. */
  readonly max: number;
  /** The driver's error code for a table that does not exist. */
  readonly missingTableCode: string;
  /** Whether statement spans (instrumentation-pg) are expected under the transaction span. */
  readonly statementSpans: boolean;
  close(): Promise<void>;
}

let attempts = 0;
let backend: Backend;

/** The application: repositories on the module-level `db`, a service with boundaries. */
const repository = {
  async insert(table: string, tag: string): Promise<void> {
    await backend.db.query(sql`insert into ${sql.id(table)} (tag) values (${tag})`);
  },
  async read(): Promise<void> {
    await backend.db.query('select n from counters where id = 1');
  },
  async bump(): Promise<void> {
    await backend.db.query('update counters set n = n + 1 where id = 1');
  },
};

// The decorator's own function form (`@Transactional(o)` on a method is `Transactional(o)(method)`):
// vitest's transform does not compile decorator syntax; test/api/decorators.test.ts covers that.
class AuditService {
  record = Transactional({ propagation: 'nested' })(async (tag: string): Promise<void> => {
    await repository.insert('audit', tag);
    throw new Error('audit refused');
  });
}

class OrderService {
  readonly audit = new AuditService();

  place = Transactional({ retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 } })(
    async (tag: string): Promise<void> => {
      attempts++;
      // PostgreSQL: the first statement takes the snapshot; a write committed elsewhere after it
      // makes the transaction's own write of that row fail with 40001. SQLite: BEGIN IMMEDIATE
      // finds the write lock taken and fails with SQLITE_BUSY past the busy timeout.
      const first = attempts === 1;
      if (first) backend.before();
      try {
        await repository.read();
        if (first) await backend.conflict();
        await repository.bump();
      } finally {
        if (first) backend.resolve();
      }
      await repository.insert('orders', tag);
      await this.audit.record(tag).catch(() => undefined);
    },
  );
}

function app(): express.Express {
  const service = new OrderService();
  const server = express();
  server.use(middleware(backend.db));
  server.post('/orders/:tag', async (req, res) => {
    await service.place(req.params.tag);
    res.status(201).end();
  });
  return server;
}

async function pgBackend(fresh: FreshDatabase): Promise<Backend> {
  const observer = new pgLib.Pool({ connectionString: fresh.url, max: 1 });
  await observer.query(`create table orders (id serial primary key, tag text not null);
    create table audit (id serial primary key, tag text not null);
    create table counters (id int primary key, n int not null); insert into counters values (1, 0)`);
  const pool = new pgLib.Pool({ connectionString: fresh.url, max: 2 });
  const db = createDatabase({
    driver: pg(pool),
    name: 'orders-pg',
    defaults: { isolation: 'repeatable read' },
  });
  return {
    name: 'pg',
    system: 'postgresql',
    db,
    statementSpans: true,
    retryableCode: '40001',
    firstAttemptStatements: 2,
    max: 2,
    missingTableCode: '42P01',
    before: () => undefined,
    resolve: () => undefined,
    // A concurrent committed update of the row the transaction's snapshot predates: 40001 on write.
    conflict: async () => {
      await trace.getTracer('test').startActiveSpan('observer', { root: true }, async (span: Span) => {
        await observer.query('update counters set n = n + 10 where id = 1');
        span.end();
      });
    },
    close: async () => {
      await db.close();
      await observer.end();
    },
  };
}

async function mysqlBackend(fresh: FreshDatabase): Promise<Backend> {
  const observer = await mysql2.createConnection({ uri: fresh.url, multipleStatements: true });
  await observer.query(`create table orders (id int auto_increment primary key, tag text not null);
    create table audit (id int auto_increment primary key, tag text not null);
    create table counters (id int primary key, n int not null); insert into counters values (1, 0);
    create table filler (id int auto_increment primary key, x int not null)`);
  const db = createDatabase({
    driver: mysql({ uri: fresh.url, connectionLimit: 2 }),
    name: 'orders-mysql',
    defaults: { isolation: 'serializable' },
  });
  let blocked: Promise<unknown> | undefined;
  return {
    name: 'mysql',
    system: 'mysql',
    db,
    statementSpans: false,
    retryableCode: 'ER_LOCK_DEADLOCK',
    firstAttemptStatements: 2,
    max: 2,
    missingTableCode: 'ER_NO_SUCH_TABLE',
    before: () => undefined,
    // Serializable reads take shared locks: the transaction and the observer both hold one on the
    // counter, the observer's update waits for the transaction's, the transaction's update for the
    // observer's: a deadlock. The observer has written more rows, so InnoDB picks the transaction.
    conflict: async () => {
      await observer.query('set session transaction isolation level serializable');
      await observer.query('begin');
      await observer.query('insert into filler (x) values (1), (2), (3), (4), (5)');
      await observer.query('select n from counters where id = 1');
      blocked = observer.query('update counters set n = n + 10 where id = 1');
      await until(async () => (await lockWaits(fresh.url)) > 0, 5000, "the observer's update waiting");
    },
    resolve: () => {
      void blocked?.then(() => observer.query('commit'));
    },
    close: async () => {
      await blocked;
      await db.close();
      await observer.end();
    },
  };
}

/** Statements waiting for a lock on the server, seen from a connection of its own. */
async function lockWaits(url: string): Promise<number> {
  const probe = await mysql2.createConnection({ uri: url });
  try {
    const [rows] = await probe.query<mysql2.RowDataPacket[]>(
      'select count(*) as n from information_schema.innodb_trx where trx_state = ?',
      ['LOCK WAIT'],
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await probe.end();
  }
}

function sqliteBackend(dir: string): Backend {
  const file = join(dir, 'orders.db');
  const setup = new Database(file);
  setup.exec(`create table orders (id integer primary key, tag text not null);
    create table audit (id integer primary key, tag text not null);
    create table counters (id integer primary key, n integer not null); insert into counters values (1, 0)`);
  const db = createDatabase({ driver: sqlite(file, { busyTimeoutMillis: 20 }), name: 'orders-sqlite' });
  return {
    name: 'sqlite',
    system: 'sqlite',
    db,
    statementSpans: false,
    retryableCode: 'SQLITE_BUSY',
    firstAttemptStatements: 0,
    max: 1,
    missingTableCode: 'SQLITE_ERROR',
    before: () => setup.exec('begin immediate'),
    conflict: async () => {},
    resolve: () => setup.exec('commit'),
    close: async () => {
      await db.close();
      setup.close();
    },
  };
}

function spansOf(traceId: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
}

const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;

async function metricsNamed(name: string): Promise<MetricData | undefined> {
  const { resourceMetrics } = await reader.collect();
  for (const scope of resourceMetrics.scopeMetrics)
    for (const metric of scope.metrics) if (metric.descriptor.name === name) return metric;
  return undefined;
}

/** Recordings of a histogram for one pool, over all its other attributes. */
function histogramCount(metric: MetricData | undefined, pool: string): number {
  let count = 0;
  for (const point of metric?.dataPoints ?? [])
    if (point.attributes['db.client.connection.pool.name'] === pool)
      count += (point.value as Histogram).count;
  return count;
}

const cases: [string, () => Promise<Backend>][] = [
  [
    'pg',
    async () => {
      fresh = await freshPgDatabase();
      return pgBackend(fresh);
    },
  ],
  [
    'mysql',
    async () => {
      const made = await freshMysqlDatabase();
      if (made === null)
        throw new Error('no MySQL/MariaDB server in this run (see the notice of the global setup)');
      fresh = made;
      return mysqlBackend(made);
    },
  ],
  [
    'sqlite',
    async () => {
      dir = mkdtempSync(join(tmpdir(), 'txscope-otel-'));
      return sqliteBackend(dir);
    },
  ],
];
let fresh: FreshDatabase | undefined;
let dir: string | undefined;

for (const [name, make] of cases) {
  // Without a MySQL/MariaDB server the global setup says so, loudly (and fails the run under CI).
  describe.skipIf(name === 'mysql' && inject('mysqlUrl') === null)(`txscope/otel on ${name}`, () => {
    beforeAll(async () => {
      backend = await make();
    }, 60_000);
    afterAll(async () => {
      await backend?.close();
      await fresh?.drop();
      fresh = undefined;
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    });
    beforeEach(() => {
      exporter.reset();
      attempts = 0;
    });

    it('an HTTP request: one transaction span under the server span, savepoint and retry as events', async () => {
      const response = await request(app()).post('/orders/first');
      expect(response.status).toBe(201);
      expect(attempts).toBe(2);

      const tx = exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === 'txscope');
      expect(tx).toHaveLength(1);
      const span = tx[0] as ReadableSpan;
      const server = spansOf(span.spanContext().traceId).find((s) => s.kind === SpanKind.SERVER);
      expect(server).toBeDefined();
      expect(parentOf(span)).toBe(server?.spanContext().spanId);
      expect(span.kind).toBe(SpanKind.CLIENT);

      expect(span.attributes).toMatchObject({
        'db.system.name': backend.system,
        'db.operation.name': 'transaction',
        'db.client.connection.pool.name': backend.db.name,
        'txscope.propagation': 'required',
        'txscope.read_only': false,
        'txscope.outcome': 'committed',
        'txscope.attempts': 2,
        'txscope.max_attempts': 3,
        // Attempt 1 (pg: read, update that failed); attempt 2: read, update, insert, audit insert.
        'txscope.statements': backend.firstAttemptStatements + 4,
      });
      expect(span.attributes['txscope.connection.hold_ms']).toBeGreaterThan(0);
      expect(span.attributes['txscope.connection.wait_ms']).toBeGreaterThanOrEqual(0);
      if (backend.name === 'pg') expect(span.attributes['txscope.isolation']).toBe('repeatable read');

      const events = span.events.map((e) => e.name);
      expect(events).toEqual([
        'txscope.rollback',
        'txscope.retry',
        'txscope.savepoint',
        'txscope.rollback_to',
      ]);
      const retry = span.events.find((e) => e.name === 'txscope.retry');
      expect(retry?.attributes).toMatchObject({
        'txscope.attempt': 2,
        'error.type': backend.retryableCode,
      });
      expect(span.events.find((e) => e.name === 'txscope.rollback')?.attributes).toMatchObject({
        'txscope.rollback.reason': 'error',
      });
      expect(span.events[2]?.attributes).toMatchObject({ 'txscope.savepoint': 'txscope_sp_1' });

      // No statement text or values unless asked for.
      const everything = JSON.stringify([span.attributes, span.events]);
      expect(everything).not.toMatch(/first|insert|update/i);

      if (backend.statementSpans) {
        const statements = spansOf(span.spanContext().traceId).filter((s) =>
          s.instrumentationScope.name.includes('instrumentation-pg'),
        );
        expect(
          statements.filter((s) => /orders|audit|counters/.test(JSON.stringify(s.attributes))),
        ).toHaveLength(6);
        const txSpanId = span.spanContext().spanId;
        // Every statement span of the transaction nests under it, BEGIN's, ROLLBACK's and COMMIT's
        // included (the observer's conflicting update runs in a trace of its own).
        expect(statements.filter((s) => parentOf(s) !== txSpanId).map((s) => s.name)).toEqual([]);
        expect(statements.some((s) => /COMMIT/.test(s.name))).toBe(true);
      }
    });

    it('a failing transaction records its error code and status, and a rollback', async () => {
      const fail = backend.db.transactional()(async () => {
        await repository.insert('orders', 'doomed');
        await backend.db.query('insert into nowhere values (1)');
      });
      await expect(fail()).rejects.toThrow();
      const span = exporter.getFinishedSpans().find((s) => s.instrumentationScope.name === 'txscope');
      expect(span?.status.code).toBe(2);
      expect(span?.attributes['txscope.outcome']).toBe('rolled_back');
      expect(span?.attributes['error.type']).toBe(backend.missingTableCode);
      expect(span?.parentSpanContext).toBeUndefined();
      expect(JSON.stringify(span?.events)).not.toMatch(/nowhere/);
    });

    it('rollback-only: the joined frame that failed, the rollback and ERR_ROLLBACK_ONLY on the span', async () => {
      const joined = backend.db.transactional()(async () => {
        await repository.insert('orders', 'joined');
        throw new Error('joined frame failed');
      });
      const outer = backend.db.transactional()(async () => {
        await repository.insert('orders', 'outer');
        await joined().catch(() => undefined);
      });
      await expect(outer()).rejects.toMatchObject({ code: 'ERR_ROLLBACK_ONLY' });
      const spans = exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === 'txscope');
      expect(spans).toHaveLength(1);
      const span = spans[0] as ReadableSpan;
      expect(span.events.map((e) => e.name)).toEqual([
        'txscope.rollback_only',
        'txscope.rollback',
        'exception',
      ]);
      expect(span.events[2]?.attributes).toMatchObject({ 'exception.type': 'ERR_ROLLBACK_ONLY' });
      expect(span.events[0]?.attributes).toMatchObject({ 'error.type': 'Error' });
      expect(span.events[1]?.attributes).toMatchObject({ 'txscope.rollback.reason': 'rollback_only' });
      expect(span.attributes).toMatchObject({
        'txscope.outcome': 'rolled_back',
        'txscope.rollback.reason': 'rollback_only',
        'error.type': 'ERR_ROLLBACK_ONLY',
        'txscope.statements': 2,
      });
    });

    it('requires_new: a span of its own, a child of the outer transaction span', async () => {
      if (backend.name === 'sqlite') return; // one connection: requires_new inside a begun transaction cannot be served
      const inner = backend.db.transactional({ propagation: 'requires_new' })(() =>
        repository.insert('audit', 'inner'),
      );
      await backend.db.transaction(async () => {
        await repository.insert('orders', 'outer');
        await inner();
      });
      const spans = exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === 'txscope');
      expect(spans).toHaveLength(2);
      const [first, second] = spans as [ReadableSpan, ReadableSpan];
      // The inner one ends first.
      expect(first.attributes['txscope.propagation']).toBe('requires_new');
      expect(parentOf(first)).toBe(second.spanContext().spanId);
      expect(first.attributes).toMatchObject({ 'txscope.outcome': 'committed', 'txscope.statements': 1 });
      expect(second.attributes).toMatchObject({ 'txscope.outcome': 'committed', 'txscope.statements': 1 });
    });

    it('a boundary that runs nothing records a span with outcome none and no statements', async () => {
      await backend.db.transaction(async () => undefined);
      const span = exporter.getFinishedSpans().find((s) => s.instrumentationScope.name === 'txscope');
      expect(span?.attributes).toMatchObject({ 'txscope.outcome': 'none', 'txscope.statements': 0 });
    });

    it('connection metrics: wait time recorded, use time, counts and the transaction duration', async () => {
      const before = histogramCount(await metricsNamed('db.client.connection.wait_time'), backend.db.name);
      const burst = Array.from({ length: 6 }, (_, i) =>
        backend.db.transaction(async () => {
          await repository.insert('orders', `burst-${i}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }),
      );
      await Promise.all(burst);
      const wait = await metricsNamed('db.client.connection.wait_time');
      expect(wait?.descriptor.unit).toBe('s');
      expect(histogramCount(wait, backend.db.name) - before).toBe(6);
      const waited = wait?.dataPoints.find(
        (p) => p.attributes['db.client.connection.pool.name'] === backend.db.name,
      )?.value as Histogram;
      // The pool has fewer connections than the burst: some waited for one held 20 ms.
      expect(waited.max ?? 0).toBeGreaterThan(0.01);
      expect(
        histogramCount(await metricsNamed('db.client.connection.use_time'), backend.db.name),
      ).toBeGreaterThan(0);
      expect(
        histogramCount(await metricsNamed('txscope.transaction.duration'), backend.db.name),
      ).toBeGreaterThanOrEqual(6);
      const count = await metricsNamed('db.client.connection.count');
      const states = count?.dataPoints
        .filter((p) => p.attributes['db.client.connection.pool.name'] === backend.db.name)
        .map((p) => p.attributes['db.client.connection.state']);
      expect(states?.sort()).toEqual(['idle', 'used']);
      const max = await metricsNamed('db.client.connection.max');
      expect(
        max?.dataPoints.find((p) => p.attributes['db.client.connection.pool.name'] === backend.db.name)
          ?.value,
      ).toBe(backend.max);
    });
  });
}

describe('txscope/otel pool timeouts', () => {
  it('counts acquire timeouts on a small pool', async () => {
    const pgFresh = await freshPgDatabase();
    const db = createDatabase({
      driver: pg({ connectionString: pgFresh.url, max: 1, acquireTimeoutMillis: 300 }),
      name: 'tiny',
    });
    try {
      let release!: () => void;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let ready!: () => void;
      const holding = new Promise<void>((resolve) => {
        ready = resolve;
      });
      const holder = db.transaction(async () => {
        await db.query('select 1');
        ready();
        await held;
      });
      // The holder has the one connection before anyone else asks (connecting may be slow here).
      await Promise.race([holding, holder]);
      const waiters = Array.from({ length: 3 }, () => db.transaction(() => db.query('select 1')));
      const results = await Promise.allSettled(waiters);
      release();
      await holder;
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
      const timeouts = await metricsNamed('db.client.connection.timeouts');
      const point = timeouts?.dataPoints.find(
        (p) => p.attributes['db.client.connection.pool.name'] === 'tiny',
      );
      expect(point?.value).toBe(3);
      const spans = exporter.getFinishedSpans().filter((s) => s.attributes['txscope.database'] === 'tiny');
      expect(spans.filter((s) => s.attributes['error.type'] === 'ERR_POOL_TIMEOUT')).toHaveLength(3);
    } finally {
      await db.close();
      await pgFresh.drop();
    }
  });

  it('disable() stops recording', async () => {
    const handle = instrument({ tracerProvider, meterProvider, metrics: false });
    handle.disable();
    exporter.reset();
    otel.disable();
    const dir2 = mkdtempSync(join(tmpdir(), 'txscope-otel-'));
    const db = createDatabase({ driver: sqlite(join(dir2, 'x.db')), name: 'off' });
    try {
      await db.transaction(() => db.query('select 1'));
      expect(exporter.getFinishedSpans()).toEqual([]);
    } finally {
      await db.close();
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});
