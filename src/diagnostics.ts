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
  boundaryStart: diagnostics.channel('txscope:boundary:start'),
  boundaryAttempt: diagnostics.channel('txscope:boundary:attempt'),
  boundaryEnd: diagnostics.channel('txscope:boundary:end'),
  frame: diagnostics.channel('txscope:frame'),
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
  /** On acquire: the request failed (`ERR_POOL_TIMEOUT`, `ERR_POOL_DEADLOCK`, a refused connection). */
  error?: unknown;
  /** The driver pool's own counts right after the connection moved. */
  pool?: { total: number; idle: number; waiting: number; max: number };
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
 * `txscope:boundary:start`, `:attempt`, `:end`: a boundary that begins a transaction of its own
 * (outermost `required`, `requires_new`, outermost `nested`). The same object is published on all
 * three, like a `TracingChannel` context: `attempt` and `transactionId` change per attempt (each
 * attempt is a transaction of its own), `durationMs` and `error` are set on end.
 */
export interface BoundaryEvent {
  readonly database: string;
  /** The dialect: `postgres`, `mysql`, `sqlite`. */
  readonly system: string;
  /** The driver's label (`database@host:port`), never a password. */
  readonly label: string;
  readonly scopeId: number | null;
  readonly propagation: string;
  readonly isolation: string | undefined;
  readonly readOnly: boolean;
  readonly timeoutMs: number | undefined;
  /** `retry.attempts`, or 1. */
  readonly maxAttempts: number;
  /** The attempt running, from 1; 0 before the first. */
  attempt: number;
  /** The transaction of the current attempt, null before the first. */
  transactionId: number | null;
  /** On an attempt after the first: the error that failed the previous one, and the backoff waited. */
  retryError?: unknown;
  retryDelayMs?: number;
  /** On end. */
  durationMs?: number;
  /** On end, when the boundary rejected. */
  error?: unknown;
  /**
   * A subscriber of `txscope:boundary:start` may set this to run the whole boundary (its attempts,
   * statements, COMMIT) inside a context of its own, e.g. an OpenTelemetry context with the
   * transaction's span; it must call `run` once and return its result. Chain a wrapper already set.
   */
  wrap?: <R>(run: () => R) => R;
}

/** `txscope:frame`: what a frame inside a transaction did. */
export interface FrameEvent {
  readonly database: string;
  readonly transactionId: number;
  /** `savepoint` sent, `release`d, `rollback_to` sent, or a joined frame failed and marked its unit `rollback_only`. */
  readonly action: 'savepoint' | 'release' | 'rollback_to' | 'rollback_only';
  /** The savepoint's name, for savepoint actions. */
  readonly savepoint?: string;
  /** On `rollback_only`: the error the frame failed with. */
  readonly error?: unknown;
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
