/** `txscope/pglite`: an in-process PostgreSQL (PGlite), one connection that holders take turns on. */
import type { ConnectionStatus, Driver, DriverConnection, DriverResult, PoolCounts } from '../../driver.js';
import { errors } from '../../errors.js';
import { checkPoolNumbers } from '../../options.js';
import {
  defaultAcquireTimeoutMillis,
  importPeer,
  LazyPool,
  type Release,
  singleConnectionCounts,
  Turns,
} from '../runtime.js';
import { classifyPostgresError } from './classify.js';
import { postgresDialect } from './dialect.js';

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
  readonly classify = classifyPostgresError;
  readonly #turns = new Turns();
  readonly #acquireTimeoutMillis: number;
  /** Started on first use: a database that is created and closed unused never boots PGlite. */
  readonly #connection: LazyPool<PGliteConnection>;
  #release: Release | null = null;

  constructor(source: PGliteLike | string | undefined, acquireTimeoutMillis: number) {
    this.#acquireTimeoutMillis = acquireTimeoutMillis;
    if (typeof source === 'object') this.label = 'pglite';
    else this.label = source === undefined ? 'pglite (memory)' : `pglite (${source})`;
    this.#connection = new LazyPool(null, async () => {
      const db =
        typeof source === 'object'
          ? source
          : new (await importPeer<PGliteModule>('@electric-sql/pglite', 'txscope/pglite')).PGlite(source);
      await db.waitReady;
      return new PGliteConnection(db);
    });
  }

  acquire(): DriverConnection | Promise<DriverConnection> {
    const release = this.#turns.tryTake();
    const ready = this.#connection.current;
    if (release !== null && ready !== null) return this.#hand(ready, release);
    const turn =
      release !== null
        ? Promise.resolve(release)
        : this.#turns.take({
            timeoutMs: this.#acquireTimeoutMillis,
            timeoutError: () =>
              errors.poolTimeout({
                label: 'the PGlite connection',
                acquireTimeoutMillis: this.#acquireTimeoutMillis,
                counts: this.counts(),
                kind: 'single',
              }),
          });
    return turn.then(async (granted) => {
      try {
        return this.#hand(await this.#connection.get(), granted);
      } catch (error) {
        granted();
        throw error;
      }
    });
  }

  #hand(connection: PGliteConnection, release: Release): PGliteConnection {
    this.#release = release;
    return connection;
  }

  release(connection: DriverConnection, options: { destroy: boolean }): void {
    const release = this.#release;
    if (connection !== this.#connection.current || release === null) return;
    this.#release = null;
    const db = (connection as PGliteConnection).db;
    if (!options.destroy || !db.isInTransaction()) {
      release();
      return;
    }
    // The one connection cannot be replaced: make it clean before the next holder gets it.
    db.query('ROLLBACK')
      .catch(() => {})
      .finally(release);
  }

  counts(): PoolCounts {
    return singleConnectionCounts(true, this.#turns.busy, this.#turns.waiting);
  }

  close(): Promise<void> {
    return this.#connection.close((connection) => (connection.db.closed ? undefined : connection.db.close()));
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
    throw errors.invalidArgument('pglite()', 'a PGlite instance, a data directory, or nothing (in memory)');
  }
  checkPoolNumbers('pglite', options as Record<string, unknown>, {
    numbers: ['acquireTimeoutMillis'],
    sizes: [],
  });
  const timeout = options.acquireTimeoutMillis ?? defaultAcquireTimeoutMillis;
  if (timeout <= 0) throw errors.invalidOption('pglite.acquireTimeoutMillis', 'a number > 0', timeout);
  return new PGliteDriver(source, timeout);
}
