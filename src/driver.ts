/**
 * The structural contract between the core and a database driver. The core never
 * imports a driver package: each adapter (txscope/pg, txscope/mysql, …) implements
 * these interfaces over the library the user already has.
 */

/** SQL isolation levels, as spelled in `options.isolation`. */
export type IsolationLevel = 'read uncommitted' | 'read committed' | 'repeatable read' | 'serializable';

/** What a statement returned. `rowCount` is the rows returned or affected. */
export interface QueryResult<Row = Record<string, unknown>> {
  rows: Row[];
  rowCount: number;
}

/** What a driver connection returns for one statement. */
export interface DriverResult {
  rows: unknown[];
  rowCount: number;
  /** The command tag the server answered with (`COMMIT`, `ROLLBACK`, `INSERT`, …), when the protocol has one. */
  command?: string | undefined;
}

/**
 * Transaction status of a connection, as the driver itself knows it. `'closed'`: the driver
 * knows the connection is gone (it will send nothing more on it).
 */
export type ConnectionStatus = 'idle' | 'in_transaction' | 'failed' | 'closed' | 'unknown';

/** How a driver classifies an error. */
export type ErrorKind =
  /**
   * A serialization failure, a deadlock or a busy database: the transaction is lost,
   * and re-running it may succeed.
   */
  | 'retryable'
  /**
   * The statement failed and the transaction cannot go on safely (a MySQL lock-wait
   * timeout rolls back only the statement): txscope rolls the whole transaction back.
   */
  | 'transaction_aborted'
  /** The connection is gone (terminated, reset, closed): the transaction's fate is lost with it. */
  | 'connection_lost'
  /** A statement was cancelled on request (timeout or abort). */
  | 'cancelled'
  | 'other';

/** The SQL dialects txscope speaks. */
export type DialectName = 'postgres' | 'mysql' | 'sqlite';

/** SQL syntax that differs between databases. */
export interface Dialect {
  readonly name: DialectName;
  /** The bind placeholder for the 1-based parameter `index` (`$1`, `?`). */
  placeholder(index: number): string;
  quoteIdentifier(name: string): string;
  /** Statements that begin a transaction, sent in order on its connection. */
  begin(options: { isolation: IsolationLevel | undefined; readOnly: boolean }): readonly string[];
  readonly commit: string;
  readonly rollback: string;
  savepoint(name: string): string;
  releaseSavepoint(name: string): string;
  rollbackToSavepoint(name: string): string;
  /**
   * Optional: how a savepoint is made read-only (`begin`, sent right after SAVEPOINT) and, when
   * its end does not undo that by itself, what restores it (`end`). Used for read-only
   * boundaries inside a test transaction (`txscope/testing`), where no READ ONLY transaction
   * can begin; without it such a boundary is not enforced as read-only.
   */
  readonly readOnlySavepoint?: { readonly begin: string; readonly end?: string };
  /** Isolation levels the database honours; asking for another is `ERR_INVALID_OPTION`. */
  readonly isolationLevels: readonly IsolationLevel[];
  /** False when the database answered COMMIT by rolling back (PostgreSQL's `ROLLBACK` tag). */
  committed(result: DriverResult): boolean;
  /**
   * Optional: replication positions, for read-your-writes on read replicas (rule 20). Without
   * it, replicas still serve read-only transactions, but a scope that has written reads from
   * the primary for the rest of its life.
   */
  readonly replication?: ReplicationDialect;
}

/**
 * How a database tells replication positions (PostgreSQL: WAL positions, LSNs). Positions are
 * opaque text to the core; only `reached` compares them.
 */
export interface ReplicationDialect {
  /**
   * On the primary: one row whose `position` column is at or past every commit made so far
   * (sent on the committing connection right after COMMIT, or on any connection later).
   */
  readonly currentPosition: string;
  /**
   * On a replica: one row with `replayed` (the position replayed so far, or null) and `lag_ms`
   * (how far replay is behind what the replica has received, in milliseconds; 0 when caught up).
   */
  readonly replicaStatus: string;
  /** True when a replica that replayed `replayed` has applied every commit up to `required`. */
  reached(replayed: string, required: string): boolean;
  /** Whether `text` is a well-formed position (one handed back by a client, in a cookie or header). */
  isPosition(text: string): boolean;
}

/** The BEGIN a transaction's first statement carries (`DriverConnection.queryAfterBegin`). */
export interface BeginRequest {
  readonly statements: readonly string[];
  /** BEGIN succeeded; called before the statement's own outcome is known. */
  began(): void;
}

/**
 * One checked-out connection. The core sends it one statement at a time, in issue order, and
 * never another before the previous one has settled.
 */
export interface DriverConnection {
  query(text: string, values: readonly unknown[]): Promise<DriverResult>;
  /**
   * Optional: sends a transaction's BEGIN statements (`begin.statements`) and its first statement
   * in one network write, the statement running only if every BEGIN statement succeeded
   * (PostgreSQL: all of them behind one Sync), so that a transaction of k statements takes k + 1
   * round trips. Calls `begin.began()` once BEGIN has succeeded, before the statement's own
   * outcome is known: a rejection without that call means BEGIN failed and the statement never
   * ran. Without this method, the core sends BEGIN and waits for it before the statement.
   */
  queryAfterBegin?(text: string, values: readonly unknown[], begin: BeginRequest): Promise<DriverResult>;
  /** The driver's own view of the connection's transaction state. */
  status(): ConnectionStatus;
  /** Cancels the statement running on this connection, if any (server-side cancel). */
  cancel(): Promise<void>;
}

/** Pool counters, as the driver's pool reports them. */
export interface PoolCounts {
  /** Connections open (idle + checked out). */
  total: number;
  idle: number;
  /** Acquire requests waiting for a connection. */
  waiting: number;
  /** Pool size. */
  max: number;
}

/** What a connection is acquired for. */
export interface AcquireIntent {
  /** For a read-only transaction: it will not write. */
  readOnly: boolean;
}

/** A database driver: a pool and its dialect. */
export interface Driver {
  readonly dialect: Dialect;
  /** A label for messages and events: database and host, never a password. */
  readonly label: string;
  /**
   * Takes a connection from the pool, waiting at most the driver's acquire timeout. `intent`
   * says what the connection is for: a driver may serve read-only transactions elsewhere
   * (SQLite's WAL readers). A driver may return the connection itself when it has one at hand,
   * which saves the caller a promise and a turn of the event loop.
   */
  acquire(intent?: AcquireIntent): Promise<DriverConnection> | DriverConnection;
  /**
   * Optional: runs one statement in autocommit on a pooled connection (take, run, give back in one
   * call, as the pool's own `query` does), saving the promises and turns of the steps. The
   * connection goes back only clean: when the statement left a transaction open the driver rolls
   * it back (or destroys the connection), and a connection that failed is destroyed. The core uses
   * it only when nothing needs the connection in between: no acquire or release subscriber, no
   * leak detection, no connection held up the async chain.
   */
  query?(text: string, values: readonly unknown[]): Promise<DriverResult>;
  /** Gives a connection back; `destroy` closes it instead of pooling it. */
  release(connection: DriverConnection, options: { destroy: boolean }): void;
  /**
   * Optional: how long session state (`SET`, advisory locks, temporary tables) lasts on a
   * checked-out connection. `'per_transaction'` behind a transaction-mode pooler (PgBouncer, RDS
   * Proxy, Supavisor), where the server session changes between transactions: `db.connection(fn)`,
   * which exists for session state, is then refused. Default `'kept'`.
   */
  readonly sessions?: 'kept' | 'per_transaction';
  classify(error: unknown): ErrorKind;
  counts(): PoolCounts;
  close(): Promise<void>;
}
