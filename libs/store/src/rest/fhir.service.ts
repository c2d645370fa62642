import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import type { PoolClient } from 'pg';
import { GatewayError, scopeAllows } from '@gw/platform';
import type { Logger } from '@gw/platform';
import type { ScopeAction } from '@gw/platform';
import {
  MAX_OFFSET,
  SERVED_RESOURCE_TYPES,
  dateRange,
  parseFhirJson,
  stringifyFhirJson,
  isKnownR4ResourceType,
  isServedResourceType,
  parseSearchRequest,
  parseSubsetting,
  subsetResource,
  unknownElements,
} from '@gw/fhir';
import type { SearchRequest, Subsetting } from '@gw/fhir';
import type { Principal } from '../repository/access.policy';
import type { AuditLog } from '../audit/audit.log';
import { actorOf, markAudited } from '../audit/audit.log';
import { auditQuery, patientsOfAll, patientsOfResource } from '../audit/audit-subject';
import type { TouchedResource } from '../audit/audit-subject';
import { PatientTrail } from '../audit/patient-trail';
import type {
  FhirRepository,
  HistoryQuery,
  Queryable,
  SearchResult,
  StoredResource,
  WriteContext,
} from '../repository/fhir.repository';
import { patientReferenceRefusal } from '../repository/fhir.repository';
import {
  applyResolution,
  conditionalQuery,
  findConditionalReferences,
  pendingMatches,
} from '../conditional-references';
import type { PendingWrite } from '../conditional-references';
import { BundleProcessor } from './bundle.processor';

/** A FHIR interaction, whether it came over HTTP or inside a Bundle entry. */
export interface FhirRequest {
  method: string;
  /** Path relative to the FHIR base, without query: `Patient`, `Patient/1`, `Patient/_search`. */
  path: string;
  query: [string, string][];
  body?: unknown;
  ifMatch?: string;
  ifNoneExist?: string;
  /** `Prefer: handling=strict` */
  strict: boolean;
  preferReturn?: 'minimal' | 'representation' | 'OperationOutcome';
  /** Aborted when the client goes away: a running search is cancelled. */
  signal?: AbortSignal;
  /**
   * Set by the transaction processor on a PUT it resolved from a conditional update that matched
   * nothing: the id was assigned by the server, so the PUT may create.
   */
  serverAssignedId?: boolean;
}

export interface FhirResponse {
  status: number;
  /** JSON text of the body (a resource, a Bundle, an OperationOutcome). */
  body?: string;
  location?: string;
  etag?: string;
  lastModified?: string;
}

export interface ServiceOptions {
  baseUrl: string;
  defaultCount: number;
  maxCount: number;
  /** GW_SEARCH_MAX_PARAMS, GW_SEARCH_MAX_VALUES (unset: the parser's defaults). */
  maxParams?: number;
  maxValues?: number;
  /** Where unexpected errors caught inside a batch are reported (they become 500 entries). */
  logger?: Logger;
  /**
   * Looks at a Bundle posted to the base before it is processed (e.g. the MHD recipient rules):
   * may throw, answer instead (a resend already stored), or adjust entries and return undefined.
   */
  bundleInterceptor?: (p: Principal, body: unknown) => Promise<FhirResponse | undefined>;
  /**
   * Told of a Bundle posted to the base once it was processed and committed (e.g. the MHD recipient's
   * intake of CDA); may answer another response (the same one with what the intake refused).
   */
  afterBundle?: (p: Principal, body: unknown, response: FhirResponse) => Promise<FhirResponse | undefined>;
}

/**
 * Executes FHIR interactions for an authenticated principal: checks SMART scopes, calls the
 * repository, audits, and renders responses. The HTTP controller and Bundle entries both use it.
 */
export class FhirService {
  private readonly bundles: BundleProcessor;
  private readonly trail: PatientTrail;

  constructor(
    private readonly repo: FhirRepository,
    private readonly audit: AuditLog,
    readonly options: ServiceOptions,
  ) {
    this.bundles = new BundleProcessor(this, repo);
    this.trail = new PatientTrail(repo.pool, audit, options);
  }

  /**
   * Executes one interaction. `tx`: inside a transaction Bundle, whose processor has already
   * checked the Patient references of every entry at once (see checkPatientReferences).
   */
  async handle(p: Principal, req: FhirRequest, requestId?: string, tx?: PoolClient): Promise<FhirResponse> {
    const ctx: WriteContext = { principal: p, requestId };
    const segments = req.path.split('/').filter(Boolean);
    const method = req.method.toUpperCase();
    if (segments.length === 0) {
      if (method !== 'POST') {
        throw new GatewayError('not-supported', { text: `${method} on the FHIR base is not supported` });
      }
      const answered = await this.options.bundleInterceptor?.(p, req.body);
      if (answered) {
        return answered;
      }
      const processed = await this.bundles.process(p, req, ctx);
      return (await this.options.afterBundle?.(p, req.body, processed)) ?? processed;
    }
    const [type, id, op, vid] = segments;
    if (type === '_history' && segments.length === 1 && method === 'GET') {
      return this.history(p, undefined, undefined, req, requestId);
    }
    checkType(type);
    if (id === '_search' && method === 'POST') {
      return this.search(p, type, req, requestId, tx);
    }
    if (id === '_history' && method === 'GET') {
      return this.history(p, type, undefined, req, requestId);
    }
    if (id === undefined) {
      return this.onType(p, type, method, req, ctx, tx);
    }
    if (op === undefined) {
      return this.onInstance(p, type, id, method, req, ctx, tx);
    }
    if (op === '_history' && method === 'GET') {
      return vid === undefined
        ? this.history(p, type, id, req, requestId)
        : this.vread(p, type, id, vid, req, requestId);
    }
    throw new GatewayError('not-supported', { text: `${method} ${req.path} is not a supported interaction` });
  }

  private async onType(
    p: Principal,
    type: string,
    method: string,
    req: FhirRequest,
    ctx: WriteContext,
    tx?: PoolClient,
  ): Promise<FhirResponse> {
    switch (method) {
      case 'GET':
        return this.search(p, type, req, ctx.requestId, tx);
      case 'POST':
        return this.create(p, type, req, ctx, tx);
      case 'PUT': {
        requireScope(p, type, 'u');
        const resource = bodyResource(req.body, type);
        const query = this.conditionQuery(type, req.query);
        await this.resolveConditionalReferences(p, resource, tx);
        await this.checkPatientReferences(p, resource, tx);
        const { stored, created } = await this.repo.conditionalUpdate(resource, query, ctx, tx);
        return this.written(p, stored, created ? 201 : 200, created ? 'create' : 'update', req, ctx);
      }
      default:
        throw new GatewayError('not-supported', { text: `${method} on ${type} is not supported` });
    }
  }

  private async onInstance(
    p: Principal,
    type: string,
    id: string,
    method: string,
    req: FhirRequest,
    ctx: WriteContext,
    tx?: PoolClient,
  ): Promise<FhirResponse> {
    switch (method) {
      case 'GET': {
        requireScope(p, type, 'r');
        const subsetting = readSubsetting(type, req);
        const stored = await this.refusalAudited(p, 'read', type, id, ctx.requestId, () =>
          this.repo.read(p, type, id, tx),
        );
        this.record(p, 'read', type, [stored], 200, ctx.requestId);
        return subsetted(resourceResponse(stored, 200), subsetting);
      }
      case 'PUT': {
        requireScope(p, type, 'u');
        const resource = bodyResource(req.body, type);
        if (resource.id !== id) {
          throw new GatewayError('invalid', {
            text: resource.id
              ? `Resource id "${resource.id}" does not match the URL id "${id}"`
              : 'An update needs the resource id in the body',
            expression: `${type}.id`,
          });
        }
        await this.resolveConditionalReferences(p, resource, tx);
        await this.checkPatientReferences(p, resource, tx);
        const { stored, created } = await this.repo.update(type, id, resource, ctx, parseIfMatch(req.ifMatch), tx, {
          serverAssignedId: req.serverAssignedId,
        });
        return this.written(p, stored, created ? 201 : 200, created ? 'create' : 'update', req, ctx);
      }
      case 'DELETE': {
        requireScope(p, type, 'd');
        await this.repo.delete(type, id, ctx, tx);
        this.record(p, 'delete', type, [{ resourceType: type, id }], 204, ctx.requestId);
        return { status: 204 };
      }
      default:
        throw new GatewayError('not-supported', { text: `${method} on ${type}/${id} is not supported` });
    }
  }

  private async create(
    p: Principal,
    type: string,
    req: FhirRequest,
    ctx: WriteContext,
    tx?: PoolClient,
  ): Promise<FhirResponse> {
    requireScope(p, type, 'c');
    const resource = bodyResource(req.body, type);
    await this.resolveConditionalReferences(p, resource, tx);
    await this.checkPatientReferences(p, resource, tx);
    if (req.ifNoneExist) {
      requireScope(p, type, 's');
      const query = this.conditionQuery(type, [...new URLSearchParams(req.ifNoneExist.replace(/^[A-Za-z]+\?/, ''))]);
      const { stored, created } = await this.repo.conditionalCreate(resource, query, ctx, tx);
      return this.written(p, stored, created ? 201 : 200, created ? 'create' : 'read', req, ctx);
    }
    const stored = await this.repo.create(resource, ctx, tx);
    return this.written(p, stored, 201, 'create', req, ctx);
  }

  /** Shared by create/update: audit, headers, and the body the client asked for (Prefer). */
  written(
    p: Principal,
    stored: StoredResource,
    status: number,
    interaction: string,
    req: FhirRequest,
    ctx: WriteContext,
  ): FhirResponse {
    this.record(p, interaction, stored.resourceType, [stored], status, ctx.requestId);
    const res = resourceResponse(stored, status);
    res.location = `${this.options.baseUrl}/fhir/${stored.resourceType}/${stored.id}/_history/${stored.versionId}`;
    if (req.preferReturn === 'minimal') {
      res.body = undefined;
    } else if (req.preferReturn === 'OperationOutcome') {
      res.body = JSON.stringify({
        resourceType: 'OperationOutcome',
        issue: [
          {
            severity: 'information',
            code: 'informational',
            details: { text: `${interaction} ${stored.resourceType}/${stored.id}` },
          },
        ],
      });
    }
    return res;
  }

  /**
   * Rewrites the conditional references of a resource about to be written (`Patient?identifier=…`,
   * R4 http.html#trules) to the one resource each matches, searched as `p` sees the store and, in
   * a transaction, among the entries `pending` written with it (`replaced`: the stored resources
   * those entries delete or rewrite, judged on their new content). None or several: 400 / 412
   * naming the element, and the resource is left as it was.
   */
  async resolveConditionalReferences(
    p: Principal,
    resource: Resource,
    db?: Queryable,
    pending: PendingWrite[] = [],
    replaced = new Set<string>(),
  ): Promise<void> {
    const refs = findConditionalReferences(resource);
    if (refs.length === 0) {
      return;
    }
    const queries = refs.map((ref) => {
      requireScope(p, ref.type, 's');
      return conditionalQuery(ref, (type, pairs) => this.conditionQuery(type, pairs));
    });
    let stored: StoredResource[][];
    try {
      stored = await this.repo.matchAll(db ?? this.repo.pool, p, queries);
    } catch (err) {
      if (err instanceof GatewayError && err.category === 'invalid') {
        const why = err.issues.map((i) => i.details?.text).join('; ');
        throw new GatewayError(
          'invalid',
          refs.map((ref) => ({
            text: `Conditional reference ${ref.type}?${ref.query}: ${why}`,
            expression: ref.expression,
          })),
        );
      }
      throw err;
    }
    const matches = refs.map((ref, i) => [
      ...stored[i].map((s) => `${s.resourceType}/${s.id}`).filter((key) => !replaced.has(key)),
      ...pendingMatches(ref, pending),
    ]);
    applyResolution(refs, matches);
  }

  /**
   * A client writes a resource that references a Patient (a fact about it, a Group holding it, a
   * link to it) only for a patient it may write for: 403 naming each such reference otherwise.
   * Inside a transaction (`tx`) the Bundle processor checks all entries at once instead.
   */
  private async checkPatientReferences(p: Principal, resource: Resource, tx?: PoolClient): Promise<void> {
    if (tx) {
      return;
    }
    const refused = await this.repo.refusedPatientReferences(this.repo.pool, p, [resource]);
    if (refused.length > 0) {
      throw patientReferenceRefusal(refused);
    }
  }

  conditionQuery(type: string, pairs: [string, string][]): SearchRequest {
    return parseSearchRequest(type, pairs, { defaultCount: 2, maxCount: 2 });
  }

  private async search(
    p: Principal,
    type: string,
    req: FhirRequest,
    requestId?: string,
    tx?: PoolClient,
  ): Promise<FhirResponse> {
    requireScope(p, type, 's');
    const pairs = req.method.toUpperCase() === 'POST' ? [...req.query, ...formPairs(req.body)] : req.query;
    if (PatientTrail.handles(type, pairs)) {
      return { status: 200, body: await this.trail.search(p, pairs, requestId) };
    }
    const sreq = parseSearchRequest(type, pairs, {
      defaultCount: this.options.defaultCount,
      maxCount: this.options.maxCount,
      maxParams: this.options.maxParams,
      maxValues: this.options.maxValues,
    });
    const unknown = checkedElements(type, sreq.subsetting, req.strict);
    const result = await this.repo.search(p, sreq, req.strict, tx, req.signal);
    result.unsupported.push(...unknown.map((e) => ({ key: '_elements', reason: `${type} has no element "${e}"` })));
    this.record(p, 'search', type, [...result.matches, ...result.included], 200, requestId, auditQuery(pairs));
    return { status: 200, body: this.searchBundle(type, pairs, sreq, result) };
  }

  private searchBundle(type: string, pairs: [string, string][], req: SearchRequest, result: SearchResult): string {
    const base = `${this.options.baseUrl}/fhir`;
    const self = pageUrl(`${base}/${type}`, pairs, req.offset, req.count);
    const links = [{ relation: 'self', url: self }];
    if (result.hasMore) {
      links.push({ relation: 'next', url: pageUrl(`${base}/${type}`, pairs, req.offset + req.count, req.count) });
    }
    if (req.offset > 0) {
      links.push({
        relation: 'previous',
        url: pageUrl(`${base}/${type}`, pairs, Math.max(0, req.offset - req.count), req.count),
      });
    }
    const entries = [
      ...result.matches.map((m) => entryJson(base, m, 'match', req.subsetting)),
      ...result.included.map((m) => entryJson(base, m, 'include', req.subsetting)),
    ];
    if (result.unsupported.length > 0) {
      const outcome = {
        resourceType: 'OperationOutcome',
        issue: result.unsupported.map((u) => ({
          severity: 'warning',
          code: 'not-supported',
          details: { text: `${u.reason}: ignored` },
          expression: [u.key],
        })),
      };
      entries.push(`{"resource":${JSON.stringify(outcome)},"search":{"mode":"outcome"}}`);
    }
    const head = {
      resourceType: 'Bundle',
      type: 'searchset',
      ...(result.total !== undefined ? { total: result.total } : {}),
      link: links,
    };
    return `${JSON.stringify(head).slice(0, -1)},"entry":[${entries.join(',')}]}`;
  }

  /** History of an instance, a type or the whole system (type undefined), paged with _count/_offset. */
  private async history(
    p: Principal,
    type: string | undefined,
    id: string | undefined,
    req: FhirRequest,
    requestId?: string,
  ): Promise<FhirResponse> {
    let types: string[] | undefined;
    if (type) {
      requireScope(p, type, id ? 'r' : 's');
    } else {
      types = SERVED_RESOURCE_TYPES.filter((t) => scopeAllows(p.scopes, t, 's'));
      if (types.length === 0) {
        throw new GatewayError('forbidden', { text: "The token's scopes allow no resource type to be listed" });
      }
    }
    const q = parseHistoryParams(req.query, this.options);
    const query = { type, id, types, ...q };
    const { versions, total } =
      type && id
        ? await this.refusalAudited(p, 'history', type, id, requestId, () => this.repo.history(p, query))
        : await this.repo.history(p, query);
    this.record(p, 'history', type, versions, 200, requestId);
    const base = `${this.options.baseUrl}/fhir`;
    const url = [base, type, id, '_history'].filter(Boolean).join('/');
    const pairs = req.query.filter(([k]) => k === '_since' || k === '_at');
    const links = [{ relation: 'self', url: pageUrl(url, pairs, q.offset, q.count) }];
    if (q.count > 0 && q.offset + q.count < total) {
      links.push({ relation: 'next', url: pageUrl(url, pairs, q.offset + q.count, q.count) });
    }
    if (q.offset > 0 && q.count > 0) {
      links.push({ relation: 'previous', url: pageUrl(url, pairs, Math.max(0, q.offset - q.count), q.count) });
    }
    const entries = versions.map((v) => {
      const request = v.deleted
        ? { method: 'DELETE', url: `${v.resourceType}/${v.id}` }
        : {
            method: v.versionId === 1 ? 'POST' : 'PUT',
            url: v.versionId === 1 ? v.resourceType : `${v.resourceType}/${v.id}`,
          };
      const response = {
        status: v.deleted ? '204' : v.versionId === 1 ? '201' : '200',
        etag: `W/"${v.versionId}"`,
        lastModified: v.lastUpdated,
      };
      const resource = v.json ? `"resource":${v.json},` : '';
      return `{"fullUrl":"${base}/${v.resourceType}/${v.id}",${resource}"request":${JSON.stringify(request)},"response":${JSON.stringify(response)}}`;
    });
    return {
      status: 200,
      body: `{"resourceType":"Bundle","type":"history","total":${total},"link":${JSON.stringify(links)},"entry":[${entries.join(',')}]}`,
    };
  }

  private async vread(
    p: Principal,
    type: string,
    id: string,
    vid: string,
    req: FhirRequest,
    requestId?: string,
  ): Promise<FhirResponse> {
    requireScope(p, type, 'r');
    const subsetting = readSubsetting(type, req);
    const stored = await this.refusalAudited(p, 'vread', type, id, requestId, () => this.repo.vread(p, type, id, vid));
    this.record(p, 'vread', type, [stored], 200, requestId);
    return subsetted(resourceResponse(stored, 200), subsetting);
  }

  /**
   * Records an interaction in the access trail: who (person, role, client), the resources touched,
   * the patients they are about, the masked query of a search; the bases are added at flush.
   */
  record(
    p: Principal,
    interaction: string,
    type: string | undefined,
    touched: TouchedResource[],
    outcome: number,
    requestId?: string,
    query?: string,
  ): void {
    this.audit.record({
      ...actorOf(p),
      interaction,
      resourceType: type,
      entity: touched.map((t) => `${t.resourceType}/${t.id}`),
      patients: patientsOfAll(touched),
      query,
      outcome,
      requestId,
    });
  }

  /**
   * Runs a read by id (read, vread, instance history); when it is refused (the policy hides the
   * resource: 404, or it is deleted: 410) the denial goes to the trail with the patients the stored
   * resource is about, so that "who looked at my record" shows attempts too. The error then skips
   * the error filter's own (patient-less) audit.
   */
  private async refusalAudited<T>(
    p: Principal,
    interaction: string,
    type: string,
    id: string,
    requestId: string | undefined,
    work: () => Promise<T>,
  ): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof GatewayError && (err.status === 404 || err.status === 410)) {
        const stored = await this.repo.readSystem(type, id).catch(() => undefined);
        this.audit.record({
          ...actorOf(p),
          interaction,
          resourceType: type,
          entity: [`${type}/${id}`],
          patients: stored ? patientsOfResource(stored) : [],
          outcome: err.status,
          decision: 'deny',
          requestId,
        });
        markAudited(err);
      }
      throw err;
    }
  }
}

export function checkType(type: string): void {
  if (!isServedResourceType(type)) {
    const known = isKnownR4ResourceType(type);
    throw new GatewayError('not-found', {
      text: known ? `Resource type ${type} is not served by this gateway` : `Unknown resource type "${type}"`,
      code: known ? 'not-supported' : 'not-found',
    });
  }
}

export function requireScope(p: Principal, type: string, action: ScopeAction): void {
  if (!scopeAllows(p.scopes, type, action)) {
    throw new GatewayError('forbidden', { text: `The token's scopes do not allow "${action}" on ${type}` });
  }
}

export function bodyResource(body: unknown, type: string): Resource {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new GatewayError('invalid', { text: `The request body must be a ${type} resource (JSON object)` });
  }
  const r = body as Resource;
  if (r.resourceType !== type) {
    throw new GatewayError('invalid', {
      text: `resourceType "${String(r.resourceType)}" in the body does not match "${type}" in the URL`,
      expression: 'resourceType',
    });
  }
  return r;
}

function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined) {
    return undefined;
  }
  const m = /^(?:W\/)?"?(\d+)"?$/.exec(header.trim());
  if (!m) {
    throw new GatewayError('invalid', {
      text: `If-Match must be a version ETag like W/"3", not ${JSON.stringify(header)}`,
    });
  }
  return Number(m[1]);
}

export function resourceResponse(stored: StoredResource, status: number): FhirResponse {
  return {
    status,
    body: stored.json ?? undefined,
    etag: `W/"${stored.versionId}"`,
    lastModified: new Date(stored.lastUpdated).toUTCString(),
  };
}

function entryJson(base: string, m: StoredResource, mode: string, subsetting?: Subsetting): string {
  const json =
    subsetting && m.json ? stringifyFhirJson(subsetResource(parseFhirJson(m.json) as Resource, subsetting)) : m.json;
  return `{"fullUrl":"${base}/${m.resourceType}/${m.id}","resource":${json},"search":{"mode":"${mode}"}}`;
}

/**
 * `_summary` / `_elements` of a read: honoured, or refused when they cannot be (count is for
 * searches; an unknown element under `Prefer: handling=strict`).
 */
function readSubsetting(type: string, req: FhirRequest): Subsetting | undefined {
  const { subsetting, count } = parseSubsetting(req.query);
  if (count) {
    throw new GatewayError('invalid', {
      text: '_summary=count applies to a search, not a read',
      expression: '_summary',
    });
  }
  checkedElements(type, subsetting, req.strict);
  return subsetting;
}

/**
 * The `_elements` names `type` does not have: refused under `Prefer: handling=strict`, otherwise
 * returned for the caller to report (and ignored).
 */
function checkedElements(type: string, subsetting: Subsetting | undefined, strict: boolean): string[] {
  const unknown = unknownElements(type, subsetting);
  if (unknown.length > 0 && strict) {
    throw new GatewayError(
      'invalid',
      unknown.map((e) => ({
        text: `${type} has no element "${e}"`,
        expression: '_elements',
        code: 'not-supported' as const,
      })),
    );
  }
  return unknown;
}

function subsetted(res: FhirResponse, subsetting: Subsetting | undefined): FhirResponse {
  if (subsetting && res.body) {
    res.body = stringifyFhirJson(subsetResource(parseFhirJson(res.body) as Resource, subsetting));
  }
  return res;
}

function pageUrl(url: string, pairs: [string, string][], offset: number, count: number): string {
  const q = new URLSearchParams(pairs.filter(([k]) => k !== '_offset' && k !== '_count'));
  q.set('_count', String(count));
  if (offset > 0) {
    q.set('_offset', String(offset));
  }
  return `${url}?${q.toString()}`;
}

function findParam(pairs: [string, string][], key: string): string | undefined {
  return pairs.find(([k]) => k === key)?.[1];
}

/** `_count`, `_offset`, `_since` (an instant) and `_at` (a date, its precision giving the period) of a history request. */
function parseHistoryParams(
  pairs: [string, string][],
  limits: { defaultCount: number; maxCount: number },
): Pick<HistoryQuery, 'count' | 'offset' | 'since' | 'at'> {
  const int = (key: string, fallback: number): number => {
    const v = findParam(pairs, key);
    if (v === undefined || v === '') {
      return fallback;
    }
    if (!/^\d+$/.test(v) || Number(v) > MAX_OFFSET) {
      throw new GatewayError('invalid', {
        text: `${key} must be an integer from 0 to ${MAX_OFFSET}, not "${v.slice(0, 32)}"`,
        expression: key,
      });
    }
    return Number(v);
  };
  const date = (key: string): { low: string; high: string } | undefined => {
    const v = findParam(pairs, key);
    if (v === undefined || v === '') {
      return undefined;
    }
    const range = dateRange(v);
    if (!range) {
      throw new GatewayError('invalid', { text: `${key} must be a FHIR instant or date, not "${v}"`, expression: key });
    }
    return range;
  };
  return {
    count: Math.min(int('_count', limits.defaultCount), limits.maxCount),
    offset: int('_offset', 0),
    since: date('_since')?.low,
    at: date('_at'),
  };
}

function formPairs(body: unknown): [string, string][] {
  if (typeof body === 'string') {
    return [...new URLSearchParams(body)];
  }
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    return Object.entries(body as Record<string, unknown>).flatMap(([k, v]) =>
      Array.isArray(v) ? v.map((x) => [k, String(x)] as [string, string]) : [[k, String(v)] as [string, string]],
    );
  }
  return [];
}

export type { Bundle, BundleEntry };
