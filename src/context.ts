import { AsyncLocalStorage } from 'node:async_hooks';
import type { Lease, Pin } from './lease.js';
import type { Session } from './session.js';
import type { TransactionFrame } from './transaction.js';

/**
 * What one database sees in the current async context. Bindings of several
 * databases chain through `parent`, so one AsyncLocalStorage serves them all.
 */
export interface Binding {
  readonly owner: object;
  readonly session: Session | null;
  /** The transaction frame statements join; null means autocommit. */
  readonly frame: TransactionFrame | null;
  /** A connection pinned by `db.connection(fn)`. */
  readonly pin: Pin | null;
  /** Connections held further up this async chain by suspended transactions and pins. */
  readonly held: readonly Lease[];
  /** Set by `db.detached(fn)`: no scope and no transaction, on purpose. */
  readonly detached: boolean;
  readonly parent: Binding | undefined;
}

/** The package's one AsyncLocalStorage, entered with `run()` only. */
export const storage = new AsyncLocalStorage<Binding>();

export function lookup(owner: object): Binding | undefined {
  let b = storage.getStore();
  while (b !== undefined && b.owner !== owner) b = b.parent;
  return b;
}

/** A child binding for `owner`, linked above whatever other databases have bound. */
export function bind(
  owner: object,
  current: Binding | undefined,
  fields: Omit<Binding, 'owner' | 'parent'>,
): Binding {
  const top = storage.getStore();
  const parent = top !== undefined && top === current ? current.parent : top;
  return { owner, parent, ...fields };
}
