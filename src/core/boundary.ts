/**
 * Transaction boundaries (`db.transaction`, `@Transactional`): what a boundary does given the
 * transaction already active in its async context (propagation and compatibility), and the
 * outermost boundary's attempts (retry with backoff).
 */
import type { IsolationLevel } from '../driver.js';
import { errors, TxScopeError } from '../errors.js';
import type { Propagation, RetryOptions, TransactionOptions } from '../options.js';
import { type Binding, bind, lookup, noLeases, runIn } from './context.js';
import type { Engine } from './engine.js';
import { TransactionFrame } from './frame.js';
import { Lease } from './lease.js';
import type { Pin } from './pin.js';
import type { HeldConnection } from './pool.js';
import { isReplicaLoss } from './replica-target.js';
import { backoffMs } from './retry.js';
import { runJoined, runSavepoint } from './savepoint.js';
import type { Session } from './scope.js';
import { Transaction } from './transaction.js';

/** One entry into a boundary, as its parts need it. */
interface Entry<T> {
  readonly engine: Engine;
  readonly fn: () => T | Promise<T>;
  readonly options: Readonly<TransactionOptions>;
  readonly binding: Binding | undefined;
  readonly session: Session | null;
  /** Connections held up the async chain by suspended transactions and pins. */
  readonly held: readonly HeldConnection[];
}

function invoke<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Runs `fn` under a boundary with options already checked. Refusals (propagation, compatibility)
 * happen on entry: `fn` never runs and nothing is sent.
 */
export function enterBoundary<T>(
  engine: Engine,
  fn: () => T | Promise<T>,
  options: Readonly<TransactionOptions>,
): Promise<T> {
  if (typeof fn !== 'function')
    return Promise.reject(errors.invalidOption('db.transaction fn', 'a function', fn));
  const closed = engine.closedError();
  if (closed !== null) return Promise.reject(closed);
  const b = lookup(engine);
  const session = b?.session ?? null;
  const rejection = session?.rejection() ?? null;
  if (rejection !== null) return Promise.reject(rejection);
  const current = b?.frame ?? null;
  if (current?.isClosed) return Promise.reject(current.transaction.failure ?? errors.transactionClosed());
  // @Transactional() could only check the level against all four: the database is known now.
  const isolation = options.isolation;
  if (isolation !== undefined && !engine.dialect.isolationLevels.includes(isolation)) {
    return Promise.reject(unsupportedIsolation(engine, isolation));
  }
  const propagation: Propagation = options.propagation ?? engine.defaults?.propagation ?? 'required';
  const entry: Entry<T> = { engine, fn, options, binding: b, session, held: b?.held ?? noLeases };

  if (current === null) {
    switch (propagation) {
      case 'mandatory':
        return Promise.reject(errors.mandatoryWithoutTransaction());
      case 'supports':
      case 'not_supported':
      case 'never':
        return invoke(fn);
      default:
        return runOutermost(entry);
    }
  }
  switch (propagation) {
    case 'never':
      return Promise.reject(errors.neverInsideTransaction());
    case 'not_supported': {
      const suspended = bind(engine, b, {
        session,
        frame: null,
        pin: null,
        held: [...entry.held, current.transaction.lease],
        detached: false,
      });
      return runIn(suspended, fn);
    }
    case 'requires_new':
      return runOutermost({ ...entry, held: [...entry.held, current.transaction.lease] });
    default:
      return runInner(entry, current, propagation === 'nested');
  }
}

function unsupportedIsolation(engine: Engine, isolation: IsolationLevel): TxScopeError {
  const levels = engine.dialect.isolationLevels.map((level) => `'${level}'`).join(', ');
  return errors.invalidOption('isolation', `${levels} on ${engine.dialect.name}`, isolation);
}

/** A frame inside the current transaction: joined, or a savepoint. */
function runInner<T>(entry: Entry<T>, current: TransactionFrame, nested: boolean): Promise<T> {
  const { options } = entry;
  const incompatible = compatibility(current, options);
  if (incompatible !== null) return Promise.reject(incompatible);
  const tx = current.transaction;
  const frame = new TransactionFrame(tx, current, {
    kind: nested ? 'savepoint' : 'joined',
    readOnly: options.readOnly ?? current.readOnly,
  });
  const binding = bind(entry.engine, entry.binding, {
    session: entry.session,
    frame,
    pin: entry.binding?.pin ?? null,
    held: entry.held,
    detached: false,
  });
  const ms = options.timeoutMs;
  const run = {
    frame,
    work: () => runIn(binding, entry.fn),
    rollbackOn: options.rollbackOn,
    racing: ms !== undefined,
  };
  if (ms === undefined) return nested ? runSavepoint(run) : runJoined(run);
  // An inner frame may shorten the transaction's deadline, never extend it: its timer fails it all.
  const timer = setTimeout(() => tx.fail(errors.transactionTimeout(ms)), ms);
  return (nested ? runSavepoint(run) : runJoined(run)).finally(() => clearTimeout(timer));
}

function compatibility(current: TransactionFrame, o: Readonly<TransactionOptions>): TxScopeError | null {
  const tx = current.transaction;
  if (o.isolation !== undefined && tx.isolation !== undefined && o.isolation !== tx.isolation) {
    return errors.incompatibleIsolation(o.isolation, tx.isolation);
  }
  if (o.readOnly === false && (current.readOnly || tx.readOnly)) return errors.incompatibleReadOnly();
  return null;
}

/** The outermost boundary: a new transaction, re-run on retryable errors when `retry` says so. */
function runOutermost<T>(entry: Entry<T>): Promise<T> {
  const defaults = entry.engine.defaults;
  const options = defaults === null ? entry.options : { ...defaults, ...entry.options };
  const merged = options === entry.options ? entry : { ...entry, options };
  const retry = options.retry;
  return retry === undefined ? runAttempt(merged, 1) : runAttempts(merged, retry);
}

async function runAttempts<T>(entry: Entry<T>, retry: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runAttempt(entry, attempt);
    } catch (error) {
      if (!retries(entry.engine, retry, attempt)(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, retry)));
      const rejection = entry.session?.rejection() ?? null;
      if (rejection !== null) throw rejection;
    }
  }
}

/**
 * Whether attempt `attempt` is followed by another when it fails with an error. Only errors the
 * driver calls retryable are retried: never ERR_COMMIT_UNKNOWN or a lost connection, except a
 * read-only transaction's replica lost under it (rule 20: it wrote nothing; it runs elsewhere).
 */
function retries(engine: Engine, retry: RetryOptions, attempt: number): (error: unknown) => boolean {
  return (error) =>
    attempt < retry.attempts &&
    (error instanceof TxScopeError
      ? engine.replicas !== null && isReplicaLoss(error)
      : engine.driver.classify(error) === 'retryable');
}

function runAttempt<T>(entry: Entry<T>, attempt: number): Promise<T> {
  // A transaction inside db.connection(fn) runs on the pinned connection, one at a time.
  const pin =
    entry.held === noLeases && entry.binding?.pin && !entry.binding.pin.closed ? entry.binding.pin : null;
  if (pin !== null) return runOnPin(entry, pin, attempt);
  const lease = new Lease(entry.engine, {
    held: entry.held,
    scopeId: entry.session?.id ?? null,
    ended: errors.transactionClosed,
  });
  return runTransaction(entry, lease, attempt);
}

async function runOnPin<T>(entry: Entry<T>, pin: Pin, attempt: number): Promise<T> {
  const release = await pin.turns.take();
  try {
    if (pin.lease.lost !== undefined) throw errors.connectionLost('pin', pin.lease.lost);
    return await runTransaction(entry, pin.lease, attempt);
  } finally {
    release();
  }
}

function runTransaction<T>(entry: Entry<T>, lease: Lease, attempt: number): Promise<T> {
  const { engine, options, session } = entry;
  const tx = new Transaction(engine, {
    lease,
    session,
    isolation: options.isolation,
    readOnly: options.readOnly ?? false,
    ownsLease: entry.binding?.pin?.lease !== lease,
    racing: options.timeoutMs !== undefined || session !== null,
    timeoutMs: options.timeoutMs,
  });
  const retry = options.retry;
  if (retry !== undefined) tx.willRetry = retries(engine, retry, attempt);
  const binding = bind(entry.engine, entry.binding, {
    session,
    frame: tx.root,
    pin: entry.binding?.pin ?? null,
    held: entry.held,
    detached: false,
  });
  return tx.run(entry.fn, binding, options.rollbackOn);
}
