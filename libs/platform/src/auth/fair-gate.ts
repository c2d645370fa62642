/** A key already has as many calls waiting as the gate allows it. */
export class GateFull extends Error {}

/**
 * Runs at most `concurrency` calls at once and, when they wait, serves their keys in turn (round
 * robin), each key's calls in order. Used for client authentications, keyed by remote address:
 * a flood of wrong secrets from a few addresses then delays a legitimate request from another
 * address by one turn, not by the whole backlog of key derivations (scrypt runs in libuv's pool
 * of 4 threads, which a flood would otherwise fill). A key with `perKey` calls waiting is refused
 * at once ({@link GateFull}).
 */
export class FairGate {
  private active = 0;
  /** Keys with waiting calls, in the order of their next turn (Map keeps insertion order). */
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(
    private readonly concurrency: number,
    private readonly perKey: number,
  ) {}

  async run<T>(key: string, call: () => Promise<T>): Promise<T> {
    if (this.active < this.concurrency && this.waiting.size === 0) {
      this.active++;
    } else {
      const queue = this.waiting.get(key) ?? [];
      if (queue.length >= this.perKey) {
        throw new GateFull(`${queue.length} calls already waiting for this key`);
      }
      await new Promise<void>((resolve) => {
        queue.push(resolve);
        this.waiting.set(key, queue);
      });
      // The slot of a finished call was handed to this one (active unchanged).
    }
    try {
      return await call();
    } finally {
      this.release();
    }
  }

  /** Hands the slot to the first call of the key whose turn it is, which then goes to the back. */
  private release(): void {
    const next = this.waiting.entries().next();
    if (next.done) {
      this.active--;
      return;
    }
    const [key, queue] = next.value;
    const resolve = queue.shift() as () => void;
    this.waiting.delete(key);
    if (queue.length > 0) {
      this.waiting.set(key, queue);
    }
    resolve();
  }
}
