import type { ConnectionStatus, Driver, DriverConnection, DriverResult, PoolCounts } from '../driver.js';
import { ErrorCode, TxScopeError } from '../errors.js';
import { classifyPostgresError, postgresDialect } from '../postgres/dialect.js';

/** The part of a node-postgres `PoolClient` txscope uses. */
export interface PgClientLike {
  query(config: { text: string; values?: unknown[] }): Promise<{
    rows: unknown[];
    rowCount: number | null;
    command: string;
  }>;
  release(destroy?: Error | boolean): void;
  getTransactionStatus?(): string | null;
  readonly processID?: number | null;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** The part of a node-postgres `Pool` txscope uses. */
export interface PgPoolLike {
  connect(): Promise<PgClientLike>;
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
  [option: string]: unknown;
}

const defaultAcquireTimeoutMillis = 10_000;
const defaultMax = 10;

interface PgModule {
  Pool: new (config: Record<string, unknown>) => PgPoolLike;
}

function isPool(value: PgConfig | PgPoolLike): value is PgPoolLike {
  return typeof (value as PgPoolLike).connect === 'function' && 'totalCount' in value;
}

/** `db@host:port` from a config, never the password. */
function labelOf(config: PgConfig): string {
  if (typeof config.connectionString === 'string') {
    try {
      const url = new URL(config.connectionString);
      return `${url.pathname.replace(/^\//, '') || 'postgres'}@${url.hostname}${url.port ? `:${url.port}` : ''}`;
    } catch {
      return 'postgres';
    }
  }
  return `${config.database ?? 'postgres'}@${config.host ?? 'localhost'}${config.port ? `:${config.port}` : ''}`;
}

/** The first error each client emitted: it is dead from then on. */
const clientErrors = new WeakMap<PgClientLike, Error>();
const guarded = new WeakSet<PgClientLike>();

/**
 * pg-pool removes its own 'error' listener from a client the moment it hands it out, and the
 * caller gets the client only a microtask later: an error parsed in that gap (a backend
 * terminated right after startup, its FATAL in the same chunk as ReadyForQuery) would be an
 * unhandled 'error' event and crash the process. So every client gets, synchronously at
 * checkout, a listener of ours that stays for its whole life.
 */
function guard(client: PgClientLike): void {
  if (guarded.has(client)) return;
  guarded.add(client);
  client.on('error', (error) => {
    if (!clientErrors.has(client)) clientErrors.set(client, error);
  });
}

class PgConnection implements DriverConnection {
  constructor(
    readonly client: PgClientLike,
    readonly driver: PgDriver,
  ) {
    guard(client);
  }

  /** The error the client died of, or null while it is alive. */
  get lost(): Error | null {
    return clientErrors.get(this.client) ?? null;
  }

  async query(text: string, values: readonly unknown[]): Promise<DriverResult> {
    const lost = this.lost;
    if (lost !== null) throw lost;
    const result = await this.client.query(
      values.length === 0 ? { text } : { text, values: values as unknown[] },
    );
    return { rows: result.rows, rowCount: result.rowCount ?? result.rows.length, command: result.command };
  }

  status(): ConnectionStatus {
    // The client knows it is dead: nothing more will be sent on it.
    if (this.lost !== null) return 'closed';
    switch (this.client.getTransactionStatus?.()) {
      case 'I':
        return 'idle';
      case 'T':
        return 'in_transaction';
      case 'E':
        return 'failed';
      default:
        return 'unknown';
    }
  }

  cancel(): Promise<void> {
    return this.driver.cancelBackend(this.client.processID);
  }
}

class PgDriver implements Driver {
  readonly dialect = postgresDialect;
  readonly label: string;
  readonly #config: PgConfig;
  #pool: PgPoolLike | null = null;
  #creating: Promise<PgPoolLike> | null = null;
  #closed = false;

  constructor(source: PgConfig | PgPoolLike) {
    if (isPool(source)) {
      this.#pool = source;
      this.#config = source.options as PgConfig;
      this.#watch(source);
    } else {
      this.#config = source;
    }
    this.label = labelOf(this.#config);
  }

  #watch(pool: PgPoolLike): void {
    // An idle client that errors (server restart) is removed by the pool, which then emits 'error':
    // without a listener that would crash the process.
    pool.on('error', () => {});
    pool.on('acquire', guard);
  }

  #getPool(): PgPoolLike | Promise<PgPoolLike> {
    if (this.#pool !== null) return this.#pool;
    this.#creating ??= import('pg').then(
      (module) => {
        const pg = ((module as { default?: PgModule }).default ?? module) as PgModule;
        const { acquireTimeoutMillis, maxLifetimeSeconds, ...rest } = this.#config;
        const config: Record<string, unknown> = {
          ...rest,
          max: this.#config.max ?? defaultMax,
          connectionTimeoutMillis: acquireTimeoutMillis ?? defaultAcquireTimeoutMillis,
        };
        if (maxLifetimeSeconds !== undefined) config.maxLifetimeSeconds = jitter(maxLifetimeSeconds);
        const pool = new pg.Pool(config);
        this.#watch(pool);
        this.#pool = pool;
        return pool;
      },
      (error: unknown) => {
        throw new TxScopeError(
          ErrorCode.INVALID_OPTION,
          "txscope/pg needs the 'pg' package: npm install pg (it is an optional peer dependency)",
          { cause: error },
        );
      },
    );
    return this.#creating;
  }

  async acquire(): Promise<DriverConnection> {
    const pool = await this.#getPool();
    try {
      return new PgConnection(await pool.connect(), this);
    } catch (error) {
      throw this.#acquireError(error);
    }
  }

  #acquireError(error: unknown): unknown {
    const message = error instanceof Error ? error.message : '';
    if (!/timeout exceeded when trying to connect|connection timeout/i.test(message)) return error;
    const c = this.counts();
    const ms = this.#config.acquireTimeoutMillis ?? defaultAcquireTimeoutMillis;
    return new TxScopeError(
      ErrorCode.POOL_TIMEOUT,
      `no connection to ${this.label} within acquireTimeoutMillis (${ms} ms): pool of ${c.max}, ${c.total} open, ` +
        `${c.idle} idle, ${c.waiting} waiting. Transactions hold connections too long, or the pool is too small ` +
        '(raise max, or look for long transactions with leakDetectionMs)',
      { cause: error },
    );
  }

  release(connection: DriverConnection, options: { destroy: boolean }): void {
    const c = connection as PgConnection;
    c.client.release(options.destroy || c.lost !== null ? true : undefined);
  }

  /** Cancels the statement running on backend `pid`, from another connection. */
  async cancelBackend(pid: number | null | undefined): Promise<void> {
    if (typeof pid !== 'number') return;
    const pg = ((await import('pg')) as unknown as { default?: { Client: PgClientConstructor } }).default;
    if (pg === undefined) return;
    const { acquireTimeoutMillis, maxLifetimeSeconds, max, min, idleTimeoutMillis, ...connection } =
      this.#config;
    const client = new pg.Client({ ...connection, connectionTimeoutMillis: 5000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query({ text: 'select pg_cancel_backend($1)', values: [pid] });
    } finally {
      await client.end().catch(() => {});
    }
  }

  classify = classifyPostgresError;

  counts(): PoolCounts {
    const pool = this.#pool;
    const max = this.#config.max ?? pool?.options.max ?? defaultMax;
    if (pool === null) return { total: 0, idle: 0, waiting: 0, max };
    return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pool = this.#pool ?? (this.#creating ? await this.#creating.catch(() => null) : null);
    await pool?.end();
  }
}

interface PgClientConstructor {
  new (
    config: Record<string, unknown>,
  ): {
    connect(): Promise<void>;
    query(config: { text: string; values: unknown[] }): Promise<unknown>;
    end(): Promise<void>;
    on(event: 'error', listener: () => void): unknown;
  };
}

/** Up to 10% less, so a pool's connections do not all expire in the same second. */
function jitter(seconds: number): number {
  return Math.max(1, Math.round(seconds * (1 - Math.random() * 0.1)));
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
    throw new TxScopeError(
      ErrorCode.INVALID_OPTION,
      'pg() takes node-postgres Pool options ({ connectionString, max, … }) or a pg.Pool',
    );
  }
  if (!isPool(config)) {
    for (const key of ['max', 'acquireTimeoutMillis', 'idleTimeoutMillis', 'maxLifetimeSeconds'] as const) {
      const value = config[key];
      if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
        throw new TxScopeError(
          ErrorCode.INVALID_OPTION,
          `invalid option pg.${key}: got ${JSON.stringify(value)}; allowed: a number >= 0`,
        );
      }
    }
    if (config.max !== undefined && config.max < 1) {
      throw new TxScopeError(
        ErrorCode.INVALID_OPTION,
        `invalid option pg.max: got ${config.max}; allowed: >= 1`,
      );
    }
  }
  return new PgDriver(config);
}
