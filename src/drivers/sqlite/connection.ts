/** One better-sqlite3 connection: the writer, or a reader of a WAL file. */
import type {
  BeginRequest,
  ConnectionStatus,
  DriverConnection,
  DriverResult,
  ErrorKind,
} from '../../driver.js';
import { classifySqliteCode } from './classify.js';
import { QUERY_ONLY_OFF, QUERY_ONLY_ON, sqliteDialect } from './dialect.js';

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

const statementCacheSize = 100;

/** Errors after which SQLite had already rolled the transaction back on its own (SQLITE_FULL, …). */
const endedTransaction = new WeakSet<object>();

/**
 * Classifies a better-sqlite3 error: the database's codes, plus what only this driver knows (a
 * transaction SQLite ended by itself, a connection closed under us).
 */
export function classifySqliteError(error: unknown): ErrorKind {
  const kind = classifySqliteCode(error);
  if (kind !== 'other' || error === null || typeof error !== 'object') return kind;
  if (endedTransaction.has(error)) return 'transaction_aborted';
  const message = (error as { message?: unknown }).message;
  if (error instanceof TypeError && typeof message === 'string' && /connection is not open/.test(message)) {
    return 'connection_lost';
  }
  return 'other';
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// better-sqlite3 binds only numbers, strings, bigints, buffers and null.
function bindable(value: unknown): unknown {
  return typeof value === 'boolean' ? (value ? 1 : 0) : value;
}

export class SqliteConnection implements DriverConnection {
  readonly #cache = new Map<string, SqliteStatementLike>();
  /** Whether `PRAGMA query_only` is on: turned on by a read-only transaction, off once after it. */
  #queryOnly = false;

  constructor(readonly db: SqliteDatabaseLike) {}

  async query(text: string, values: readonly unknown[]): Promise<DriverResult> {
    // Each statement runs synchronously on the event loop: letting other work in before each one
    // keeps a long transaction from starving the rest of the process.
    await yieldToEventLoop();
    return this.#execute(text, values);
  }

  /** BEGIN and the first statement in one turn of the event loop: the statement runs only if BEGIN did. */
  async queryAfterBegin(
    text: string,
    values: readonly unknown[],
    begin: BeginRequest,
  ): Promise<DriverResult> {
    await yieldToEventLoop();
    for (const statement of begin.statements) this.#execute(statement, []);
    begin.began();
    return this.#execute(text, values);
  }

  #execute(text: string, values: readonly unknown[]): DriverResult {
    const db = this.db;
    const inTransaction = db.inTransaction;
    // SQLite already rolled the transaction back itself (an error such as `INSERT OR ROLLBACK`):
    // nothing is left to roll back, and "no transaction is active" would only be noise.
    if (text === sqliteDialect.rollback && !inTransaction && db.open) return { rows: [], rowCount: 0 };
    try {
      const result = this.#run(text, values);
      if (text === QUERY_ONLY_ON) this.#queryOnly = true;
      else if (!db.inTransaction) this.resetQueryOnly();
      return result;
    } catch (error) {
      if (inTransaction && !db.inTransaction && error !== null && typeof error === 'object') {
        endedTransaction.add(error);
      }
      if (!db.inTransaction) this.resetQueryOnly();
      throw error;
    }
  }

  /** A write also says the rowid it inserted (`insertId`, as mysql2's results do), from better-sqlite3's run(). */
  #run(text: string, values: readonly unknown[]): DriverResult & { insertId?: number | bigint } {
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
    return { rows: [], rowCount: info.changes, insertId: info.lastInsertRowid };
  }

  /** Turns `query_only` off again after a read-only transaction; a no-op when it is not on. */
  resetQueryOnly(): void {
    if (!this.#queryOnly) return;
    this.#queryOnly = false;
    try {
      this.db.exec(QUERY_ONLY_OFF);
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
