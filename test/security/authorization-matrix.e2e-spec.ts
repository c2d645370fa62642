import { OWNER_TAG_SYSTEM } from '@gw/store';
import { registeredRoutes } from '../../apps/gateway/src/http/http';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { CLIENT_KINDS, matrixClients, organizationOf, outcomeClass, parseExpectation, send } from '../support/security';
import type { ClientKind, SecurityClient } from '../support/security';

/*
 * The authorization matrix: every HTTP route the gateway registers, probed as each kind of client.
 * A route missing from the table fails the test (a new route must be classified here), and so does
 * a row naming a route that no longer exists.
 *
 * Columns (CLIENT_KINDS): none (no token), admin, structure (MSP, system/*.cruds), hospital
 * (Patient/Encounter cruds), cpts (system/*.rs + Task.cu), readonly (system/Patient.rs).
 * `ok` = past authentication and authorization: any status but 401/403, and never a 5xx (a 404
 * for a sample id, a 400 for an empty body, a "not supported" all count as ok).
 */

// Expectation shorthands, one word per column.
/** Reachable without a token. */
const PUBLIC = 'ok  ok ok  ok  ok  ok ';
/** Operator API: admin clients only. */
const ADMIN = '401 ok 403 403 403 403';
/** Any authenticated client; the handler itself keeps callers apart (bulk export: only its starter). */
const TOKEN = '401 ok ok  ok  ok  ok ';

/** Route: `METHOD[|METHOD…] /pattern` as Fastify registered it; HEAD of a GET route is probed like the GET unless listed. */
type Row = [
  route: string,
  sample: string,
  expect: string,
  extra?: { body?: unknown; headers?: Record<string, string> },
];

const ER7 = { headers: { 'content-type': 'x-application/hl7-v2+er7' }, body: '' };
const ASYNC = { headers: { prefer: 'respond-async' } };
const EMPTY = { body: {} };
const NO_FHIR = 'TRACE|OPTIONS|PATCH|QUERY|HEAD';
const NO_REVIEW = '00000000-0000-4000-8000-000000000000';
const patient = (id?: string): Record<string, unknown> => ({ resourceType: 'Patient', ...(id ? { id } : {}) });
const observation = {
  resourceType: 'Observation',
  status: 'final',
  code: { text: 'matrice' },
};

// prettier-ignore
const MATRIX: Row[] = [
  // --- public: no token ---
  // Liveness for the orchestrator; says nothing but "ok".
  ['GET /health/live',                        '/health/live',                           PUBLIC],
  // Readiness for the orchestrator/load balancer: database and queue up or down, no data.
  ['GET /health/ready',                       '/health/ready',                          PUBLIC],
  // Prometheus scrape: latencies by route pattern and status, queue depths, pool sizes; no patient
  // data. Public so a scraper needs no token: the deploy/ manifests listen on 0.0.0.0, so keep the
  // port off the public network or filter /metrics at the proxy.
  ['GET /metrics',                            '/metrics',                               PUBLIC],
  // SMART discovery (SMART App Launch 2 §2.1): clients read it before they hold a token.
  ['GET /.well-known/smart-configuration',    '/.well-known/smart-configuration',       PUBLIC],
  ['GET /fhir/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration', PUBLIC],
  // The public keys that verify the gateway's tokens: public keys only.
  ['GET /.well-known/jwks.json',              '/.well-known/jwks.json',                 PUBLIC],
  // The token endpoint authenticates the client itself (secret or signed assertion): a bearer token
  // is no credential there, so without client authentication every caller gets 401 (RFC 6749 §5.2).
  ['POST /oauth2/token',                      '/oauth2/token',                          '401 401 401 401 401 401', { body: 'grant_type=client_credentials', headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
  // FHIR R4 http.html#capabilities: the CapabilityStatement is read before authenticating.
  ['GET /fhir/metadata',                      '/fhir/metadata',                         PUBLIC],
  // The dashboard's static files (HTML/JS/CSS): its data calls go through the FHIR API with the user's token.
  ['GET /dashboard',                          '/dashboard',                             PUBLIC],
  ['GET /dashboard/:file',                    '/dashboard/index.html',                  PUBLIC],
  ['GET /dashboard/vendor/chart.umd.min.js',  '/dashboard/vendor/chart.umd.min.js',     PUBLIC],
  // The FMT amounts of the worklist's estimate: published tariffs with their sources, no patient data.
  ['GET /dashboard/fmt-amounts.json',         '/dashboard/fmt-amounts.json',            PUBLIC],
  // Person login through the OpenID Connect provider (404 here: not configured). The provider
  // authenticates the person; the session route gives a token only for the callback's one-time code.
  ['GET /dashboard/login/options',            '/dashboard/login/options',               PUBLIC],
  ['GET /dashboard/login',                    '/dashboard/login',                       PUBLIC],
  ['GET /dashboard/callback',                 '/dashboard/callback?code=x&state=y',     PUBLIC],
  ['POST /dashboard/session',                 '/dashboard/session',                     PUBLIC, { body: { code: 'x' } }],

  // --- operator API: admin only ---
  ['GET /admin/clients',                      '/admin/clients',                         ADMIN],
  ['POST /admin/clients',                     '/admin/clients',                         ADMIN, EMPTY],
  ['POST /admin/clients/:id/deactivate',      '/admin/clients/no-such-client/deactivate', ADMIN],
  ['POST /admin/clients/:id/activate',        '/admin/clients/no-such-client/activate', ADMIN],
  ['PUT /admin/clients/:id/grants',           '/admin/clients/no-such-client/grants',   ADMIN, EMPTY],
  ['GET /admin/jobs/failed',                  '/admin/jobs/failed',                     ADMIN],
  ['POST /admin/jobs/:queue/:id/retry',       '/admin/jobs/no-queue/1/retry',           ADMIN],
  ['GET /admin/audit',                        '/admin/audit?_count=1',                  ADMIN],
  ['GET /admin/events',                       '/admin/events?_count=1',                 ADMIN],
  ['GET /admin/hl7/sources',                  '/admin/hl7/sources',                     ADMIN],
  ['POST /admin/hl7/sources',                 '/admin/hl7/sources',                     ADMIN, EMPTY],
  ['PUT /admin/hl7/sources/:id',              '/admin/hl7/sources/00000000-0000-4000-8000-000000000000', ADMIN, EMPTY],
  ['GET /admin/hl7/messages',                 '/admin/hl7/messages?_count=1',           ADMIN],
  ['GET /admin/hl7/messages/:id',             '/admin/hl7/messages/999999999',          ADMIN],
  ['POST /admin/hl7/messages/:id/reprocess',  '/admin/hl7/messages/999999999/reprocess', ADMIN],
  ['POST /admin/intake/imports',             '/admin/intake/imports',                  ADMIN, EMPTY],
  ['GET /admin/intake/imports',               '/admin/intake/imports?_count=1',         ADMIN],
  ['GET /admin/intake/imports/:id',           '/admin/intake/imports/00000000-0000-4000-8000-000000000000', ADMIN],
  ['GET /admin/exchange/routes',              '/admin/exchange/routes',                 ADMIN],
  ['POST /admin/exchange/routes',             '/admin/exchange/routes',                 ADMIN, EMPTY],
  ['PUT /admin/exchange/routes/:id',          '/admin/exchange/routes/999999999',       ADMIN, EMPTY],
  ['GET /admin/exchange/deliveries',          '/admin/exchange/deliveries?_count=1',    ADMIN],
  ['GET /admin/exchange/deliveries/:id',      '/admin/exchange/deliveries/999999999',   ADMIN],
  ['POST /admin/exchange/deliveries/:id/replay', '/admin/exchange/deliveries/999999999/replay', ADMIN],
  ['GET /admin/exchange/summary',             '/admin/exchange/summary',                ADMIN],
  ['GET /admin/cpts',                         '/admin/cpts',                            ADMIN],
  ['PUT /admin/cpts/:id',                     '/admin/cpts/no-such-org',                ADMIN, EMPTY],
  ['DELETE /admin/cpts/:id',                  '/admin/cpts/no-such-org',                ADMIN],
  // Médecin-traitant verification: operators vouch for structures' PractitionerRoles (directory data).
  ['GET /admin/practitioner-roles',           '/admin/practitioner-roles?verified=false', ADMIN],
  ['POST /admin/practitioner-roles/:id/verify', '/admin/practitioner-roles/no-such-role/verify', ADMIN],
  ['POST /admin/practitioner-roles/:id/unverify', '/admin/practitioner-roles/no-such-role/unverify', ADMIN],
  // Identity review queue, every organization's (operators).
  // Inbound MSSanté mailboxes: poll status and each message's outcome and reason (no message content).
  ['GET /admin/mailboxes',                    '/admin/mailboxes',                       ADMIN],
  ['GET /admin/mailboxes/:name/messages',     '/admin/mailboxes/none/messages',         ADMIN],
  ['GET /admin/identity/reviews',             '/admin/identity/reviews?_count=1',       ADMIN],
  ['GET /admin/identity/reviews/:id',         `/admin/identity/reviews/${NO_REVIEW}`,   ADMIN],
  ['POST /admin/identity/reviews/:id/accept', `/admin/identity/reviews/${NO_REVIEW}/accept`, ADMIN, { body: { patient: 'Patient/x' } }],
  ['POST /admin/identity/reviews/:id/create', `/admin/identity/reviews/${NO_REVIEW}/create`, ADMIN],
  ['POST /admin/identity/reviews/:id/reject', `/admin/identity/reviews/${NO_REVIEW}/reject`, ADMIN, EMPTY],
  // The MSSanté mailbox bridge posts MDNs with an admin client.
  ['POST /exchange/mdn',                      '/exchange/mdn',                          ADMIN],

  // --- HL7 v2 over HTTP: Patient.cu and Encounter.cu (an empty body past the check: 415) ---
  ['POST /hl7v2',                             '/hl7v2',                                 '401 ok ok  ok  403 403', ER7],
  // HPRIM lab code maps: a structure's own labs (Observation read / create scopes), any structure for an operator.
  ['GET /ingest/lab-codes/unmapped',          '/ingest/lab-codes/unmapped',             '401 ok ok  403 ok  403'],
  ['GET /ingest/lab-codes/:lab',              '/ingest/lab-codes/750000001',            '401 ok ok  403 ok  403'],
  ['PUT /ingest/lab-codes/:lab/:code',        '/ingest/lab-codes/750000001/GLY',        '401 ok ok  403 403 403', EMPTY],
  ['DELETE /ingest/lab-codes/:lab/:code',     '/ingest/lab-codes/750000001/GLY',        '401 ok ok  403 403 403'],

  // --- a structure's own identity review queue: read with Patient.rs, decide with Patient.cu (its organization's only) ---
  // Practice documents in: write scopes on every type a document writes (structure-wide system/*.cu);
  // the original of a large document: its owner organization with DocumentReference read.
  ['POST /ingest/documents',                  '/ingest/documents',                      '401 ok ok  403 403 403', { headers: { 'content-type': 'application/xml' }, body: '' }],
  ['GET /ingest/documents/:id/content',       `/ingest/documents/${NO_REVIEW}/content`, '401 ok ok  403 ok  403'],
  ['GET /ingest/identity/reviews',            '/ingest/identity/reviews?_count=1',      TOKEN],
  ['GET /ingest/identity/reviews/:id',        `/ingest/identity/reviews/${NO_REVIEW}`,  TOKEN],
  ['POST /ingest/identity/reviews/:id/accept', `/ingest/identity/reviews/${NO_REVIEW}/accept`, '401 ok ok  ok  403 403', { body: { patient: 'Patient/x' } }],
  ['POST /ingest/identity/reviews/:id/create', `/ingest/identity/reviews/${NO_REVIEW}/create`, '401 ok ok  ok  403 403'],
  ['POST /ingest/identity/reviews/:id/reject', `/ingest/identity/reviews/${NO_REVIEW}/reject`, '401 ok ok  ok  403 403', EMPTY],

  // --- FHIR REST: a token, then SMART scopes ---      none admin msp hosp cpts ro
  ['GET /fhir',                               '/fhir',                                  TOKEN],
  ['POST /fhir',                              '/fhir',                                  TOKEN, { body: { resourceType: 'Bundle', type: 'batch', entry: [] } }],
  ['POST /fhir',                              '/fhir',                                  '401 ok ok  403 403 403', { body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: observation, request: { method: 'POST', url: 'Observation' } }] } }],
  ['PUT|DELETE /fhir',                        '/fhir',                                  TOKEN],
  [`${NO_FHIR} /fhir`,                        '/fhir',                                  TOKEN],
  ['GET /fhir/:type',                         '/fhir/Patient',                          TOKEN],
  ['GET /fhir/:type',                         '/fhir/Observation',                      '401 ok ok  403 ok  403'],
  ['GET /fhir/:type',                         '/fhir/_history',                         TOKEN],
  ['GET /fhir/:type',                         '/fhir/Unknown',                          TOKEN],
  ['POST /fhir/:type',                        '/fhir/Patient',                          '401 ok ok  ok  403 403', { body: patient() }],
  ['POST /fhir/:type',                        '/fhir/Observation',                      '401 ok ok  403 403 403', { body: observation }],
  ['POST /fhir/:type',                        '/fhir/Task',                             '401 ok ok  403 ok  403', { body: { resourceType: 'Task', status: 'requested', intent: 'order' } }],
  ['PUT /fhir/:type',                         '/fhir/Patient?identifier=urn:matrix|1',  '401 ok ok  ok  403 403', { body: patient() }],
  ['DELETE /fhir/:type',                      '/fhir/Patient',                          TOKEN],
  [`${NO_FHIR} /fhir/:type`,                  '/fhir/Patient',                          TOKEN],
  ['GET /fhir/:type/:id',                     '/fhir/Patient/matrix-none',              TOKEN],
  ['GET /fhir/:type/:id',                     '/fhir/Encounter/matrix-none',            '401 ok ok  ok  ok  403'],
  ['GET /fhir/:type/:id',                     '/fhir/Observation/matrix-none',          '401 ok ok  403 ok  403'],
  ['GET /fhir/:type/:id',                     '/fhir/Observation/_history',             '401 ok ok  403 ok  403'],
  ['POST /fhir/:type/:id',                    '/fhir/Patient/_search',                  TOKEN],
  ['POST /fhir/:type/:id',                    '/fhir/Observation/_search',              '401 ok ok  403 ok  403'],
  ['PUT /fhir/:type/:id',                     '/fhir/Patient/matrix-put',               '401 ok ok  ok  403 403', { body: patient('matrix-put') }],
  ['PUT /fhir/:type/:id',                     '/fhir/Observation/matrix-put',           '401 ok ok  403 403 403', { body: { ...observation, id: 'matrix-put' } }],
  ['DELETE /fhir/:type/:id',                  '/fhir/Patient/matrix-none',              '401 ok ok  ok  403 403'],
  ['DELETE /fhir/:type/:id',                  '/fhir/Task/matrix-none',                 '401 ok ok  403 403 403'],
  [`${NO_FHIR} /fhir/:type/:id`,              '/fhir/Patient/matrix-none',              TOKEN],
  ['GET /fhir/:type/:id/:op',                 '/fhir/Patient/matrix-none/_history',     TOKEN],
  ['GET /fhir/:type/:id/:op',                 '/fhir/Observation/matrix-none/_history', '401 ok ok  403 ok  403'],
  ['GET /fhir/:type/:id/:op',                 '/fhir/Patient/matrix-none/$everything',  TOKEN],
  ['POST|PUT|DELETE /fhir/:type/:id/:op',     '/fhir/Patient/matrix-none/$validate',    TOKEN],
  [`${NO_FHIR} /fhir/:type/:id/:op`,          '/fhir/Patient/matrix-none/_history',     TOKEN],
  ['GET /fhir/:type/:id/:op/:vid',            '/fhir/Patient/matrix-none/_history/1',   TOKEN],
  ['GET /fhir/:type/:id/:op/:vid',            '/fhir/Observation/matrix-none/_history/1', '401 ok ok  403 ok  403'],
  ['POST|PUT|DELETE /fhir/:type/:id/:op/:vid', '/fhir/Patient/matrix-none/_history/1',  TOKEN],
  [`${NO_FHIR} /fhir/:type/:id/:op/:vid`,     '/fhir/Patient/matrix-none/_history/1',   TOKEN],

  // --- FHIR operations ---
  // Indicators need Measure read (system/*.rs covers it); an unknown Measure past the check: 404.
  ['GET /fhir/Measure/:id/$evaluate-measure', '/fhir/Measure/matrix-none/$evaluate-measure', '401 ok ok  403 ok  403'],
  ['POST /fhir/Measure/:id/$evaluate-measure', '/fhir/Measure/matrix-none/$evaluate-measure', '401 ok ok  403 ok  403', { body: { resourceType: 'Parameters', parameter: [] } }],
  // Care gaps name patients: a structure's own (and a GP's among them); a CPTS is refused like for
  // recall lists, tokens without Measure read too.
  ['GET /fhir/Measure/$care-gaps',            '/fhir/Measure/$care-gaps?periodStart=2025-01-01&periodEnd=2025-12-31', '401 ok ok  403 403 403'],
  ['POST /fhir/Measure/$care-gaps',           '/fhir/Measure/$care-gaps', '401 ok ok  403 403 403', { body: { resourceType: 'Parameters', parameter: [] } }],
  // Bulk export: Group read; an unknown Group past the check: 404.
  ['GET /fhir/Group/:id/$export',             '/fhir/Group/matrix-none/$export',        '401 ok ok  403 ok  403', ASYNC],
  ['POST /fhir/Group/:id/$export',            '/fhir/Group/matrix-none/$export',        '401 ok ok  403 ok  403', { ...ASYNC, body: { resourceType: 'Parameters', parameter: [] } }],
  ['GET /fhir/$export-status/:id',            '/fhir/$export-status/00000000-0000-4000-8000-000000000000', TOKEN],
  ['DELETE /fhir/$export-status/:id',         '/fhir/$export-status/00000000-0000-4000-8000-000000000000', TOKEN],
  ['GET /fhir/$export-status/:id/:file',      '/fhir/$export-status/00000000-0000-4000-8000-000000000000/Patient.ndjson', TOKEN],
];

interface Probe {
  method: string;
  url: string;
  sample: string;
  expect: Record<ClientKind, string>;
  extra?: Row[3];
}

/** Each row as one probe per method; HEAD of a GET route probed like the GET when the table does not list it. */
function probes(): Probe[] {
  const out: Probe[] = [];
  for (const [route, sample, expect, extra] of MATRIX) {
    const [methods, url] = route.split(' ') as [string, string];
    for (const method of methods.split('|')) {
      out.push({ method, url, sample, expect: parseExpectation(expect), extra });
    }
  }
  const listed = new Set(out.map((p) => `${p.method} ${p.url}`));
  for (const p of [...out]) {
    if (p.method === 'GET' && !listed.has(`HEAD ${p.url}`)) {
      out.push({ ...p, method: 'HEAD', extra: p.extra });
    }
  }
  return out;
}

// One gateway for the file: the matrix and the isolation checks each make their own organizations.
let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway({ GW_MLLP_ENABLED: 'false' });
});
afterAll(async () => gw?.close());

describe('authorization matrix: every route, every client kind', () => {
  let clients: Record<ClientKind, SecurityClient>;

  beforeAll(async () => {
    clients = await matrixClients(gw);
  });

  it('classifies every registered route, and lists no route that does not exist', () => {
    const registered = new Set(registeredRoutes(gw.app).map((r) => `${r.method} ${r.url}`));
    const classified = new Set(probes().map((p) => `${p.method} ${p.url}`));
    expect(registered.size).toBeGreaterThan(30);
    const unclassified = [...registered].filter((r) => !classified.has(r));
    const gone = [...classified].filter((r) => !registered.has(r));
    expect({ unclassified, gone }).toEqual({ unclassified: [], gone: [] });
  });

  it('answers each route as the table says for each client kind', async () => {
    const got: string[] = [];
    const want: string[] = [];
    for (const p of probes()) {
      const results: string[] = [];
      // One client after the other: the write rows share their sample id.
      for (const kind of CLIENT_KINDS) {
        const res = await send(gw.baseUrl, p.method, p.sample, {
          token: clients[kind].token,
          // Fastify refuses a QUERY without a body before any route runs (400, not a probe of the route).
          body: p.extra?.body ?? (p.method === 'QUERY' ? {} : undefined),
          headers: p.extra?.headers,
        });
        results.push(`${kind}=${outcomeClass(res.status)}`);
      }
      got.push(`${p.method} ${p.sample}: ${results.join(' ')}`);
      want.push(`${p.method} ${p.sample}: ${CLIENT_KINDS.map((k) => `${k}=${p.expect[k]}`).join(' ')}`);
    }
    expect(got).toEqual(want);
  });
});

/*
 * Cross-organization isolation: structure A (the matrix's structure client) against structure B's
 * Patient, Encounter, Observation and Task, through every way of reaching a resource: read, vread,
 * history (instance, type, system), update, delete, searches (by id, by reference, chains,
 * _include/_revinclude, _has), conditional references and writes, Bundle batch entries,
 * $everything, $evaluate-measure and bulk export. Each leak check has a control showing the
 * data is there for a caller entitled to it, so an empty answer proves isolation and not a typo.
 */
describe('cross-organization isolation', () => {
  let a: string; // structure A's token
  let b: string; // structure B's token
  let admin: string;
  let orgA: string;
  const ids: Record<string, string> = {};
  const B_FAMILY = 'Secretbee';
  const B_IDENTIFIER = 'urn:matrix:ipp|B-1';
  /** Everything of B's (and B-owned facts about A's patient) that A must never see. */
  let bIds: string[];

  const http = (method: string, path: string, token: string, body?: unknown, headers?: Record<string, string>) =>
    send(gw.baseUrl, method, path.startsWith('/') ? path : `/fhir/${path}`, { token, body, headers });
  async function create(key: string, token: string, resource: Record<string, unknown>): Promise<string> {
    const res = await http('POST', String(resource.resourceType), token, resource);
    if (res.status !== 201) {
      throw new Error(`creating ${key}: ${res.status} ${res.text}`);
    }
    ids[key] = res.json<{ id: string }>().id;
    return ids[key];
  }
  const ownedBy = (org: string) => ({ meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${org}` }] } });
  const subject = (key: string) => ({ reference: `Patient/${ids[key]}` });
  const encounter = (key: string) => ({
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: subject(key),
  });
  const obs = (key: string, code: string) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'urn:matrix:code', code }] },
    subject: subject(key),
  });
  /**
   * The resources in a JSON answer or NDJSON file (matches, includes, history and batch entries,
   * the bundles they hold; Bundles and OperationOutcomes, which echo the caller's own query, aside)
   * and the ids of history entries without a resource (deleted versions: their fullUrl).
   */
  function resourcesIn(text: string): { ids: string[]; resources: unknown[] } {
    const ids: string[] = [];
    const resources: unknown[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) {
        v.forEach(walk);
      } else if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        if (typeof o.resourceType === 'string' && !['Bundle', 'OperationOutcome'].includes(o.resourceType)) {
          resources.push(o);
          ids.push(String(o.id));
        }
        if (typeof o.fullUrl === 'string') {
          ids.push(o.fullUrl.split('/').pop() as string);
        }
        Object.values(o).forEach(walk);
      }
    };
    text
      .split('\n')
      .filter((line) => /^\s*[[{]/.test(line))
      .forEach((line) => walk(JSON.parse(line)));
    return { ids, resources };
  }
  const bundleIds = (text: string): string[] => resourcesIn(text).ids;
  /**
   * B's resources found in an answer: by id, and B's patient's name in any resource. References
   * to B's patient in A's own resources (filed by an operator) are not leaks.
   */
  function leaked(text: string): string[] {
    const { ids: found, resources } = resourcesIn(text);
    return [
      ...bIds.filter((id) => found.includes(id)),
      ...(JSON.stringify(resources).includes(B_FAMILY) ? [B_FAMILY] : []),
    ];
  }

  beforeAll(async () => {
    admin = await gw.token();
    orgA = await organizationOf(gw, 'MSP A', 'MSP');
    const orgB = await organizationOf(gw, 'MSP B', 'MSP');
    a = (await gw.clientOf(orgA, ['system/*.cruds'])).token;
    b = (await gw.clientOf(orgB, ['system/*.cruds'])).token;
    const [system, value] = B_IDENTIFIER.split('|');
    await create('pB', b, { resourceType: 'Patient', name: [{ family: B_FAMILY }], identifier: [{ system, value }] });
    await create('eB', b, encounter('pB'));
    await create('oB', b, obs('pB', 'sec-b'));
    await create('tB', b, { resourceType: 'Task', status: 'requested', intent: 'order', for: subject('pB') });
    const v2 = await http('PUT', `Patient/${ids.pB}`, b, {
      resourceType: 'Patient',
      id: ids.pB,
      name: [{ family: B_FAMILY, given: ['Second'] }],
      identifier: [{ system, value }],
    });
    expect(v2.status).toBe(200);
    await create('pA', a, { resourceType: 'Patient', name: [{ family: 'Ownera' }] });
    await create('oA', a, obs('pA', 'own-a'));
    // Cross references only an operator can file: A's stay of B's patient, B's fact about A's patient.
    await create('eX', admin, { ...encounter('pB'), ...ownedBy(orgA) });
    await create('oY', admin, { ...obs('pA', 'sec-y'), ...ownedBy(orgB) });
    await create('gA', admin, {
      resourceType: 'Group',
      type: 'person',
      actual: true,
      member: [{ entity: subject('pA') }, { entity: subject('pB') }],
      ...ownedBy(orgA),
    });
    await create('gB', b, { resourceType: 'Group', type: 'person', actual: true, member: [{ entity: subject('pB') }] });
    bIds = ['pB', 'eB', 'oB', 'tB', 'oY', 'gB'].map((k) => ids[k] as string);
  });

  const B_RESOURCES = [
    ['Patient', 'pB'],
    ['Encounter', 'eB'],
    ['Observation', 'oB'],
    ['Task', 'tB'],
  ] as const;

  it('reads, vreads and instance histories of B resources answer 404 to A', async () => {
    const got: string[] = [];
    for (const [type, key] of B_RESOURCES) {
      for (const path of [`${type}/${ids[key]}`, `${type}/${ids[key]}/_history/1`, `${type}/${ids[key]}/_history`]) {
        const res = await http('GET', path, a);
        got.push(`${path.replace(ids[key] as string, key)} ${res.status} ${res.text.includes(B_FAMILY) ? 'LEAK' : ''}`);
        expect((await http('GET', path, b)).status).toBe(200); // control
      }
    }
    expect(got).toEqual(got.map((g) => g.replace(/ \d+ .*$/, ' 404 ')));
  });

  it('updates and deletes of B resources are refused to A, reveal nothing and change nothing', async () => {
    for (const [type, key] of B_RESOURCES) {
      const id = ids[key] as string;
      const before = (await http('GET', `${type}/${id}`, b)).json<{ meta: { versionId: string } }>().meta.versionId;
      const put = await http('PUT', `${type}/${id}`, a, {
        ...(await http('GET', `${type}/${id}`, admin)).json<Record<string, unknown>>(),
        meta: undefined,
      });
      const del = await http('DELETE', `${type}/${id}`, a);
      const after = await http('GET', `${type}/${id}`, b);
      // A PUT whose body names B's patient is refused by the write-for-a-patient rule first (403,
      // the same whether the target id exists or not); B's Patient itself gets the 404.
      const refused = type === 'Patient' ? 404 : 403;
      expect([type, put.status, del.status, after.status]).toEqual([type, refused, 404, 200]);
      expect(after.json<{ meta: { versionId: string } }>().meta.versionId).toBe(before);
    }
  });

  it('searches, chains, _include, _revinclude and _has return none of B resources to A', async () => {
    const queries = [
      `Patient?_id=${ids.pB}`,
      `Encounter?_id=${ids.eB}`,
      `Observation?_id=${ids.oB}`,
      `Task?_id=${ids.tB}`,
      `Patient?family=${B_FAMILY}`,
      `Patient?identifier=${B_IDENTIFIER}`,
      `Encounter?subject=Patient/${ids.pB}`,
      `Observation?patient=${ids.pB}`,
      `Task?patient=Patient/${ids.pB}`,
      'Observation?code=urn:matrix:code|sec-y',
      // A's own stay of B's patient: the patient must not come along.
      'Encounter?_include=Encounter:subject',
      `Encounter?_id=${ids.eX}&_include=Encounter:patient`,
      // B's fact about A's patient must not come along.
      `Patient?_id=${ids.pA}&_revinclude=Observation:subject`,
      `Patient?_revinclude=Observation:patient&_revinclude=Encounter:subject&_revinclude=Task:patient`,
      `Observation?subject:Patient.family=${B_FAMILY}`,
      `Observation?_count=1000`,
      `Encounter?_count=1000`,
      `Task?_count=1000`,
      `Patient?_count=1000`,
    ];
    const leaks: string[] = [];
    for (const q of queries) {
      for (const method of ['GET', 'POST']) {
        const [type, query] = q.split('?') as [string, string];
        const res =
          method === 'GET'
            ? await http('GET', q, a)
            : await http('POST', `${type}/_search`, a, query, { 'content-type': 'application/x-www-form-urlencoded' });
        expect([q, method, res.status]).toEqual([q, method, 200]);
        if (leaked(res.text).length > 0) {
          leaks.push(`${method} ${q}`);
        }
      }
    }
    expect(leaks).toEqual([]);
    // Controls: the operator sees what A was refused.
    expect(
      bundleIds((await http('GET', 'Encounter?_id=' + ids.eX + '&_include=Encounter:subject', admin)).text),
    ).toContain(ids.pB);
    expect(
      bundleIds((await http('GET', `Patient?_id=${ids.pA}&_revinclude=Observation:subject`, admin)).text),
    ).toContain(ids.oY);
  });

  it('a chain through B resources is no oracle: A own stay of B patient is not found by the patient name', async () => {
    const chained = `Encounter?subject:Patient.family=${B_FAMILY}`;
    expect(bundleIds((await http('GET', chained, a)).text)).not.toContain(ids.eX);
    expect(bundleIds((await http('GET', chained, admin)).text)).toContain(ids.eX); // control
  });

  it('_has over B facts is no oracle (refused when strict, ignored alike otherwise)', async () => {
    const has = (code: string, strict = false) =>
      http(
        'GET',
        `Patient?_has:Observation:subject:code=urn:matrix:code|${code}`,
        a,
        undefined,
        strict ? { prefer: 'handling=strict' } : {},
      );
    expect((await has('sec-y', true)).status).toBe(400);
    const withB = bundleIds((await has('sec-y')).text).sort();
    const withNothing = bundleIds((await has('nobody-has-this')).text).sort();
    expect(withB).toEqual(withNothing);
  });

  it('type and system histories hold none of B resources for A', async () => {
    const leaks: string[] = [];
    for (const path of [
      '_history',
      'Patient/_history',
      'Encounter/_history',
      'Observation/_history',
      'Task/_history',
      'Group/_history',
      '_history?_since=2000-01-01',
    ]) {
      const res = await http('GET', path, a);
      expect([path, res.status]).toEqual([path, 200]);
      if (leaked(res.text).length > 0) {
        leaks.push(path);
      }
    }
    expect(leaks).toEqual([]);
    expect(leaked((await http('GET', '_history?_count=1000', admin)).text)).toEqual([...bIds, B_FAMILY]); // control
  });

  it('conditional references and conditional writes do not resolve to B resources', async () => {
    const ref = await http('POST', 'Observation', a, {
      ...obs('pA', 'cond'),
      subject: { reference: `Patient?identifier=${B_IDENTIFIER}` },
    });
    expect(ref.status).toBe(400); // no match among A's patients
    expect(leaked(ref.text)).toEqual([]);
    const ifNoneExist = await http(
      'POST',
      'Patient',
      a,
      { resourceType: 'Patient', name: [{ family: 'Ownera' }] },
      {
        'if-none-exist': `identifier=${B_IDENTIFIER}`,
      },
    );
    expect(ifNoneExist.status).toBe(201); // B's patient is not "the existing one"
    const condUpdate = await http('PUT', `Patient?identifier=${B_IDENTIFIER}`, a, {
      resourceType: 'Patient',
      name: [{ family: 'Ownera' }],
    });
    expect(condUpdate.status).toBeLessThan(500);
    expect(leaked(condUpdate.text)).toEqual([]);
    const pB = await http('GET', `Patient/${ids.pB}`, b);
    expect(pB.json<{ meta: { versionId: string } }>().meta.versionId).toBe('2');
  });

  it('Bundle batch entries read, search, change nothing of B', async () => {
    const entries = [
      ...B_RESOURCES.map(([type, key]) => ({ request: { method: 'GET', url: `${type}/${ids[key]}` } })),
      { request: { method: 'GET', url: `Patient/${ids.pB}/_history` } },
      { request: { method: 'GET', url: `Encounter/${ids.eB}/_history/1` } },
      { request: { method: 'GET', url: `Observation?patient=${ids.pB}` } },
      { request: { method: 'GET', url: `Patient?_id=${ids.pA}&_revinclude=Observation:subject` } },
      { request: { method: 'GET', url: '_history' } },
      { request: { method: 'DELETE', url: `Task/${ids.tB}` } },
    ];
    const res = await http('POST', '/fhir', a, { resourceType: 'Bundle', type: 'batch', entry: entries });
    expect(res.status).toBe(200);
    const out = res.json<{ entry: { response: { status: string }; resource?: unknown }[] }>().entry;
    expect(out.map((e) => e.response.status.slice(0, 3))).toEqual([
      '404',
      '404',
      '404',
      '404',
      '404',
      '404',
      '200',
      '200',
      '200',
      '404',
    ]);
    expect(leaked(res.text)).toEqual([]);
    expect((await http('GET', `Task/${ids.tB}`, b)).status).toBe(200);
  });

  it('$everything and $evaluate-measure reveal nothing of B patient to A', async () => {
    const everything = await http('GET', `Patient/${ids.pB}/$everything`, a);
    expect(everything.status).not.toBe(200);
    expect(leaked(everything.text.replace(ids.pB as string, ''))).toEqual([]);
    const evaluate = await http(
      'GET',
      `Measure/rosp-grippe-65/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31&reportType=subject&subject=Patient/${ids.pB}`,
      a,
    );
    expect([403, 404]).toContain(evaluate.status);
  });

  it('bulk export: A export of a Group naming B patient holds nothing of B; B export does not exist for A', async () => {
    const kick = await http('GET', `Group/${ids.gA}/$export`, a, undefined, { prefer: 'respond-async' });
    expect(kick.status).toBe(202);
    const statusUrl = new URL(String(kick.headers['content-location'])).pathname;
    let manifest: { output: { type: string; url: string }[] } | undefined;
    for (const deadline = Date.now() + 20_000; !manifest && Date.now() < deadline;) {
      const s = await http('GET', statusUrl, a);
      if (s.status === 200) {
        manifest = s.json();
      } else {
        expect(s.status).toBe(202);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(manifest?.output.length).toBeGreaterThan(0);
    let exported = '';
    for (const o of manifest?.output ?? []) {
      exported += (await http('GET', new URL(o.url).pathname, a)).text;
    }
    expect(exported).toContain(ids.pA); // control: A's own patient is there
    expect(leaked(exported)).toEqual([]);

    const kickB = await http('GET', `Group/${ids.gB}/$export`, b, undefined, { prefer: 'respond-async' });
    expect(kickB.status).toBe(202);
    const statusB = new URL(String(kickB.headers['content-location'])).pathname;
    const probesB = [
      await http('GET', statusB, a),
      await http('GET', `${statusB}/Patient.ndjson`, a),
      await http('DELETE', statusB, a),
      await http('GET', `Group/${ids.gB}/$export`, a, undefined, { prefer: 'respond-async' }),
    ];
    expect(probesB.map((r) => r.status)).toEqual([404, 404, 404, 404]);
    expect([200, 202]).toContain((await http('GET', statusB, b)).status); // B's export is untouched
  });
});
