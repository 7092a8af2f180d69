/**
 * `db.connection(fn)`: one connection pinned for `fn`, without a transaction (session settings,
 * advisory locks, temporary tables). Statements in it run in autocommit, in issue order;
 * transactions begun in it run on the pinned connection, one at a time.
 */
import type { DriverResult } from '../driver.js';
import { errors } from '../errors.js';
import { bind, lookup, noLeases, runIn } from './context.js';
import type { Engine } from './engine.js';
import { Lease } from './lease.js';
import type { HeldConnection } from './pool.js';
import type { Statement, StatementOwner } from './runner.js';
import type { Session } from './scope.js';
import { Turns } from './turns.js';

export class Pin implements StatementOwner {
  #closed = false;
  /** Transactions inside the pin take turns on its connection. */
  readonly turns = new Turns();
  readonly lease: Lease;

  constructor(
    readonly engine: Engine,
    readonly session: Session | null,
    held: readonly HeldConnection[],
  ) {
    this.lease = new Lease(engine, { held, scopeId: session?.id ?? null, ended: errors.pinClosed });
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
    if (this.#closed) return;
    this.#closed = true;
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
  const held = b?.held ?? noLeases;
  const pin = new Pin(engine, session, held);
  session?.pinned(pin);
  const binding = bind(engine, b, { session, frame: null, pin, held, detached: false });
  try {
    return await runIn(binding, fn);
  } finally {
    session?.unpinned(pin);
    await pin.close();
  }
}
