import { sqlList } from '@gw/platform';
import type { Migration } from '@gw/platform';
import { PROJECTED_TYPE_LIST_V29 } from './fmt-projection.schema';

/** The types the projection trigger watches since migration 35: those of 29 and PractitionerRole (frozen). */
const PROJECTED_TYPES_V35 = sqlList([...PROJECTED_TYPE_LIST_V29, 'PractitionerRole']);

/**
 * Migration 35: a médecin-traitant declaration counts for a GP only when it is verified — the
 * record carrying it (Patient or CareTeam) belongs to an organization where the GP holds an active
 * PractitionerRole. Otherwise structure A could put structure B's GP on its own patients and change
 * that GP's patientèle, FMT figures and care-gap list. Verification is decided when evaluating
 * (evaluator.ts, `verifiedOrganizations`): the periods keep the organization of their record, the
 * roles are projected; nothing is recomputed when a role changes.
 */
export const MT_VERIFICATION_MIGRATION: Migration = {
  version: 35,
  feature: 'indicators',
  name: 'médecin traitant declarations verified by the GP’s PractitionerRoles',
  sql: `
-- Where each practitioner works: one row per PractitionerRole (references as written,
-- 'Practitioner/<id>', 'Organization/<id>'); started/ended its period's days (inclusive; NULL: open).
CREATE TABLE ind_practitioner_role (
  id text PRIMARY KEY,
  practitioner text,
  organization text,
  active boolean NOT NULL,
  started date,
  ended date
);
CREATE INDEX ind_practitioner_role_practitioner_idx ON ind_practitioner_role (practitioner, organization)
  INCLUDE (active, started, ended);

CREATE FUNCTION gw_ind_project_role(p_id text, p_deleted boolean, p_content text) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  j jsonb;
BEGIN
  DELETE FROM ind_practitioner_role WHERE id = p_id;
  IF p_deleted OR p_content IS NULL THEN
    RETURN;
  END IF;
  j := p_content::jsonb;
  INSERT INTO ind_practitioner_role (id, practitioner, organization, active, started, ended)
  VALUES (p_id, j->'practitioner'->>'reference', j->'organization'->>'reference',
          coalesce((j->>'active')::boolean, true),
          gw_fhir_instant(j->'period'->>'start')::date, gw_fhir_instant(j->'period'->>'end')::date);
END
$fn$;

-- The organization of the record that carries each period: the Patient's for source 'Patient',
-- the CareTeam's for 'CareTeam/<id>' (the resource row is written before the projection runs).
ALTER TABLE ind_mt_period ADD COLUMN owner_org text;
CREATE FUNCTION gw_ind_mt_period_owner() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.owner_org := CASE WHEN NEW.source = 'Patient'
    THEN (SELECT owner_org FROM resource WHERE resource_type = 'Patient' AND id = NEW.patient)
    ELSE (SELECT owner_org FROM resource WHERE resource_type = 'CareTeam' AND id = substring(NEW.source FROM 10)) END;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER ind_mt_period_owner BEFORE INSERT ON ind_mt_period FOR EACH ROW EXECUTE FUNCTION gw_ind_mt_period_owner();
UPDATE ind_mt_period m SET owner_org = r.owner_org FROM resource r
 WHERE m.source = 'Patient' AND r.resource_type = 'Patient' AND r.id = m.patient;
UPDATE ind_mt_period m SET owner_org = r.owner_org FROM resource r
 WHERE m.source LIKE 'CareTeam/%' AND r.resource_type = 'CareTeam' AND r.id = substring(m.source FROM 10);

-- A GP's patientèle reads (practitioner, started) and keeps the rows of the organizations where the
-- GP works: the organization is in the index, so the check needs no visit of the table.
DROP INDEX ind_mt_period_practitioner_idx;
CREATE INDEX ind_mt_period_practitioner_idx ON ind_mt_period (practitioner, started) INCLUDE (ended, person, patient, owner_org);

-- For review (an operator's SQL): every period, whether the GP held an active role at the record's
-- organization at some day of it. An evaluation checks the day it considers, not this column.
CREATE VIEW ind_mt_period_review AS
SELECT m.*, EXISTS (
  SELECT 1 FROM ind_practitioner_role r
   WHERE r.practitioner = m.practitioner AND r.organization = m.owner_org AND r.active
     AND (r.started IS NULL OR m.ended IS NULL OR r.started <= m.ended)
     AND (r.ended IS NULL OR m.started IS NULL OR r.ended >= m.started)) AS verified
  FROM ind_mt_period m;

CREATE OR REPLACE FUNCTION gw_ind_project_trigger() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF NEW.resource_type = 'PractitionerRole' THEN
    PERFORM gw_ind_project_role(NEW.id, NEW.deleted, NEW.content);
    RETURN NULL;
  END IF;
  PERFORM gw_ind_project(NEW.resource_type, NEW.id, NEW.deleted, NEW.owner_org, NEW.content);
  IF NEW.resource_type IN ('Patient', 'MedicationDispense', 'Coverage', 'CareTeam') THEN
    PERFORM gw_ind_project_fmt(NEW.resource_type, NEW.id, NEW.deleted, NEW.owner_org, NEW.content, NEW.last_updated);
  END IF;
  RETURN NULL;
END
$fn$;
DROP TRIGGER resource_indicator_projection ON resource;
CREATE TRIGGER resource_indicator_projection AFTER INSERT OR UPDATE ON resource
  FOR EACH ROW WHEN (NEW.resource_type IN (${PROJECTED_TYPES_V35}))
  EXECUTE FUNCTION gw_ind_project_trigger();

SELECT gw_ind_project_role(id, deleted, content) FROM resource WHERE resource_type = 'PractitionerRole';
ANALYZE ind_practitioner_role;
`,
};
