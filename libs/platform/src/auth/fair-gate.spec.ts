import { FairGate, GateFull } from './fair-gate';

/** A call that stays in flight until released, recording when it started. */
function controlled(started: string[], name: string): { call: () => Promise<string>; finish: () => void } {
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  return {
    call: async () => {
      started.push(name);
      await done;
      return name;
    },
    finish: () => finish(),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('FairGate', () => {
  it('runs at most `concurrency` calls at once, then serves the waiting keys in turn', async () => {
    const gate = new FairGate(2, 10);
    const started: string[] = [];
    // A flood from address A (6 calls), then one call from B, then another from A.
    const flood = Array.from({ length: 6 }, (_, i) => controlled(started, `A${i}`));
    const good = controlled(started, 'B0');
    const more = controlled(started, 'A6');
    const results = [...flood.map((c) => gate.run('A', c.call)), gate.run('B', good.call), gate.run('A', more.call)];
    await tick();
    expect(started).toEqual(['A0', 'A1']);
    flood[0]!.finish();
    await tick();
    expect(started).toEqual(['A0', 'A1', 'A2']);
    flood[1]!.finish();
    await tick();
    // B's turn comes next, before the rest of A's backlog (A3, A4, A5, A6).
    expect(started).toEqual(['A0', 'A1', 'A2', 'B0']);
    for (const c of [...flood, good, more]) {
      c.finish();
      await tick();
    }
    await expect(Promise.all(results)).resolves.toEqual(['A0', 'A1', 'A2', 'A3', 'A4', 'A5', 'B0', 'A6']);
  });

  it('refuses a call when its key already has `perKey` calls waiting, others still pass', async () => {
    const gate = new FairGate(1, 2);
    const started: string[] = [];
    const first = controlled(started, 'A0');
    const running = gate.run('A', first.call);
    const waiting = [gate.run('A', async () => 'A1'), gate.run('A', async () => 'A2')];
    await expect(gate.run('A', async () => 'A3')).rejects.toBeInstanceOf(GateFull);
    const other = gate.run('B', async () => 'B0');
    first.finish();
    await expect(Promise.all([running, ...waiting, other])).resolves.toEqual(['A0', 'A1', 'A2', 'B0']);
  });

  it('frees its slot when a call throws', async () => {
    const gate = new FairGate(1, 1);
    await expect(
      gate.run('A', async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(gate.run('A', async () => 'next')).resolves.toBe('next');
  });
});
