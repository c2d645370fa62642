import type { QueueService } from '../queue/queue.service';

/**
 * What a feature plugs into the composition root with. Its tables come from its migrations (a
 * static list per lib, applied before any feature is built, since building one may read them);
 * at run time it registers its job handlers in every process, and starts and stops its background
 * work (outbox relay, schedules) in the processes that run workers.
 */
export interface GatewayFeature {
  readonly name: string;
  /** Registers the feature's job handlers (every process: the catalogue is checked whole at boot). */
  register?(queue: QueueService): void;
  /** Starts its background work in a process that runs workers. */
  start?(queue: QueueService): Promise<void>;
  /** Stops it, before jobs in flight and queue connections are closed. */
  stop?(): Promise<void>;
  /** Closes what its jobs use (connections to relays, repositories), after the jobs in flight end. */
  close?(): Promise<void>;
}
