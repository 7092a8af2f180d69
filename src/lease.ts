import type { DriverConnection } from './driver.js';
import { Mutex } from './mutex.js';

const noop = (): void => {};

/** Where a lease gets its connection from: the database's pool accounting. */
export interface ConnectionSource {
  acquire(lease: Lease): Promise<DriverConnection>;
  release(lease: Lease, connection: DriverConnection, destroy: boolean): Promise<void>;
}

/**
 * A connection taken lazily on the first task and used by one task at a time, in
 * the order the tasks were issued. Transactions and pins each hold one.
 */
export class Lease {
  connection: DriverConnection | null = null;
  acquiredAt = 0;
  /** Set for read-only transactions: the driver may serve them from a reader. */
  readOnly = false;
  /** The driver error the connection was lost to; a lost lease never takes another connection. */
  lost: unknown = undefined;
  #acquiring: Promise<DriverConnection> | null = null;
  #tail: Promise<unknown> = Promise.resolve();
  #released = false;

  constructor(
    readonly source: ConnectionSource,
    /** Leases held up the async chain while this one waits for a connection (deadlock accounting). */
    readonly held: readonly Lease[],
    readonly scopeId: number | null,
    public transactionId: number | null,
    /** Where the holder began, for leak reports; empty unless leak detection is on. */
    readonly stack: string,
  ) {}

  /** True once a connection was asked for (and not yet given back). */
  get holding(): boolean {
    return this.#acquiring !== null && !this.#released;
  }

  /** Runs `task` on the connection after every task issued before it. */
  run<T>(task: (connection: DriverConnection) => Promise<T>): Promise<T> {
    let result: Promise<T>;
    const connection = this.connection;
    if (this.#inFlight === 0 && connection !== null) {
      // Nothing ahead of it (the usual case): run now, without queueing through the tail.
      try {
        result = task(connection);
      } catch (error) {
        result = Promise.reject(error);
      }
    } else {
      result = this.#tail.then(() => this.#connect()).then(task);
    }
    this.#inFlight++;
    this.#tail = result.then(this.#settle, this.#settle);
    return result;
  }

  #inFlight = 0;
  readonly #settle = (): void => {
    this.#inFlight--;
  };

  /** Resolves when every task issued so far has settled. */
  settled(): Promise<void> {
    return this.#tail.then(noop);
  }

  #connect(): Promise<DriverConnection> {
    if (this.#released) return Promise.reject(new Error('lease already released'));
    this.#acquiring ??= this.source.acquire(this).then((c) => {
      if (this.#released) {
        // The holder ended while the pool was still answering: hand the connection straight back.
        void this.source.release(this, c, false);
        throw new Error('lease already released');
      }
      this.connection = c;
      this.acquiredAt = performance.now();
      return c;
    });
    return this.#acquiring;
  }

  /**
   * From inside a running task: destroys the current (dead) connection and takes a fresh one,
   * which the tasks queued behind this one then use.
   */
  async replace(): Promise<DriverConnection> {
    const dead = this.connection;
    this.connection = null;
    this.#acquiring = null;
    if (dead !== null) await this.source.release(this, dead, true);
    return this.#connect();
  }

  /** Gives the connection back (once); a no-op when none was taken. */
  async release(destroy: boolean): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const connection = this.connection;
    this.connection = null;
    if (connection !== null) await this.source.release(this, connection, destroy);
  }
}

/** A connection pinned by `db.connection(fn)`; transactions in it take turns on it. */
export class Pin {
  closed = false;
  readonly turns = new Mutex();

  constructor(readonly lease: Lease) {}
}
