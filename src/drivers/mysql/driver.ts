/** `txscope/mysql`: a driver over mysql2's own pool (MySQL or MariaDB). */
import type { Driver, DriverConnection, PoolCounts } from '../../driver.js';
import { errors } from '../../errors.js';
import { checkPoolNumbers } from '../../options.js';
import {
  defaultAcquireTimeoutMillis,
  defaultMax,
  importPeer,
  jitteredLifetimeMs,
  LazyPool,
  labelOfParts,
  labelOfUrl,
  withAcquireDeadline,
} from '../runtime.js';
import { classifyMysqlError } from './classify.js';
import {
  type CoreState,
  MysqlConnection,
  type MysqlCoreConnectionLike,
  type MysqlPoolConnectionLike,
} from './connection.js';
import { mysqlDialect } from './dialect.js';

/** The connection settings txscope reads from a pool it was given, to open its `KILL QUERY` connection. */
interface MysqlConnectionConfigLike {
  uri?: string;
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
export interface MysqlConfig extends MysqlConnectionConfigLike {
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

const poolKeys = ['max', 'acquireTimeoutMillis', 'idleTimeoutMillis', 'maxLifetimeSeconds'] as const;
/** Pool-only mysql2 options a standalone connection does not take. */
const poolOnlyKeys = new Set<string>([
  ...poolKeys,
  'connectionLimit',
  'maxIdle',
  'idleTimeout',
  'queueLimit',
  'waitForConnections',
  'resetOnRelease',
]);

function isPool(value: MysqlConfig | MysqlPoolLike): value is MysqlPoolLike {
  return typeof (value as MysqlPoolLike).getConnection === 'function';
}

function labelOf(config: MysqlConnectionConfigLike & { uri?: unknown }): string {
  if (typeof config.uri === 'string') return labelOfUrl(config.uri, 'mysql');
  return labelOfParts(
    config.database || 'mysql',
    config.socketPath ?? config.host ?? 'localhost',
    config.socketPath ? undefined : config.port,
  );
}

/** Marks a connection txscope closed itself: no later checkout may use it. */
const destroyed = new Error('destroyed by txscope');

class MysqlDriver implements Driver {
  readonly dialect = mysqlDialect;
  readonly label: string;
  readonly classify = classifyMysqlError;
  readonly #config: MysqlConfig;
  readonly #acquireMs: number;
  readonly #lifetimeSeconds: number | undefined;
  readonly #states = new WeakMap<MysqlCoreConnectionLike, CoreState>();
  readonly #pool: LazyPool<MysqlPoolLike>;
  #checkedOut = 0;
  #waiting = 0;

  constructor(source: MysqlConfig | MysqlPoolLike) {
    if (isPool(source)) {
      this.#config = {};
      this.label = labelOf(source.pool?.config?.connectionConfig ?? {});
    } else {
      this.#config = source;
      this.label = labelOf(source);
    }
    this.#pool = new LazyPool(isPool(source) ? source : null, async () =>
      (await this.#loadModule()).createPool(this.#poolOptions()),
    );
    this.#acquireMs = this.#config.acquireTimeoutMillis ?? defaultAcquireTimeoutMillis;
    this.#lifetimeSeconds = this.#config.maxLifetimeSeconds;
  }

  #loadModule(): Promise<MysqlModule> {
    return importPeer<MysqlModule>('mysql2/promise', 'txscope/mysql');
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
      this.#pool.current?.pool?.config?.connectionLimit ??
      defaultMax
    );
  }

  async acquire(): Promise<DriverConnection> {
    const pool = await this.#pool.get();
    const deadline = Date.now() + this.#acquireMs;
    for (;;) {
      const conn = await this.#take(pool, deadline);
      const known = this.#states.has(conn.connection);
      const state = this.#stateOf(conn);
      // A connection seen for the first time was just opened: it is used once even past its lifetime.
      if (state.lost === null && (!known || Date.now() < state.expiresAt)) {
        this.#checkedOut++;
        return new MysqlConnection(conn, state, this.#killQuery);
      }
      // Dead while idle, or past its lifetime: replace it before anyone uses it.
      conn.destroy();
    }
  }

  /** `pool.getConnection()` bounded by the deadline (mysql2's pool has no acquire timeout of its own). */
  #take(pool: MysqlPoolLike, deadline: number): Promise<MysqlPoolConnectionLike> {
    this.#waiting++;
    const taking = withAcquireDeadline(pool.getConnection(), {
      timeoutMs: Math.max(0, deadline - Date.now()),
      details: () => ({
        label: this.label,
        acquireTimeoutMillis: this.#acquireMs,
        counts: this.counts(),
        kind: 'pool',
      }),
      // It came after the caller gave up: straight back to the pool, never leaked.
      late: (conn) => conn.release(),
    });
    return taking.finally(() => {
      this.#waiting--;
    });
  }

  #stateOf(conn: MysqlPoolConnectionLike): CoreState {
    const core = conn.connection;
    let state = this.#states.get(core);
    if (state === undefined) {
      const lifetime = this.#lifetimeSeconds;
      const expiresAt =
        lifetime === undefined ? Number.POSITIVE_INFINITY : Date.now() + jitteredLifetimeMs(lifetime);
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

  release(connection: DriverConnection, options: { destroy: boolean }): void {
    const c = connection as MysqlConnection;
    this.#checkedOut--;
    if (options.destroy || c.state.lost !== null || Date.now() >= c.state.expiresAt) {
      c.state.lost ??= destroyed;
      c.conn.destroy();
    } else {
      c.conn.release();
    }
  }

  /**
   * Interrupts the statement running on connection `threadId` with `KILL QUERY`, sent on a
   * connection of its own: the pool may have none to spare while it is busy.
   */
  readonly #killQuery = async (threadId: number): Promise<void> => {
    const mysql = await this.#loadModule();
    const connection = await mysql.createConnection({ ...this.#connectionOptions(), connectTimeout: 5000 });
    connection.on('error', () => {});
    try {
      await connection.query(`KILL QUERY ${Math.trunc(threadId)}`);
    } finally {
      await connection.end().catch(() => {});
    }
  };

  #connectionOptions(): Record<string, unknown> {
    const given = this.#pool.current?.pool?.config?.connectionConfig;
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

  counts(): PoolCounts {
    const core = this.#pool.current?.pool;
    const total = core?._allConnections?.length ?? this.#checkedOut;
    const idle = core?._freeConnections?.length ?? 0;
    return { total, idle, waiting: this.#waiting, max: this.#max() };
  }

  close(): Promise<void> {
    return this.#pool.close((pool) => pool.end());
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
    throw errors.invalidArgument(
      'mysql()',
      "mysql2 pool options ({ uri, max, … }) or a pool from mysql2/promise's createPool()",
    );
  }
  if (!isPool(config))
    checkPoolNumbers('mysql', config, {
      numbers: [...poolKeys, 'connectionLimit'],
      sizes: ['max', 'connectionLimit'],
    });
  return new MysqlDriver(config);
}
