/**
 * The driver-parameterized harness: every contract suite runs once per driver with
 * `forEachDriver`, against a real database of its own (one per test file).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import BetterSqlite3 from 'better-sqlite3';
import mysql2 from 'mysql2/promise';
import pgLib from 'pg';
import {
  createDatabase,
  type Database,
  type DatabaseOptions,
  type Driver,
  type DriverConnection,
} from 'txscope';
import { mysql } from 'txscope/mysql';
import { pg } from 'txscope/pg';
import { pglite } from 'txscope/pglite';
import { sqlite } from 'txscope/sqlite';
import { afterAll, afterEach, beforeAll, describe, inject } from 'vitest';
import { freshMysqlDatabase, freshPgDatabase } from './databases.js';
import { pgbouncerCase } from './pooler.js';
import { postgresjsCase } from './postgresjs-case.js';

export type DriverName = 'pg' | 'pglite' | 'mysql' | 'sqlite' | 'pgbouncer' | 'postgresjs';

/** What a driver can show; suites skip what it cannot. */
export interface Capabilities {
  /** A second connection sees only committed rows (PGlite has one connection, so no). */
  observerIsolated: boolean;
  /** More than one connection: concurrent transactions run at once, requires_new gets its own. */
  multiConnection: boolean;
  /** The server lists its sessions (pg_stat_activity). */
  serverSessions: boolean;
}

/** What the test saw the driver do: every statement sent, every acquire and release. */
export interface Probe {
  statements: string[];
  acquires: number;
  releases: number;
  destroyed: number;
  /** Connections checked out right now. */
  readonly checkedOut: number;
  /** Fault injection: when it returns an error for a statement, the statement throws it instead of running. */
  fault: ((text: string) => Error | undefined) | undefined;
  reset(): void;
}

export interface DriverEnv {
  readonly name: DriverName;
  readonly capabilities: Capabilities;
  /** A database over a fresh driver for this env, closed after each test. */
  createDb(options?: { max?: number } & Omit<DatabaseOptions, 'driver'>): { db: Database; probe: Probe };
  /** Runs a statement on a connection of its own (for PGlite: the same instance, outside txscope). */
  observe<Row = Record<string, unknown>>(text: string, values?: unknown[]): Promise<Row[]>;
  /** The env's connection settings, for suites that build their own drivers or pools. */
  readonly url: string | null;
}

export interface DriverCase {
  name: DriverName;
  capabilities: Capabilities;
  /** False when this run has no server for it: its suites are skipped (the global setup says why). */
  available?(): boolean;
  start(): Promise<EnvBackend>;
}

export interface EnvBackend {
  url: string | null;
  driver(max: number): Driver;
  observe(text: string, values?: unknown[]): Promise<unknown[]>;
  stop(): Promise<void>;
}

const cases: DriverCase[] = [
  {
    name: 'pg',
    capabilities: { observerIsolated: true, multiConnection: true, serverSessions: true },
    async start() {
      const fresh = await freshPgDatabase();
      const observer = new pgLib.Pool({ connectionString: fresh.url, max: 2 });
      observer.on('error', () => {});
      return {
        url: fresh.url,
        driver: (max) => pg({ connectionString: fresh.url, max, acquireTimeoutMillis: 5000 }),
        observe: async (text, values) => (await observer.query(text, values)).rows,
        async stop() {
          await observer.end();
          await fresh.drop();
        },
      };
    },
  },
  {
    name: 'pglite',
    capabilities: { observerIsolated: false, multiConnection: false, serverSessions: false },
    async start() {
      const instance = new PGlite();
      await instance.waitReady;
      return {
        url: null,
        driver: () => keepOpen(pglite(instance)),
        observe: async (text, values) => (await instance.query(text, values)).rows,
        stop: () => instance.close(),
      };
    },
  },
  {
    name: 'mysql',
    capabilities: { observerIsolated: true, multiConnection: true, serverSessions: false },
    available: () => inject('mysqlUrl') !== null,
    async start() {
      const fresh = await freshMysqlDatabase();
      if (fresh === null) {
        throw new Error('no MySQL/MariaDB server in this run (see the notice of the global setup)');
      }
      const observer = mysql2.createPool({ uri: fresh.url, connectionLimit: 2 });
      return {
        url: fresh.url,
        driver: (max) => mysql({ uri: fresh.url, max, acquireTimeoutMillis: 5000 }),
        async observe(text, values) {
          const [rows] = await observer.query(text, values);
          // INSERT/UPDATE answer with an OK packet, not rows.
          return Array.isArray(rows) ? rows : [];
        },
        async stop() {
          await observer.end();
          await fresh.drop();
        },
      };
    },
  },
  {
    name: 'sqlite',
    // The observer is a second connection on the same WAL file: it sees committed rows only.
    capabilities: { observerIsolated: true, multiConnection: false, serverSessions: false },
    async start() {
      const dir = await mkdtemp(join(tmpdir(), 'txscope-sqlite-'));
      const file = join(dir, 'test.db');
      const observer = new BetterSqlite3(file);
      observer.pragma('journal_mode = WAL');
      return {
        url: file,
        driver: () => sqlite(file),
        async observe(text, values = []) {
          const statement = observer.prepare(text);
          if (statement.reader) return statement.all(...values);
          statement.run(...values);
          return [];
        },
        async stop() {
          observer.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
  // node-postgres through PgBouncer in transaction mode (rule 21).
  pgbouncerCase({
    name: 'pgbouncer',
    driver: ({ url, max }) => pg({ connectionString: url, max, acquireTimeoutMillis: 5000 }),
  }),
  postgresjsCase,
];

/** The PGlite instance belongs to the env: closing a database must not close it. */
function keepOpen(driver: Driver): Driver {
  return {
    dialect: driver.dialect,
    label: driver.label,
    acquire: (intent) => driver.acquire(intent),
    release: (connection, options) => driver.release(connection, options),
    classify: (error) => driver.classify(error),
    counts: () => driver.counts(),
    close: async () => {},
  };
}

/** Wraps a driver so the test sees every statement, acquire and release. */
export function instrument(driver: Driver): { driver: Driver; probe: Probe } {
  let checkedOut = 0;
  const probe: Probe = {
    statements: [],
    acquires: 0,
    releases: 0,
    destroyed: 0,
    fault: undefined,
    get checkedOut() {
      return checkedOut;
    },
    reset() {
      this.statements.length = 0;
      this.acquires = 0;
      this.releases = 0;
      this.destroyed = 0;
      this.fault = undefined;
    },
  };
  const inner = new WeakMap<DriverConnection, DriverConnection>();
  const wrapped: Driver = {
    dialect: driver.dialect,
    label: driver.label,
    acquire(intent) {
      // A driver that hands a free connection at once is tested that way: no promise added here.
      const taken = driver.acquire(intent);
      return taken instanceof Promise ? taken.then(wrap) : wrap(taken);
    },
    release(connection, options) {
      probe.releases++;
      checkedOut--;
      if (options.destroy) probe.destroyed++;
      driver.release(inner.get(connection) ?? connection, options);
    },
    classify: (error) => driver.classify(error),
    counts: () => driver.counts(),
    close: () => driver.close(),
  };
  function wrap(connection: DriverConnection): DriverConnection {
    probe.acquires++;
    checkedOut++;
    const outer: DriverConnection = {
      query(text, values) {
        probe.statements.push(text);
        const injected = probe.fault?.(text);
        if (injected !== undefined) return Promise.reject(injected);
        return connection.query(text, values);
      },
      status: () => connection.status(),
      cancel: () => connection.cancel(),
    };
    const afterBegin = connection.queryAfterBegin;
    if (afterBegin !== undefined) {
      // BEGIN rides with the first statement: a fault on BEGIN fails it before the statement ran.
      outer.queryAfterBegin = (text, values, begin) => {
        probe.statements.push(...begin.statements, text);
        for (const statement of begin.statements) {
          const injected = probe.fault?.(statement);
          if (injected !== undefined) return Promise.reject(injected);
        }
        const injected = probe.fault?.(text);
        if (injected !== undefined) {
          begin.began();
          return Promise.reject(injected);
        }
        return afterBegin.call(connection, text, values, begin);
      };
    }
    inner.set(outer, connection);
    return outer;
  }
  const pooledQuery = driver.query;
  if (pooledQuery !== undefined) {
    // The driver takes, runs and gives back in one call: the probe sees it as one acquire, one
    // statement and one release (destroyed when the connection was lost).
    wrapped.query = (text, values) => {
      probe.acquires++;
      checkedOut++;
      probe.statements.push(text);
      const injected = probe.fault?.(text);
      const result =
        injected !== undefined ? Promise.reject(injected) : pooledQuery.call(driver, text, values);
      return result.then(
        (ok) => {
          probe.releases++;
          checkedOut--;
          return ok;
        },
        (error: unknown) => {
          probe.releases++;
          checkedOut--;
          if (injected === undefined && driver.classify(error) === 'connection_lost') probe.destroyed++;
          throw error;
        },
      );
    };
  }
  return { driver: wrapped, probe };
}

/** Which drivers run: all, or those named in TXSCOPE_DRIVERS (comma-separated). */
function selected(): DriverCase[] {
  const only = process.env.TXSCOPE_DRIVERS?.split(',').map((s) => s.trim());
  return only === undefined ? cases : cases.filter((c) => only.includes(c.name));
}

/**
 * Runs `body` once per driver, each in a `describe` of its own with a fresh database.
 * Databases made with `env.createDb` are closed after each test.
 */
export function forEachDriver(title: string, body: (env: DriverEnv) => void): void {
  for (const c of selected()) {
    const suite = c.available?.() === false ? describe.skip : describe;
    suite(`${title} [${c.name}]`, () => {
      let backend: EnvBackend | undefined;
      const open: Database[] = [];
      const env: DriverEnv = {
        name: c.name,
        capabilities: c.capabilities,
        get url() {
          return backend?.url ?? null;
        },
        createDb(options = {}) {
          if (backend === undefined)
            throw new Error('createDb() is for tests and hooks, not describe bodies');
          const { max = 5, ...rest } = options;
          const { driver, probe } = instrument(backend.driver(max));
          const db = createDatabase({ default: true, ...rest, driver });
          open.push(db);
          return { db, probe };
        },
        async observe<Row>(text: string, values?: unknown[]) {
          if (backend === undefined) throw new Error('observe() is for tests and hooks');
          return (await backend.observe(text, values)) as Row[];
        },
      };
      beforeAll(async () => {
        backend = await c.start();
      });
      afterEach(async () => {
        await Promise.all(open.splice(0).map((db) => db.close()));
      });
      afterAll(async () => {
        await backend?.stop();
      });
      body(env);
    });
  }
}

/** Polls `check` until it returns true, at most `timeoutMs`; never a fixed sleep. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
