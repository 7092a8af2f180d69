/**
 * Scopes: a unit of work bound to the async context by `db.scope(fn)` (a request, a job, a
 * script). A scope holds no connection itself; it tracks the transactions and pins opened in it
 * so that its end, or its abort, can close them.
 */
import { errors, type TxScopeError } from '../errors.js';
import type { ScopeOptions } from '../options.js';
import { bind, lookup, noLeases, runIn } from './context.js';
import type { Engine } from './engine.js';
import type { Pin } from './pin.js';

/** Live counters of the current scope (`db.current.scope`), read by middleware for Server-Timing. */
export interface ScopeInfo {
  readonly id: number;
  readonly statements: number;
  readonly transactions: number;
  readonly databaseMs: number;
}

/** What a scope's transactions are to it: something it can fail, and wait for. */
export interface ScopeTransaction {
  fail(error: Error): void;
  readonly done: Promise<void>;
}

type SessionState =
  | { readonly kind: 'open' }
  | { readonly kind: 'aborted'; readonly error: TxScopeError }
  | { readonly kind: 'closed'; readonly abortedBy: TxScopeError | null };

let nextScopeId = 0;

export class Session implements ScopeInfo {
  readonly id = ++nextScopeId;
  #state: SessionState = { kind: 'open' };
  /** Transactions begun in this scope and not yet ended; made on first use. */
  #open: Set<ScopeTransaction> | null = null;
  #pins: Set<Pin> | null = null;
  /** Statements sent (BEGIN and COMMIT not counted), for Server-Timing. */
  statements = 0;
  /** Transactions that sent BEGIN in this scope. */
  transactions = 0;
  /** Milliseconds spent waiting for statements. */
  databaseMs = 0;

  /** The error a statement of this scope rejects with, or null while it is open. */
  rejection(): TxScopeError | null {
    const state = this.#state;
    switch (state.kind) {
      case 'open':
        return null;
      case 'aborted':
        return state.error;
      case 'closed':
        return state.abortedBy ?? errors.scopeClosed();
    }
  }

  get isOpen(): boolean {
    return this.#state.kind !== 'closed';
  }

  /** A transaction of this scope sent BEGIN: the scope's end (or abort) rolls it back if still open. */
  began(tx: ScopeTransaction): void {
    this.transactions++;
    this.#open ??= new Set();
    this.#open.add(tx);
  }

  ended(tx: ScopeTransaction): void {
    this.#open?.delete(tx);
  }

  pinned(pin: Pin): void {
    this.#pins ??= new Set();
    this.#pins.add(pin);
  }

  unpinned(pin: Pin): void {
    this.#pins?.delete(pin);
  }

  abort(error: TxScopeError): void {
    if (this.#state.kind !== 'open') return;
    this.#state = { kind: 'aborted', error };
    if (this.#open !== null) for (const tx of this.#open) tx.fail(error);
  }

  /**
   * Ends the scope: its open transactions roll back, its pins give their connections back.
   * Synchronous (undefined) when there is nothing to wait for.
   */
  end(): Promise<void> | undefined {
    const state = this.#state;
    this.#state = { kind: 'closed', abortedBy: state.kind === 'aborted' ? state.error : null };
    const open = this.#open === null || this.#open.size === 0 ? null : [...this.#open];
    const pins = this.#pins === null || this.#pins.size === 0 ? null : [...this.#pins];
    if (open === null && pins === null) return undefined;
    return this.#closeAll(open ?? [], pins ?? []);
  }

  async #closeAll(open: ScopeTransaction[], pins: Pin[]): Promise<void> {
    if (open.length > 0) {
      const error = errors.scopeClosed();
      for (const tx of open) tx.fail(error);
      await Promise.all(open.map((tx) => tx.done));
    }
    for (const pin of pins) await pin.close();
  }
}

/** `db.scope(fn, options)`: a fresh session for `fn`, or the current one inside a scope. */
export function runScope<T>(
  engine: Engine,
  fn: () => T | Promise<T>,
  options: ScopeOptions | undefined,
): Promise<T> {
  const closed = engine.closedError();
  if (closed !== null) return Promise.reject(closed);
  const signal = options?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    return Promise.reject(errors.invalidOption('db.scope signal', 'an AbortSignal', signal));
  }
  const b = lookup(engine);
  if (b?.session) {
    const rejection = b.session.rejection();
    if (rejection !== null) return Promise.reject(rejection);
    try {
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(error);
    }
  }
  if (signal?.aborted) return Promise.reject(errors.scopeAborted(signal.reason));
  const session = new Session();
  const binding = bind(engine, b, {
    session,
    frame: b?.frame ?? null,
    // A scope begun under a test transaction keeps to it: what it sends after the test ended rejects.
    pin: b?.pin ?? engine.test,
    held: b?.held ?? noLeases,
    detached: false,
  });
  const onAbort =
    signal === undefined ? undefined : (): void => session.abort(errors.scopeAborted(signal.reason));
  if (onAbort !== undefined) signal?.addEventListener('abort', onAbort, { once: true });
  engine.activity.activeScopes++;
  // Ended as `fn` settles, either way; written as one continuation, the common case adds no turn.
  const end = (): Promise<void> | undefined => {
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    engine.activity.activeScopes--;
    return session.end();
  };
  return runIn(binding, fn).then(
    (result) => {
      const ending = end();
      return ending === undefined ? result : ending.then(() => result);
    },
    (error: unknown) => {
      const ending = end();
      if (ending === undefined) throw error;
      return ending.then(() => {
        throw error;
      });
    },
  );
}
