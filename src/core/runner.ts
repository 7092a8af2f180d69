/**
 * The one place a statement reaches the driver, whoever holds the connection (a transaction, a
 * pin, an autocommit borrow): counters, timing, the `txscope:query` event, and a single
 * continuation in which the holder checks the outcome.
 */
import { channels, type QueryEvent } from '../diagnostics.js';
import type { DriverConnection, DriverResult } from '../driver.js';
import { TxScopeError } from '../errors.js';
import type { Engine } from './engine.js';
import type { Session } from './scope.js';

/**
 * What a statement is to its holder: the caller's own (`statement`), transaction control the
 * caller did not write (`control`: SAVEPOINT, ROLLBACK), the transaction's BEGIN, or its COMMIT.
 */
export type StatementKind = 'statement' | 'control' | 'begin' | 'commit';

/** The lease whose turn a statement takes (structural, so the runner needs nothing else of it). */
interface Turn {
  taskSettled(): void;
}

export interface Statement {
  readonly connection: DriverConnection;
  readonly text: string;
  readonly values: readonly unknown[];
  readonly kind: StatementKind;
  /** The lease whose turn ends when the statement settles, when it was sent without a queue promise. */
  readonly lease: Turn | null;
}

/** Who a statement runs for: it maps the statement's outcome. */
export interface StatementOwner {
  readonly engine: Engine;
  readonly session: Session | null;
  readonly transactionId: number | null;
  /** The error a statement whose turn has come rejects with instead of being sent, or null. */
  refusal(): Error | null;
  /** Checks a result (the transaction may have ended under it); returns it or throws. */
  accept(result: DriverResult, statement: Statement): DriverResult | Promise<DriverResult>;
  /** Maps an error (a lost connection, a failed transaction); always throws or rejects. */
  reject(error: unknown, statement: Statement): Promise<never>;
}

function send(statement: Statement): Promise<DriverResult> {
  try {
    return statement.connection.query(statement.text, statement.values);
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Sends one statement and hands its outcome to its owner. */
export function runStatement(owner: StatementOwner, statement: Statement): Promise<DriverResult> {
  const { engine, session } = owner;
  engine.activity.statements++;
  if (session !== null && statement.kind === 'statement') session.statements++;
  // Time is read only when someone uses it: a scope's Server-Timing or a query subscriber.
  const started = session !== null || channels.query.hasSubscribers ? performance.now() : 0;
  return send(statement).then(
    (result) => {
      statement.lease?.taskSettled();
      if (started !== 0) observe(owner, statement.text, started, undefined);
      return owner.accept(result, statement);
    },
    (error: unknown) => {
      statement.lease?.taskSettled();
      if (started !== 0) observe(owner, statement.text, started, error);
      if (statement.kind === 'statement') withCallerStack(error);
      return owner.reject(error, statement);
    },
  );
}

/**
 * Sends a transaction's BEGIN statements and its first statement together (the driver's
 * `queryAfterBegin`). `onBegun` runs once BEGIN has succeeded; an error before that is BEGIN's,
 * and reaches the caller as it is, not through the owner: the statement never ran.
 */
export function runAfterBegin(
  owner: StatementOwner,
  statement: Statement,
  begin: readonly string[],
  onBegun: () => void,
): Promise<DriverResult> {
  const { engine, session } = owner;
  const sendAfterBegin = statement.connection.queryAfterBegin;
  if (sendAfterBegin === undefined) return runStatement(owner, statement);
  engine.activity.statements += begin.length + 1;
  if (session !== null && statement.kind === 'statement') session.statements++;
  const started = session !== null || channels.query.hasSubscribers ? performance.now() : 0;
  let begun = false;
  const began = (): void => {
    begun = true;
    if (started !== 0) for (const text of begin) observe(owner, text, started, undefined);
    onBegun();
  };
  let sent: Promise<DriverResult>;
  try {
    sent = sendAfterBegin.call(statement.connection, begin, statement.text, statement.values, began);
  } catch (error) {
    sent = Promise.reject(error);
  }
  return sent.then(
    (result) => {
      if (started !== 0) observe(owner, statement.text, started, undefined);
      return owner.accept(result, statement);
    },
    (error: unknown) => {
      if (!begun) throw error;
      if (started !== 0) observe(owner, statement.text, started, error);
      if (statement.kind === 'statement') withCallerStack(error);
      return owner.reject(error, statement);
    },
  );
}

function observe(owner: StatementOwner, text: string, started: number, error: unknown): void {
  const durationMs = performance.now() - started;
  if (owner.session !== null) owner.session.databaseMs += durationMs;
  if (!channels.query.hasSubscribers) return;
  const event: QueryEvent = {
    database: owner.engine.name,
    text,
    durationMs,
    scopeId: owner.session?.id ?? null,
    transactionId: owner.transactionId,
    ...(error === undefined ? {} : { error }),
  };
  channels.query.publish(event);
}

/**
 * A driver error is created where the socket's data was parsed; taken again here, its stack leads
 * back to the code that awaited the statement (node-postgres does the same for its own promises).
 */
function withCallerStack(error: unknown): void {
  if (error instanceof Error && !(error instanceof TxScopeError)) Error.captureStackTrace(error);
}
