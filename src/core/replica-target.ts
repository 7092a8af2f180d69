/**
 * One read replica (rule 20): its driver, its health as the last probe saw it (reachable, lag),
 * the position it has replayed, back-off after failures, and its counters. Its connections are
 * handed out wrapped, so that statements are counted per target and a lost connection marks the
 * replica down at once, before the next probe.
 */
import type {
  AcquireIntent,
  BeginRequest,
  Driver,
  DriverConnection,
  DriverResult,
  PoolCounts,
  ReplicationDialect,
} from '../driver.js';
import { ErrorCode, TxScopeError } from '../errors.js';

/** Health of a replica; only a `healthy` one serves. */
export type ReplicaHealth =
  | { readonly kind: 'unprobed' }
  | { readonly kind: 'healthy'; readonly lagMs: number }
  | { readonly kind: 'lagging'; readonly lagMs: number }
  | { readonly kind: 'down'; readonly failures: number; readonly retryAt: number; readonly error: string };

/** One target in `db.stats().targets`. */
export interface TargetStats {
  /** `'primary'`, or the replica's label (database and host, never a password). */
  label: string;
  role: 'primary' | 'replica';
  /** The primary is always `healthy`. */
  health: ReplicaHealth['kind'];
  /** Replay lag the last probe measured (ms); null for the primary and before the first probe. */
  lagMs: number | null;
  /** Statements sent to this target, BEGIN/COMMIT included. */
  statements: number;
  /** Transactions this target served. */
  transactions: number;
  pool: PoolCounts;
}

/** Driver errors of connections lost on a replica, in the middle of a read-only transaction. */
const lostOnReplica = new WeakSet<object>();

/**
 * Whether `error` is ERR_CONNECTION_LOST from a replica: the read-only transaction wrote nothing,
 * so with `retry` it may run again elsewhere (the replica is marked down by then).
 */
export function isReplicaLoss(error: unknown): boolean {
  if (!(error instanceof TxScopeError) || error.code !== ErrorCode.CONNECTION_LOST) return false;
  const cause = error.cause;
  return typeof cause === 'object' && cause !== null && lostOnReplica.has(cause);
}

const readOnlyIntent: AcquireIntent = Object.freeze({ readOnly: true });
const unprobed: ReplicaHealth = Object.freeze({ kind: 'unprobed' });
const noValues: readonly unknown[] = Object.freeze([]);
const reachable = 'select 1 as ok';
const firstBackoffMs = 100;
const maxBackoffMs = 5000;

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as Error & { code?: unknown }).code;
  return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
}

export class ReplicaTarget {
  health: ReplicaHealth = unprobed;
  /** The position the replica had replayed when last asked; null before that, or when unknown. */
  replayed: string | null = null;
  statements = 0;
  transactions = 0;
  /** Connections of this replica txscope holds right now. */
  checkedOut = 0;

  constructor(
    readonly driver: Driver,
    readonly label: string,
    readonly options: {
      readonly maxLagMs: number;
      readonly replication: ReplicationDialect | undefined;
      /** Reports a replica going down (`txscope:error`). */
      readonly report: (error: unknown) => void;
    },
  ) {}

  /** Healthy, and with a free connection in its pool (a saturated replica would make callers wait). */
  get serves(): boolean {
    if (this.health.kind !== 'healthy') return false;
    const counts = this.driver.counts();
    return this.checkedOut < counts.max;
  }

  /** Asks the replica for its replay position and lag; a failure marks it down with a back-off. */
  async probe(now: number): Promise<void> {
    const health = this.health;
    if (health.kind === 'down' && health.retryAt > now) return;
    let connection: DriverConnection;
    try {
      connection = await this.driver.acquire(readOnlyIntent);
    } catch (error) {
      this.down(error);
      return;
    }
    let destroy = false;
    try {
      await this.readStatus(connection);
    } catch (error) {
      destroy = this.driver.classify(error) === 'connection_lost' || connection.status() !== 'idle';
      this.down(error);
    } finally {
      try {
        this.driver.release(connection, { destroy });
      } catch {
        // The probe's connection is the driver's to clean up.
      }
    }
  }

  /** Reads replay position and lag on one of the replica's connections (not counted, not an event). */
  async readStatus(connection: DriverConnection): Promise<void> {
    const replication = this.options.replication;
    const result = await connection.query(replication?.replicaStatus ?? reachable, noValues);
    const row = (result.rows[0] ?? {}) as { replayed?: unknown; lag_ms?: unknown };
    const lagMs = Number(row.lag_ms ?? 0);
    this.replayed = typeof row.replayed === 'string' ? row.replayed : null;
    this.health = lagMs > this.options.maxLagMs ? { kind: 'lagging', lagMs } : { kind: 'healthy', lagMs };
  }

  /** Marks the replica down: it is probed again after a back-off that doubles with each failure. */
  down(error: unknown): void {
    const previous = this.health;
    const failures = previous.kind === 'down' ? previous.failures + 1 : 1;
    const backoff = Math.min(maxBackoffMs, firstBackoffMs * 2 ** (failures - 1));
    this.health = { kind: 'down', failures, retryAt: performance.now() + backoff, error: describe(error) };
    if (previous.kind !== 'down') this.options.report(error);
  }

  /**
   * Takes a connection for a read-only transaction: wrapped, counted. Synchronous when the
   * driver has one at hand, as the primary's acquire is.
   */
  take(): ReplicaConnection | Promise<ReplicaConnection> {
    const taken = this.driver.acquire(readOnlyIntent);
    if (!(taken instanceof Promise)) return this.#wrap(taken);
    return taken.then((connection) => this.#wrap(connection));
  }

  #wrap(connection: DriverConnection): ReplicaConnection {
    this.checkedOut++;
    return new ReplicaConnection(this, connection);
  }

  /** A connection taken and not used after all (the replica had not replayed far enough). */
  giveBack(connection: DriverConnection, destroy: boolean): void {
    this.checkedOut--;
    const inner = connection instanceof ReplicaConnection ? connection.inner : connection;
    this.driver.release(inner, { destroy });
  }

  /** Whether a pool timeout, not the replica, is what failed: it says nothing of its health. */
  static isPoolTimeout(error: unknown): boolean {
    return error instanceof TxScopeError && error.code === ErrorCode.POOL_TIMEOUT;
  }

  /** Watches a statement: a lost connection marks the replica down before the next probe. */
  watch(sent: Promise<DriverResult>): Promise<DriverResult> {
    return sent.then(undefined, (error: unknown) => {
      if (this.driver.classify(error) === 'connection_lost') {
        this.down(error);
        if (typeof error === 'object' && error !== null) lostOnReplica.add(error);
      }
      throw error;
    });
  }

  stats(): TargetStats {
    const health = this.health;
    return {
      label: this.label,
      role: 'replica',
      health: health.kind,
      lagMs: health.kind === 'healthy' || health.kind === 'lagging' ? health.lagMs : null,
      statements: this.statements,
      transactions: this.transactions,
      pool: this.driver.counts(),
    };
  }
}

/** A replica's connection as the core holds it: statements counted for the target, losses watched. */
export class ReplicaConnection implements DriverConnection {
  queryAfterBegin?: (text: string, values: readonly unknown[], begin: BeginRequest) => Promise<DriverResult>;

  constructor(
    readonly target: ReplicaTarget,
    readonly inner: DriverConnection,
  ) {
    const afterBegin = inner.queryAfterBegin;
    if (afterBegin !== undefined) {
      this.queryAfterBegin = (text, values, begin) => {
        target.statements += begin.statements.length + 1;
        return target.watch(afterBegin.call(inner, text, values, begin));
      };
    }
  }

  query(text: string, values: readonly unknown[]): Promise<DriverResult> {
    this.target.statements++;
    let sent: Promise<DriverResult>;
    try {
      sent = this.inner.query(text, values);
    } catch (error) {
      sent = Promise.reject(error);
    }
    return this.target.watch(sent);
  }

  status(): ReturnType<DriverConnection['status']> {
    return this.inner.status();
  }

  cancel(): Promise<void> {
    return this.inner.cancel();
  }
}
