import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { deepEquals } from '@medplum/core';
import type { Meta, Resource } from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import { carryDecimals, nonCanonicalNumbers, parseFhirJson, stringifyFhirJson, validateForWrite } from '@gw/fhir';
import type { IndexRows, ProfileRegistry, SearchParamRegistry, SearchRequest } from '@gw/fhir';
import type { AccessPolicy, Principal, StoredRef } from './access.policy';
import { IDENTITY_TYPES, equivalentTokens, identityKey } from '../directory/directory.identity';
import { Binder, compileSort, compileWhere } from './search-sql';
import { withIdentityTrust } from './identity-trust';
import { withMailboxTrust } from './mailbox-trust';
import { withRoleTrust } from './role-trust';
import { patientReferences } from './patient-compartment';
import { persistVersions } from './persist';
import { WriteBatcher } from './write-batcher';
import { isRestricted, patientIdOf, projectSharing, SHARING_SOURCE_TYPES } from '../sharing/care-projection';
import type { ExtraStatement, NewVersion, StoredResource } from './persist';

export type { StoredResource };

export type Queryable = Pool | PoolClient;

export interface WriteContext {
  principal: Principal;
  requestId?: string;
  /**
   * An operator's decision on a PractitionerRole's vouch (role-trust tag): false writes the version
   * without it (the admin API's unverify). Absent: an admin write vouches, a client's keeps or
   * drops it (see withRoleTrust). Only the gateway's own services set it.
   */
  roleVouch?: boolean;
}

/** A history request: instance (type + id), type (type) or system (types). */
export interface HistoryQuery {
  type?: string;
  id?: string;
  /** System history: the resource types to list. */
  types?: string[];
  count: number;
  offset: number;
  /** `_since`: versions written at or after this instant. */
  since?: string;
  /** `_at`: versions current at some point of this period [low, high). */
  at?: { low: string; high: string };
}

export interface SearchResult {
  matches: StoredResource[];
  included: StoredResource[];
  total?: number;
  hasMore: boolean;
  unsupported: { key: string; reason: string }[];
}

/** System of the tag that records which organization owns a resource. */
export const OWNER_TAG_SYSTEM = 'https://gateway.fr-primary-care.org/fhir/CodeSystem/owner-organization';
export const SOURCE_PREFIX = 'urn:gateway:client:';

const INCLUDE_LIMIT = 1000;
/** Valid base64 standing in for a Binary's data the writer encoded itself (see prepareCreate). */
const BASE64_STAND_IN = 'AA==';

/** Settings of the équipe-de-soins projection. */
export interface SharingSettings {
  /** Months an encounter keeps its structure's access after it ended (GW_SHARING_ENCOUNTER_MONTHS). */
  encounterMonths: number;
}

const COLUMNS = 'resource_type, id, version_id, last_updated, deleted, owner_org, patient_id, content';

/**
 * The versioned FHIR store over PostgreSQL: every write keeps a version, updates the search index
 * in the same statement, and asks the access policy first.
 */
export class FhirRepository {
  private readonly batcher: WriteBatcher;

  constructor(
    readonly pool: Pool,
    private readonly registry: SearchParamRegistry,
    private readonly policy: AccessPolicy,
    private readonly profiles?: ProfileRegistry,
    /** A search on the pool runs under this statement_timeout (GW_STATEMENT_TIMEOUT_MS); 0: none. */
    private readonly statementTimeoutMs = 0,
    private readonly sharing: SharingSettings = { encounterMonths: 24 },
  ) {
    this.batcher = new WriteBatcher(pool);
  }

  /**
   * Runs `fn` in a transaction and commits. With `{ begin: false }` the callback sends BEGIN itself,
   * batched with its first statements (one round trip less). A connection whose ROLLBACK fails is
   * discarded rather than returned to the pool.
   */
  async withTransaction<T>(fn: (db: PoolClient) => Promise<T>, opts: { begin?: boolean } = {}): Promise<T> {
    return withTransaction(this.pool, fn, opts);
  }

  /**
   * Validates, stamps and indexes a new resource; returns what must be persisted. `validate: false`
   * is for the bulk territory load only: its generator is trusted code whose every resource shape
   * is validated on a sample (see BulkTerritoryLoader); everything else (stamps, search rows,
   * patient id, sharing projection) is computed exactly as for any write. `encodedData: true` is for
   * a Binary whose `data` the caller itself base64-encoded from bytes: the resource is validated
   * with a stand-in for its data (checking 100 kB of base64 character by character was a fifth of
   * the gateway's time per filed document), every other element as for any write.
   */
  prepareCreate(
    resource: Resource,
    ctx: WriteContext,
    id: string = randomUUID(),
    opts: { validate?: boolean; encodedData?: boolean } = {},
  ): NewVersion {
    this.checkWrite(ctx.principal, undefined, resource);
    const owner = this.policy.ownerFor(ctx.principal, requestedOwner(resource));
    const validate = opts.validate === false ? 'no' : opts.encodedData ? 'except-data' : 'all';
    return this.prepare(resource, id, 1, owner, ctx, false, undefined, validate);
  }

  /** Validates, stamps and indexes the next version of `existing` (already read under lock by the caller). */
  prepareUpdate(existing: StoredResource, resource: Resource, ctx: WriteContext): NewVersion {
    this.checkWrite(ctx.principal, existing, resource);
    const owner = this.ownerOnUpdate(ctx.principal, existing, resource);
    return this.prepare(resource, existing.id, existing.versionId + 1, owner, ctx, true, existing.json);
  }

  /** Outside a transaction, concurrent creates share one statement and one commit (group commit). */
  async create(resource: Resource, ctx: WriteContext, db: Queryable = this.pool): Promise<StoredResource> {
    const v = this.prepareCreate(resource, ctx);
    await (db === this.pool ? this.batcher.write(v) : persistVersions(db, [v]));
    return toStored(v);
  }

  /** Persists several prepared versions in one statement (bundle ingest), with `extra` rows written by the same statement. */
  async persist(db: Queryable, versions: NewVersion[], extra?: ExtraStatement): Promise<void> {
    await persistVersions(db, versions, extra);
  }

  /**
   * Conditional create (If-None-Exist). Serialised per (type, query) with a transaction-level
   * advisory lock, so concurrent identical requests never create two resources.
   */
  async conditionalCreate(
    resource: Resource,
    query: SearchRequest,
    ctx: WriteContext,
    db?: PoolClient,
  ): Promise<{ stored: StoredResource; created: boolean }> {
    const run = async (tx: PoolClient): Promise<{ stored: StoredResource; created: boolean }> => {
      const found = await this.lockAndMatchOne(tx, ctx.principal, query, 'If-None-Exist');
      if (found) {
        return { stored: found, created: false };
      }
      return { stored: await this.create(resource, ctx, tx), created: true };
    };
    return db ? run(db) : this.withTransaction(run);
  }

  async read(p: Principal, type: string, id: string, db: Queryable = this.pool): Promise<StoredResource> {
    const row = await this.visibleCurrent(db, p, type, id);
    if (!row) {
      throw new GatewayError('not-found', { text: `${type}/${id} not found` });
    }
    if (row.deleted) {
      throw new GatewayError('gone', { text: `${type}/${id} was deleted (version ${row.versionId})` });
    }
    return this.present(p, row);
  }

  /** Whether `p`'s profession reads resources of `type` at all (see AccessPolicy.readsType). */
  readsType(p: Principal, type: string): boolean {
    return this.policy.readsType?.(p, type) ?? true;
  }

  /** Of `ids` (resources of `type`), those `p` may read now, in one query. */
  async readableIds(
    p: Principal,
    type: string,
    ids: readonly string[],
    db: Queryable = this.pool,
  ): Promise<Set<string>> {
    if (ids.length === 0) {
      return new Set();
    }
    const b = new Binder();
    const conds = [
      `r.resource_type = ${b.bind(type)}`,
      `r.id = ANY(${b.bind([...new Set(ids)])}::text[])`,
      'NOT r.deleted',
    ];
    const pol = this.policy.readFilter(p, 'r', b.bind);
    if (pol) {
      conds.push(pol);
    }
    const res = await db.query<{ id: string }>(`SELECT r.id FROM resource r WHERE ${conds.join(' AND ')}`, b.values);
    return new Set(res.rows.map((r) => r.id));
  }

  /**
   * The current row of a resource if `p` may read it. When the policy cannot answer from the row
   * (a person: the équipe-de-soins rule needs care_access), its read filter runs in the same
   * query; a system client's read stays one primary-key lookup and an in-memory check.
   */
  private async visibleCurrent(
    db: Queryable,
    p: Principal,
    type: string,
    id: string,
  ): Promise<StoredResource | undefined> {
    if (!this.policy.readsNeedSql?.(p)) {
      const row = await this.current(db, type, id);
      return row && this.policy.canRead(p, row) ? row : undefined;
    }
    const b = new Binder();
    const conds = [`r.resource_type = ${b.bind(type)}`, `r.id = ${b.bind(id)}`];
    const pol = this.policy.readFilter(p, 'r', b.bind);
    if (pol) {
      conds.push(pol);
    }
    const res = await db.query<Row>(`SELECT ${aliased('r')} FROM resource r WHERE ${conds.join(' AND ')}`, b.values);
    return res.rows[0] ? fromRow(res.rows[0]) : undefined;
  }

  /** What `p` receives of stored rows (the policy may mask elements, e.g. for non-health staff). */
  private present<T extends StoredResource>(p: Principal, row: T): T {
    if (!this.policy.redact || !row.json) {
      return row;
    }
    const json = this.policy.redact(p, row.resourceType, row.json);
    return json === row.json ? row : { ...row, json };
  }

  /**
   * The current content of a resource for the gateway's own processes (no access policy: callers
   * act for the system, not a client), or undefined when it is absent or deleted. `forUpdate` takes
   * its row lock in `db`'s transaction: concurrent read-modify-writes of it then run in turn.
   */
  async readSystem<T extends Resource>(
    type: string,
    id: string,
    opts: { db?: Queryable; forUpdate?: boolean } = {},
  ): Promise<T | undefined> {
    const row = await this.current(opts.db ?? this.pool, type, id, opts.forUpdate);
    return row && !row.deleted && row.json ? (JSON.parse(row.json) as T) : undefined;
  }

  /**
   * The current content of these resources of one type, by id, for the gateway's own processes
   * (no access policy); absent and deleted ones are missing from the map.
   */
  async readSystemMany<T extends Resource>(
    type: string,
    ids: string[],
    db: Queryable = this.pool,
  ): Promise<Map<string, T>> {
    const res = await db.query<{ id: string; content: string }>(
      'SELECT id, content FROM resource WHERE resource_type = $1 AND id = ANY($2::text[]) AND NOT deleted AND content IS NOT NULL',
      [type, [...new Set(ids)]],
    );
    return new Map(res.rows.map((r) => [r.id, JSON.parse(r.content) as T]));
  }

  /**
   * Every current resource of a type whose JSON contains `fragment` (jsonb containment), oldest
   * first, for the gateway's own processes (no access policy). For small reference sets only.
   */
  async listContaining<T extends Resource>(type: string, fragment: object, db: Queryable = this.pool): Promise<T[]> {
    const res = await db.query<{ content: string }>(
      `SELECT content FROM resource WHERE resource_type = $1 AND NOT deleted AND content::jsonb @> $2::jsonb ORDER BY last_updated`,
      [type, JSON.stringify(fragment)],
    );
    return res.rows.map((r) => JSON.parse(r.content) as T);
  }

  /** `Type/id` of those of these resources that are stored (deleted ones included): a resumed load skips them. */
  async existing(resources: { resourceType: string; id?: string }[], db: Queryable = this.pool): Promise<string[]> {
    const res = await db.query<{ ref: string }>(
      `SELECT r.resource_type || '/' || r.id AS ref FROM resource r JOIN unnest($1::text[], $2::text[]) AS k(t, i) ON r.resource_type = k.t AND r.id = k.i`,
      [resources.map((r) => r.resourceType), resources.map((r) => r.id)],
    );
    return res.rows.map((r) => r.ref);
  }

  /**
   * The JSON of a resource's first version, whatever became of it since (updated, deleted). No
   * access check: for a caller whose own record names the resource (intake's original as received).
   */
  async firstVersionJson(type: string, id: string): Promise<string | undefined> {
    const res = await this.pool.query<{ content: string | null }>(
      'SELECT content FROM resource_history WHERE resource_type = $1 AND id = $2 AND version_id = 1',
      [type, id],
    );
    return res.rows[0]?.content ?? undefined;
  }

  async vread(p: Principal, type: string, id: string, versionId: string): Promise<StoredResource> {
    const current = await this.visibleCurrent(this.pool, p, type, id);
    if (!current || !/^\d+$/.test(versionId)) {
      throw new GatewayError('not-found', { text: `${type}/${id}/_history/${versionId} not found` });
    }
    const res = await this.pool.query(
      `SELECT resource_type, id, version_id, last_updated, deleted, owner_org, content FROM resource_history
       WHERE resource_type = $1 AND id = $2 AND version_id = $3`,
      [type, id, Number(versionId)],
    );
    const row = res.rows[0] ? fromRow(res.rows[0]) : undefined;
    if (!row) {
      throw new GatewayError('not-found', { text: `${type}/${id}/_history/${versionId} not found` });
    }
    if (row.deleted) {
      throw new GatewayError('gone', { text: `${type}/${id} version ${versionId} is a deletion` });
    }
    return this.present(p, row);
  }

  /**
   * Update (PUT). `ifMatch` is the expected current version: 412 when it differs. A client (not an
   * admin) cannot create with an id of its choosing (update as create): a PUT to an id that nobody
   * holds gets the same 404 as one to an id another organization holds, so that it can neither
   * learn which ids exist nor take an id before its holder does. Its own deleted resources may be
   * written again; `serverAssignedId` (a conditional update that matched nothing) may create.
   */
  async update(
    type: string,
    id: string,
    resource: Resource,
    ctx: WriteContext,
    ifMatch?: number,
    db?: PoolClient,
    opts: { serverAssignedId?: boolean } = {},
  ): Promise<{ stored: StoredResource; created: boolean }> {
    const run = async (tx: PoolClient): Promise<{ stored: StoredResource; created: boolean }> => {
      const existing = await this.current(tx, type, id, true);
      // What the caller cannot read does not exist for it (same answer as a read, no id probing).
      if (existing && !this.policy.canRead(ctx.principal, existing)) {
        throw noUpdatable(type, id);
      }
      if (!existing && !ctx.principal.admin && !opts.serverAssignedId) {
        throw noUpdatable(type, id);
      }
      this.checkWrite(ctx.principal, existing, resource);
      if (ifMatch !== undefined && (!existing || existing.versionId !== ifMatch)) {
        throw new GatewayError('precondition-failed', {
          text: `Version mismatch: If-Match expects ${ifMatch}, current is ${existing ? existing.versionId : 'none'}`,
        });
      }
      const owner = existing
        ? this.ownerOnUpdate(ctx.principal, existing, resource)
        : this.policy.ownerFor(ctx.principal, requestedOwner(resource));
      const v = this.prepare(resource, id, (existing?.versionId ?? 0) + 1, owner, ctx, !!existing, existing?.json);
      // Content identical to the current version (meta.versionId/lastUpdated aside): no new version.
      if (existing?.json && sameContent(existing.json, v.json as string)) {
        return { stored: existing, created: false };
      }
      await persistVersions(tx, [v]);
      return { stored: toStored(v), created: !existing || existing.deleted };
    };
    return db ? run(db) : this.withTransaction(run);
  }

  /** Conditional update: 0 match → create, 1 → update it, more → 412. */
  async conditionalUpdate(
    resource: Resource,
    query: SearchRequest,
    ctx: WriteContext,
    db?: PoolClient,
  ): Promise<{ stored: StoredResource; created: boolean }> {
    const run = async (tx: PoolClient): Promise<{ stored: StoredResource; created: boolean }> => {
      const found = await this.lockAndMatchOne(tx, ctx.principal, query, 'Conditional update');
      if (found) {
        if (resource.id && resource.id !== found.id) {
          throw new GatewayError('invalid', {
            text: `Resource id ${resource.id} differs from the matched ${found.id}`,
            expression: `${resource.resourceType}.id`,
          });
        }
        return this.update(query.resourceType, found.id, resource, ctx, undefined, tx);
      }
      // R4: no match and an id in the body is an update as create (refused to clients, see update).
      const id = resource.id ?? randomUUID();
      return this.update(query.resourceType, id, resource, ctx, undefined, tx, { serverAssignedId: !resource.id });
    };
    return db ? run(db) : this.withTransaction(run);
  }

  /** The current version of a resource locked for update in the caller's transaction (no access check: the caller's prepareUpdate does it). */
  async readForUpdate(tx: PoolClient, type: string, id: string): Promise<StoredResource | undefined> {
    return this.current(tx, type, id, true);
  }

  async delete(type: string, id: string, ctx: WriteContext, db?: PoolClient): Promise<void> {
    const run = async (tx: PoolClient): Promise<void> => {
      const existing = await this.current(tx, type, id, true);
      if (!existing || !this.policy.canRead(ctx.principal, existing)) {
        throw new GatewayError('not-found', { text: `${type}/${id} not found` });
      }
      const refusal = this.policy.writeRefusal(ctx.principal, existing);
      if (refusal) {
        throw new GatewayError('forbidden', { text: refusal });
      }
      if (existing.deleted) {
        return;
      }
      const v: NewVersion = {
        resourceType: type,
        id,
        versionId: existing.versionId + 1,
        lastUpdated: new Date().toISOString(),
        deleted: true,
        ownerOrg: existing.ownerOrg,
        // A deletion stays about its patient: who could read the resource is told it is gone.
        patientId: existing.patientId ?? null,
        json: null,
        rows: emptyRows(),
        replaces: true,
        clientId: ctx.principal.clientId,
        requestId: ctx.requestId,
        agent: ctx.principal.person?.role ?? null,
        sharing: SHARING_SOURCE_TYPES.includes(type)
          ? { source: `${type}/${id}`, access: [], oppositions: [] }
          : undefined,
      };
      await persistVersions(tx, [v]);
    };
    return db ? run(db) : this.withTransaction(run);
  }

  /**
   * A page of history, newest first, with the count of every matching entry. Instance history
   * (type and id), type history (type) or system history (the types the caller may see).
   */
  async history(p: Principal, q: HistoryQuery): Promise<{ versions: StoredResource[]; total: number }> {
    const b = new Binder();
    const conds: string[] = [];
    if (q.id && q.type) {
      const current = await this.visibleCurrent(this.pool, p, q.type, q.id);
      if (!current) {
        throw new GatewayError('not-found', { text: `${q.type}/${q.id} not found` });
      }
      conds.push(`h.resource_type = ${b.bind(q.type)}`, `h.id = ${b.bind(q.id)}`);
    } else {
      conds.push(
        q.type ? `h.resource_type = ${b.bind(q.type)}` : `h.resource_type = ANY(${b.bind(q.types ?? [])}::text[])`,
      );
      const pol = this.policy.readFilter(p, 'h', b.bind, 'history');
      if (pol) {
        conds.push(pol);
      }
    }
    if (q.since) {
      conds.push(`h.last_updated >= ${b.bind(q.since)}::timestamptz`);
    }
    const columns = 'h.resource_type, h.id, h.version_id, h.last_updated, h.deleted, h.owner_org, h.content';
    let from = `resource_history h WHERE ${conds.join(' AND ')}`;
    if (q.at) {
      // _at: the versions current at some point of the period, i.e. written before its end and
      // not replaced before its start (a version is current from its lastUpdated to the next one's).
      conds.push(`h.last_updated < ${b.bind(q.at.high)}::timestamptz`);
      from = `(SELECT ${columns}, lead(h.last_updated) OVER (PARTITION BY h.resource_type, h.id ORDER BY h.version_id) AS replaced_at
        FROM resource_history h WHERE ${conds.join(' AND ')}) h
        WHERE (h.replaced_at IS NULL OR h.replaced_at > ${b.bind(q.at.low)}::timestamptz)`;
    }
    const [page, count] = await Promise.all([
      q.count === 0
        ? Promise.resolve({ rows: [] as Row[] })
        : this.pool.query<Row>(
            `SELECT ${columns} FROM ${from}
             ORDER BY h.last_updated DESC, h.resource_type, h.id, h.version_id DESC LIMIT ${q.count} OFFSET ${q.offset}`,
            b.values,
          ),
      this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${from}`, b.values),
    ]);
    return { versions: page.rows.map((r) => this.present(p, fromRow(r))), total: Number(count.rows[0].n) };
  }

  /**
   * A search. On the pool (a request's own search, not a step of a transaction) it gets a connection
   * of its own, in a READ ONLY transaction bounded by statement_timeout, and `signal` (the client
   * went away) cancels its running statement: a costly search stops when nobody waits for it.
   */
  async search(
    p: Principal,
    req: SearchRequest,
    strict: boolean,
    db: Queryable = this.pool,
    signal?: AbortSignal,
  ): Promise<SearchResult> {
    if (db !== this.pool || (this.statementTimeoutMs === 0 && !signal)) {
      return this.searchOn(p, req, strict, db);
    }
    return this.bounded(signal, (client) => this.searchOn(p, req, strict, client));
  }

  private async bounded<T>(signal: AbortSignal | undefined, work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    const pid = (client as unknown as { processID: number }).processID;
    let cancelling: Promise<unknown> | undefined;
    // pg has no cancel on a client: pg_cancel_backend from another connection, awaited before the
    // connection goes back to the pool so that it can only ever cancel this search's statement.
    const cancel = (): void => {
      cancelling ??= this.pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
    };
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      await client.query(`BEGIN READ ONLY; SET LOCAL statement_timeout = ${Math.floor(this.statementTimeoutMs)}`);
      if (signal?.aborted) {
        throw new GatewayError('invalid', { text: 'The client closed the connection' });
      }
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      signal?.removeEventListener('abort', cancel);
      await cancelling;
      client.release();
    }
  }

  private async searchOn(p: Principal, req: SearchRequest, strict: boolean, db: Queryable): Promise<SearchResult> {
    const b = new Binder();
    const where = compileWhere(req, this.registry, b, (alias) => this.policy.readFilter(p, alias, b.bind));
    if (strict && where.unsupported.length > 0) {
      throw new GatewayError(
        'invalid',
        where.unsupported.map((u) => ({ text: u.reason, expression: u.key, code: 'not-supported' as const })),
      );
    }
    const conds = [`r.resource_type = ${b.bind(req.resourceType)}`, 'NOT r.deleted', ...where.conditions];
    const pol = this.policy.readFilter(p, 'r', b.bind);
    if (pol) {
      conds.push(pol);
    }
    const whereSql = conds.join(' AND ');
    const whereValues = [...b.values];
    const countQuery = async (): Promise<number> =>
      Number((await db.query(`SELECT count(*) AS n FROM resource r WHERE ${whereSql}`, whereValues)).rows[0].n);
    // _count=0 asks for the total only (R4 §3.1.1.5.7); paging it would loop on offset 0.
    if (req.summaryCount || req.count === 0) {
      return { matches: [], included: [], total: await countQuery(), hasMore: false, unsupported: where.unsupported };
    }
    const order = compileSort(req, this.registry, b);
    const res = await db.query(
      `SELECT ${aliased('r')} FROM resource r
       WHERE ${whereSql} ORDER BY ${order} LIMIT ${req.count + 1} OFFSET ${req.offset}`,
      b.values,
    );
    const hasMore = res.rows.length > req.count;
    const matches = res.rows.slice(0, req.count).map(fromRow);
    const total = await searchTotal(req, hasMore, matches.length, countQuery);
    const included = await this.includes(db, p, req, matches);
    return {
      matches: matches.map((m) => this.present(p, m)),
      included: included.map((m) => this.present(p, m)),
      total,
      hasMore,
      unsupported: where.unsupported,
    };
  }

  /**
   * Resources matching a conditional operation's query (strict, within what the caller may see),
   * after taking a transaction-level advisory lock on the (type, query) pair: two transactions
   * with the same condition run one after the other, and the second sees the first's commit.
   */
  async lockAndMatch(tx: PoolClient, p: Principal, query: SearchRequest): Promise<StoredResource[]> {
    const q = withEquivalentIdentifiers(query);
    await lockQuery(tx, q);
    return this.matchForCondition(tx, p, q);
  }

  /**
   * lockAndMatch for operations that need at most one match: 412 (multiple-matches) otherwise.
   * `what` names the condition in the error (`If-None-Exist`, `ifNoneExist`, `Conditional update`).
   */
  async lockAndMatchOne(
    tx: PoolClient,
    p: Principal,
    query: SearchRequest,
    what: string,
    expression?: string,
  ): Promise<StoredResource | undefined> {
    const found = await this.lockAndMatch(tx, p, query);
    if (found.length > 1) {
      throw new GatewayError('precondition-failed', {
        text: `${what} matched ${found.length} resources`,
        code: 'multiple-matches',
        expression,
      });
    }
    return found[0];
  }

  /**
   * Current resources matching each query (strict, within what `p` may see), at most `limit` each
   * (two: enough to tell one match from several), in one statement.
   */
  async matchAll(db: Queryable, p: Principal, queries: SearchRequest[], limit = 2): Promise<StoredResource[][]> {
    const q = this.matchAllQuery(p, queries, limit);
    return groupMatches((await db.query(q.sql, q.values)).rows, queries.length);
  }

  /** The statement of matchAll, for callers that send it together with others (see inlineSql); rows go to groupMatches. */
  matchAllQuery(p: Principal, queries: SearchRequest[], limit = 2): { sql: string; values: unknown[] } {
    const b = new Binder();
    const parts = queries.map(withEquivalentIdentifiers).map((q, i) => {
      const where = compileWhere(q, this.registry, b, (alias) => this.policy.readFilter(p, alias, b.bind));
      if (where.unsupported.length > 0 || q.clauses.length === 0) {
        throw new GatewayError('invalid', {
          text: `Unsupported condition on ${q.resourceType}: ${where.unsupported.map((u) => u.reason).join('; ') || 'no parameter'}`,
        });
      }
      const conds = [`r.resource_type = ${b.bind(q.resourceType)}`, 'NOT r.deleted', ...where.conditions];
      const pol = this.policy.readFilter(p, 'r', b.bind);
      if (pol) {
        conds.push(pol);
      }
      return `(SELECT ${i} AS q, ${aliased('r')} FROM resource r
        WHERE ${conds.join(' AND ')} LIMIT ${Math.max(1, Math.trunc(limit))})`;
    });
    return { sql: parts.join(' UNION ALL '), values: b.values };
  }

  private async matchForCondition(db: Queryable, p: Principal, query: SearchRequest): Promise<StoredResource[]> {
    if (query.clauses.length === 0) {
      throw new GatewayError('invalid', { text: 'A conditional operation needs at least one search parameter' });
    }
    const result = await this.search(
      p,
      { ...query, count: 2, offset: 0, sort: [], include: [], revinclude: [], total: 'none' },
      true,
      db,
    );
    return result.matches;
  }

  private async includes(
    db: Queryable,
    p: Principal,
    req: SearchRequest,
    matches: StoredResource[],
  ): Promise<StoredResource[]> {
    if (matches.length === 0 || (req.include.length === 0 && req.revinclude.length === 0)) {
      return [];
    }
    const ids = matches.map((m) => m.id);
    const out = new Map<string, StoredResource>();
    // Ids are unique per type only: an _include naming another source type must not read the
    // reference rows of whatever resource of that type shares an id with a match.
    for (const inc of req.include.filter((i) => i.sourceType === req.resourceType)) {
      const b = new Binder();
      const conds = [
        `ref.resource_type = ${b.bind(inc.sourceType)}`,
        `ref.id = ANY(${b.bind(ids)}::text[])`,
        'NOT t.deleted',
      ];
      if (inc.code !== '*') {
        conds.push(`ref.code = ${b.bind(inc.code)}`);
      }
      if (inc.targetType) {
        conds.push(`ref.target_type = ${b.bind(inc.targetType)}`);
      }
      await this.collect(
        db,
        p,
        b,
        out,
        `FROM sp_reference ref JOIN resource t ON t.resource_type = ref.target_type AND t.id = ref.target_id`,
        conds,
      );
    }
    for (const inc of req.revinclude) {
      const b = new Binder();
      const conds = [
        `ref.resource_type = ${b.bind(inc.sourceType)}`,
        `ref.target_type = ${b.bind(req.resourceType)}`,
        `ref.target_id = ANY(${b.bind(ids)}::text[])`,
        'NOT t.deleted',
      ];
      if (inc.code !== '*') {
        conds.push(`ref.code = ${b.bind(inc.code)}`);
      }
      await this.collect(
        db,
        p,
        b,
        out,
        `FROM sp_reference ref JOIN resource t ON t.resource_type = ref.resource_type AND t.id = ref.id`,
        conds,
      );
    }
    const matched = new Set(matches.map((m) => `${m.resourceType}/${m.id}`));
    return [...out.values()].filter((r) => !matched.has(`${r.resourceType}/${r.id}`));
  }

  private async collect(
    db: Queryable,
    p: Principal,
    b: Binder,
    out: Map<string, StoredResource>,
    from: string,
    conds: string[],
  ): Promise<void> {
    const pol = this.policy.readFilter(p, 't', b.bind);
    if (pol) {
      conds.push(pol);
    }
    const res = await db.query(
      `SELECT DISTINCT ${aliased('t')} ${from}
       WHERE ${conds.join(' AND ')} LIMIT ${INCLUDE_LIMIT}`,
      b.values,
    );
    for (const row of res.rows.map(fromRow)) {
      out.set(`${row.resourceType}/${row.id}`, row);
    }
  }

  /**
   * The Patient references of resources `p` is about to write that point to a patient it may not
   * write for (see AccessPolicy.canWriteForPatient), in one query for all of them. `written`: ids
   * of the Patients written in the same transaction (their own writes are checked on their own).
   * `at` is the index of the resource in `resources`.
   */
  async refusedPatientReferences(
    db: Queryable,
    p: Principal,
    resources: Resource[],
    written: ReadonlySet<string> = new Set(),
  ): Promise<{ at: number; id: string; expression: string }[]> {
    if (p.admin) {
      return [];
    }
    const refs = resources.flatMap((r, at) => patientReferences(r).map((ref) => ({ at, ...ref })));
    const ids = [...new Set(refs.map((r) => r.id).filter((id) => !written.has(id)))];
    if (ids.length === 0) {
      return [];
    }
    const res = await db.query(
      `SELECT resource_type, id, version_id, last_updated, deleted, owner_org, patient_id, NULL AS content FROM resource
       WHERE resource_type = 'Patient' AND id = ANY($1::text[])`,
      [ids],
    );
    const stored = new Map(res.rows.map((row: Row) => [row.id, fromRow(row)]));
    return refs.filter((r) => !written.has(r.id) && !this.policy.canWriteForPatient(p, stored.get(r.id)));
  }

  /** Why `p` may not write `next` over `existing` (undefined when it may); see AccessPolicy.writeRefusal. */
  writeRefusal(p: Principal, existing: StoredResource | undefined, next?: Resource): string | undefined {
    return this.policy.writeRefusal(p, existing, next);
  }

  private checkWrite(p: Principal, existing: StoredResource | undefined, next: Resource): void {
    const refusal = this.policy.writeRefusal(p, existing, next);
    if (refusal) {
      throw new GatewayError('forbidden', { text: refusal });
    }
  }

  /** The owner stays, except that an admin (an operator, the directory import) may file the resource under another organization. */
  private ownerOnUpdate(p: Principal, existing: StoredResource, resource: Resource): string {
    const requested = requestedOwner(resource);
    if (existing.ownerOrg && !(p.admin && requested)) {
      return existing.ownerOrg;
    }
    return this.policy.ownerFor(p, requested);
  }

  private async current(
    db: Queryable,
    type: string,
    id: string,
    forUpdate = false,
  ): Promise<StoredResource | undefined> {
    const res = await db.query(
      `SELECT ${COLUMNS} FROM resource
       WHERE resource_type = $1 AND id = $2${forUpdate ? ' FOR UPDATE' : ''}`,
      [type, id],
    );
    return res.rows[0] ? fromRow(res.rows[0]) : undefined;
  }

  private prepare(
    resource: Resource,
    id: string,
    versionId: number,
    owner: string,
    ctx: WriteContext,
    replaces: boolean,
    previousJson?: string | null,
    validate: 'all' | 'except-data' | 'no' = 'all',
  ): NewVersion {
    const lastUpdated = new Date().toISOString();
    const meta = stampMeta(resource.meta, versionId, lastUpdated, owner, ctx);
    meta.tag = withIdentityTrust(meta.tag ?? [], resource, ctx.principal, previousJson);
    meta.tag = withMailboxTrust(meta.tag, resource, ctx.principal, previousJson);
    meta.tag = withRoleTrust(meta.tag, resource, ctx.principal, previousJson, ctx.roleVouch);
    const stamped = carryDecimals(resource, { ...resource, id, meta } as Resource);
    if (validate === 'all' || (validate === 'except-data' && stamped.resourceType !== 'Binary')) {
      validateForWrite(stamped, this.profiles);
    } else if (validate === 'except-data') {
      validateForWrite({ ...stamped, data: BASE64_STAND_IN } as Resource, this.profiles);
    }
    const rows = this.registry.extract(stamped);
    const patientId = patientIdOf(resource.resourceType, id, rows);
    const agent = ctx.principal.person?.role ?? null;
    return {
      resourceType: resource.resourceType,
      id,
      versionId,
      lastUpdated,
      deleted: false,
      ownerOrg: owner,
      patientId,
      restricted: isRestricted(stamped),
      agent,
      json: stringifyFhirJson(stamped),
      rows,
      replaces,
      clientId: ctx.principal.clientId,
      requestId: ctx.requestId,
      sharing: projectSharing(stamped, patientId, {
        ownerOrg: owner,
        writer: agent ?? `${SOURCE_PREFIX}${ctx.principal.clientId}`,
        at: lastUpdated,
        encounterMonths: this.sharing.encounterMonths,
      }),
    };
  }
}

/**
 * Same content apart from meta.versionId/lastUpdated: equal values, and decimals written with the
 * same precision (1.0 → 1.00 is a change in R4, which deepEquals of parsed numbers cannot see).
 */
function sameContent(a: string, b: string): boolean {
  const decimals = (json: string): string =>
    nonCanonicalNumbers(json)
      .map((t) => t.text)
      .sort()
      .join(' ');
  return deepEquals(parseFhirJson(a), parseFhirJson(b)) && decimals(a) === decimals(b);
}

/**
 * Bundle.total: counted when asked for; otherwise known for free on the last page. A page past
 * the end is empty and says nothing about the total (offset + 0 would be a made-up count).
 */
async function searchTotal(
  req: SearchRequest,
  hasMore: boolean,
  pageSize: number,
  count: () => Promise<number>,
): Promise<number | undefined> {
  if (req.total === 'accurate' || req.total === 'estimate') {
    return count();
  }
  if (req.total === 'none' || hasMore || (pageSize === 0 && req.offset > 0)) {
    return undefined;
  }
  return req.offset + pageSize;
}

function stampMeta(
  meta: Meta | undefined,
  versionId: number,
  lastUpdated: string,
  owner: string,
  ctx: WriteContext,
): Meta {
  const tags = (meta?.tag ?? []).filter((t) => t.system !== OWNER_TAG_SYSTEM);
  tags.push({ system: OWNER_TAG_SYSTEM, code: owner });
  return {
    ...meta,
    versionId: String(versionId),
    lastUpdated,
    source: `${SOURCE_PREFIX}${ctx.principal.clientId}`,
    tag: tags,
  };
}

/** The one answer to a client's PUT on an id it cannot update, whether another organization holds it or nobody does. */
function noUpdatable(type: string, id: string): GatewayError {
  return new GatewayError('not-found', {
    text: `${type}/${id}: no resource this client may update; to create, POST (the server assigns the id) or use a conditional update PUT ${type}?identifier=...`,
  });
}

/** 403 for Patient references a client may not write (same text whether the patient is held elsewhere or absent). */
export function patientReferenceRefusal(refs: { id: string; expression: string }[]): GatewayError {
  return new GatewayError(
    'forbidden',
    refs.map((r) => ({ text: `Patient/${r.id} is not a patient this client may write for`, expression: r.expression })),
  );
}

function requestedOwner(resource: Resource): string | undefined {
  return resource.meta?.tag?.find((t) => t.system === OWNER_TAG_SYSTEM)?.code;
}

/**
 * Runs `fn` in a transaction on a pooled connection and commits. With `{ begin: false }` the
 * callback sends BEGIN itself, batched with its first statements. A connection that broke while
 * held (an error event between queries, e.g. a database restart while `fn` awaits other I/O) or
 * whose ROLLBACK failed is discarded, and its error event never reaches the process unhandled.
 */
export async function withTransaction<T>(
  pool: Pool,
  fn: (db: PoolClient) => Promise<T>,
  opts: { begin?: boolean } = {},
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error): void => {
    broken = err;
  };
  client.on('error', onError);
  try {
    if (opts.begin !== false) {
      await client.query('BEGIN');
    }
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    const clean = await client.query('ROLLBACK').then(
      () => true,
      () => false,
    );
    broken ??= clean ? undefined : (err as Error);
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

/**
 * A conditional query on a Practitioner or Organization identifier also matches the other forms of
 * the same national identity (RPPS X = IdNatPS 8X, FINESS F = IdNatStruct 1F, SIRET S = IdNatStruct 3S).
 */
export function withEquivalentIdentifiers(query: SearchRequest): SearchRequest {
  if (
    !IDENTITY_TYPES.includes(query.resourceType) ||
    !query.clauses.some((c) => c.code === 'identifier' && !c.modifier && !c.chain)
  ) {
    return query;
  }
  const clauses = query.clauses.map((c) =>
    c.code === 'identifier' && !c.modifier && !c.chain
      ? { ...c, values: [...new Set(c.values.flatMap((v) => equivalentTokens(query.resourceType, v)))] }
      : c,
  );
  return { ...query, clauses };
}

/**
 * The advisory-lock key of a conditional query: type and sorted clauses. A query on one national
 * identity alone locks that identity's key, whatever form names it, so that a conditional create
 * by RPPS and an HL7 lookup by IdNatPS of the same professional run one after the other.
 */
function lockKey(query: SearchRequest): string {
  const only = query.clauses.length === 1 ? query.clauses[0] : undefined;
  if (
    only &&
    only.code === 'identifier' &&
    !only.modifier &&
    !only.chain &&
    IDENTITY_TYPES.includes(query.resourceType)
  ) {
    const keys = only.values.map((v) =>
      identityKey(query.resourceType, v.slice(0, Math.max(0, v.indexOf('|'))), v.slice(v.indexOf('|') + 1)),
    );
    const distinct = [...new Set(keys)];
    if (distinct.length === 1 && distinct[0]) {
      return `directory:${distinct[0]}`;
    }
  }
  return `${query.resourceType}?${query.clauses
    .map((c) => `${c.key}=${c.values.join(',')}`)
    .sort()
    .join('&')}`;
}

/**
 * The advisory locks of several conditional queries, taken in one statement in a fixed order (two
 * such statements cannot deadlock each other).
 */
export function lockAllQuery(queries: SearchRequest[]): { sql: string; values: unknown[] } {
  return {
    sql: 'SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(key, 0) AS k FROM unnest($1::text[]) AS key ORDER BY 1) AS l',
    values: [queries.map(lockKey)],
  };
}

/** Rows of a matchAllQuery, grouped per query. */
export function groupMatches(rows: unknown[], count: number): StoredResource[][] {
  const out: StoredResource[][] = Array.from({ length: count }, () => []);
  for (const row of rows as (Row & { q: number })[]) {
    out[row.q].push(fromRow(row));
  }
  return out;
}

async function lockQuery(tx: PoolClient, query: SearchRequest): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockKey(query)]);
}

export function emptyRows(): IndexRows {
  return { tokens: [], strings: [], dates: [], references: [], numbers: [] };
}

function toStored(v: NewVersion): StoredResource {
  return {
    resourceType: v.resourceType,
    id: v.id,
    versionId: v.versionId,
    lastUpdated: v.lastUpdated,
    deleted: v.deleted,
    ownerOrg: v.ownerOrg,
    patientId: v.patientId ?? null,
    json: v.json,
  };
}

interface Row {
  resource_type: string;
  id: string;
  version_id: number;
  last_updated: Date;
  deleted: boolean;
  owner_org: string | null;
  patient_id?: string | null;
  content: string | null;
}

/** The columns fromRow reads, on a `resource` alias. */
function aliased(alias: string): string {
  return COLUMNS.split(', ')
    .map((c) => `${alias}.${c}`)
    .join(', ');
}

function fromRow(r: Row): StoredResource & StoredRef {
  return {
    resourceType: r.resource_type,
    id: r.id,
    versionId: r.version_id,
    lastUpdated: r.last_updated.toISOString(),
    deleted: r.deleted,
    ownerOrg: r.owner_org,
    patientId: r.patient_id ?? null,
    json: r.content,
  };
}
