/**
 * `db.connection(fn)`: one connection pinned for `fn`, without a transaction (session settings,
 * advisory locks, temporary tables). Statements in it run in autocommit, in issue order;
 * transactions begun in it run on the pinned connection, one at a time.
 */
import type { DriverResult } from '../driver.js';
import { errors, type TxScopeError } from '../errors.js';
import { bind, lookup, noLeases, runIn } from './context.js';
import type { Engine } from './engine.js';
import { Lease } from './lease.js';
import type { HeldConnection } from './pool.js';
import type { Statement, StatementOwner } from './runner.js';
import type { Session } from './scope.js';
import { ownTransaction, type TransactionRole } from './transaction-state.js';
import { Turns } from './turns.js';

/** Who holds a pin, and what a statement that comes after its end is told. */
export interface PinOptions {
  readonly session: Session | null;
  readonly held: readonly HeldConnection[];
  readonly ended: () => TxScopeError;
}

export class Pin implements StatementOwner {
  #closed = false;
  /** Transactions inside the pin take turns on its connection. */
  readonly turns = new Turns();
  readonly lease: Lease;
  readonly session: Session | null;

  constructor(
    readonly engine: Engine,
    options: PinOptions,
  ) {
    this.session = options.session;
    this.lease = new Lease(engine, {
      held: options.held,
      scopeId: options.session?.id ?? null,
      ended: options.ended,
    });
  }

  /** True for a test transaction's pin (`txscope/testing`). */
  get testing(): boolean {
    return false;
  }

  /** What a transaction begun inside the pin is on its connection. */
  get role(): TransactionRole {
    return ownTransaction;
  }

  /** Marks the pin closed; false when it already was. */
  protected markClosed(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    return true;
  }

  get transactionId(): null {
    return null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs one autocommit statement on the pinned connection. */
  query(statement: Statement): Promise<DriverResult> {
    if (this.#closed) return Promise.reject(errors.pinClosed());
    // The pin never moves to another connection: the session state it was taken for is gone.
    if (this.lease.lost !== undefined) return Promise.reject(errors.connectionLost('pin', this.lease.lost));
    if (this.turns.busy) {
      // A transaction holds the pinned connection: the statement waits for it to end.
      return this.turns.take().then((release) => {
        const sent = this.#closed ? Promise.reject(errors.pinClosed()) : this.lease.send(this, statement);
        sent.then(release, release);
        return sent;
      });
    }
    return this.lease.send(this, statement);
  }

  refusal(): Error | null {
    return this.lease.lost === undefined ? null : errors.connectionLost('pin', this.lease.lost);
  }

  accept(result: DriverResult): DriverResult {
    return result;
  }

  reject(error: unknown, _statement: Statement): never {
    if (this.engine.isConnectionLost(error)) {
      this.lease.lost ??= error;
      throw errors.connectionLost('pin', error);
    }
    throw error;
  }

  /** Ends the pin: its connection goes back once everything issued on it has settled. */
  async close(): Promise<void> {
    if (!this.markClosed()) return;
    await this.lease.settled();
    await this.lease.release(false);
  }
}

/** `db.connection(fn)`. Inside a transaction or a pin, statements already share one connection. */
export async function runPinned<T>(engine: Engine, fn: () => T | Promise<T>): Promise<T> {
  const closed = engine.closedError();
  if (closed !== null) throw closed;
  const b = lookup(engine);
  const session = b?.session ?? null;
  const rejection = session?.rejection() ?? null;
  if (rejection !== null) throw rejection;
  if ((b?.frame && !b.frame.isClosed) || (b?.pin && !b.pin.closed)) return fn();
  if (b?.pin?.testing) throw errors.testTransactionEnded();
  if (engine.driver.sessions === 'per_transaction') throw errors.noSessionsBehindPooler(engine.driver.label);
  const held = b?.held ?? noLeases;
  const test = engine.test;
  // Under a test transaction the one connection is its connection.
  if (test !== null && !b?.pin) {
    return runIn(bind(engine, b, { session, frame: null, pin: test, held, detached: false }), fn);
  }
  const pin = new Pin(engine, { session, held, ended: errors.pinClosed });
  session?.pinned(pin);
  const binding = bind(engine, b, { session, frame: null, pin, held, detached: false });
  try {
    return await runIn(binding, fn);
  } finally {
    session?.unpinned(pin);
    await pin.close();
  }
}
