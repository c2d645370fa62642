import type { Migration } from '@gw/platform';

/** Tables of HL7 v2 intake: sending systems, the message ledger, PAM-FR movements. */
export const INGEST_MIGRATIONS: Migration[] = [
  {
    version: 2,
    feature: 'ingest',
    name: 'hl7 v2 sources, message ledger, movements',
    sql: `
-- A sending system (MSH-3 + MSH-4 namespace ids) bound to the Organization that owns what it sends.
CREATE TABLE hl7_source (
  id uuid PRIMARY KEY,
  sending_application text NOT NULL,
  sending_facility text NOT NULL,
  organization text NOT NULL,
  name text NOT NULL,
  charset text CHECK (charset IN ('UTF-8', 'ISO-8859-1', 'ISO-8859-15')),
  ipp_system text,
  visit_system text,
  unknown_events text NOT NULL DEFAULT 'reject' CHECK (unknown_events IN ('reject', 'ignore')),
  auto_registered boolean NOT NULL DEFAULT false,
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (sending_application, sending_facility)
);

-- Every inbound message, raw, with what became of it. One non-duplicate row per (source, MSH-10):
-- a replay finds it and returns its ACK; rejected messages (unknown source…) may be sent again.
CREATE TABLE hl7_message (
  id bigserial PRIMARY KEY,
  received_at timestamptz NOT NULL DEFAULT now(),
  transport text NOT NULL,
  source_key text NOT NULL,
  source_id uuid REFERENCES hl7_source (id),
  control_id text NOT NULL,
  event text,
  status text NOT NULL CHECK (status IN ('processed', 'error', 'rejected', 'ignored', 'duplicate')),
  raw bytea NOT NULL,
  charset text,
  ack text,
  ack_code text,
  error text,
  resources text[] NOT NULL DEFAULT '{}',
  duplicate_of bigint,
  attempts integer NOT NULL DEFAULT 1,
  processed_at timestamptz
);
CREATE UNIQUE INDEX hl7_message_control_idx ON hl7_message (source_key, control_id)
  WHERE status IN ('processed', 'error', 'ignored');
CREATE INDEX hl7_message_status_idx ON hl7_message (status, id);

-- PAM-FR movements (ZBE) per visit: the Encounter is recomputed from them, so that UPDATE/CANCEL
-- apply to the right movement and out-of-order events converge.
CREATE TABLE hl7_movement (
  source_id uuid NOT NULL REFERENCES hl7_source (id),
  visit text NOT NULL,
  movement_id text NOT NULL,
  trigger text NOT NULL,
  start_at timestamptz,
  cancelled boolean NOT NULL DEFAULT false,
  updated boolean NOT NULL DEFAULT false,
  data jsonb NOT NULL,
  seq bigserial,
  message_id bigint,
  PRIMARY KEY (source_id, visit, movement_id)
);
`,
  },
  {
    version: 8,
    feature: 'ingest',
    name: 'hl7 ledger: warnings of accepted messages',
    sql: `
-- A message accepted with warnings (AA with ERR severity W, e.g. an INS that failed its checks and
-- was not used): the warnings, so that an operator or an identity reviewer listing messages sees them.
ALTER TABLE hl7_message ADD COLUMN warning text;
`,
  },
  {
    version: 9,
    feature: 'ingest',
    name: 'hl7 ledger: a replay is the same source, MSH-10 and content',
    sql: `
-- Senders reuse control ids (counters reset, test systems): a message is a replay only when its
-- content is the same too (SHA-256 without MSH-7). Rows recorded before this have no digest and
-- match a replay on their exact bytes. reuse_of: the earlier message whose MSH-10 this one reused.
ALTER TABLE hl7_message ADD COLUMN content_digest text, ADD COLUMN reuse_of bigint;
DROP INDEX hl7_message_control_idx;
CREATE UNIQUE INDEX hl7_message_control_idx ON hl7_message (source_key, control_id, content_digest)
  WHERE status IN ('processed', 'error', 'ignored');
`,
  },
  {
    version: 13,
    feature: 'ingest',
    name: 'hl7 sources: the operator marks those that qualify identities',
    sql: `
-- A source whose PID-32 QUAL the operator trusts (INS retrieved from INSi): the Patients it writes
-- get the identity-trust tag and merge with other organizations' records of the same INS.
ALTER TABLE hl7_source ADD COLUMN qualifies_identity boolean NOT NULL DEFAULT false;
`,
  },
  {
    version: 17,
    feature: 'ingest',
    name: 'hl7 sources: allowed addresses and client certificates',
    sql: `
-- Where a source may send from over MLLP: addresses or CIDR blocks, and the TLS client
-- certificates (SHA-256 fingerprint or subject CN) it must present. Empty: no restriction.
ALTER TABLE hl7_source ADD COLUMN allowed_addresses text[] NOT NULL DEFAULT '{}',
  ADD COLUMN allowed_certificates text[] NOT NULL DEFAULT '{}';
`,
  },
];
