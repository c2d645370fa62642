import { sqlList } from '@gw/platform';
import type { Migration } from '@gw/platform';
import { HOSPITAL_STAY_CLASSES } from '@gw/fhir';

/**
 * Domain events (the transactional outbox): recorded in the transaction of the write that causes
 * them, by triggers that cover every write path; the relay hands them to the queue.
 */
export const EVENT_MIGRATIONS: Migration[] = [
  {
    version: 2,
    feature: 'events',
    name: 'domain events, encounter discharged',
    sql: `
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
       new_doc->'class'->>'code' IN (${sqlList(HOSPITAL_STAY_CLASSES)})
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
    feature: 'events',
    name: 'outbox dispatch',
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
`,
  },
];
