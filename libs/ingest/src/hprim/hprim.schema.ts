import type { Migration } from '@gw/platform';

/** HPRIM lab files: each structure's code maps of its labs, and the results held until their code is mapped. */
export const HPRIM_MIGRATIONS: Migration[] = [
  {
    version: 25,
    feature: 'ingest',
    name: 'hprim: per-lab code maps, results held for unmapped codes',
    sql: `
-- A lab's local code → LOINC, per structure (the labs a structure receives from are its own to map).
-- unit: the UCUM unit results are filed in; factor multiplies the lab's value into it.
CREATE TABLE hprim_lab_code (
  organization text NOT NULL,
  lab text NOT NULL,
  code text NOT NULL,
  loinc text NOT NULL,
  display text NOT NULL,
  unit text,
  factor double precision CHECK (factor IS NULL OR factor > 0),
  updated_by text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (organization, lab, code)
);

-- One patient part of an HPRIM file with results not filed yet: the part as read (traits, results;
-- the raw bytes apart), who sent it and the document version last filed, so that it is filed again
-- (version + 1, all its mapped results) when one of its codes is mapped.
CREATE TABLE hprim_part (
  id bigserial PRIMARY KEY,
  organization text NOT NULL,
  lab text NOT NULL,
  digest text NOT NULL,
  charset text NOT NULL,
  part jsonb NOT NULL,
  raw bytea NOT NULL,
  version integer NOT NULL,
  filer jsonb NOT NULL,
  source text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (organization, digest)
);

-- The results of a part whose code was not mapped when it came (held), and when they were filed.
CREATE TABLE hprim_held_result (
  part_id bigint NOT NULL REFERENCES hprim_part (id) ON DELETE CASCADE,
  line integer NOT NULL,
  code text NOT NULL,
  label text NOT NULL,
  unit text NOT NULL,
  status text NOT NULL CHECK (status IN ('held', 'filed')),
  held_at timestamptz NOT NULL DEFAULT now(),
  filed_at timestamptz,
  PRIMARY KEY (part_id, line)
);
CREATE INDEX hprim_held_result_code_idx ON hprim_held_result (code) WHERE status = 'held';
`,
  },
];
