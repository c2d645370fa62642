import type { Migration } from '@gw/platform';

/** Tables of the FHIR store: resources, their history, the search index, the access audit. */
export const STORE_MIGRATIONS: Migration[] = [
  {
    version: 1,
    feature: 'store',
    name: 'fhir store, search index, audit',
    sql: `
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Current version of every resource; the exact JSON served is kept as text (no re-serialisation).
CREATE TABLE resource (
  resource_type text NOT NULL,
  id text NOT NULL,
  version_id integer NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  owner_org text,
  content text,
  PRIMARY KEY (resource_type, id)
);
CREATE INDEX resource_last_updated_idx ON resource (resource_type, last_updated);

-- Every version ever written, with who wrote it (the durable write audit).
CREATE TABLE resource_history (
  resource_type text NOT NULL,
  id text NOT NULL,
  version_id integer NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  owner_org text,
  client_id text,
  request_id text,
  content text,
  PRIMARY KEY (resource_type, id, version_id)
);
CREATE INDEX resource_history_type_time_idx ON resource_history (resource_type, last_updated);

-- Search index, one table per parameter kind, rows for the current version only.
CREATE TABLE sp_token (
  resource_type text NOT NULL, id text NOT NULL, code text NOT NULL,
  system text, value text
);
CREATE INDEX sp_token_search_idx ON sp_token (resource_type, code, value, system);
CREATE INDEX sp_token_owner_idx ON sp_token (resource_type, id);

CREATE TABLE sp_string (
  resource_type text NOT NULL, id text NOT NULL, code text NOT NULL,
  value text NOT NULL, raw text NOT NULL
);
CREATE INDEX sp_string_search_idx ON sp_string (resource_type, code, value text_pattern_ops);
CREATE INDEX sp_string_trgm_idx ON sp_string USING gin (value gin_trgm_ops);
CREATE INDEX sp_string_owner_idx ON sp_string (resource_type, id);

CREATE TABLE sp_date (
  resource_type text NOT NULL, id text NOT NULL, code text NOT NULL,
  low timestamptz NOT NULL, high timestamptz NOT NULL
);
CREATE INDEX sp_date_low_idx ON sp_date (resource_type, code, low);
CREATE INDEX sp_date_high_idx ON sp_date (resource_type, code, high);
CREATE INDEX sp_date_owner_idx ON sp_date (resource_type, id);

CREATE TABLE sp_reference (
  resource_type text NOT NULL, id text NOT NULL, code text NOT NULL,
  target_type text NOT NULL, target_id text NOT NULL
);
CREATE INDEX sp_reference_search_idx ON sp_reference (resource_type, code, target_id, target_type);
CREATE INDEX sp_reference_target_idx ON sp_reference (target_type, target_id);
CREATE INDEX sp_reference_owner_idx ON sp_reference (resource_type, id);

CREATE TABLE sp_number (
  resource_type text NOT NULL, id text NOT NULL, code text NOT NULL,
  value numeric NOT NULL, system text, unit text
);
CREATE INDEX sp_number_search_idx ON sp_number (resource_type, code, value);
CREATE INDEX sp_number_owner_idx ON sp_number (resource_type, id);

-- Access audit: who read, searched or wrote what (resource ids, never patient data).
CREATE TABLE audit_event (
  id bigserial PRIMARY KEY,
  recorded timestamptz NOT NULL DEFAULT now(),
  client_id text,
  organization text,
  interaction text NOT NULL,
  resource_type text,
  entity text[],
  outcome integer NOT NULL,
  request_id text
);
CREATE INDEX audit_event_recorded_idx ON audit_event (recorded);
`,
  },
  {
    version: 36,
    feature: 'store',
    name: 'resource content stored out of line without compression',
    sql: `
ALTER TABLE resource ALTER COLUMN content SET STORAGE EXTERNAL;
ALTER TABLE resource_history ALTER COLUMN content SET STORAGE EXTERNAL;
`,
  },
];
