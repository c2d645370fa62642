import type { Migration } from '@gw/platform';

/** Tables of the inbound MSSanté mailboxes: who polls each one, and what became of each message. */
export const MAILBOX_MIGRATIONS: Migration[] = [
  {
    version: 26,
    feature: 'ingest',
    name: 'inbound MSSanté mailboxes: poller lease, message ledger',
    sql: `
-- One row per configured mailbox (its key: user@host/folder). The lease lets one process of several
-- (gateway + workers) poll it at a time; the rest is what an operator reads (last poll, last error).
CREATE TABLE mailbox_state (
  mailbox text PRIMARY KEY,
  holder text,
  lease_until timestamptz,
  uid_validity bigint,
  last_poll_at timestamptz,
  last_error text,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every message seen in a mailbox, by (UIDVALIDITY, UID). The state machine makes a crash at any
-- step safe: received → ingested (the pipeline's transaction committed; retried ingests are
-- idempotent on the document's uniqueId) → done (flagged in the mailbox), or received →
-- quarantined (reason recorded before the move) → done. A message is done once; its MDN once.
CREATE TABLE mailbox_message (
  mailbox text NOT NULL,
  uid_validity bigint NOT NULL,
  uid bigint NOT NULL,
  message_id text,
  state text NOT NULL CHECK (state IN ('received', 'ingested', 'quarantined', 'done', 'gone')),
  outcome text CHECK (outcome IN ('created', 'review', 'rejected', 'quarantined', 'mdn', 'ignored')),
  reason text,
  documents integer NOT NULL DEFAULT 0,
  resources text[] NOT NULL DEFAULT '{}',
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  mdn_to text,
  mdn_sent_at timestamptz,
  received_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mailbox, uid_validity, uid)
);
CREATE INDEX mailbox_message_open_idx ON mailbox_message (mailbox, uid_validity, uid) WHERE state <> 'done';
CREATE INDEX mailbox_message_id_idx ON mailbox_message (mailbox, message_id) WHERE message_id IS NOT NULL;
`,
  },
];
