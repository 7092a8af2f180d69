/** The options users pass, and the one place they are checked. */
import type { Driver, IsolationLevel } from './driver.js';
import { errors } from './errors.js';

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

/** Options of {@link createDatabase}. */
export interface DatabaseOptions {
  /** The driver: `pg(...)`, `pglite(...)`, `mysql(...)`, `sqlite(...)`. */
  driver: Driver;
  /** A name for events and messages; default `'default'`. */
  name?: string;
  /** Reject statements run outside any scope or transaction (`ERR_OUTSIDE_SCOPE`). */
  strict?: boolean;
  /** Transaction options applied to every transaction this database begins. */
  defaults?: TransactionOptions;
  /** Report a connection held longer than this on `txscope:leak` and as a process warning. */
  leakDetectionMs?: number;
  /** Make this the database `@Transactional()` uses (the first one created is, until another claims it). */
  default?: boolean;
  /**
   * Read replicas (rule 20): drivers of the same dialect as `driver`, e.g. `[pg({ connectionString:
   * REPLICA_URL })]`. Read-only transactions run on a healthy one; everything else on the primary.
   */
  replicas?: readonly Driver[];
  /** A replica whose replay lags more than this is skipped until it catches up; default 1000 ms. */
  maxReplicaLagMs?: number;
}

/** Options of `db.scope`. */
export interface ScopeOptions {
  /** Aborting rolls back the scope's open transaction; its statements then reject `ERR_ABORTED`. */
  signal?: AbortSignal;
}

const transactionKeys = new Set(['propagation', 'isolation', 'readOnly', 'timeoutMs', 'retry', 'rollbackOn']);
const databaseKeys = new Set([
  'driver',
  'name',
  'strict',
  'defaults',
  'leakDetectionMs',
  'default',
  'replicas',
  'maxReplicaLagMs',
]);

/**
 * Options objects this module has checked: a boundary decorated once is entered many times, and
 * its options are not checked again on every call.
 */
const checked = new WeakSet<object>();

const empty: Readonly<TransactionOptions> = Object.freeze({});
checked.add(empty);

function isPositiveNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}

function listed(values: readonly string[]): string {
  return values.map((value) => `'${value}'`).join(', ');
}

/**
 * Checks transaction options and returns them frozen; `where` names the caller in messages
 * (`db.transaction`, `@Transactional`, `defaults`).
 */
export function checkTransactionOptions(
  options: unknown,
  where: string,
  supportedIsolation: readonly IsolationLevel[] = isolationLevels,
): Readonly<TransactionOptions> {
  if (options === undefined) return empty;
  if (options !== null && typeof options === 'object' && checked.has(options)) {
    const isolation = (options as TransactionOptions).isolation;
    if (isolation === undefined || supportedIsolation.includes(isolation)) {
      return options as Readonly<TransactionOptions>;
    }
  }
  if (options === null || typeof options !== 'object') {
    throw errors.invalidOption(`${where} options`, 'an object of transaction options', options);
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!transactionKeys.has(key))
      throw errors.invalidOption(`${where}.${key}`, [...transactionKeys].join(', '), key);
  }
  if (o.propagation !== undefined && !propagations.includes(o.propagation as string)) {
    throw errors.invalidOption(`${where}.propagation`, listed(propagations), o.propagation);
  }
  if (o.isolation !== undefined && !supportedIsolation.includes(o.isolation as IsolationLevel)) {
    throw errors.invalidOption(`${where}.isolation`, listed(supportedIsolation), o.isolation);
  }
  if (o.readOnly !== undefined && typeof o.readOnly !== 'boolean') {
    throw errors.invalidOption(`${where}.readOnly`, 'true or false', o.readOnly);
  }
  if (o.timeoutMs !== undefined && !isPositiveNumber(o.timeoutMs)) {
    throw errors.invalidOption(`${where}.timeoutMs`, 'a positive number of milliseconds', o.timeoutMs);
  }
  if (o.rollbackOn !== undefined && typeof o.rollbackOn !== 'function') {
    throw errors.invalidOption(`${where}.rollbackOn`, 'a function (error) => boolean', o.rollbackOn);
  }
  if (o.retry !== undefined) checkRetry(o.retry, `${where}.retry`);
  const frozen = Object.freeze({ ...(o as TransactionOptions) });
  checked.add(frozen);
  return frozen;
}

function checkRetry(retry: unknown, where: string): void {
  const r = retry as Record<string, unknown> | null;
  if (r === null || typeof r !== 'object') {
    throw errors.invalidOption(where, '{ attempts, baseDelayMs?, maxDelayMs? }', r);
  }
  if (!Number.isInteger(r.attempts) || (r.attempts as number) < 1) {
    throw errors.invalidOption(
      `${where}.attempts`,
      'an integer >= 1 (runs of fn, the first included)',
      r.attempts,
    );
  }
  for (const key of ['baseDelayMs', 'maxDelayMs'] as const) {
    if (r[key] !== undefined && !(typeof r[key] === 'number' && (r[key] as number) >= 0)) {
      throw errors.invalidOption(`${where}.${key}`, 'a number of milliseconds >= 0', r[key]);
    }
  }
}

/** Checks an optional positive number of milliseconds. */
export function checkMilliseconds(value: unknown, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (!isPositiveNumber(value))
    throw errors.invalidOption(option, 'a positive number of milliseconds', value);
  return value;
}

/** Checks `createDatabase` options; the transaction defaults are checked against the driver's dialect. */
export function checkDatabaseOptions(options: unknown): DatabaseOptions {
  if (options === null || typeof options !== 'object') {
    throw errors.invalidOption(
      'createDatabase options',
      '{ driver, name?, strict?, defaults?, leakDetectionMs?, default?, replicas?, maxReplicaLagMs? }',
      options,
    );
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!databaseKeys.has(key))
      throw errors.invalidOption(`createDatabase.${key}`, [...databaseKeys].join(', '), key);
  }
  const driver = o.driver as Partial<Driver> | undefined | null;
  if (!isDriver(driver)) {
    throw errors.invalidOption(
      'createDatabase.driver',
      "a txscope driver, such as pg({ connectionString }) from 'txscope/pg'",
      driver === undefined ? undefined : 'an object that is not a driver',
    );
  }
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name === '')) {
    throw errors.invalidOption('createDatabase.name', 'a non-empty string', o.name);
  }
  for (const key of ['strict', 'default'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') {
      throw errors.invalidOption(`createDatabase.${key}`, 'true or false', o[key]);
    }
  }
  if (o.replicas !== undefined) checkReplicas(o.replicas, driver);
  checkMilliseconds(o.maxReplicaLagMs, 'createDatabase.maxReplicaLagMs');
  return options as DatabaseOptions;
}

function isDriver(driver: Partial<Driver> | undefined | null): driver is Driver {
  return (
    driver !== undefined &&
    driver !== null &&
    typeof driver.acquire === 'function' &&
    typeof driver.release === 'function' &&
    driver.dialect !== undefined
  );
}

function checkReplicas(replicas: unknown, primary: Driver): void {
  const expected = `an array of txscope drivers of the primary's dialect (${primary.dialect.name}), such as [pg({ connectionString: REPLICA_URL })]`;
  if (!Array.isArray(replicas)) throw errors.invalidOption('createDatabase.replicas', expected, replicas);
  for (const [i, replica] of replicas.entries()) {
    const candidate = replica as Partial<Driver> | null | undefined;
    if (!isDriver(candidate) || candidate.dialect.name !== primary.dialect.name || replica === primary) {
      const got = isDriver(candidate)
        ? `a ${candidate.dialect.name} driver`
        : 'an object that is not a driver';
      throw errors.invalidOption(
        `createDatabase.replicas[${i}]`,
        expected,
        replica === primary ? 'the primary driver itself' : got,
      );
    }
  }
}

/** Which numeric options of a driver factory to check. */
export interface PoolNumberKeys {
  /** Each a finite number >= 0 when given. */
  readonly numbers: readonly string[];
  /** Pool sizes: >= 1 as well; default `['max']`. */
  readonly sizes?: readonly string[];
}

/**
 * Checks numeric pool options of a driver factory (`pg.max`, `mysql.acquireTimeoutMillis`, …).
 */
export function checkPoolNumbers(
  driver: string,
  config: Record<string, unknown>,
  keys: PoolNumberKeys,
): void {
  for (const key of keys.numbers) {
    const value = config[key];
    if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
      throw errors.invalidOption(`${driver}.${key}`, 'a number >= 0', value);
    }
  }
  for (const key of keys.sizes ?? ['max']) {
    const value = config[key];
    if (typeof value === 'number' && value < 1) throw errors.invalidOption(`${driver}.${key}`, '>= 1', value);
  }
}
