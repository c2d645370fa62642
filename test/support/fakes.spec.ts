import { expectNoUnexpectedUse, strictFake } from './fakes';

interface Store {
  get(id: string): Promise<string>;
  put(id: string): Promise<void>;
}

describe('strictFake', () => {
  it('answers with the members it was given', async () => {
    const store = strictFake<Store>('store', { get: async (id) => `value of ${id}` });
    await expect(store.get('a')).resolves.toBe('value of a');
    expectNoUnexpectedUse();
  });

  it('throws on a member it was not given, and remembers it even when the caller swallowed the error', () => {
    const store = strictFake<Store>('store', {});
    expect(() => store.put('a')).toThrow('unexpected use of store.put');
    try {
      void store.put('b');
    } catch {
      // the code under test catches everything
    }
    expect(expectNoUnexpectedUse).toThrow('unexpected use of store.put, store.put');
    expect(expectNoUnexpectedUse).not.toThrow();
  });

  it('can be awaited and compared by Jest without counting as a use', async () => {
    const store = strictFake<Store>('store', {});
    await expect(Promise.resolve(store)).resolves.toBe(store);
    expectNoUnexpectedUse();
  });
});
