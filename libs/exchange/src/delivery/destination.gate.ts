interface State {
  active: number;
  waiting: (() => void)[];
  tokens: number;
  refilledAt: number;
  failures: number;
  openUntil: number;
}

/**
 * Per-destination limits inside one process: at most `concurrency` calls in flight and `rate`
 * starts per second per relay or repository, and a circuit that opens after consecutive failures:
 * while it is open, calls wait for it to half-open (at most `openMs`) instead of hammering a dead
 * relay or burning their retry attempts on it. Each channel has its own queue and workers, so a
 * dead relay never holds the slots of another destination.
 */
export class DestinationGate {
  private readonly states = new Map<string, State>();

  constructor(
    private readonly concurrency: number,
    private readonly rate: number,
    private readonly failureThreshold = 5,
    private readonly openMs = 5000,
  ) {}

  async run<T>(destination: string, fn: () => Promise<T>): Promise<T> {
    const s = this.state(destination);
    const wait = s.openUntil - Date.now();
    if (wait > 0) {
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    await this.acquire(s);
    try {
      const result = await fn();
      s.failures = 0;
      return result;
    } catch (err) {
      s.failures += 1;
      if (s.failures >= this.failureThreshold) {
        s.openUntil = Date.now() + this.openMs;
      }
      throw err;
    } finally {
      s.active -= 1;
      s.waiting.shift()?.();
    }
  }

  private state(destination: string): State {
    let s = this.states.get(destination);
    if (!s) {
      s = { active: 0, waiting: [], tokens: this.rate, refilledAt: Date.now(), failures: 0, openUntil: 0 };
      this.states.set(destination, s);
    }
    return s;
  }

  private async acquire(s: State): Promise<void> {
    while (s.active >= this.concurrency) {
      await new Promise<void>((resolve) => s.waiting.push(resolve));
    }
    s.active += 1;
    for (;;) {
      const now = Date.now();
      s.tokens = Math.min(this.rate, s.tokens + ((now - s.refilledAt) / 1000) * this.rate);
      s.refilledAt = now;
      if (s.tokens >= 1) {
        s.tokens -= 1;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(((1 - s.tokens) / this.rate) * 1000)));
    }
  }
}
