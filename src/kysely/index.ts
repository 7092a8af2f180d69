import { AsyncLocalStorage } from 'node:async_hooks';
import {
  type CompiledQuery,
  ConnectionBuilder,
  type ConnectionProvider,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type DialectAdapter,
  type DrainOuterGeneric,
  type Driver,
  Kysely,
  type Dialect as KyselyDialect,
  type KyselyPlugin,
  type KyselyProps,
  type QueryResult as KyselyQueryResult,
  type LogConfig,
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
  Transaction,
  TransactionBuilder,
  type TransactionSettings,
} from 'kysely';
import { ErrorCode, TxScopeError } from '../errors.js';
import type { Database, QueryResult, TransactionOptions } from '../index.js';

/** Options of {@link createKysely}: Kysely's own, less the dialect (txscope's driver decides it). */
export interface CreateKyselyOptions {
  plugins?: KyselyPlugin[];
  log?: LogConfig;
}

/** Runs `fn` in a captured async context (a transaction's or a pin's), or in the caller's. */
type Runner = <R>(fn: () => R) => R;

const ambient: Runner = (fn) => fn();

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
  const insertId = toInsertId(extras.insertId);
  return {
    rows,
    ...(affected ? { numAffectedRows: BigInt(result.rowCount) } : {}),
    ...(insertId === undefined ? {} : { insertId }),
  };
}

function toInsertId(value: unknown): bigint | undefined {
  if (typeof value !== 'number' && typeof value !== 'string' && typeof value !== 'bigint') return undefined;
  // Kysely's own MySQL driver reports no insertId when the statement generated none (0).
  if (String(value) === '0') return undefined;
  return BigInt(value);
}

/**
 * A Kysely connection that is no connection: each statement goes through `db.query`, so
 * txscope routes it (the ambient transaction, a pin, or autocommit on a borrowed connection).
 * A controlled transaction (`kysely.startTransaction()`) binds it to a txscope transaction.
 */
class TxScopeConnection implements DatabaseConnection {
  #run: Runner;
  #controlled: Controlled | null = null;

  constructor(
    readonly db: Database,
    run: Runner = ambient,
  ) {
    this.#run = run;
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<KyselyQueryResult<R>> {
    const result = await this.#run(() => this.db.query(compiled.sql, compiled.parameters));
    return toKyselyResult<R>(this.db, result, compiled);
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
    if (this.#controlled !== null) throw new Error('this Kysely connection already runs a transaction');
    const controlled = await Controlled.start(this.db, toTransactionOptions(settings));
    this.#controlled = controlled;
    this.#run = controlled.run;
  }

  async end(outcome: 'commit' | 'rollback'): Promise<void> {
    const controlled = this.#controlled;
    if (controlled === null) throw new Error('this Kysely connection runs no transaction');
    this.#controlled = null;
    this.#run = ambient;
    await controlled.end(outcome);
  }

  async savepointStatement(text: string): Promise<void> {
    await this.#run(() => this.db.query(text));
  }
}

const rollbackSignal = Symbol('txscope/kysely rollback');

/**
 * A txscope transaction whose body is not a callback (Kysely's `startTransaction()`): the
 * boundary stays open until `end`, and its statements run in the async context captured inside it.
 */
class Controlled {
  private constructor(
    readonly run: Runner,
    readonly done: Promise<void>,
    readonly finish: (outcome: 'commit' | 'rollback') => void,
  ) {}

  static start(db: Database, options: TransactionOptions): Promise<Controlled> {
    return new Promise<Controlled>((resolve, reject) => {
      let controlled: Controlled | undefined;
      const done = db.transaction(
        () =>
          new Promise<void>((commit, rollback) => {
            controlled = new Controlled(AsyncLocalStorage.snapshot(), done, (outcome) => {
              if (outcome === 'commit') commit();
              else rollback(rollbackSignal);
            });
            resolve(controlled);
          }),
        options,
      );
      // Refused on entry (propagation, options): the body never ran.
      done.catch((error: unknown) => {
        if (controlled === undefined) reject(error);
      });
    });
  }

  async end(outcome: 'commit' | 'rollback'): Promise<void> {
    this.finish(outcome);
    try {
      await this.done;
    } catch (error) {
      if (error !== rollbackSignal) throw error;
    }
  }
}

function toTransactionOptions(settings: TransactionSettings): TransactionOptions {
  const options: TransactionOptions = { propagation: 'nested' };
  if (settings.isolationLevel !== undefined) {
    if (settings.isolationLevel === 'snapshot') {
      throw new TxScopeError(
        ErrorCode.INVALID_OPTION,
        'txscope/kysely: isolation level "snapshot" is SQL Server only; use "serializable" or "repeatable read"',
      );
    }
    options.isolation = settings.isolationLevel;
  }
  if (settings.accessMode !== undefined) options.readOnly = settings.accessMode === 'read only';
  return options;
}

function asTxScope(connection: DatabaseConnection): TxScopeConnection {
  if (connection instanceof TxScopeConnection) return connection;
  throw new Error('txscope/kysely: this driver only handles its own connections');
}

/** Kysely's driver over a txscope database: acquiring is free, txscope takes connections itself. */
class TxScopeDriver implements Driver {
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
    return asTxScope(connection).savepointStatement(
      this.db.dialect.savepoint(this.db.dialect.quoteIdentifier(name)),
    );
  }
  rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    return asTxScope(connection).savepointStatement(
      this.db.dialect.rollbackToSavepoint(this.db.dialect.quoteIdentifier(name)),
    );
  }
  releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    return asTxScope(connection).savepointStatement(
      this.db.dialect.releaseSavepoint(this.db.dialect.quoteIdentifier(name)),
    );
  }
  async releaseConnection(): Promise<void> {}
  // The txscope database is shared: db.close() closes the pool, not kysely.destroy().
  async destroy(): Promise<void> {}
}

/** Kysely's adapter, compiler and introspector for the txscope driver's dialect; txscope's driver. */
class TxScopeDialect implements KyselyDialect {
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

/** Hands out connections bound to one async context (a transaction's or a pin's). */
class BoundConnectionProvider implements ConnectionProvider {
  constructor(
    readonly db: Database,
    readonly run: Runner,
  ) {}
  provideConnection<T>(consumer: (connection: DatabaseConnection) => Promise<T>): Promise<T> {
    return consumer(new TxScopeConnection(this.db, this.run));
  }
}

/**
 * The Kysely `createKysely` returns: its transactions and pinned connections are txscope's,
 * and the callbacks run inside them, so module-level repositories join as well.
 */
class TxScopeKysely<DB> extends Kysely<DB> {
  readonly #db: Database;
  readonly #props: KyselyProps;

  constructor(props: KyselyProps, db: Database) {
    super(props);
    this.#props = props;
    this.#db = db;
  }

  /** A copy whose statements run in the async context `run` captured. */
  bound(run: Runner): KyselyProps {
    return {
      ...this.#props,
      executor: this.#props.executor.withConnectionProvider(new BoundConnectionProvider(this.#db, run)),
    };
  }

  get txscope(): Database {
    return this.#db;
  }

  override transaction(): TransactionBuilder<DB> {
    return new TxScopeTransactionBuilder<DB>(this, this.#props, {});
  }

  override connection(): ConnectionBuilder<DB> {
    return new TxScopeConnectionBuilder<DB>(this, this.#props);
  }

  override withPlugin(plugin: KyselyPlugin): Kysely<DB> {
    return new TxScopeKysely<DB>(
      { ...this.#props, executor: this.#props.executor.withPlugin(plugin) },
      this.#db,
    );
  }

  override withoutPlugins(): Kysely<DB> {
    return new TxScopeKysely<DB>(
      { ...this.#props, executor: this.#props.executor.withoutPlugins() },
      this.#db,
    );
  }

  override withSchema(schema: string): Kysely<DB> {
    // Kysely's own withSchema adds its plugin; take it from there so the behaviour stays theirs.
    const executor = super.withSchema(schema).getExecutor();
    return new TxScopeKysely<DB>({ ...this.#props, executor }, this.#db);
  }

  override withTables<T extends Record<string, Record<string, unknown>>>(): Kysely<
    DrainOuterGeneric<DB & T>
  > {
    return new TxScopeKysely<DrainOuterGeneric<DB & T>>({ ...this.#props }, this.#db);
  }
}

/** `kysely.transaction()`: a txscope transaction ("required", a savepoint where one is active). */
class TxScopeTransactionBuilder<DB> extends TransactionBuilder<DB> {
  readonly #owner: TxScopeKysely<DB>;
  readonly #props: KyselyProps;
  readonly #settings: TransactionSettings;

  constructor(owner: TxScopeKysely<DB>, props: KyselyProps, settings: TransactionSettings) {
    super({ ...props, ...settings });
    this.#owner = owner;
    this.#props = props;
    this.#settings = settings;
  }

  override setAccessMode(accessMode: TransactionSettings['accessMode']): TransactionBuilder<DB> {
    return new TxScopeTransactionBuilder(this.#owner, this.#props, { ...this.#settings, accessMode });
  }

  override setIsolationLevel(isolationLevel: TransactionSettings['isolationLevel']): TransactionBuilder<DB> {
    return new TxScopeTransactionBuilder(this.#owner, this.#props, { ...this.#settings, isolationLevel });
  }

  override async execute<T>(callback: (trx: Transaction<DB>) => Promise<T>): Promise<T> {
    const options = toTransactionOptions(this.#settings);
    return this.#owner.txscope.transaction(
      () => callback(new Transaction<DB>(this.#owner.bound(AsyncLocalStorage.snapshot()))),
      options,
    );
  }
}

/** `kysely.connection()`: txscope's pin (`db.connection`). */
class TxScopeConnectionBuilder<DB> extends ConnectionBuilder<DB> {
  readonly #owner: TxScopeKysely<DB>;

  constructor(owner: TxScopeKysely<DB>, props: KyselyProps) {
    super(props);
    this.#owner = owner;
  }

  override execute<T>(callback: (db: Kysely<DB>) => Promise<T>): Promise<T> {
    const db = this.#owner.txscope;
    return db.connection(() =>
      callback(new TxScopeKysely<DB>(this.#owner.bound(AsyncLocalStorage.snapshot()), db)),
    );
  }
}

/**
 * A real `Kysely<DB>` over a txscope database: every query (query builders and `sql`
 * raw queries) runs through txscope, inside the ambient transaction on its connection,
 * outside it in autocommit. `kysely.transaction().execute(fn)` is a txscope transaction
 * (a savepoint where one is already active) and `kysely.connection().execute(fn)` a pin.
 * Kysely's adapter and compiler are those of the driver's dialect.
 *
 * @example
 * ```ts
 * import { createKysely } from 'txscope/kysely';
 * export const kysely = createKysely<DB>(db);
 *
 * export const findUser = (id: number) =>
 *   kysely.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
 * ```
 */
export function createKysely<DB>(db: Database, options: CreateKyselyOptions = {}): Kysely<DB> {
  if (db === null || typeof db !== 'object' || typeof db.query !== 'function' || db.dialect === undefined) {
    throw new TxScopeError(
      ErrorCode.INVALID_OPTION,
      'createKysely(db) takes a txscope database: createKysely<DB>(createDatabase({ driver }))',
    );
  }
  if (options === null || typeof options !== 'object') {
    throw new TxScopeError(ErrorCode.INVALID_OPTION, 'createKysely options must be { plugins?, log? }');
  }
  const dialect = new TxScopeDialect(db);
  // A plain Kysely builds the executor (plugins, logging); the txscope one reuses it.
  const base = new Kysely<DB>({ dialect, ...options });
  const props: KyselyProps = {
    config: { dialect, ...options },
    executor: base.getExecutor(),
    driver: new TxScopeDriver(db),
    dialect,
  };
  return new TxScopeKysely<DB>(props, db);
}
