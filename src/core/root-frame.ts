/**
 * The outermost frame of a transaction: it runs the boundary's `fn`, then the beforeCommit
 * callbacks, then commits; or rolls back when one of them throws (unless `rollbackOn` says no).
 */
import { type Binding, runIn } from './context.js';
import { reasonOf, rollsBack } from './outcome.js';
import type { Transaction } from './transaction.js';

/** What the root frame runs, and in which async context. */
export interface RootFrameRun<T> {
  readonly fn: () => T | Promise<T>;
  /** The context of `fn` and of the beforeCommit callbacks; after-completion callbacks run in the caller's. */
  readonly binding: Binding;
  readonly rollbackOn: ((error: unknown) => boolean) | undefined;
}

export async function runRootFrame<T>(tx: Transaction, run: RootFrameRun<T>): Promise<T> {
  let result: T;
  try {
    const work = runIn(run.binding, run.fn);
    result = await (tx.racing ? tx.race(work) : work);
    const beforeCommit = tx.root.callbacks?.beforeCommit;
    if (beforeCommit !== undefined && beforeCommit.length > 0) {
      await runBeforeCommit(tx, beforeCommit, run.binding);
    }
  } catch (error) {
    if (error !== tx.failure && run.rollbackOn !== undefined && !rollsBack(run.rollbackOn, error)) {
      await tx.commit();
      throw error;
    }
    const failure = tx.failure;
    await tx.rollback(failure !== null && error === failure ? reasonOf(failure) : 'error', error);
    throw error;
  }
  await tx.commit();
  return result;
}

async function runBeforeCommit(
  tx: Transaction,
  callbacks: readonly (() => unknown)[],
  binding: Binding,
): Promise<void> {
  // Callbacks may register more callbacks; walk by index so those run too.
  for (let i = 0; i < callbacks.length; i++) {
    const ran = runIn(binding, callbacks[i] as () => unknown);
    await (tx.racing ? tx.race(ran) : ran);
    const failure = tx.failure;
    if (failure !== null) throw failure;
  }
}
