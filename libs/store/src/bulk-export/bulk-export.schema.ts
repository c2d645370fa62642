import type { Migration } from '@gw/platform';

export const BULK_EXPORT_MIGRATIONS: Migration[] = [
  {
    version: 5,
    feature: 'bulk-export',
    name: 'bulk data exports',
    sql: `
-- One FHIR Bulk Data export (Group/[id]/$export): who asked (the principal is re-checked by the job),
-- what, and where it stands. Files live under GW_DATA_DIR/bulk/<id>/; output lists them.
CREATE TABLE bulk_export (
  id uuid PRIMARY KEY,
  client_id text NOT NULL,
  organization text NOT NULL,
  admin boolean NOT NULL DEFAULT false,
  scopes text[] NOT NULL,
  group_id text NOT NULL,
  types text[] NOT NULL,
  skipped text[] NOT NULL DEFAULT '{}',
  since timestamptz,
  request text NOT NULL,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
  progress text,
  transaction_time timestamptz,
  output jsonb NOT NULL DEFAULT '[]',
  error jsonb NOT NULL DEFAULT '[]',
  failure jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  expires_at timestamptz
);
CREATE INDEX bulk_export_expires_idx ON bulk_export (expires_at);
CREATE INDEX bulk_export_status_idx ON bulk_export (status, created_at);
`,
  },
];
