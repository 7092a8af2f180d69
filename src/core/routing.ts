/**
 * Where a statement runs: on the current transaction's connection, on the `db.connection(fn)`
 * pin, or in autocommit on a connection borrowed for that statement alone.
 */
import type { DriverConnection, DriverResult } from '../driver.js';
import { errors } from '../errors.js';
import { type Binding, lookup, noLeases } from './context.js';
import type { Engine } from './engine.js';
import type { AcquireRequest, HeldConnection } from './pool.js';
import { runStatement, type Statement, type StatementConnection, type StatementOwner } from './runner.js';
import type { Session } from './scope.js';

/** Runs `statement` where the current async context of `engine`'s database says it belongs. */
export function routeStatement(engine: Engine, statement: Statement): Promise<DriverResult> {
  const closed = engine.closedError();
  if (closed !== null) return Promise.reject(closed);
  const b = lookup(engine);
  if (b === undefined) {
    if (engine.strict) return Promise.reject(errors.outsideScope(engine.test !== null));
    return autocommit(engine, statement, undefined);
  }
  const session = b.session;
  if (session !== null) {
    const rejection = session.rejection();
    if (rejection !== null) return Promise.reject(rejection);
  }
  if (b.frame !== null) return b.frame.transaction.query(b.frame, statement);
  if (b.pin !== null) return b.pin.query(statement);
  if (session === null && !b.detached && engine.strict) return Promise.reject(errors.outsideScope());
  return autocommit(engine, statement, b);
}

/** One autocommit statement: it borrows a connection, and gives it back as the statement settles. */
class AutocommitStatement implements StatementOwner, AcquireRequest, StatementConnection {
  readonly transactionId = null;
  readonly readOnly = false;
  readonly stack: string;
  connection!: DriverConnection;
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

  run(connection: DriverConnection, statement: Statement): Promise<DriverResult> {
    this.connection = connection;
    if (this.engine.pool.timesHolds) this.acquiredAt = performance.now();
    return runStatement(this, statement, this);
  }

  /** Borrowed for one statement: no turns to end. */
  taskSettled(): void {}

  /** As on the driver's one-call path: a connection lost on the way is ERR_CONNECTION_LOST. */
  acquireFailed(error: unknown): unknown {
    return this.engine.isConnectionLost(error) ? errors.connectionLost('autocommit', error) : error;
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
    return this.engine.pool.release(this.connection, this, destroy);
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

function autocommit(engine: Engine, statement: Statement, from: Binding | undefined): Promise<DriverResult> {
  const test = engine.test;
  if (test !== null) return test.query(statement);
  const session = from?.session ?? null;
  const held = from?.held ?? noLeases;
  if (session !== null && engine.replicas !== null) engine.replicas.ranInAutocommit(session, statement.text);
  const pooled = engine.pooledConnection;
  if (pooled !== null && held.length === 0 && !engine.pool.watched) {
    engine.pool.borrowedByDriver();
    return runStatement(new PooledStatement(engine, session), statement, pooled);
  }
  const borrower = new AutocommitStatement(engine, session, held);
  return engine.pool.acquire(borrower, (connection) => borrower.run(connection, statement));
}
