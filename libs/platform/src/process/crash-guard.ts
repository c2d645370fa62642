import { AsyncLocalStorage } from 'node:async_hooks';
import { types } from 'node:util';
import type { Logger } from '../logger';

interface JobScope {
  job: string;
  fail(err: Error): void;
}

const jobScope = new AsyncLocalStorage<JobScope>();

/**
 * Runs a job handler so that an error escaping it outside its promise chain (an 'error' event
 * nobody listens to, a throw in a timer it set) fails this job instead of the process: the crash
 * guard finds the job through the async context the error was raised in.
 */
export function runInJobScope<T>(job: string, fn: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    jobScope.run({ job, fail: reject }, () => {
      fn().then(resolve, reject);
    });
  });
}

/**
 * Where an uncaught error goes: the job it was raised in fails (its promise rejects, BullMQ retries
 * it or marks it failed); outside a job it is logged and the process keeps serving. Requests are
 * already bounded by the HTTP layer (a throw becomes an OperationOutcome); state lives in the
 * database, so no in-memory invariant is worth dying for. Only the error's name, code and stack
 * frames are logged: a message may quote request data (a database error echoes the values).
 */
export class CrashGuard {
  constructor(private readonly logger: Logger) {}

  handle(reason: unknown, origin: string): void {
    const err = types.isNativeError(reason) ? reason : new Error(String(reason));
    const scope = jobScope.getStore();
    const fields = { origin, err: describe(err) };
    if (scope) {
      this.logger.error({ ...fields, job: scope.job }, 'uncaught error failed its job');
      scope.fail(err);
      return;
    }
    this.logger.error(fields, 'uncaught error (the process keeps running)');
  }

  /** Installs the process-wide handlers; returns their removal. */
  install(): () => void {
    const onException = (err: Error, origin: string): void => this.handle(err, origin);
    const onRejection = (reason: unknown): void => this.handle(reason, 'unhandledRejection');
    process.on('uncaughtException', onException);
    process.on('unhandledRejection', onRejection);
    return () => {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
    };
  }
}

function describe(err: Error): Record<string, unknown> {
  const frames = (err.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l));
  return { name: err.name, code: (err as NodeJS.ErrnoException).code, stack: frames.slice(0, 10).join('\n') };
}
