/**
 * `txscope/sqlite`: a driver over better-sqlite3. SQLite has one writer: transactions of
 * concurrent scopes take turns on one connection instead of failing with `SQLITE_BUSY`; on a
 * file in WAL mode, read-only transactions run on reader connections of their own.
 */
import type { AcquireIntent, Driver, DriverConnection, PoolCounts } from '../../driver.js';
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
import { classifySqliteError, SqliteConnection, type SqliteDatabaseLike } from './connection.js';
import { sqliteDialect } from './dialect.js';

/** Options of {@link sqlite}. */
export interface SqliteOptions {
  /**
   * How long a transaction waits for its turn on the connection before `ERR_POOL_TIMEOUT`;
   * default 10000.
   */
  acquireTimeoutMillis?: number;
  /**
   * SQLite's `busy_timeout`: how long a statement waits for another process's lock before
   * `SQLITE_BUSY`. Default: better-sqlite3's (5000) for a file txscope opens; left as it is on a
   * `Database` you pass, unless set here.
   */
  busyTimeoutMillis?: number;
  /**
   * Put the file in WAL journal mode (readers do not block the writer, nor it them). Default true
   * for a file txscope opens; a `Database` you pass keeps its mode unless this is true.
   */
  wal?: boolean;
  /** better-sqlite3 constructor options (`readonly`, `fileMustExist`, `nativeBinding`, …). */
  database?: Record<string, unknown>;
  /**
   * Read-only transactions on a file in WAL mode run on reader connections of their own, so
   * they never wait for the writer; at most this many (default 4). 0 queues them with writers.
   * Readers are opened on the same file, for a `Database` you pass as for a file name.
   */
  readers?: number;
}

type SqliteConstructor = new (filename: string, options?: Record<string, unknown>) => SqliteDatabaseLike;

const defaultReaders = 4;

function isMemory(filename: string): boolean {
  return filename === ':memory:' || filename === '' || filename.startsWith('file::memory:');
}

class SqliteDriver implements Driver {
  readonly dialect = sqliteDialect;
  readonly label: string;
  readonly classify = classifySqliteError;
  readonly #options: SqliteOptions;
  readonly #acquireMs: number;
  readonly #source: string | SqliteDatabaseLike;
  /** The writer's turns: one transaction (or autocommit statement) at a time. */
  readonly #turns = new Turns();
  /** The one connection that writes, opened on first use. */
  readonly #writer: LazyPool<SqliteConnection> = new LazyPool(null, () => this.#create());
  #release: Release | null = null;
  #closed = false;
  /** Opens more connections on the same file: better-sqlite3's own constructor. */
  #Database: SqliteConstructor | null = null;
  /**
   * Whether the file is in WAL mode, where readers never wait for the writer: read once when the
   * writer opens (a file's journal mode stays; switching it needs exclusive access).
   */
  #wal = false;
  readonly #idleReaders: SqliteConnection[] = [];
  readonly #readers = new Set<SqliteConnection>();

  constructor(source: string | SqliteDatabaseLike, options: SqliteOptions) {
    this.#source = source;
    this.#options = options;
    this.#acquireMs = options.acquireTimeoutMillis ?? defaultAcquireTimeoutMillis;
    const name = typeof source === 'string' ? source : source.name;
    const memory = typeof source === 'string' ? isMemory(source) : source.memory;
    this.label = memory ? 'sqlite (memory)' : `sqlite (${name})`;
  }

  async #create(): Promise<SqliteConnection> {
    const source = this.#source;
    const o = this.#options;
    if (typeof source !== 'string') {
      // A Database's constructor opens readers on the same file.
      this.#Database = source.constructor as SqliteConstructor;
      if (o.busyTimeoutMillis !== undefined)
        source.pragma(`busy_timeout = ${Math.trunc(o.busyTimeoutMillis)}`);
      if (o.wal === true && !source.memory) source.pragma('journal_mode = WAL');
      this.#wal = !source.memory && String(source.pragma('journal_mode', { simple: true })) === 'wal';
      return new SqliteConnection(source);
    }
    const Database = await importPeer<SqliteConstructor>('better-sqlite3', 'txscope/sqlite');
    this.#Database = Database;
    const config: Record<string, unknown> = { ...o.database };
    if (o.busyTimeoutMillis !== undefined) config.timeout = Math.trunc(o.busyTimeoutMillis);
    const db = new Database(source, config);
    if (o.wal !== false && !db.memory && config.readonly !== true) db.pragma('journal_mode = WAL');
    this.#wal = !db.memory && String(db.pragma('journal_mode', { simple: true })) === 'wal';
    return new SqliteConnection(db);
  }

  /**
   * A reader for a read-only transaction, when the file is in WAL mode (where readers see the
   * last commit and never wait for the writer) and one is idle or may be opened; else null.
   */
  async #reader(): Promise<SqliteConnection | null> {
    const max = this.#options.readers ?? defaultReaders;
    if (max === 0) return null;
    const writer = await this.#writer.get();
    if (!this.#wal) return null;
    const idle = this.#idleReaders.pop();
    if (idle !== undefined) return idle;
    if (this.#readers.size >= max || this.#Database === null) return null;
    const config: Record<string, unknown> = { ...this.#options.database, readonly: true };
    if (this.#options.busyTimeoutMillis !== undefined)
      config.timeout = Math.trunc(this.#options.busyTimeoutMillis);
    const reader = new SqliteConnection(new this.#Database(writer.db.name, config));
    this.#readers.add(reader);
    return reader;
  }

  acquire(intent?: AcquireIntent): DriverConnection | Promise<DriverConnection> {
    if (this.#closed) return Promise.reject(errors.driverClosed(this.label));
    if (intent?.readOnly) return this.#reader().then((reader) => reader ?? this.#takeWriter());
    const release = this.#turns.tryTake();
    const writer = this.#writer.current;
    if (release !== null && writer !== null) {
      this.#release = release;
      return writer;
    }
    return this.#takeWriter(release);
  }

  async #takeWriter(granted: Release | null = null): Promise<DriverConnection> {
    const release =
      granted ??
      (await this.#turns.take({
        timeoutMs: this.#acquireMs,
        timeoutError: () =>
          errors.poolTimeout({
            label: this.label,
            acquireTimeoutMillis: this.#acquireMs,
            counts: this.counts(),
            kind: 'single',
            advice:
              'SQLite runs one transaction at a time: a transaction holds it too long (look for long ' +
              'transactions with leakDetectionMs), or raise acquireTimeoutMillis',
          }),
      }));
    try {
      const writer = await this.#writer.get();
      this.#release = release;
      return writer;
    } catch (error) {
      release();
      throw error;
    }
  }

  release(connection: DriverConnection, options: { destroy: boolean }): void {
    const c = connection as SqliteConnection;
    if (this.#readers.has(c)) {
      this.#releaseReader(c, options.destroy);
      return;
    }
    if (c !== this.#writer.current) return;
    // The one connection cannot be replaced (an in-memory database lives in it): make it clean instead.
    try {
      if (c.db.open && c.db.inTransaction) c.db.exec('ROLLBACK');
    } catch {
      // Nothing more can be done; its status shows it.
    }
    c.resetQueryOnly();
    const release = this.#release;
    this.#release = null;
    release?.();
  }

  #releaseReader(reader: SqliteConnection, destroy: boolean): void {
    try {
      if (reader.db.open && reader.db.inTransaction) reader.db.exec('ROLLBACK');
      reader.resetQueryOnly();
    } catch {
      destroy = true;
    }
    if (destroy || this.#closed || !reader.db.open) {
      this.#readers.delete(reader);
      if (reader.db.open) reader.db.close();
    } else {
      this.#idleReaders.push(reader);
    }
  }

  counts(): PoolCounts {
    return singleConnectionCounts(this.#writer.current !== null, this.#turns.busy, this.#turns.waiting);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#turns.rejectWaiting(() => errors.driverClosed(this.label));
    for (const reader of this.#idleReaders.splice(0)) {
      this.#readers.delete(reader);
      if (reader.db.open) reader.db.close();
    }
    await this.#writer.close((writer) => (writer.db.open ? writer.db.close() : undefined));
  }
}

/**
 * A driver over better-sqlite3: a file name (opened in WAL mode), `':memory:'`, or a
 * `Database` you already have. SQLite has one writer: transactions of concurrent scopes
 * take turns on one connection instead of failing with `SQLITE_BUSY`.
 *
 * @example
 * ```ts
 * import { createDatabase } from 'txscope';
 * import { sqlite } from 'txscope/sqlite';
 * export const db = createDatabase({ driver: sqlite('./data/app.db') });
 * ```
 */
export function sqlite(source: string | SqliteDatabaseLike, options: SqliteOptions = {}): Driver {
  if (
    typeof source !== 'string' &&
    (source === null || typeof source !== 'object' || typeof source.prepare !== 'function')
  ) {
    throw errors.invalidArgument('sqlite()', "a file name, ':memory:', or a better-sqlite3 Database");
  }
  if (options === null || typeof options !== 'object') {
    throw errors.invalidArgument(
      'sqlite() options',
      'an object: { acquireTimeoutMillis?, busyTimeoutMillis?, wal?, readers? }',
    );
  }
  checkPoolNumbers('sqlite', options as Record<string, unknown>, {
    numbers: ['acquireTimeoutMillis', 'busyTimeoutMillis', 'readers'],
    sizes: [],
  });
  if (options.wal !== undefined && typeof options.wal !== 'boolean') {
    throw errors.invalidOption('sqlite.wal', 'true or false', options.wal);
  }
  return new SqliteDriver(source, options);
}
