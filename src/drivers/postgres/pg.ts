/** `txscope/pg`: a driver over node-postgres's own `pg.Pool`. */
import type { Driver, DriverConnection, DriverResult, PoolCounts } from '../../driver.js';
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
} from '../runtime.js';
import { classifyPostgresError } from './classify.js';
import { postgresDialect } from './dialect.js';
import {
  type BeginQueryClass,
  beginQueryClass,
  guard,
  type PgClientLike,
  PgConnection,
  type PgQueryClass,
  runOnce,
} from './pg-connection.js';

/** The part of a node-postgres `Pool` txscope uses. */
export interface PgPoolLike {
  connect(callback: (error: Error | undefined, client: PgClientLike | undefined) => void): void;
  end(): Promise<void>;
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options: { max?: number | undefined };
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'acquire', listener: (client: PgClientLike) => void): unknown;
}

/**
 * node-postgres `Pool` options (passed through as they are) plus `acquireTimeoutMillis`.
 * Connection strings and passwords never appear in txscope's errors or events.
 */
export interface PgConfig {
  connectionString?: string;
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  password?: string | (() => string | Promise<string>);
  ssl?: unknown;
  /** Pool size; default 10. */
  max?: number;
  min?: number;
  idleTimeoutMillis?: number;
  /** Close connections after this many seconds (with jitter, so they do not all expire at once). */
  maxLifetimeSeconds?: number;
  /** How long an acquire waits for a connection before `ERR_POOL_TIMEOUT`; default 10000. */
  acquireTimeoutMillis?: number;
  application_name?: string;
  statement_timeout?: number;
  /**
   * `'transaction'` when a transaction-mode pooler (PgBouncer, RDS Proxy, Supavisor) stands between
   * txscope and PostgreSQL: `db.connection(fn)`, whose session state the pooler would not keep,
   * is refused with `ERR_INVALID_OPTION` instead of silently running on changing backends.
   */
  pooler?: 'transaction';
  [option: string]: unknown;
}

interface PgModule {
  Pool: new (config: Record<string, unknown>) => PgPoolLike;
  Query: PgQueryClass;
}

const poolOptionKeys = ['max', 'acquireTimeoutMillis', 'idleTimeoutMillis', 'maxLifetimeSeconds'] as const;

function isPool(value: PgConfig | PgPoolLike): value is PgPoolLike {
  return typeof (value as PgPoolLike).connect === 'function' && 'totalCount' in value;
}

function labelOf(config: PgConfig): string {
  if (typeof config.connectionString === 'string') return labelOfUrl(config.connectionString, 'postgres');
  return labelOfParts(config.database ?? 'postgres', config.host ?? 'localhost', config.port);
}

/** node-postgres's own message when its pool's connectionTimeoutMillis ran out. */
const poolTimeoutMessage = /timeout exceeded when trying to connect|connection timeout/i;

class PgDriver implements Driver {
  readonly dialect = postgresDialect;
  readonly label: string;
  readonly classify = classifyPostgresError;
  readonly sessions: 'kept' | 'per_transaction';
  readonly #config: PgConfig;
  readonly #acquireTimeoutMillis: number;
  readonly #pool: LazyPool<PgPoolLike>;
  #BeginQuery: BeginQueryClass | null = null;
  readonly #connections = new WeakMap<PgClientLike, PgConnection>();

  constructor(source: PgConfig | PgPoolLike) {
    this.#config = isPool(source) ? (source.options as PgConfig) : source;
    this.#acquireTimeoutMillis = this.#config.acquireTimeoutMillis ?? defaultAcquireTimeoutMillis;
    this.label = labelOf(this.#config);
    this.sessions = this.#config.pooler === 'transaction' ? 'per_transaction' : 'kept';
    this.#pool = new LazyPool(isPool(source) ? this.#watch(source) : null, () => this.#makePool());
  }

  #watch(pool: PgPoolLike): PgPoolLike {
    // An idle client that errors (server restart) is removed by the pool, which then emits 'error':
    // without a listener that would crash the process.
    pool.on('error', () => {});
    pool.on('acquire', guard);
    return pool;
  }

  /** node-postgres itself, for its Pool and the Query class BEGIN rides on. */
  async #load(): Promise<PgModule> {
    const pg = await importPeer<PgModule>('pg', 'txscope/pg');
    this.#BeginQuery ??= beginQueryClass(pg.Query);
    return pg;
  }

  async #makePool(): Promise<PgPoolLike> {
    const pg = await this.#load();
    const { acquireTimeoutMillis, maxLifetimeSeconds, pooler, ...rest } = this.#config;
    const config: Record<string, unknown> = {
      ...rest,
      max: this.#config.max ?? defaultMax,
      connectionTimeoutMillis: this.#acquireTimeoutMillis,
    };
    if (maxLifetimeSeconds !== undefined) {
      // node-postgres counts whole seconds, and 0 would mean forever.
      config.maxLifetimeSeconds = Math.max(1, Math.round(jitteredLifetimeMs(maxLifetimeSeconds) / 1000));
    }
    return this.#watch(new pg.Pool(config));
  }

  /** The pool, once node-postgres is loaded (for the Query class BEGIN rides on, even with a given pool). */
  async #start(): Promise<PgPoolLike> {
    await this.#load();
    return this.#pool.get();
  }

  acquire(): Promise<DriverConnection> {
    const pool = this.#pool.current;
    if (pool !== null && this.#BeginQuery !== null) return this.#connect(pool);
    return this.#start().then((started) => this.#connect(started));
  }

  query(text: string, values: readonly unknown[]): Promise<DriverResult> {
    const pool = this.#pool.current;
    if (pool === null || this.#BeginQuery === null) return this.#start().then(() => this.query(text, values));
    return new Promise<DriverResult>((resolve, reject) => {
      pool.connect((error, client) => {
        if (error !== undefined || client === undefined) reject(this.#acquireError(error));
        else
          runOnce(client, { text, values }, (failed, result) =>
            failed ? reject(failed) : resolve(result as DriverResult),
          );
      });
    });
  }

  #connect(pool: PgPoolLike): Promise<DriverConnection> {
    return new Promise<DriverConnection>((resolve, reject) => {
      pool.connect((error, client) => {
        if (error !== undefined || client === undefined) reject(this.#acquireError(error));
        else resolve(this.#connectionOf(client));
      });
    });
  }

  #connectionOf(client: PgClientLike): PgConnection {
    let connection = this.#connections.get(client);
    if (connection === undefined) {
      connection = new PgConnection(client, this.#BeginQuery as BeginQueryClass);
      this.#connections.set(client, connection);
    }
    return connection;
  }

  #acquireError(error: Error | undefined): unknown {
    if (error === undefined || !poolTimeoutMessage.test(error.message)) return error;
    const details = {
      label: this.label,
      acquireTimeoutMillis: this.#acquireTimeoutMillis,
      counts: this.counts(),
      kind: 'pool',
    } as const;
    return errors.poolTimeout(details, error);
  }

  release(connection: DriverConnection, options: { destroy: boolean }): void {
    const c = connection as PgConnection;
    c.client.release(options.destroy || c.lost !== null ? true : undefined);
  }

  counts(): PoolCounts {
    const pool = this.#pool.current;
    const max = this.#config.max ?? pool?.options.max ?? defaultMax;
    if (pool === null) return { total: 0, idle: 0, waiting: 0, max };
    return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max };
  }

  close(): Promise<void> {
    return this.#pool.close((pool) => pool.end());
  }
}

/**
 * A driver over node-postgres: give it `Pool` options, or a `Pool` you already have.
 *
 * @example
 * ```ts
 * import { createDatabase } from 'txscope';
 * import { pg } from 'txscope/pg';
 * export const db = createDatabase({ driver: pg({ connectionString: process.env.DATABASE_URL, max: 10 }) });
 * ```
 */
export function pg(config: PgConfig | PgPoolLike): Driver {
  if (config === null || typeof config !== 'object') {
    throw errors.invalidArgument(
      'pg()',
      'node-postgres Pool options ({ connectionString, max, … }) or a pg.Pool',
    );
  }
  if (!isPool(config)) checkPoolNumbers('pg', config, { numbers: poolOptionKeys });
  const pooler = (config as PgConfig).pooler;
  if (pooler !== undefined && pooler !== 'transaction') {
    throw errors.invalidOption('pg() pooler', "'transaction' (a transaction-mode pooler) or nothing", pooler);
  }
  return new PgDriver(config);
}
