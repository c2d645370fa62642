import type { Pool } from 'pg';

/** Where a message stands (mailbox_message.state); see mailbox.schema.ts for the machine. */
export type MessageState = 'received' | 'ingested' | 'quarantined' | 'done' | 'gone';
export type MessageOutcome = 'created' | 'review' | 'rejected' | 'quarantined' | 'mdn' | 'ignored';

export interface MailboxMessage {
  uidValidity: string;
  uid: number;
  messageId: string | null;
  state: MessageState;
  outcome: MessageOutcome | null;
  reason: string | null;
  documents: number;
  resources: string[];
  attempts: number;
  lastError: string | null;
  mdnTo: string | null;
  mdnSentAt: string | null;
}

interface Row {
  uid_validity: string;
  uid: string;
  message_id: string | null;
  state: MessageState;
  outcome: MessageOutcome | null;
  reason: string | null;
  documents: number;
  resources: string[];
  attempts: number;
  last_error: string | null;
  mdn_to: string | null;
  mdn_sent_at: Date | null;
}

const COLUMNS = `uid_validity, uid, message_id, state, outcome, reason, documents, resources, attempts, last_error,
  mdn_to, mdn_sent_at`;

function toMessage(r: Row): MailboxMessage {
  return {
    uidValidity: r.uid_validity,
    uid: Number(r.uid),
    messageId: r.message_id,
    state: r.state,
    outcome: r.outcome,
    reason: r.reason,
    documents: r.documents,
    resources: r.resources,
    attempts: r.attempts,
    lastError: r.last_error,
    mdnTo: r.mdn_to,
    mdnSentAt: r.mdn_sent_at?.toISOString() ?? null,
  };
}

/** Errors and reasons are stored short: they name elements and causes, never the message's content. */
function clip(text: string): string {
  return text.length > 1000 ? `${text.slice(0, 997)}...` : text;
}

/**
 * The ledger of inbound mailboxes (mailbox_state, mailbox_message): the poller's lease and each
 * message's state, keyed by (mailbox, UIDVALIDITY, UID). Every transition is one statement that
 * checks the state it leaves, so a step replayed after a crash changes nothing twice.
 */
export class MailboxStore {
  constructor(private readonly pool: Pool) {}

  /**
   * Takes or renews the lease on a mailbox for `holder`; false while another process holds an
   * unexpired one (it polls; this one waits).
   */
  async lease(mailbox: string, holder: string, ttlMs: number): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `INSERT INTO mailbox_state (mailbox, holder, lease_until) VALUES ($1, $2, now() + make_interval(secs => $3))
       ON CONFLICT (mailbox) DO UPDATE SET holder = $2, lease_until = now() + make_interval(secs => $3), updated_at = now()
       WHERE mailbox_state.holder = $2 OR mailbox_state.holder IS NULL OR mailbox_state.lease_until < now()`,
      [mailbox, holder, ttlMs / 1000],
    );
    return rowCount === 1;
  }

  /** Gives the lease up (a clean stop: another process may take over at once). */
  async release(mailbox: string, holder: string): Promise<void> {
    await this.pool.query(
      'UPDATE mailbox_state SET holder = NULL, lease_until = NULL, updated_at = now() WHERE mailbox = $1 AND holder = $2',
      [mailbox, holder],
    );
  }

  /** Records a poll: the folder's UIDVALIDITY, and the error that ended it (null: none). */
  async polled(mailbox: string, uidValidity: string | null, error: string | null): Promise<void> {
    await this.pool.query(
      `UPDATE mailbox_state SET last_poll_at = now(), uid_validity = COALESCE($2, uid_validity), last_error = $3,
         updated_at = now() WHERE mailbox = $1`,
      [mailbox, uidValidity, error === null ? null : clip(error)],
    );
  }

  /**
   * The lowest UID that may still need work: the first open message, else one past the last seen
   * (1 for a new UIDVALIDITY).
   */
  async floor(mailbox: string, uidValidity: string): Promise<number> {
    const { rows } = await this.pool.query<{ floor: string }>(
      `SELECT COALESCE(MIN(uid) FILTER (WHERE state NOT IN ('done', 'gone')), MAX(uid) + 1, 1) AS floor
         FROM mailbox_message WHERE mailbox = $1 AND uid_validity = $2`,
      [mailbox, uidValidity],
    );
    return Number(rows[0]?.floor ?? 1);
  }

  /** Messages of this UIDVALIDITY from `floor` on, by UID. */
  async from(mailbox: string, uidValidity: string, floor: number): Promise<Map<number, MailboxMessage>> {
    const { rows } = await this.pool.query<Row>(
      `SELECT ${COLUMNS} FROM mailbox_message WHERE mailbox = $1 AND uid_validity = $2 AND uid >= $3`,
      [mailbox, uidValidity, floor],
    );
    return new Map(rows.map((r) => [Number(r.uid), toMessage(r)]));
  }

  async get(mailbox: string, uidValidity: string, uid: number): Promise<MailboxMessage | undefined> {
    const { rows } = await this.pool.query<Row>(
      `SELECT ${COLUMNS} FROM mailbox_message WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3`,
      [mailbox, uidValidity, uid],
    );
    return rows[0] ? toMessage(rows[0]) : undefined;
  }

  /**
   * A message finished under an earlier UIDVALIDITY (the folder was rebuilt) with this Message-ID:
   * its UID then, so that the new copy is not imported again.
   */
  async finishedElsewhere(mailbox: string, uidValidity: string, messageId: string): Promise<number | undefined> {
    const { rows } = await this.pool.query<{ uid: string }>(
      `SELECT uid FROM mailbox_message WHERE mailbox = $1 AND message_id = $2 AND uid_validity <> $3
         AND state = 'done' LIMIT 1`,
      [mailbox, messageId, uidValidity],
    );
    return rows[0] ? Number(rows[0].uid) : undefined;
  }

  /** First sight of a message, or one more attempt at one still `received`; returns its row. */
  async receive(
    mailbox: string,
    uidValidity: string,
    uid: number,
    fields: { messageId?: string; mdnTo?: string },
  ): Promise<MailboxMessage> {
    const { rows } = await this.pool.query<Row>(
      `INSERT INTO mailbox_message (mailbox, uid_validity, uid, message_id, mdn_to, state, attempts)
       VALUES ($1, $2, $3, $4, $5, 'received', 1)
       ON CONFLICT (mailbox, uid_validity, uid) DO UPDATE SET
         attempts = mailbox_message.attempts + CASE WHEN mailbox_message.state = 'received' THEN 1 ELSE 0 END,
         updated_at = now()
       RETURNING ${COLUMNS}`,
      [mailbox, uidValidity, uid, fields.messageId ?? null, fields.mdnTo ?? null],
    );
    return toMessage(rows[0]!);
  }

  /** received → ingested: the pipeline committed the documents (or the exchange took the MDN). */
  async ingested(
    key: MessageKey,
    result: { outcome: 'created' | 'review' | 'mdn'; documents: number; resources: string[] },
  ): Promise<void> {
    await this.pool.query(
      `UPDATE mailbox_message SET state = 'ingested', outcome = $4, documents = $5, resources = $6, last_error = NULL,
         updated_at = now() WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3 AND state = 'received'`,
      [key.mailbox, key.uidValidity, key.uid, result.outcome, result.documents, result.resources],
    );
  }

  /** received → quarantined, with the reason (recorded before the message is moved). */
  async quarantined(key: MessageKey, outcome: 'rejected' | 'quarantined', reason: string): Promise<void> {
    await this.pool.query(
      `UPDATE mailbox_message SET state = 'quarantined', outcome = $4, reason = $5, updated_at = now()
         WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3 AND state = 'received'`,
      [key.mailbox, key.uidValidity, key.uid, outcome, clip(reason)],
    );
  }

  /** A transient failure of a `received` message: kept for the next poll. */
  async failed(key: MessageKey, error: string): Promise<void> {
    await this.pool.query(
      `UPDATE mailbox_message SET last_error = $4, updated_at = now()
         WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3`,
      [key.mailbox, key.uidValidity, key.uid, clip(error)],
    );
  }

  async mdnSent(key: MessageKey): Promise<void> {
    await this.pool.query(
      `UPDATE mailbox_message SET mdn_sent_at = now(), updated_at = now()
         WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3 AND mdn_sent_at IS NULL`,
      [key.mailbox, key.uidValidity, key.uid],
    );
  }

  /** ingested/quarantined → done (flagged or moved in the mailbox). */
  async done(key: MessageKey): Promise<void> {
    await this.pool.query(
      `UPDATE mailbox_message SET state = 'done', updated_at = now()
         WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3 AND state IN ('ingested', 'quarantined')`,
      [key.mailbox, key.uidValidity, key.uid],
    );
  }

  /** A copy of a message already finished under an earlier UIDVALIDITY: done without import. */
  async duplicate(key: MessageKey, messageId: string, reason: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO mailbox_message (mailbox, uid_validity, uid, message_id, state, outcome, reason)
       VALUES ($1, $2, $3, $4, 'ingested', 'ignored', $5) ON CONFLICT DO NOTHING`,
      [key.mailbox, key.uidValidity, key.uid, messageId, reason],
    );
  }

  /**
   * An open message no longer in the folder: a quarantined one was moved (the crash came before
   * `done` was written); any other was deleted by someone else (`gone`).
   */
  async vanished(key: MessageKey): Promise<void> {
    await this.pool.query(
      `UPDATE mailbox_message SET state = CASE WHEN state IN ('quarantined', 'ingested') THEN 'done' ELSE 'gone' END, updated_at = now()
         WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3 AND state NOT IN ('done', 'gone')`,
      [key.mailbox, key.uidValidity, key.uid],
    );
  }

  /** Each mailbox's poll status and its messages counted by state and outcome (operator view). */
  async summary(): Promise<MailboxSummary[]> {
    const { rows } = await this.pool.query<{
      mailbox: string;
      holder: string | null;
      lease_until: Date | null;
      uid_validity: string | null;
      last_poll_at: Date | null;
      last_error: string | null;
      counts: Record<string, number> | null;
    }>(
      `SELECT s.mailbox, s.holder, s.lease_until, s.uid_validity, s.last_poll_at, s.last_error,
              (SELECT jsonb_object_agg(k, n) FROM (
                 SELECT COALESCE(m.outcome, m.state) AS k, count(*)::int AS n FROM mailbox_message m
                  WHERE m.mailbox = s.mailbox AND m.state IN ('done', 'gone')
                  GROUP BY 1
                 UNION ALL
                 SELECT m.state, count(*)::int FROM mailbox_message m
                  WHERE m.mailbox = s.mailbox AND m.state NOT IN ('done', 'gone') GROUP BY 1) c) AS counts
         FROM mailbox_state s ORDER BY s.mailbox`,
    );
    return rows.map((r) => ({
      mailbox: r.mailbox,
      holder: r.holder,
      leaseUntil: r.lease_until?.toISOString() ?? null,
      uidValidity: r.uid_validity,
      lastPollAt: r.last_poll_at?.toISOString() ?? null,
      lastError: r.last_error,
      messages: r.counts ?? {},
    }));
  }

  /** The ledger of a mailbox, newest first, optionally of one state (operator view, tests). */
  async list(mailbox: string, limit = 100, state?: MessageState): Promise<MailboxMessage[]> {
    const { rows } = await this.pool.query<Row>(
      `SELECT ${COLUMNS} FROM mailbox_message WHERE mailbox = $1 AND ($3::text IS NULL OR state = $3)
        ORDER BY uid_validity DESC, uid DESC LIMIT $2`,
      [mailbox, limit, state ?? null],
    );
    return rows.map(toMessage);
  }
}

/** A mailbox as an operator sees it: who polls it, when it last did, what became of its messages. */
export interface MailboxSummary {
  mailbox: string;
  holder: string | null;
  leaseUntil: string | null;
  uidValidity: string | null;
  lastPollAt: string | null;
  lastError: string | null;
  /** Finished messages by outcome (created, review, rejected, quarantined, mdn, ignored, gone), open ones by state. */
  messages: Record<string, number>;
}

export interface MessageKey {
  mailbox: string;
  uidValidity: string;
  uid: number;
}
