/**
 * Every error txscope raises. Driver errors (a unique violation, a syntax error) are
 * not wrapped: they reach the caller unchanged.
 */
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

/** True when `err` is a TxScopeError, optionally with the given code. */
export function isTxScopeError(err: unknown, code?: ErrorCode): err is TxScopeError {
  return err instanceof TxScopeError && (code === undefined || err.code === code);
}
