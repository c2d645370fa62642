import { Writable } from 'node:stream';
import { createLogger } from '../logger';
import { GracefulShutdown, closeSteps } from './shutdown';
import type { ShutdownStep } from './shutdown';

function harness(steps: ShutdownStep[], timeoutMs = 200) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(
    'info',
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
        cb();
      },
    }),
  );
  let resolveExit: (code: number) => void = () => undefined;
  const exited = new Promise<number>((r) => (resolveExit = r));
  const shutdown = new GracefulShutdown(steps, { timeoutMs, logger, exit: (code) => resolveExit(code) });
  return { shutdown, lines, exited };
}

const never = (): Promise<void> => new Promise<void>(() => undefined);

describe('GracefulShutdown', () => {
  it('closes every step in order and exits 0', async () => {
    const order: string[] = [];
    const step = (name: string): ShutdownStep => ({ name, close: async () => void order.push(name) });
    const { shutdown, lines, exited } = harness([step('listener'), step('workers'), step('database')]);
    void shutdown.run('SIGTERM');
    expect(await exited).toBe(0);
    expect(order).toEqual(['listener', 'workers', 'database']);
    expect(lines.at(-1)).toMatchObject({ msg: 'stopped', closed: ['listener', 'workers', 'database'] });
  });

  it('past the deadline exits 1, names the step that hung and those never started, and calls their abandon hooks', async () => {
    const abandoned: string[] = [];
    const { shutdown, lines, exited } = harness(
      [
        { name: 'listener', close: async () => undefined },
        { name: 'queue connections', close: never, abandon: () => abandoned.push('queue') },
        { name: 'database', close: async () => undefined, abandon: () => abandoned.push('db') },
      ],
      150,
    );
    const started = Date.now();
    void shutdown.run('SIGTERM');
    expect(await exited).toBe(1);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(abandoned).toEqual(['queue', 'db']);
    expect(lines.at(-1)).toMatchObject({
      level: 50,
      abandoned: ['queue connections', 'database'],
      closed: ['listener'],
    });
    expect(String(lines.at(-1)?.msg)).toContain('abandoned queue connections, database');
  });

  it('a step that throws does not stop the next ones; the exit code says it failed', async () => {
    const closed: string[] = [];
    const { shutdown, lines, exited } = harness([
      { name: 'relay', close: () => Promise.reject(new Error('connection terminated')) },
      { name: 'database', close: async () => void closed.push('database') },
    ]);
    void shutdown.run('SIGTERM');
    expect(await exited).toBe(1);
    expect(closed).toEqual(['database']);
    expect(lines.at(-1)).toMatchObject({ msg: 'stopped with errors', failed: ['relay'] });
  });
});

describe('closeSteps (in-process close: tests, CLI)', () => {
  it('abandons a step that does not finish in time, names it, and still closes the next ones', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger(
      'info',
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
          cb();
        },
      }),
    );
    const done: string[] = [];
    const started = Date.now();
    await closeSteps(
      [
        { name: 'first', close: async () => void done.push('first') },
        {
          name: 'stuck job',
          close: () => new Promise<void>(() => undefined),
          abandon: () => void done.push('abandoned'),
        },
        { name: 'last', close: async () => void done.push('last') },
      ],
      logger,
      100,
    );
    expect(done).toEqual(['first', 'abandoned', 'last']);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(lines.some((l) => l.step === 'stuck job' && /abandoned/.test(String(l.msg)))).toBe(true);
  });
});
