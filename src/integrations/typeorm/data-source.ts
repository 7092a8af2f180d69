/**
 * `txscope/typeorm`: a real TypeORM `DataSource` whose managers, repositories, query builders and
 * raw queries run through txscope. TypeORM's own driver for the dialect is kept (its SQL, schema
 * builder, migrations, type handling); it is given a database library that holds no connection
 * (`driver` option, ./connections.ts) and query runners of a subclass of its own (./runner.ts).
 */
import { DataSource, type DataSourceOptions, type EntityManager, type QueryRunner } from 'typeorm';
import type { BaseDataSourceOptions } from 'typeorm/data-source/BaseDataSourceOptions.js';
import type { Database } from '../../core/database.js';
import type { DialectName } from '../../driver.js';
import { errors } from '../../errors.js';
import { assertDatabase } from '../shared.js';
import { driverModule } from './connections.js';
import { TxScopeEntityManager } from './manager.js';
import { type RunnerConstructor, type RunnerDataSource, txscopeRunnerClass } from './runner.js';

/** The TypeORM driver types txscope's dialects map to. */
export type TypeormType = 'postgres' | 'mysql' | 'mariadb' | 'better-sqlite3';

/**
 * TypeORM's data source options, less the connection: txscope's driver (`pg()`, `mysql()`,
 * `sqlite()`) owns the connections, their pool and their settings.
 */
export interface CreateDataSourceOptions extends Omit<BaseDataSourceOptions, 'type' | 'poolSize' | 'extra'> {
  /** Must match the txscope driver's dialect; by default `postgres`, `mysql` or `better-sqlite3`. Say `mariadb` on MariaDB. */
  readonly type?: TypeormType;
  /** PostgreSQL: the schema of entities without one. */
  readonly schema?: string;
  /** PostgreSQL: the extension uuid columns use. */
  readonly uuidExtension?: 'pgcrypto' | 'uuid-ossp';
  /** PostgreSQL: whether extensions the entities need are created at initialize(). */
  readonly installExtensions?: boolean;
  /** PostgreSQL: extensions to create at initialize(). */
  readonly extensions?: string[];
  /** MySQL: spatial functions of MySQL 5.x. */
  readonly legacySpatialSupport?: boolean;
  /** SQLite: the file's name, for TypeORM's own bookkeeping (txscope's `sqlite()` opened it). */
  readonly database?: string;
}

const typesOf: Record<DialectName, readonly TypeormType[]> = {
  postgres: ['postgres'],
  mysql: ['mysql', 'mariadb'],
  sqlite: ['better-sqlite3'],
};

/** Options that configure a connection or a pool: they belong to the txscope driver. */
const connectionOptions = [
  'url',
  'host',
  'port',
  'username',
  'password',
  'ssl',
  'socketPath',
  'applicationName',
  'driver',
  'nativeDriver',
  'connectorPackage',
  'replication',
  'poolSize',
  'extra',
  'connectTimeoutMS',
  'connectTimeout',
  'acquireTimeout',
  'poolErrorHandler',
  'logNotifications',
  'parseInt8',
  'useUTC',
  'charset',
  'timezone',
  'insecureAuth',
  'supportBigNumbers',
  'bigNumberStrings',
  'dateStrings',
  'debug',
  'trace',
  'multipleStatements',
  'flags',
  'enableQueryTimeout',
  'key',
  'prepareDatabase',
  'readonly',
  'fileMustExist',
  'timeout',
  'verbose',
  'nativeBinding',
  'enableWAL',
  'statementCacheSize',
] as const;

function checkOptions(db: Database, options: CreateDataSourceOptions): TypeormType {
  if (options === null || typeof options !== 'object') {
    throw errors.invalidArgument(
      'createDataSource(db, options)',
      'TypeORM data source options { entities, … }',
    );
  }
  const dialect = db.dialect.name;
  const allowed = typesOf[dialect];
  const type = options.type ?? (allowed[0] as TypeormType);
  if (!allowed.includes(type)) {
    throw errors.invalidOption(
      'createDataSource type',
      `${allowed.join(' or ')} (the ${dialect} driver's)`,
      type,
    );
  }
  for (const key of connectionOptions) {
    if ((options as Record<string, unknown>)[key] !== undefined) {
      throw errors.unsupported(
        'txscope/typeorm',
        `the connection option "${key}"`,
        'configure connections on the txscope driver given to createDatabase() (pg(), mysql(), sqlite())',
      );
    }
  }
  if (dialect !== 'sqlite' && options.database !== undefined) {
    throw errors.unsupported(
      'txscope/typeorm',
      'the connection option "database"',
      'name the database in the txscope driver’s settings',
    );
  }
  return type;
}

/** The class of the query runners TypeORM's driver makes (PostgresQueryRunner, …). */
function runnerClassOf(driver: DataSource['driver']): RunnerConstructor {
  return driver.createQueryRunner('master').constructor as RunnerConstructor;
}

class TxScopeDataSource extends DataSource {
  readonly #db: Database;
  #Runner: RunnerConstructor | undefined;
  #shared: QueryRunner | undefined;

  constructor(db: Database, options: DataSourceOptions) {
    super(options);
    this.#db = db;
  }

  override createQueryRunner(mode: 'master' | 'slave' = 'master'): QueryRunner {
    this.#Runner ??= txscopeRunnerClass(runnerClassOf(this.driver), {
      db: this.#db,
      dialect: this.#db.dialect.name,
      dataSource: this as unknown as RunnerDataSource,
    });
    const runner = new this.#Runner(this.driver, mode) as unknown as QueryRunner;
    Object.assign(runner, { manager: this.createEntityManager(runner) });
    return runner;
  }

  /**
   * `dataSource.query()` and the root manager's `query()`, with no runner of the caller's: one
   * runner of the data source's own serves them all (its statements go where the caller's
   * context says), instead of a runner and a manager made and released per statement.
   */
  override query<T = unknown>(query: string, parameters?: unknown[], queryRunner?: QueryRunner): Promise<T> {
    if (queryRunner !== undefined) return super.query<T>(query, parameters, queryRunner);
    this.#shared ??= this.createQueryRunner();
    return this.#shared.query(query, parameters) as Promise<T>;
  }

  override createEntityManager(queryRunner?: QueryRunner): EntityManager {
    return new TxScopeEntityManager(this, queryRunner);
  }

  // Its statements (server version, extensions, synchronize, migrationsRun) belong to no request.
  override async initialize(): Promise<this> {
    const db = this.#db;
    await db.detached(() => db.scope(() => super.initialize()));
    return this;
  }
}

/**
 * A real TypeORM `DataSource` over a txscope database. Its repositories (keep them at module
 * level), managers, query builders and raw `query()` run inside the ambient txscope transaction
 * on its connection, outside it in autocommit. `dataSource.transaction(fn)`,
 * `manager.transaction(fn)` and `queryRunner.startTransaction()` are txscope transactions (a
 * savepoint inside the active one), isolation level passed through; subscribers'
 * `afterTransactionCommit`/`afterTransactionRollback` run at the real outcome. Connection options
 * (url, host, poolSize, …) belong to the txscope driver and are refused here.
 *
 * @example
 * ```ts
 * import { createDataSource } from 'txscope/typeorm';
 * export const dataSource = createDataSource(db, { entities: [User, Order] });
 * await dataSource.initialize();
 * export const users = dataSource.getRepository(User);
 *
 * class OrderService {
 *   @Transactional()
 *   async place(name: string) {
 *     const user = await users.save({ name });          // same connection,
 *     await orders.save({ user, total: 10 });           // same transaction
 *   }
 * }
 * ```
 */
export function createDataSource(db: Database, options: CreateDataSourceOptions): DataSource {
  assertDatabase(db, 'createDataSource(db, options)');
  const type = checkOptions(db, options);
  const dialect = db.dialect.name;
  const typeorm: Record<string, unknown> = { ...options, type, driver: driverModule(db, dialect) };
  // TypeORM's better-sqlite3 driver requires a file name; txscope's driver has the file open already.
  if (dialect === 'sqlite') typeorm.database = options.database ?? ':memory:';
  // MySQL commits implicitly on DDL: a migration run in one transaction would end it half-way.
  if (dialect === 'mysql' && options.migrationsTransactionMode === undefined) {
    typeorm.migrationsTransactionMode = 'none';
  }
  return new TxScopeDataSource(db, typeorm as unknown as DataSourceOptions);
}
