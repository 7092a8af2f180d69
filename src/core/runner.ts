/**
 * The one place a statement reaches the driver, whoever holds the connection (a transaction, a
 * pin, an autocommit borrow): counters, timing, the `txscope:query` event, and a single
 * continuation in which the holder checks the outcome.
 */
import { channels, type QueryEvent } from '../diagnostics.js';
import type { DriverConnection, DriverResult } from '../driver.js';
import { TxScopeError } from '../errors.js';
import type { Engine } from './engine.js';
import { ReplicaConnection } from './replica-target.js';
import type { Session } from './scope.js';

/**
 * What a statement is to its holder: the caller's own (`statement`), transaction control the
 * caller did not write (`control`: SAVEPOINT, ROLLBACK), the transaction's BEGIN, or its COMMIT.
 */
export type StatementKind = 'statement' | 'control' | 'begin' | 'commit';

/** A statement as its holder issues it. */
export interface Statement {
  readonly text: string;
  readonly values: readonly unknown[];
  readonly kind: StatementKind;
}

/**
 * The connection a statement runs on, and the turn it takes there: a lease ends its turn when the
 * statement settles (with no bookkeeping promise of its own); other holders have no turns.
 */
export interface StatementConnection {
  readonly connection: DriverConnection;
  taskSettled(): void;
}

/** Who a statement runs for: it maps the statement's outcome. */
export interface StatementOwner {
  readonly engine: Engine;
  readonly session: Session | null;
  readonly transactionId: number | null;
  /** A transaction's lease: with replicas, `txscope:query` says which target its statements ran on. */
  readonly lease?: { readonly heldConnection: DriverConnection | null };
  /** The error a statement whose turn has come rejects with instead of being sent, or null. */
  refusal(): Error | null;
  /** Checks a result (the transaction may have ended under it); returns it or throws. */
  accept(
    result: DriverResult,
    statement: Statement,
    connection: DriverConnection,
  ): DriverResult | Promise<DriverResult>;
  /** Maps an error (a lost connection, a failed transaction); always throws or rejects. */
  reject(error: unknown, statement: Statement): Promise<never>;
}

const noop = (): void => {};

/** A connection without turns, for holders that send one statement at a time by themselves. */
export function withoutTurns(connection: DriverConnection): StatementConnection {
  return { connection, taskSettled: noop };
}

function send(statement: Statement, connection: DriverConnection): Promise<DriverResult> {
  try {
    return connection.query(statement.text, statement.values);
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Sends one statement on `on` and hands its outcome to its owner. */
export function runStatement(
  owner: StatementOwner,
  statement: Statement,
  on: StatementConnection,
): Promise<DriverResult> {
  const { engine, session } = owner;
  engine.activity.statements++;
  if (session !== null && statement.kind === 'statement') session.statements++;
  // Time is read only when someone uses it: a scope's Server-Timing or a query subscriber.
  const startedAt = session !== null || channels.query.hasSubscribers ? performance.now() : 0;
  const connection = on.connection;
  return send(statement, connection).then(
    (result) => {
      on.taskSettled();
      if (startedAt !== 0) observe(owner, statement.text, performance.now() - startedAt);
      return owner.accept(result, statement, connection);
    },
    (error: unknown) => {
      on.taskSettled();
      if (startedAt !== 0)
        observe(owner, statement.text, { durationMs: performance.now() - startedAt, error });
      if (statement.kind === 'statement') withCallerStack(error);
      return owner.reject(error, statement);
    },
  );
}

/** A transaction's BEGIN as its first statement carries it, and what its sender learns. */
export interface Beginning {
  readonly connection: DriverConnection;
  /** The dialect's BEGIN statements. */
  readonly statements: readonly string[];
  began(): void;
  /** BEGIN failed, so the statement never ran: returns what the statement's promise settles with. */
  beginFailed(error: unknown): Promise<DriverResult>;
}

/**
 * Sends a transaction's BEGIN statements and its first statement together (the driver's
 * `queryAfterBegin`). `beginning.began` runs once BEGIN has succeeded; an error before that is
 * BEGIN's, handed to `beginning.beginFailed`, not to the owner: the statement never ran.
 */
export function runAfterBegin(
  owner: StatementOwner,
  statement: Statement,
  beginning: Beginning,
): Promise<DriverResult> {
  const { engine, session } = owner;
  const connection = beginning.connection;
  const sendAfterBegin = connection.queryAfterBegin;
  if (sendAfterBegin === undefined) return runStatement(owner, statement, withoutTurns(connection));
  const begin = beginning.statements;
  engine.activity.statements += begin.length + 1;
  if (session !== null && statement.kind === 'statement') session.statements++;
  const startedAt = session !== null || channels.query.hasSubscribers ? performance.now() : 0;
  let begun = false;
  const began = (): void => {
    begun = true;
    // BEGIN's time is inside the statement's it rode with: reported, not counted twice.
    if (startedAt !== 0)
      for (const text of begin)
        observe(owner, text, { durationMs: performance.now() - startedAt, shared: true });
    beginning.began();
  };
  let sent: Promise<DriverResult>;
  try {
    sent = sendAfterBegin.call(connection, statement.text, statement.values, { statements: begin, began });
  } catch (error) {
    sent = Promise.reject(error);
  }
  return sent.then(
    (result) => {
      if (startedAt !== 0) observe(owner, statement.text, performance.now() - startedAt);
      return owner.accept(result, statement, connection);
    },
    (error: unknown) => {
      if (!begun) {
        if (startedAt !== 0)
          observe(owner, begin[0] as string, { durationMs: performance.now() - startedAt, error });
        return beginning.beginFailed(error);
      }
      if (startedAt !== 0)
        observe(owner, statement.text, { durationMs: performance.now() - startedAt, error });
      if (statement.kind === 'statement') withCallerStack(error);
      return owner.reject(error, statement);
    },
  );
}

/** How long a statement took; with how it failed, or that its time is another's, when so. */
type Elapsed =
  | number
  | {
      readonly durationMs: number;
      readonly error?: unknown;
      /** Its time is part of another statement's (BEGIN sent with the first statement). */
      readonly shared?: boolean;
    };

/** Adds a statement's time to its scope and publishes `txscope:query`; called only when timed. */
function observe(owner: StatementOwner, text: string, elapsed: Elapsed): void {
  const durationMs = typeof elapsed === 'number' ? elapsed : elapsed.durationMs;
  const shared = typeof elapsed === 'object' && elapsed.shared === true;
  if (owner.session !== null && !shared) owner.session.databaseMs += durationMs;
  if (!channels.query.hasSubscribers) return;
  const error = typeof elapsed === 'object' ? elapsed.error : undefined;
  const event: QueryEvent = {
    database: owner.engine.name,
    text,
    durationMs,
    scopeId: owner.session?.id ?? null,
    transactionId: owner.transactionId,
    ...(error === undefined ? {} : { error }),
  };
  if (owner.engine.replicas !== null) {
    const connection = owner.lease?.heldConnection;
    event.target = connection instanceof ReplicaConnection ? connection.target.label : 'primary';
  }
  channels.query.publish(event);
}

/**
 * A driver error is created where the socket's data was parsed; taken again here, its stack leads
 * back to the code that awaited the statement (node-postgres does the same for its own promises).
 */
function withCallerStack(error: unknown): void {
  if (error instanceof Error && !(error instanceof TxScopeError)) Error.captureStackTrace(error);
}
