/**
 * A connection taken lazily on the first task and used by one task at a time, in the order the
 * tasks were issued. Transactions and pins each hold one; an autocommit statement borrows a
 * connection without one.
 */
import type { DriverConnection, DriverResult } from '../driver.js';
import { errors, type TxScopeError } from '../errors.js';
import type { Engine } from './engine.js';
import type { AcquireRequest, HeldConnection } from './pool.js';
import {
  runStatement,
  type Statement,
  type StatementConnection,
  type StatementOwner,
  withoutTurns,
} from './runner.js';

/** Who holds a lease, and what a task that comes too late is told. */
export interface LeaseOptions {
  /** Connections held up the async chain while this one waits for a connection (deadlock accounting). */
  held: readonly HeldConnection[];
  scopeId: number | null;
  /** The error of a task whose turn comes after its holder ended (a statement nobody awaited). */
  ended: () => TxScopeError;
}

/** How a task's owner maps the failure to take a connection for it (a transaction fails with it). */
export type AcquireFailure = (error: unknown) => unknown;

type LeaseState =
  | { readonly kind: 'unused' }
  | { readonly kind: 'acquiring' }
  | { readonly kind: 'held'; readonly connection: DriverConnection }
  | { readonly kind: 'released' };

const noop = (): void => {};
const unused: LeaseState = Object.freeze({ kind: 'unused' });
const acquiring: LeaseState = Object.freeze({ kind: 'acquiring' });
const settledPromise: Promise<unknown> = Promise.resolve();

export class Lease implements AcquireRequest, HeldConnection, StatementConnection {
  #state: LeaseState = unused;
  /** Tasks issued and not yet settled. */
  #inFlight = 0;
  /** The last task issued: it settles after every task before it. */
  #last: Promise<unknown> = settledPromise;
  /** The driver error the connection was lost to; a lost lease never takes another connection. */
  lost: unknown = undefined;
  /** Set for read-only transactions: the driver may serve them from a reader. */
  readOnly = false;
  /** The scope of a read-only transaction, for read-your-writes on replicas (rule 20). */
  session: object | null = null;
  /** When the connection was taken (performance.now()), read by the release event; 0 untimed. */
  acquiredAt = 0;
  transactionId: number | null = null;

  readonly engine: Engine;
  readonly held: readonly HeldConnection[];
  readonly scopeId: number | null;
  readonly stack: string;
  readonly #ended: () => TxScopeError;
  /** Set while a task is taking the connection: how its owner maps a failure to get one. */
  #acquireFailure: AcquireFailure | null = null;

  constructor(engine: Engine, options: LeaseOptions) {
    this.engine = engine;
    this.held = options.held;
    this.scopeId = options.scopeId;
    this.stack = engine.pool.stackHere();
    this.#ended = options.ended;
  }

  /** A failed acquire leaves the lease without a connection again. */
  acquireFailed(error: unknown): unknown {
    if (this.#state.kind === 'acquiring') this.#state = unused;
    return this.#acquireFailure === null ? error : this.#acquireFailure(error);
  }

  get holding(): boolean {
    return this.#state.kind === 'acquiring' || this.#state.kind === 'held';
  }

  /** The connection a statement sent now runs on (only asked while one is held). */
  get connection(): DriverConnection {
    const state = this.#state;
    if (state.kind !== 'held') throw errors.transactionClosed();
    return state.connection;
  }

  /** The connection if one is held. */
  get heldConnection(): DriverConnection | null {
    return this.#state.kind === 'held' ? this.#state.connection : null;
  }

  /** True while a task is in flight (or waiting for its turn). */
  get busy(): boolean {
    return this.#inFlight > 0;
  }

  /** Marks the end of a task issued with {@link send}: the runner calls it as the statement settles. */
  taskSettled(): void {
    this.#inFlight--;
  }

  /**
   * Sends one statement for `owner` after everything issued before it. When nothing is ahead of
   * it (the usual case) it goes to the driver at once, with no bookkeeping promise of its own.
   */
  send(owner: StatementOwner, statement: Statement): Promise<DriverResult> {
    if (this.#inFlight === 0 && this.#state.kind === 'held') {
      this.#inFlight++;
      const sent = runStatement(owner, statement, this);
      this.#last = sent;
      return sent;
    }
    return this.run((connection) => {
      // Its turn came after the holder failed (a SAVEPOINT before it, a timeout): it is never sent.
      const refused = owner.refusal();
      if (refused !== null) return Promise.reject(refused);
      return runStatement(owner, statement, withoutTurns(connection));
    });
  }

  /**
   * Runs `task` on the connection after every task issued before it. `acquireFailure` maps the
   * error when no connection could be taken for it.
   */
  run<T>(task: (connection: DriverConnection) => Promise<T>, acquireFailure?: AcquireFailure): Promise<T> {
    const start = (): Promise<T> => this.#withConnection(task, acquireFailure);
    let result: Promise<T>;
    if (this.#inFlight > 0) result = this.#last.then(start, start);
    else {
      try {
        result = start();
      } catch (error) {
        result = Promise.reject(error);
      }
    }
    this.#inFlight++;
    this.#last = result;
    const settle = (): void => {
      this.#inFlight--;
    };
    result.then(settle, settle);
    return result;
  }

  /** Resolves when every task issued so far has settled. */
  settled(): Promise<void> {
    return this.#last.then(noop, noop);
  }

  /** Runs `task` on the connection, taking one from the pool first when the lease has none. */
  #withConnection<T>(
    task: (connection: DriverConnection) => Promise<T>,
    acquireFailure: AcquireFailure | undefined,
  ): Promise<T> {
    switch (this.#state.kind) {
      case 'held':
        return task(this.#state.connection);
      case 'released':
        return Promise.reject(this.engine.closedError() ?? this.#ended());
      default: {
        this.#state = acquiring;
        this.#acquireFailure = acquireFailure ?? null;
        return this.engine.pool.acquire(this, (connection) => task(this.#hold(connection)));
      }
    }
  }

  #hold(connection: DriverConnection): DriverConnection {
    if (this.#state.kind === 'released') {
      // The holder ended while the pool was still answering: the connection goes straight back.
      void this.engine.pool.release(connection, this, false);
      throw this.#ended();
    }
    this.acquiredAt = this.engine.pool.timesHolds ? performance.now() : 0;
    this.#state = { kind: 'held', connection };
    return connection;
  }

  /**
   * From inside a running task: destroys the current (dead) connection and takes a fresh one,
   * which the tasks queued behind this one then use.
   */
  async replace(): Promise<DriverConnection> {
    const state = this.#state;
    if (state.kind === 'held') {
      this.#state = unused;
      await this.engine.pool.release(state.connection, this, true);
    }
    return this.#withConnection((connection) => Promise.resolve(connection), undefined);
  }

  /** Gives the connection back (once); a no-op when none was taken. */
  release(destroy: boolean): undefined | Promise<void> {
    const state = this.#state;
    this.#state = { kind: 'released' };
    if (state.kind !== 'held') return undefined;
    return this.engine.pool.release(state.connection, this, destroy || this.lost !== undefined);
  }
}
