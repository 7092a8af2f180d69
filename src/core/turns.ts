/**
 * A FIFO of turns: holders go one after another, in the order they asked. Savepoint frames of
 * one transaction, transactions inside one `db.connection(fn)` pin, and the one connection of
 * single-connection drivers (PGlite, SQLite's writer) all take turns through it.
 */
export type Release = () => void;

interface Waiter {
  grant(release: Release): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout | undefined;
}

/** How long a turn may be waited for, and the error a waiter gets past that. */
export interface TurnDeadline {
  timeoutMs: number;
  timeoutError(): Error;
}

export class Turns {
  #held = false;
  readonly #queue: Waiter[] = [];

  /** Holders waiting for their turn. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** True while someone holds the turn. */
  get busy(): boolean {
    return this.#held;
  }

  /** The turn at once when nobody holds it (the caller saves a promise), else null. */
  tryTake(): Release | null {
    if (this.#held) return null;
    this.#held = true;
    return this.#release();
  }

  /** Resolves, in turn, with the function that passes the turn on; rejects past the deadline. */
  take(deadline?: TurnDeadline): Promise<Release> {
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve(this.#release());
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = { grant: resolve, reject, timer: undefined };
      if (deadline !== undefined) {
        waiter.timer = setTimeout(() => {
          const index = this.#queue.indexOf(waiter);
          if (index >= 0) this.#queue.splice(index, 1);
          reject(deadline.timeoutError());
        }, deadline.timeoutMs);
      }
      this.#queue.push(waiter);
    });
  }

  /** Rejects every waiter (the resource is closing); the current holder keeps its turn. */
  rejectWaiting(error: () => unknown): void {
    for (const waiter of this.#queue.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error());
    }
  }

  #release(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#queue.shift();
      if (next === undefined) {
        this.#held = false;
        return;
      }
      clearTimeout(next.timer);
      next.grant(this.#release());
    };
  }
}
