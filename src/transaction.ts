import { channels, publish, type TransactionEvent } from './diagnostics.js';
import type { Dialect, DriverConnection, DriverResult, IsolationLevel } from './driver.js';
import { ErrorCode, TxScopeError } from './errors.js';
import type { Lease } from './lease.js';
import { Mutex } from './mutex.js';
import type { Session } from './session.js';

/** How a transaction ended, as `afterCompletion` callbacks receive it. */
export type CompletionStatus = 'committed' | 'rolled_back';

type Callback = () => unknown;
type CompletionCallback = (status: CompletionStatus) => unknown;

interface Callbacks {
  beforeCommit: Callback[];
  afterCommit: Callback[];
  afterRollback: Callback[];
  afterCompletion: CompletionCallback[];
}

/** What a transaction needs from its database. */
export interface TransactionHost {
  readonly name: string;
  readonly dialect: Dialect;
  /** Runs one statement on a connection: timing, counters, events, error mapping. */
  execute(
    connection: DriverConnection,
    text: string,
    values: readonly unknown[],
    session: Session | null,
    transaction: Transaction | null,
    /** BEGIN, COMMIT, ROLLBACK, savepoints: not counted as the scope's statements. */
    control?: boolean,
  ): Promise<DriverResult>;
  /** Reports an error nobody can be handed (`txscope:error`). */
  report(source: string, error: unknown, transactionId: number | null): void;
  isConnectionLost(error: unknown): boolean;
  /** True when a statement error leaves the transaction unable to go on (deadlock, lock-wait timeout). */
  endsTransaction(error: unknown): boolean;
  /** Counts a transaction's end (`null`: unknown, the connection was lost during COMMIT). */
  completed(status: CompletionStatus | null, begun: boolean): void;
  /** The pool's size: how many dead pooled connections BEGIN may run into at most. */
  poolSize(): number;
}

const noop = (): void => {};

/** A logical transaction boundary: the root, a joined frame, or a savepoint. */
export class TransactionFrame {
  /** The frame that owns atomicity for this one: the root, or the nearest savepoint. */
  readonly unit: TransactionFrame;
  readonly depth: number;
  /** Closed units accept no statement (meaningful on the root and savepoints). */
  closed = false;
  rollbackOnly = false;
  callbacks: Callbacks | null = null;
  savepoint: string | null = null;
  savepointQueued = false;
  #children: Mutex | null = null;

  constructor(
    readonly transaction: Transaction,
    readonly parent: TransactionFrame | null,
    readonly kind: 'root' | 'joined' | 'savepoint',
    readonly readOnly: boolean,
  ) {
    this.unit = kind === 'joined' && parent !== null ? parent.unit : this;
    this.depth = parent === null ? 1 : parent.depth + 1;
  }

  /** Savepoint children of this frame take turns on this lock. */
  get children(): Mutex {
    this.#children ??= new Mutex();
    return this.#children;
  }

  get isClosed(): boolean {
    return this.unit.closed || this.transaction.ended;
  }

  addCallback(kind: keyof Callbacks, cb: Callback | CompletionCallback): void {
    const unit = this.unit;
    unit.callbacks ??= { beforeCommit: [], afterCommit: [], afterRollback: [], afterCompletion: [] };
    (unit.callbacks[kind] as Array<typeof cb>).push(cb);
  }
}

let nextTransactionId = 0;

/**
 * One physical transaction: one connection (taken lazily), BEGIN before the first
 * statement, COMMIT or ROLLBACK when its root frame ends.
 */
export class Transaction {
  readonly id = ++nextTransactionId;
  readonly root: TransactionFrame;
  /** Set when the transaction can no longer go on (timeout, abort, lost connection, failed BEGIN). */
  failure: Error | null = null;
  ended = false;
  #begun = false;
  #committing = false;
  #savepoints = 0;
  #running = 0;
  #beganAt = 0;
  #failed: Promise<never>;
  #fail!: (error: Error) => void;
  #destroy = false;
  #resolveDone!: () => void;
  /** Set by the database on attempts of a `retry` transaction: true when `error` will be retried. */
  willRetry: (error: unknown) => boolean = () => false;
  /** Resolves once the transaction has ended and its connection is back. */
  readonly done = new Promise<void>((resolve) => {
    this.#resolveDone = resolve;
  });

  constructor(
    readonly host: TransactionHost,
    readonly lease: Lease,
    readonly session: Session | null,
    readonly isolation: IsolationLevel | undefined,
    readOnly: boolean,
    /** False when the lease is a pin's: the pin, not the transaction, gives it back. */
    readonly ownsLease: boolean,
  ) {
    lease.transactionId = this.id;
    if (ownsLease) lease.readOnly = readOnly;
    this.root = new TransactionFrame(this, null, 'root', readOnly);
    this.#failed = new Promise<never>((_, reject) => {
      this.#fail = reject;
    });
    this.#failed.catch(noop);
  }

  get readOnly(): boolean {
    return this.root.readOnly;
  }

  /** True once BEGIN was issued (the transaction holds, or is taking, a connection). */
  get begun(): boolean {
    return this.#begun;
  }

  /** Settles like `promise`, or rejects as soon as the transaction fails. */
  race<T>(promise: Promise<T>): Promise<T> {
    return Promise.race([promise, this.#failed]);
  }

  /** Runs a statement inside `frame`, after everything issued before it. */
  query(frame: TransactionFrame, text: string, values: readonly unknown[]): Promise<DriverResult> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (frame.isClosed) return Promise.reject(closedError());
    this.#start(frame.unit);
    return this.lease.run((connection) => this.#statement(connection, text, values));
  }

  async #statement(
    connection: DriverConnection,
    text: string,
    values: readonly unknown[],
    control = false,
  ): Promise<DriverResult> {
    if (this.failure !== null) throw this.failure;
    this.#running++;
    let result: DriverResult;
    try {
      result = await this.host.execute(connection, text, values, this.session, this, control);
    } catch (error) {
      this.#running--;
      if (this.failure !== null) throw this.failure;
      if (this.host.isConnectionLost(error)) throw this.#lost(error);
      // The driver error goes to the caller unchanged; later statements reject with it too.
      if (this.host.endsTransaction(error))
        this.fail(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    this.#running--;
    // The server ended the transaction under us (MySQL commits implicitly on DDL; a hand-written
    // COMMIT): what follows must not run in autocommit, so the transaction fails loudly.
    if (!control && connection.status() === 'idle') {
      const ended = new TxScopeError(
        ErrorCode.TRANSACTION_CLOSED,
        `the statement ended the transaction on the server (${text.slice(0, 40)}…): MySQL commits implicitly on ` +
          'DDL, and a hand-written COMMIT or ROLLBACK ends it too. Work before it may be committed; run DDL and ' +
          'transaction control outside db.transaction()',
      );
      this.fail(ended);
      throw ended;
    }
    return result;
  }

  #lost(error: unknown): TxScopeError {
    const lost = new TxScopeError(
      ErrorCode.CONNECTION_LOST,
      'the connection was lost in the middle of the transaction; nothing of it was committed. ' +
        'Run the unit of work again (the connection was discarded, the pool opens a new one)',
      { cause: error },
    );
    this.#destroy = true;
    this.lease.lost ??= error;
    this.fail(lost);
    return lost;
  }

  /** Issues BEGIN and any savepoints up to `unit`, once each, ahead of the statement. */
  #start(unit: TransactionFrame): void {
    if (unit.kind === 'root') {
      if (this.#begun) return;
      this.#begun = true;
      this.#beganAt = performance.now();
      if (this.session !== null) {
        this.session.open.add(this);
        this.session.transactions++;
      }
      publish(channels.begin, this.#event({ isolation: this.isolation, readOnly: this.readOnly }));
      this.#begin(this.host.dialect.begin({ isolation: this.isolation, readOnly: this.readOnly }));
      return;
    }
    if (unit.savepointQueued || unit.parent === null) return;
    this.#start(unit.parent.unit);
    unit.savepointQueued = true;
    unit.savepoint = `txscope_sp_${++this.#savepoints}`;
    this.#control(this.host.dialect.savepoint(unit.savepoint));
  }

  /**
   * Queues BEGIN. Nothing of the transaction has run yet, so a pooled connection that turns
   * out to be dead (failover, idle kill, NAT timeout) is swapped for a fresh one instead of
   * failing work that never started; not on a pinned connection, whose session state would
   * be lost with it.
   */
  #begin(statements: readonly string[]): void {
    this.lease
      .run(async (first) => {
        let connection = first;
        for (let replaced = 0; ; replaced++) {
          if (this.failure !== null) throw this.failure;
          try {
            for (const text of statements) {
              await this.host.execute(connection, text, [], this.session, this, true);
            }
            return;
          } catch (error) {
            if (!this.ownsLease || replaced >= this.host.poolSize() || !this.host.isConnectionLost(error)) {
              throw error;
            }
            connection = await this.lease.replace();
          }
        }
      })
      .catch((error: unknown) => {
        if (this.host.isConnectionLost(error)) this.#lost(error);
        else this.fail(error instanceof Error ? error : new Error(String(error)));
      });
  }

  /** Queues a control statement (SAVEPOINT); its failure fails the transaction. */
  #control(text: string): void {
    this.lease
      .run((connection) => {
        if (this.failure !== null) throw this.failure;
        return this.host.execute(connection, text, [], this.session, this, true);
      })
      .catch((error: unknown) => {
        if (this.host.isConnectionLost(error)) this.#lost(error);
        else this.fail(error instanceof Error ? error : new Error(String(error)));
      });
  }

  /**
   * Makes the transaction fail with `error`: statements reject with it, the one
   * running on the server is cancelled, and the root frame rolls back.
   */
  fail(error: Error): void {
    if (this.failure !== null || this.ended || this.#committing) return;
    this.failure = error;
    this.root.closed = true;
    this.#fail(error);
    const connection = this.lease.connection;
    if (this.#running > 0 && connection !== null && !this.#destroy) {
      this.#cancelling = connection.cancel().catch((e: unknown) => this.host.report('cancel', e, this.id));
    }
  }

  /** A cancel request in flight: nothing more is sent on the connection until it has landed. */
  #cancelling: Promise<void> | null = null;

  /**
   * Runs the root frame's `fn` and commits or rolls back. `enter` runs a function
   * inside the transaction's async context (fn and beforeCommit callbacks); the
   * after-completion callbacks run outside it, in the caller's.
   */
  async runRoot<T>(
    fn: () => Promise<T>,
    rollbackOn: ((error: unknown) => boolean) | undefined,
    enter: (cb: () => unknown) => unknown,
  ): Promise<T> {
    let result: T;
    try {
      result = await this.race(fn());
      await this.#beforeCommit(enter);
    } catch (error) {
      if (error !== this.failure && rollbackOn !== undefined && !safeRollbackOn(rollbackOn, error)) {
        await this.#commit();
        throw error;
      }
      await this.rollback(reasonOf(error, this.failure), error);
      throw error;
    }
    await this.#commit();
    return result;
  }

  async #beforeCommit(enter: (cb: () => unknown) => unknown): Promise<void> {
    const callbacks = this.root.callbacks?.beforeCommit;
    if (callbacks === undefined) return;
    // Callbacks may register more callbacks; walk by index so those run too.
    for (let i = 0; i < callbacks.length; i++) {
      const cb = callbacks[i];
      if (cb !== undefined) await this.race(Promise.resolve().then(() => enter(cb)));
    }
  }

  async #commit(): Promise<void> {
    this.root.closed = true;
    if (this.failure !== null) {
      const failure = this.failure;
      await this.rollback('failure');
      throw failure;
    }
    if (this.root.rollbackOnly) {
      await this.rollback('rollback_only');
      throw new TxScopeError(
        ErrorCode.ROLLBACK_ONLY,
        'the transaction was rolled back, not committed: an inner frame that joined it threw, and the error was ' +
          'caught. Let the error propagate, or give the inner call its own savepoint with propagation: "nested"',
      );
    }
    if (!this.#begun) {
      await this.#finish('committed');
      return;
    }
    this.#committing = true;
    let result: DriverResult;
    let sent = false;
    try {
      result = await this.lease.run((c) => {
        // A connection the driver already knows is dead gets no COMMIT: then nothing was committed.
        sent = c.status() !== 'closed';
        return this.host.execute(c, this.host.dialect.commit, [], this.session, this, true);
      });
    } catch (error) {
      if (this.host.isConnectionLost(error)) {
        this.#destroy = true;
        this.lease.lost ??= error;
        if (!sent) {
          const lost = this.#lost(error);
          await this.#finish('rolled_back', 'connection_lost', lost);
          throw lost;
        }
        await this.#finish(null);
        throw new TxScopeError(
          ErrorCode.COMMIT_UNKNOWN,
          'the connection was lost while COMMIT was in flight: the transaction may or may not have committed. ' +
            'Check the data before running it again; txscope never retries this',
          { cause: error },
        );
      }
      await this.#finish('rolled_back', 'commit_failed', error);
      throw error;
    }
    if (!this.host.dialect.committed(result)) {
      await this.#finish('rolled_back', 'commit_rolled_back');
      throw new TxScopeError(
        ErrorCode.ROLLBACK_ONLY,
        'the database rolled back instead of committing: a statement failed inside the transaction and its ' +
          'error was caught. Let the error propagate, or run the statement in a savepoint (propagation: "nested")',
      );
    }
    await this.#finish('committed');
  }

  /** Rolls back (waiting for statements in flight), releases, runs the rollback callbacks. */
  async rollback(reason: string, error?: unknown): Promise<void> {
    if (this.ended) return;
    this.root.closed = true;
    this.#committing = true;
    if (this.#begun && !this.#destroy) await this.lease.settled();
    // A cancel that arrived late would hit ROLLBACK, or the next borrower's statement.
    if (this.#cancelling !== null) await this.#cancelling;
    if (this.lease.connection !== null && !this.#destroy) {
      try {
        await this.lease.run((c) =>
          this.host.execute(c, this.host.dialect.rollback, [], this.session, this, true),
        );
      } catch (error) {
        this.#destroy = true;
        this.host.report('rollback', error, this.id);
      }
    }
    await this.#finish('rolled_back', reason, error);
  }

  async #finish(status: CompletionStatus | null, reason?: string, error?: unknown): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.root.closed = true;
    this.session?.open.delete(this);
    if (this.ownsLease || this.#destroy) await this.lease.release(this.#destroy);
    this.host.completed(status, this.#begun);
    this.#resolveDone();
    if (this.#begun) {
      const durationMs = performance.now() - this.#beganAt;
      if (status === 'committed') publish(channels.commit, this.#event({ durationMs }));
      else publish(channels.rollback, this.#event({ durationMs, reason: reason ?? 'connection_lost' }));
    }
    const callbacks = this.root.callbacks;
    if (callbacks === null || status === null) return;
    // An attempt that will be run again leaves no trace: its callbacks are dropped.
    if (status === 'rolled_back' && error !== undefined && this.willRetry(error)) return;
    await this.#runCallbacks(
      status === 'committed' ? callbacks.afterCommit : callbacks.afterRollback,
      status,
    );
    for (const cb of callbacks.afterCompletion) await this.#invoke('afterCompletion', () => cb(status));
  }

  async #runCallbacks(list: Callback[], status: CompletionStatus): Promise<void> {
    const source = status === 'committed' ? 'afterCommit' : 'afterRollback';
    for (const cb of list) await this.#invoke(source, cb);
  }

  async #invoke(source: string, cb: Callback): Promise<void> {
    try {
      await cb();
    } catch (error) {
      this.host.report(source, error, this.id);
    }
  }

  /** Runs a savepoint frame: its failure rolls back to the savepoint only. */
  async runSavepoint<T>(
    frame: TransactionFrame,
    fn: () => Promise<T>,
    rollbackOn: ((error: unknown) => boolean) | undefined,
  ): Promise<T> {
    const parent = frame.parent as TransactionFrame;
    const unlock = await parent.children.lock();
    try {
      if (parent.isClosed) throw this.failure ?? closedError();
      let result: T;
      try {
        result = await this.race(fn());
      } catch (error) {
        if (error === this.failure || this.failure !== null) throw error;
        if (rollbackOn !== undefined && !safeRollbackOn(rollbackOn, error)) {
          await this.#releaseSavepoint(frame);
          throw error;
        }
        await this.#rollbackToSavepoint(frame);
        throw error;
      }
      if (frame.rollbackOnly) {
        await this.#rollbackToSavepoint(frame);
        throw new TxScopeError(
          ErrorCode.ROLLBACK_ONLY,
          'the savepoint was rolled back, not released: an inner frame that joined it threw, and the error was ' +
            'caught. Let the error propagate, or give the inner call its own savepoint with propagation: "nested"',
        );
      }
      await this.#releaseSavepoint(frame);
      return result;
    } finally {
      frame.closed = true;
      unlock();
    }
  }

  async #releaseSavepoint(frame: TransactionFrame): Promise<void> {
    frame.closed = true;
    if (frame.savepointQueued && frame.savepoint !== null) {
      await this.#savepointStatement(this.host.dialect.releaseSavepoint(frame.savepoint));
    }
    const moved = frame.callbacks;
    if (moved === null) return;
    const parent = (frame.parent as TransactionFrame).unit;
    for (const cb of moved.beforeCommit) parent.addCallback('beforeCommit', cb);
    for (const cb of moved.afterCommit) parent.addCallback('afterCommit', cb);
    for (const cb of moved.afterRollback) parent.addCallback('afterRollback', cb);
    for (const cb of moved.afterCompletion) parent.addCallback('afterCompletion', cb);
  }

  async #rollbackToSavepoint(frame: TransactionFrame): Promise<void> {
    frame.closed = true;
    frame.callbacks = null;
    if (frame.savepointQueued && frame.savepoint !== null) {
      await this.#savepointStatement(this.host.dialect.rollbackToSavepoint(frame.savepoint));
    }
  }

  async #savepointStatement(text: string): Promise<void> {
    if (this.failure !== null) throw this.failure;
    try {
      await this.lease.run((c) => this.#statement(c, text, [], true));
    } catch (error) {
      // Without its savepoint the transaction's state is unknown: it can only roll back.
      if (this.failure === null) this.fail(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
  }

  #event(extra: Partial<TransactionEvent>): TransactionEvent {
    return { database: this.host.name, scopeId: this.session?.id ?? null, transactionId: this.id, ...extra };
  }
}

function safeRollbackOn(rollbackOn: (error: unknown) => boolean, error: unknown): boolean {
  try {
    return rollbackOn(error) !== false;
  } catch {
    return true;
  }
}

function reasonOf(error: unknown, failure: Error | null): string {
  if (error !== failure || !(failure instanceof TxScopeError)) return 'error';
  switch (failure.code) {
    case ErrorCode.TRANSACTION_TIMEOUT:
      return 'timeout';
    case ErrorCode.ABORTED:
      return 'aborted';
    case ErrorCode.SCOPE_CLOSED:
      return 'scope_end';
    case ErrorCode.CONNECTION_LOST:
      return 'connection_lost';
    default:
      return 'error';
  }
}

export function closedError(): TxScopeError {
  return new TxScopeError(
    ErrorCode.TRANSACTION_CLOSED,
    'this statement comes from a transaction that has already ended (a promise that was not awaited inside it?); ' +
      'await the work inside the transaction, or run it on purpose outside with db.detached(fn)',
  );
}
