import type { Migration } from '@gw/platform';

/** Tables of portability archive imports: one row per import job, one per document of the archive. */
export const PORTABILITY_MIGRATIONS: Migration[] = [
  {
    version: 27,
    feature: 'portability',
    name: 'portability archive imports and their entries',
    sql: `
-- One import of a portability archive (ANS PDLGC draft) into one organization's records. The job
-- that runs it reads this row and the entries below: a restart continues with the entries not done.
CREATE TABLE intake_import (
  id uuid PRIMARY KEY,
  organization text NOT NULL,
  client_id text NOT NULL,
  archive_path text NOT NULL,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
  -- The archive's central directory has been read and every known entry recorded below.
  planned boolean NOT NULL DEFAULT false,
  patients_total integer NOT NULL DEFAULT 0,
  -- Times the job was (re)started: the next job id, so a restart is a new job, not a deduplicated one.
  runs integer NOT NULL DEFAULT 0,
  -- Wall time spent importing, summed over runs (documents/s = documents / elapsed).
  elapsed_ms bigint NOT NULL DEFAULT 0,
  failure text,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);

-- One document of the archive (or a file skipped with its reason). A patient's XDM given as a zip
-- inside the archive gets its rows when that zip is first opened (path 'outer.zip!/inner/path').
CREATE TABLE intake_import_entry (
  import_id uuid NOT NULL REFERENCES intake_import (id) ON DELETE CASCADE,
  path text NOT NULL,
  -- The patient unit the document belongs to (its XDM zip or folder), in archive order.
  unit integer NOT NULL,
  kind text NOT NULL CHECK (kind IN ('xdm-zip', 'cda', 'pdf', 'metadata', 'other', 'transverse')),
  status text NOT NULL CHECK (status IN ('pending', 'running', 'created', 'review', 'rejected', 'failed', 'skipped')),
  reason text,
  resources integer NOT NULL DEFAULT 0,
  finished_at timestamptz,
  PRIMARY KEY (import_id, path)
);
CREATE INDEX intake_import_entry_unit_idx ON intake_import_entry (import_id, unit);
CREATE INDEX intake_import_entry_status_idx ON intake_import_entry (import_id, status);
`,
  },
];
