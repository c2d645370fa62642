import { registeredRoutes } from '../../apps/gateway/src/http/http';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { CLIENT_KINDS, matrixClients, outcomeClass, parseExpectation, send } from '../support/security';
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
  // Prometheus scrape: counters and latencies by route pattern, no patient data. Public by design
  // for a loopback/private-network listener; see docs (restrict at the proxy when exposed).
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

  // --- operator API: admin only ---
  ['GET /admin/clients',                      '/admin/clients',                         ADMIN],
  ['POST /admin/clients',                     '/admin/clients',                         ADMIN, EMPTY],
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
  ['GET /admin/exchange/routes',              '/admin/exchange/routes',                 ADMIN],
  ['POST /admin/exchange/routes',             '/admin/exchange/routes',                 ADMIN, EMPTY],
  ['PUT /admin/exchange/routes/:id',          '/admin/exchange/routes/999999999',       ADMIN, EMPTY],
  ['GET /admin/exchange/deliveries',          '/admin/exchange/deliveries?_count=1',    ADMIN],
  ['GET /admin/exchange/deliveries/:id',      '/admin/exchange/deliveries/999999999',   ADMIN],
  ['POST /admin/exchange/deliveries/:id/replay', '/admin/exchange/deliveries/999999999/replay', ADMIN],
  ['GET /admin/exchange/summary',             '/admin/exchange/summary',                ADMIN],
  // The MSSanté mailbox bridge posts MDNs with an admin client.
  ['POST /exchange/mdn',                      '/exchange/mdn',                          ADMIN],

  // --- HL7 v2 over HTTP: Patient.cu and Encounter.cu (an empty body past the check: 415) ---
  ['POST /hl7v2',                             '/hl7v2',                                 '401 ok ok  ok  403 403', ER7],

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

describe('authorization matrix: every route, every client kind', () => {
  let gw: TestGateway;
  let clients: Record<ClientKind, SecurityClient>;

  beforeAll(async () => {
    gw = await startTestGateway({ GW_MLLP_ENABLED: 'false' });
    clients = await matrixClients(gw);
  });
  afterAll(async () => gw?.close());

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
