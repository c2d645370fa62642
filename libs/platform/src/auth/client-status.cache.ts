import { Client } from 'pg';
import type { Logger } from '../logger';
import type { ClientRegistry, ClientStatus } from './client.registry';

/** The channel the `client` table's trigger notifies on a change (payload: the client id). */
export const CLIENT_CHANGED_CHANNEL = 'gw_client_changed';
/** Longest time a cached status is trusted, even when a change notification was lost. */
export const CLIENT_STATUS_MAX_AGE_MS = 2000;
const RELISTEN_MS = 2000;

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
  private listener?: Client;
  private listening = false;
  private stopped = false;
  private reconnect?: NodeJS.Timeout;

  constructor(
    private readonly registry: Pick<ClientRegistry, 'statusOf'>,
    private readonly opts: { databaseUrl?: string; maxAgeMs?: number; logger?: Logger; now?: () => number } = {},
  ) {}

  /** The client's current status (undefined: no such client). */
  async get(id: string): Promise<ClientStatus | undefined> {
    if (!this.listening && this.opts.databaseUrl) {
      this.listening = true;
      void this.listen();
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
    this.stopped = true;
    clearTimeout(this.reconnect);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  private async load(id: string): Promise<ClientStatus | undefined> {
    const generation = this.generation;
    const status = await this.registry.statusOf(id);
    if (generation === this.generation) {
      this.entries.set(id, { status, loadedAt: this.now() });
    }
    return status;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** LISTEN on a connection of its own; reconnects after a database restart (the max age covers the gap). */
  private async listen(): Promise<void> {
    if (this.stopped) {
      return;
    }
    const client = new Client({ connectionString: this.opts.databaseUrl, application_name: 'gateway-client-status' });
    client.on('notification', (n) => this.invalidate(n.payload || undefined));
    client.on('error', () => {
      if (this.listener === client) {
        this.listener = undefined;
        this.relisten();
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CLIENT_CHANGED_CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      this.opts.logger?.warn(
        { err: (err as Error).message },
        'client status cannot LISTEN yet; statuses expire after 2 s',
      );
      this.relisten();
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
    // A change may have been missed while not listening.
    this.invalidate();
  }

  private relisten(): void {
    if (this.stopped || this.reconnect) {
      return;
    }
    this.reconnect = setTimeout(() => {
      this.reconnect = undefined;
      void this.listen().catch(() => undefined);
    }, RELISTEN_MS);
    this.reconnect.unref();
  }
}
