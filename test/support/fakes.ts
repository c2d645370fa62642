/**
 * Strict hand-written fakes for unit specs: a fake has only the members a test gives it, and any
 * other member the code under test reaches for fails the test, even when the code catches the
 * error (it is remembered; check with {@link expectNoUnexpectedUse} after each test).
 */

/** Properties that Jest, Node and `await` probe on any object: absent, never an unexpected use. */
const PROBED = new Set([
  'then',
  'toJSON',
  'asymmetricMatch',
  '$$typeof',
  'nodeType',
  'tagName',
  'constructor',
  'inspect',
]);

const unexpected: string[] = [];

/** A `T` that has only `members`; reaching for anything else throws and is remembered. */
export function strictFake<T extends object>(name: string, members: Partial<T>): T {
  return new Proxy(members as T, {
    get(target, prop, receiver) {
      if (prop in target) {
        return Reflect.get(target, prop, receiver) as unknown;
      }
      if (typeof prop === 'symbol' || PROBED.has(prop)) {
        return undefined;
      }
      const use = `${name}.${prop}`;
      unexpected.push(use);
      throw new Error(`unexpected use of ${use}`);
    },
  });
}

/** Fails when code reached for a member no fake had since the last check (call it in afterEach). */
export function expectNoUnexpectedUse(): void {
  const seen = unexpected.splice(0);
  if (seen.length > 0) {
    throw new Error(`unexpected use of ${seen.join(', ')}`);
  }
}
