import { Queue, UnrecoverableError, Worker, createPostgresBackend } from 'bullmq';
import type { JobsOptions, Job } from 'bullmq';
import IORedis from 'ioredis';
import type { GatewayConfig } from '../config';
import type { Logger } from '../logger';
import { runInJobScope } from '../process/crash-guard';

/**
 * The typed job catalogue: every job name with its payload. Payloads carry ids, tenant and
 * trace ids only — never patient data.
 */
export interface JobCatalogue {
  /** Deletes access-audit rows past retention and expired client-assertion ids. */
  'housekeeping.purge-audit': { retentionDays: number; traceId?: string };
  /** Routes one `encounter.discharged` domain event (Task, Communications, deliveries). */
  'exchange.route-discharge': { eventId: string; traceId?: string };
  /** Withdraws what a discharge event produced (A13 cancel). */
  'exchange.withdraw-discharge': { eventId: string; traceId?: string };
  /** Sends one MSSanté message (one exchange_delivery row). */
  'exchange.mss-send': { deliveryId: string; traceId?: string };
  /** Publishes one document to the shared record (one exchange_delivery row). */
  'exchange.mhd-publish': { deliveryId: string; traceId?: string };
  /** Evaluates the indicator catalogue for every structure and CPTS and stores the MeasureReports (12 months to periodEnd, default: end of last month). */
  'indicators.monthly-run': { periodEnd?: string; traceId?: string };
  /** Runs one FHIR Bulk Data export (one bulk_export row): writes its NDJSON files under GW_DATA_DIR. */
  'bulk.export': { exportId: string; traceId?: string };
  /** Deletes expired exports and their files; re-enqueues exports left queued by a crash after kick-off. */
  'bulk.sweep': { traceId?: string };
  /** Imports (or goes on importing) one portability archive (one intake_import row). */
  'intake.import-archive': { importId: string; traceId?: string };
}

export type JobName = keyof JobCatalogue;

/** Which queue each job runs on (one env var selects the queues a worker process consumes). */
export const JOB_QUEUE: Record<JobName, string> = {
  'housekeeping.purge-audit': 'housekeeping',
  'exchange.route-discharge': 'exchange-route',
  'exchange.withdraw-discharge': 'exchange-route',
  // One queue per channel: a dead relay fills its own queue's retries, not the other channel's.
  'exchange.mss-send': 'exchange-mss',
  'exchange.mhd-publish': 'exchange-mhd',
  'indicators.monthly-run': 'indicators',
  // Exports are long and heavy: their own queue, so they never hold up routing or deliveries.
  'bulk.export': 'bulk-export',
  'bulk.sweep': 'bulk-export',
  // Long imports on their own queue: they never hold up routing, deliveries or exports.
  'intake.import-archive': 'intake-import',
};

export const QUEUE_NAMES = [...new Set(Object.values(JOB_QUEUE))];

/** How one queue's workers run and how its jobs are retried. */
export interface QueueSettings {
  /** Handlers in flight per process. */
  concurrency: number;
  /** Attempts and backoff of the queue's jobs (BullMQ options; retention is common to all). */
  retry: Pick<JobsOptions, 'attempts' | 'backoff'>;
}

type QueueConfig = Pick<
  GatewayConfig,
  'GW_EXCHANGE_CONCURRENCY' | 'GW_EXCHANGE_ATTEMPTS' | 'GW_EXCHANGE_BACKOFF_MS' | 'GW_BULK_CONCURRENCY'
>;

/**
 * The catalogue's other half: per queue, its concurrency and retry policy, from the configuration.
 * Every enqueue of a job gets its queue's retry policy; every worker its queue's concurrency.
 */
export function queueSettings(config: QueueConfig): Record<string, QueueSettings> {
  const exchange: QueueSettings = {
    concurrency: config.GW_EXCHANGE_CONCURRENCY,
    retry: {
      attempts: config.GW_EXCHANGE_ATTEMPTS,
      backoff: { type: 'exponential', delay: config.GW_EXCHANGE_BACKOFF_MS, jitter: 0.5 },
    },
  };
  return {
    housekeeping: { concurrency: 1, retry: DEFAULT_RETRY },
    'exchange-route': exchange,
    'exchange-mss': exchange,
    'exchange-mhd': exchange,
    indicators: { concurrency: 1, retry: DEFAULT_RETRY },
    // Exports are long and each holds a database connection while it runs.
    'bulk-export': {
      concurrency: config.GW_BULK_CONCURRENCY,
      retry: { attempts: 3, backoff: { type: 'exponential', delay: 5000 } },
    },
    // One import at a time per process (it runs its own patients side by side); a retry resumes it.
    'intake-import': { concurrency: 1, retry: { attempts: 5, backoff: { type: 'exponential', delay: 10_000 } } },
  };
}

export interface JobResult {
  status: 'success' | 'skipped';
  detail?: Record<string, string | number>;
}

export interface JobContext {
  jobId: string;
  attempt: number;
  /** Attempts allowed for this job: on the last one a handler records the dead letter before throwing. */
  maxAttempts: number;
  logger: Logger;
}

export type JobHandler<N extends JobName> = (payload: JobCatalogue[N], ctx: JobContext) => Promise<JobResult>;

export { UnrecoverableError };

const DEFAULT_RETRY: QueueSettings['retry'] = {
  attempts: 6,
  backoff: { type: 'exponential', delay: 2000, jitter: 0.5 },
};

const DEFAULT_JOB_OPTIONS: JobsOptions = {
  ...DEFAULT_RETRY,
  removeOnComplete: { age: 7 * 24 * 3600, count: 10_000 },
  // Exhausted jobs stay in the failed set: that is the dead-letter list an operator replays.
  removeOnFail: false,
};

export interface QueueBackendOptions {
  /** PostgreSQL connection string (default backend, schema `bullmq`). */
  databaseUrl: string;
  /** Redis URL: when set, BullMQ runs on Redis instead. */
  redisUrl?: string;
  /** Job lock duration and stalled-job check interval (default 30 s, BullMQ's). */
  lockMs?: number;
  /** Concurrency and retry policy per queue ({@link queueSettings}); unset: 4 handlers, default retries. */
  settings?: Record<string, QueueSettings>;
  logger: Logger;
}

/**
 * A job whose worker died mid-run goes back to the queue when its lock expires; one that stalls
 * more often than this (a job that kills its worker) fails instead of looping.
 */
const MAX_STALLED = 2;

type AnyQueue = Queue<unknown, unknown, string>;
type AnyWorker = Worker<unknown, JobResult, string>;

/**
 * BullMQ behind one small service: PostgreSQL backend on the gateway's database by default,
 * Redis when configured. Startup fails if a catalogued job has no handler or two.
 */
export class QueueService {
  private readonly queues = new Map<string, AnyQueue>();
  private readonly workers: AnyWorker[] = [];
  private readonly handlers = new Map<JobName, JobHandler<JobName>>();
  private redis?: IORedis;

  constructor(private readonly opts: QueueBackendOptions) {}

  get backend(): 'postgres' | 'redis' {
    return this.opts.redisUrl ? 'redis' : 'postgres';
  }

  register<N extends JobName>(name: N, handler: JobHandler<N>): void {
    if (this.handlers.has(name)) {
      throw new Error(`Job ${name} has two handlers`);
    }
    this.handlers.set(name, handler as unknown as JobHandler<JobName>);
  }

  /** Throws unless every job of the catalogue (or of the given queues) has a handler. */
  verifyHandlers(queues: string[] = QUEUE_NAMES): void {
    const missing = (Object.keys(JOB_QUEUE) as JobName[]).filter(
      (n) => queues.includes(JOB_QUEUE[n]) && !this.handlers.has(n),
    );
    if (missing.length > 0) {
      throw new Error(`No handler for job(s): ${missing.join(', ')}`);
    }
  }

  queue(name: string): AnyQueue {
    let q = this.queues.get(name);
    if (!q) {
      const defaultJobOptions = { ...DEFAULT_JOB_OPTIONS, ...this.opts.settings?.[name]?.retry };
      q = this.build((opts, factory) => new Queue(name, { ...opts, defaultJobOptions }, factory));
      // A Queue re-emits its backend's errors (database or Redis restarting); an 'error' event
      // with no listener would crash the process instead of letting the connection recover.
      q.on('error', (err) => this.opts.logger.warn({ queue: name, err: err.message }, 'queue connection error'));
      this.queues.set(name, q);
    }
    return q;
  }

  /** Enqueues a job; `jobId` must derive from natural keys so a redelivery is a no-op. */
  async enqueue<N extends JobName>(
    name: N,
    payload: JobCatalogue[N],
    jobId: string,
    opts?: JobsOptions,
  ): Promise<void> {
    await this.queue(JOB_QUEUE[name]).add(name, payload, { ...opts, jobId });
  }

  /** Enqueues several jobs of one queue in one round trip (outbox relay). */
  async enqueueMany<N extends JobName>(
    name: N,
    jobs: { payload: JobCatalogue[N]; jobId: string }[],
    opts?: JobsOptions,
  ): Promise<void> {
    if (jobs.length > 0) {
      await this.queue(JOB_QUEUE[name]).addBulk(
        jobs.map((j) => ({ name, data: j.payload, opts: { ...opts, jobId: j.jobId } })),
      );
    }
  }

  /** Starts workers for the selected queues (`*` = all), each with its queue's concurrency (default 4). */
  startWorkers(selection: string): string[] {
    const names =
      selection.trim() === '*'
        ? QUEUE_NAMES
        : selection
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean);
    this.verifyHandlers(names.filter((n) => QUEUE_NAMES.includes(n)));
    for (const name of names) {
      if (!QUEUE_NAMES.includes(name)) {
        throw new Error(`Unknown queue in GW_WORKER_QUEUES: ${name}`);
      }
      const worker = this.build(
        (opts, factory) =>
          new Worker<unknown, JobResult, string>(
            name,
            (job: Job) => this.process(job),
            {
              ...opts,
              concurrency: this.opts.settings?.[name]?.concurrency ?? 4,
              lockDuration: this.opts.lockMs ?? 30_000,
              stalledInterval: this.opts.lockMs ?? 30_000,
              maxStalledCount: MAX_STALLED,
            },
            factory,
          ),
      );
      worker.on('failed', (job, err) =>
        this.opts.logger.warn(
          { queue: name, job: job?.name, jobId: job?.id, attempt: job?.attemptsMade, err: err.message },
          'job failed',
        ),
      );
      worker.on('error', (err) => this.opts.logger.error({ queue: name, err: err.message }, 'worker error'));
      this.workers.push(worker);
    }
    return names;
  }

  private async process(job: Job): Promise<JobResult> {
    const handler = this.handlers.get(job.name as JobName);
    if (!handler) {
      throw new UnrecoverableError(`No handler for job ${job.name}`);
    }
    const logger = this.opts.logger.child({ job: job.name, jobId: job.id });
    const result = await runInJobScope(job.name, () =>
      handler(job.data as never, {
        jobId: String(job.id),
        attempt: job.attemptsMade + 1,
        maxAttempts: job.opts.attempts ?? 1,
        logger,
      }),
    );
    logger.info({ status: result.status, ...result.detail }, 'job done');
    return result;
  }

  async counts(): Promise<Record<string, Record<string, number>>> {
    const out: Record<string, Record<string, number>> = {};
    for (const name of QUEUE_NAMES) {
      out[name] = await this.queue(name).getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
    }
    return out;
  }

  /** The dead-letter list: jobs that exhausted their attempts. */
  async failed(queueName: string, start = 0, end = 99): Promise<Job[]> {
    return this.queue(queueName).getFailed(start, end);
  }

  async retry(queueName: string, jobId: string): Promise<boolean> {
    const job = await this.queue(queueName).getJob(jobId);
    if (!job || !(await job.isFailed())) {
      return false;
    }
    await job.retry('failed');
    return true;
  }

  /** Stops taking jobs; resolves when the jobs in flight have finished (they keep their lock until then). */
  async closeWorkers(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
    this.workers.length = 0;
  }

  /** Workers first, then queues, then the connection (in-flight jobs finish). */
  async close(): Promise<void> {
    await this.closeWorkers();
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
    if (this.redis) {
      // QUIT is queued, not failed, while ioredis reconnects to a Redis that is gone: disconnect instead.
      if (this.redis.status === 'ready') {
        await this.redis.quit().catch(() => undefined);
      } else {
        this.redis.disconnect();
      }
    }
  }

  /** Stops the workers without waiting for their jobs (those return to the queue when their lock expires). */
  abandonWorkers(): void {
    for (const w of this.workers) {
      void w.close(true).catch(() => undefined);
    }
    this.workers.length = 0;
  }

  /** Drops the Redis connection at once (shutdown deadline passed). */
  abandon(): void {
    this.redis?.disconnect();
  }

  private build<T>(make: (opts: { connection: never }, factory?: never) => T): T {
    if (this.opts.redisUrl) {
      this.redis ??= new IORedis(this.opts.redisUrl, { maxRetriesPerRequest: null });
      return make({ connection: this.redis as never });
    }
    return make(
      { connection: { connectionString: this.opts.databaseUrl, schema: 'bullmq', max: 4, migrate: true } as never },
      createPostgresBackend as never,
    );
  }
}
