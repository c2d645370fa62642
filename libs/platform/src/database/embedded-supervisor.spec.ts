import { EventEmitter } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedPostgresSupervisor, clearStaleLock } from './embedded-supervisor';
import type { WatchedProcess } from './embedded-supervisor';
import { tempDir } from '../../../../test/support/temp-dir';

class FakeChild extends EventEmitter implements WatchedProcess {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  constructor(readonly pid: number) {
    super();
  }
  die(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.signalCode = signal;
    this.emit('exit', null, signal);
  }
  kill(): boolean {
    return true;
  }
}

/** A postmaster whose restarts succeed or fail as told. */
function fakePostgres(results: boolean[]) {
  let child = new FakeChild(100);
  let restarts = 0;
  return {
    get child() {
      return child;
    },
    get restarts() {
      return restarts;
    },
    target: {
      databaseDir: tempDir('gw-sup-'),
      process: () => child,
      restart: async () => {
        restarts++;
        child = new FakeChild(100 + restarts);
        if (results.shift() === false) {
          child.exitCode = 1;
          throw new Error('exited during start');
        }
      },
    },
  };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('EmbeddedPostgresSupervisor', () => {
  it('restarts a postmaster that died, and watches the new one', async () => {
    const pg = fakePostgres([true, true]);
    const sup = new EmbeddedPostgresSupervisor(pg.target, { maxRestarts: 5, baseDelayMs: 5 });
    sup.watch();
    pg.child.die();
    expect(sup.state).toBe('restarting');
    await wait(50);
    expect(sup.state).toBe('running');
    expect(pg.restarts).toBe(1);
    pg.child.die();
    await wait(80);
    expect(pg.restarts).toBe(2);
    expect(sup.state).toBe('running');
  });

  it('retries a failed restart with a growing delay, then gives up once the attempts are spent', async () => {
    const pg = fakePostgres([false, false, false, false]);
    const reasons: string[] = [];
    const sup = new EmbeddedPostgresSupervisor(pg.target, {
      maxRestarts: 3,
      baseDelayMs: 5,
      onGiveUp: (r) => reasons.push(r),
    });
    sup.watch();
    pg.child.die();
    await wait(200);
    expect(pg.restarts).toBe(3);
    expect(sup.state).toBe('failed');
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/GW_EMBEDDED_PG_MAX_RESTARTS/);
  });

  it('never restarts once stopped (shutdown), nor with 0 restarts allowed', async () => {
    const pg = fakePostgres([true]);
    const sup = new EmbeddedPostgresSupervisor(pg.target, { maxRestarts: 5, baseDelayMs: 5 });
    sup.watch();
    sup.stop();
    pg.child.die('SIGINT');
    await wait(30);
    expect(pg.restarts).toBe(0);

    const pg0 = fakePostgres([true]);
    const given: string[] = [];
    const none = new EmbeddedPostgresSupervisor(pg0.target, { maxRestarts: 0, onGiveUp: (r) => given.push(r) });
    none.watch();
    pg0.child.die();
    await wait(10);
    expect(pg0.restarts).toBe(0);
    expect(none.state).toBe('failed');
    expect(given).toHaveLength(1);
  });

  it('removes a postmaster.pid naming a process that is gone', () => {
    const dir = tempDir('gw-sup-lock-');
    writeFileSync(join(dir, 'postmaster.pid'), '999999999\n/data\n');
    clearStaleLock(dir);
    expect(existsSync(join(dir, 'postmaster.pid'))).toBe(false);
    writeFileSync(join(dir, 'postmaster.pid'), `${process.pid}\n/data\n`);
    clearStaleLock(dir);
    // a live process that is not postgres (this test runner) holds the pid: stale too
    expect(existsSync(join(dir, 'postmaster.pid'))).toBe(false);
  });
});
