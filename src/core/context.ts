/** The package's one AsyncLocalStorage, and what each database keeps in it. */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Engine } from './engine.js';
import type { TransactionFrame } from './frame.js';
import type { Pin } from './pin.js';
import type { HeldConnection } from './pool.js';
import type { Session } from './scope.js';

/**
 * What one database sees in the current async context. Bindings of several databases chain
 * through `parent`, so one AsyncLocalStorage serves them all.
 */
export interface Binding {
  /** The database this binding belongs to (its engine). */
  readonly owner: Engine;
  readonly session: Session | null;
  /** The transaction frame statements join; null means autocommit. */
  readonly frame: TransactionFrame | null;
  /** A connection pinned by `db.connection(fn)`. */
  readonly pin: Pin | null;
  /** Connections held further up this async chain by suspended transactions and pins. */
  readonly held: readonly HeldConnection[];
  /** Set by `db.detached(fn)`: no scope and no transaction, on purpose. */
  readonly detached: boolean;
  readonly parent: Binding | undefined;
}

/** The fields of a binding a database sets; the owner and the chain are added by {@link bind}. */
export type BindingFields = Omit<Binding, 'owner' | 'parent'>;

/** Entered with `run()` only, never `enterWith()`: a context ends exactly where its callback does. */
export const storage = new AsyncLocalStorage<Binding>();

export const noLeases: readonly HeldConnection[] = Object.freeze([]);

/** The current binding of `owner`, if any. */
export function lookup(owner: Engine): Binding | undefined {
  let b = storage.getStore();
  while (b !== undefined && b.owner !== owner) b = b.parent;
  return b;
}

/** A child binding for `owner`, linked above whatever other databases have bound. */
export function bind(owner: Engine, current: Binding | undefined, fields: BindingFields): Binding {
  const top = storage.getStore();
  return {
    owner,
    parent: top !== undefined && top === current ? current.parent : top,
    session: fields.session,
    frame: fields.frame,
    pin: fields.pin,
    held: fields.held,
    detached: fields.detached,
  };
}

/** Runs `fn` with `binding` as the context, turning a synchronous throw into a rejection. */
export function runIn<T>(binding: Binding, fn: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(storage.run(binding, fn));
  } catch (error) {
    return Promise.reject(error);
  }
}
