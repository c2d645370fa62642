import type { Migration } from '@gw/platform';
import { sqlList, sqlString } from '@gw/platform';
import { PATIENT_COMPARTMENT } from '../repository/patient-compartment';
import { NOT_ONE_PATIENT_TYPES } from './care-projection';

/** (type, parameter) pairs of the R4 patient compartment, as SQL VALUES rows. */
function compartmentValues(): string {
  return Object.entries(PATIENT_COMPARTMENT)
    .filter(([type]) => !NOT_ONE_PATIENT_TYPES.includes(type))
    .flatMap(([type, codes]) => codes.map((c) => `(${sqlString(type)}, ${sqlString(c)})`))
    .join(',\n  ');
}

/**
 * Version 18 (store): what a resource is about and who wrote it as a person. `patient_id` is the
 * one Patient of the resource (see patientIdOf), `restricted` its v3-Confidentiality R/V label,
 * `resource_history.agent` the PractitionerRole of a person's write. Backfilled from the index.
 */
export const SHARING_STORE_MIGRATION: Migration = {
  version: 18,
  feature: 'store',
  name: 'resource patient, restricted label, history agent',
  sql: `
ALTER TABLE resource ADD COLUMN patient_id text, ADD COLUMN restricted boolean NOT NULL DEFAULT false;
ALTER TABLE resource_history ADD COLUMN agent text;

CREATE TEMP TABLE compartment_param (resource_type text, code text) ON COMMIT DROP;
INSERT INTO compartment_param VALUES
  ${compartmentValues()};

UPDATE resource r SET patient_id = r.id WHERE r.resource_type = 'Patient';
UPDATE resource r SET patient_id = one.pid
FROM (
  SELECT s.resource_type, s.id, min(s.target_id) AS pid
  FROM sp_reference s JOIN compartment_param c ON c.resource_type = s.resource_type AND c.code = s.code
  WHERE s.target_type = 'Patient'
  GROUP BY s.resource_type, s.id
  HAVING count(DISTINCT s.target_id) = 1
) one
WHERE r.resource_type = one.resource_type AND r.id = one.id;
-- Deleted resources have no index rows: their patient stays unknown (NULL), so only their
-- organization is told they are gone.

UPDATE resource SET restricted = true
WHERE content IS NOT NULL AND (content::jsonb -> 'meta' -> 'security') @> ANY (ARRAY[
  '[{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]'::jsonb,
  '[{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "V"}]'::jsonb]);

CREATE INDEX resource_patient_idx ON resource (patient_id, resource_type) WHERE patient_id IS NOT NULL;
`,
};

/**
 * Version 19 (sharing): the équipe-de-soins projection. Rows are derived from source resources
 * (Patient, EpisodeOfCare, Encounter, CareTeam, Consent, Task) in the same statement as their
 * write; the rows of the resources stored before this version are written at the first start
 * after it (rebuildSharingProjection).
 */
export const SHARING_TABLES_MIGRATION: Migration = {
  version: 19,
  feature: 'sharing',
  name: 'care_access and care_opposition',
  sql: `
CREATE TABLE care_access (
  patient_id text NOT NULL,
  grantee text NOT NULL,
  basis text NOT NULL CHECK (basis IN (${sqlList(['structure-team', 'care-circle', 'consent', 'task'])})),
  classes text[],
  resource_ref text,
  valid tstzrange NOT NULL,
  role text,
  source text NOT NULL,
  recognised_by text,
  recognised_at timestamptz
);
CREATE INDEX care_access_patient_idx ON care_access (patient_id, grantee);
CREATE INDEX care_access_source_idx ON care_access (source);

CREATE TABLE care_opposition (
  patient_id text NOT NULL,
  actor text,
  classes text[],
  valid tstzrange NOT NULL,
  source text NOT NULL
);
CREATE INDEX care_opposition_patient_idx ON care_opposition (patient_id);
CREATE INDEX care_opposition_source_idx ON care_opposition (source);

-- The projection of the resources stored before this version is written by the gateway at start.
CREATE TABLE sharing_rebuild (pending boolean PRIMARY KEY);
INSERT INTO sharing_rebuild VALUES (true);
`,
};

/** Version 18 (bulk-export): an export started by a person runs with that person's rights. */
export const SHARING_EXPORT_MIGRATION: Migration = {
  version: 18,
  feature: 'bulk-export',
  name: 'export person',
  sql: `ALTER TABLE bulk_export ADD COLUMN person jsonb;`,
};

/**
 * Version 28 (store): joint statistics of the token index. A code's frequency was estimated from
 * each column alone (2 469 rows expected for a body-weight code that has 92 910 at 1 M
 * resources), so the planner ran the person rule's care_access probe on every candidate: a GP's
 * first page of a broad search passed the 30 s statement timeout (test/bench/README.md, sharing).
 */
export const TOKEN_STATISTICS_MIGRATION: Migration = {
  version: 28,
  feature: 'store',
  name: 'token index statistics',
  sql: `
CREATE STATISTICS sp_token_mcv (mcv) ON resource_type, code, value, system FROM sp_token;
ANALYZE sp_token;
`,
};

/**
 * Version 28 (sharing): the person rule's probe (patient, grantee) answered from the index alone
 * (basis, validity, classes and resource in it), no heap visit per candidate row.
 */
export const CARE_ACCESS_COVERING_MIGRATION: Migration = {
  version: 28,
  feature: 'sharing',
  name: 'care_access covering index',
  sql: `
CREATE INDEX care_access_probe_idx ON care_access (patient_id, grantee) INCLUDE (basis, valid, classes, resource_ref);
DROP INDEX care_access_patient_idx;
`,
};

export const SHARING_MIGRATIONS: Migration[] = [
  SHARING_STORE_MIGRATION,
  SHARING_EXPORT_MIGRATION,
  SHARING_TABLES_MIGRATION,
  TOKEN_STATISTICS_MIGRATION,
  CARE_ACCESS_COVERING_MIGRATION,
];
