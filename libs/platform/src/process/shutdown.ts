import type { DatabaseHandle } from '../database/database';
import type { Logger } from '../logger';
import type { GatewayFeature } from './feature';
import type { QueueService } from '../queue/queue.service';

/** One step of a process's shutdown, run in order. */
export interface ShutdownStep {
  /** Said in the logs (what was closed, or abandoned). */
  name: string;
  close(): Promise<unknown>;
  /**
   * Synchronous last resort when the step did not finish before the deadline (e.g. ask the
   * embedded PostgreSQL to stop on its own instead of leaving it behind).
   */
  abandon?(): void;
}

export interface ShutdownOptions {
  /** After this, whatever has not closed is abandoned and the process exits 1. */
  timeoutMs: number;
  logger: Logger;
  /** process.exit, replaceable in unit tests. */
  exit?: (code: number) => void;
}

type StepState = 'pending' | 'running' | 'done' | 'failed';

/**
 * One shutdown path for the gateway and the worker: graceful steps in order (stop accepting,
 * in-flight work, relay, queues, database), bounded by a deadline. A database or Redis that is
 * gone can make a close wait forever (ioredis reconnecting, a blocking call never answered); the
 * deadline turns that into an exit with code 1 and a log line naming the steps abandoned. A
 * second signal exits at once, the same way.
 */
export class GracefulShutdown {
  private readonly state = new Map<string, StepState>();
  private started = false;
  private finished = false;

  constructor(
    private readonly steps: ShutdownStep[],
    private readonly opts: ShutdownOptions,
  ) {
    for (const s of steps) {
      this.state.set(s.name, 'pending');
    }
  }

  /** Runs the shutdown on SIGTERM or SIGINT; a second one ends the process now. */
  install(signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): void {
    for (const signal of signals) {
      process.on(signal, () => {
        if (this.started) {
          this.abandon(`second ${signal}`);
        } else {
          // A connection torn down while its server is gone can emit an 'error' nobody listens to
          // any more (BullMQ's LISTEN client drops its listeners before end()); once stopping, that
          // must not crash the process before it says what it closed: the deadline still applies.
          process.on('uncaughtException', (err) =>
            this.opts.logger.warn({ err: err.message }, 'error while shutting down (ignored)'),
          );
          void this.run(signal);
        }
      });
    }
  }

  /**
   * Closes every step in order within the deadline, then exits (0 when all closed cleanly, or
   * `exitCode` when the shutdown itself answers a failure, e.g. the embedded database lost).
   */
  async run(reason: string, exitCode = 0): Promise<void> {
    if (this.started) {
      return;
    }
    this.started = true;
    const { logger, timeoutMs } = this.opts;
    logger.info({ reason, timeoutMs }, 'shutting down');
    const timer = setTimeout(() => this.abandon(`deadline of ${timeoutMs} ms`), timeoutMs);
    for (const step of this.steps) {
      if (this.finished) {
        return;
      }
      this.state.set(step.name, 'running');
      try {
        await step.close();
        this.state.set(step.name, 'done');
      } catch (err) {
        this.state.set(step.name, 'failed');
        logger.warn({ step: step.name, err: (err as Error).message }, 'shutdown step failed');
      }
    }
    if (this.finished) {
      return;
    }
    clearTimeout(timer);
    const failed = this.names('failed');
    if (failed.length > 0) {
      this.end(1, { failed }, 'stopped with errors');
    } else {
      this.end(exitCode, {}, 'stopped');
    }
  }

  private abandon(why: string): void {
    if (this.finished) {
      return;
    }
    const abandoned = [...this.names('running'), ...this.names('pending')];
    for (const step of this.steps) {
      if (abandoned.includes(step.name)) {
        try {
          step.abandon?.();
        } catch {
          // best effort: the process is leaving anyway
        }
      }
    }
    this.end(
      1,
      { why, abandoned, failed: this.names('failed') },
      `shutdown not graceful: abandoned ${abandoned.join(', ') || 'nothing'}`,
      'error',
    );
  }

  private end(
    code: number,
    fields: Record<string, unknown>,
    msg: string,
    level: 'info' | 'warn' | 'error' = code === 0 ? 'info' : 'warn',
  ): void {
    this.finished = true;
    this.opts.logger[level]({ ...fields, closed: this.names('done'), exitCode: code }, msg);
    (this.opts.exit ?? ((c: number) => process.exit(c)))(code);
  }

  private names(s: StepState): string[] {
    return this.steps.filter((step) => this.state.get(step.name) === s).map((step) => step.name);
  }
}

/**
 * The closing order of what a gateway or worker process holds after its listeners: the features'
 * background work (the outbox relay: no new jobs), jobs in flight, queue connections, the audit
 * buffer, the database.
 */
/**
 * Runs shutdown steps in order inside the process, without exiting it (tests, the CLI): a step
 * that has not finished after `stepMs` is abandoned (its `abandon`, if any) and named in the log,
 * so that closing never hangs on a job or a connection that will not end.
 */
export async function closeSteps(steps: ShutdownStep[], logger: Logger, stepMs = 10_000): Promise<void> {
  for (const step of steps) {
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      step.close().then(
        () => true,
        (err: Error) => {
          logger.warn({ step: step.name, err: err.message }, 'close step failed');
          return true;
        },
      ),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), stepMs);
      }),
    ]);
    clearTimeout(timer);
    if (!finished) {
      logger.warn({ step: step.name, afterMs: stepMs }, 'close step did not finish: abandoned');
      try {
        step.abandon?.();
      } catch {
        // best effort
      }
    }
  }
}

export function processShutdownSteps(parts: {
  /** Every feature of the process (their connections are closed after the jobs in flight). */
  features: GatewayFeature[];
  /** Those whose background work was started (stopped first). */
  started: GatewayFeature[];
  queue: QueueService;
  audit: { flush(): Promise<void> };
  db: DatabaseHandle;
}): ShutdownStep[] {
  const { features, started, queue, audit, db } = parts;
  return [
    // Events not yet handed over stay in domain_event for the next start.
    ...started
      .filter((f) => f.stop)
      .map((f) => ({ name: f.name === 'exchange' ? 'outbox relay' : f.name, close: () => f.stop!() })),
    // A job abandoned here returns to its queue when its lock expires (GW_QUEUE_LOCK_MS).
    { name: 'jobs in flight', close: () => queue.closeWorkers(), abandon: () => queue.abandonWorkers() },
    ...features.filter((f) => f.close).map((f) => ({ name: `${f.name} connections`, close: () => f.close!() })),
    { name: 'queue connections', close: () => queue.close(), abandon: () => queue.abandon() },
    { name: 'audit log buffer', close: () => audit.flush() },
    { name: 'database', close: () => db.close(), abandon: () => db.abandon() },
  ];
}
