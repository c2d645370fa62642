import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import type { PoolClient } from 'pg';
import { GatewayError } from '@gw/platform';
import type { Principal } from './access';
import type { FhirRequest, FhirResponse, FhirService } from './fhir-service';
import { bodyResource, checkType, requireScope } from './fhir-service';
import type { NewVersion } from './persist';
import type { FhirRepository, WriteContext } from './repository';

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
  response?: FhirResponse;
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
    const bundle = req.body as Bundle;
    if (!bundle || typeof bundle !== 'object' || bundle.resourceType !== 'Bundle') {
      throw new GatewayError('invalid', { text: 'POST on the FHIR base expects a Bundle of type batch or transaction', expression: 'resourceType' });
    }
    if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
      throw new GatewayError('invalid', { text: `Bundle.type must be batch or transaction, not "${String(bundle.type)}"`, expression: 'Bundle.type' });
    }
    const planned = (bundle.entry ?? []).map((entry, index) => plan(entry, index));
    const responses = bundle.type === 'batch' ? await this.batch(p, planned, req, ctx) : await this.transaction(p, planned, req, ctx);
    const type = bundle.type === 'batch' ? 'batch-response' : 'transaction-response';
    this.service.record(p, bundle.type, 'Bundle', [], 200, ctx.requestId);
    const entries = responses.map((r) => {
      const response = {
        status: statusText(r.status),
        ...(r.location ? { location: r.location } : {}),
        ...(r.etag ? { etag: r.etag } : {}),
        ...(r.lastModified ? { lastModified: new Date(r.lastModified).toISOString() } : {}),
      };
      const isOutcome = r.status >= 400 && r.body;
      const resource = r.body && !isOutcome && req.preferReturn === 'representation' ? `"resource":${r.body},` : '';
      const outcome = isOutcome ? `,"outcome":${r.body}` : '';
      return `{${resource}"response":${JSON.stringify(response).slice(0, -1)}${outcome}}}`;
    });
    return { status: 200, body: `{"resourceType":"Bundle","type":"${type}","entry":[${entries.join(',')}]}` };
  }

  private async batch(p: Principal, planned: Planned[], req: FhirRequest, ctx: WriteContext): Promise<FhirResponse[]> {
    const out: FhirResponse[] = [];
    for (const e of planned) {
      try {
        out.push(await this.service.handle(p, entryRequest(e, req), ctx.requestId));
      } catch (err) {
        const ge = err instanceof GatewayError ? err : new GatewayError('internal', { text: 'Internal error processing this entry' });
        out.push({ status: ge.status, body: JSON.stringify(ge.toOutcome()) });
      }
    }
    return out;
  }

  private async transaction(p: Principal, planned: Planned[], req: FhirRequest, ctx: WriteContext): Promise<FhirResponse[]> {
    return this.repo.withTransaction(async (tx) => {
      const refs = new Map<string, string>();
      for (const e of planned) {
        await atEntry(e.index, () => this.resolveTarget(p, e, tx, refs));
      }
      for (const e of planned) {
        rewriteReferences(e.entry.resource, refs);
      }
      const sorted = [...planned].sort((a, b) => ORDER[a.method] - ORDER[b.method] || a.index - b.index);
      await this.run(p, sorted.filter((e) => e.method === 'DELETE'), req, ctx, tx);
      await this.createAll(p, sorted.filter((e) => e.method === 'POST'), req, ctx, tx);
      await this.run(p, sorted.filter((e) => e.method !== 'DELETE' && e.method !== 'POST'), req, ctx, tx);
      return planned.map((e) => e.response as FhirResponse);
    });
  }

  /** Gives every POST/PUT entry its final id before any reference is rewritten. */
  private async resolveTarget(p: Principal, e: Planned, tx: PoolClient, refs: Map<string, string>): Promise<void> {
    const [type, id] = e.path.split('/');
    if (e.method === 'POST' && !id) {
      checkType(type);
      requireScope(p, type, 'c');
      let targetId: string = randomUUID();
      if (e.entry.request?.ifNoneExist) {
        const found = await this.repo.lockAndMatch(tx, p, this.service.conditionQuery(type, queryPairs(e.entry.request.ifNoneExist)));
        if (found.length > 1) {
          throw new GatewayError('precondition-failed', { text: `ifNoneExist matched ${found.length} resources`, code: 'multiple-matches' });
        }
        if (found.length === 1) {
          targetId = found[0].id;
          e.existing = true;
          e.response = { status: 200, location: `${type}/${targetId}/_history/${found[0].versionId}`, etag: `W/"${found[0].versionId}"`, body: found[0].json ?? undefined };
        }
      }
      e.target = { type, id: targetId };
    } else if (e.method === 'PUT' && !id && e.query.length > 0) {
      checkType(type);
      const found = await this.repo.lockAndMatch(tx, p, this.service.conditionQuery(type, e.query));
      if (found.length > 1) {
        throw new GatewayError('precondition-failed', { text: `Conditional update matched ${found.length} resources`, code: 'multiple-matches' });
      }
      e.target = { type, id: found[0]?.id ?? (e.entry.resource?.id as string | undefined) ?? randomUUID() };
      e.path = `${type}/${e.target.id}`;
      e.query = [];
      if (e.entry.resource) {
        e.entry.resource.id = e.target.id;
      }
    } else if (e.method === 'PUT' && id) {
      e.target = { type, id };
    }
    if (e.target && e.entry.fullUrl) {
      refs.set(e.entry.fullUrl, `${e.target.type}/${e.target.id}`);
    }
  }

  /** All plain creates of the transaction in one multi-row write. */
  private async createAll(p: Principal, entries: Planned[], req: FhirRequest, ctx: WriteContext, tx: PoolClient): Promise<void> {
    const versions: NewVersion[] = [];
    const toCreate = entries.filter((e) => !e.existing);
    for (const e of toCreate) {
      const target = e.target as { type: string; id: string };
      await atEntry(e.index, async () => {
        const resource = bodyResource(e.entry.resource, target.type);
        versions.push(this.repo.prepareCreate(resource, ctx, target.id));
      });
    }
    await this.repo.persist(tx, versions, ctx);
    toCreate.forEach((e, i) => {
      const v = versions[i];
      e.response = this.service.written(p, { ...v }, 201, 'create', entryRequest(e, req), ctx);
    });
  }

  private async run(p: Principal, entries: Planned[], req: FhirRequest, ctx: WriteContext, tx: PoolClient): Promise<void> {
    for (const e of entries) {
      e.response = await atEntry(e.index, () => this.service.handle(p, entryRequest(e, req), ctx.requestId, tx));
    }
  }
}

function plan(entry: BundleEntry, index: number): Planned {
  const method = entry.request?.method?.toUpperCase();
  const url = entry.request?.url;
  if (!method || !url || ORDER[method] === undefined) {
    throw new GatewayError('invalid', { text: 'Each entry needs request.method (GET, POST, PUT, DELETE) and request.url', expression: `Bundle.entry[${index}].request` });
  }
  const [path, query] = splitUrl(url);
  return { index, entry, method, path, query };
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
      throw new GatewayError(err.category, err.issues.map((i) => prefixIssue(i, index)));
    }
    throw err;
  }
}

function prefixIssue(issue: OperationOutcomeIssue, index: number): OperationOutcomeIssue {
  const prefix = `Bundle.entry[${index}]`;
  const expression = (issue.expression ?? ['']).map((e) =>
    e === '' ? prefix : /^[A-Z][A-Za-z]+(\.|$)/.test(e) ? `${prefix}.resource${e.replace(/^[A-Z][A-Za-z]+/, '')}` : `${prefix}.${e}`,
  );
  return { ...issue, expression, details: { text: `${prefix}: ${issue.details?.text ?? ''}` } };
}

const REASONS: Record<number, string> = { 200: 'OK', 201: 'Created', 204: 'No Content', 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 410: 'Gone', 412: 'Precondition Failed', 422: 'Unprocessable Entity', 500: 'Internal Server Error' };

function statusText(status: number): string {
  return `${status} ${REASONS[status] ?? ''}`.trim();
}

export type { Resource };
