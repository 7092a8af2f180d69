/**
 * `txscope/kysely`: a real `Kysely` whose queries run through txscope. Its `transaction()` is a
 * txscope transaction (a savepoint where one is active) and `connection()` a pin.
 */
import {
  ConnectionBuilder,
  type ConnectionProvider,
  type DatabaseConnection,
  type DrainOuterGeneric,
  Kysely,
  type KyselyPlugin,
  type KyselyProps,
  type LogConfig,
  Transaction,
  TransactionBuilder,
  type TransactionSettings,
} from 'kysely';
import type { Database } from '../../core/database.js';
import { errors } from '../../errors.js';
import { ambient, assertDatabase, type Runner } from '../shared.js';
import { TxScopeConnection, TxScopeDialect, TxScopeDriver, toTransactionOptions } from './connection.js';

/** Options of {@link createKysely}: Kysely's own, less the dialect (txscope's driver decides it). */
export interface CreateKyselyOptions {
  plugins?: KyselyPlugin[];
  log?: LogConfig;
}

/** A runner bound to the async context it was made in: a transaction's or a pin's. */
function runHere(db: Database): Runner {
  return db.bind(<R>(fn: () => R): R => fn()) as Runner;
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
      () => callback(new Transaction<DB>(this.#owner.bound(runHere(this.#owner.txscope)))),
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
    return db.connection(() => callback(new TxScopeKysely<DB>(this.#owner.bound(runHere(db)), db)));
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
  assertDatabase(db, 'createKysely(db)');
  if (options === null || typeof options !== 'object') {
    throw errors.invalidArgument('createKysely(db, options)', 'options { plugins?, log? }');
  }
  const dialect = new TxScopeDialect(db);
  // A plain Kysely builds the executor (plugins, logging); the txscope one reuses it.
  const base = new Kysely<DB>({ dialect, ...options });
  const props: KyselyProps = {
    config: { dialect, ...options },
    // Its connections cost nothing to make: they are handed out at once, with no acquire or
    // release round of promises (txscope takes the real connection itself, per statement).
    executor: base.getExecutor().withConnectionProvider(new BoundConnectionProvider(db, ambient)),
    driver: new TxScopeDriver(db),
    dialect,
  };
  return new TxScopeKysely<DB>(props, db);
}
