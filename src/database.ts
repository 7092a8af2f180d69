import { type Binding, bind, lookup, storage } from './context.js';
import { type TransactionalDecorator, transactionalDecorator } from './decorator.js';
import {
  type ConnectionEvent,
  channels,
  type ErrorEvent,
  type LeakEvent,
  publish,
  type QueryEvent,
} from './diagnostics.js';
import type {
  AcquireIntent,
  Dialect,
  Driver,
  DriverConnection,
  DriverResult,
  IsolationLevel,
  PoolCounts,
  QueryResult,
} from './driver.js';
import { ErrorCode, TxScopeError } from './errors.js';
import { type ConnectionSource, Lease, Pin } from './lease.js';
import {
  checkMilliseconds,
  invalidOption,
  type RetryOptions,
  type TransactionOptions,
  validateTransactionOptions,
} from './options.js';
import { claimDefault, releaseDefault } from './registry.js';
import { backoffMs } from './retry.js';
import { type ScopeInfo, Session } from './session.js';
import { compile, SqlFragment } from './sql.js';
import {
  type CompletionStatus,
  closedError,
  Transaction,
  TransactionFrame,
  type TransactionHost,
} from './transaction.js';

/** Options of {@link createDatabase}. */
export interface DatabaseOptions {
  /** The driver: `pg(...)`, `pglite(...)`, `mysql(...)`, `sqlite(...)`. */
  driver: Driver;
  /** A name for events and messages; default `'default'`. */
  name?: string;
  /** Reject statements run outside any scope or transaction (`ERR_OUTSIDE_SCOPE`). */
  strict?: boolean;
  /** Transaction options applied to every transaction this database begins. */
  defaults?: TransactionOptions;
  /** Report a connection held longer than this on `txscope:leak` and as a process warning. */
  leakDetectionMs?: number;
  /** Make this the database `@Transactional()` uses (the first one created is, until another claims it). */
  default?: boolean;
}

/** Options of `db.scope`. */
export interface ScopeOptions {
  /** Aborting rolls back the scope's open transaction; its statements then reject `ERR_ABORTED`. */
  signal?: AbortSignal;
}

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
export interface DatabaseStats {
  name: string;
  /** The driver pool's own counts. */
  pool: PoolCounts;
  /** Connections txscope holds right now. */
  checkedOut: number;
  acquired: number;
  released: number;
  /** Connections closed instead of pooled (lost, or not clean). */
  destroyed: number;
  /** Statements sent, BEGIN/COMMIT/ROLLBACK/SAVEPOINT included. */
  statements: number;
  /** Transactions that sent BEGIN. */
  transactions: number;
  commits: number;
  rollbacks: number;
  activeTransactions: number;
  activeScopes: number;
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
   * Runs `fn` outside any scope and transaction: work meant to outlive the request.
   *
   * @example
   * ```ts
   * db.detached(() => sendWelcomeEmail(user.id)); // not awaited, not in the request's transaction
   * ```
   */
  detached<T>(fn: () => T): T;
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

const empty: readonly Lease[] = [];
const readOnlyIntent: AcquireIntent = Object.freeze({ readOnly: true });
const databaseKeys = new Set(['driver', 'name', 'strict', 'defaults', 'leakDetectionMs', 'default']);
let nextScopeId = 0;

class DatabaseImpl implements Database, TransactionHost, ConnectionSource {
  readonly name: string;
  readonly dialect: Dialect;
  readonly #driver: Driver;
  readonly #strict: boolean;
  readonly #defaults: Readonly<TransactionOptions>;
  readonly #hasDefaults: boolean;
  readonly #leakMs: number | undefined;
  #closed = false;
  #heldByWaiters = 0;
  #leaks = new Map<DriverConnection, NodeJS.Timeout>();
  #counts = {
    checkedOut: 0,
    acquired: 0,
    released: 0,
    destroyed: 0,
    statements: 0,
    transactions: 0,
    commits: 0,
    rollbacks: 0,
    activeScopes: 0,
  };
  #activeTransactions = 0;

  constructor(options: DatabaseOptions) {
    this.#driver = options.driver;
    this.dialect = options.driver.dialect;
    this.name = options.name ?? 'default';
    this.#strict = options.strict ?? false;
    this.#defaults = validateTransactionOptions(options.defaults, 'defaults', this.dialect.isolationLevels);
    this.#hasDefaults = Object.keys(this.#defaults).length > 0;
    this.#leakMs = checkMilliseconds(options.leakDetectionMs, 'leakDetectionMs');
  }

  // ---- statements ----

  query<Row = Record<string, unknown>>(
    statement: SqlFragment | string,
    values?: readonly unknown[],
  ): Promise<QueryResult<Row>> {
    let text: string;
    let params: readonly unknown[];
    if (typeof statement === 'string') {
      text = statement;
      params = values ?? empty;
      if (!Array.isArray(params)) return Promise.reject(invalidOption('db.query values', 'an array', values));
    } else if (statement instanceof SqlFragment) {
      if (values !== undefined) {
        return Promise.reject(
          invalidOption('db.query values', 'none with an sql`` statement: its values are inside it', values),
        );
      }
      ({ text, values: params } = compile(statement, this.dialect));
    } else {
      return Promise.reject(invalidOption('db.query statement', 'an sql`` statement or a string', statement));
    }
    return this.#route(text, params) as Promise<QueryResult<Row>>;
  }

  #route(text: string, values: readonly unknown[]): Promise<DriverResult> {
    if (this.#closed) return Promise.reject(this.#closedError());
    const b = lookup(this);
    if (b !== undefined) {
      const session = b.session;
      if (session !== null) {
        if (session.abortError !== null) return Promise.reject(session.abortError);
        if (session.closed) return Promise.reject(scopeClosedError());
      }
      if (b.frame !== null) return b.frame.transaction.query(b.frame, text, values);
      if (b.pin !== null) return this.#onPin(b.pin, session, text, values);
      if (session === null && !b.detached && this.#strict) return Promise.reject(outsideScopeError());
      return this.#autocommit(text, values, session, b.held);
    }
    if (this.#strict) return Promise.reject(outsideScopeError());
    return this.#autocommit(text, values, null, empty);
  }

  async #autocommit(
    text: string,
    values: readonly unknown[],
    session: Session | null,
    held: readonly Lease[],
  ): Promise<DriverResult> {
    const connection = await this.#take(held, session?.id ?? null, null, '');
    const acquiredAt = performance.now();
    let destroy = false;
    try {
      return await this.execute(connection, text, values, session, null);
    } catch (error) {
      if (this.isConnectionLost(error)) {
        destroy = true;
        throw new TxScopeError(
          ErrorCode.CONNECTION_LOST,
          'the connection was lost while the statement ran (autocommit): it may or may not have taken effect',
          { cause: error },
        );
      }
      throw error;
    } finally {
      await this.#give(connection, destroy, session?.id ?? null, null, acquiredAt);
    }
  }

  async #onPin(
    pin: Pin,
    session: Session | null,
    text: string,
    values: readonly unknown[],
  ): Promise<DriverResult> {
    if (pin.closed) throw pinClosedError();
    const unlock = await pin.turns.lock();
    try {
      // The pin never moves to another connection: the session state it was taken for is gone.
      if (pin.lease.lost !== undefined) throw pinLostError(pin.lease.lost);
      return await pin.lease.run((c) => this.execute(c, text, values, session, null));
    } catch (error) {
      if (error instanceof TxScopeError || !this.isConnectionLost(error)) throw error;
      pin.lease.lost ??= error;
      throw pinLostError(error);
    } finally {
      unlock();
    }
  }

  execute(
    connection: DriverConnection,
    text: string,
    values: readonly unknown[],
    session: Session | null,
    transaction: Transaction | null,
    control = false,
  ): Promise<DriverResult> {
    this.#counts.statements++;
    if (session !== null && !control) session.statements++;
    const pending = connection.query(text, values);
    // Time is read only when someone uses it: a scope's Server-Timing or a query subscriber.
    if (session === null && !channels.query.hasSubscribers) return pending;
    const started = performance.now();
    return pending.then(
      (result) => {
        this.#timed(text, performance.now() - started, session, transaction, undefined);
        return result;
      },
      (error: unknown) => {
        this.#timed(text, performance.now() - started, session, transaction, error);
        throw error;
      },
    );
  }

  #timed(
    text: string,
    durationMs: number,
    session: Session | null,
    transaction: Transaction | null,
    error: unknown,
  ): void {
    if (session !== null) session.databaseMs += durationMs;
    if (channels.query.hasSubscribers) {
      const event: QueryEvent = {
        database: this.name,
        text,
        durationMs,
        scopeId: session?.id ?? null,
        transactionId: transaction?.id ?? null,
        ...(error === undefined ? {} : { error }),
      };
      channels.query.publish(event);
    }
  }

  // ---- connections ----

  acquire(lease: Lease): Promise<DriverConnection> {
    return this.#take(lease.held, lease.scopeId, lease.transactionId, lease.stack, lease.readOnly);
  }

  release(lease: Lease, connection: DriverConnection, destroy: boolean): Promise<void> {
    return this.#give(connection, destroy, lease.scopeId, lease.transactionId, lease.acquiredAt);
  }

  async #take(
    held: readonly Lease[],
    scopeId: number | null,
    transactionId: number | null,
    stack: string,
    readOnly = false,
  ): Promise<DriverConnection> {
    if (this.#closed) throw this.#closedError();
    let holding = 0;
    if (held.length > 0) {
      for (const lease of new Set(held)) if (lease.holding) holding++;
    }
    if (holding > 0) {
      const max = this.#driver.counts().max;
      if (this.#heldByWaiters + holding >= max) throw this.#deadlockError(max);
      this.#heldByWaiters += holding;
    }
    const started = performance.now();
    let connection: DriverConnection;
    try {
      connection = await this.#driver.acquire(readOnly ? readOnlyIntent : undefined);
    } finally {
      this.#heldByWaiters -= holding;
    }
    this.#counts.checkedOut++;
    this.#counts.acquired++;
    if (channels.acquire.hasSubscribers) {
      const event: ConnectionEvent = {
        database: this.name,
        scopeId,
        transactionId,
        durationMs: performance.now() - started,
      };
      channels.acquire.publish(event);
    }
    if (this.#leakMs !== undefined) this.#watchLeak(connection, scopeId, transactionId, stack);
    return connection;
  }

  async #give(
    connection: DriverConnection,
    destroy: boolean,
    scopeId: number | null,
    transactionId: number | null,
    acquiredAt: number,
  ): Promise<void> {
    const leak = this.#leaks.get(connection);
    if (leak !== undefined) {
      clearTimeout(leak);
      this.#leaks.delete(connection);
    }
    let discard = destroy;
    if (!discard) {
      // Only a clean connection goes back: the driver's own status is the judge.
      const status = connection.status();
      if (status === 'closed') {
        discard = true;
      } else if (status === 'in_transaction' || status === 'failed') {
        try {
          await connection.query(this.dialect.rollback, []);
          const after = connection.status();
          discard = after === 'in_transaction' || after === 'failed';
        } catch (error) {
          this.report('release', error, transactionId);
          discard = true;
        }
      }
    }
    try {
      this.#driver.release(connection, { destroy: discard });
    } catch (error) {
      this.report('release', error, transactionId);
    }
    this.#counts.checkedOut--;
    this.#counts.released++;
    if (discard) this.#counts.destroyed++;
    if (channels.release.hasSubscribers) {
      const event: ConnectionEvent = {
        database: this.name,
        scopeId,
        transactionId,
        durationMs: performance.now() - acquiredAt,
        destroyed: discard,
      };
      channels.release.publish(event);
    }
  }

  #watchLeak(
    connection: DriverConnection,
    scopeId: number | null,
    transactionId: number | null,
    stack: string,
  ): void {
    const ms = this.#leakMs as number;
    const timer = setTimeout(() => {
      this.#leaks.delete(connection);
      const event: LeakEvent = { database: this.name, transactionId, scopeId, heldMs: ms, stack };
      publish(channels.leak, event);
      process.emitWarning(
        `txscope: a connection of database "${this.name}" has been held for more than ${ms} ms ` +
          `(transaction ${transactionId ?? '-'}); it began at:\n${stack || '(stack not captured)'}`,
        { code: 'TXSCOPE_LEAK' },
      );
    }, ms);
    timer.unref();
    this.#leaks.set(connection, timer);
  }

  #lease(held: readonly Lease[], session: Session | null): Lease {
    const stack = this.#leakMs === undefined ? '' : (new Error().stack ?? '').split('\n').slice(3).join('\n');
    return new Lease(this, held, session?.id ?? null, null, stack);
  }

  // ---- boundaries ----

  transaction<T>(fn: () => T | Promise<T>, options?: TransactionOptions): Promise<T> {
    let o: Readonly<TransactionOptions>;
    try {
      o = validateTransactionOptions(options, 'db.transaction', this.dialect.isolationLevels);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.boundary(fn, o);
  }

  /** Runs `fn` under a boundary with options already validated. */
  boundary<T>(fn: () => T | Promise<T>, o: Readonly<TransactionOptions>): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(invalidOption('db.transaction fn', 'a function', fn));
    if (this.#closed) return Promise.reject(this.#closedError());
    const b = lookup(this);
    const session = b?.session ?? null;
    if (session !== null) {
      if (session.abortError !== null) return Promise.reject(session.abortError);
      if (session.closed) return Promise.reject(scopeClosedError());
    }
    const current = b?.frame ?? null;
    if (current?.isClosed) return Promise.reject(current.transaction.failure ?? closedError());
    // @Transactional() could only check the level against all four: the database is known now.
    if (o.isolation !== undefined && !this.dialect.isolationLevels.includes(o.isolation)) {
      return Promise.reject(
        invalidOption(
          'isolation',
          `${this.dialect.isolationLevels.map((l) => `'${l}'`).join(', ')} on ${this.dialect.name}`,
          o.isolation,
        ),
      );
    }
    const propagation = o.propagation ?? this.#defaults.propagation ?? 'required';
    const call = (): Promise<T> => Promise.resolve().then(fn);

    if (current === null || b === undefined) {
      switch (propagation) {
        case 'mandatory':
          return Promise.reject(
            new TxScopeError(
              ErrorCode.NO_TRANSACTION,
              'no transaction is active (propagation "mandatory"); wrap the call in @Transactional() or db.transaction()',
            ),
          );
        case 'supports':
        case 'not_supported':
        case 'never':
          return call();
        default:
          return this.#root(call, o, b, session, empty);
      }
    }
    switch (propagation) {
      case 'never':
        return Promise.reject(
          new TxScopeError(
            ErrorCode.EXISTING_TRANSACTION,
            'a transaction is active, and this boundary says propagation "never"; call it outside the transaction ' +
              '(or with propagation "not_supported", which suspends it)',
          ),
        );
      case 'not_supported': {
        const binding = bind(this, b, {
          session,
          frame: null,
          pin: null,
          held: [...b.held, current.transaction.lease],
          detached: false,
        });
        return storage.run(binding, call);
      }
      case 'requires_new':
        return this.#root(call, o, b, session, [...b.held, current.transaction.lease]);
      default: {
        const incompatible = compatibility(current, o);
        if (incompatible !== null) return Promise.reject(incompatible);
        const nested = propagation === 'nested';
        const tx = current.transaction;
        const frame = new TransactionFrame(
          tx,
          current,
          nested ? 'savepoint' : 'joined',
          o.readOnly ?? current.readOnly,
        );
        const binding = bind(this, b, { session, frame, pin: b.pin, held: b.held, detached: false });
        const inner = (): Promise<T> => storage.run(binding, call);
        const timer = o.timeoutMs === undefined ? undefined : this.#deadline(tx, o.timeoutMs);
        const run = nested ? tx.runSavepoint(frame, inner, o.rollbackOn) : joined(frame, inner, o.rollbackOn);
        return timer === undefined ? run : run.finally(() => clearTimeout(timer));
      }
    }
  }

  async #root<T>(
    call: () => Promise<T>,
    o: Readonly<TransactionOptions>,
    b: Binding | undefined,
    session: Session | null,
    held: readonly Lease[],
  ): Promise<T> {
    const merged = this.#hasDefaults ? { ...this.#defaults, ...o } : o;
    const retry = merged.retry;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#attempt(call, merged, b, session, held, attempt);
      } catch (error) {
        if (retry === undefined || !this.#willRetry(retry, attempt, error)) throw error;
        await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, retry)));
        if (session?.abortError) throw session.abortError;
        if (session?.closed) throw scopeClosedError();
      }
    }
  }

  async #attempt<T>(
    call: () => Promise<T>,
    o: Readonly<TransactionOptions>,
    b: Binding | undefined,
    session: Session | null,
    held: readonly Lease[],
    attempt: number,
  ): Promise<T> {
    // A transaction inside db.connection(fn) runs on the pinned connection, one at a time.
    const pin = held === empty && b?.pin && !b.pin.closed ? b.pin : null;
    const unlock = pin === null ? null : await pin.turns.lock();
    try {
      if (pin?.lease.lost !== undefined) throw pinLostError(pin.lease.lost);
      const lease = pin?.lease ?? this.#lease(held, session);
      const tx = new Transaction(this, lease, session, o.isolation, o.readOnly ?? false, pin === null);
      const retry = o.retry;
      if (retry !== undefined) tx.willRetry = (error) => this.#willRetry(retry, attempt, error);
      this.#activeTransactions++;
      const binding = bind(this, b, { session, frame: tx.root, pin: b?.pin ?? null, held, detached: false });
      const timer = o.timeoutMs === undefined ? undefined : this.#deadline(tx, o.timeoutMs);
      try {
        return await tx.runRoot(
          () => storage.run(binding, call),
          o.rollbackOn,
          (cb) => storage.run(binding, cb),
        );
      } finally {
        if (timer !== undefined) clearTimeout(timer);
        this.#activeTransactions--;
      }
    } finally {
      unlock?.();
    }
  }

  /** Only driver errors the driver calls retryable are retried: never ERR_COMMIT_UNKNOWN or a lost connection. */
  #willRetry(retry: RetryOptions, attempt: number, error: unknown): boolean {
    if (attempt >= retry.attempts || error instanceof TxScopeError) return false;
    return this.#driver.classify(error) === 'retryable';
  }

  #deadline(tx: Transaction, ms: number): NodeJS.Timeout {
    return setTimeout(() => {
      tx.fail(
        new TxScopeError(
          ErrorCode.TRANSACTION_TIMEOUT,
          `the transaction ran past its timeoutMs (${ms} ms) and was rolled back; its running statement was ` +
            'cancelled. Raise timeoutMs or make the work shorter',
        ),
      );
    }, ms);
  }

  transactional(options?: TransactionOptions): TransactionalDecorator {
    const o = validateTransactionOptions(options, 'db.transactional', this.dialect.isolationLevels);
    return transactionalDecorator(() => this, o);
  }

  async scope<T>(fn: () => T | Promise<T>, options?: ScopeOptions): Promise<T> {
    if (this.#closed) throw this.#closedError();
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw invalidOption('db.scope signal', 'an AbortSignal', signal);
    }
    const b = lookup(this);
    if (b?.session) {
      if (b.session.abortError !== null) throw b.session.abortError;
      if (b.session.closed) throw scopeClosedError();
      return fn();
    }
    if (signal?.aborted) throw abortedError(signal);
    const session = new Session(++nextScopeId);
    const binding = bind(this, b, {
      session,
      frame: b?.frame ?? null,
      pin: b?.pin ?? null,
      held: b?.held ?? empty,
      detached: false,
    });
    const onAbort = (): void => this.#abort(session, abortedError(signal as AbortSignal));
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#counts.activeScopes++;
    try {
      return await storage.run(binding, fn);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#counts.activeScopes--;
      await this.#endScope(session);
    }
  }

  #abort(session: Session, error: TxScopeError): void {
    if (session.closed || session.abortError !== null) return;
    session.abortError = error;
    for (const tx of session.open) tx.fail(error);
  }

  async #endScope(session: Session): Promise<void> {
    session.closed = true;
    const open = [...session.open];
    if (open.length > 0) {
      const error = scopeClosedError();
      for (const tx of open) tx.fail(error);
      await Promise.all(open.map((tx) => tx.done));
    }
    for (const pin of session.pins) {
      pin.closed = true;
      await pin.lease.release(pin.lease.lost !== undefined);
    }
  }

  async connection<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.#closed) throw this.#closedError();
    const b = lookup(this);
    const session = b?.session ?? null;
    if (session !== null) {
      if (session.abortError !== null) throw session.abortError;
      if (session.closed) throw scopeClosedError();
    }
    // Inside a transaction or a pin, statements already share one connection.
    if ((b?.frame && !b.frame.isClosed) || (b?.pin && !b.pin.closed)) return fn();
    const pin = new Pin(this.#lease(b?.held ?? empty, session));
    session?.pins.add(pin);
    const binding = bind(this, b, { session, frame: null, pin, held: b?.held ?? empty, detached: false });
    try {
      return await storage.run(binding, fn);
    } finally {
      pin.closed = true;
      session?.pins.delete(pin);
      await pin.lease.settled();
      await pin.lease.release(pin.lease.lost !== undefined);
    }
  }

  detached<T>(fn: () => T): T {
    const binding = bind(this, lookup(this), {
      session: null,
      frame: null,
      pin: null,
      held: empty,
      detached: true,
    });
    return storage.run(binding, fn);
  }

  // ---- hooks ----

  #openFrame(hook: string): TransactionFrame | null {
    const frame = lookup(this)?.frame ?? null;
    if (frame === null) return null;
    if (frame.isClosed) {
      throw new TxScopeError(
        ErrorCode.TRANSACTION_CLOSED,
        `db.${hook}() was called from a transaction that has already ended; register it while the transaction runs`,
      );
    }
    return frame;
  }

  beforeCommit(cb: () => unknown): void {
    checkCallback(cb, 'beforeCommit');
    const frame = this.#openFrame('beforeCommit');
    if (frame === null) {
      throw new TxScopeError(
        ErrorCode.NO_TRANSACTION,
        'db.beforeCommit() needs an active transaction; wrap the call in @Transactional() or db.transaction()',
      );
    }
    frame.addCallback('beforeCommit', cb);
  }

  afterCommit(cb: () => unknown): void {
    checkCallback(cb, 'afterCommit');
    const frame = this.#openFrame('afterCommit');
    if (frame === null) void this.#runNow('afterCommit', cb);
    else frame.addCallback('afterCommit', cb);
  }

  afterRollback(cb: () => unknown): void {
    checkCallback(cb, 'afterRollback');
    this.#openFrame('afterRollback')?.addCallback('afterRollback', cb);
  }

  afterCompletion(cb: (status: CompletionStatus) => unknown): void {
    checkCallback(cb, 'afterCompletion');
    const frame = this.#openFrame('afterCompletion');
    if (frame === null) void this.#runNow('afterCompletion', () => cb('committed'));
    else frame.addCallback('afterCompletion', cb);
  }

  async #runNow(source: string, cb: () => unknown): Promise<void> {
    try {
      await cb();
    } catch (error) {
      this.report(source, error, null);
    }
  }

  // ---- state ----

  get current(): CurrentState {
    const b = lookup(this);
    const frame = b?.frame && !b.frame.isClosed ? b.frame : null;
    return {
      inScope: b?.session != null && !b.session.closed,
      inTransaction: frame !== null,
      depth: frame?.depth ?? 0,
      readOnly: frame !== null && (frame.readOnly || frame.transaction.readOnly),
      isolation: frame?.transaction.isolation ?? null,
      scope: b?.session != null && !b.session.closed ? b.session : null,
    };
  }

  stats(): DatabaseStats {
    return {
      name: this.name,
      pool: this.#driver.counts(),
      ...this.#counts,
      activeTransactions: this.#activeTransactions,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    releaseDefault(this);
    for (const timer of this.#leaks.values()) clearTimeout(timer);
    await this.#driver.close();
  }

  // ---- host ----

  report(source: string, error: unknown, transactionId: number | null): void {
    const event: ErrorEvent = { database: this.name, source, error, transactionId };
    publish(channels.error, event);
  }

  isConnectionLost(error: unknown): boolean {
    return !(error instanceof TxScopeError) && this.#driver.classify(error) === 'connection_lost';
  }

  endsTransaction(error: unknown): boolean {
    if (error instanceof TxScopeError) return false;
    const kind = this.#driver.classify(error);
    return kind === 'retryable' || kind === 'transaction_aborted';
  }

  poolSize(): number {
    return this.#driver.counts().max;
  }

  completed(status: CompletionStatus | null, begun: boolean): void {
    if (!begun) return;
    this.#counts.transactions++;
    if (status === 'committed') this.#counts.commits++;
    else this.#counts.rollbacks++;
  }

  #closedError(): TxScopeError {
    return new TxScopeError(
      ErrorCode.DATABASE_CLOSED,
      `database "${this.name}" was closed with db.close(); create a new one, or close it only at shutdown`,
    );
  }

  #deadlockError(max: number): TxScopeError {
    const c = this.#driver.counts();
    return new TxScopeError(
      ErrorCode.POOL_DEADLOCK,
      `a new connection can never be served: all ${max} pooled connection(s) are held by transactions that are ` +
        `waiting for another one (requires_new, not_supported or a query outside the suspended transaction). ` +
        `Pool: ${c.total} open, ${c.idle} idle, ${c.waiting} waiting. Raise the pool's max, or avoid ` +
        'requires_new inside a transaction',
    );
  }
}

async function joined<T>(
  frame: TransactionFrame,
  fn: () => Promise<T>,
  rollbackOn: ((error: unknown) => boolean) | undefined,
): Promise<T> {
  try {
    return await frame.transaction.race(fn());
  } catch (error) {
    let rollback = true;
    if (rollbackOn !== undefined) {
      try {
        rollback = rollbackOn(error) !== false;
      } catch {
        rollback = true;
      }
    }
    if (rollback) frame.unit.rollbackOnly = true;
    throw error;
  }
}

function compatibility(current: TransactionFrame, o: Readonly<TransactionOptions>): TxScopeError | null {
  const tx = current.transaction;
  if (o.isolation !== undefined && tx.isolation !== undefined && o.isolation !== tx.isolation) {
    return new TxScopeError(
      ErrorCode.INCOMPATIBLE_TRANSACTION,
      `this boundary asks for isolation "${o.isolation}" but joins a transaction running at "${tx.isolation}"; ` +
        'drop the isolation option here, or use propagation "requires_new" for its own transaction',
    );
  }
  if (o.readOnly === false && (current.readOnly || tx.readOnly)) {
    return new TxScopeError(
      ErrorCode.INCOMPATIBLE_TRANSACTION,
      'this boundary says readOnly: false but joins a read-only transaction; it could not write there. ' +
        'Make the outer boundary read-write, or use propagation "requires_new"',
    );
  }
  return null;
}

function checkCallback(cb: unknown, hook: string): void {
  if (typeof cb !== 'function') throw invalidOption(`db.${hook} callback`, 'a function', cb);
}

function scopeClosedError(): TxScopeError {
  return new TxScopeError(
    ErrorCode.SCOPE_CLOSED,
    'this statement comes from a scope (request) that has already ended; await the work inside the request, ' +
      'or run it on purpose outside with db.detached(fn)',
  );
}

function outsideScopeError(): TxScopeError {
  return new TxScopeError(
    ErrorCode.OUTSIDE_SCOPE,
    'strict mode: this statement runs outside any scope or transaction. Install the txscope middleware, or wrap ' +
      'the work in db.scope(fn), db.transaction(fn) or db.detached(fn)',
  );
}

function pinClosedError(): TxScopeError {
  return new TxScopeError(
    ErrorCode.SCOPE_CLOSED,
    'this statement comes from a db.connection(fn) block that has already ended; await the work inside it',
  );
}

function pinLostError(cause: unknown): TxScopeError {
  return new TxScopeError(
    ErrorCode.CONNECTION_LOST,
    'the connection pinned by db.connection(fn) was lost, and with it its session state (settings, locks, ' +
      'temporary tables); run the whole block again',
    { cause },
  );
}

function abortedError(signal: AbortSignal): TxScopeError {
  return new TxScopeError(
    ErrorCode.ABORTED,
    'the scope was aborted (client disconnected or signal aborted); its transaction was rolled back',
    { cause: signal.reason },
  );
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
  if (options === null || typeof options !== 'object') {
    throw invalidOption(
      'createDatabase options',
      '{ driver, name?, strict?, defaults?, leakDetectionMs?, default? }',
      options,
    );
  }
  for (const key of Object.keys(options)) {
    if (!databaseKeys.has(key))
      throw invalidOption(`createDatabase.${key}`, [...databaseKeys].join(', '), key);
  }
  const driver = options.driver as Partial<Driver> | undefined;
  if (
    driver === undefined ||
    driver === null ||
    typeof driver.acquire !== 'function' ||
    typeof driver.release !== 'function' ||
    driver.dialect === undefined
  ) {
    throw invalidOption(
      'createDatabase.driver',
      "a txscope driver, such as pg({ connectionString }) from 'txscope/pg'",
      driver === undefined ? undefined : 'an object that is not a driver',
    );
  }
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
    throw invalidOption('createDatabase.name', 'a non-empty string', options.name);
  }
  for (const key of ['strict', 'default'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') {
      throw invalidOption(`createDatabase.${key}`, 'true or false', options[key]);
    }
  }
  const db = new DatabaseImpl(options);
  claimDefault(db, options.default === true);
  return db;
}

export type { DatabaseImpl };
