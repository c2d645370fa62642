import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import type { PoolClient } from 'pg';
import { EventLoopTurns, GatewayError } from '@gw/platform';
import type { Principal } from '../repository/access.policy';
import type { FhirRequest, FhirResponse, FhirService } from './fhir.service';
import { bodyResource, checkType, requireScope, resourceResponse } from './fhir.service';
import type { PendingWrite } from '../conditional-references';
import type { NewVersion } from '../repository/persist';
import type { FhirRepository, WriteContext } from '../repository/fhir.repository';
import { patientReferenceRefusal } from '../repository/fhir.repository';

interface Planned {
  index: number;
  entry: BundleEntry;
  method: string;
  path: string;
  query: [string, string][];
  /** For POST/PUT: the resolved `Type/id` this entry writes. */
  target?: { type: string; id: string };
  /** POST with If-None-Exist that matched: nothing to write. */
  existing?: boolean;
  /** POST with the same If-None-Exist as an earlier entry of the transaction: that entry creates it. */
  sameAs?: Planned;
  /** PUT resolved from a conditional update that matched nothing, without an id in the body: it may create. */
  serverAssignedId?: boolean;
  response?: FhirResponse;
}

/** One entry's result and the method that produced it (GET results always carry their resource). */
interface Answer {
  method?: string;
  response: FhirResponse;
}

// R4 §3.3.1.4: a transaction is processed DELETE, POST, PUT/PATCH, GET regardless of entry order.
const ORDER: Record<string, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };

/** `batch` (independent entries) and atomic `transaction` Bundles with urn:uuid rewriting. */
export class BundleProcessor {
  constructor(
    private readonly service: FhirService,
    private readonly repo: FhirRepository,
  ) {}

  async process(p: Principal, req: FhirRequest, ctx: WriteContext): Promise<FhirResponse> {
    const bundle = checkBundle(req.body);
    const entries = bundle.entry ?? [];
    const answers =
      bundle.type === 'batch'
        ? await this.batch(p, entries, req, ctx)
        : await this.transaction(p, entries.map(plan), req, ctx);
    this.service.record(p, bundle.type as string, 'Bundle', [], 200, ctx.requestId);
    const type = bundle.type === 'batch' ? 'batch-response' : 'transaction-response';
    const rendered = answers.map((a) => renderEntry(a, req.preferReturn));
    return { status: 200, body: `{"resourceType":"Bundle","type":"${type}","entry":[${rendered.join(',')}]}` };
  }

  /** Each entry on its own: a malformed or failing entry gets its own error status and outcome. */
  private async batch(p: Principal, entries: BundleEntry[], req: FhirRequest, ctx: WriteContext): Promise<Answer[]> {
    const out: Answer[] = [];
    const turns = new EventLoopTurns();
    for (const [index, entry] of entries.entries()) {
      await turns.pass();
      let method: string | undefined;
      try {
        const e = plan(entry, index);
        method = e.method;
        out.push({ method, response: await this.service.handle(p, entryRequest(e, req), ctx.requestId) });
      } catch (err) {
        if (!(err instanceof GatewayError)) {
          this.service.options.logger?.error(
            // Not the message: a database error's text quotes the entry's values (patient data).
            { reqId: ctx.requestId, entry: index, err: (err as Error)?.name, code: (err as { code?: unknown })?.code },
            'unexpected error in a batch entry',
          );
        }
        const ge =
          err instanceof GatewayError
            ? err
            : new GatewayError('internal', {
                text: `Internal error processing this entry (request id ${ctx.requestId ?? 'unknown'})`,
              });
        out.push({ method, response: { status: ge.status, body: JSON.stringify(ge.toOutcome()) } });
      }
    }
    return out;
  }

  private async transaction(p: Principal, planned: Planned[], req: FhirRequest, ctx: WriteContext): Promise<Answer[]> {
    return this.repo.withTransaction(async (tx) => {
      const refs = new Map<string, string>();
      const creations = new Map<string, Planned>();
      const turns = new EventLoopTurns();
      for (const e of planned) {
        await turns.pass();
        await atEntry(e.index, () => this.resolveTarget(p, e, tx, refs, creations));
      }
      checkDistinctTargets(planned);
      for (const e of planned) {
        rewriteReferences(e.entry.resource, refs);
      }
      await this.resolveConditionalReferences(p, planned, tx);
      await this.checkPatientReferences(p, planned, tx);
      const sorted = [...planned].sort((a, b) => ORDER[a.method] - ORDER[b.method] || a.index - b.index);
      await this.run(
        p,
        sorted.filter((e) => e.method === 'DELETE'),
        req,
        ctx,
        tx,
      );
      await this.createAll(
        p,
        sorted.filter((e) => e.method === 'POST'),
        req,
        ctx,
        tx,
      );
      await this.run(
        p,
        sorted.filter((e) => e.method !== 'DELETE' && e.method !== 'POST'),
        req,
        ctx,
        tx,
      );
      return planned.map((e) => ({ method: e.method, response: e.response as FhirResponse }));
    });
  }

  /**
   * Conditional references of the entries' resources, resolved against the store and the other
   * entries of this transaction (R4 transaction rules: the Bundle is processed as a whole).
   */
  private async resolveConditionalReferences(p: Principal, planned: Planned[], tx: PoolClient): Promise<void> {
    const writes = planned.filter(
      (e) => e.entry.resource && e.target && (e.method === 'PUT' || (e.method === 'POST' && !e.existing && !e.sameAs)),
    );
    const pending: PendingWrite[] = writes.map((e) => ({
      resource: e.entry.resource as Resource,
      id: (e.target as { id: string }).id,
    }));
    const replaced = new Set([
      ...planned.filter((e) => e.method === 'DELETE').map((e) => e.path),
      ...writes.map((e) => `${e.target?.type}/${e.target?.id}`),
    ]);
    for (const e of writes) {
      await atEntry(e.index, () =>
        this.service.resolveConditionalReferences(p, e.entry.resource as Resource, tx, pending, replaced),
      );
    }
  }

  /**
   * The Patient references of every entry written, checked in one query before anything is written
   * (FhirService.checkPatientReferences): a Patient written by the transaction itself counts as
   * the client's (its own entry is checked like any write). Any refusal fails the whole Bundle.
   */
  private async checkPatientReferences(p: Principal, planned: Planned[], tx: PoolClient): Promise<void> {
    const writes = planned.filter(
      (e) => e.entry.resource && e.target && (e.method === 'PUT' || (e.method === 'POST' && !e.existing && !e.sameAs)),
    );
    const written = new Set(writes.filter((e) => e.target?.type === 'Patient').map((e) => e.target?.id as string));
    const refused = await this.repo.refusedPatientReferences(
      tx,
      p,
      writes.map((e) => e.entry.resource as Resource),
      written,
    );
    if (refused.length > 0) {
      const issues = refused.flatMap((r) =>
        patientReferenceRefusal([r]).issues.map((i) => prefixIssue(i, writes[r.at].index)),
      );
      throw new GatewayError('forbidden', issues);
    }
  }

  /** Gives every POST/PUT entry its final id before any reference is rewritten. */
  private async resolveTarget(
    p: Principal,
    e: Planned,
    tx: PoolClient,
    refs: Map<string, string>,
    creations: Map<string, Planned>,
  ): Promise<void> {
    const [type, id] = e.path.split('/');
    if (e.method === 'POST') {
      if (id) {
        throw new GatewayError('invalid', {
          text: `POST entries create on a type ("${type}"), not on "${e.path}"`,
          expression: 'request.url',
        });
      }
      await this.resolveCreate(p, e, type, tx, creations);
    } else if (e.method === 'PUT' && !id && e.query.length > 0) {
      await this.resolveConditionalUpdate(p, e, type, tx);
    } else if (e.method === 'PUT' && id) {
      e.target = { type, id };
    }
    if (e.target && e.entry.fullUrl) {
      refs.set(e.entry.fullUrl, `${e.target.type}/${e.target.id}`);
    }
  }

  /** POST: a fresh id, or (ifNoneExist) the match, or the entry earlier in this Bundle with the same condition. */
  private async resolveCreate(
    p: Principal,
    e: Planned,
    type: string,
    tx: PoolClient,
    creations: Map<string, Planned>,
  ): Promise<void> {
    checkType(type);
    requireScope(p, type, 'c');
    e.target = { type, id: randomUUID() };
    const ifNoneExist = e.entry.request?.ifNoneExist;
    if (!ifNoneExist) {
      return;
    }
    requireScope(p, type, 's');
    const pairs = queryPairs(ifNoneExist);
    const key = `${type}?${pairs
      .map(([k, v]) => `${k}=${v}`)
      .sort()
      .join('&')}`;
    const earlier = creations.get(key);
    if (earlier) {
      e.target = earlier.target;
      e.sameAs = earlier;
      return;
    }
    const found = await this.repo.lockAndMatchOne(
      tx,
      p,
      this.service.conditionQuery(type, pairs),
      'ifNoneExist',
      'request.ifNoneExist',
    );
    if (found) {
      e.target = { type, id: found.id };
      e.existing = true;
      e.response = { ...resourceResponse(found, 200), location: this.location(found) };
      return;
    }
    creations.set(key, e);
  }

  /** PUT Type?query: the match's id (or the body's / a fresh one when nothing matches). */
  private async resolveConditionalUpdate(p: Principal, e: Planned, type: string, tx: PoolClient): Promise<void> {
    checkType(type);
    requireScope(p, type, 'u');
    const found = await this.repo.lockAndMatchOne(
      tx,
      p,
      this.service.conditionQuery(type, e.query),
      'Conditional update',
      'request.url',
    );
    const bodyId = e.entry.resource?.id as string | undefined;
    if (found && bodyId && bodyId !== found.id) {
      throw new GatewayError('invalid', {
        text: `Resource id ${bodyId} differs from the matched ${type}/${found.id}`,
        expression: `${type}.id`,
      });
    }
    e.target = { type, id: found?.id ?? bodyId ?? randomUUID() };
    e.serverAssignedId = !found && !bodyId;
    e.path = `${type}/${e.target.id}`;
    e.query = [];
    if (e.entry.resource) {
      e.entry.resource.id = e.target.id;
    }
  }

  private location(stored: { resourceType: string; id: string; versionId: number }): string {
    return `${this.service.options.baseUrl}/fhir/${stored.resourceType}/${stored.id}/_history/${stored.versionId}`;
  }

  /** All plain creates of the transaction in one multi-row write. */
  private async createAll(
    p: Principal,
    entries: Planned[],
    req: FhirRequest,
    ctx: WriteContext,
    tx: PoolClient,
  ): Promise<void> {
    const versions: NewVersion[] = [];
    const toCreate = entries.filter((e) => !e.existing && !e.sameAs);
    const turns = new EventLoopTurns();
    for (const e of toCreate) {
      await turns.pass();
      const target = e.target as { type: string; id: string };
      await atEntry(e.index, async () => {
        const resource = bodyResource(e.entry.resource, target.type);
        versions.push(this.repo.prepareCreate(resource, ctx, target.id));
      });
    }
    await this.repo.persist(tx, versions);
    toCreate.forEach((e, i) => {
      const v = versions[i];
      e.response = this.service.written(p, { ...v }, 201, 'create', entryRequest(e, req), ctx);
    });
    for (const e of entries.filter((x) => x.sameAs)) {
      // Same identity as the entry that created it: answered like an If-None-Exist match.
      e.response = { ...(e.sameAs?.response as FhirResponse), status: 200 };
    }
  }

  private async run(
    p: Principal,
    entries: Planned[],
    req: FhirRequest,
    ctx: WriteContext,
    tx: PoolClient,
  ): Promise<void> {
    const turns = new EventLoopTurns();
    for (const e of entries) {
      await turns.pass();
      e.response = await atEntry(e.index, () => this.service.handle(p, entryRequest(e, req), ctx.requestId, tx));
    }
  }
}

function checkBundle(body: unknown): Bundle {
  const bundle = body as Bundle;
  if (!bundle || typeof bundle !== 'object' || Array.isArray(bundle) || bundle.resourceType !== 'Bundle') {
    throw new GatewayError('invalid', {
      text: 'POST on the FHIR base expects a Bundle of type batch or transaction',
      expression: 'resourceType',
    });
  }
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
    throw new GatewayError('invalid', {
      text: `Bundle.type must be batch or transaction, not "${String(bundle.type)}"`,
      expression: 'Bundle.type',
    });
  }
  if (bundle.entry !== undefined && !Array.isArray(bundle.entry)) {
    throw new GatewayError('invalid', { text: 'Bundle.entry must be an array', expression: 'Bundle.entry' });
  }
  return bundle;
}

function plan(entry: BundleEntry, index: number): Planned {
  if (!entry || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new GatewayError('invalid', { text: 'Each entry must be an object', expression: `Bundle.entry[${index}]` });
  }
  const method = entry.request?.method?.toUpperCase();
  const url = entry.request?.url;
  if (!method || !url || ORDER[method] === undefined) {
    throw new GatewayError('invalid', {
      text: 'Each entry needs request.method (GET, POST, PUT, DELETE) and request.url',
      expression: `Bundle.entry[${index}].request`,
    });
  }
  const [path, query] = splitUrl(url);
  if (path === '') {
    // The base itself would mean a Bundle inside a Bundle.
    throw new GatewayError('invalid', {
      text: 'request.url must name a resource type, not the FHIR base',
      expression: `Bundle.entry[${index}].request.url`,
    });
  }
  return { index, entry, method, path, query };
}

/** R4 §3.3.1.4: a transaction fails when two DELETE/POST/PUT entries resolve to the same resource. */
function checkDistinctTargets(planned: Planned[]): void {
  const seen = new Map<string, number>();
  for (const e of planned) {
    const key = writtenResource(e);
    const first = key === undefined ? undefined : seen.get(key);
    if (first !== undefined) {
      const text = `Bundle.entry[${e.index}]: ${key} is already written by Bundle.entry[${first}]`;
      throw new GatewayError('invalid', { text, expression: `Bundle.entry[${e.index}].request.url` });
    }
    if (key !== undefined) {
      seen.set(key, e.index);
    }
  }
}

/** `Type/id` an entry deletes or writes; undefined for reads and for creates that reuse a match. */
function writtenResource(e: Planned): string | undefined {
  if (e.method === 'DELETE') {
    return e.path.includes('/') ? e.path : undefined;
  }
  return e.sameAs || e.existing || !e.target ? undefined : `${e.target.type}/${e.target.id}`;
}

/** GET results always carry their resource; writes only with Prefer: return=representation. */
function renderEntry(a: Answer, preferReturn: FhirRequest['preferReturn']): string {
  const r = a.response;
  const response = {
    status: statusText(r.status),
    ...(r.location ? { location: r.location } : {}),
    ...(r.etag ? { etag: r.etag } : {}),
    ...(r.lastModified ? { lastModified: new Date(r.lastModified).toISOString() } : {}),
  };
  const isOutcome = r.status >= 400 && r.body;
  const wantsBody = a.method === 'GET' || a.method === 'HEAD' || preferReturn === 'representation';
  const resource = r.body && !isOutcome && wantsBody ? `"resource":${r.body},` : '';
  const outcome = isOutcome ? `,"outcome":${r.body}` : '';
  return `{${resource}"response":${JSON.stringify(response).slice(0, -1)}${outcome}}}`;
}

function splitUrl(url: string): [string, [string, string][]] {
  const rel = url.replace(/^https?:\/\/[^/]+(\/[^?]*?)?\/fhir\//, '').replace(/^\//, '');
  const q = rel.indexOf('?');
  return q === -1 ? [rel, []] : [rel.slice(0, q), queryPairs(rel.slice(q + 1))];
}

function queryPairs(q: string): [string, string][] {
  return [...new URLSearchParams(q.replace(/^[A-Za-z]+\?/, ''))];
}

function entryRequest(e: Planned, req: FhirRequest): FhirRequest {
  return {
    method: e.method,
    path: e.path,
    query: e.query,
    body: e.entry.resource,
    ifMatch: e.entry.request?.ifMatch,
    ifNoneExist: e.entry.request?.ifNoneExist,
    strict: req.strict,
    preferReturn: req.preferReturn,
    serverAssignedId: e.serverAssignedId,
  };
}

/** Rewrites every `reference` equal to a bundle fullUrl (urn:uuid:…) to the resolved Type/id. */
export function rewriteReferences(node: unknown, refs: Map<string, string>): void {
  if (Array.isArray(node)) {
    node.forEach((n) => rewriteReferences(n, refs));
  } else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    for (const [k, v] of Object.entries(o)) {
      if (k === 'reference' && typeof v === 'string' && refs.has(v)) {
        o[k] = refs.get(v);
      } else if (typeof v === 'object') {
        rewriteReferences(v, refs);
      }
    }
  }
}

/** Runs a step of entry `index`; errors name the entry (Bundle.entry[i]) and fail the whole transaction. */
async function atEntry<T>(index: number, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof GatewayError) {
      throw new GatewayError(
        err.category,
        err.issues.map((i) => prefixIssue(i, index)),
      );
    }
    throw err;
  }
}

function prefixIssue(issue: OperationOutcomeIssue, index: number): OperationOutcomeIssue {
  const prefix = `Bundle.entry[${index}]`;
  const expression = (issue.expression ?? ['']).map((e) => entryExpression(prefix, e));
  return { ...issue, expression, details: { text: `${prefix}: ${issue.details?.text ?? ''}` } };
}

/** Re-roots an interaction's expression under its entry: resource paths, request fields, search parameters. */
function entryExpression(prefix: string, e: string): string {
  if (e === '') {
    return prefix;
  }
  if (/^[A-Z][A-Za-z]+(\.|$)/.test(e)) {
    return `${prefix}.resource${e.replace(/^[A-Z][A-Za-z]+/, '')}`;
  }
  if (e === 'resourceType') {
    return `${prefix}.resource.resourceType`;
  }
  // Anything else names a request field, or a search parameter of the entry's request.url.
  return e.startsWith('request') ? `${prefix}.${e}` : `${prefix}.request.url`;
}

const REASONS: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  410: 'Gone',
  412: 'Precondition Failed',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
};

function statusText(status: number): string {
  return `${status} ${REASONS[status] ?? ''}`.trim();
}

export type { Resource };
