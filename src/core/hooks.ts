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

  /** A released savepoint's hooks become its parent's. */
  moveTo(target: Callbacks): void {
    target.beforeCommit.push(...this.beforeCommit);
    target.afterCommit.push(...this.afterCommit);
    target.afterRollback.push(...this.afterRollback);
    target.afterCompletion.push(...this.afterCompletion);
  }
}

/**
 * Runs the after-completion callbacks of an ended transaction, awaited one after another; each
 * one's error is reported on `txscope:error` and stops neither the rest nor the caller.
 */
export async function runAfterCompletion(
  engine: Engine,
  callbacks: Callbacks,
  status: CompletionStatus,
  transactionId: number,
): Promise<void> {
  const source = status === 'committed' ? 'afterCommit' : 'afterRollback';
  for (const cb of status === 'committed' ? callbacks.afterCommit : callbacks.afterRollback) {
    await invoke(engine, source, cb, transactionId);
  }
  for (const cb of callbacks.afterCompletion) {
    await invoke(engine, 'afterCompletion', () => cb(status), transactionId);
  }
}

async function invoke(
  engine: Engine,
  source: string,
  cb: Callback,
  transactionId: number | null,
): Promise<void> {
  try {
    await cb();
  } catch (error) {
    engine.report(source, error, transactionId);
  }
}

function checkCallback(cb: unknown, hook: CallbackKind): void {
  if (typeof cb !== 'function') throw errors.invalidOption(`db.${hook} callback`, 'a function', cb);
}

/** The open frame a hook registers in, or null outside any transaction. */
function openFrame(owner: object, hook: CallbackKind): TransactionFrame | null {
  const frame = lookup(owner)?.frame ?? null;
  if (frame === null) return null;
  if (frame.isClosed) throw errors.hookAfterTransactionEnded(hook);
  return frame;
}

/**
 * Registers a hook for the current transaction of `owner`'s database. Outside a transaction,
 * `beforeCommit` throws `ERR_NO_TRANSACTION`, `afterRollback` never runs, and `afterCommit` and
 * `afterCompletion('committed')` run at once.
 */
export function registerHook(
  engine: Engine,
  owner: object,
  hook: CallbackKind,
  cb: Callback | CompletionCallback,
): void {
  checkCallback(cb, hook);
  const frame = openFrame(owner, hook);
  if (frame !== null) {
    frame.addCallback(hook as 'afterCompletion', cb as CompletionCallback);
    return;
  }
  switch (hook) {
    case 'beforeCommit':
      throw errors.beforeCommitWithoutTransaction();
    case 'afterCommit':
      void invoke(engine, hook, cb as Callback, null);
      return;
    case 'afterCompletion':
      void invoke(engine, hook, () => (cb as CompletionCallback)('committed'), null);
      return;
    case 'afterRollback':
      return;
  }
}
