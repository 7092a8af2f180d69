/**
 * The object users hold: `createDatabase` returns it, and it has the public API only. Each method
 * hands over to the module that does the job (routing, boundaries, scopes, pins, hooks).
 */
import type { Dialect, IsolationLevel, PoolCounts, QueryResult } from '../driver.js';
import { errors } from '../errors.js';
import {
  checkDatabaseOptions,
  checkTransactionOptions,
  type DatabaseOptions,
  type ScopeOptions,
  type TransactionOptions,
} from '../options.js';
import { compile, SqlFragment } from '../sql.js';
import { enterBoundary } from './boundary.js';
import { bind, lookup, noLeases, storage } from './context.js';
import { type Boundary, type TransactionalDecorator, transactionalDecorator } from './decorator.js';
import { type ActivityCounts, Engine } from './engine.js';
import { type CompletionStatus, registerHook } from './hooks.js';
import { bindLazy } from './lazy.js';
import { runPinned } from './pin.js';
import type { ConnectionCounts } from './pool.js';
import { claimDefault, releaseDefault } from './registry.js';
import type { TargetStats } from './replicas.js';
import { routeStatement } from './routing.js';
import { runScope, type ScopeInfo } from './scope.js';

/** What the current async context sees of this database. */
export interface CurrentState {
  inScope: boolean;
  inTransaction: boolean;
  /** Transaction boundaries entered in the current transaction (0 outside one). */
  depth: number;
  readOnly: boolean;
  isolation: IsolationLevel | null;
  /** Live counters of the current scope, or null outside one. */
  scope: ScopeInfo | null;
}

/** Counters of `db.stats()`. */
export interface DatabaseStats extends ConnectionCounts, ActivityCounts {
  name: string;
  /** The driver pool's own counts. */
  pool: PoolCounts;
  /**
   * With `replicas` only: each target (the primary first, then each replica) with its health,
   * lag, statements and transactions served (rule 20).
   */
  targets?: TargetStats[];
}

/** A database: the one object repositories and services use. */
export interface Database {
  readonly name: string;
  readonly dialect: Dialect;
  /**
   * Runs one statement: inside the current transaction if there is one, else in
   * autocommit on a connection borrowed for it alone.
   *
   * @example
   * ```ts
   * const { rows } = await db.query<User>(sql`select * from users where id = ${id}`);
   * const r = await db.query('select * from users where id = $1', [id]);
   * ```
   */
  query<Row = Record<string, unknown>>(
    statement: SqlFragment | string,
    values?: readonly unknown[],
  ): Promise<QueryResult<Row>>;
  /**
   * Runs `fn` under a transaction boundary: commit when it resolves, roll back when it throws.
   *
   * @example
   * ```ts
   * await db.transaction(async () => {
   *   await db.query(sql`update accounts set balance = balance - ${n} where id = ${from}`);
   *   await db.query(sql`update accounts set balance = balance + ${n} where id = ${to}`);
   * }, { isolation: 'serializable', retry: { attempts: 3 } });
   * ```
   */
  transaction<T>(fn: () => T | Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * A method decorator (TC39 or `experimentalDecorators`) or a higher-order function.
   *
   * @example
   * ```ts
   * class Users { @db.transactional() async signUp(input: Input) { ... } }
   * const signUp = db.transactional({ isolation: 'serializable' })(async (input: Input) => { ... });
   * ```
   */
  transactional(options?: TransactionOptions): TransactionalDecorator;
  /**
   * Binds a fresh session to the async context for the life of `fn` (a request, a job).
   * Inside a scope, joins it.
   *
   * @example
   * ```ts
   * await db.scope(() => handle(req, res), { signal: abortController.signal });
   * ```
   */
  scope<T>(fn: () => T | Promise<T>, options?: ScopeOptions): Promise<T>;
  /**
   * Pins one connection for `fn` without a transaction (session settings, advisory locks).
   *
   * @example
   * ```ts
   * await db.connection(async () => { await db.query('set search_path to app'); ... });
   * ```
   */
  connection<T>(fn: () => T | Promise<T>): Promise<T>;
  /**
   * Runs `fn` outside any scope and transaction: work meant to outlive the request. A lazy
   * thenable `fn` returns (a Prisma query, which starts only when awaited) runs detached too,
   * wherever it is awaited.
   *
   * @example
   * ```ts
   * db.detached(() => sendWelcomeEmail(user.id)); // not awaited, not in the request's transaction
   * ```
   */
  detached<T>(fn: () => T): T;
  /**
   * Returns `fn` bound to the current scope and transaction: wherever it is called later (an
   * event emitter, a callback API), its statements run where they would have run here.
   *
   * @example
   * ```ts
   * stream.on('data', db.bind((row) => db.query(sql`insert into copy values (${row.id})`)));
   * ```
   */
  bind<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
  /**
   * Runs `cb` just before COMMIT, inside the transaction; a throw rolls it back.
   *
   * @example
   * ```ts
   * db.beforeCommit(() => db.query(sql`insert into outbox ...`));
   * ```
   */
  beforeCommit(cb: () => unknown): void;
  /**
   * Runs `cb` after the outermost COMMIT, once the connection is back (at once outside a transaction).
   *
   * @example
   * ```ts
   * db.afterCommit(() => cache.delete(`user:${id}`));
   * ```
   */
  afterCommit(cb: () => unknown): void;
  /**
   * Runs `cb` after the transaction rolled back (never outside a transaction).
   *
   * @example
   * ```ts
   * db.afterRollback(() => metrics.increment('signup.rolled_back'));
   * ```
   */
  afterRollback(cb: () => unknown): void;
  /**
   * Runs `cb` with `'committed'` or `'rolled_back'` once the transaction ended.
   *
   * @example
   * ```ts
   * db.afterCompletion((status) => log.info({ status }));
   * ```
   */
  afterCompletion(cb: (status: CompletionStatus) => unknown): void;
  /** What the current async context sees: scope, transaction, depth, read-only, isolation. */
  readonly current: CurrentState;
  /** Pool and activity counters. */
  stats(): DatabaseStats;
  /** Closes the pool; later calls reject `ERR_DATABASE_CLOSED`. */
  close(): Promise<void>;
}

const noValues: readonly unknown[] = Object.freeze([]);

/** The engine behind a database `createDatabase` made, for `txscope/testing`; undefined for anything else. */
export let engineOf: (db: unknown) => Engine | undefined = () => undefined;

class TxScopeDatabase implements Database {
  readonly #engine: Engine;
  readonly #boundary: Boundary;

  static {
    engineOf = (db) => (typeof db === 'object' && db !== null && #engine in db ? db.#engine : undefined);
  }

  constructor(engine: Engine, isDefault: boolean) {
    this.#engine = engine;
    this.#boundary = (fn, options) => enterBoundary(engine, fn, options);
    claimDefault(this.#boundary, isDefault);
  }

  get name(): string {
    return this.#engine.name;
  }

  get dialect(): Dialect {
    return this.#engine.dialect;
  }

  query<Row = Record<string, unknown>>(
    statement: SqlFragment | string,
    values?: readonly unknown[],
  ): Promise<QueryResult<Row>> {
    let text: string;
    let params: readonly unknown[];
    if (typeof statement === 'string') {
      text = statement;
      params = values ?? noValues;
      if (!Array.isArray(params))
        return Promise.reject(errors.invalidOption('db.query values', 'an array', values));
    } else if (statement instanceof SqlFragment) {
      if (values !== undefined) {
        return Promise.reject(
          errors.invalidOption(
            'db.query values',
            'none with an sql`` statement: its values are inside it',
            values,
          ),
        );
      }
      ({ text, values: params } = compile(statement, this.#engine.dialect));
    } else {
      return Promise.reject(
        errors.invalidOption('db.query statement', 'an sql`` statement or a string', statement),
      );
    }
    return routeStatement(this.#engine, { text, values: params, kind: 'statement' }) as Promise<
      QueryResult<Row>
    >;
  }

  transaction<T>(fn: () => T | Promise<T>, options?: TransactionOptions): Promise<T> {
    let checked: Readonly<TransactionOptions>;
    try {
      checked = checkTransactionOptions(options, 'db.transaction', this.#engine.dialect.isolationLevels);
    } catch (error) {
      return Promise.reject(error);
    }
    return enterBoundary(this.#engine, fn, checked);
  }

  transactional(options?: TransactionOptions): TransactionalDecorator {
    const checked = checkTransactionOptions(
      options,
      'db.transactional',
      this.#engine.dialect.isolationLevels,
    );
    const boundary = this.#boundary;
    return transactionalDecorator(() => boundary, checked);
  }

  scope<T>(fn: () => T | Promise<T>, options?: ScopeOptions): Promise<T> {
    return runScope(this.#engine, fn, options);
  }

  connection<T>(fn: () => T | Promise<T>): Promise<T> {
    return runPinned(this.#engine, fn);
  }

  detached<T>(fn: () => T): T {
    const binding = bind(this.#engine, lookup(this.#engine), {
      session: null,
      frame: null,
      // Under a test transaction, detached work joins it too, and never outlives it into the next test.
      pin: this.#engine.test,
      held: noLeases,
      detached: true,
    });
    // A lazy thenable (a Prisma query) starts where it is awaited: bound, it still runs detached.
    return bindLazy(binding, storage.run(binding, fn));
  }

  bind<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
    if (typeof fn !== 'function') throw errors.invalidOption('db.bind fn', 'a function', fn);
    const captured = storage.getStore();
    return (...args: A): R => storage.run(captured as NonNullable<typeof captured>, fn, ...args);
  }

  beforeCommit(cb: () => unknown): void {
    registerHook(this.#engine, 'beforeCommit', cb);
  }

  afterCommit(cb: () => unknown): void {
    registerHook(this.#engine, 'afterCommit', cb);
  }

  afterRollback(cb: () => unknown): void {
    registerHook(this.#engine, 'afterRollback', cb);
  }

  afterCompletion(cb: (status: CompletionStatus) => unknown): void {
    registerHook(this.#engine, 'afterCompletion', cb);
  }

  get current(): CurrentState {
    const b = lookup(this.#engine);
    const frame = b?.frame && !b.frame.isClosed ? b.frame : null;
    const scope = b?.session?.isOpen ? b.session : null;
    return {
      inScope: scope !== null,
      inTransaction: frame !== null,
      depth: frame?.depth ?? 0,
      readOnly: frame !== null && (frame.readOnly || frame.transaction.readOnly),
      isolation: frame?.transaction.isolation ?? null,
      scope,
    };
  }

  stats(): DatabaseStats {
    const engine = this.#engine;
    const stats: DatabaseStats = {
      name: engine.name,
      pool: engine.pool.driverCounts(),
      ...engine.pool.counts,
      ...engine.activity,
    };
    if (engine.replicas !== null) stats.targets = engine.replicas.stats(engine.activity);
    return stats;
  }

  async close(): Promise<void> {
    releaseDefault(this.#boundary);
    await this.#engine.close();
  }
}

/**
 * Creates a database over a driver.
 *
 * @example
 * ```ts
 * import { createDatabase } from 'txscope';
 * import { pg } from 'txscope/pg';
 * export const db = createDatabase({ driver: pg({ connectionString: process.env.DATABASE_URL, max: 10 }) });
 * ```
 */
export function createDatabase(options: DatabaseOptions): Database {
  const engine = new Engine(checkDatabaseOptions(options));
  return new TxScopeDatabase(engine, options.default === true);
}
