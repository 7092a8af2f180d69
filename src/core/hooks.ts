/**
 * Transaction hooks: `beforeCommit` runs inside the transaction, the after-completion callbacks
 * once it has ended and its connection is back, one after another in registration order.
 */
import { errors } from '../errors.js';
import { lookup } from './context.js';
import type { Engine } from './engine.js';
import type { TransactionFrame } from './frame.js';

/** How a transaction ended, as `afterCompletion` callbacks receive it. */
export type CompletionStatus = 'committed' | 'rolled_back';

export type CallbackKind = 'beforeCommit' | 'afterCommit' | 'afterRollback' | 'afterCompletion';

type Callback = () => unknown;
type CompletionCallback = (status: CompletionStatus) => unknown;

/** The hooks registered in one unit (a transaction, or a savepoint until it is released). */
export class Callbacks {
  readonly beforeCommit: Callback[] = [];
  readonly afterCommit: Callback[] = [];
  readonly afterRollback: Callback[] = [];
  readonly afterCompletion: CompletionCallback[] = [];

  add(kind: CallbackKind, cb: CompletionCallback): void {
    if (kind === 'afterCompletion') this.afterCompletion.push(cb);
    else this[kind].push(cb as Callback);
  }

  /**
   * Runs the after-completion callbacks of an ended transaction, awaited one after another; each
   * one's error is reported on `txscope:error` and stops neither the rest nor the caller.
   */
  async runAfterCompletion(engine: Engine, status: CompletionStatus, transactionId: number): Promise<void> {
    const source = status === 'committed' ? 'afterCommit' : 'afterRollback';
    for (const cb of status === 'committed' ? this.afterCommit : this.afterRollback) {
      await engine.runCallback(cb, { source, transactionId });
    }
    for (const cb of this.afterCompletion) {
      await engine.runCallback(() => cb(status), { source: 'afterCompletion', transactionId });
    }
  }

  /** A released savepoint's hooks become its parent's. */
  moveTo(target: Callbacks): void {
    target.beforeCommit.push(...this.beforeCommit);
    target.afterCommit.push(...this.afterCommit);
    target.afterRollback.push(...this.afterRollback);
    target.afterCompletion.push(...this.afterCompletion);
  }
}

function checkCallback(cb: unknown, hook: CallbackKind): void {
  if (typeof cb !== 'function') throw errors.invalidOption(`db.${hook} callback`, 'a function', cb);
}

/** The open frame a hook registers in, or null outside any transaction. */
function openFrame(engine: Engine, hook: CallbackKind): TransactionFrame | null {
  const frame = lookup(engine)?.frame ?? null;
  if (frame === null) return null;
  if (frame.isClosed) throw errors.hookAfterTransactionEnded(hook);
  return frame;
}

/**
 * Registers a hook for the current transaction of `engine`'s database. Outside a transaction,
 * `beforeCommit` throws `ERR_NO_TRANSACTION`, `afterRollback` never runs, and `afterCommit` and
 * `afterCompletion('committed')` run at once.
 */
export function registerHook(engine: Engine, hook: CallbackKind, cb: Callback | CompletionCallback): void {
  checkCallback(cb, hook);
  const frame = openFrame(engine, hook);
  if (frame !== null) {
    frame.addCallback(hook as 'afterCompletion', cb as CompletionCallback);
    return;
  }
  switch (hook) {
    case 'beforeCommit':
      throw errors.beforeCommitWithoutTransaction();
    case 'afterCommit':
      void engine.runCallback(cb as Callback, { source: hook, transactionId: null });
      return;
    case 'afterCompletion':
      void engine.runCallback(() => (cb as CompletionCallback)('committed'), {
        source: hook,
        transactionId: null,
      });
      return;
    case 'afterRollback':
      return;
  }
}
