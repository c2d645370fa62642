import { sqlString as q } from '@gw/platform';
import type { Migration } from '@gw/platform';
import { ROLE_OPERATOR_VOUCHED, ROLE_TRUST_SYSTEM } from '@gw/fhir';

/** The role-trust tag as a jsonb containment literal (a role's `meta.tag` holds it). */
const VOUCHED_TAG = q(JSON.stringify([{ system: ROLE_TRUST_SYSTEM, code: ROLE_OPERATOR_VOUCHED }]));

/**
 * Migration 38: a PractitionerRole verifies its organization's médecin-traitant declarations only
 * when the gateway or an operator stands behind it — the role names the organization's own
 * practitioner (a Practitioner resource the organization owns), or it carries the role-trust tag
 * (written or vouched for by an operator; the store keeps the tag only while no client changes the
 * role's practitioner or organization). A role is otherwise its structure's own word: structure B
 * could name structure A's GP and add B's patients to that GP's patientèle. Evaluation joins the
 * two facts (evaluator.ts, `verifiedOrganizations`); the roles already stored are re-projected
 * under the rule, with no vouch (an operator decides: GET /admin/practitioner-roles?verified=false).
 */
export const ROLE_VOUCH_MIGRATION: Migration = {
  version: 38,
  feature: 'indicators',
  name: 'PractitionerRoles verify médecin-traitant declarations only when the practitioner is the organization’s own or an operator vouched',
  sql: `
-- Who owns each Practitioner (resource.owner_org: the structure that registered it, the directory
-- import once it took it over, or whom an operator filed it under). Set on every projection of the
-- Practitioner (its resource row is written before the projection runs).
ALTER TABLE ind_practitioner ADD COLUMN owner_org text;
CREATE FUNCTION gw_ind_practitioner_owner() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.owner_org := (SELECT owner_org FROM resource WHERE resource_type = 'Practitioner' AND id = NEW.id);
  RETURN NEW;
END
$fn$;
CREATE TRIGGER ind_practitioner_owner BEFORE INSERT ON ind_practitioner FOR EACH ROW EXECUTE FUNCTION gw_ind_practitioner_owner();
UPDATE ind_practitioner p SET owner_org = r.owner_org FROM resource r
 WHERE r.resource_type = 'Practitioner' AND r.id = p.id;

-- Whether an operator stands behind the role (its role-trust tag).
ALTER TABLE ind_practitioner_role ADD COLUMN vouched boolean NOT NULL DEFAULT false;
DROP INDEX ind_practitioner_role_practitioner_idx;
CREATE INDEX ind_practitioner_role_practitioner_idx ON ind_practitioner_role (practitioner, organization)
  INCLUDE (active, started, ended, vouched);

CREATE OR REPLACE FUNCTION gw_ind_project_role(p_id text, p_deleted boolean, p_content text) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  j jsonb;
BEGIN
  DELETE FROM ind_practitioner_role WHERE id = p_id;
  IF p_deleted OR p_content IS NULL THEN
    RETURN;
  END IF;
  j := p_content::jsonb;
  INSERT INTO ind_practitioner_role (id, practitioner, organization, active, started, ended, vouched)
  VALUES (p_id, j->'practitioner'->>'reference', j->'organization'->>'reference',
          coalesce((j->>'active')::boolean, true),
          gw_fhir_instant(j->'period'->>'start')::date, gw_fhir_instant(j->'period'->>'end')::date,
          coalesce(jsonb_typeof(j->'meta'->'tag') = 'array' AND j->'meta'->'tag' @> ${VOUCHED_TAG}::jsonb, false));
END
$fn$;

-- Whether a role counts: an operator vouched for it, or it names its organization's own practitioner.
CREATE FUNCTION gw_ind_role_counts(p_vouched boolean, p_practitioner text, p_organization text) RETURNS boolean
LANGUAGE sql STABLE AS $fn$
  SELECT p_vouched OR EXISTS (SELECT 1 FROM ind_practitioner pr
    WHERE p_practitioner = 'Practitioner/' || pr.id AND pr.id = substring(p_practitioner FROM 14) AND pr.owner_org = p_organization)
$fn$;

CREATE OR REPLACE VIEW ind_mt_period_review AS
SELECT m.*, EXISTS (
  SELECT 1 FROM ind_practitioner_role r
   WHERE r.practitioner = m.practitioner AND r.organization = m.owner_org AND r.active
     AND (r.started IS NULL OR m.ended IS NULL OR r.started <= m.ended)
     AND (r.ended IS NULL OR m.started IS NULL OR r.ended >= m.started)
     AND gw_ind_role_counts(r.vouched, r.practitioner, r.organization)) AS verified
  FROM ind_mt_period m;

-- The roles already stored, under the rule (none carries the tag yet: no vouch is assumed).
SELECT gw_ind_project_role(id, deleted, content) FROM resource WHERE resource_type = 'PractitionerRole';
ANALYZE ind_practitioner_role;
ANALYZE ind_practitioner;
`,
};
