/**
 * A transaction boundary as statements and hooks see it: the root that began the transaction,
 * a frame that joined it, or a savepoint inside it. Atomicity belongs to the frame's unit: the
 * root, or the nearest savepoint.
 */
import { type CallbackKind, Callbacks, type CompletionStatus } from './hooks.js';
import type { Transaction } from './transaction.js';
import { Turns } from './turns.js';

export type FrameKind = 'root' | 'joined' | 'savepoint';

/** A savepoint frame's savepoint: not yet needed, or sent under its unique name. */
export type SavepointState = { readonly kind: 'unsent' } | { readonly kind: 'sent'; readonly name: string };

const unsent: SavepointState = Object.freeze({ kind: 'unsent' });

export class TransactionFrame {
  /** The frame that owns atomicity for this one: the root, or the nearest savepoint. */
  readonly unit: TransactionFrame;
  readonly depth: number;
  /** A closed unit accepts no more statements (meaningful on the root and savepoints). */
  closed = false;
  /** A joined frame inside this unit threw: it can only roll back. */
  rollbackOnly = false;
  savepoint: SavepointState = unsent;
  /** Hooks registered in this unit, created on first use. */
  callbacks: Callbacks | null = null;
  #children: Turns | null = null;

  readonly kind: FrameKind;
  /** Read-only by its own option, or by the frame it is inside. */
  readonly readOnly: boolean;

  constructor(
    readonly transaction: Transaction,
    readonly parent: TransactionFrame | null,
    spec: { readonly kind: FrameKind; readonly readOnly: boolean },
  ) {
    this.kind = spec.kind;
    this.readOnly = spec.readOnly;
    this.unit = spec.kind === 'joined' && parent !== null ? parent.unit : this;
    this.depth = parent === null ? 1 : parent.depth + 1;
  }

  /** Savepoint children of this frame take turns here, in the order they began. */
  get children(): Turns {
    this.#children ??= new Turns();
    return this.#children;
  }

  get isClosed(): boolean {
    return this.unit.closed || this.transaction.isOver;
  }

  /** Takes over the hooks of a released savepoint, after this unit's own. */
  adoptCallbacks(callbacks: Callbacks): void {
    const unit = this.unit;
    unit.callbacks ??= new Callbacks();
    callbacks.moveTo(unit.callbacks);
  }

  addCallback(kind: 'afterCompletion', cb: (status: CompletionStatus) => unknown): void;
  addCallback(kind: Exclude<CallbackKind, 'afterCompletion'>, cb: () => unknown): void;
  addCallback(kind: CallbackKind, cb: (status: CompletionStatus) => unknown): void {
    const unit = this.unit;
    unit.callbacks ??= new Callbacks();
    unit.callbacks.add(kind, cb);
  }
}
