import { sqlList, sqlString as q } from '@gw/platform';
import type { Migration } from '@gw/platform';
import { GW } from '@gw/fhir';
import { Terminology } from '@gw/ingest';

/** Coverage.costToBeneficiary.exception.type of an ALD exemption: "1".."30" list ALD, "31" hors liste, "32" polypathologie. */
export const ALD_SYSTEM = `${GW}/fhir/CodeSystem/ald`;
/** Coverage.type of a complémentaire santé solidaire. */
export const COVERAGE_TYPE_SYSTEM = `${GW}/fhir/CodeSystem/coverage-type`;
export const C2S_CODE = 'C2S';
/** TRE_R259 role of the médecin traitant among a CareTeam's participants. */
export const PCP_ROLE = 'PCP';

/** The types the projection trigger watches since migration 29 (frozen, as a shipped migration's SQL). */
export const PROJECTED_TYPE_LIST_V29: readonly string[] = [
  'Patient',
  'Practitioner',
  'Organization',
  'Observation',
  'Immunization',
  'Procedure',
  'Condition',
  'MedicationRequest',
  'MedicationStatement',
  'MedicationDispense',
  'Encounter',
  'Task',
  'Coverage',
  'CareTeam',
];
const PROJECTED_TYPES_V29 = sqlList(PROJECTED_TYPE_LIST_V29);

/**
 * Migration 29: what the 2026 forfait médecin traitant (FMT) reads besides clinical facts — the
 * médecin traitant over time (ind_mt_period), ALD and C2S coverages (ind_coverage), dispensations
 * (ind_fact) — kept in the same transaction as every write, like the rest of the projection.
 */
export const FMT_PROJECTION_MIGRATION: Migration = {
  version: 29,
  feature: 'indicators',
  name: 'médecin traitant periods, ALD and C2S coverages, dispensations',
  sql: `
-- The médecin traitant of a patient record over time: from CareTeam participants with role
-- TRE_R259 PCP (source 'CareTeam/<id>', their period) and from Patient.generalPractitioner changes
-- (source 'Patient': a write whose GP differs from the open period closes it the day before the
-- write and opens a new one). ended is the last day (inclusive); NULL: still open.
CREATE TABLE ind_mt_period (
  patient text NOT NULL,
  person text NOT NULL,
  practitioner text NOT NULL,
  started date,
  ended date,
  source text NOT NULL
);
CREATE INDEX ind_mt_period_practitioner_idx ON ind_mt_period (practitioner, started) INCLUDE (ended, person);
CREATE INDEX ind_mt_period_person_idx ON ind_mt_period (person, started) INCLUDE (ended, practitioner);
CREATE INDEX ind_mt_period_patient_idx ON ind_mt_period (patient, source);

-- ALD exemptions (kind 'ald', code = the ALD number) and C2S (kind 'c2s', code 'C2S') of active
-- Coverages; started/ended the days they hold (inclusive; NULL: unbounded).
CREATE TABLE ind_coverage (
  coverage_id text NOT NULL,
  patient text NOT NULL,
  person text NOT NULL,
  owner_org text,
  kind text NOT NULL,
  code text NOT NULL,
  started date,
  ended date
);
CREATE INDEX ind_coverage_person_idx ON ind_coverage (person, kind) INCLUDE (code, started, ended, owner_org);
CREATE INDEX ind_coverage_patient_idx ON ind_coverage (patient);
CREATE INDEX ind_coverage_id_idx ON ind_coverage (coverage_id);

-- Both carry the person key of their record, like ind_fact (migration 6): the same BEFORE INSERT
-- function sets it, the patient triggers keep it when the record's identity changes.
CREATE TRIGGER ind_mt_period_person BEFORE INSERT ON ind_mt_period FOR EACH ROW EXECUTE FUNCTION gw_ind_fact_person();
CREATE TRIGGER ind_coverage_person BEFORE INSERT ON ind_coverage FOR EACH ROW EXECUTE FUNCTION gw_ind_fact_person();
CREATE OR REPLACE FUNCTION gw_ind_patient_person() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE ind_fact SET person = NEW.person_key WHERE patient = NEW.id AND person <> NEW.person_key;
  UPDATE ind_mt_period SET person = NEW.person_key WHERE patient = NEW.id AND person <> NEW.person_key;
  UPDATE ind_coverage SET person = NEW.person_key WHERE patient = NEW.id AND person <> NEW.person_key;
  RETURN NULL;
END
$fn$;

-- A Patient write at p_at: close the open GP period when the GP changed, open the new one.
CREATE FUNCTION gw_ind_mt_from_patient(p_id text, p_gp text, p_at date) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  open_gp text;
BEGIN
  SELECT practitioner INTO open_gp FROM ind_mt_period WHERE patient = p_id AND source = 'Patient' AND ended IS NULL;
  IF open_gp IS NOT DISTINCT FROM p_gp THEN
    RETURN;
  END IF;
  -- Opened and changed the same day: it never held for a whole day.
  DELETE FROM ind_mt_period WHERE patient = p_id AND source = 'Patient' AND ended IS NULL AND started >= p_at;
  UPDATE ind_mt_period SET ended = p_at - 1 WHERE patient = p_id AND source = 'Patient' AND ended IS NULL;
  IF p_gp IS NOT NULL THEN
    INSERT INTO ind_mt_period (patient, practitioner, started, ended, source) VALUES (p_id, p_gp, p_at, NULL, 'Patient');
  END IF;
END
$fn$;

-- The first Practitioner named by Patient.generalPractitioner (the médecin traitant the record declares).
CREATE FUNCTION gw_ind_patient_gp(j jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
  SELECT g->>'reference' FROM jsonb_array_elements(coalesce(j->'generalPractitioner', '[]')) g
   WHERE g->>'reference' ~ '^Practitioner/' LIMIT 1
$fn$;

-- The FMT part of the projection: MedicationDispense facts, ALD/C2S coverages, MT periods.
CREATE FUNCTION gw_ind_project_fmt(p_type text, p_id text, p_deleted boolean, p_owner text, p_content text, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  j jsonb;
  subj text;
BEGIN
  j := CASE WHEN p_deleted OR p_content IS NULL THEN NULL ELSE p_content::jsonb END;
  IF p_type = 'Patient' THEN
    PERFORM gw_ind_mt_from_patient(p_id, CASE WHEN j IS NULL OR j->>'active' = 'false' THEN NULL ELSE gw_ind_patient_gp(j) END,
                                   (p_at AT TIME ZONE 'UTC')::date);
    RETURN;
  END IF;
  IF p_type = 'MedicationDispense' THEN
    DELETE FROM ind_fact WHERE resource_type = p_type AND id = p_id;
    subj := j->'subject'->>'reference';
    IF j IS NULL OR subj IS NULL OR subj !~ '^Patient/' OR jsonb_typeof(j->'medicationCodeableConcept'->'coding') <> 'array' THEN
      RETURN;
    END IF;
    INSERT INTO ind_fact (resource_type, id, patient, system, code, at, status)
    SELECT DISTINCT p_type, p_id, substring(subj FROM 9), c->>'system', c->>'code',
           gw_fhir_instant(coalesce(j->>'whenHandedOver', j->>'whenPrepared')), j->>'status'
      FROM jsonb_array_elements(j->'medicationCodeableConcept'->'coding') c WHERE c->>'code' IS NOT NULL;
    RETURN;
  END IF;
  IF p_type = 'Coverage' THEN
    DELETE FROM ind_coverage WHERE coverage_id = p_id;
    subj := j->'beneficiary'->>'reference';
    IF j IS NULL OR j->>'status' <> 'active' OR subj IS NULL OR subj !~ '^Patient/' THEN
      RETURN;
    END IF;
    INSERT INTO ind_coverage (coverage_id, patient, owner_org, kind, code, started, ended)
    SELECT p_id, substring(subj FROM 9), p_owner, 'ald', c->>'code',
           gw_fhir_instant(coalesce(e->'period'->>'start', j->'period'->>'start'))::date,
           gw_fhir_instant(coalesce(e->'period'->>'end', j->'period'->>'end'))::date
      FROM jsonb_array_elements(coalesce(j->'costToBeneficiary', '[]')) cb,
           jsonb_array_elements(coalesce(cb->'exception', '[]')) e,
           jsonb_array_elements(coalesce(e->'type'->'coding', '[]')) c
     WHERE c->>'system' = ${q(ALD_SYSTEM)} AND c->>'code' IS NOT NULL
    UNION ALL
    SELECT p_id, substring(subj FROM 9), p_owner, 'c2s', ${q(C2S_CODE)},
           gw_fhir_instant(j->'period'->>'start')::date, gw_fhir_instant(j->'period'->>'end')::date
     WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(j->'type'->'coding', '[]')) c
                    WHERE c->>'system' = ${q(COVERAGE_TYPE_SYSTEM)} AND c->>'code' = ${q(C2S_CODE)});
    RETURN;
  END IF;
  IF p_type = 'CareTeam' THEN
    subj := coalesce(j->'subject'->>'reference', '');
    IF j IS NULL OR subj !~ '^Patient/' OR j->>'status' = 'entered-in-error' THEN
      DELETE FROM ind_mt_period WHERE source = 'CareTeam/' || p_id;
      RETURN;
    END IF;
    -- A PCP participant without a start date holds from the first write that named it: a rewrite
    -- of the CareTeam keeps that day (old rows), as a Patient's GP period does.
    WITH old AS (DELETE FROM ind_mt_period WHERE source = 'CareTeam/' || p_id RETURNING practitioner, started)
    INSERT INTO ind_mt_period (patient, practitioner, started, ended, source)
    SELECT DISTINCT substring(subj FROM 9), pa->'member'->>'reference',
           coalesce(gw_fhir_instant(coalesce(pa->'period'->>'start', j->'period'->>'start'))::date,
                    (SELECT min(o.started) FROM old o WHERE o.practitioner = pa->'member'->>'reference'),
                    (p_at AT TIME ZONE 'UTC')::date),
           gw_fhir_instant(coalesce(pa->'period'->>'end', j->'period'->>'end'))::date,
           'CareTeam/' || p_id
      FROM jsonb_array_elements(coalesce(j->'participant', '[]')) pa
     WHERE pa->'member'->>'reference' ~ '^Practitioner/'
       AND EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(pa->'role', '[]')) r, jsonb_array_elements(coalesce(r->'coding', '[]')) c
                    WHERE c->>'system' = ${q(Terminology.TRE_R259)} AND c->>'code' = ${q(PCP_ROLE)});
  END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION gw_ind_project_trigger() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM gw_ind_project(NEW.resource_type, NEW.id, NEW.deleted, NEW.owner_org, NEW.content);
  IF NEW.resource_type IN ('Patient', 'MedicationDispense', 'Coverage', 'CareTeam') THEN
    PERFORM gw_ind_project_fmt(NEW.resource_type, NEW.id, NEW.deleted, NEW.owner_org, NEW.content, NEW.last_updated);
  END IF;
  RETURN NULL;
END
$fn$;
DROP TRIGGER resource_indicator_projection ON resource;
CREATE TRIGGER resource_indicator_projection AFTER INSERT OR UPDATE ON resource
  FOR EACH ROW WHEN (NEW.resource_type IN (${PROJECTED_TYPES_V29}))
  EXECUTE FUNCTION gw_ind_project_trigger();

-- Backfill. GP periods from every stored version of each Patient: runs of the same GP, each
-- from the day of its first version to the day before the next change.
INSERT INTO ind_mt_period (patient, practitioner, started, ended, source)
SELECT id, gp, started, CASE WHEN next_at IS NOT NULL THEN next_at - 1 END, 'Patient'
  FROM (
    SELECT id, gp, at AS started, lead(at) OVER (PARTITION BY id ORDER BY version_id) AS next_at
      FROM (
        SELECT id, version_id, at, gp, lag(gp) OVER (PARTITION BY id ORDER BY version_id) AS prev,
               row_number() OVER (PARTITION BY id ORDER BY version_id) AS n
          FROM (SELECT id, version_id, (last_updated AT TIME ZONE 'UTC')::date AS at,
                       CASE WHEN deleted OR content IS NULL OR content::jsonb->>'active' = 'false' THEN NULL
                            ELSE gw_ind_patient_gp(content::jsonb) END AS gp
                  FROM resource_history WHERE resource_type = 'Patient') v
      ) c
     WHERE n = 1 OR prev IS DISTINCT FROM gp
  ) runs
 WHERE gp IS NOT NULL AND (next_at IS NULL OR next_at > started);
SELECT gw_ind_project_fmt(resource_type, id, deleted, owner_org, content, last_updated) FROM resource
 WHERE resource_type IN ('MedicationDispense', 'Coverage', 'CareTeam');
`,
};

/** Migration 30: the CIS/CIP → ATC map through which ATC ValueSets match drugs coded only in CIS/CIP. */
export const DRUG_ATC_MIGRATION: Migration = {
  version: 30,
  feature: 'indicators',
  name: 'CIS/CIP to ATC map',
  sql: `
-- One row per (BDPM code, ATC code); system is the BDPM canonical for CIS (8 digits) and CIP (7 or
-- 13 digits), whose lengths never collide. Loaded by the CLI command indicators:load-drug-atc and,
-- for the codes of the shipped map (fhir-profiles/drug-atc), at boot.
CREATE TABLE ind_drug_atc (
  system text NOT NULL,
  code text NOT NULL,
  atc text NOT NULL,
  source text,
  PRIMARY KEY (system, code, atc)
);
-- A criterion on ATC reads the map by ATC prefix (text_pattern_ops: LIKE 'A10%').
CREATE INDEX ind_drug_atc_atc_idx ON ind_drug_atc (atc text_pattern_ops) INCLUDE (code);
`,
};

/** The names the BDPM codes are stored under (the facts may carry any of them). */
export const BDPM_SYSTEMS = Terminology.systemIdentities(Terminology.BDPM);
/** The names ATC codes are stored under. */
export const ATC_SYSTEMS = Terminology.systemIdentities(Terminology.ATC);
