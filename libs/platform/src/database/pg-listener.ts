import { Client } from 'pg';
import type { Logger } from '../logger';

export interface PgListenerOptions {
  databaseUrl: string;
  /** The channel to LISTEN on (a trigger's NOTIFY). */
  channel: string;
  /** Names the connection (pg_stat_activity) and the log line when LISTEN is not possible yet. */
  name: string;
  /** What covers the gap while there is no LISTEN (for the log line), e.g. "polling". */
  meanwhile: string;
  logger?: Logger;
  onNotify(payload: string | undefined): void;
  /** LISTEN is (again) in place: a notification may have been missed while it was not. */
  onListening?(): void;
  /** The connection was lost; a reconnection is scheduled. */
  onLost?(): void;
  reconnectMs?: number;
}

/**
 * A LISTEN on a connection of its own that survives database restarts: on an error it reconnects
 * (one attempt at a time, every `reconnectMs`), and says so through `onLost` / `onListening` so
 * that its owner can cover the gap (a poll, an expiry). Nothing is reconnected after `stop()`.
 */
export class PgListener {
  private client?: Client;
  private reconnect?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly opts: PgListenerOptions) {}

  /** Whether LISTEN is in place now. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  /** Connects and LISTENs; on failure logs and retries later (never throws). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnect);
    this.reconnect = undefined;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.stopped) {
      return;
    }
    const client = new Client({ connectionString: this.opts.databaseUrl, application_name: this.opts.name });
    client.on('notification', (n) => this.opts.onNotify(n.payload || undefined));
    client.on('error', () => {
      if (this.client === client) {
        this.client = undefined;
        this.retry();
        this.opts.onLost?.();
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${client.escapeIdentifier(this.opts.channel)}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      this.opts.logger?.warn(
        { err: (err as Error).message },
        `${this.opts.name} cannot LISTEN yet; ${this.opts.meanwhile}`,
      );
      this.retry();
      return;
    }
    if (this.stopped) {
      // stop() ran while connecting: this connection must not outlive it.
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.opts.onListening?.();
  }

  private retry(): void {
    if (this.stopped || this.reconnect) {
      return;
    }
    this.reconnect = setTimeout(() => {
      this.reconnect = undefined;
      void this.connect().catch(() => undefined);
    }, this.opts.reconnectMs ?? 2000);
    this.reconnect.unref();
  }
}
