/**
 * txscope's side of the pool: every connection the core takes and gives back passes here, for
 * the clean check, leak detection, pool-deadlock accounting, counters and the acquire/release
 * events. The pool itself is the driver's.
 */
import { type ConnectionEvent, channels, type LeakEvent, publish } from '../diagnostics.js';
import type { AcquireIntent, DriverConnection, PoolCounts } from '../driver.js';
import { errors } from '../errors.js';
import type { Engine } from './engine.js';

/** Who a connection is taken for, as events and leak reports name it. */
export interface Holder {
  readonly scopeId: number | null;
  readonly transactionId: number | null;
  /** Where the holder began, for leak reports; empty unless leak detection is on. */
  readonly stack: string;
  /** When it took its connection (performance.now()), for the release event; 0 when untimed. */
  readonly acquiredAt: number;
}

/** Anything up the async chain that may hold a connection while a new one is asked for. */
export interface HeldConnection {
  /** True from the moment a connection was asked for until it is given back. */
  readonly holding: boolean;
}

/** Who asks for a connection, and for what. */
export interface AcquireRequest extends Holder {
  /** Connections its async chain already holds (suspended transactions, pins). */
  readonly held: readonly HeldConnection[];
  readonly readOnly: boolean;
  /** The scope a read-only transaction runs for: read-your-writes on replicas (rule 20). */
  readonly session?: object | null;
  /** Called when no connection could be taken; returns the error the caller rejects with. */
  acquireFailed?(error: unknown): unknown;
}

/** What `db.stats()` reports of connections. */
export interface ConnectionCounts {
  /** Connections txscope holds right now. */
  checkedOut: number;
  acquired: number;
  released: number;
  /** Connections closed instead of pooled (lost, or not clean). */
  destroyed: number;
}

const readOnlyIntent: AcquireIntent = Object.freeze({ readOnly: true });

export class Pool {
  readonly counts: ConnectionCounts = { checkedOut: 0, acquired: 0, released: 0, destroyed: 0 };
  readonly leakDetectionMs: number | undefined;
  /** Connections held by transactions that are themselves waiting for another connection. */
  #heldByWaiters = 0;
  readonly #leaks = new Map<DriverConnection, NodeJS.Timeout>();

  constructor(
    readonly engine: Engine,
    leakDetectionMs: number | undefined,
  ) {
    this.leakDetectionMs = leakDetectionMs;
  }

  driverCounts(): PoolCounts {
    return this.engine.driver.counts();
  }

  /** Where a holder begins, for leak reports: only captured when leak detection is on. */
  stackHere(): string {
    if (this.leakDetectionMs === undefined) return '';
    return (new Error().stack ?? '').split('\n').slice(3).join('\n');
  }

  /**
   * Takes a connection for `holder` and hands it to `use`, in the same continuation as the pool's
   * answer. `held` are the connections its async chain already holds (suspended transactions,
   * pins): if every pooled connection is held that way, none can ever be given back, and waiting
   * would only end at the acquire timeout.
   */
  acquire<T>(request: AcquireRequest, use: (connection: DriverConnection) => T | Promise<T>): Promise<T> {
    const closed = this.engine.closedError();
    if (closed !== null) return Promise.reject(closed);
    const held = request.held;
    const holding = held.length === 0 ? 0 : countHolding(held);
    if (holding > 0) {
      const counts = this.driverCounts();
      if (this.#heldByWaiters + holding >= counts.max) return Promise.reject(errors.poolDeadlock(counts));
      this.#heldByWaiters += holding;
    }
    const started = channels.acquire.hasSubscribers ? performance.now() : 0;
    let taken: DriverConnection | Promise<DriverConnection>;
    try {
      const replicas = this.engine.replicas;
      taken =
        replicas !== null && request.readOnly
          ? replicas.acquire(request)
          : this.engine.driver.acquire(request.readOnly ? readOnlyIntent : undefined);
    } catch (error) {
      this.#heldByWaiters -= holding;
      return Promise.reject(request.acquireFailed?.(error) ?? error);
    }
    if (!(taken instanceof Promise)) {
      this.#heldByWaiters -= holding;
      try {
        return Promise.resolve(use(this.#taken(taken, request, started)));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return taken.then(
      (connection) => {
        this.#heldByWaiters -= holding;
        return use(this.#taken(connection, request, started));
      },
      (error: unknown) => {
        this.#heldByWaiters -= holding;
        const failure = request.acquireFailed?.(error) ?? error;
        if (channels.acquire.hasSubscribers) this.#publishAcquire(request, started, failure);
        throw failure;
      },
    );
  }

  #taken(connection: DriverConnection, holder: Holder, started: number): DriverConnection {
    this.counts.checkedOut++;
    this.counts.acquired++;
    if (channels.acquire.hasSubscribers) this.#publishAcquire(holder, started, undefined);
    if (this.leakDetectionMs !== undefined) this.#watchLeak(connection, holder, this.leakDetectionMs);
    return connection;
  }

  #publishAcquire(holder: Holder, started: number, error: unknown): void {
    const event: ConnectionEvent = {
      database: this.engine.name,
      scopeId: holder.scopeId,
      transactionId: holder.transactionId,
      durationMs: started === 0 ? 0 : performance.now() - started,
      pool: this.driverCounts(),
      ...(error === undefined ? {} : { error }),
    };
    channels.acquire.publish(event);
  }

  /**
   * Gives a connection back: pooled only when clean (the driver's own status is the judge),
   * rolled back first when a transaction is still open on it, destroyed when that fails or
   * `destroy` says so. Synchronous unless a rollback is needed.
   */
  release(connection: DriverConnection, holder: Holder, destroy: boolean): undefined | Promise<void> {
    this.#unwatchLeak(connection);
    if (!destroy) {
      const status = connection.status();
      if (status === 'closed') destroy = true;
      else if (status === 'in_transaction' || status === 'failed') {
        return this.#rollbackThenRelease(connection, holder);
      }
    }
    this.#giveBack(connection, holder, destroy);
    return undefined;
  }

  async #rollbackThenRelease(connection: DriverConnection, holder: Holder): Promise<void> {
    let destroy: boolean;
    try {
      await connection.query(this.engine.dialect.rollback, []);
      const after = connection.status();
      destroy = after === 'in_transaction' || after === 'failed';
    } catch (error) {
      this.engine.report('release', error, holder.transactionId);
      destroy = true;
    }
    this.#giveBack(connection, holder, destroy);
  }

  #giveBack(connection: DriverConnection, holder: Holder, destroy: boolean): void {
    try {
      const replicas = this.engine.replicas;
      if (replicas === null || !replicas.release(connection, destroy))
        this.engine.driver.release(connection, { destroy });
    } catch (error) {
      this.engine.report('release', error, holder.transactionId);
    }
    this.counts.checkedOut--;
    this.counts.released++;
    if (destroy) this.counts.destroyed++;
    if (channels.release.hasSubscribers) {
      const event: ConnectionEvent = {
        database: this.engine.name,
        scopeId: holder.scopeId,
        transactionId: holder.transactionId,
        durationMs: holder.acquiredAt === 0 ? 0 : performance.now() - holder.acquiredAt,
        destroyed: destroy,
        pool: this.driverCounts(),
      };
      channels.release.publish(event);
    }
  }

  /**
   * Whether anyone watches connections between acquire and release (events, leak reports): when
   * nobody does, a driver may run an autocommit statement take-run-give-back in one call.
   */
  get watched(): boolean {
    return (
      channels.acquire.hasSubscribers || channels.release.hasSubscribers || this.leakDetectionMs !== undefined
    );
  }

  /** Counts a connection the driver takes and gives back by itself for one statement. */
  borrowedByDriver(): void {
    this.counts.checkedOut++;
    this.counts.acquired++;
  }

  returnedByDriver(destroyed: boolean): void {
    this.counts.checkedOut--;
    this.counts.released++;
    if (destroyed) this.counts.destroyed++;
  }

  /** Whether a holder needs the time it took its connection (release events, leak reports). */
  get timesHolds(): boolean {
    return channels.release.hasSubscribers || this.leakDetectionMs !== undefined;
  }

  #watchLeak(connection: DriverConnection, holder: Holder, ms: number): void {
    const timer = setTimeout(() => {
      this.#leaks.delete(connection);
      const event: LeakEvent = {
        database: this.engine.name,
        transactionId: holder.transactionId,
        scopeId: holder.scopeId,
        heldMs: ms,
        stack: holder.stack,
      };
      publish(channels.leak, event);
      process.emitWarning(
        `txscope: a connection of database "${this.engine.name}" has been held for more than ${ms} ms ` +
          `(transaction ${holder.transactionId ?? '-'}); it began at:\n${holder.stack || '(stack not captured)'}`,
        { code: 'TXSCOPE_LEAK' },
      );
    }, ms);
    timer.unref();
    this.#leaks.set(connection, timer);
  }

  #unwatchLeak(connection: DriverConnection): void {
    if (this.#leaks.size === 0) return;
    const timer = this.#leaks.get(connection);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#leaks.delete(connection);
  }

  close(): void {
    for (const timer of this.#leaks.values()) clearTimeout(timer);
    this.#leaks.clear();
  }
}

function countHolding(held: readonly HeldConnection[]): number {
  let holding = 0;
  for (const lease of new Set(held)) if (lease.holding) holding++;
  return holding;
}
