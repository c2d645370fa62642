import type { Migration } from '@gw/platform';

/** Tables of patient identity: the review queue of identities the matching rule could not decide. */
export const IDENTITY_MIGRATIONS: Migration[] = [
  {
    version: 24,
    feature: 'identity',
    name: 'identity review queue',
    sql: `
-- An incoming identity (a document's, a lab file's) that the matching rule sent to a human: the
-- traits as received (patient data: kept here only, never in logs or job payloads), the candidate
-- Patients, and the decision with who took it. source: '<channel>:<id>' (e.g. intake:<document id>),
-- the channel's resolver acts on the decision. One open review per source.
CREATE TABLE identity_review (
  id uuid PRIMARY KEY,
  owner text NOT NULL,
  source text NOT NULL,
  reason text NOT NULL,
  traits jsonb NOT NULL,
  candidates text[] NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted', 'created', 'rejected')),
  created_at timestamptz NOT NULL DEFAULT now(),
  decided_at timestamptz,
  decided_by jsonb,
  decision jsonb
);
CREATE UNIQUE INDEX identity_review_open_source_idx ON identity_review (source) WHERE status = 'open';
CREATE INDEX identity_review_owner_idx ON identity_review (owner, status, created_at);
CREATE INDEX identity_review_status_idx ON identity_review (status, created_at);
`,
  },
];
