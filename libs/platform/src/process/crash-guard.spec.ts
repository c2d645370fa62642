import { createWriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import { createLogger } from '../logger';
import { CrashGuard, runInJobScope } from './crash-guard';

function capture(): { guard: CrashGuard; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { guard: new CrashGuard(createLogger('info', sink)), lines };
}

describe('CrashGuard', () => {
  it('fails the job an uncaught error was raised in (an unlistened stream error), not the process', async () => {
    const { guard, lines } = capture();
    // What the process-wide handler receives when a stream emits 'error' with no listener.
    const job = runInJobScope('bulk.export', async () => {
      const out = createWriteStream('/nonexistent-dir-of-a-test/file.ndjson');
      out.removeAllListeners('error');
      out.on('error', (err) => guard.handle(err, 'uncaughtException'));
      await new Promise(() => undefined); // the job itself never settles
    });
    await expect(job).rejects.toMatchObject({ code: 'ENOENT' });
    expect(lines.join('')).toContain('uncaught error failed its job');
    expect(lines.join('')).toContain('bulk.export');
  });

  it('logs an uncaught error outside any job without its message (it may quote request data)', () => {
    const { guard, lines } = capture();
    guard.handle(new Error('duplicate key (family)=(DUPONT)'), 'uncaughtException');
    expect(lines.join('')).toContain('the process keeps running');
    expect(lines.join('')).not.toContain('DUPONT');
  });

  it('resolves a job that ends normally with its value', async () => {
    await expect(runInJobScope('x', async () => 42)).resolves.toBe(42);
  });
});
