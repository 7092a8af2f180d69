/**
 * TypeORM's query runner over txscope: a subclass of the runner class TypeORM's own driver makes
 * (PostgresQueryRunner, MysqlQueryRunner, BetterSqlite3QueryRunner), so schema introspection,
 * migrations and result handling stay TypeORM's. What changes: it holds no connection (its
 * statements go through `db.query`), and its transaction calls are txscope boundaries, begun by
 * one call and ended by another (`startTransaction()` begins one, or a savepoint inside the
 * active one).
 */
import { Readable } from 'node:stream';
import {
  QueryFailedError,
  QueryRunnerAlreadyReleasedError,
  TransactionNotStartedError,
  QueryResult as TypeormQueryResult,
} from 'typeorm';
import type { Database } from '../../core/database.js';
import type { DialectName, IsolationLevel, QueryResult } from '../../driver.js';
import { errors, TxScopeError } from '../../errors.js';
import type { TransactionOptions } from '../../options.js';
import { beginControlled, type ControlledTransaction } from '../controlled.js';
import { ambient, type Runner } from '../shared.js';
import { mysqlConnection, pgConnection } from './connections.js';

/** The part of TypeORM's Broadcaster the runner uses (the same in 0.3 and 1.x). */
interface BroadcasterLike {
  broadcast(event: string, ...args: unknown[]): Promise<void>;
  broadcastAfterQueryEvent(
    result: BroadcastResult,
    query: string,
    parameters: unknown[] | undefined,
    success: boolean,
    executionTime: number | undefined,
    raw: unknown,
    error: unknown,
  ): void;
}

/** TypeORM's BroadcasterResult, which it does not export. */
interface BroadcastResult {
  count: number;
  promises: Promise<unknown>[];
  wait(): Promise<unknown>;
}

function broadcastResult(): BroadcastResult {
  return {
    count: 0,
    promises: [],
    async wait() {
      if (this.promises.length > 0) await Promise.all(this.promises);
      return this;
    },
  };
}

/** The members of TypeORM's query runners this subclass uses or overrides. */
export interface RunnerInternals {
  isReleased: boolean;
  isTransactionActive: boolean;
  transactionDepth: number;
  databaseConnection?: unknown;
  readonly broadcaster: BroadcasterLike;
  query(query: string, parameters?: unknown[], useStructuredResult?: boolean): Promise<unknown>;
  stream(
    query: string,
    parameters?: unknown[],
    onEnd?: (...args: unknown[]) => void,
    onError?: (...args: unknown[]) => void,
  ): Promise<unknown>;
  connect(): Promise<unknown>;
  release(): Promise<void>;
  startTransaction(isolationLevel?: string): Promise<void>;
  commitTransaction(): Promise<void>;
  rollbackTransaction(): Promise<void>;
  beforeMigration(): Promise<void>;
  afterMigration(): Promise<void>;
}

// biome-ignore lint/suspicious/noExplicitAny: TypeScript's mixin pattern requires a constructor of any[].
export type RunnerConstructor = new (...args: any[]) => RunnerInternals;

/** What the runner needs of its data source (TypeORM 0.3 and 1.x alike). */
export interface RunnerDataSource {
  readonly options: { readonly isolationLevel?: string; readonly maxQueryExecutionTime?: number };
  readonly subscribers: readonly unknown[];
  readonly logger: {
    logQuery(query: string, parameters: unknown[] | undefined, runner: unknown): unknown;
    logQueryError(error: unknown, query: string, parameters: unknown[] | undefined, runner: unknown): unknown;
    logQuerySlow(time: number, query: string, parameters: unknown[] | undefined, runner: unknown): unknown;
  };
}

export interface RunnerContext {
  db: Database;
  dialect: DialectName;
  dataSource: RunnerDataSource;
}

/** A transaction this runner began (`startTransaction`), until it commits or rolls back. */
interface Frame {
  readonly controlled: ControlledTransaction;
  /** Whether TypeORM's AfterTransactionCommit/Rollback has been broadcast for it. */
  told: boolean;
}

/** What the rest of the integration sees of a txscope query runner. */
export interface TxScopeRunner {
  /** Runs `fn` where this runner's statements run: its open transaction, else where it was bound. */
  readonly txscopeRun: Runner;
  /** Binds the runner to a context (a transaction's): its statements and transactions start there. */
  bindTo(run: Runner): void;
}

export function isTxScopeRunner(value: unknown): value is TxScopeRunner & RunnerInternals {
  return typeof (value as Partial<TxScopeRunner> | null)?.bindTo === 'function';
}

/** TypeORM's isolation levels are upper case (`READ COMMITTED`); txscope's are lower case. */
function toIsolation(level: string | undefined): IsolationLevel | undefined {
  return level === undefined ? undefined : (level.toLowerCase() as IsolationLevel);
}

function within<T>(run: Runner, fn: () => T): T {
  return run === ambient ? fn() : run(fn);
}

/** txscope's own errors reach the caller as they are; driver errors stay TypeORM's QueryFailedError. */
function unwrap(error: unknown): unknown {
  if (error instanceof QueryFailedError) {
    const cause = (error as { driverError?: unknown }).driverError;
    if (cause instanceof TxScopeError) return cause;
  }
  return error;
}

/** The subclass of `Base` (the runner class of TypeORM's driver) that runs on txscope. */
export function txscopeRunnerClass(Base: RunnerConstructor, context: RunnerContext): RunnerConstructor {
  const { db, dialect, dataSource } = context;

  class TxScopeQueryRunner extends Base implements TxScopeRunner {
    #base: Runner = ambient;
    readonly #frames: Frame[] = [];

    // biome-ignore lint/suspicious/noExplicitAny: the mixin's constructor passes TypeORM's arguments on.
    constructor(...args: any[]) {
      super(...args);
      // TypeORM reads this flag to decide whether to begin a transaction of its own (save(),
      // migrations): true inside the ambient txscope transaction too, so they join it.
      Object.defineProperty(this, 'isTransactionActive', {
        configurable: true,
        enumerable: true,
        get: () => this.#frames.length > 0 || this.#inTransaction(),
        set: () => {},
      });
    }

    get txscopeRun(): Runner {
      return this.#frames.at(-1)?.controlled.run ?? this.#base;
    }

    bindTo(run: Runner): void {
      this.#base = run;
    }

    #inTransaction(): boolean {
      return within(this.#base, () => db.current.inTransaction);
    }

    override connect(): Promise<unknown> {
      if (dialect === 'sqlite') return super.connect();
      this.databaseConnection ??=
        dialect === 'postgres'
          ? pgConnection(db, () => this.txscopeRun)
          : mysqlConnection(db, () => this.txscopeRun);
      return Promise.resolve(this.databaseConnection);
    }

    override async release(): Promise<void> {
      if (this.isReleased) return;
      this.isReleased = true;
      // A transaction left open is rolled back, as txscope does when a scope ends.
      for (let frame = this.#frames.pop(); frame !== undefined; frame = this.#frames.pop()) {
        this.transactionDepth -= 1;
        await this.#end(frame, 'rollback').catch(() => {});
      }
    }

    override async query(query: string, parameters?: unknown[], useStructuredResult?: boolean) {
      try {
        if (dialect === 'sqlite')
          return await this.#sqliteQuery(query, parameters ?? [], useStructuredResult);
        return await super.query(query, parameters, useStructuredResult);
      } catch (error) {
        throw unwrap(error);
      }
    }

    // txscope results arrive whole: a stream is the buffered rows, handed out one by one.
    override async stream(
      query: string,
      parameters?: unknown[],
      onEnd?: (...args: unknown[]) => void,
      onError?: (...args: unknown[]) => void,
    ): Promise<unknown> {
      const rows = await this.query(query, parameters);
      const stream = Readable.from(Array.isArray(rows) ? rows : []);
      if (onEnd !== undefined) stream.on('end', onEnd);
      if (onError !== undefined) stream.on('error', onError);
      return stream;
    }

    override async beforeMigration(): Promise<void> {
      if (dialect === 'sqlite') await this.query('PRAGMA foreign_keys = OFF');
      else await super.beforeMigration();
    }

    override async afterMigration(): Promise<void> {
      if (dialect === 'sqlite') await this.query('PRAGMA foreign_keys = ON');
      else await super.afterMigration();
    }

    // better-sqlite3's runner reads pragmas off its handle; here they are statements like the rest.
    protected async loadPragmaRecords(tablePath: string, pragma: string): Promise<unknown> {
      const [database, tableName] = (
        this as unknown as { splitTablePath(path: string): [string | undefined, string] }
      ).splitTablePath(tablePath);
      return this.query(`PRAGMA ${database ? `"${database}".` : ''}${pragma}("${tableName}")`);
    }

    override async startTransaction(isolationLevel?: string): Promise<void> {
      const isolation = toIsolation(isolationLevel ?? dataSource.options.isolationLevel);
      const options: TransactionOptions =
        isolation === undefined ? { propagation: 'nested' } : { propagation: 'nested', isolation };
      await this.broadcaster.broadcast('BeforeTransactionStart');
      const controlled = await within(this.txscopeRun, () => beginControlled(db, options));
      const frame: Frame = { controlled, told: false };
      if (dataSource.subscribers.length > 0) {
        // At the real outcome: after the outermost COMMIT or ROLLBACK (a released savepoint's
        // callback moves to its parent), with the connection back.
        controlled.run(() =>
          db.afterCompletion((status) => {
            frame.told = true;
            return this.broadcaster.broadcast(
              status === 'committed' ? 'AfterTransactionCommit' : 'AfterTransactionRollback',
            );
          }),
        );
      }
      this.#frames.push(frame);
      this.transactionDepth += 1;
      await this.broadcaster.broadcast('AfterTransactionStart');
    }

    override async commitTransaction(): Promise<void> {
      const frame = this.#frames.at(-1);
      if (frame === undefined) {
        // Joined the ambient transaction (`await using`, code that commits what it did not begin):
        // the boundary that began it commits it.
        if (this.#inTransaction()) return;
        throw new TransactionNotStartedError();
      }
      await this.broadcaster.broadcast('BeforeTransactionCommit');
      this.#frames.pop();
      this.transactionDepth -= 1;
      await this.#end(frame, 'commit');
    }

    override async rollbackTransaction(): Promise<void> {
      const frame = this.#frames.at(-1);
      if (frame === undefined) {
        if (this.#inTransaction()) {
          throw errors.unsupported(
            'txscope/typeorm',
            'rollbackTransaction() on a query runner that joined the ambient transaction',
            'throw from the boundary that began it (@Transactional(), db.transaction) to roll it back',
          );
        }
        throw new TransactionNotStartedError();
      }
      await this.broadcaster.broadcast('BeforeTransactionRollback');
      this.#frames.pop();
      this.transactionDepth -= 1;
      await this.#end(frame, 'rollback');
    }

    async #end(frame: Frame, outcome: 'commit' | 'rollback'): Promise<void> {
      try {
        await frame.controlled.end(outcome);
      } finally {
        // A savepoint rolled back drops its callbacks: its outcome is known now.
        if (outcome === 'rollback' && !frame.told && dataSource.subscribers.length > 0) {
          frame.told = true;
          await this.broadcaster.broadcast('AfterTransactionRollback');
        }
      }
    }

    /** better-sqlite3's runner, with the statement sent through txscope instead of its handle. */
    async #sqliteQuery(query: string, parameters: unknown[], structured: boolean | undefined) {
      if (this.isReleased) throw new QueryRunnerAlreadyReleasedError();
      const params = parameters.map((p) => (typeof p === 'boolean' ? (p ? 1 : 0) : p));
      const logger = dataSource.logger;
      logger.logQuery(query, params, this);
      await this.broadcaster.broadcast('BeforeQuery', query, params);
      const told = broadcastResult();
      const startedAt = Date.now();
      try {
        const raw: QueryResult<unknown> = await within(this.txscopeRun, () => db.query(query, params));
        const result = new TypeormQueryResult();
        if ('insertId' in raw) {
          result.affected = raw.rowCount;
          result.raw = (raw as { insertId: unknown }).insertId;
        } else {
          result.raw = raw.rows;
          result.records = raw.rows;
        }
        const took = Date.now() - startedAt;
        const slowMs = dataSource.options.maxQueryExecutionTime;
        if (slowMs && took > slowMs) logger.logQuerySlow(took, query, params, this);
        this.broadcaster.broadcastAfterQueryEvent(told, query, params, true, took, result.raw, undefined);
        return structured ? result : result.raw;
      } catch (error) {
        logger.logQueryError(error, query, params, this);
        this.broadcaster.broadcastAfterQueryEvent(told, query, params, false, undefined, undefined, error);
        throw new QueryFailedError(query, params, error as Error);
      } finally {
        await told.wait();
      }
    }
  }
  return TxScopeQueryRunner;
}
