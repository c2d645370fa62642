import { sqlList, sqlString as q } from '@gw/platform';
import type { Migration } from '@gw/platform';
import { DRUG_ATC_MIGRATION, FMT_PROJECTION_MIGRATION } from './fmt-projection.schema';
import { MT_VERIFICATION_MIGRATION } from './mt-verification.schema';
import { ROLE_VOUCH_MIGRATION } from './role-vouch.schema';
import {
  IDENTITY_TRUST_SYSTEM,
  IDENTITY_VERIFIED_SOURCE,
  INSEE_CODE_EXTENSION,
  INS_OIDS,
  MT_STATUS_EXTENSION,
  ORGANIZATION_TYPE_SYSTEM,
  PRACTITIONER_FLAG_SYSTEM,
  RELIABILITY_EXTENSION,
  TERRITORY_COMMUNE_EXTENSION,
} from '@gw/fhir';

/**
 * Resource types the projection read when migration 4 shipped (frozen: a shipped migration's SQL
 * never changes; migration 29 widens the trigger, fmt-projection.schema.ts).
 */
const PROJECTED_TYPES_V4 = sqlList([
  'Patient',
  'Practitioner',
  'Organization',
  'Observation',
  'Immunization',
  'Procedure',
  'Condition',
  'MedicationRequest',
  'MedicationStatement',
  'Encounter',
  'Task',
]);

/** The indicator projection (ind_* tables), kept by triggers on every resource write. */
export const INDICATOR_MIGRATIONS: Migration[] = [
  {
    version: 4,
    feature: 'indicators',
    name: 'projection of patients, practitioners, organizations and clinical facts',
    sql: `
-- What the indicator engine (libs/indicators) compiles its criteria against: one narrow row per
-- Patient / Practitioner / Organization and one row per coded clinical fact, kept by a trigger in
-- the same transaction as every resource write (any write path), rebuilt below for existing rows.

-- A FHIR date, dateTime or instant (partial dates included) as its first instant; NULL if absent.
CREATE FUNCTION gw_fhir_instant(v text) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE
    WHEN v IS NULL THEN NULL
    WHEN v ~ '^\\d{4}$' THEN (v || '-01-01T00:00:00Z')::timestamptz
    WHEN v ~ '^\\d{4}-\\d{2}$' THEN (v || '-01T00:00:00Z')::timestamptz
    WHEN v ~ '^\\d{4}-\\d{2}-\\d{2}$' THEN (v || 'T00:00:00Z')::timestamptz
    WHEN v ~ '^\\d{4}-\\d{2}-\\d{2}T' THEN v::timestamptz
  END
$fn$;

CREATE TABLE ind_patient (
  id text PRIMARY KEY,
  owner_org text,
  birth_date date,
  sex text,
  -- The qualified INS (identity status QUAL) when there is one: the same person across practices.
  ins text,
  -- Patient.link target id: an explicit "same person" link between two records.
  link text,
  person_key text GENERATED ALWAYS AS (CASE WHEN ins IS NOT NULL THEN 'ins:' || ins ELSE 'pat:' || least(id, coalesce(link, id)) END) STORED,
  gp text,
  mt_status text,
  commune text,
  active boolean NOT NULL,
  deceased boolean NOT NULL
);
CREATE INDEX ind_patient_owner_idx ON ind_patient (owner_org);
CREATE INDEX ind_patient_gp_idx ON ind_patient (gp);
CREATE INDEX ind_patient_person_idx ON ind_patient (person_key);

CREATE TABLE ind_practitioner (
  id text PRIMARY KEY,
  active boolean NOT NULL,
  fictitious boolean NOT NULL
);

CREATE TABLE ind_organization (
  id text PRIMARY KEY,
  name text,
  type text,
  part_of text,
  communes text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX ind_organization_part_of_idx ON ind_organization (part_of);

-- One row per coding of a clinical fact (Observation.code, Immunization.vaccineCode, Encounter.class…).
CREATE TABLE ind_fact (
  resource_type text NOT NULL,
  id text NOT NULL,
  patient text NOT NULL,
  system text,
  code text NOT NULL,
  at timestamptz,
  at_end timestamptz,
  status text,
  context text
);
CREATE INDEX ind_fact_code_idx ON ind_fact (code, at) INCLUDE (system, patient, status);
CREATE INDEX ind_fact_resource_idx ON ind_fact (resource_type, id);
CREATE INDEX ind_fact_context_idx ON ind_fact (context) WHERE context IS NOT NULL;

CREATE FUNCTION gw_ind_project(p_type text, p_id text, p_deleted boolean, p_owner text, p_content text) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  j jsonb;
  subj text;
  codings jsonb;
  t_at timestamptz;
  t_end timestamptz;
  t_status text;
  t_context text;
BEGIN
  IF p_type = 'Patient' THEN
    DELETE FROM ind_patient WHERE id = p_id;
  ELSIF p_type = 'Practitioner' THEN
    DELETE FROM ind_practitioner WHERE id = p_id;
  ELSIF p_type = 'Organization' THEN
    DELETE FROM ind_organization WHERE id = p_id;
  ELSE
    DELETE FROM ind_fact WHERE resource_type = p_type AND id = p_id;
  END IF;
  IF p_deleted OR p_content IS NULL THEN
    RETURN;
  END IF;
  j := p_content::jsonb;
  IF p_type = 'Patient' THEN
    INSERT INTO ind_patient (id, owner_org, birth_date, sex, ins, link, gp, mt_status, commune, active, deceased)
    SELECT p_id, p_owner,
      CASE WHEN j->>'birthDate' ~ '^\\d{4}-\\d{2}-\\d{2}$' THEN (j->>'birthDate')::date
           WHEN j->>'birthDate' ~ '^\\d{4}' THEN (left(j->>'birthDate', 4) || '-07-01')::date END,
      j->>'gender',
      (SELECT i->>'value' FROM jsonb_array_elements(coalesce(j->'identifier', '[]')) i
        WHERE i->>'system' IN (${sqlList(INS_OIDS.map((oid) => `urn:oid:${oid}`))})
          AND coalesce(i->>'use', '') <> 'old'
          AND EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(j->'extension', '[]')) e, jsonb_array_elements(coalesce(e->'extension', '[]')) s
                       WHERE e->>'url' = ${q(RELIABILITY_EXTENSION)}
                         AND s->>'url' = 'identityStatus' AND s->'valueCoding'->>'code' = 'QUAL')
        LIMIT 1),
      (SELECT substring(l->'other'->>'reference' FROM '^Patient/(.+)$') FROM jsonb_array_elements(coalesce(j->'link', '[]')) l
        WHERE l->>'type' IN ('replaced-by', 'replaces', 'seealso') LIMIT 1),
      (SELECT g->>'reference' FROM jsonb_array_elements(coalesce(j->'generalPractitioner', '[]')) g
        WHERE g->>'reference' ~ '^(Practitioner|PractitionerRole)/' LIMIT 1),
      (SELECT coalesce(e->>'valueCode', e->'valueCoding'->>'code') FROM jsonb_array_elements(coalesce(j->'extension', '[]')) e
        WHERE e->>'url' = ${q(MT_STATUS_EXTENSION)} LIMIT 1),
      (SELECT coalesce(e->>'valueString', e->>'valueCode', e->'valueCoding'->>'code')
         FROM jsonb_array_elements(coalesce(j->'address', '[]')) a, jsonb_array_elements(coalesce(a->'extension', '[]')) e
        WHERE e->>'url' = ${q(INSEE_CODE_EXTENSION)}
        ORDER BY (a->>'use' = 'home') DESC NULLS LAST LIMIT 1),
      coalesce((j->>'active')::boolean, true),
      coalesce((j->>'deceasedBoolean')::boolean, false) OR j ? 'deceasedDateTime';
    RETURN;
  END IF;
  IF p_type = 'Practitioner' THEN
    INSERT INTO ind_practitioner (id, active, fictitious)
    VALUES (p_id, coalesce((j->>'active')::boolean, true),
      EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(j->'meta'->'tag', '[]')) t
               WHERE t->>'system' = ${q(PRACTITIONER_FLAG_SYSTEM)} AND t->>'code' = 'fictitious'));
    RETURN;
  END IF;
  IF p_type = 'Organization' THEN
    INSERT INTO ind_organization (id, name, type, part_of, communes)
    VALUES (p_id, j->>'name',
      (SELECT c->>'code' FROM jsonb_array_elements(coalesce(j->'type', '[]')) ty, jsonb_array_elements(coalesce(ty->'coding', '[]')) c
        WHERE c->>'system' = ${q(ORGANIZATION_TYPE_SYSTEM)} LIMIT 1),
      substring(j->'partOf'->>'reference' FROM '^Organization/(.+)$'),
      coalesce(ARRAY(SELECT e->>'valueCode' FROM jsonb_array_elements(coalesce(j->'extension', '[]')) e
        WHERE e->>'url' = ${q(TERRITORY_COMMUNE_EXTENSION)} AND e ? 'valueCode'), '{}'));
    RETURN;
  END IF;

  subj := coalesce(j->'subject'->>'reference', j->'patient'->>'reference', j->'for'->>'reference');
  IF subj IS NULL OR subj !~ '^Patient/' THEN
    RETURN;
  END IF;
  t_status := j->>'status';
  CASE p_type
    WHEN 'Observation' THEN
      codings := j->'code'->'coding';
      t_at := gw_fhir_instant(coalesce(j->>'effectiveDateTime', j->'effectivePeriod'->>'start', j->>'effectiveInstant', j->>'issued'));
    WHEN 'Immunization' THEN
      codings := j->'vaccineCode'->'coding';
      t_at := gw_fhir_instant(j->>'occurrenceDateTime');
    WHEN 'Procedure' THEN
      codings := j->'code'->'coding';
      t_at := gw_fhir_instant(coalesce(j->>'performedDateTime', j->'performedPeriod'->>'start'));
    WHEN 'Condition' THEN
      codings := j->'code'->'coding';
      t_at := gw_fhir_instant(coalesce(j->>'onsetDateTime', j->'onsetPeriod'->>'start', j->>'recordedDate'));
      t_end := gw_fhir_instant(j->>'abatementDateTime');
      t_status := CASE WHEN j->'verificationStatus'->'coding'->0->>'code' = 'entered-in-error' THEN 'entered-in-error'
                       ELSE j->'clinicalStatus'->'coding'->0->>'code' END;
    WHEN 'MedicationRequest' THEN
      codings := j->'medicationCodeableConcept'->'coding';
      t_at := gw_fhir_instant(j->>'authoredOn');
    WHEN 'MedicationStatement' THEN
      codings := j->'medicationCodeableConcept'->'coding';
      t_at := gw_fhir_instant(coalesce(j->>'effectiveDateTime', j->'effectivePeriod'->>'start', j->>'dateAsserted'));
    WHEN 'Encounter' THEN
      codings := CASE WHEN j ? 'class' THEN jsonb_build_array(j->'class') ELSE NULL END;
      t_at := gw_fhir_instant(j->'period'->>'start');
      t_end := gw_fhir_instant(j->'period'->>'end');
      t_context := j->'serviceProvider'->>'reference';
    WHEN 'Task' THEN
      codings := j->'code'->'coding';
      t_at := gw_fhir_instant(coalesce(j->'executionPeriod'->>'end', j->>'lastModified', j->>'authoredOn'));
      t_context := j->'focus'->>'reference';
    ELSE
      RETURN;
  END CASE;
  IF codings IS NULL OR jsonb_typeof(codings) <> 'array' THEN
    RETURN;
  END IF;
  INSERT INTO ind_fact (resource_type, id, patient, system, code, at, at_end, status, context)
  SELECT DISTINCT p_type, p_id, substring(subj FROM 9), c->>'system', c->>'code', t_at, t_end, t_status, t_context
    FROM jsonb_array_elements(codings) c WHERE c->>'code' IS NOT NULL;
END
$fn$;

CREATE FUNCTION gw_ind_project_trigger() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM gw_ind_project(NEW.resource_type, NEW.id, NEW.deleted, NEW.owner_org, NEW.content);
  RETURN NULL;
END
$fn$;
CREATE TRIGGER resource_indicator_projection AFTER INSERT OR UPDATE ON resource
  FOR EACH ROW WHEN (NEW.resource_type IN (${PROJECTED_TYPES_V4}))
  EXECUTE FUNCTION gw_ind_project_trigger();

SELECT gw_ind_project(resource_type, id, deleted, owner_org, content) FROM resource
 WHERE resource_type IN (${PROJECTED_TYPES_V4});
`,
  },
  {
    version: 6,
    feature: 'indicators',
    name: 'each clinical fact carries its person',
    sql: `
-- Criteria ask "does this person have such facts", and a person is all the records with one
-- qualified INS or linked: each fact now carries its person key (kept by the triggers below when
-- either the fact or the patient record is written), so evaluation reads the fact index alone
-- instead of joining every matching fact to its patient row (found by bench:indicators).
ALTER TABLE ind_fact ADD COLUMN person text;
UPDATE ind_fact f SET person = coalesce((SELECT p.person_key FROM ind_patient p WHERE p.id = f.patient), 'pat:' || f.patient);
ALTER TABLE ind_fact ALTER COLUMN person SET NOT NULL;

CREATE FUNCTION gw_ind_fact_person() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  -- A fact written before its patient record gets the key an unlinked record has; the patient
  -- trigger below corrects it when the record arrives.
  NEW.person := coalesce((SELECT person_key FROM ind_patient WHERE id = NEW.patient), 'pat:' || NEW.patient);
  RETURN NEW;
END
$fn$;
CREATE TRIGGER ind_fact_person BEFORE INSERT ON ind_fact FOR EACH ROW EXECUTE FUNCTION gw_ind_fact_person();

CREATE FUNCTION gw_ind_patient_person() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE ind_fact SET person = NEW.person_key WHERE patient = NEW.id AND person <> NEW.person_key;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER ind_patient_person AFTER INSERT ON ind_patient FOR EACH ROW EXECUTE FUNCTION gw_ind_patient_person();

-- Covering indexes: facts by code and date (has, events), by person (followed by … within N days),
-- by patient record (the trigger above), by the event they are about.
DROP INDEX ind_fact_code_idx;
CREATE INDEX ind_fact_code_idx ON ind_fact (code, at) INCLUDE (system, person, status, resource_type, at_end, id);
CREATE INDEX ind_fact_person_idx ON ind_fact (person, code, at) INCLUDE (system, status, resource_type);
CREATE INDEX ind_fact_patient_idx ON ind_fact (patient);
-- Facts about an event (the follow-up Task of a stay): by event, then code and date.
DROP INDEX ind_fact_context_idx;
CREATE INDEX ind_fact_context_idx ON ind_fact (context, code, at) INCLUDE (system, status, resource_type) WHERE context IS NOT NULL;
`,
  },
  {
    version: 13,
    feature: 'indicators',
    name: 'persons merge across organizations on verified identities only',
    sql: `
-- A Patient record merges with another organization's record of the same person only on facts the
-- gateway verified: its qualified INS counts (ind_patient.ins) only when the record carries the
-- identity-trust tag the store sets for writers allowed to qualify identities; a Patient.link counts
-- (ind_patient.link) only between two records of the same organization. link_target keeps the
-- link as written, so that a record linked before its target arrives is settled when it does.
ALTER TABLE ind_patient ADD COLUMN link_target text;
CREATE INDEX ind_patient_link_target_idx ON ind_patient (link_target) WHERE link_target IS NOT NULL;

-- The projection of every other type stays as it was (its Patient branch is no longer reached).
ALTER FUNCTION gw_ind_project(text, text, boolean, text, text) RENAME TO gw_ind_project_base;

CREATE FUNCTION gw_ind_project(p_type text, p_id text, p_deleted boolean, p_owner text, p_content text) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  j jsonb;
  target text;
BEGIN
  IF p_type <> 'Patient' THEN
    PERFORM gw_ind_project_base(p_type, p_id, p_deleted, p_owner, p_content);
    RETURN;
  END IF;
  DELETE FROM ind_patient WHERE id = p_id;
  IF p_deleted OR p_content IS NULL THEN
    RETURN;
  END IF;
  j := p_content::jsonb;
  target := (SELECT substring(l->'other'->>'reference' FROM '^Patient/(.+)$') FROM jsonb_array_elements(coalesce(j->'link', '[]')) l
              WHERE l->>'type' IN ('replaced-by', 'replaces', 'seealso') LIMIT 1);
  INSERT INTO ind_patient (id, owner_org, birth_date, sex, ins, link, link_target, gp, mt_status, commune, active, deceased)
  SELECT p_id, p_owner,
    CASE WHEN j->>'birthDate' ~ '^\\d{4}-\\d{2}-\\d{2}$' THEN (j->>'birthDate')::date
         WHEN j->>'birthDate' ~ '^\\d{4}' THEN (left(j->>'birthDate', 4) || '-07-01')::date END,
    j->>'gender',
    CASE WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(j->'meta'->'tag', '[]')) t
                       WHERE t->>'system' = ${q(IDENTITY_TRUST_SYSTEM)} AND t->>'code' = ${q(IDENTITY_VERIFIED_SOURCE)}) THEN
      (SELECT i->>'value' FROM jsonb_array_elements(coalesce(j->'identifier', '[]')) i
        WHERE i->>'system' IN (${sqlList(INS_OIDS.map((oid) => `urn:oid:${oid}`))})
          AND coalesce(i->>'use', '') <> 'old'
          AND EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(j->'extension', '[]')) e, jsonb_array_elements(coalesce(e->'extension', '[]')) s
                       WHERE e->>'url' = ${q(RELIABILITY_EXTENSION)}
                         AND s->>'url' = 'identityStatus' AND s->'valueCoding'->>'code' = 'QUAL')
        LIMIT 1)
    END,
    CASE WHEN target = p_id OR EXISTS (SELECT 1 FROM ind_patient o WHERE o.id = target AND o.owner_org = p_owner) THEN target END,
    target,
    (SELECT g->>'reference' FROM jsonb_array_elements(coalesce(j->'generalPractitioner', '[]')) g
      WHERE g->>'reference' ~ '^(Practitioner|PractitionerRole)/' LIMIT 1),
    (SELECT coalesce(e->>'valueCode', e->'valueCoding'->>'code') FROM jsonb_array_elements(coalesce(j->'extension', '[]')) e
      WHERE e->>'url' = ${q(MT_STATUS_EXTENSION)} LIMIT 1),
    (SELECT coalesce(e->>'valueString', e->>'valueCode', e->'valueCoding'->>'code')
       FROM jsonb_array_elements(coalesce(j->'address', '[]')) a, jsonb_array_elements(coalesce(a->'extension', '[]')) e
      WHERE e->>'url' = ${q(INSEE_CODE_EXTENSION)}
      ORDER BY (a->>'use' = 'home') DESC NULLS LAST LIMIT 1),
    coalesce((j->>'active')::boolean, true),
    coalesce((j->>'deceasedBoolean')::boolean, false) OR j ? 'deceasedDateTime';
  -- The records linked to this one: their link holds while both belong to the same organization.
  UPDATE ind_patient o SET link = CASE WHEN o.owner_org = p_owner THEN o.link_target END
   WHERE o.link_target = p_id AND o.id <> p_id
     AND o.link IS DISTINCT FROM CASE WHEN o.owner_org = p_owner THEN o.link_target END;
END
$fn$;

-- A link settled later changes the record's person: its facts follow (as on insert, migration 6).
CREATE TRIGGER ind_patient_person_link AFTER UPDATE OF link ON ind_patient FOR EACH ROW EXECUTE FUNCTION gw_ind_patient_person();

SELECT gw_ind_project(resource_type, id, deleted, owner_org, content) FROM resource WHERE resource_type = 'Patient';
`,
  },
  {
    version: 14,
    feature: 'indicators',
    name: 'each clinical fact carries its owner; the secret of the cell-key noise',
    sql: `
-- An individual-level evaluation (one patient, a recall list, a Group) reads only the facts its
-- caller may read: each fact now carries the organization that owns its resource. A trigger of its
-- own fills it from the resource row (written before the projection's AFTER trigger runs), so the
-- projection function itself is unchanged.
ALTER TABLE ind_fact ADD COLUMN owner_org text;
UPDATE ind_fact f SET owner_org = r.owner_org FROM resource r WHERE r.resource_type = f.resource_type AND r.id = f.id;

CREATE FUNCTION gw_ind_fact_owner() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.owner_org := (SELECT owner_org FROM resource WHERE resource_type = NEW.resource_type AND id = NEW.id);
  RETURN NEW;
END
$fn$;
CREATE TRIGGER ind_fact_owner BEFORE INSERT ON ind_fact FOR EACH ROW EXECUTE FUNCTION gw_ind_fact_owner();

-- The secret of the cell-key perturbation (docs/indicators.md): drawn once per database, never
-- leaves it (record keys are computed in SQL), so nobody can recompute a person's record key.
CREATE TABLE ind_cell_key (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  secret text NOT NULL
);
INSERT INTO ind_cell_key (secret) VALUES (gen_random_uuid()::text || gen_random_uuid()::text);
`,
  },
  FMT_PROJECTION_MIGRATION,
  DRUG_ATC_MIGRATION,
  MT_VERIFICATION_MIGRATION,
  ROLE_VOUCH_MIGRATION,
  {
    version: 39,
    feature: 'indicators',
    name: 'ind_mt_period by source: a CareTeam projection without a table scan',
    // Every CareTeam write replaces its periods (`WHERE source = 'CareTeam/<id>'`, migration 29),
    // with no index leading on source: a scan of every period per write. A territory load wrote
    // one CareTeam per declared MT, and PostgreSQL's share of the load grew with the square of it.
    sql: `CREATE INDEX ind_mt_period_source_idx ON ind_mt_period (source);`,
  },
];
