import type { Migration } from '@gw/platform';

/** Tables of the exchange engine: routes, routing decisions, deliveries and their attempts. */
export const EXCHANGE_MIGRATIONS: Migration[] = [
  {
    version: 3,
    feature: 'exchange',
    name: 'routes, routings, deliveries',
    sql: `
-- Routing rules are data: the most specific active route wins (hospital, then territory, then default).
CREATE TABLE exchange_route (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  hospital text,
  territory text,
  follow_up_days integer NOT NULL DEFAULT 7 CHECK (follow_up_days BETWEEN 0 AND 365),
  recipients text[] NOT NULL DEFAULT '{mt,care-team}',
  channels text[] NOT NULL DEFAULT '{mssante,mhd}',
  active boolean NOT NULL DEFAULT true,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX exchange_route_scope_idx ON exchange_route (coalesce(hospital, ''), coalesce(territory, '')) WHERE active;
INSERT INTO exchange_route (name) VALUES ('default');

-- One row per routed discharge event: what routing decided (the idempotency record of the route job).
CREATE TABLE exchange_routing (
  event_id bigint PRIMARY KEY REFERENCES domain_event (id),
  route_id uuid REFERENCES exchange_route (id),
  outcome text NOT NULL,
  tasks text[] NOT NULL DEFAULT '{}',
  document_unique_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  withdrawn_at timestamptz
);

-- One row per message to send: its state is the truth the jobs re-read (a job only carries the id).
CREATE TABLE exchange_delivery (
  id uuid PRIMARY KEY,
  event_id bigint NOT NULL REFERENCES domain_event (id),
  channel text NOT NULL CHECK (channel IN ('mssante', 'mhd')),
  destination text NOT NULL,
  recipient text,
  communication text,
  task text,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'sent', 'processed', 'failed', 'dead', 'cancelled', 'refused')),
  attempts integer NOT NULL DEFAULT 0,
  replays integer NOT NULL DEFAULT 0,
  remote_id text,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  acknowledged_at timestamptz,
  UNIQUE (event_id, channel, destination)
);
CREATE INDEX exchange_delivery_status_idx ON exchange_delivery (status, created_at);
CREATE INDEX exchange_delivery_remote_idx ON exchange_delivery (remote_id) WHERE remote_id IS NOT NULL;

-- Every attempt with the remote answer (also written as a FHIR AuditEvent).
CREATE TABLE exchange_attempt (
  id bigserial PRIMARY KEY,
  delivery_id uuid NOT NULL REFERENCES exchange_delivery (id),
  attempt integer NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  outcome text NOT NULL CHECK (outcome IN ('success', 'retry', 'dead', 'refused', 'skipped')),
  remote text
);
CREATE INDEX exchange_attempt_delivery_idx ON exchange_attempt (delivery_id, id);
`,
  },
  {
    version: 7,
    feature: 'exchange',
    name: 'exchange: delivery lease',
    sql: `
-- The attempt sending a delivery holds it until then (or until it ends): a duplicate or retried job
-- that arrives meanwhile (a redelivered event, a stalled job re-run while the first is still in its
-- SMTP dialogue) waits for the outcome instead of sending a second message.
ALTER TABLE exchange_delivery ADD COLUMN lease_until timestamptz;
`,
  },
];
