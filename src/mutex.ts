/** A FIFO lock: holders run one after another, in the order they asked. */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();

  /** Resolves, in turn, with the function that lets the next holder in. */
  lock(): Promise<() => void> {
    let unlock!: () => void;
    const released = new Promise<void>((resolve) => {
      unlock = resolve;
    });
    const turn = this.#tail.then(() => unlock);
    this.#tail = this.#tail.then(() => released);
    return turn;
  }
}
