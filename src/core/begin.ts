/**
 * BEGIN and a transaction's first statement. Where the driver can, both go out in one network
 * write, the statement running only if BEGIN succeeded; elsewhere BEGIN is awaited first.
 */
import type { DriverConnection, DriverResult } from '../driver.js';
import type { Lease } from './lease.js';
import { runAfterBegin, runStatement, type StatementKind, type StatementOwner } from './runner.js';

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
  beginFailed(error: unknown): unknown;
}

/** The statement that carries BEGIN: the caller's own, or a SAVEPOINT. */
export interface FirstStatement {
  readonly text: string;
  readonly values: readonly unknown[];
  readonly kind: StatementKind;
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
  replaced = 0,
): Promise<DriverResult> {
  const refused = tx.refusal();
  if (refused !== null) return Promise.reject(refused);
  let begun = false;
  const onBegun = (): void => {
    begun = true;
    tx.began();
  };
  const statement = { connection, text: first.text, values: first.values, kind: first.kind, lease: null };
  const begin = tx.beginStatements();
  const sent =
    connection.queryAfterBegin !== undefined
      ? runAfterBegin(tx, statement, begin, onBegun)
      : beginThenSend(tx, connection, begin, onBegun).then(() => runStatement(tx, statement));
  return sent.catch((error: unknown) => {
    // After BEGIN, the error is the statement's, already mapped as any statement's.
    if (begun) throw error;
    if (tx.mayReplaceConnection(error, replaced)) {
      return tx.lease.replace().then((fresh) => sendBegin(tx, fresh, first, replaced + 1));
    }
    throw tx.beginFailed(error);
  });
}

async function beginThenSend(
  tx: BeginningTransaction,
  connection: DriverConnection,
  begin: readonly string[],
  onBegun: () => void,
): Promise<void> {
  for (const text of begin) {
    await runStatement(tx, { connection, text, values: noValues, kind: 'begin', lease: null });
  }
  onBegun();
}
