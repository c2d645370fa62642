import type { Migration } from '@gw/platform';

/** The intake staging table: every document an intake channel received, filed or held for identity review. */
export const INTAKE_MIGRATIONS: Migration[] = [
  {
    version: 23,
    feature: 'intake',
    name: 'intake documents',
    sql: `
-- One document (one Extraction) received by POST /ingest/documents, MHD, the mailbox, HPRIM or a
-- portability import, for one owner organization. raw: the bytes as received; extraction: what the
-- reader made of it without the bytes (patient data: kept here only, never logged); principal: who
-- sent it (a held document is filed as its sender when the review is decided); result: the Bundle
-- answered when filed (the same answer for the same document posted again); document_ref: the
-- DocumentReference written (a new version of the setId finds the facts of the old one here).
CREATE TABLE intake_document (
  id uuid PRIMARY KEY,
  owner text NOT NULL,
  client_id text NOT NULL,
  principal jsonb NOT NULL,
  source text NOT NULL,
  unique_id text NOT NULL,
  content_type text NOT NULL,
  raw bytea,
  extraction jsonb,
  status text NOT NULL CHECK (status IN ('filed', 'review', 'rejected')),
  result jsonb,
  written text[] NOT NULL DEFAULT '{}',
  review_id uuid,
  document_ref text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX intake_document_unique_idx ON intake_document (owner, unique_id) WHERE status IN ('filed', 'review');
CREATE INDEX intake_document_ref_idx ON intake_document (document_ref);
`,
  },
];
