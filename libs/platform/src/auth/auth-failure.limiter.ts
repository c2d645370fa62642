export interface AuthFailureLimits {
  /** Failed authentications allowed per client id within the window. */
  perClient: number;
  /** Failed authentications allowed per remote address within the window. */
  perAddress: number;
  windowMs: number;
}

/** Keys remembered at most (least recently failed forgotten first): memory stays bounded under a flood of made-up ids. */
const MAX_KEYS = 50_000;

/**
 * Failed client authentications per client id and per remote address, in a sliding window
 * (in memory, per process). Checked before the secret is hashed: once a key is over its limit,
 * further attempts are refused at once and cost no key derivation, so a wrong-secret flood
 * neither burns the CPU that legitimate token requests need nor gets unlimited guesses. Like
 * Keycloak's brute-force detection (temporary lockout), the lock lifts by itself as the failures
 * age out of the window; a success does not erase past failures.
 */
export class AuthFailureLimiter {
  /** Key → times of its most recent failures, oldest first, at most the key's limit. */
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limits: AuthFailureLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds to wait before trying again (0: not blocked). */
  retryAfterSeconds(clientId: string | undefined, address: string | undefined): number {
    const t = this.now();
    const waits = [
      clientId === undefined ? 0 : this.blockedMs(`c:${clientId}`, this.limits.perClient, t),
      address === undefined ? 0 : this.blockedMs(`a:${address}`, this.limits.perAddress, t),
    ];
    const wait = Math.max(...waits);
    return wait > 0 ? Math.max(1, Math.ceil(wait / 1000)) : 0;
  }

  /** Records one failed authentication of `clientId` from `address`. */
  fail(clientId: string | undefined, address: string | undefined): void {
    const t = this.now();
    if (clientId !== undefined) {
      this.record(`c:${clientId}`, this.limits.perClient, t);
    }
    if (address !== undefined) {
      this.record(`a:${address}`, this.limits.perAddress, t);
    }
  }

  private blockedMs(key: string, limit: number, t: number): number {
    const times = this.failures.get(key);
    if (!times || times.length < limit) {
      return 0;
    }
    // Blocked while `limit` failures lie within the window: until the oldest of them leaves it.
    return Math.max(0, times[times.length - limit] + this.limits.windowMs - t);
  }

  private record(key: string, limit: number, t: number): void {
    const times = this.failures.get(key) ?? [];
    this.failures.delete(key);
    times.push(t);
    while (times.length > limit || (times.length > 0 && times[0] <= t - this.limits.windowMs)) {
      times.shift();
    }
    this.failures.set(key, times);
    if (this.failures.size > MAX_KEYS) {
      this.failures.delete(this.failures.keys().next().value as string);
    }
  }
}
