/**
 * Application boundaries inside a test transaction (`txscope/testing`): a boundary that would
 * begin a transaction opens a savepoint of the test transaction instead; its commit releases the
 * savepoint and its rollback rolls back to it, while the transaction object around it (deadline,
 * retries, hooks, scope) is the same one production runs.
 */
import type { DriverResult } from '../driver.js';
import type { Statement } from './runner.js';
import type { Transaction } from './transaction.js';

/**
 * Sends SAVEPOINT on `enclosing`'s connection (with BEGIN, when the test transaction has not
 * begun yet), then `first` inside it. Queued in that order on the one connection, so `first` is
 * refused, never run, when the savepoint could not be opened.
 */
export function openAsSavepoint(
  tx: Transaction,
  enclosing: Transaction,
  first: Statement,
): Promise<DriverResult> {
  const dialect = tx.engine.dialect;
  const name = enclosing.nextSavepointName();
  const opened = [enclosing.sendControl(dialect.savepoint(name))];
  // PostgreSQL cannot SET TRANSACTION READ ONLY in a savepoint, but a read-only savepoint can be
  // made with SET LOCAL, which the savepoint's end undoes; databases without one stay writable.
  const readOnly = tx.readOnly ? dialect.readOnlySavepoint : undefined;
  if (readOnly !== undefined) opened.push(enclosing.sendControl(readOnly.begin));
  Promise.all(opened).then(
    () => {
      tx.savepointName = name;
      tx.began();
    },
    (error: unknown) => {
      tx.failWith(error);
    },
  );
  return tx.lease.send(tx, first);
}

/** After RELEASE or ROLLBACK TO: what a read-only savepoint must undo by hand (SQLite's pragma). */
export function savepointEnded(tx: Transaction, enclosing: Transaction): void {
  const end = tx.readOnly ? tx.engine.dialect.readOnlySavepoint?.end : undefined;
  if (end === undefined || tx.savepointName === null || enclosing.isOver) return;
  enclosing.sendControl(end).catch((error: unknown) => tx.engine.report('rollback', error, tx.id));
}
