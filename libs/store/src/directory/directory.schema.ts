import type { Migration } from '@gw/platform';

/**
 * The shared directory: one entry per national identifier (directory_identity, kept by a trigger on
 * every write path), the merge of duplicates stored before it, the import's own tables.
 */
export const DIRECTORY_MIGRATIONS: Migration[] = [
  {
    version: 10,
    feature: 'directory',
    name: 'directory: one Practitioner per RPPS, one Organization per FINESS/SIRET; duplicates merged',
    sql: `
-- The normalised national identity keys of a Practitioner (RPPS X and IdNatPS 8X: ps:8X) or an
-- Organization (FINESS F, SIRET S, IdNatStruct 1F/3S: st:1F, st:3S). Same rules as identityKey()
-- in libs/store/src/directory/directory.identity.ts. Identifiers with use 'old' are not identities.
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
    feature: 'directory',
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
