/**
 * Every error txscope raises, and every message, in one place: `docs/errors.md` explains each
 * code, and a test keeps the two in step. Driver errors (a unique violation, a syntax error)
 * are not wrapped: they reach the caller unchanged.
 */
import type { PoolCounts } from './driver.js';

export const ErrorCode = {
  INVALID_OPTION: 'ERR_INVALID_OPTION',
  NO_TRANSACTION: 'ERR_NO_TRANSACTION',
  EXISTING_TRANSACTION: 'ERR_EXISTING_TRANSACTION',
  INCOMPATIBLE_TRANSACTION: 'ERR_INCOMPATIBLE_TRANSACTION',
  ROLLBACK_ONLY: 'ERR_ROLLBACK_ONLY',
  TRANSACTION_CLOSED: 'ERR_TRANSACTION_CLOSED',
  SCOPE_CLOSED: 'ERR_SCOPE_CLOSED',
  OUTSIDE_SCOPE: 'ERR_OUTSIDE_SCOPE',
  TRANSACTION_TIMEOUT: 'ERR_TRANSACTION_TIMEOUT',
  CONNECTION_LOST: 'ERR_CONNECTION_LOST',
  COMMIT_UNKNOWN: 'ERR_COMMIT_UNKNOWN',
  POOL_TIMEOUT: 'ERR_POOL_TIMEOUT',
  POOL_DEADLOCK: 'ERR_POOL_DEADLOCK',
  ABORTED: 'ERR_ABORTED',
  DATABASE_CLOSED: 'ERR_DATABASE_CLOSED',
  NO_DEFAULT_DATABASE: 'ERR_NO_DEFAULT_DATABASE',
} as const;

/** A stable error code: `err.code` is one of these strings, documented in docs/errors.md. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The one error class txscope throws; switch on `code`, never on `message`.
 *
 * @example
 * ```ts
 * try { await transfer(a, b, 10) }
 * catch (err) {
 *   if (err instanceof TxScopeError && err.code === 'ERR_ROLLBACK_ONLY') { ... }
 * }
 * ```
 */
export class TxScopeError extends Error {
  override readonly name = 'TxScopeError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * True when `err` is a TxScopeError, optionally with the given code.
 *
 * @example
 * ```ts
 * if (isTxScopeError(err, 'ERR_POOL_TIMEOUT')) return res.status(503).end();
 * ```
 */
export function isTxScopeError(err: unknown, code?: ErrorCode): err is TxScopeError {
  return err instanceof TxScopeError && (code === undefined || err.code === code);
}

/** A value as messages show it: strings quoted, functions named as such. */
function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return value.toString();
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

const poolAdvice =
  'Transactions hold connections too long, or the pool is too small (raise max, or look for long ' +
  'transactions with leakDetectionMs)';

/** What a pool-timeout message says about the pool it waited on. */
export interface PoolTimeoutDetails {
  /** The driver's label: database and host, never a password. */
  label: string;
  acquireTimeoutMillis: number;
  counts: PoolCounts;
  /** `'pool'`: a pool of connections; `'single'`: one connection that transactions take turns on. */
  kind: 'pool' | 'single';
  /** For a single connection: why its holders take turns (PGlite, SQLite's one writer). */
  advice?: string;
}

/** Where a statement lost its connection: what the caller can still know about its work. */
export type LostDuring = 'transaction' | 'autocommit' | 'pin';

const lostMessages: Record<LostDuring, string> = {
  transaction:
    'the connection was lost in the middle of the transaction; nothing of it was committed. Run the unit ' +
    'of work again (the connection was discarded, the pool opens a new one)',
  autocommit:
    'the connection was lost while the statement ran (autocommit): it may or may not have taken effect',
  pin:
    'the connection pinned by db.connection(fn) was lost, and with it its session state (settings, locks, ' +
    'temporary tables); run the whole block again',
};

/** Why a unit rolled back instead of committing. */
export type RollbackOnlyCause = 'joined_frame_failed' | 'savepoint_frame_failed' | 'database_rolled_back';

const rollbackOnlyMessages: Record<RollbackOnlyCause, string> = {
  joined_frame_failed:
    'the transaction was rolled back, not committed: an inner frame that joined it threw, and the error was ' +
    'caught. Let the error propagate, or give the inner call its own savepoint with propagation: "nested"',
  savepoint_frame_failed:
    'the savepoint was rolled back, not released: an inner frame that joined it threw, and the error was ' +
    'caught. Let the error propagate, or give the inner call its own savepoint with propagation: "nested"',
  database_rolled_back:
    'the database rolled back instead of committing: a statement failed inside the transaction and its ' +
    'error was caught. Let the error propagate, or run the statement in a savepoint (propagation: "nested")',
};

function error(code: ErrorCode, message: string, cause?: unknown): TxScopeError {
  return new TxScopeError(code, message, cause === undefined ? undefined : { cause });
}

/** The catalog: one factory per cause. Nothing else in the package builds a message. */
export const errors = {
  invalidOption(option: string, allowed: string, got: unknown): TxScopeError {
    return error(
      ErrorCode.INVALID_OPTION,
      `invalid option ${option}: got ${describeValue(got)}; allowed: ${allowed}`,
    );
  },

  /** A bad argument of a factory, shown by its type only: it may be a large object (a pool, an app). */
  invalidValue(what: string, expected: string, got: unknown): TxScopeError {
    const shown = typeof got === 'string' ? JSON.stringify(got) : got === null ? 'null' : typeof got;
    return error(ErrorCode.INVALID_OPTION, `${what} must be ${expected}; got ${shown}`);
  },

  /** A wrong argument where no option name applies (`pg(42)`, `createKysely({})`). */
  invalidArgument(call: string, expected: string): TxScopeError {
    return error(ErrorCode.INVALID_OPTION, `${call} takes ${expected}`);
  },

  missingPeer(subpath: string, pkg: string, cause: unknown): TxScopeError {
    return error(
      ErrorCode.INVALID_OPTION,
      `${subpath} needs the '${pkg}' package: npm install ${pkg} (it is an optional peer dependency)`,
      cause,
    );
  },

  notAMethod(what: string): TxScopeError {
    return error(
      ErrorCode.INVALID_OPTION,
      `@Transactional() decorates methods and wraps functions; it was applied to ${what}`,
    );
  },

  /** An integration handed something it cannot carry over to txscope. */
  unsupported(integration: string, what: string, instead: string): TxScopeError {
    return error(ErrorCode.INVALID_OPTION, `${integration}: ${what} is not supported; ${instead}`);
  },

  mandatoryWithoutTransaction(): TxScopeError {
    return error(
      ErrorCode.NO_TRANSACTION,
      'no transaction is active (propagation "mandatory"); wrap the call in @Transactional() or db.transaction()',
    );
  },

  beforeCommitWithoutTransaction(): TxScopeError {
    return error(
      ErrorCode.NO_TRANSACTION,
      'db.beforeCommit() needs an active transaction; wrap the call in @Transactional() or db.transaction()',
    );
  },

  neverInsideTransaction(): TxScopeError {
    return error(
      ErrorCode.EXISTING_TRANSACTION,
      'a transaction is active, and this boundary says propagation "never"; call it outside the transaction ' +
        '(or with propagation "not_supported", which suspends it)',
    );
  },

  testTransactionOpen(database: string): TxScopeError {
    return error(
      ErrorCode.EXISTING_TRANSACTION,
      `a test transaction is already open on database "${database}" (two tests at once, such as ` +
        'test.concurrent, or withRollback inside withRollback); run the tests of one database one at a ' +
        'time in each process (test files in parallel are fine), and open one test transaction per test',
    );
  },

  incompatibleIsolation(asked: string, running: string): TxScopeError {
    return error(
      ErrorCode.INCOMPATIBLE_TRANSACTION,
      `this boundary asks for isolation "${asked}" but joins a transaction running at "${running}"; ` +
        'drop the isolation option here, or use propagation "requires_new" for its own transaction',
    );
  },

  incompatibleReadOnly(): TxScopeError {
    return error(
      ErrorCode.INCOMPATIBLE_TRANSACTION,
      'this boundary says readOnly: false but joins a read-only transaction; it could not write there. ' +
        'Make the outer boundary read-write, or use propagation "requires_new"',
    );
  },

  rollbackOnly(cause: RollbackOnlyCause): TxScopeError {
    return error(ErrorCode.ROLLBACK_ONLY, rollbackOnlyMessages[cause]);
  },

  transactionClosed(): TxScopeError {
    return error(
      ErrorCode.TRANSACTION_CLOSED,
      'this statement comes from a transaction that has already ended (a promise that was not awaited ' +
        'inside it?); await the work inside the transaction, or run it on purpose outside with db.detached(fn)',
    );
  },

  testTransactionEnded(): TxScopeError {
    return error(
      ErrorCode.TRANSACTION_CLOSED,
      'this statement comes after its test transaction was rolled back (a promise the test did not await, ' +
        'or a request still running when the test ended); await that work inside the test, so that ' +
        'it never lands in the next one',
    );
  },

  hookAfterTransactionEnded(hook: string): TxScopeError {
    return error(
      ErrorCode.TRANSACTION_CLOSED,
      `db.${hook}() was called from a transaction that has already ended; register it while the transaction runs`,
    );
  },

  endedByServer(statement: string): TxScopeError {
    return error(
      ErrorCode.TRANSACTION_CLOSED,
      `the statement ended the transaction on the server (${statement.slice(0, 40)}…): MySQL commits ` +
        'implicitly on DDL, and a hand-written COMMIT or ROLLBACK ends it too. Work before it may be committed; ' +
        'run DDL and transaction control outside db.transaction()',
    );
  },

  scopeClosed(): TxScopeError {
    return error(
      ErrorCode.SCOPE_CLOSED,
      'this statement comes from a scope (request) that has already ended; await the work inside the ' +
        'request, or run it on purpose outside with db.detached(fn)',
    );
  },

  noSessionsBehindPooler(label: string): TxScopeError {
    return error(
      ErrorCode.INVALID_OPTION,
      `db.connection(fn) keeps session state (SET, advisory locks, temporary tables) on one server session, ` +
        `and ${label} is behind a transaction-mode pooler (pooler: 'transaction'), which changes the session ` +
        'between transactions; run the work in db.transaction(fn) (SET LOCAL, pg_advisory_xact_lock), or connect ' +
        'that code directly to PostgreSQL',
    );
  },

  pinClosed(): TxScopeError {
    return error(
      ErrorCode.SCOPE_CLOSED,
      'this statement comes from a db.connection(fn) block that has already ended; await the work inside it',
    );
  },

  outsideScope(underTest = false): TxScopeError {
    return error(
      ErrorCode.OUTSIDE_SCOPE,
      'strict mode: this statement runs outside any scope or transaction. Install the txscope middleware, or ' +
        'wrap the work in db.scope(fn), db.transaction(fn) or db.detached(fn)' +
        (underTest
          ? ' (a test body under rollbackAfterEach is outside any scope: wrap it in db.scope, or use withRollback)'
          : ''),
    );
  },

  transactionTimeout(timeoutMs: number): TxScopeError {
    return error(
      ErrorCode.TRANSACTION_TIMEOUT,
      `the transaction ran past its timeoutMs (${timeoutMs} ms) and was rolled back; its running statement ` +
        'was cancelled. Raise timeoutMs or make the work shorter',
    );
  },

  connectionLost(during: LostDuring, cause: unknown): TxScopeError {
    return error(ErrorCode.CONNECTION_LOST, lostMessages[during], cause);
  },

  commitUnknown(cause: unknown): TxScopeError {
    return error(
      ErrorCode.COMMIT_UNKNOWN,
      'the connection was lost while COMMIT was in flight: the transaction may or may not have committed. ' +
        'Check the data before running it again; txscope never retries this',
      cause,
    );
  },

  poolTimeout(details: PoolTimeoutDetails, cause?: unknown): TxScopeError {
    const { label, acquireTimeoutMillis: ms, counts: c } = details;
    const message =
      details.kind === 'pool'
        ? `no connection to ${label} within acquireTimeoutMillis (${ms} ms): pool of ${c.max}, ${c.total} open, ` +
          `${c.idle} idle, ${c.waiting} waiting. ${poolAdvice}`
        : `no turn on ${label} within acquireTimeoutMillis (${ms} ms): one connection, busy, ${c.waiting} ` +
          `waiting. ${details.advice ?? 'A transaction holds it too long (leakDetectionMs shows where)'}`;
    return error(ErrorCode.POOL_TIMEOUT, message, cause);
  },

  poolDeadlock(counts: PoolCounts): TxScopeError {
    return error(
      ErrorCode.POOL_DEADLOCK,
      `a new connection can never be served: all ${counts.max} pooled connection(s) are held by transactions ` +
        'that are waiting for another one (requires_new, not_supported or a query outside the suspended ' +
        `transaction). Pool: ${counts.total} open, ${counts.idle} idle, ${counts.waiting} waiting. Raise the ` +
        "pool's max, or avoid requires_new inside a transaction",
    );
  },

  scopeAborted(reason: unknown): TxScopeError {
    return error(
      ErrorCode.ABORTED,
      'the scope was aborted (client disconnected or signal aborted); its transaction was rolled back',
      reason,
    );
  },

  clientDisconnected(): TxScopeError {
    return error(ErrorCode.ABORTED, 'the client closed the connection before the response was sent');
  },

  databaseClosed(name: string): TxScopeError {
    return error(
      ErrorCode.DATABASE_CLOSED,
      `database "${name}" was closed with db.close(); create a new one, or close it only at shutdown`,
    );
  },

  driverClosed(label: string): TxScopeError {
    return error(ErrorCode.DATABASE_CLOSED, `${label} was closed with db.close()`);
  },

  noDefaultDatabase(): TxScopeError {
    return error(
      ErrorCode.NO_DEFAULT_DATABASE,
      '@Transactional() found no database: create one with createDatabase({ driver }) before calling the ' +
        'method (or pass { default: true } to the one it should use)',
    );
  },
} as const;
