import type { Pool } from 'pg';

/**
 * Versioned schema migrations, applied in order at boot under an advisory lock so that several
 * replicas starting together apply each one exactly once. Never edit a shipped migration: add one.
 */
export const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'fhir store, search index, clients, audit',
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

-- OAuth2 clients (SMART Backend Services). Secrets are stored as scrypt hashes only.
CREATE TABLE client (
  id text PRIMARY KEY,
  name text NOT NULL,
  organization text NOT NULL,
  scopes text NOT NULL,
  admin boolean NOT NULL DEFAULT false,
  secret_hash text,
  jwks jsonb,
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- client_assertion jti already seen (replay protection), kept until they expire.
CREATE TABLE client_assertion_jti (
  jti text PRIMARY KEY,
  client_id text NOT NULL,
  expires_at timestamptz NOT NULL
);

CREATE TABLE signing_key (
  kid text PRIMARY KEY,
  alg text NOT NULL,
  private_jwk jsonb NOT NULL,
  public_jwk jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

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
    version: 2,
    name: 'hl7 v2 sources, message ledger, movements, domain events',
    sql: `
-- A sending system (MSH-3 + MSH-4 namespace ids) bound to the Organization that owns what it sends.
CREATE TABLE hl7_source (
  id uuid PRIMARY KEY,
  sending_application text NOT NULL,
  sending_facility text NOT NULL,
  organization text NOT NULL,
  name text NOT NULL,
  charset text CHECK (charset IN ('UTF-8', 'ISO-8859-1', 'ISO-8859-15')),
  ipp_system text,
  visit_system text,
  unknown_events text NOT NULL DEFAULT 'reject' CHECK (unknown_events IN ('reject', 'ignore')),
  auto_registered boolean NOT NULL DEFAULT false,
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (sending_application, sending_facility)
);

-- Every inbound message, raw, with what became of it. One non-duplicate row per (source, MSH-10):
-- a replay finds it and returns its ACK; rejected messages (unknown source…) may be sent again.
CREATE TABLE hl7_message (
  id bigserial PRIMARY KEY,
  received_at timestamptz NOT NULL DEFAULT now(),
  transport text NOT NULL,
  source_key text NOT NULL,
  source_id uuid REFERENCES hl7_source (id),
  control_id text NOT NULL,
  event text,
  status text NOT NULL CHECK (status IN ('processed', 'error', 'rejected', 'ignored', 'duplicate')),
  raw bytea NOT NULL,
  charset text,
  ack text,
  ack_code text,
  error text,
  resources text[] NOT NULL DEFAULT '{}',
  duplicate_of bigint,
  attempts integer NOT NULL DEFAULT 1,
  processed_at timestamptz
);
CREATE UNIQUE INDEX hl7_message_control_idx ON hl7_message (source_key, control_id)
  WHERE status IN ('processed', 'error', 'ignored');
CREATE INDEX hl7_message_status_idx ON hl7_message (status, id);

-- PAM-FR movements (ZBE) per visit: the Encounter is recomputed from them, so that UPDATE/CANCEL
-- apply to the right movement and out-of-order events converge.
CREATE TABLE hl7_movement (
  source_id uuid NOT NULL REFERENCES hl7_source (id),
  visit text NOT NULL,
  movement_id text NOT NULL,
  trigger text NOT NULL,
  start_at timestamptz,
  cancelled boolean NOT NULL DEFAULT false,
  updated boolean NOT NULL DEFAULT false,
  data jsonb NOT NULL,
  seq bigserial,
  message_id bigint,
  PRIMARY KEY (source_id, visit, movement_id)
);

-- Domain events recorded in the transaction of the write that causes them (transactional outbox).
CREATE TABLE domain_event (
  id bigserial PRIMARY KEY,
  type text NOT NULL,
  resource text NOT NULL,
  version_id integer NOT NULL,
  subject text,
  owner_org text,
  occurred_at timestamptz,
  status text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'withdrawn')),
  created_at timestamptz NOT NULL DEFAULT now(),
  withdrawn_at timestamptz,
  UNIQUE (type, resource, version_id)
);
CREATE INDEX domain_event_resource_idx ON domain_event (resource) WHERE status = 'published';

-- "Encounter discharged": an Encounter of a hospital stay becomes finished (HL7 A03 or any FHIR
-- write); withdrawn when it leaves finished (A13). A trigger covers every write path at once.
CREATE FUNCTION gw_encounter_discharge_event() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  new_doc jsonb := CASE WHEN NEW.deleted OR NEW.content IS NULL THEN NULL ELSE NEW.content::jsonb END;
  old_doc jsonb := NULL;
  was_finished boolean := false;
  is_finished boolean := coalesce(new_doc->>'status' = 'finished', false);
BEGIN
  IF TG_OP = 'UPDATE' AND NOT OLD.deleted AND OLD.content IS NOT NULL THEN
    old_doc := OLD.content::jsonb;
    was_finished := coalesce(old_doc->>'status' = 'finished', false);
  END IF;
  IF is_finished AND NOT was_finished AND (
       new_doc->'class'->>'code' IN ('IMP', 'ACUTE', 'NONAC', 'SS', 'EMER', 'OBSENC', 'PRENC')
       OR new_doc ? 'hospitalization') THEN
    INSERT INTO domain_event (type, resource, version_id, subject, owner_org, occurred_at)
    VALUES ('encounter.discharged', 'Encounter/' || NEW.id, NEW.version_id, new_doc->'subject'->>'reference',
            NEW.owner_org, CASE WHEN new_doc->'period'->>'end' ~ '^\\d{4}-\\d{2}-\\d{2}T' THEN (new_doc->'period'->>'end')::timestamptz END)
    ON CONFLICT DO NOTHING;
  ELSIF was_finished AND NOT is_finished THEN
    UPDATE domain_event SET status = 'withdrawn', withdrawn_at = now()
    WHERE type = 'encounter.discharged' AND resource = 'Encounter/' || NEW.id AND status = 'published';
  END IF;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER resource_encounter_discharge AFTER INSERT OR UPDATE ON resource
  FOR EACH ROW WHEN (NEW.resource_type = 'Encounter') EXECUTE FUNCTION gw_encounter_discharge_event();
`,
  },
  {
    version: 3,
    name: 'exchange: outbox dispatch, routes, routings, deliveries',
    sql: `
-- Outbox relay: an event is handed to the queue once (the job id makes a second hand-over a no-op).
ALTER TABLE domain_event ADD COLUMN dispatched_at timestamptz, ADD COLUMN withdraw_dispatched_at timestamptz;
CREATE INDEX domain_event_undispatched_idx ON domain_event (id) WHERE dispatched_at IS NULL;
CREATE INDEX domain_event_withdraw_idx ON domain_event (id) WHERE status = 'withdrawn' AND withdraw_dispatched_at IS NULL;
CREATE FUNCTION gw_domain_event_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('gw_domain_event', '');
  RETURN NULL;
END
$fn$;
CREATE TRIGGER domain_event_notify AFTER INSERT OR UPDATE ON domain_event
  FOR EACH STATEMENT EXECUTE FUNCTION gw_domain_event_notify();

-- Routing rules are data: the most specific active route wins (hospital, then territory, then default).
CREATE TABLE exchange_route (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  hospital text,
  territory text,
  follow_up_days integer NOT NULL DEFAULT 7 CHECK (follow_up_days BETWEEN 0 AND 365),
  recipients text[] NOT NULL DEFAULT '{mt,care-team}',
  channels text[] NOT NULL DEFAULT '{mssante,mhd}',
  active boolean NOT NULL DEFAULT true,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX exchange_route_scope_idx ON exchange_route (coalesce(hospital, ''), coalesce(territory, '')) WHERE active;
INSERT INTO exchange_route (name) VALUES ('default');

-- One row per routed discharge event: what routing decided (the idempotency record of the route job).
CREATE TABLE exchange_routing (
  event_id bigint PRIMARY KEY REFERENCES domain_event (id),
  route_id uuid REFERENCES exchange_route (id),
  outcome text NOT NULL,
  tasks text[] NOT NULL DEFAULT '{}',
  document_unique_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  withdrawn_at timestamptz
);

-- One row per message to send: its state is the truth the jobs re-read (a job only carries the id).
CREATE TABLE exchange_delivery (
  id uuid PRIMARY KEY,
  event_id bigint NOT NULL REFERENCES domain_event (id),
  channel text NOT NULL CHECK (channel IN ('mssante', 'mhd')),
  destination text NOT NULL,
  recipient text,
  communication text,
  task text,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'sent', 'processed', 'failed', 'dead', 'cancelled', 'refused')),
  attempts integer NOT NULL DEFAULT 0,
  replays integer NOT NULL DEFAULT 0,
  remote_id text,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  acknowledged_at timestamptz,
  UNIQUE (event_id, channel, destination)
);
CREATE INDEX exchange_delivery_status_idx ON exchange_delivery (status, created_at);
CREATE INDEX exchange_delivery_remote_idx ON exchange_delivery (remote_id) WHERE remote_id IS NOT NULL;

-- Every attempt with the remote answer (also written as a FHIR AuditEvent).
CREATE TABLE exchange_attempt (
  id bigserial PRIMARY KEY,
  delivery_id uuid NOT NULL REFERENCES exchange_delivery (id),
  attempt integer NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  outcome text NOT NULL CHECK (outcome IN ('success', 'retry', 'dead', 'refused', 'skipped')),
  remote text
);
CREATE INDEX exchange_attempt_delivery_idx ON exchange_attempt (delivery_id, id);
`,
  },
  {
    version: 4,
    name: 'indicators: projection of patients, practitioners, organizations and clinical facts',
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
        WHERE i->>'system' IN ('urn:oid:1.2.250.1.213.1.4.8', 'urn:oid:1.2.250.1.213.1.4.9', 'urn:oid:1.2.250.1.213.1.4.10', 'urn:oid:1.2.250.1.213.1.4.11')
          AND coalesce(i->>'use', '') <> 'old'
          AND EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(j->'extension', '[]')) e, jsonb_array_elements(coalesce(e->'extension', '[]')) s
                       WHERE e->>'url' = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability'
                         AND s->>'url' = 'identityStatus' AND s->'valueCoding'->>'code' = 'QUAL')
        LIMIT 1),
      (SELECT substring(l->'other'->>'reference' FROM '^Patient/(.+)$') FROM jsonb_array_elements(coalesce(j->'link', '[]')) l
        WHERE l->>'type' IN ('replaced-by', 'replaces', 'seealso') LIMIT 1),
      (SELECT g->>'reference' FROM jsonb_array_elements(coalesce(j->'generalPractitioner', '[]')) g
        WHERE g->>'reference' ~ '^(Practitioner|PractitionerRole)/' LIMIT 1),
      (SELECT coalesce(e->>'valueCode', e->'valueCoding'->>'code') FROM jsonb_array_elements(coalesce(j->'extension', '[]')) e
        WHERE e->>'url' = 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/mt-status' LIMIT 1),
      (SELECT coalesce(e->>'valueString', e->>'valueCode', e->'valueCoding'->>'code')
         FROM jsonb_array_elements(coalesce(j->'address', '[]')) a, jsonb_array_elements(coalesce(a->'extension', '[]')) e
        WHERE e->>'url' = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code'
        ORDER BY (a->>'use' = 'home') DESC NULLS LAST LIMIT 1),
      coalesce((j->>'active')::boolean, true),
      coalesce((j->>'deceasedBoolean')::boolean, false) OR j ? 'deceasedDateTime';
    RETURN;
  END IF;
  IF p_type = 'Practitioner' THEN
    INSERT INTO ind_practitioner (id, active, fictitious)
    VALUES (p_id, coalesce((j->>'active')::boolean, true),
      EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(j->'meta'->'tag', '[]')) t
               WHERE t->>'system' = 'https://gateway.fr-primary-care.org/fhir/CodeSystem/practitioner-flag' AND t->>'code' = 'fictitious'));
    RETURN;
  END IF;
  IF p_type = 'Organization' THEN
    INSERT INTO ind_organization (id, name, type, part_of, communes)
    VALUES (p_id, j->>'name',
      (SELECT c->>'code' FROM jsonb_array_elements(coalesce(j->'type', '[]')) ty, jsonb_array_elements(coalesce(ty->'coding', '[]')) c
        WHERE c->>'system' = 'https://gateway.fr-primary-care.org/fhir/CodeSystem/organization-type' LIMIT 1),
      substring(j->'partOf'->>'reference' FROM '^Organization/(.+)$'),
      coalesce(ARRAY(SELECT e->>'valueCode' FROM jsonb_array_elements(coalesce(j->'extension', '[]')) e
        WHERE e->>'url' = 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/territory-commune' AND e ? 'valueCode'), '{}'));
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
  FOR EACH ROW WHEN (NEW.resource_type IN ('Patient', 'Practitioner', 'Organization', 'Observation', 'Immunization', 'Procedure',
    'Condition', 'MedicationRequest', 'MedicationStatement', 'Encounter', 'Task'))
  EXECUTE FUNCTION gw_ind_project_trigger();

SELECT gw_ind_project(resource_type, id, deleted, owner_org, content) FROM resource
 WHERE resource_type IN ('Patient', 'Practitioner', 'Organization', 'Observation', 'Immunization', 'Procedure',
   'Condition', 'MedicationRequest', 'MedicationStatement', 'Encounter', 'Task');
`,
  },
  {
    version: 5,
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
  {
    version: 6,
    name: 'indicators: each clinical fact carries its person',
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
    version: 7,
    name: 'exchange: delivery lease',
    sql: `
-- The attempt sending a delivery holds it until then (or until it ends): a duplicate or retried job
-- that arrives meanwhile (a redelivered event, a stalled job re-run while the first is still in its
-- SMTP dialogue) waits for the outcome instead of sending a second message.
ALTER TABLE exchange_delivery ADD COLUMN lease_until timestamptz;
`,
  },
  {
    version: 8,
    name: 'hl7 ledger: warnings of accepted messages',
    sql: `
-- A message accepted with warnings (AA with ERR severity W, e.g. an INS that failed its checks and
-- was not used): the warnings, so that an operator or an identity reviewer listing messages sees them.
ALTER TABLE hl7_message ADD COLUMN warning text;
`,
  },
  {
    version: 9,
    name: 'hl7 ledger: a replay is the same source, MSH-10 and content',
    sql: `
-- Senders reuse control ids (counters reset, test systems): a message is a replay only when its
-- content is the same too (SHA-256 without MSH-7). Rows recorded before this have no digest and
-- match a replay on their exact bytes. reuse_of: the earlier message whose MSH-10 this one reused.
ALTER TABLE hl7_message ADD COLUMN content_digest text, ADD COLUMN reuse_of bigint;
DROP INDEX hl7_message_control_idx;
CREATE UNIQUE INDEX hl7_message_control_idx ON hl7_message (source_key, control_id, content_digest)
  WHERE status IN ('processed', 'error', 'ignored');
`,
  },
  {
    version: 10,
    name: 'directory: one Practitioner per RPPS, one Organization per FINESS/SIRET; duplicates merged',
    sql: `
-- The normalised national identity keys of a Practitioner (RPPS X and IdNatPS 8X: ps:8X) or an
-- Organization (FINESS F, SIRET S, IdNatStruct 1F/3S: st:1F, st:3S). Same rules as identityKey()
-- in libs/store/src/directory.ts. Identifiers with use 'old' are not identities.
CREATE FUNCTION gw_directory_keys(p_type text, p_content text) RETURNS SETOF text LANGUAGE sql IMMUTABLE AS $fn$
  SELECT DISTINCT k FROM (
    SELECT CASE
      WHEN p_type = 'Practitioner' AND i->>'system' = 'https://rpps.esante.gouv.fr' THEN 'ps:8' || btrim(i->>'value')
      WHEN p_type = 'Practitioner' AND i->>'system' = 'urn:oid:1.2.250.1.71.4.2.1' THEN 'ps:' || btrim(i->>'value')
      WHEN p_type = 'Organization' AND i->>'system' = 'https://finess.esante.gouv.fr' THEN 'st:1' || btrim(i->>'value')
      WHEN p_type = 'Organization' AND i->>'system' = 'https://sirene.fr' AND length(btrim(i->>'value')) = 14 THEN 'st:3' || btrim(i->>'value')
      WHEN p_type = 'Organization' AND i->>'system' = 'urn:oid:1.2.250.1.71.4.2.2' THEN 'st:' || btrim(i->>'value')
    END AS k
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_content::jsonb->'identifier') = 'array' THEN p_content::jsonb->'identifier' ELSE '[]'::jsonb END) AS i
    WHERE coalesce(i->>'use', '') <> 'old' AND coalesce(btrim(i->>'value'), '') <> ''
  ) s WHERE k IS NOT NULL
$fn$;

-- Who holds each key. The primary key is the uniqueness: a concurrent second holder waits for the
-- first to commit, then fails (23505 on directory_identity_pkey, answered 409 by the store).
CREATE TABLE directory_identity (
  key text PRIMARY KEY,
  resource_type text NOT NULL,
  id text NOT NULL
);
CREATE INDEX directory_identity_resource_idx ON directory_identity (resource_type, id);

-- Duplicates merged by this migration (and later by an operator): the loser is deleted, its
-- references point at the survivor; this row is the redirect.
CREATE TABLE directory_merge (
  resource_type text NOT NULL,
  loser text NOT NULL,
  survivor text NOT NULL,
  merged_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (resource_type, loser)
);

-- One more version of a resource written by the migration (content NULL: a deletion), with its
-- meta.versionId / lastUpdated and its history row.
CREATE FUNCTION gw_directory_new_version(p_type text, p_id text, p_content text, p_at timestamptz) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  v integer;
BEGIN
  SELECT version_id + 1 INTO v FROM resource WHERE resource_type = p_type AND id = p_id FOR UPDATE;
  UPDATE resource SET version_id = v, last_updated = p_at, deleted = (p_content IS NULL),
    content = CASE WHEN p_content IS NULL THEN NULL ELSE jsonb_set(jsonb_set(p_content::jsonb, '{meta,versionId}', to_jsonb(v::text)),
      '{meta,lastUpdated}', to_jsonb(to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))::text END
  WHERE resource_type = p_type AND id = p_id;
  INSERT INTO resource_history (resource_type, id, version_id, last_updated, deleted, owner_org, client_id, request_id, content)
    SELECT resource_type, id, version_id, last_updated, deleted, owner_org, 'migration:directory-merge', NULL, content
    FROM resource WHERE resource_type = p_type AND id = p_id;
  IF p_content IS NULL THEN
    DELETE FROM sp_token WHERE resource_type = p_type AND id = p_id;
    DELETE FROM sp_string WHERE resource_type = p_type AND id = p_id;
    DELETE FROM sp_date WHERE resource_type = p_type AND id = p_id;
    DELETE FROM sp_reference WHERE resource_type = p_type AND id = p_id;
    DELETE FROM sp_number WHERE resource_type = p_type AND id = p_id;
  END IF;
END
$fn$;

-- Merge the duplicates already stored: resources sharing a key (transitively) are one entry. The
-- survivor is the one with a directory source, else the oldest (first version), else the lowest id;
-- it gains the identifiers it lacks; every resource that references a loser (sp_reference), or is
-- owned by a loser Organization, gets a new version pointing at the survivor; losers are deleted.
DO $do$
DECLARE
  t timestamptz := now();
  m record;
  rr record;
  lid text;
  doc text;
  added jsonb;
BEGIN
  CREATE TEMP TABLE dir_key ON COMMIT DROP AS
    SELECT r.resource_type, r.id, k AS key,
      (CASE WHEN coalesce(r.content::jsonb->'meta'->'tag' @> '[{"system":"https://gateway.fr-primary-care.org/fhir/CodeSystem/directory-source"}]', false) THEN '0' ELSE '1' END)
      || to_char(coalesce((SELECT min(h.last_updated) FROM resource_history h WHERE h.resource_type = r.resource_type AND h.id = r.id), r.last_updated) AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS')
      || r.id AS rank
    FROM resource r CROSS JOIN LATERAL gw_directory_keys(r.resource_type, r.content) AS k
    WHERE r.resource_type IN ('Practitioner', 'Organization') AND NOT r.deleted AND r.content IS NOT NULL;
  CREATE TEMP TABLE dir_node ON COMMIT DROP AS SELECT DISTINCT resource_type, id, rank, rank AS label FROM dir_key;
  LOOP
    UPDATE dir_node n SET label = x.label FROM (
      SELECT k1.resource_type, k1.id, min(n2.label) AS label
      FROM dir_key k1 JOIN dir_key k2 ON k2.resource_type = k1.resource_type AND k2.key = k1.key
      JOIN dir_node n2 ON n2.resource_type = k2.resource_type AND n2.id = k2.id
      GROUP BY k1.resource_type, k1.id) x
    WHERE n.resource_type = x.resource_type AND n.id = x.id AND x.label < n.label;
    EXIT WHEN NOT FOUND;
  END LOOP;
  INSERT INTO directory_merge (resource_type, loser, survivor, merged_at)
    SELECT l.resource_type, l.id, s.id, t FROM dir_node l JOIN dir_node s ON s.resource_type = l.resource_type AND s.rank = l.label
    WHERE l.rank <> l.label;

  FOR m IN SELECT d.resource_type, d.survivor, array_agg(d.loser ORDER BY d.loser) AS losers FROM directory_merge d WHERE d.merged_at = t GROUP BY 1, 2 LOOP
    -- The survivor keeps its data and gains the identifiers only the losers had.
    SELECT coalesce(jsonb_agg(x.i), '[]'::jsonb) INTO added FROM (
      SELECT DISTINCT ON (i->>'system', i->>'value') i
      FROM resource lr CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(lr.content::jsonb->'identifier') = 'array' THEN lr.content::jsonb->'identifier' ELSE '[]'::jsonb END) AS i
      WHERE lr.resource_type = m.resource_type AND lr.id = ANY(m.losers)
        AND NOT EXISTS (
          SELECT 1 FROM resource sr CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(sr.content::jsonb->'identifier') = 'array' THEN sr.content::jsonb->'identifier' ELSE '[]'::jsonb END) AS j
          WHERE sr.resource_type = m.resource_type AND sr.id = m.survivor AND j->>'system' IS NOT DISTINCT FROM i->>'system' AND j->>'value' IS NOT DISTINCT FROM i->>'value')) x;
    IF jsonb_array_length(added) > 0 THEN
      SELECT jsonb_set(content::jsonb, '{identifier}', coalesce(CASE WHEN jsonb_typeof(content::jsonb->'identifier') = 'array' THEN content::jsonb->'identifier' END, '[]'::jsonb) || added)::text
        INTO doc FROM resource WHERE resource_type = m.resource_type AND id = m.survivor;
      PERFORM gw_directory_new_version(m.resource_type, m.survivor, doc, t);
      INSERT INTO sp_token (resource_type, id, code, system, value)
        SELECT m.resource_type, m.survivor, 'identifier', a->>'system', a->>'value' FROM jsonb_array_elements(added) AS a WHERE a->>'value' IS NOT NULL;
    END IF;

    FOR rr IN
      SELECT DISTINCT x.resource_type, x.id FROM (
        SELECT s.resource_type, s.id FROM sp_reference s WHERE s.target_type = m.resource_type AND s.target_id = ANY(m.losers)
        UNION
        SELECT o.resource_type, o.id FROM resource o
        WHERE m.resource_type = 'Organization' AND o.owner_org = ANY(SELECT 'Organization/' || unnest(m.losers))) x
      WHERE NOT (x.resource_type = m.resource_type AND x.id = ANY(m.losers))
    LOOP
      SELECT content INTO doc FROM resource WHERE resource_type = rr.resource_type AND id = rr.id AND NOT deleted;
      CONTINUE WHEN doc IS NULL;
      FOREACH lid IN ARRAY m.losers LOOP
        doc := replace(replace(doc, '"' || m.resource_type || '/' || lid || '"', '"' || m.resource_type || '/' || m.survivor || '"'),
                       '/' || m.resource_type || '/' || lid || '"', '/' || m.resource_type || '/' || m.survivor || '"');
      END LOOP;
      IF m.resource_type = 'Organization' THEN
        UPDATE resource SET owner_org = 'Organization/' || m.survivor
        WHERE resource_type = rr.resource_type AND id = rr.id AND owner_org = ANY(SELECT 'Organization/' || unnest(m.losers));
      END IF;
      PERFORM gw_directory_new_version(rr.resource_type, rr.id, doc, t);
    END LOOP;
    UPDATE sp_reference SET target_id = m.survivor WHERE target_type = m.resource_type AND target_id = ANY(m.losers);
    IF m.resource_type = 'Organization' THEN
      UPDATE client SET organization = 'Organization/' || m.survivor WHERE organization = ANY(SELECT 'Organization/' || unnest(m.losers));
      UPDATE hl7_source SET organization = 'Organization/' || m.survivor WHERE organization = ANY(SELECT 'Organization/' || unnest(m.losers));
    END IF;
    FOREACH lid IN ARRAY m.losers LOOP
      PERFORM gw_directory_new_version(m.resource_type, lid, NULL, t);
    END LOOP;
  END LOOP;
END
$do$;

INSERT INTO directory_identity (key, resource_type, id)
  SELECT DISTINCT ON (k) k, r.resource_type, r.id
  FROM resource r CROSS JOIN LATERAL gw_directory_keys(r.resource_type, r.content) AS k
  WHERE r.resource_type IN ('Practitioner', 'Organization') AND NOT r.deleted AND r.content IS NOT NULL;

-- Every write path (FHIR, Bundles, HL7, the territory loader, the directory import) keeps the keys.
CREATE FUNCTION gw_directory_identity() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  k text;
  holder record;
BEGIN
  DELETE FROM directory_identity WHERE resource_type = NEW.resource_type AND id = NEW.id;
  IF NEW.deleted OR NEW.content IS NULL THEN
    RETURN NULL;
  END IF;
  FOR k IN SELECT gw_directory_keys(NEW.resource_type, NEW.content) LOOP
    INSERT INTO directory_identity (key, resource_type, id) VALUES (k, NEW.resource_type, NEW.id) ON CONFLICT (key) DO NOTHING;
    IF NOT FOUND THEN
      SELECT d.resource_type, d.id INTO holder FROM directory_identity d WHERE d.key = k;
      RAISE EXCEPTION USING ERRCODE = 'unique_violation', CONSTRAINT = 'directory_identity_pkey',
        MESSAGE = format('%s/%s already holds the national identifier %s', holder.resource_type, holder.id, substr(k, 4));
    END IF;
  END LOOP;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER resource_directory_identity AFTER INSERT OR UPDATE ON resource
  FOR EACH ROW WHEN (NEW.resource_type IN ('Practitioner', 'Organization')) EXECUTE FUNCTION gw_directory_identity();
`,
  },
  {
    version: 11,
    name: 'directory import: Annuaire Santé extractions (RPPS, MSSanté mailboxes)',
    sql: `
-- One row per import run (the incremental unit: what a full extraction no longer lists goes inactive).
CREATE TABLE directory_import_run (
  id bigserial PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  ps_file text,
  mss_file text,
  stats jsonb
);

-- The professionals of the RPPS extraction (Identification nationale PP = 8 + RPPS) and their
-- Practitioner; digest = SHA-256 of the lines that made it (same lines: nothing to write).
CREATE TABLE directory_professional (
  id_nat_ps text PRIMARY KEY,
  practitioner_id text NOT NULL,
  digest text NOT NULL,
  last_seen_run bigint NOT NULL,
  active boolean NOT NULL DEFAULT true
);

-- The MSSanté extraction: every mailbox, listed or not. An unlisted (liste rouge) mailbox is never
-- written into a FHIR resource (so never read or searched by a client); routing may use it.
CREATE TABLE directory_mailbox (
  address text PRIMARY KEY,
  kind text NOT NULL,
  id_nat_ps text,
  structure_id text,
  unlisted boolean NOT NULL DEFAULT false,
  active boolean NOT NULL DEFAULT true,
  last_seen_run bigint NOT NULL
);
CREATE INDEX directory_mailbox_ps_idx ON directory_mailbox (id_nat_ps) WHERE active;

-- Lines of the RPPS extraction being imported (one per activity), grouped per professional after the read.
CREATE UNLOGGED TABLE directory_ps_line (
  run bigint NOT NULL,
  id_nat_ps text NOT NULL,
  line jsonb NOT NULL
);
CREATE INDEX directory_ps_line_idx ON directory_ps_line (run, id_nat_ps);
`,
  },
];

const LOCK_KEY = 7_402_118; // arbitrary, stable: "gateway schema migrations"

/**
 * Applies pending migrations; returns the versions applied by this call. `upTo` stops after that
 * version (tests that seed data an older schema allowed, then migrate it).
 */
export async function migrate(pool: Pool, opts: { upTo?: number } = {}): Promise<number[]> {
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migration (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set(
      (await client.query<{ version: number }>('SELECT version FROM schema_migration')).rows.map((r) => r.version),
    );
    // In version order whatever the order of the array (branches merged side by side append in any order).
    for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version) || (opts.upTo !== undefined && m.version > opts.upTo)) {
        continue;
      }
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migration (version, name) VALUES ($1, $2)', [m.version, m.name]);
        await client.query('COMMIT');
        applied.push(m.version);
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    client.release();
  }
  return applied;
}
