import type { ConnectionStatus, Driver, DriverConnection, DriverResult, PoolCounts } from '../driver.js';
import { ErrorCode, TxScopeError } from '../errors.js';
import { classifyMysqlError, ER_LOCK_DEADLOCK, mysqlDialect } from './dialect.js';

export { classifyMysqlError, mysqlDialect } from './dialect.js';

/** The part of a mysql2 core connection (`poolConnection.connection`) txscope uses. */
export interface MysqlCoreConnectionLike {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** The part of a `mysql2/promise` `PoolConnection` txscope uses. */
export interface MysqlPoolConnectionLike {
  query(options: { sql: string; values?: unknown[] }): Promise<[unknown, unknown]>;
  release(): void;
  destroy(): void;
  readonly threadId: number | null;
  readonly connection: MysqlCoreConnectionLike;
}

/** The connection settings txscope reads from a pool it was given, to open its `KILL QUERY` connection. */
interface MysqlConnectionConfigLike {
  host?: string;
  port?: number;
  socketPath?: string;
  user?: string;
  password?: string;
  database?: string;
  ssl?: unknown;
  [option: string]: unknown;
}

/** The part of a `mysql2/promise` `Pool` txscope uses. */
export interface MysqlPoolLike {
  getConnection(): Promise<MysqlPoolConnectionLike>;
  end(): Promise<void>;
  /** mysql2's core pool: its config and connection lists feed `counts()` and the label. */
  readonly pool?: {
    readonly config?: { connectionLimit?: number; connectionConfig?: MysqlConnectionConfigLike };
    readonly _allConnections?: { readonly length: number };
    readonly _freeConnections?: { readonly length: number };
  };
}

/** A standalone `mysql2/promise` connection, for `KILL QUERY`. */
interface MysqlStandaloneLike {
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

interface MysqlModule {
  createPool(config: Record<string, unknown>): MysqlPoolLike;
  createConnection(config: Record<string, unknown>): Promise<MysqlStandaloneLike>;
}

/**
 * mysql2 pool options (passed through as they are: `uri`, `host`, `port`, `user`,
 * `password`, `database`, `connectionLimit`, `timezone`, …) plus txscope's pool names.
 * Connection strings and passwords never appear in txscope's errors or events.
 */
export interface MysqlConfig {
  uri?: string;
  host?: string;
  port?: number;
  socketPath?: string;
  user?: string;
  password?: string;
  database?: string;
  ssl?: unknown;
  /** Pool size (alias of mysql2's `connectionLimit`); default 10. */
  max?: number;
  connectionLimit?: number;
  /**
   * Close connections idle for this long (mysql2's `idleTimeout`). mysql2 applies it only while
   * `maxIdle` < `connectionLimit`, so txscope sets `maxIdle` to `max - 1` unless you set it.
   */
  idleTimeoutMillis?: number;
  /** Close connections after this many seconds (with jitter), when they are next released or taken. */
  maxLifetimeSeconds?: number;
  /** How long an acquire waits for a connection before `ERR_POOL_TIMEOUT`; default 10000. */
  acquireTimeoutMillis?: number;
  [option: string]: unknown;
}

const defaultAcquireTimeoutMillis = 10_000;
const defaultMax = 10;
/** SERVER_STATUS_IN_TRANS in the OK packet's status flags. */
const SERVER_STATUS_IN_TRANS = 1;
const poolKeys = ['max', 'acquireTimeoutMillis', 'idleTimeoutMillis', 'maxLifetimeSeconds'] as const;
/** Pool-only mysql2 options a standalone connection does not take. */
const poolOnlyKeys = new Set([
  ...poolKeys,
  'connectionLimit',
  'maxIdle',
  'idleTimeout',
  'queueLimit',
  'waitForConnections',
  'resetOnRelease',
]);

/** What txscope knows of a mysql2 connection across checkouts (the promise wrapper is new each time). */
interface CoreState {
  status: ConnectionStatus;
  /** Set by the error listener: the connection died, possibly while idle in the pool. */
  lost: Error | null;
  /** When the connection is to be recycled (maxLifetimeSeconds), in ms since the epoch. */
  expiresAt: number;
}

function isPool(value: MysqlConfig | MysqlPoolLike): value is MysqlPoolLike {
  return typeof (value as MysqlPoolLike).getConnection === 'function';
}

/** `db@host:port`, never the user or password. */
function labelOf(config: MysqlConnectionConfigLike & { uri?: unknown }): string {
  if (typeof config.uri === 'string') {
    try {
      const url = new URL(config.uri);
      return `${decodeURIComponent(url.pathname.replace(/^\//, '')) || 'mysql'}@${url.hostname}${url.port ? `:${url.port}` : ''}`;
    } catch {
      return 'mysql';
    }
  }
  const where = config.socketPath ?? `${config.host ?? 'localhost'}${config.port ? `:${config.port}` : ''}`;
  return `${config.database || 'mysql'}@${where}`;
}

/** mysql2's OK packet (`ResultSetHeader`): what INSERT, UPDATE, DDL and transaction control answer. */
interface ResultHeader {
  affectedRows: number;
  insertId: number | string;
  serverStatus?: number;
}

function isHeader(value: unknown): value is ResultHeader {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    'affectedRows' in value &&
    'insertId' in value
  );
}

/**
 * What `db.query` returns on MySQL: for INSERT/UPDATE/DELETE, `rows` is empty, `rowCount` is
 * the affected rows and `insertId` the AUTO_INCREMENT value the statement generated.
 *
 * @example
 * ```ts
 * const { insertId } = (await db.query(sql`insert into users (name) values (${name})`)) as MysqlQueryResult;
 * ```
 */
export interface MysqlQueryResult<Row = Record<string, unknown>> {
  rows: Row[];
  rowCount: number;
  insertId?: number | string;
}

class MysqlConnection implements DriverConnection {
  /** A `KILL QUERY` on its way: nothing else is sent on this connection before it has landed. */
  cancelling: Promise<void> | null = null;

  constructor(
    readonly conn: MysqlPoolConnectionLike,
    readonly state: CoreState,
    readonly driver: MysqlDriver,
  ) {}

  async query(
    text: string,
    values: readonly unknown[],
  ): Promise<DriverResult & { insertId?: number | string }> {
    // Had the statement ended on its own, a KILL QUERY still in flight would interrupt the next
    // one (the ROLLBACK, or another request's statement once the connection is pooled again).
    if (this.cancelling !== null) await this.cancelling;
    if (this.state.lost !== null) throw this.state.lost;
    let result: [unknown, unknown];
    try {
      result = await this.conn.query(
        values.length === 0 ? { sql: text } : { sql: text, values: values as unknown[] },
      );
    } catch (error) {
      if (classifyMysqlError(error) === 'connection_lost') {
        this.state.lost ??= error instanceof Error ? error : new Error(String(error));
      } else if ((error as { errno?: unknown }).errno === ER_LOCK_DEADLOCK) {
        // InnoDB rolled the whole transaction back; other errors leave its state as it was.
        this.state.status = 'idle';
      }
      throw error;
    }
    const [rows, fields] = result;
    if (isHeader(rows)) return this.#header(rows);
    if (Array.isArray(rows) && isMultiResult(fields)) {
      // CALL, or multipleStatements: the first row set, and the status of the last OK packet.
      const last = rows.at(-1);
      if (isHeader(last)) this.#header(last);
      const first = rows.find((r): r is unknown[] => Array.isArray(r)) ?? [];
      return { rows: first, rowCount: first.length };
    }
    // A result set's final packet carries the status too, but mysql2 does not expose it; a SELECT
    // does not change the transaction state (except under autocommit=0, which txscope does not use).
    const list = Array.isArray(rows) ? rows : [];
    return { rows: list, rowCount: list.length };
  }

  #header(header: ResultHeader): DriverResult & { insertId: number | string } {
    if (typeof header.serverStatus === 'number') {
      this.state.status = header.serverStatus & SERVER_STATUS_IN_TRANS ? 'in_transaction' : 'idle';
    }
    return { rows: [], rowCount: Number(header.affectedRows), insertId: header.insertId };
  }

  status(): ConnectionStatus {
    return this.state.lost !== null ? 'failed' : this.state.status;
  }

  cancel(): Promise<void> {
    const cancelling = this.driver.killQuery(this.conn.threadId);
    const settled = cancelling.then(
      () => {},
      () => {},
    );
    this.cancelling = settled;
    void settled.then(() => {
      if (this.cancelling === settled) this.cancelling = null;
    });
    return cancelling;
  }
}

/** mysql2 answers multi-result calls with one field list (or undefined) per result. */
function isMultiResult(fields: unknown): boolean {
  return Array.isArray(fields) && fields.length > 0 && (Array.isArray(fields[0]) || fields[0] === undefined);
}

class MysqlDriver implements Driver {
  readonly dialect = mysqlDialect;
  readonly label: string;
  readonly #config: MysqlConfig;
  readonly #acquireMs: number;
  readonly #lifetimeMs: number | undefined;
  readonly #states = new WeakMap<MysqlCoreConnectionLike, CoreState>();
  #pool: MysqlPoolLike | null = null;
  #creating: Promise<MysqlPoolLike> | null = null;
  #module: Promise<MysqlModule> | null = null;
  #checkedOut = 0;
  #waiting = 0;
  #closed = false;

  constructor(source: MysqlConfig | MysqlPoolLike) {
    if (isPool(source)) {
      this.#pool = source;
      this.#config = {};
      this.label = labelOf(source.pool?.config?.connectionConfig ?? {});
    } else {
      this.#config = source;
      this.label = labelOf(source);
    }
    this.#acquireMs = this.#config.acquireTimeoutMillis ?? defaultAcquireTimeoutMillis;
    const lifetime = this.#config.maxLifetimeSeconds;
    this.#lifetimeMs = lifetime === undefined ? undefined : lifetime * 1000;
  }

  #loadModule(): Promise<MysqlModule> {
    this.#module ??= import('mysql2/promise').then(
      (module) => ((module as { default?: MysqlModule }).default ?? module) as MysqlModule,
      (error: unknown) => {
        throw new TxScopeError(
          ErrorCode.INVALID_OPTION,
          "txscope/mysql needs the 'mysql2' package: npm install mysql2 (it is an optional peer dependency)",
          { cause: error },
        );
      },
    );
    return this.#module;
  }

  #getPool(): MysqlPoolLike | Promise<MysqlPoolLike> {
    if (this.#pool !== null) return this.#pool;
    this.#creating ??= this.#loadModule().then((mysql) => {
      const pool = mysql.createPool(this.#poolOptions());
      this.#pool = pool;
      return pool;
    });
    return this.#creating;
  }

  #poolOptions(): Record<string, unknown> {
    const { max, acquireTimeoutMillis, idleTimeoutMillis, maxLifetimeSeconds, ...rest } = this.#config;
    // A copy: mysql2 writes the parsed `uri` back into the object it is given.
    const options: Record<string, unknown> = { ...rest, connectionLimit: this.#max() };
    if (idleTimeoutMillis !== undefined) {
      options.idleTimeout = idleTimeoutMillis;
      if (rest.maxIdle === undefined) options.maxIdle = Math.max(0, this.#max() - 1);
    }
    return options;
  }

  #max(): number {
    return (
      this.#config.max ??
      this.#config.connectionLimit ??
      this.#pool?.pool?.config?.connectionLimit ??
      defaultMax
    );
  }

  async acquire(): Promise<DriverConnection> {
    const pool = await this.#getPool();
    const deadline = Date.now() + this.#acquireMs;
    for (;;) {
      const conn = await this.#take(pool, deadline);
      const known = this.#states.has(conn.connection);
      const state = this.#stateOf(conn);
      // A connection seen for the first time was just opened: it is used once even past its lifetime.
      if (state.lost === null && (!known || Date.now() < state.expiresAt)) {
        this.#checkedOut++;
        return new MysqlConnection(conn, state, this);
      }
      // Dead while idle, or past its lifetime: replace it before anyone uses it.
      conn.destroy();
    }
  }

  /** `pool.getConnection()` bounded by the deadline (mysql2's pool has no acquire timeout of its own). */
  #take(pool: MysqlPoolLike, deadline: number): Promise<MysqlPoolConnectionLike> {
    this.#waiting++;
    return new Promise<MysqlPoolConnectionLike>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(
        () => {
          settled = true;
          this.#waiting--;
          reject(this.#timeoutError());
        },
        Math.max(0, deadline - Date.now()),
      );
      pool.getConnection().then(
        (conn) => {
          if (settled) {
            // It came after the caller gave up: straight back to the pool, never leaked.
            conn.release();
            return;
          }
          settled = true;
          clearTimeout(timer);
          this.#waiting--;
          resolve(conn);
        },
        (error: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.#waiting--;
          reject(error);
        },
      );
    });
  }

  #stateOf(conn: MysqlPoolConnectionLike): CoreState {
    const core = conn.connection;
    let state = this.#states.get(core);
    if (state === undefined) {
      const lifetime = this.#lifetimeMs;
      // Up to 10% less, so connections opened together do not all expire together.
      const expiresAt =
        lifetime === undefined ? Number.POSITIVE_INFINITY : Date.now() + lifetime * (1 - Math.random() * 0.1);
      const created: CoreState = { status: 'idle', lost: null, expiresAt };
      // Without a listener, an 'error' on a connection (killed, network gone) would crash the process.
      core.on('error', (error) => {
        created.lost ??= error;
      });
      this.#states.set(core, created);
      state = created;
    }
    return state;
  }

  #timeoutError(): TxScopeError {
    const c = this.counts();
    return new TxScopeError(
      ErrorCode.POOL_TIMEOUT,
      `no connection to ${this.label} within acquireTimeoutMillis (${this.#acquireMs} ms): pool of ${c.max}, ` +
        `${c.total} open, ${c.idle} idle, ${c.waiting} waiting. Transactions hold connections too long, or the ` +
        'pool is too small (raise max, or look for long transactions with leakDetectionMs)',
    );
  }

  release(connection: DriverConnection, options: { destroy: boolean }): void {
    const c = connection as MysqlConnection;
    this.#checkedOut--;
    if (options.destroy || c.state.lost !== null || Date.now() >= c.state.expiresAt) {
      c.state.lost ??= new Error('destroyed by txscope');
      c.conn.destroy();
    } else if (c.cancelling !== null) {
      // Back to the pool only once its KILL QUERY has landed, so it cannot hit the next holder.
      void c.cancelling.then(() => c.conn.release());
    } else {
      c.conn.release();
    }
  }

  /**
   * Interrupts the statement running on connection `threadId` with `KILL QUERY`, sent on a
   * connection of its own: the pool may have none to spare while it is busy.
   */
  async killQuery(threadId: number | null): Promise<void> {
    if (typeof threadId !== 'number') return;
    const mysql = await this.#loadModule();
    const connection = await mysql.createConnection({ ...this.#connectionOptions(), connectTimeout: 5000 });
    connection.on('error', () => {});
    try {
      await connection.query(`KILL QUERY ${Math.trunc(threadId)}`);
    } finally {
      await connection.end().catch(() => {});
    }
  }

  #connectionOptions(): Record<string, unknown> {
    const given = this.#pool?.pool?.config?.connectionConfig;
    if (Object.keys(this.#config).length === 0 && given !== undefined) {
      const { host, port, socketPath, user, password, database, ssl } = given;
      return Object.fromEntries(
        Object.entries({ host, port, socketPath, user, password, database, ssl }).filter(
          ([, v]) => v != null,
        ),
      );
    }
    return Object.fromEntries(Object.entries(this.#config).filter(([key]) => !poolOnlyKeys.has(key)));
  }

  classify = classifyMysqlError;

  counts(): PoolCounts {
    const core = this.#pool?.pool;
    const total = core?._allConnections?.length ?? this.#checkedOut;
    const idle = core?._freeConnections?.length ?? 0;
    return { total, idle, waiting: this.#waiting, max: this.#max() };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pool = this.#pool ?? (this.#creating ? await this.#creating.catch(() => null) : null);
    await pool?.end();
  }
}

/**
 * A driver over mysql2 (MySQL or MariaDB): give it `mysql2` pool options, or a
 * `mysql2/promise` pool you already have.
 *
 * @example
 * ```ts
 * import { createDatabase } from 'txscope';
 * import { mysql } from 'txscope/mysql';
 * export const db = createDatabase({ driver: mysql({ uri: process.env.DATABASE_URL, max: 10 }) });
 * ```
 */
export function mysql(config: MysqlConfig | MysqlPoolLike): Driver {
  if (config === null || typeof config !== 'object') {
    throw new TxScopeError(
      ErrorCode.INVALID_OPTION,
      "mysql() takes mysql2 pool options ({ uri, max, … }) or a pool from mysql2/promise's createPool()",
    );
  }
  if (!isPool(config)) {
    for (const key of [...poolKeys, 'connectionLimit'] as const) {
      const value = config[key];
      if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
        throw new TxScopeError(
          ErrorCode.INVALID_OPTION,
          `invalid option mysql.${key}: got ${JSON.stringify(value)}; allowed: a number >= 0`,
        );
      }
    }
    for (const key of ['max', 'connectionLimit'] as const) {
      const value = config[key];
      if (value !== undefined && value < 1) {
        throw new TxScopeError(
          ErrorCode.INVALID_OPTION,
          `invalid option mysql.${key}: got ${value}; allowed: >= 1`,
        );
      }
    }
  }
  return new MysqlDriver(config);
}
