/**
 * What TypeORM's drivers take for a database library (their `driver` option): a node-postgres
 * `Pool`, a mysql2 `createPool`, a better-sqlite3 constructor. These stand-ins hold no
 * connection: every statement goes through `db.query`, so txscope routes it (the ambient
 * transaction, a pin, or autocommit on a connection borrowed for it alone).
 */
import type { Database } from '../../core/database.js';
import type { DialectName, QueryResult } from '../../driver.js';
import { errors } from '../../errors.js';
import { ambient, type Runner } from '../shared.js';

/** Where a connection's statements run: asked at each statement (a query runner's frame may change). */
export type RunnerSource = () => Runner;

const ambientSource: RunnerSource = () => ambient;
const noValues: readonly unknown[] = Object.freeze([]);

function send(
  db: Database,
  source: RunnerSource,
  text: string,
  values: unknown,
): Promise<QueryResult<unknown>> {
  const params = Array.isArray(values) ? values : noValues;
  const run = source();
  return run === ambient ? db.query(text, params) : run(() => db.query(text, params));
}

type Callback = (error: unknown, result?: unknown) => void;

/** Settles `promise` into node's `(error, result)` callback when there is one, else returns it. */
function settle<T>(promise: Promise<T>, callback: Callback | undefined): Promise<T> | undefined {
  if (callback === undefined) return promise;
  promise.then(
    (result) => callback(undefined, result),
    (error: unknown) => callback(error),
  );
  return undefined;
}

/** A node-postgres client as TypeORM uses it: `query(text, values?, callback?)`, events. */
export function pgConnection(db: Database, source: RunnerSource = ambientSource) {
  const connection = {
    query(text: string, valuesOrCallback?: unknown, callback?: Callback) {
      const values = typeof valuesOrCallback === 'function' ? undefined : valuesOrCallback;
      const cb = typeof valuesOrCallback === 'function' ? (valuesOrCallback as Callback) : callback;
      if (typeof text !== 'string') {
        // pg-query-stream: a Query object. txscope results arrive whole; the runner streams them.
        throw errors.unsupported('txscope/typeorm', 'a node-postgres Query object', 'use query text');
      }
      // txscope's PostgreSQL result has what TypeORM reads (rows, rowCount, command) as own properties.
      return settle(send(db, source, text, values), cb);
    },
    on: () => connection,
    removeListener: () => connection,
    release: () => {},
  };
  return connection;
}

/** node-postgres's module as TypeORM's PostgresDriver uses it: `new Pool(config)`. */
export function pgModule(db: Database) {
  class Pool {
    on(): this {
      return this;
    }
    connect(callback?: (error: unknown, client?: unknown, release?: () => void) => void) {
      const client = pgConnection(db);
      if (callback === undefined) return Promise.resolve(client);
      callback(undefined, client, () => {});
      return undefined;
    }
    query(text: string, values?: unknown, callback?: Callback) {
      return pgConnection(db).query(text, values, callback);
    }
    // The txscope database is shared: db.close() ends its pool, not dataSource.destroy().
    end(callback?: () => void): Promise<void> | undefined {
      if (callback === undefined) return Promise.resolve();
      callback();
      return undefined;
    }
  }
  return { Pool };
}

/** What mysql2 answers a write with: TypeORM reads `affectedRows` and `insertId`. */
interface MysqlHeader {
  fieldCount: 0;
  affectedRows: number;
  insertId: number | string;
  info: string;
  serverStatus: number;
  warningStatus: number;
  changedRows: number;
}

function toMysqlRaw(result: QueryResult<unknown>): unknown[] | MysqlHeader {
  if (!('insertId' in result)) return result.rows;
  return {
    fieldCount: 0,
    affectedRows: result.rowCount,
    insertId: (result as { insertId: number | string }).insertId,
    info: '',
    serverStatus: 0,
    warningStatus: 0,
    changedRows: 0,
  };
}

/** The statement text of what TypeORM hands mysql2: text, or `{ sql, timeout }`. */
function mysqlText(payload: unknown): string {
  if (typeof payload === 'string') return payload;
  const sql = (payload as { sql?: unknown } | null)?.sql;
  if (typeof sql === 'string') return sql;
  throw errors.invalidArgument('txscope/typeorm MySQL query', 'statement text');
}

/** A mysql2 pool connection as TypeORM's MysqlQueryRunner uses it: `.promise().query()`, events. */
export function mysqlConnection(db: Database, source: RunnerSource = ambientSource) {
  const run = (payload: unknown, values: unknown) =>
    send(db, source, mysqlText(payload), values).then(toMysqlRaw);
  const promised = {
    query: (payload: unknown, values?: unknown) => run(payload, values).then((raw) => [raw, undefined]),
  };
  const connection = {
    promise: () => promised,
    query(payload: unknown, valuesOrCallback?: unknown, callback?: Callback) {
      const values = typeof valuesOrCallback === 'function' ? undefined : valuesOrCallback;
      const cb = typeof valuesOrCallback === 'function' ? (valuesOrCallback as Callback) : callback;
      return settle(run(payload, values), cb);
    },
    on: () => connection,
    listeners: () => [],
    release: () => {},
  };
  return connection;
}

/** mysql2's module as TypeORM's MysqlDriver uses it: `createPool(config)`. */
export function mysqlModule(db: Database) {
  return {
    createPool() {
      const pool = {
        getConnection(callback: (error: unknown, connection?: unknown) => void) {
          callback(null, mysqlConnection(db));
        },
        on: () => pool,
        end(callback?: (error?: unknown) => void) {
          callback?.();
        },
      };
      return pool;
    },
    createPoolCluster() {
      throw errors.unsupported(
        'txscope/typeorm',
        'replication',
        'give createDatabase() `replicas` (read-only transactions run on them)',
      );
    },
  };
}

/**
 * better-sqlite3's constructor as TypeORM's BetterSqlite3Driver uses it. The driver opens the
 * database and sets pragmas synchronously; txscope's sqlite driver has opened it already (with
 * better-sqlite3's default of foreign keys on, and WAL), so this handle does nothing. The query
 * runner never uses it: its statements go through txscope.
 */
export function sqliteModule() {
  return class TxScopeSqliteHandle {
    readonly open = true;
    pragma(): unknown[] {
      return [];
    }
    exec(): this {
      return this;
    }
    prepare(): never {
      throw errors.unsupported('txscope/typeorm', 'a better-sqlite3 statement', 'use queryRunner.query()');
    }
    close(): this {
      return this;
    }
  };
}

/** The `driver` module TypeORM's driver of `dialect` is given. */
export function driverModule(db: Database, dialect: DialectName): unknown {
  switch (dialect) {
    case 'postgres':
      return pgModule(db);
    case 'mysql':
      return mysqlModule(db);
    case 'sqlite':
      return sqliteModule();
  }
}
