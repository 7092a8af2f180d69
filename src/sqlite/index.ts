import type {
  AcquireIntent,
  ConnectionStatus,
  Dialect,
  Driver,
  DriverConnection,
  DriverResult,
  ErrorKind,
  IsolationLevel,
  PoolCounts,
} from '../driver.js';
import { ErrorCode, TxScopeError } from '../errors.js';

/** The part of a better-sqlite3 `Statement` txscope uses. */
export interface SqliteStatementLike {
  /** True when the statement returns rows (SELECT, PRAGMA with a result, `… RETURNING`). */
  readonly reader: boolean;
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
}

/** The part of a better-sqlite3 `Database` txscope uses. */
export interface SqliteDatabaseLike {
  prepare(source: string): SqliteStatementLike;
  exec(source: string): unknown;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  close(): unknown;
  readonly inTransaction: boolean;
  readonly open: boolean;
  readonly memory: boolean;
  readonly name: string;
}

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
   */
  readers?: number;
}

type SqliteConstructor = new (filename: string, options?: Record<string, unknown>) => SqliteDatabaseLike;

const QUERY_ONLY_ON = 'PRAGMA query_only = ON';
const defaultReaders = 4;

/**
 * SQLite syntax. SQLite has one isolation level (serializable); it has no read-only
 * transaction, so a read-only one turns on `PRAGMA query_only` for its duration.
 */
export const sqliteDialect: Dialect = {
  name: 'sqlite',
  placeholder: () => '?',
  quoteIdentifier: (name) => `"${name.replaceAll('"', '""')}"`,
  // IMMEDIATE takes the write lock up front: a read-write transaction never fails half-way with
  // SQLITE_BUSY when it upgrades from reading to writing. DEFERRED takes only a read snapshot.
  begin: ({ readOnly }) => (readOnly ? ['BEGIN DEFERRED', QUERY_ONLY_ON] : ['BEGIN IMMEDIATE']),
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  savepoint: (name) => `SAVEPOINT ${name}`,
  releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
  rollbackToSavepoint: (name) => `ROLLBACK TO SAVEPOINT ${name}`,
  isolationLevels: ['serializable'] as IsolationLevel[],
  committed: () => true,
};

const statementCacheSize = 100;
const defaultAcquireTimeoutMillis = 10_000;

/** Errors after which SQLite had already rolled the transaction back on its own (SQLITE_FULL, …). */
const endedTransaction = new WeakSet<object>();

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Classifies a better-sqlite3 error: busy and locked are retryable. */
export function classifySqliteError(error: unknown): ErrorKind {
  if (error === null || typeof error !== 'object') return 'other';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'retryable';
    if (code === 'SQLITE_INTERRUPT') return 'cancelled';
  }
  if (endedTransaction.has(error)) return 'transaction_aborted';
  const message = (error as { message?: unknown }).message;
  if (error instanceof TypeError && typeof message === 'string' && /connection is not open/.test(message)) {
    return 'connection_lost';
  }
  return 'other';
}

// better-sqlite3 binds only numbers, strings, bigints, buffers and null.
function bindable(value: unknown): unknown {
  return typeof value === 'boolean' ? (value ? 1 : 0) : value;
}

class SqliteConnection implements DriverConnection {
  readonly #cache = new Map<string, SqliteStatementLike>();
  #queryOnly = false;

  constructor(readonly db: SqliteDatabaseLike) {}

  async query(text: string, values: readonly unknown[]): Promise<DriverResult> {
    // Each statement runs synchronously on the event loop: letting other work in before each one
    // keeps a long transaction from starving the rest of the process.
    await yieldToEventLoop();
    const db = this.db;
    const inTransaction = db.inTransaction;
    // SQLite already rolled the transaction back itself (an error such as `INSERT OR ROLLBACK`):
    // nothing is left to roll back, and "no transaction is active" would only be noise.
    if (text === sqliteDialect.rollback && !inTransaction && db.open) return { rows: [], rowCount: 0 };
    try {
      const result = this.#run(text, values);
      if (text === QUERY_ONLY_ON) this.#queryOnly = true;
      else if (this.#queryOnly && !db.inTransaction) this.resetQueryOnly();
      return result;
    } catch (error) {
      if (inTransaction && !db.inTransaction && error !== null && typeof error === 'object') {
        endedTransaction.add(error);
      }
      if (this.#queryOnly && !db.inTransaction) this.resetQueryOnly();
      throw error;
    }
  }

  #run(text: string, values: readonly unknown[]): DriverResult {
    let statement = this.#cache.get(text);
    if (statement === undefined) {
      try {
        statement = this.db.prepare(text);
      } catch (error) {
        // A script of several statements (migrations): better-sqlite3 runs those with exec().
        if (
          error instanceof RangeError &&
          values.length === 0 &&
          /more than one statement/.test(error.message)
        ) {
          this.db.exec(text);
          return { rows: [], rowCount: 0 };
        }
        throw error;
      }
      if (this.#cache.size >= statementCacheSize) {
        const oldest = this.#cache.keys().next().value;
        if (oldest !== undefined) this.#cache.delete(oldest);
      }
      this.#cache.set(text, statement);
    }
    const params = values.length === 0 ? values : values.map(bindable);
    if (statement.reader) {
      const rows = statement.all(...params);
      return { rows, rowCount: rows.length };
    }
    const info = statement.run(...params);
    return { rows: [], rowCount: info.changes };
  }

  resetQueryOnly(): void {
    this.#queryOnly = false;
    try {
      this.db.pragma('query_only = OFF');
    } catch {
      // A closed database: nothing left to reset.
    }
  }

  status(): ConnectionStatus {
    if (!this.db.open) return 'failed';
    return this.db.inTransaction ? 'in_transaction' : 'idle';
  }

  // better-sqlite3 runs a statement synchronously on this thread: nothing can interrupt it.
  // A timeout takes effect when the statement returns; the next one rejects.
  async cancel(): Promise<void> {}
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

class SqliteDriver implements Driver {
  readonly dialect = sqliteDialect;
  readonly label: string;
  readonly #options: SqliteOptions;
  readonly #acquireMs: number;
  readonly #source: string | SqliteDatabaseLike;
  #connection: SqliteConnection | null = null;
  #opening: Promise<SqliteConnection> | null = null;
  #busy = false;
  readonly #queue: Waiter[] = [];
  #closed = false;
  /** Idle reader connections, and how many are open in all. */
  readonly #idleReaders: SqliteConnection[] = [];
  readonly #readers = new Set<SqliteConnection>();
  #Database: SqliteConstructor | null = null;

  constructor(source: string | SqliteDatabaseLike, options: SqliteOptions) {
    this.#source = source;
    this.#options = options;
    this.#acquireMs = options.acquireTimeoutMillis ?? defaultAcquireTimeoutMillis;
    if (typeof source === 'string') {
      this.label = isMemory(source) ? 'sqlite (memory)' : `sqlite (${source})`;
    } else {
      this.label = source.memory ? 'sqlite (memory)' : `sqlite (${source.name})`;
    }
  }

  #open(): SqliteConnection | Promise<SqliteConnection> {
    if (this.#connection !== null) return this.#connection;
    this.#opening ??= this.#create().then((connection) => {
      this.#connection = connection;
      return connection;
    });
    return this.#opening;
  }

  async #create(): Promise<SqliteConnection> {
    const source = this.#source;
    const o = this.#options;
    if (typeof source !== 'string') {
      if (o.busyTimeoutMillis !== undefined)
        source.pragma(`busy_timeout = ${Math.trunc(o.busyTimeoutMillis)}`);
      if (o.wal === true && !source.memory) source.pragma('journal_mode = WAL');
      return new SqliteConnection(source);
    }
    let Database: SqliteConstructor;
    try {
      const module = (await import('better-sqlite3')) as unknown as { default?: SqliteConstructor };
      Database = module.default ?? (module as unknown as SqliteConstructor);
    } catch (error) {
      throw new TxScopeError(
        ErrorCode.INVALID_OPTION,
        "txscope/sqlite needs the 'better-sqlite3' package: npm install better-sqlite3 (it is an optional peer dependency)",
        { cause: error },
      );
    }
    const config: Record<string, unknown> = { ...o.database };
    if (o.busyTimeoutMillis !== undefined) config.timeout = Math.trunc(o.busyTimeoutMillis);
    const db = new Database(source, config);
    if (o.wal !== false && !db.memory && config.readonly !== true) db.pragma('journal_mode = WAL');
    this.#Database = Database;
    return new SqliteConnection(db);
  }

  /**
   * A reader for a read-only transaction, when the file is in WAL mode (where readers see the
   * last commit and never wait for the writer) and one is idle or may be opened; else null.
   */
  async #reader(): Promise<SqliteConnection | null> {
    const max = this.#options.readers ?? defaultReaders;
    if (max === 0 || typeof this.#source !== 'string') return null;
    const writer = await this.#open();
    if (writer.db.memory || String(writer.db.pragma('journal_mode', { simple: true })) !== 'wal') return null;
    const idle = this.#idleReaders.pop();
    if (idle !== undefined) return idle;
    if (this.#readers.size >= max || this.#Database === null) return null;
    const o = this.#options;
    const config: Record<string, unknown> = { ...o.database, readonly: true };
    if (o.busyTimeoutMillis !== undefined) config.timeout = Math.trunc(o.busyTimeoutMillis);
    const reader = new SqliteConnection(new this.#Database(this.#source, config));
    this.#readers.add(reader);
    return reader;
  }

  // One connection: a FIFO turn stands in for the pool, so transactions of concurrent scopes
  // queue here instead of meeting SQLITE_BUSY.
  async acquire(intent?: AcquireIntent): Promise<DriverConnection> {
    if (this.#closed)
      throw new TxScopeError(ErrorCode.DATABASE_CLOSED, `${this.label} was closed with db.close()`);
    if (intent?.readOnly) {
      const reader = await this.#reader();
      if (reader !== null) return reader;
    }
    await this.#turn();
    try {
      return await this.#open();
    } catch (error) {
      this.#next();
      throw error;
    }
  }

  #turn(): Promise<void> {
    if (!this.#busy) {
      this.#busy = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const index = this.#queue.indexOf(waiter);
          if (index >= 0) this.#queue.splice(index, 1);
          reject(this.#timeoutError());
        }, this.#acquireMs),
      };
      this.#queue.push(waiter);
    });
  }

  /** Hands the connection to the next waiter, in the order they asked. */
  #next(): void {
    const waiter = this.#queue.shift();
    if (waiter === undefined) {
      this.#busy = false;
      return;
    }
    clearTimeout(waiter.timer);
    waiter.resolve();
  }

  #timeoutError(): TxScopeError {
    const c = this.counts();
    return new TxScopeError(
      ErrorCode.POOL_TIMEOUT,
      `no turn on ${this.label} within acquireTimeoutMillis (${this.#acquireMs} ms): one connection, ` +
        `${c.waiting} waiting. SQLite runs one transaction at a time: a transaction holds it too long ` +
        '(look for long transactions with leakDetectionMs), or raise acquireTimeoutMillis',
    );
  }

  release(connection: DriverConnection, options: { destroy: boolean }): void {
    const c = connection as SqliteConnection;
    if (this.#readers.has(c)) {
      try {
        if (c.db.open && c.db.inTransaction) c.db.exec('ROLLBACK');
        c.resetQueryOnly();
      } catch {
        options = { destroy: true };
      }
      if (options.destroy || this.#closed || !c.db.open) {
        this.#readers.delete(c);
        if (c.db.open) c.db.close();
      } else {
        this.#idleReaders.push(c);
      }
      return;
    }
    if (c !== this.#connection) return;
    // The one connection cannot be replaced (an in-memory database lives in it): make it clean instead.
    try {
      if (c.db.open && c.db.inTransaction) c.db.exec('ROLLBACK');
    } catch {
      // Nothing more can be done; its status shows it.
    }
    c.resetQueryOnly();
    this.#next();
  }

  classify = classifySqliteError;

  counts(): PoolCounts {
    const busy = this.#busy ? 1 : 0;
    return {
      total: this.#connection === null ? 0 : 1,
      idle: this.#connection === null ? 0 : 1 - busy,
      waiting: this.#queue.length,
      max: 1,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#queue.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new TxScopeError(ErrorCode.DATABASE_CLOSED, `${this.label} was closed with db.close()`));
    }
    for (const reader of this.#idleReaders.splice(0)) {
      this.#readers.delete(reader);
      if (reader.db.open) reader.db.close();
    }
    const connection = this.#connection ?? (this.#opening ? await this.#opening.catch(() => null) : null);
    if (connection?.db.open) connection.db.close();
  }
}

function isMemory(filename: string): boolean {
  return filename === ':memory:' || filename === '' || filename.startsWith('file::memory:');
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
    throw new TxScopeError(
      ErrorCode.INVALID_OPTION,
      "sqlite() takes a file name, ':memory:', or a better-sqlite3 Database",
    );
  }
  if (options === null || typeof options !== 'object') {
    throw new TxScopeError(ErrorCode.INVALID_OPTION, 'sqlite() options must be an object');
  }
  for (const key of ['acquireTimeoutMillis', 'busyTimeoutMillis'] as const) {
    const value = options[key];
    if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
      throw new TxScopeError(
        ErrorCode.INVALID_OPTION,
        `invalid option sqlite.${key}: got ${JSON.stringify(value)}; allowed: a number >= 0`,
      );
    }
  }
  if (options.wal !== undefined && typeof options.wal !== 'boolean') {
    throw new TxScopeError(
      ErrorCode.INVALID_OPTION,
      `invalid option sqlite.wal: got ${JSON.stringify(options.wal)}; allowed: true or false`,
    );
  }
  return new SqliteDriver(source, options);
}
