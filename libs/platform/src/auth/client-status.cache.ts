import type { Logger } from '../logger';
import { PgListener } from '../database/pg-listener';
import type { ClientRegistry, ClientStatus } from './client.registry';

/** The channel the `client` table's trigger notifies on a change (payload: the client id). */
export const CLIENT_CHANGED_CHANNEL = 'gw_client_changed';
/** Longest time a cached status is trusted, even when a change notification was lost. */
export const CLIENT_STATUS_MAX_AGE_MS = 2000;

interface Entry {
  status: ClientStatus | undefined;
  loadedAt: number;
}

/**
 * The status of each client as requests need it (active, admin, organization, grants), so that
 * an access token, verified offline, stops working within seconds of its client being
 * deactivated, and a grant given or taken is live. One read per client per
 * {@link CLIENT_STATUS_MAX_AGE_MS} at most; a change made by any process (admin API, CLI, another
 * gateway) empties the entry at once through LISTEN, on a connection opened at the first lookup.
 */
export class ClientStatusCache {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<ClientStatus | undefined>>();
  /** Bumped by each invalidation: a read that started before one is not cached. */
  private generation = 0;
  private listener?: PgListener;

  constructor(
    private readonly registry: Pick<ClientRegistry, 'statusOf'>,
    private readonly opts: { databaseUrl?: string; maxAgeMs?: number; logger?: Logger; now?: () => number } = {},
  ) {}

  /** The client's current status (undefined: no such client). */
  async get(id: string): Promise<ClientStatus | undefined> {
    if (!this.listener && this.opts.databaseUrl) {
      // LISTEN on a connection of its own, reconnected after a database restart (the max age
      // covers the gap); a change may have been missed while not listening.
      this.listener = new PgListener({
        databaseUrl: this.opts.databaseUrl,
        channel: CLIENT_CHANGED_CHANNEL,
        name: 'gateway-client-status',
        meanwhile: `statuses expire after ${this.opts.maxAgeMs ?? CLIENT_STATUS_MAX_AGE_MS} ms`,
        logger: this.opts.logger,
        onNotify: (id) => this.invalidate(id),
        onListening: () => this.invalidate(),
      });
      void this.listener.start();
    }
    const entry = this.entries.get(id);
    if (entry && this.now() - entry.loadedAt < (this.opts.maxAgeMs ?? CLIENT_STATUS_MAX_AGE_MS)) {
      return entry.status;
    }
    const inFlight = this.loading.get(id);
    if (inFlight) {
      return inFlight;
    }
    const pending: Promise<ClientStatus | undefined> = this.load(id).finally(() => {
      if (this.loading.get(id) === pending) {
        this.loading.delete(id);
      }
    });
    this.loading.set(id, pending);
    return pending;
  }

  /** Forgets a client's status (or every client's): the next request reads it again. */
  invalidate(id?: string): void {
    this.generation++;
    if (id === undefined) {
      this.entries.clear();
      this.loading.clear();
    } else {
      this.entries.delete(id);
      this.loading.delete(id);
    }
  }

  async close(): Promise<void> {
    await this.listener?.stop();
  }

  /**
   * Reads the registry. When it cannot be read (the database is down) and the client's last known
   * status was not invalidated since, that status stands: nothing can change a client while its
   * database is unreachable, and every data access needs that database anyway, so a request gets
   * the answer its feature gives to an outage (an HL7 `AR`, a 503) rather than an authentication
   * error. A client never seen, or invalidated, gets the error.
   */
  private async load(id: string): Promise<ClientStatus | undefined> {
    const generation = this.generation;
    let status: ClientStatus | undefined;
    try {
      status = await this.registry.statusOf(id);
    } catch (err) {
      const last = this.entries.get(id);
      if (last && generation === this.generation) {
        return last.status;
      }
      throw err;
    }
    if (generation === this.generation) {
      this.entries.set(id, { status, loadedAt: this.now() });
    }
    return status;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}
