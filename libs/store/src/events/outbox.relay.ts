import type { Pool } from 'pg';
import { PgListener } from '@gw/platform';
import type { Logger } from '@gw/platform';
import { withTransaction } from '../repository/fhir.repository';

const BATCH = 500;
/** Safety poll while LISTEN works (a lost NOTIFY is picked up within this). */
const IDLE_POLL_MS = 30_000;

/** A domain event as the relay hands it on. */
export interface OutboxEvent {
  id: string;
  type: string;
}

/**
 * What the features do with events, inside the relay's transaction (before the events are marked
 * dispatched): typically enqueue a job whose id derives from the event id, so that handing the same
 * event over again after a crash is a no-op.
 */
export interface OutboxHandlers {
  /** Events newly published. */
  published(events: OutboxEvent[]): Promise<void>;
  /** Published events withdrawn since (e.g. a cancelled discharge). */
  withdrawn(events: OutboxEvent[]): Promise<void>;
}

/**
 * Transactional-outbox relay: domain events committed with the write that caused them are handed
 * to the features' handlers (which enqueue jobs), then marked dispatched. A crash in between hands
 * them over again, and the handlers' deterministic job ids make that a no-op. Woken by NOTIFY; polls every
 * `pollMs` only while it cannot LISTEN, and every 30 s as a safety net otherwise, so an idle
 * gateway costs nothing. Several replicas share the work with SKIP LOCKED.
 */
export class OutboxRelay {
  private readonly listener: PgListener;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  /** A NOTIFY arrived since the last pass began. */
  private notified = false;
  private stopped = false;

  constructor(
    private readonly pool: Pool,
    databaseUrl: string,
    private readonly handlers: OutboxHandlers,
    private readonly logger: Logger,
    private readonly pollMs = 1000,
  ) {
    // LISTEN on a connection of its own, reconnected after a database restart (polling covers the
    // gap). When it is back (or up), a NOTIFY may have been missed: a pass, then the slow safety poll.
    this.listener = new PgListener({
      databaseUrl,
      channel: 'gw_domain_event',
      name: 'outbox relay',
      meanwhile: 'polling',
      logger,
      onNotify: () => {
        this.notified = true;
        this.wake();
      },
      onListening: () => {
        this.wake();
        this.schedulePoll();
      },
      onLost: () => this.schedulePoll(),
    });
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.listener.start();
    this.schedulePoll();
    this.wake();
  }

  private retryTimer?: NodeJS.Timeout;

  /** One more pass after pollMs (after activity, or a failed pass). */
  private retrySoon(): void {
    if (this.stopped || this.retryTimer) {
      return;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.wake();
    }, this.pollMs);
    this.retryTimer.unref();
  }

  /** Next safety pass: soon while there is no LISTEN connection, rarely while there is. */
  private schedulePoll(): void {
    if (this.stopped) {
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.wake();
        this.schedulePoll();
      },
      this.listener.listening ? Math.max(this.pollMs, IDLE_POLL_MS) : this.pollMs,
    );
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.running;
    await this.listener.stop();
  }

  /** Drains now (coalesces concurrent wake-ups into one more pass). */
  wake(): void {
    if (this.stopped) {
      return;
    }
    if (this.running) {
      this.again = true;
      return;
    }
    const notified = this.notified;
    this.notified = false;
    this.running = this.drain()
      .then((handled) => {
        // After activity (work done, or a NOTIFY), look once more after pollMs: an event whose row
        // was still locked by a concurrent transaction when we looked (FOR UPDATE SKIP LOCKED) is
        // picked up then, not at the 30 s safety poll. A pass that finds nothing after no NOTIFY
        // ends it: an idle gateway runs no pass.
        if (handled > 0 || notified) {
          this.retrySoon();
        }
      })
      .catch((err: Error) => {
        // A failed pass (a deadlock, a database restarting) must not wait for the 30 s safety poll:
        // the events it left are handed over again within pollMs.
        this.logger.warn({ err: err.message }, 'outbox relay pass failed; retried shortly');
        this.retrySoon();
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  /** Passes until one finds nothing; returns how many events were handed over. */
  private async drain(): Promise<number> {
    let handled = 0;
    let found = 0;
    while (!this.stopped && (found = (await this.pass('published')) + (await this.pass('withdrawn'))) > 0) {
      handled += found;
    }
    return handled;
  }

  /** One batch: lock undispatched events, hand them on, mark them, commit. Returns the count. */
  private async pass(kind: 'published' | 'withdrawn'): Promise<number> {
    // The connection is held across the enqueue; withTransaction keeps a database restart in that
    // window from crashing the process.
    return withTransaction(this.pool, async (client) => {
      const res = await client.query<{ id: string; type: string }>(
        kind === 'published'
          ? `SELECT id::text, type FROM domain_event WHERE dispatched_at IS NULL ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED`
          : `SELECT id::text, type FROM domain_event WHERE status = 'withdrawn' AND withdraw_dispatched_at IS NULL AND dispatched_at IS NOT NULL
             ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED`,
      );
      if (res.rows.length > 0) {
        await (kind === 'published' ? this.handlers.published(res.rows) : this.handlers.withdrawn(res.rows));
      }
      if (res.rows.length === 0) {
        // No UPDATE when there is nothing: the statement-level NOTIFY trigger on domain_event fires
        // even for zero rows, and would wake this relay again, forever.
        return 0;
      }
      const column = kind === 'published' ? 'dispatched_at' : 'withdraw_dispatched_at';
      await client.query(`UPDATE domain_event SET ${column} = now() WHERE id = ANY($1::bigint[])`, [
        res.rows.map((r) => r.id),
      ]);
      return res.rows.length;
    });
  }
}
