import type { Migration } from '@gw/platform';

/**
 * The access trail as the ANS traçabilité profile (tde-auditevent) needs it: who (the person, their
 * role and profession, besides the client), about which patients, on what basis, for what
 * purpose, permitted or denied, and the search's query with identifying values masked.
 */
export const AUDIT_MIGRATIONS: Migration[] = [
  {
    version: 20,
    feature: 'store',
    name: 'access trail: person, patients, basis, purpose, decision, query',
    sql: `
-- Rows written before this version keep NULL here: their decision is read from outcome.
ALTER TABLE audit_event
  ADD COLUMN practitioner text,
  ADD COLUMN practitioner_role text,
  ADD COLUMN profession text,
  ADD COLUMN id_nat_ps text,
  ADD COLUMN patients text[],
  ADD COLUMN basis text[],
  ADD COLUMN purpose text,
  ADD COLUMN decision text CHECK (decision IN ('permit', 'deny')),
  ADD COLUMN query text;
-- "Who looked at my record": the rows naming one patient, newest first (id order).
CREATE INDEX audit_event_patients_idx ON audit_event USING gin (patients);
`,
  },
];
