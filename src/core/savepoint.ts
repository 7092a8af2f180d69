/**
 * The frames inside a transaction: a savepoint (`nested`), whose failure rolls back to the
 * savepoint only, and a joined frame (`required`, `supports`, `mandatory`), whose failure marks
 * its unit rollback-only.
 */
import { channels, type FrameEvent } from '../diagnostics.js';
import { errors } from '../errors.js';
import type { TransactionFrame } from './frame.js';
import { rollsBack } from './outcome.js';

/** How a frame inside a transaction runs its work. */
export interface InnerFrameRun<T> {
  readonly frame: TransactionFrame;
  /** `fn`, already bound to the frame's async context. */
  readonly work: () => Promise<T>;
  readonly rollbackOn: ((error: unknown) => boolean) | undefined;
  /** Whether `work` is raced against the transaction's failure (the frame has a deadline of its own). */
  readonly racing: boolean;
}

function settle<T>(run: InnerFrameRun<T>): Promise<T> {
  const running = run.work();
  return run.racing ? run.frame.transaction.race(running) : running;
}

/**
 * Runs a savepoint frame. Concurrent savepoint frames of one parent go one after another, in the
 * order they began; the SAVEPOINT itself is sent lazily, before the frame's first statement.
 */
export async function runSavepoint<T>(run: InnerFrameRun<T>): Promise<T> {
  const { frame } = run;
  const tx = frame.transaction;
  const parent = frame.parent as TransactionFrame;
  const release = await parent.children.take();
  try {
    if (parent.isClosed) throw tx.failure ?? errors.transactionClosed();
    let result: T;
    try {
      result = await settle(run);
    } catch (error) {
      if (tx.failure !== null) throw error;
      if (run.rollbackOn !== undefined && !rollsBack(run.rollbackOn, error)) {
        await releaseSavepoint(frame);
        throw error;
      }
      await rollbackToSavepoint(frame);
      throw error;
    }
    if (frame.rollbackOnly) {
      await rollbackToSavepoint(frame);
      throw errors.rollbackOnly('savepoint_frame_failed');
    }
    await releaseSavepoint(frame);
    return result;
  } finally {
    frame.closed = true;
    release();
  }
}

/** Sends the SAVEPOINT of `unit` (and of its unsent parents) ahead of its first statement. */
export function openSavepoint(unit: TransactionFrame): void {
  const parent = (unit.parent as TransactionFrame).unit;
  if (parent.kind === 'savepoint' && parent.savepoint.kind === 'unsent') openSavepoint(parent);
  const tx = unit.transaction;
  const name = tx.nextSavepointName();
  unit.savepoint = { kind: 'sent', name };
  if (channels.frame.hasSubscribers) reportFrame(unit, { action: 'savepoint', savepoint: name });
  tx.sendControl(tx.engine.dialect.savepoint(name)).catch((error: unknown) => tx.failWith(error));
}

/** RELEASE or ROLLBACK TO a savepoint; its failure fails the whole transaction. */
async function savepointStatement(frame: TransactionFrame, text: string): Promise<void> {
  const tx = frame.transaction;
  const refused = tx.failure;
  if (refused !== null) throw refused;
  try {
    await tx.sendControl(text);
  } catch (error) {
    throw tx.failWith(error);
  }
}

/** Released: the savepoint's work stays, and its hooks become the parent unit's. */
async function releaseSavepoint(frame: TransactionFrame): Promise<void> {
  frame.closed = true;
  const savepoint = frame.savepoint;
  if (savepoint.kind === 'sent') {
    if (channels.frame.hasSubscribers) reportFrame(frame, { action: 'release', savepoint: savepoint.name });
    await savepointStatement(frame, frame.transaction.engine.dialect.releaseSavepoint(savepoint.name));
  }
  if (frame.callbacks !== null) (frame.parent as TransactionFrame).adoptCallbacks(frame.callbacks);
}

/** Rolled back to: the savepoint's work is undone, and its hooks are dropped. */
async function rollbackToSavepoint(frame: TransactionFrame): Promise<void> {
  frame.closed = true;
  frame.callbacks = null;
  const savepoint = frame.savepoint;
  if (savepoint.kind === 'sent') {
    if (channels.frame.hasSubscribers)
      reportFrame(frame, { action: 'rollback_to', savepoint: savepoint.name });
    await savepointStatement(frame, frame.transaction.engine.dialect.rollbackToSavepoint(savepoint.name));
  }
}

/** Runs a joined frame: its failure marks the whole unit rollback-only (unless `rollbackOn` says no). */
export async function runJoined<T>(run: InnerFrameRun<T>): Promise<T> {
  try {
    return await settle(run);
  } catch (error) {
    if (run.rollbackOn === undefined || rollsBack(run.rollbackOn, error)) {
      run.frame.unit.rollbackOnly = true;
      if (channels.frame.hasSubscribers) reportFrame(run.frame, { action: 'rollback_only', error });
    }
    throw error;
  }
}

function reportFrame(frame: TransactionFrame, what: Omit<FrameEvent, 'database' | 'transactionId'>): void {
  const tx = frame.transaction;
  channels.frame.publish({ database: tx.engine.name, transactionId: tx.id, ...what } satisfies FrameEvent);
}
