import type { IsolationLevel } from './driver.js';
import { ErrorCode, TxScopeError } from './errors.js';

/**
 * How a transaction boundary relates to a transaction already active in the current
 * async context.
 */
export const Propagation = {
  /** Join the active transaction, or begin one. The default. */
  REQUIRED: 'required',
  /** Suspend the active transaction and begin a new one on another connection. */
  REQUIRES_NEW: 'requires_new',
  /** A savepoint inside the active transaction, or a new transaction if there is none. */
  NESTED: 'nested',
  /** Join the active transaction; reject `ERR_NO_TRANSACTION` without one. */
  MANDATORY: 'mandatory',
  /** Join the active transaction if there is one; otherwise run in autocommit. */
  SUPPORTS: 'supports',
  /** Suspend the active transaction and run in autocommit. */
  NOT_SUPPORTED: 'not_supported',
  /** Run in autocommit; reject `ERR_EXISTING_TRANSACTION` inside a transaction. */
  NEVER: 'never',
} as const;

export type Propagation = (typeof Propagation)[keyof typeof Propagation];

const propagations: readonly string[] = Object.values(Propagation);
export const isolationLevels: readonly IsolationLevel[] = [
  'read uncommitted',
  'read committed',
  'repeatable read',
  'serializable',
];

/** Re-running a transaction after a serialization failure or deadlock. */
export interface RetryOptions {
  /** Runs of `fn` in all, the first included (>= 1). */
  attempts: number;
  /** First backoff delay before jitter; default 10 ms. */
  baseDelayMs?: number;
  /** Cap of the backoff delay; default 1000 ms. */
  maxDelayMs?: number;
}

/** Options of a transaction boundary (`db.transaction`, `@Transactional`). */
export interface TransactionOptions {
  propagation?: Propagation;
  isolation?: IsolationLevel;
  readOnly?: boolean;
  /** Roll back and reject `ERR_TRANSACTION_TIMEOUT` past this many milliseconds. */
  timeoutMs?: number;
  /** Re-run `fn` on retryable errors; only the outermost frame retries. */
  retry?: RetryOptions;
  /** Whether an error thrown by `fn` rolls back; default: every error does. */
  rollbackOn?: (error: unknown) => boolean;
}

function invalid(option: string, allowed: string, got: unknown): TxScopeError {
  return new TxScopeError(
    ErrorCode.INVALID_OPTION,
    `invalid option ${option}: got ${describe(got)}; allowed: ${allowed}`,
  );
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function isPositiveNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}

const transactionKeys = new Set(['propagation', 'isolation', 'readOnly', 'timeoutMs', 'retry', 'rollbackOn']);

/**
 * Checks transaction options and returns them frozen; `where` names the caller in
 * messages (`db.transaction`, `@Transactional`, `createDatabase defaults`).
 */
export function validateTransactionOptions(
  options: unknown,
  where: string,
  supportedIsolation: readonly IsolationLevel[] = isolationLevels,
): Readonly<TransactionOptions> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') {
    throw invalid(`${where} options`, 'an object of transaction options', options);
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!transactionKeys.has(key)) {
      throw invalid(`${where}.${key}`, [...transactionKeys].join(', '), key);
    }
  }
  if (o.propagation !== undefined && !propagations.includes(o.propagation as string)) {
    throw invalid(`${where}.propagation`, propagations.map((p) => `'${p}'`).join(', '), o.propagation);
  }
  if (o.isolation !== undefined && !supportedIsolation.includes(o.isolation as IsolationLevel)) {
    throw invalid(`${where}.isolation`, supportedIsolation.map((p) => `'${p}'`).join(', '), o.isolation);
  }
  if (o.readOnly !== undefined && typeof o.readOnly !== 'boolean') {
    throw invalid(`${where}.readOnly`, 'true or false', o.readOnly);
  }
  if (o.timeoutMs !== undefined && !isPositiveNumber(o.timeoutMs)) {
    throw invalid(`${where}.timeoutMs`, 'a positive number of milliseconds', o.timeoutMs);
  }
  if (o.rollbackOn !== undefined && typeof o.rollbackOn !== 'function') {
    throw invalid(`${where}.rollbackOn`, 'a function (error) => boolean', o.rollbackOn);
  }
  if (o.retry !== undefined) {
    const r = o.retry as Record<string, unknown> | null;
    if (r === null || typeof r !== 'object') {
      throw invalid(`${where}.retry`, '{ attempts, baseDelayMs?, maxDelayMs? }', r);
    }
    if (!Number.isInteger(r.attempts) || (r.attempts as number) < 1) {
      throw invalid(
        `${where}.retry.attempts`,
        'an integer >= 1 (runs of fn, the first included)',
        r.attempts,
      );
    }
    for (const key of ['baseDelayMs', 'maxDelayMs'] as const) {
      if (r[key] !== undefined && !(typeof r[key] === 'number' && (r[key] as number) >= 0)) {
        throw invalid(`${where}.retry.${key}`, 'a number of milliseconds >= 0', r[key]);
      }
    }
  }
  return Object.freeze({ ...(o as TransactionOptions) });
}

/** Checks an optional non-negative finite number option. */
export function checkMilliseconds(value: unknown, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (!isPositiveNumber(value)) throw invalid(option, 'a positive number of milliseconds', value);
  return value;
}

export { invalid as invalidOption };
