import diagnostics from 'node:diagnostics_channel';

/**
 * Channels on `node:diagnostics_channel`. Every message carries `database` (the
 * database's `name`) and the ids that tie it to a scope and a transaction; statement
 * text is sent without parameter values, and no message ever holds a password.
 */
export const channels = {
  query: diagnostics.channel('txscope:query'),
  acquire: diagnostics.channel('txscope:acquire'),
  release: diagnostics.channel('txscope:release'),
  begin: diagnostics.channel('txscope:begin'),
  commit: diagnostics.channel('txscope:commit'),
  rollback: diagnostics.channel('txscope:rollback'),
  error: diagnostics.channel('txscope:error'),
  leak: diagnostics.channel('txscope:leak'),
  route: diagnostics.channel('txscope:route'),
} as const;

/** `txscope:query`: one statement, published when it settles. */
export interface QueryEvent {
  database: string;
  text: string;
  durationMs: number;
  scopeId: number | null;
  transactionId: number | null;
  error?: unknown;
  /** With `replicas` only: `'primary'` or the label of the replica the statement ran on. */
  target?: string;
}

/** `txscope:acquire` / `txscope:release`: a connection taken from or given back to the pool. */
export interface ConnectionEvent {
  database: string;
  scopeId: number | null;
  transactionId: number | null;
  /** Milliseconds spent waiting (acquire) or holding the connection (release). */
  durationMs: number;
  /** On release: the connection was closed instead of pooled. */
  destroyed?: boolean;
}

/** `txscope:begin`, `txscope:commit`, `txscope:rollback`. */
export interface TransactionEvent {
  database: string;
  scopeId: number | null;
  transactionId: number;
  /** On commit and rollback: milliseconds since BEGIN. */
  durationMs?: number;
  isolation?: string | undefined;
  readOnly?: boolean;
  /** On rollback: why (`error`, `rollback_only`, `timeout`, `aborted`, `scope_end`, …). */
  reason?: string;
}

/** `txscope:error`: an error txscope could not hand to a caller (a failing callback, a failed rollback). */
export interface ErrorEvent {
  database: string;
  /** What failed: `afterCommit`, `afterRollback`, `afterCompletion`, `rollback`, `release`, `cancel`. */
  source: string;
  error: unknown;
  transactionId: number | null;
}

/** `txscope:leak`: a connection held longer than `leakDetectionMs`. */
export interface LeakEvent {
  database: string;
  transactionId: number | null;
  scopeId: number | null;
  heldMs: number;
  /** Where the transaction (or pin) holding the connection began. */
  stack: string;
}

/**
 * `txscope:route` (databases with `replicas`, rule 20): where a read-only transaction runs, published
 * when its connection is taken. Its statements' `txscope:query` events carry the same `transactionId`.
 */
export interface RouteEvent {
  database: string;
  scopeId: number | null;
  transactionId: number | null;
  /** `'primary'`, or the replica's label (database and host, never a password). */
  target: string;
  /**
   * Why: `replica` (a healthy replica, no position to wait for), `replayed` (a replica that has
   * replayed the scope's last commit), or why the primary serves: `no_healthy_replica`,
   * `not_replayed`, `suspended` (a transaction of the same async chain holds a connection).
   */
  reason: 'replica' | 'replayed' | 'no_healthy_replica' | 'not_replayed' | 'suspended';
}

export function publish(channel: diagnostics.Channel, message: unknown): void {
  if (channel.hasSubscribers) channel.publish(message);
}
