/**
 * Kysely's driver over a txscope database: its connections are no connections, each statement
 * goes through `db.query`, so txscope routes it (the ambient transaction, a pin, or autocommit).
 */
import {
  type CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type Dialect as KyselyDialect,
  type QueryResult as KyselyQueryResult,
  MysqlAdapter,
  MysqlIntrospector,
  MysqlQueryCompiler,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type TransactionSettings,
} from 'kysely';
import type { Database } from '../../core/database.js';
import type { QueryResult } from '../../driver.js';
import { errors } from '../../errors.js';
import type { TransactionOptions } from '../../options.js';
import { beginControlled, type ControlledTransaction } from '../controlled.js';
import { ambient, insertIdOf, type Runner, savepointStatement } from '../shared.js';

const writeKinds = new Set(['InsertQueryNode', 'UpdateQueryNode', 'DeleteQueryNode', 'MergeQueryNode']);
const pgWriteCommands = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE']);

/** What a txscope result may carry beyond `rows` and `rowCount`, depending on the driver. */
interface ResultExtras {
  command?: unknown;
  insertId?: unknown;
}

function toKyselyResult<R>(
  db: Database,
  result: QueryResult<unknown>,
  compiled: CompiledQuery,
): KyselyQueryResult<R> {
  const extras = result as QueryResult<unknown> & ResultExtras;
  const rows = result.rows as R[];
  let affected: boolean;
  if (typeof extras.command === 'string') {
    affected = pgWriteCommands.has(extras.command);
  } else {
    // MySQL answers writes with a header (insertId); SQLite says nothing: the query's kind tells.
    affected =
      'insertId' in extras ||
      writeKinds.has(compiled.query.kind) ||
      (db.dialect.name !== 'postgres' && compiled.query.kind === 'RawNode' && rows.length === 0);
  }
  // Kysely's own MySQL driver reports no insertId when the statement generated none (0).
  const insertId = insertIdOf(extras.insertId);
  return {
    rows,
    ...(affected ? { numAffectedRows: BigInt(result.rowCount) } : {}),
    ...(insertId === undefined ? {} : { insertId }),
  };
}

/**
 * A Kysely connection that is no connection: each statement goes through `db.query`, so
 * txscope routes it (the ambient transaction, a pin, or autocommit on a borrowed connection).
 * A controlled transaction (`kysely.startTransaction()`) binds it to a txscope transaction.
 */
export class TxScopeConnection implements DatabaseConnection {
  #run: Runner;
  #controlled: ControlledTransaction | null = null;

  constructor(
    readonly db: Database,
    run: Runner = ambient,
  ) {
    this.#run = run;
  }

  executeQuery<R>(compiled: CompiledQuery): Promise<KyselyQueryResult<R>> {
    const run = this.#run;
    const sent =
      run === ambient
        ? this.db.query(compiled.sql, compiled.parameters)
        : run(() => this.db.query(compiled.sql, compiled.parameters));
    return sent.then((result) => toKyselyResult<R>(this.db, result, compiled));
  }

  // txscope results arrive whole: a stream is the buffered result, handed out in chunks.
  async *streamQuery<R>(
    compiled: CompiledQuery,
    chunkSize = 100,
  ): AsyncIterableIterator<KyselyQueryResult<R>> {
    const result = await this.executeQuery<R>(compiled);
    const size = Number.isInteger(chunkSize) && chunkSize > 0 ? chunkSize : 100;
    for (let i = 0; i < result.rows.length; i += size) yield { rows: result.rows.slice(i, i + size) };
  }

  async begin(settings: TransactionSettings): Promise<void> {
    // Kysely begins once per connection it acquired for startTransaction(); a second would be a bug.
    if (this.#controlled !== null) {
      throw errors.unsupported(
        'txscope/kysely',
        'a second transaction on one connection',
        'end the first one',
      );
    }
    const controlled = await beginControlled(this.db, toTransactionOptions(settings));
    this.#controlled = controlled;
    this.#run = controlled.run;
  }

  async end(outcome: 'commit' | 'rollback'): Promise<void> {
    const controlled = this.#controlled;
    if (controlled === null) {
      throw errors.unsupported('txscope/kysely', `${outcome} without a transaction`, 'begin one first');
    }
    this.#controlled = null;
    this.#run = ambient;
    await controlled.end(outcome);
  }

  async savepoint(
    kind: 'savepoint' | 'releaseSavepoint' | 'rollbackToSavepoint',
    name: string,
  ): Promise<void> {
    const text = savepointStatement(this.db, kind, name);
    await this.#run(() => this.db.query(text));
  }
}

export function toTransactionOptions(settings: TransactionSettings): TransactionOptions {
  const options: TransactionOptions = { propagation: 'nested' };
  if (settings.isolationLevel !== undefined) {
    if (settings.isolationLevel === 'snapshot') {
      throw errors.unsupported(
        'txscope/kysely',
        'isolation level "snapshot" (SQL Server only)',
        'use "serializable" or "repeatable read"',
      );
    }
    options.isolation = settings.isolationLevel;
  }
  if (settings.accessMode !== undefined) options.readOnly = settings.accessMode === 'read only';
  return options;
}

function asTxScope(connection: DatabaseConnection): TxScopeConnection {
  if (connection instanceof TxScopeConnection) return connection;
  throw errors.unsupported(
    'txscope/kysely',
    "another driver's connection",
    'use the Kysely createKysely() returns',
  );
}

/** Kysely's driver over a txscope database: acquiring is free, txscope takes connections itself. */
export class TxScopeDriver implements Driver {
  constructor(readonly db: Database) {}
  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    return new TxScopeConnection(this.db);
  }
  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return asTxScope(connection).begin(settings);
  }
  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return asTxScope(connection).end('commit');
  }
  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return asTxScope(connection).end('rollback');
  }
  savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    return asTxScope(connection).savepoint('savepoint', name);
  }
  rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    return asTxScope(connection).savepoint('rollbackToSavepoint', name);
  }
  releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    return asTxScope(connection).savepoint('releaseSavepoint', name);
  }
  async releaseConnection(): Promise<void> {}
  // The txscope database is shared: db.close() closes the pool, not kysely.destroy().
  async destroy(): Promise<void> {}
}

/** Kysely's adapter, compiler and introspector for the txscope driver's dialect; txscope's driver. */
export class TxScopeDialect implements KyselyDialect {
  constructor(readonly db: Database) {}
  createDriver(): Driver {
    return new TxScopeDriver(this.db);
  }
  createQueryCompiler(): QueryCompiler {
    switch (this.db.dialect.name) {
      case 'postgres':
        return new PostgresQueryCompiler();
      case 'mysql':
        return new MysqlQueryCompiler();
      case 'sqlite':
        return new SqliteQueryCompiler();
    }
  }
  createAdapter(): DialectAdapter {
    switch (this.db.dialect.name) {
      case 'postgres':
        return new PostgresAdapter();
      case 'mysql':
        return new MysqlAdapter();
      case 'sqlite':
        return new SqliteAdapter();
    }
  }
  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    switch (this.db.dialect.name) {
      case 'postgres':
        return new PostgresIntrospector(db);
      case 'mysql':
        return new MysqlIntrospector(db);
      case 'sqlite':
        return new SqliteIntrospector(db);
    }
  }
}
