import type { Pin } from './lease.js';
import type { Transaction } from './transaction.js';

/** Live counters of the current scope (`db.current.scope`), read by middleware for Server-Timing. */
export interface ScopeInfo {
  readonly id: number;
  readonly statements: number;
  readonly transactions: number;
  readonly databaseMs: number;
}

/**
 * A unit of work bound to the async context by `db.scope(fn)`: a request, a job, a
 * script. It holds no connection itself; it tracks the transactions and pins opened
 * in it so that its end (or abort) can close them.
 */
export class Session implements ScopeInfo {
  closed = false;
  /** Set when the scope's signal aborted: every later statement rejects with it. */
  abortError: Error | null = null;
  /** Transactions begun in this scope and not yet ended. */
  readonly open = new Set<Transaction>();
  readonly pins = new Set<Pin>();
  /** Statements sent (BEGIN and COMMIT not counted), for Server-Timing. */
  statements = 0;
  /** Transactions that sent BEGIN in this scope. */
  transactions = 0;
  /** Milliseconds spent waiting for statements. */
  databaseMs = 0;

  constructor(readonly id: number) {}
}
