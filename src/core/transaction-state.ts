/** The states a transaction goes through, and what it is begun with. */
import type { IsolationLevel } from '../driver.js';
import type { Lease } from './lease.js';
import type { Session } from './scope.js';
import type { Transaction } from './transaction.js';

export type TransactionState =
  /** Nothing sent and no connection taken: a transaction that runs no statement costs nothing. */
  | { readonly phase: 'pending' }
  /** BEGIN is on its way (with the first statement); statements issued meanwhile wait behind it. */
  | { readonly phase: 'beginning' }
  /** BEGIN succeeded. */
  | { readonly phase: 'active' }
  /** It cannot go on (timeout, abort, lost connection, failed BEGIN): statements reject with `error`. */
  | { readonly phase: 'failed'; readonly error: Error }
  | { readonly phase: 'committing' }
  | { readonly phase: 'rolling_back'; readonly failure: Error | null }
  | { readonly phase: 'ended'; readonly failure: Error | null };

export type OpenPhase = 'pending' | 'beginning' | 'active';

export const pending: TransactionState = Object.freeze({ phase: 'pending' });
export const beginning: TransactionState = Object.freeze({ phase: 'beginning' });
export const active: TransactionState = Object.freeze({ phase: 'active' });
export const committing: TransactionState = Object.freeze({ phase: 'committing' });

export function isOpen(phase: TransactionState['phase']): phase is OpenPhase {
  return phase === 'pending' || phase === 'beginning' || phase === 'active';
}

/**
 * What a transaction is to its connection. Outside tests, every transaction is its own: BEGIN
 * and COMMIT. Under `txscope/testing`, one test transaction holds the connection and is always
 * rolled back, and each application boundary that would begin a transaction is a savepoint of it.
 */
export type TransactionRole =
  /** BEGIN … COMMIT on a connection of its own, or on a `db.connection(fn)` pin's. */
  | { readonly kind: 'transaction' }
  /** A test transaction: always rolled back at its end, and no statement's error ends it early. */
  | { readonly kind: 'test' }
  /** An application boundary inside a test transaction: SAVEPOINT … RELEASE on `enclosing`'s connection. */
  | { readonly kind: 'savepoint'; readonly enclosing: Transaction };

export const ownTransaction: TransactionRole = Object.freeze({ kind: 'transaction' });

/** What a transaction is begun with. */
export interface TransactionSetup {
  readonly role: TransactionRole;
  readonly lease: Lease;
  readonly session: Session | null;
  readonly isolation: IsolationLevel | undefined;
  readonly readOnly: boolean;
  /** False when the lease is a pin's: the pin, not the transaction, gives it back. */
  readonly ownsLease: boolean;
  /**
   * Whether `fn` is raced against the transaction's failure: when something other than its own
   * statements can fail it (a deadline, its scope's end or abort), the caller learns at once.
   */
  readonly racing: boolean;
  /** Past this, the transaction fails with `ERR_TRANSACTION_TIMEOUT` and its statement is cancelled. */
  readonly timeoutMs: number | undefined;
}
