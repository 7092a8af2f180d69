/**
 * Transaction boundaries (`db.transaction`, `@Transactional`): what a boundary does given the
 * transaction already active in its async context (propagation and compatibility), and the
 * outermost boundary's attempts (retry with backoff).
 */
import { type BoundaryEvent, channels } from '../diagnostics.js';
import type { IsolationLevel } from '../driver.js';
import { errors, TxScopeError } from '../errors.js';
import type { Propagation, RetryOptions, TransactionOptions } from '../options.js';
import { noteRetry, reportAttempt, runTraced, startBoundary } from './boundary-trace.js';
import { type Binding, bind, lookup, noLeases, runIn } from './context.js';
import type { Engine } from './engine.js';
import { TransactionFrame } from './frame.js';
import { Lease } from './lease.js';
import type { Pin } from './pin.js';
import type { HeldConnection } from './pool.js';
import { isReplicaLoss } from './replica-target.js';
import { backoffMs } from './retry.js';
import { runRootFrame } from './root-frame.js';
import { runJoined, runSavepoint } from './savepoint.js';
import type { Session } from './scope.js';
import { TestPin } from './test-transaction.js';
import { Transaction } from './transaction.js';
import { ownTransaction, type TransactionRole } from './transaction-state.js';

/** One entry into a boundary, as its parts need it. */
interface Entry<T> {
  readonly engine: Engine;
  readonly fn: () => T | Promise<T>;
  readonly options: Readonly<TransactionOptions>;
  readonly binding: Binding | undefined;
  readonly session: Session | null;
  /** Connections held up the async chain by suspended transactions and pins. */
  readonly held: readonly HeldConnection[];
  /** The `txscope:boundary:*` event of an outermost boundary, when someone listens. */
  readonly trace?: BoundaryEvent;
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
        pin: b?.pin?.testing ? b.pin : null,
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
  if (channels.boundaryStart.hasSubscribers) {
    const trace = startBoundary(entry.engine, options, entry.session?.id ?? null);
    const traced = { ...merged, trace };
    return runTraced(trace, () => (retry === undefined ? runAttempt(traced, 1) : runAttempts(traced, retry)));
  }
  return retry === undefined ? runAttempt(merged, 1) : runAttempts(merged, retry);
}

async function runAttempts<T>(entry: Entry<T>, retry: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runAttempt(entry, attempt);
    } catch (error) {
      if (!retries(entry.engine, retry, attempt)(error)) throw error;
      const delayMs = backoffMs(attempt, retry);
      if (entry.trace !== undefined) noteRetry(entry.trace, error, delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
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
  const pin = pinOf(entry);
  if (pin !== null) return runOnPin(entry, pin, attempt);
  const lease = new Lease(entry.engine, {
    held: entry.held,
    scopeId: entry.session?.id ?? null,
    ended: errors.transactionClosed,
  });
  return runTransaction(entry, { lease, role: ownTransaction, pin: entry.binding?.pin ?? null }, attempt);
}

/**
 * The pin a new transaction runs on: the `db.connection(fn)` pin of its context, or the test
 * transaction, which every transaction of the database joins while it is open (even one begun by
 * a context outside any scope).
 */
function pinOf(entry: Entry<unknown>): Pin | null {
  const bound = entry.binding?.pin ?? null;
  if (bound === null) return entry.engine.test;
  if (bound.testing || (entry.held === noLeases && !bound.closed)) return bound;
  return null;
}

async function runOnPin<T>(entry: Entry<T>, pin: Pin, attempt: number): Promise<T> {
  // Under a test transaction, a boundary inside the work of the transaction whose turn it is
  // (requires_new, or not_supported then required) nests in it as a savepoint: waiting for the
  // turn its own caller holds would never end.
  if (pin instanceof TestPin && entry.held.includes(pin.lease)) {
    const refused = pin.refusal();
    if (refused !== null) throw refused;
    const enclosing = pin.holder ?? pin.transaction;
    return runTransaction(entry, { lease: pin.lease, role: { kind: 'savepoint', enclosing }, pin }, attempt);
  }
  const release = await pin.turns.take();
  try {
    const refused = pin.refusal();
    if (refused !== null) throw refused;
    return await runTransaction(entry, { lease: pin.lease, role: pin.role, pin }, attempt);
  } finally {
    release();
  }
}

/** Where a transaction runs: its lease, what it is on that connection, and the pin it is inside. */
interface Placement {
  readonly lease: Lease;
  readonly role: TransactionRole;
  readonly pin: Pin | null;
}

function runTransaction<T>(entry: Entry<T>, placement: Placement, attempt: number): Promise<T> {
  const { engine, options, session } = entry;
  const { lease, pin } = placement;
  const tx = new Transaction(engine, {
    role: placement.role,
    lease,
    session,
    isolation: options.isolation,
    readOnly: options.readOnly ?? false,
    ownsLease: pin?.lease !== lease,
    racing: options.timeoutMs !== undefined || session !== null,
    timeoutMs: options.timeoutMs,
  });
  const retry = options.retry;
  if (retry !== undefined) tx.willRetry = retries(engine, retry, attempt);
  if (entry.trace !== undefined) reportAttempt(entry.trace, attempt, tx.id);
  const binding = bind(entry.engine, entry.binding, {
    session,
    frame: tx.root,
    pin,
    held: entry.held,
    detached: false,
  });
  const run = { fn: entry.fn, binding, rollbackOn: options.rollbackOn };
  if (!(pin instanceof TestPin) || pin.holder !== null) return runRootFrame(tx, run);
  pin.holder = tx;
  return runRootFrame(tx, run).finally(() => {
    if (pin.holder === tx) pin.holder = null;
  });
}
