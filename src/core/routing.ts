/**
 * Where a statement runs: on the current transaction's connection, on the `db.connection(fn)`
 * pin, or in autocommit on a connection borrowed for that statement alone.
 */
import type { DriverConnection, DriverResult } from '../driver.js';
import { errors } from '../errors.js';
import { lookup, noLeases } from './context.js';
import type { Engine } from './engine.js';
import type { AcquireRequest, HeldConnection } from './pool.js';
import { runStatement, type StatementOwner } from './runner.js';
import type { Session } from './scope.js';

export function routeStatement(
  engine: Engine,
  owner: object,
  text: string,
  values: readonly unknown[],
): Promise<DriverResult> {
  const closed = engine.closedError();
  if (closed !== null) return Promise.reject(closed);
  const b = lookup(owner);
  if (b === undefined) {
    if (engine.strict) return Promise.reject(errors.outsideScope());
    return autocommit(engine, text, values, null, noLeases);
  }
  const session = b.session;
  if (session !== null) {
    const rejection = session.rejection();
    if (rejection !== null) return Promise.reject(rejection);
  }
  if (b.frame !== null) return b.frame.transaction.query(b.frame, text, values);
  if (b.pin !== null) return b.pin.query(text, values);
  if (session === null && !b.detached && engine.strict) return Promise.reject(errors.outsideScope());
  return autocommit(engine, text, values, session, b.held);
}

/** One autocommit statement: it borrows a connection, and gives it back as the statement settles. */
class AutocommitStatement implements StatementOwner, AcquireRequest {
  readonly transactionId = null;
  readonly readOnly = false;
  readonly stack: string;
  connection: DriverConnection | null = null;
  acquiredAt = 0;

  constructor(
    readonly engine: Engine,
    readonly session: Session | null,
    readonly held: readonly HeldConnection[],
  ) {
    this.stack = engine.pool.stackHere();
  }

  get scopeId(): number | null {
    return this.session?.id ?? null;
  }

  run(connection: DriverConnection, text: string, values: readonly unknown[]): Promise<DriverResult> {
    this.connection = connection;
    if (this.engine.pool.timesHolds) this.acquiredAt = performance.now();
    return runStatement(this, { connection, text, values, kind: 'statement', lease: null });
  }

  refusal(): null {
    return null;
  }

  accept(result: DriverResult): DriverResult | Promise<DriverResult> {
    const released = this.#release(false);
    return released === undefined ? result : released.then(() => result);
  }

  reject(error: unknown): Promise<never> {
    const lost = this.engine.isConnectionLost(error);
    const released = this.#release(lost);
    const failure = lost ? errors.connectionLost('autocommit', error) : error;
    if (released === undefined) throw failure;
    return released.then(() => {
      throw failure;
    });
  }

  #release(destroy: boolean): undefined | Promise<void> {
    return this.engine.pool.release(this.connection as DriverConnection, destroy, this, this.acquiredAt);
  }
}

/**
 * One autocommit statement the driver runs take-run-give-back by itself (its `query`): the
 * connection is never in the core's hands, so only the counters and the outcome are kept here.
 */
class PooledStatement implements StatementOwner {
  readonly transactionId = null;

  constructor(
    readonly engine: Engine,
    readonly session: Session | null,
  ) {}

  refusal(): null {
    return null;
  }

  accept(result: DriverResult): DriverResult {
    this.engine.pool.returnedByDriver(false);
    return result;
  }

  reject(error: unknown): never {
    const lost = this.engine.isConnectionLost(error);
    this.engine.pool.returnedByDriver(lost);
    throw lost ? errors.connectionLost('autocommit', error) : error;
  }
}

function autocommit(
  engine: Engine,
  text: string,
  values: readonly unknown[],
  session: Session | null,
  held: readonly HeldConnection[],
): Promise<DriverResult> {
  const connection = engine.pooledConnection;
  if (connection !== null && held.length === 0 && !engine.pool.watched) {
    engine.pool.borrowedByDriver();
    const owner = new PooledStatement(engine, session);
    return runStatement(owner, { connection, text, values, kind: 'statement', lease: null });
  }
  const statement = new AutocommitStatement(engine, session, held);
  return engine.pool.acquire(statement, (connection) => statement.run(connection, text, values));
}
