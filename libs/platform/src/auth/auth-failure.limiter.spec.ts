import { AuthFailureLimiter } from './auth-failure.limiter';

describe('AuthFailureLimiter', () => {
  let now = 0;
  const limiter = (): AuthFailureLimiter =>
    new AuthFailureLimiter({ perClient: 3, perAddress: 5, windowMs: 60_000 }, () => now);
  beforeEach(() => (now = 1_000_000));

  it('blocks a client id after its limit of failures, until the oldest leaves the window', () => {
    const l = limiter();
    for (let i = 0; i < 3; i++) {
      expect(l.retryAfterSeconds('a', `10.0.0.${i}`)).toBe(0);
      l.fail('a', `10.0.0.${i}`);
      now += 1000;
    }
    expect(l.retryAfterSeconds('a', '10.0.0.99')).toBe(57);
    expect(l.retryAfterSeconds('b', '10.0.0.99')).toBe(0);
    now += 57_000;
    expect(l.retryAfterSeconds('a', '10.0.0.99')).toBe(0);
  });

  it('blocks an address after its limit of failures, whatever the client ids', () => {
    const l = limiter();
    for (let i = 0; i < 5; i++) {
      l.fail(`id-${i}`, '10.0.0.1');
    }
    expect(l.retryAfterSeconds('fresh', '10.0.0.1')).toBe(60);
    expect(l.retryAfterSeconds('fresh', '10.0.0.2')).toBe(0);
  });

  it('slides: failures older than the window do not count', () => {
    const l = limiter();
    l.fail('a', undefined);
    l.fail('a', undefined);
    now += 61_000;
    l.fail('a', undefined);
    expect(l.retryAfterSeconds('a', undefined)).toBe(0);
  });
});
