import { existsSync, readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from '../logger';

/** The part of a child process the supervisor watches. */
export interface WatchedProcess {
  readonly pid?: number;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  kill(signal?: NodeJS.Signals): boolean;
}

/** What the supervisor restarts: the embedded PostgreSQL started by `startEmbeddedPostgres`. */
export interface SupervisedPostgres {
  /** The running postmaster (undefined before the first start). */
  process(): WatchedProcess | undefined;
  /** Starts the postmaster again; resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Its data directory (holds postmaster.pid). */
  databaseDir: string;
}

export interface SupervisorOptions {
  /** Restart attempts allowed within `windowMs`; 0 never restarts. */
  maxRestarts: number;
  windowMs?: number;
  /** First delay before a restart, doubled at each attempt within the window, up to `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A restart that has not reported "ready" after this is killed and counts as failed. */
  startTimeoutMs?: number;
  logger?: Logger;
  /** Called once when the attempts are exhausted (the gateway then shuts down with exit code 1). */
  onGiveUp?: (reason: string) => void;
}

export type SupervisorState = 'running' | 'restarting' | 'failed' | 'stopped';

/**
 * Keeps the embedded PostgreSQL running: when its postmaster exits without being asked to (killed,
 * out of memory, crashed), starts it again after a growing delay (1 s, 2 s, 4 s… up to 30 s), at
 * most `maxRestarts` times within `windowMs` (a crash loop is not retried for ever). The pool
 * reconnects by itself; readiness answers 503 meanwhile. Once stopped (shutdown), never restarts.
 */
export class EmbeddedPostgresSupervisor {
  private stateValue: SupervisorState = 'running';
  private readonly attempts: number[] = [];
  private timer?: NodeJS.Timeout;
  private readonly windowMs: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly startTimeoutMs: number;

  constructor(
    private readonly target: SupervisedPostgres,
    private readonly opts: SupervisorOptions,
  ) {
    this.windowMs = opts.windowMs ?? 10 * 60_000;
    this.baseDelayMs = opts.baseDelayMs ?? 1000;
    this.maxDelayMs = opts.maxDelayMs ?? 30_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  }

  get state(): SupervisorState {
    return this.stateValue;
  }

  /** Starts watching the current postmaster. */
  watch(): void {
    const child = this.target.process();
    if (!child || this.stateValue === 'stopped') {
      return;
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      this.onExit(child.pid, child.exitCode, child.signalCode);
      return;
    }
    child.once('exit', (code, signal) => this.onExit(child.pid, code, signal));
  }

  /** Shutdown: no restart from now on (the caller then stops PostgreSQL itself). */
  stop(): void {
    this.stateValue = 'stopped';
    clearTimeout(this.timer);
  }

  private onExit(pid: number | undefined, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stateValue === 'stopped' || this.stateValue === 'failed') {
      return;
    }
    this.opts.logger?.error({ pid, code, signal }, 'embedded PostgreSQL exited unexpectedly');
    this.schedule();
  }

  private schedule(): void {
    const now = Date.now();
    while (this.attempts.length > 0 && now - this.attempts[0]! > this.windowMs) {
      this.attempts.shift();
    }
    if (this.attempts.length >= this.opts.maxRestarts) {
      this.giveUp();
      return;
    }
    this.stateValue = 'restarting';
    const delayMs = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** this.attempts.length);
    this.attempts.push(now + delayMs);
    const attempt = this.attempts.length;
    this.opts.logger?.warn(
      { attempt, maxRestarts: this.opts.maxRestarts, delayMs },
      'embedded PostgreSQL restart scheduled',
    );
    this.timer = setTimeout(() => void this.restart(attempt), delayMs);
  }

  private async restart(attempt: number): Promise<void> {
    if (this.stateValue !== 'restarting') {
      return;
    }
    clearStaleLock(this.target.databaseDir, this.opts.logger);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.target.restart(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`not ready after ${this.startTimeoutMs} ms`)), this.startTimeoutMs);
        }),
      ]);
    } catch (err) {
      clearTimeout(timer);
      if (this.stateValue !== 'restarting') {
        return; // stopped while starting: the shutdown stops it
      }
      this.target.process()?.kill('SIGKILL');
      this.opts.logger?.warn(
        { attempt, err: err instanceof Error ? err.message : 'exited during start' },
        'embedded PostgreSQL restart failed',
      );
      this.schedule();
      return;
    }
    clearTimeout(timer);
    if (this.stateValue !== 'restarting') {
      return; // stopped while starting: the shutdown stops it
    }
    this.stateValue = 'running';
    this.opts.logger?.warn({ attempt, pid: this.target.process()?.pid }, 'embedded PostgreSQL restarted');
    this.watch();
  }

  private giveUp(): void {
    this.stateValue = 'failed';
    const reason = `embedded PostgreSQL could not be kept running: ${this.opts.maxRestarts} restart(s) within ${Math.round(this.windowMs / 1000)} s (GW_EMBEDDED_PG_MAX_RESTARTS)`;
    this.opts.logger?.error({ maxRestarts: this.opts.maxRestarts }, reason);
    this.opts.onGiveUp?.(reason);
  }
}

/**
 * PostgreSQL removes a postmaster.pid whose process is gone, but refuses to start when the pid in it
 * now belongs to another process (pids are reused, often in containers): remove such a file.
 */
export function clearStaleLock(databaseDir: string, logger?: Logger): void {
  const file = resolve(databaseDir, 'postmaster.pid');
  if (!existsSync(file)) {
    return;
  }
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]?.trim());
  if (Number.isInteger(pid) && pid > 0 && isPostgres(pid)) {
    return;
  }
  logger?.warn({ pid }, 'removing the stale postmaster.pid of the embedded PostgreSQL');
  rmSync(file, { force: true });
}

/** Alive and (where /proc tells) a postgres process. */
function isPostgres(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    // gone, or another user's process (ours could be signalled): not our postmaster
    return false;
  }
  const comm = `/proc/${pid}/comm`;
  return !existsSync(comm) || readFileSync(comm, 'utf8').trim().startsWith('postgres');
}
