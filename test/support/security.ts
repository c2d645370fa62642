import { request } from 'node:http';
import { ORGANIZATION_TYPE_SYSTEM, TERRITORY_COMMUNE_EXTENSION } from '@gw/fhir';
import type { TestGateway } from './gateway';
import { call } from './hl7';

/** The client kinds of the authorization matrix, in the order of its columns. */
export const CLIENT_KINDS = ['none', 'admin', 'structure', 'hospital', 'cpts', 'readonly'] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

/** The class of an answer: past authentication and authorization (`ok`: any status but 401, 403 and 5xx), 401 or 403. */
export type OutcomeClass = 'ok' | '401' | '403';

export interface SecurityClient {
  kind: ClientKind;
  /** Organization id (none for the anonymous caller). */
  org?: string;
  token?: string;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

/**
 * One HTTP call with any method (fetch refuses TRACE and friends), no keep-alive. A body that is
 * not a string or Buffer is sent as FHIR JSON.
 */
export function send(
  baseUrl: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  const url = new URL(path, baseUrl);
  const payload =
    opts.body === undefined
      ? undefined
      : typeof opts.body === 'string' || Buffer.isBuffer(opts.body)
        ? opts.body
        : JSON.stringify(opts.body);
  const headers: Record<string, string> = {
    connection: 'close',
    ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
    ...(payload === undefined ? {} : { 'content-type': 'application/fhir+json' }),
    ...opts.headers,
  };
  if (payload !== undefined) {
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text,
          json: <T>() => JSON.parse(text) as T,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * The class of an HTTP status, as the matrix states expectations. 501 (an interaction the gateway
 * does not implement, answered after authorization) is ok; any other 5xx is a failure to report.
 */
export function outcomeClass(status: number): OutcomeClass | `unexpected ${number}` {
  if (status === 401 || status === 403) {
    return String(status) as OutcomeClass;
  }
  return (status >= 500 && status !== 501) || status < 200 ? `unexpected ${status}` : 'ok';
}

/**
 * A row's expectations, one word per client kind in {@link CLIENT_KINDS} order:
 * `'401 ok 403 403 403 403'`.
 */
export function parseExpectation(text: string): Record<ClientKind, OutcomeClass> {
  const words = text.trim().split(/\s+/);
  if (words.length !== CLIENT_KINDS.length || words.some((w) => !['ok', '401', '403'].includes(w))) {
    throw new Error(`bad expectation "${text}": ${CLIENT_KINDS.length} words of ok, 401, 403`);
  }
  return Object.fromEntries(CLIENT_KINDS.map((k, i) => [k, words[i]])) as Record<ClientKind, OutcomeClass>;
}

/** Creates an Organization (as admin) of a gateway organization type; CPTS get territory communes. */
export async function organizationOf(
  gw: TestGateway,
  name: string,
  type: string,
  communes: string[] = [],
): Promise<string> {
  const res = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/Organization`, {
    resourceType: 'Organization',
    name,
    type: [{ coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: type }] }],
    extension: communes.map((c) => ({ url: TERRITORY_COMMUNE_EXTENSION, valueCode: c })),
  });
  if (res.status !== 201) {
    throw new Error(`creating Organization ${name}: HTTP ${res.status}`);
  }
  return res.body.id;
}

/** Scopes of each client kind of the matrix (admin: the bootstrap admin client, system/*.cruds). */
export const KIND_SCOPES: Record<Exclude<ClientKind, 'none' | 'admin'>, string[]> = {
  // An MSP/CDS: its own patients' whole record.
  structure: ['system/*.cruds'],
  // A hospital: patients and stays (FHIR and HL7 v2 ADT), nothing else.
  hospital: ['system/Patient.cruds', 'system/Encounter.cruds'],
  // A CPTS: reads (indicators, its coordination Tasks) and updates the Tasks it is sent.
  cpts: ['system/*.rs', 'system/Task.cu'],
  // A narrow reader.
  readonly: ['system/Patient.rs'],
};

/** One client of each kind of the matrix, each of its own organization. */
export async function matrixClients(gw: TestGateway): Promise<Record<ClientKind, SecurityClient>> {
  const structure = await organizationOf(gw, 'MSP Matrice', 'MSP');
  const hospital = await organizationOf(gw, 'CH Matrice', 'hospital');
  // Made a CPTS by an operator, through the operator API.
  const cpts = await organizationOf(gw, 'CPTS Matrice', 'association');
  const grant = await call(gw, 'PUT', `${gw.baseUrl}/admin/cpts/${cpts}`, { communes: ['75156'] });
  if (grant.status !== 200) {
    throw new Error(`granting CPTS ${cpts}: HTTP ${grant.status}`);
  }
  const readonly = await organizationOf(gw, 'MSP Lecture', 'MSP');
  const client = async (kind: Exclude<ClientKind, 'none' | 'admin'>, org: string): Promise<SecurityClient> => ({
    kind,
    org,
    token: (await gw.clientOf(org, KIND_SCOPES[kind])).token,
  });
  return {
    none: { kind: 'none' },
    admin: { kind: 'admin', token: await gw.token() },
    structure: await client('structure', structure),
    hospital: await client('hospital', hospital),
    cpts: await client('cpts', cpts),
    readonly: await client('readonly', readonly),
  };
}
