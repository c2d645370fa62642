import type { Pool, PoolClient } from 'pg';
import type { IndexRows } from '@gw/fhir';
import { GatewayError } from '@gw/platform';
import { Binder } from './search-sql';
import type { SharingRows } from '../sharing/care-projection';

/** A stored version: metadata plus the exact JSON text served. */
export interface StoredResource {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: string;
  deleted: boolean;
  ownerOrg: string | null;
  json: string | null;
  /** The one Patient the resource is about (see patientIdOf); null when none or several. */
  patientId?: string | null;
}

/** One version ready to be written. */
export interface NewVersion extends StoredResource {
  rows: IndexRows;
  /** True when a previous version exists (its index rows must go). */
  replaces: boolean;
  /** Who wrote it, kept in the history row (the durable write audit). */
  clientId: string;
  requestId?: string;
  /** meta.security holds v3-Confidentiality R or V. */
  restricted?: boolean;
  /** The PractitionerRole of the person who wrote it (token exchange), kept in the history row. */
  agent?: string | null;
  /** The équipe-de-soins rows this version maintains (source types only; see projectSharing). */
  sharing?: SharingRows;
}

const INDEX_TABLES = ['sp_token', 'sp_string', 'sp_date', 'sp_reference', 'sp_number'];

/**
 * Writes versions, their history and their search-index rows in ONE SQL statement (data-modifying
 * CTEs over unnest arrays): atomic on its own, one round trip whatever the batch size.
 */
export async function persistVersions(
  db: Pool | PoolClient,
  versions: NewVersion[],
  extra?: ExtraStatement,
): Promise<unknown[]> {
  const b = new Binder();
  if (versions.length === 0) {
    if (!extra) {
      return [];
    }
    const e = extra((v) => b.bind(v));
    return (await db.query(`WITH ${e.ctes.join(',\n')} ${e.select}`, b.values)).rows;
  }
  const col = <T>(f: (v: NewVersion) => T): T[] => versions.map(f);
  const ctes = [
    `input AS (SELECT * FROM unnest(${b.bind(col((v) => v.resourceType))}::text[], ${b.bind(col((v) => v.id))}::text[],
      ${b.bind(col((v) => v.versionId))}::int[], ${b.bind(col((v) => v.lastUpdated))}::timestamptz[],
      ${b.bind(col((v) => v.deleted))}::bool[], ${b.bind(col((v) => v.ownerOrg))}::text[], ${b.bind(col((v) => v.json))}::text[],
      ${b.bind(col((v) => v.clientId))}::text[], ${b.bind(col((v) => v.requestId ?? null))}::text[],
      ${b.bind(col((v) => v.patientId ?? null))}::text[], ${b.bind(col((v) => v.restricted ?? false))}::bool[],
      ${b.bind(col((v) => v.agent ?? null))}::text[])
      AS t(resource_type, id, version_id, last_updated, deleted, owner_org, content, client_id, request_id, patient_id, restricted, agent))`,
    `w_res AS (INSERT INTO resource (resource_type, id, version_id, last_updated, deleted, owner_org, content, patient_id, restricted)
      SELECT resource_type, id, version_id, last_updated, deleted, owner_org, content, patient_id, restricted FROM input ON CONFLICT (resource_type, id) DO UPDATE SET version_id = EXCLUDED.version_id,
      last_updated = EXCLUDED.last_updated, deleted = EXCLUDED.deleted, owner_org = EXCLUDED.owner_org, content = EXCLUDED.content,
      patient_id = EXCLUDED.patient_id, restricted = EXCLUDED.restricted)`,
    `w_hist AS (INSERT INTO resource_history (resource_type, id, version_id, last_updated, deleted, owner_org, client_id, request_id, content, agent)
      SELECT resource_type, id, version_id, last_updated, deleted, owner_org, client_id, request_id, content, agent FROM input)`,
  ];
  const replaced = versions.filter((v) => v.replaces);
  if (replaced.length > 0) {
    const types = b.bind(replaced.map((v) => v.resourceType));
    const ids = b.bind(replaced.map((v) => v.id));
    INDEX_TABLES.forEach((table, i) =>
      ctes.push(
        `d${i} AS (DELETE FROM ${table} s USING unnest(${types}::text[], ${ids}::text[]) AS o(t, i) WHERE s.resource_type = o.t AND s.id = o.i)`,
      ),
    );
  }
  addIndexInserts(ctes, b, versions);
  ctes.push(...sharingCtes(b, versions));
  const e = extra?.((v) => b.bind(v));
  try {
    return (await db.query(`WITH ${[...ctes, ...(e?.ctes ?? [])].join(',\n')} ${e?.select ?? 'SELECT 1'}`, b.values))
      .rows;
  } catch (err) {
    throw directoryConflict(err) ?? concurrentCreate(err) ?? err;
  }
}

/**
 * Two writers creating the same new Type/id at once (update-as-create; no row existed to lock):
 * the loser's version 1 hits the history's primary key and its whole statement rolls back. A 409
 * the client can retry (it will then update, or be refused), not a 500.
 */
function concurrentCreate(err: unknown): GatewayError | undefined {
  const e = err as { code?: string; constraint?: string };
  if (e?.code !== '23505' || (e.constraint !== 'resource_history_pkey' && e.constraint !== 'resource_pkey')) {
    return undefined;
  }
  return new GatewayError('conflict', {
    text: 'The resource was created by a concurrent request: read it and retry',
    code: 'conflict',
  });
}

/**
 * The directory identity trigger (migration 10) refuses a second Practitioner with an RPPS /
 * IdNatPS, or a second Organization with a FINESS / SIRET / IdNatStruct, already held: a 409 that
 * names the holder, whatever the write path.
 */
export function directoryConflict(err: unknown): GatewayError | undefined {
  const e = err as { code?: string; constraint?: string; message?: string };
  if (e?.code !== '23505' || e.constraint !== 'directory_identity_pkey') {
    return undefined;
  }
  return new GatewayError('conflict', {
    text: `${e.message ?? 'duplicate directory identifier'}: one entry per national identifier; reference the existing one or use a conditional create (If-None-Exist)`,
    code: 'duplicate',
  });
}

/**
 * More data-modifying CTEs to run in the same statement as the versions (e.g. a ledger row that must
 * be written with them), and the final SELECT whose rows persistVersions returns.
 */
export type ExtraStatement = (bind: (value: unknown) => string) => { ctes: string[]; select: string };

/**
 * A parametrised statement with its values written as SQL literals, so that several statements can
 * go to PostgreSQL in one simple-protocol query (one round trip: on machines where a socket write
 * costs half a millisecond, round trips are the cost of a small transaction).
 */
export function inlineSql(sql: string, values: unknown[]): string {
  return sql.replace(/\$(\d+)/g, (_m, n: string) => literal(values[Number(n) - 1]));
}

function literal(v: unknown): string {
  if (v === null || v === undefined) {
    return 'NULL';
  }
  if (typeof v === 'number' || typeof v === 'bigint') {
    return String(v);
  }
  if (typeof v === 'boolean') {
    return v ? 'true' : 'false';
  }
  if (Array.isArray(v)) {
    return quote(
      `{${v.map((x) => (x === null || x === undefined ? 'NULL' : `"${String(x).replace(/[\\"]/g, '\\$&')}"`)).join(',')}}`,
    );
  }
  return quote(v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v as string));
}

/** A standard-conforming string literal (E'' form when it holds backslashes). */
function quote(text: string): string {
  const body = text.replace(/'/g, "''");
  return text.includes('\\') ? `E'${body.replace(/\\/g, '\\\\')}'` : `'${body}'`;
}

/**
 * The équipe-de-soins projection, in the same statement as the versions: the rows of each written
 * source are replaced (a deletion or an ended source leaves none). Within one statement the
 * DELETEs see the rows as they were before it, so the new rows are never removed.
 */
export function sharingCtes(b: Binder, versions: readonly Pick<NewVersion, 'sharing'>[]): string[] {
  const bySource = new Map<string, SharingRows>();
  for (const v of versions) {
    if (v.sharing) {
      bySource.set(v.sharing.source, v.sharing);
    }
  }
  if (bySource.size === 0) {
    return [];
  }
  const projections = [...bySource.values()];
  const sources = b.bind(projections.map((p) => p.source));
  const ctes = [
    `sa_d AS (DELETE FROM care_access WHERE source = ANY(${sources}::text[]))`,
    `so_d AS (DELETE FROM care_opposition WHERE source = ANY(${sources}::text[]))`,
  ];
  // Arrays of arrays cannot be unnested row by row: classes travel as comma-joined type names.
  const joined = (c: string[] | null): string | null => (c ? c.join(',') : null);
  const access = projections.flatMap((p) => p.access.map((r) => ({ ...r, source: p.source })));
  if (access.length > 0) {
    const a = <T>(f: (r: (typeof access)[number]) => T): string => b.bind(access.map(f));
    ctes.push(`sa_i AS (INSERT INTO care_access (patient_id, grantee, basis, classes, resource_ref, valid, role, source, recognised_by, recognised_at)
      SELECT p, g, bs, string_to_array(c, ','), rr, tstzrange(f, t, '[)'), rl, s, rb, ra
      FROM unnest(${a((r) => r.patientId)}::text[], ${a((r) => r.grantee)}::text[], ${a((r) => r.basis)}::text[],
        ${a((r) => joined(r.classes))}::text[], ${a((r) => r.resourceRef)}::text[], ${a((r) => r.from)}::timestamptz[],
        ${a((r) => r.to)}::timestamptz[], ${a((r) => r.role)}::text[], ${a((r) => r.source)}::text[],
        ${a((r) => r.recognisedBy)}::text[], ${a((r) => r.recognisedAt)}::timestamptz[])
      AS x(p, g, bs, c, rr, f, t, rl, s, rb, ra))`);
  }
  const opp = projections.flatMap((p) => p.oppositions.map((r) => ({ ...r, source: p.source })));
  if (opp.length > 0) {
    const o = <T>(f: (r: (typeof opp)[number]) => T): string => b.bind(opp.map(f));
    ctes.push(`so_i AS (INSERT INTO care_opposition (patient_id, actor, classes, valid, source)
      SELECT p, a, string_to_array(c, ','), tstzrange(f, t, '[)'), s
      FROM unnest(${o((r) => r.patientId)}::text[], ${o((r) => r.actor)}::text[], ${o((r) => joined(r.classes))}::text[],
        ${o((r) => r.from)}::timestamptz[], ${o((r) => r.to)}::timestamptz[], ${o((r) => r.source)}::text[])
      AS x(p, a, c, f, t, s))`);
  }
  return ctes;
}

type Cols = Record<string, { type: string; values: unknown[] }>;

function addIndexInserts(ctes: string[], b: Binder, versions: NewVersion[]): void {
  const tok: Cols = cols({ code: 'text', system: 'text', value: 'text' });
  const str: Cols = cols({ code: 'text', value: 'text', raw: 'text' });
  const dat: Cols = cols({ code: 'text', low: 'timestamptz', high: 'timestamptz' });
  const ref: Cols = cols({ code: 'text', target_type: 'text', target_id: 'text' });
  const num: Cols = cols({ code: 'text', value: 'numeric', system: 'text', unit: 'text' });
  for (const v of versions) {
    const push = (c: Cols, row: Record<string, unknown>): void => {
      c.resource_type.values.push(v.resourceType);
      c.id.values.push(v.id);
      for (const k of Object.keys(row)) {
        c[k].values.push(row[k]);
      }
    };
    v.rows.tokens.forEach((r) => push(tok, { code: r.code, system: r.system, value: r.value }));
    v.rows.strings.forEach((r) => push(str, { code: r.code, value: r.value, raw: r.raw }));
    v.rows.dates.forEach((r) => push(dat, { code: r.code, low: r.low, high: r.high }));
    v.rows.references.forEach((r) => push(ref, { code: r.code, target_type: r.targetType, target_id: r.targetId }));
    v.rows.numbers.forEach((r) => push(num, { code: r.code, value: r.value, system: r.system, unit: r.unit }));
  }
  const tables: [string, Cols][] = [
    ['sp_token', tok],
    ['sp_string', str],
    ['sp_date', dat],
    ['sp_reference', ref],
    ['sp_number', num],
  ];
  tables.forEach(([table, c], i) => {
    if (c.id.values.length === 0) {
      return;
    }
    const names = Object.keys(c);
    const arrays = names.map((n) => `${b.bind(c[n].values)}::${c[n].type}[]`);
    ctes.push(`i${i} AS (INSERT INTO ${table} (${names.join(', ')}) SELECT * FROM unnest(${arrays.join(', ')}))`);
  });
}

function cols(extra: Record<string, string>): Cols {
  const out: Cols = { resource_type: { type: 'text', values: [] }, id: { type: 'text', values: [] } };
  for (const [k, t] of Object.entries(extra)) {
    out[k] = { type: t, values: [] };
  }
  return out;
}
