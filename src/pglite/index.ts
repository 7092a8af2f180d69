import type { ConnectionStatus, Driver, DriverConnection, DriverResult, PoolCounts } from '../driver.js';
import { ErrorCode, TxScopeError } from '../errors.js';
import { Mutex } from '../mutex.js';
import { classifyPostgresError, postgresDialect } from '../postgres/dialect.js';

/** The part of a PGlite instance txscope uses. */
export interface PGliteLike {
  query<T>(
    text: string,
    params?: unknown[],
  ): Promise<{ rows: T[]; affectedRows?: number | undefined; command?: string | undefined }>;
  isInTransaction(): boolean;
  close(): Promise<void>;
  readonly waitReady: Promise<void>;
  readonly closed: boolean;
}

/** Options of {@link pglite}. */
export interface PGliteOptions {
  /** How long a statement or transaction waits for its turn on the one connection; default 10000. */
  acquireTimeoutMillis?: number;
}

interface PGliteModule {
  PGlite: new (dataDir?: string) => PGliteLike;
}

class PGliteConnection implements DriverConnection {
  constructor(readonly db: PGliteLike) {}

  async query(text: string, values: readonly unknown[]): Promise<DriverResult> {
    const result = await this.db.query(text, values as unknown[]);
    return {
      rows: result.rows,
      rowCount: result.affectedRows || result.rows.length,
      command: result.command,
    };
  }

  status(): ConnectionStatus {
    return this.db.isInTransaction() ? 'in_transaction' : 'idle';
  }

  // PGlite runs statements in-process on one thread: there is no second session to cancel from.
  async cancel(): Promise<void> {}
}

class PGliteDriver implements Driver {
  readonly dialect = postgresDialect;
  readonly label: string;
  readonly #turns = new Mutex();
  /** The instance, once given or started; `start` makes one on first use. */
  #db: PGliteLike | Promise<PGliteLike> | null;
  readonly #start: () => Promise<PGliteLike>;
  #holder: PGliteConnection | null = null;
  #waiting = 0;

  readonly #acquireTimeoutMillis: number;

  constructor(source: PGliteLike | string | undefined, acquireTimeoutMillis: number) {
    this.#acquireTimeoutMillis = acquireTimeoutMillis;
    if (typeof source === 'object') {
      this.#db = source;
      this.label = 'pglite';
      this.#start = async () => source;
    } else {
      this.label = source === undefined ? 'pglite (memory)' : `pglite (${source})`;
      this.#db = null;
      // Started on first use: a database that is created and closed unused never boots PGlite.
      this.#start = () =>
        import('@electric-sql/pglite').then(
          (module) => {
            const db = new (module as unknown as PGliteModule).PGlite(source);
            this.#db = db;
            return db;
          },
          (error: unknown) => {
            throw new TxScopeError(
              ErrorCode.INVALID_OPTION,
              "txscope/pglite needs the '@electric-sql/pglite' package: npm install @electric-sql/pglite",
              { cause: error },
            );
          },
        );
    }
  }

  // One connection: a FIFO turn stands in for the pool.
  async acquire(): Promise<DriverConnection> {
    this.#waiting++;
    let unlock: () => void;
    try {
      unlock = await this.#turn();
    } finally {
      this.#waiting--;
    }
    try {
      this.#db ??= this.#start();
      const db = await this.#db;
      await db.waitReady;
      this.#holder = new PGliteConnection(db);
      this.#unlock = unlock;
      return this.#holder;
    } catch (error) {
      unlock();
      throw error;
    }
  }

  #unlock: (() => void) | null = null;

  /** The next turn on the one connection, or ERR_POOL_TIMEOUT after `acquireTimeoutMillis`. */
  #turn(): Promise<() => void> {
    const turn = this.#turns.lock();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // The turn still comes later: hand it straight on.
        turn.then((unlock) => unlock());
        reject(
          new TxScopeError(
            ErrorCode.POOL_TIMEOUT,
            `no turn on the PGlite connection within acquireTimeoutMillis (${this.#acquireTimeoutMillis} ms): ` +
              `1 connection, busy, ${this.#waiting} waiting. A transaction holds it too long (leakDetectionMs shows where)`,
          ),
        );
      }, this.#acquireTimeoutMillis);
    });
    return Promise.race([turn, timeout]).finally(() => clearTimeout(timer));
  }

  release(connection: DriverConnection, options: { destroy: boolean }): void {
    if (connection !== this.#holder) return;
    this.#holder = null;
    const unlock = this.#unlock;
    this.#unlock = null;
    const db = (connection as PGliteConnection).db;
    if (!options.destroy || !db.isInTransaction()) {
      unlock?.();
      return;
    }
    // The one connection cannot be replaced: make it clean before the next holder gets it.
    db.query('ROLLBACK')
      .catch(() => {})
      .finally(() => unlock?.());
  }

  classify = classifyPostgresError;

  counts(): PoolCounts {
    const busy = this.#holder !== null ? 1 : 0;
    return { total: 1, idle: 1 - busy, waiting: this.#waiting, max: 1 };
  }

  async close(): Promise<void> {
    if (this.#db === null) return;
    const db = await this.#db;
    if (!db.closed) await db.close();
  }
}

/**
 * An in-process PostgreSQL (PGlite): a PGlite instance, a data directory, or in memory
 * when omitted. It has one connection: transactions of concurrent scopes take turns, each
 * waiting at most `acquireTimeoutMillis` (default 10 s) for it.
 *
 * @example
 * ```ts
 * import { createDatabase } from 'txscope';
 * import { pglite } from 'txscope/pglite';
 * const db = createDatabase({ driver: pglite('./.data/app') });
 * ```
 */
export function pglite(source?: PGliteLike | string, options: PGliteOptions = {}): Driver {
  if (source !== undefined && typeof source !== 'string' && (source === null || typeof source !== 'object')) {
    throw new TxScopeError(
      ErrorCode.INVALID_OPTION,
      'pglite() takes a PGlite instance, a data directory, or nothing (in memory)',
    );
  }
  const timeout = options.acquireTimeoutMillis ?? 10_000;
  if (!(typeof timeout === 'number' && timeout > 0)) {
    throw new TxScopeError(
      ErrorCode.INVALID_OPTION,
      `invalid option pglite.acquireTimeoutMillis: got ${JSON.stringify(timeout)}; allowed: a number > 0`,
    );
  }
  return new PGliteDriver(source, timeout);
}
