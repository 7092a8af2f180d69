/**
 * BEGIN and a transaction's first statement. Where the driver can, both go out in one network
 * write, the statement running only if BEGIN succeeded; elsewhere BEGIN is awaited first.
 */
import type { DriverConnection, DriverResult } from '../driver.js';
import { TxScopeError } from '../errors.js';
import type { Lease } from './lease.js';
import {
  runAfterBegin,
  runStatement,
  type Statement,
  type StatementConnection,
  type StatementOwner,
  withoutTurns,
} from './runner.js';

/** What sending BEGIN needs of its transaction. */
export interface BeginningTransaction extends StatementOwner {
  readonly lease: Lease;
  /** The dialect's BEGIN statements for this transaction's isolation and access mode. */
  beginStatements(): readonly string[];
  /** True when a dead connection may be swapped for a fresh one: nothing of the transaction ran yet. */
  mayReplaceConnection(error: unknown, replaced: number): boolean;
  /** BEGIN succeeded: statements after it run inside the transaction. */
  began(): void;
  /** BEGIN failed (the statement never ran): fails the transaction, returns the error to reject with. */
  failWith(error: unknown): unknown;
}

/** The statement that carries BEGIN (the caller's own, or a SAVEPOINT), and how often it was re-sent. */
export interface FirstStatement extends Statement {
  /** Dead pooled connections swapped for fresh ones so far. */
  readonly replaced?: number;
}

const noValues: readonly unknown[] = Object.freeze([]);

/**
 * Sends BEGIN, then `first`, on `connection`. A pooled connection found dead at BEGIN (failover,
 * idle kill, NAT timeout) is swapped for a fresh one instead of failing work that never started.
 */
export function sendBegin(
  tx: BeginningTransaction,
  connection: DriverConnection,
  first: FirstStatement,
): Promise<DriverResult> {
  const refused = tx.refusal();
  if (refused !== null) return Promise.reject(refused);
  const replaced = first.replaced ?? 0;
  const beginFailed = (error: unknown): Promise<DriverResult> => {
    if (!tx.mayReplaceConnection(error, replaced)) return Promise.reject(tx.failWith(error));
    return tx.lease.replace().then(
      (fresh) => sendBegin(tx, fresh, { ...first, replaced: replaced + 1 }),
      // No fresh connection either (the server or the pooler in front of it is gone, a restart):
      // the transaction lost its connection, and says so with the loss as cause, not as whatever
      // the reconnect ran into (ECONNREFUSED); a TxScopeError of the acquire (its timeout, an
      // abort) says more and stays.
      (failed: unknown) => Promise.reject(tx.failWith(failed instanceof TxScopeError ? failed : error)),
    );
  };
  const statements = tx.beginStatements();
  if (connection.queryAfterBegin !== undefined) {
    return runAfterBegin(tx, first, { connection, statements, began: () => tx.began(), beginFailed });
  }
  const on = withoutTurns(connection);
  return beginOn(tx, on, statements).then(() => {
    tx.began();
    return runStatement(tx, first, on);
  }, beginFailed);
}

/** The BEGIN statements one after another (MySQL sends SET TRANSACTION first). */
function beginOn(
  tx: BeginningTransaction,
  on: StatementConnection,
  begin: readonly string[],
): Promise<unknown> {
  const send = (text: string) => runStatement(tx, { text, values: noValues, kind: 'begin' }, on);
  let sent = send(begin[0] as string);
  for (let i = 1; i < begin.length; i++) {
    const text = begin[i] as string;
    sent = sent.then(() => send(text));
  }
  return sent;
}
