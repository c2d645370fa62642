import { randomUUID } from 'node:crypto';
import { SignJWT, createLocalJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import type { Bundle, CapabilityStatement, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { CLIENT_ASSERTION_TYPE, TokenService } from '@gw/platform';
import { SERVED_RESOURCE_TYPES } from '@gw/fhir';
import { OWNER_TAG_SYSTEM } from '../../libs/store/src/repository/fhir.repository';
import { INS_TEST, insPatient as patient } from '../support/fixtures';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

const FHIR_JSON = 'application/fhir+json';

interface HttpResult<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

/** One HTTP call; the body is parsed when it is JSON. */
/** `resource` as the operator files it under organization `org` (meta.tag owner). */
function filedUnder<T extends object>(org: string, resource: T): T {
  return { ...resource, meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${org}` }] } };
}

async function call<T = Record<string, unknown>>(
  url: string,
  init: RequestInit & { token?: string } = {},
): Promise<HttpResult<T>> {
  const headers = new Headers(init.headers);
  if (init.token) {
    headers.set('authorization', `Bearer ${init.token}`);
  }
  if (init.body && !headers.has('content-type')) {
    headers.set('content-type', FHIR_JSON);
  }
  const res = await fetch(url, { ...init, headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: body as T, headers: res.headers };
}

describe('OAuth2, SMART scopes, organization isolation and admin API', () => {
  let gw: TestGateway;
  let tokenUrl: string;

  const tokenRequest = (form: Record<string, string>, authorization?: string): Promise<HttpResult> =>
    call(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
      body: new URLSearchParams(form).toString(),
    });
  const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

  beforeAll(async () => {
    gw = await startTestGateway();
    tokenUrl = `${gw.baseUrl}/oauth2/token`;
  });
  afterAll(async () => gw.close());

  describe('token endpoint with a shared secret', () => {
    it('issues an ES256 access token by client_secret_basic', async () => {
      const res = await tokenRequest(
        { grant_type: 'client_credentials' },
        basic(gw.admin.clientId, gw.admin.clientSecret),
      );
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.body).toMatchObject({ token_type: 'bearer', scope: 'system/*.cruds' });
      expect(res.body.expires_in).toBeGreaterThan(0);
      const claims = decodeJwt(String(res.body.access_token));
      expect(claims.sub).toBe(gw.admin.clientId);
      expect(claims.iss).toBe(gw.baseUrl);
      expect(claims.aud).toBe(`${gw.baseUrl}/fhir`);
      expect(claims.client_id).toBe(gw.admin.clientId);
      expect(claims.jti).toEqual(expect.any(String));
      expect(Number(claims.exp) - Number(claims.iat)).toBe(res.body.expires_in);
      const search = await call(`${gw.fhirUrl}/Patient`, { token: String(res.body.access_token) });
      expect(search.status).toBe(200);
    });

    it('issues a token by client_secret_post', async () => {
      const res = await tokenRequest({
        grant_type: 'client_credentials',
        client_id: gw.admin.clientId,
        client_secret: gw.admin.clientSecret,
      });
      expect(res.status).toBe(200);
      expect(res.body.access_token).toEqual(expect.any(String));
    });

    it('refuses a wrong secret, an unknown client and a missing authentication with 401 invalid_client', async () => {
      const wrong = await tokenRequest(
        { grant_type: 'client_credentials' },
        basic(gw.admin.clientId, 'not-the-secret'),
      );
      expect(wrong.status).toBe(401);
      expect(wrong.body.error).toBe('invalid_client');
      expect(wrong.body.access_token).toBeUndefined();
      const unknown = await tokenRequest({ grant_type: 'client_credentials' }, basic('no-such-client', 'whatever'));
      expect(unknown.status).toBe(401);
      expect(unknown.body.error).toBe('invalid_client');
      const none = await tokenRequest({ grant_type: 'client_credentials' });
      expect(none.status).toBe(401);
      expect(none.body.error).toBe('invalid_client');
    });

    it('answers a malformed Basic header with 401 invalid_client, not a server error', async () => {
      const badEscape = await tokenRequest({ grant_type: 'client_credentials' }, basic(gw.admin.clientId, '%E0%A4%A'));
      expect(badEscape.status).toBe(401);
      expect(badEscape.body.error).toBe('invalid_client');
      const noColon = await tokenRequest(
        { grant_type: 'client_credentials' },
        `Basic ${Buffer.from(gw.admin.clientId).toString('base64')}`,
      );
      expect(noColon.status).toBe(401);
      expect(noColon.body.error).toBe('invalid_client');
    });

    it('sends a Basic challenge with a 401 to a client that authenticated with HTTP Basic', async () => {
      const wrong = await tokenRequest(
        { grant_type: 'client_credentials' },
        basic(gw.admin.clientId, 'not-the-secret'),
      );
      expect(wrong.headers.get('www-authenticate')).toMatch(/^Basic /);
      expect(wrong.headers.get('cache-control')).toBe('no-store');
    });

    it('answers non-string parameters in a JSON body with an OAuth error, not a server error', async () => {
      const res = await call(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: basic(gw.admin.clientId, gw.admin.clientSecret) },
        body: JSON.stringify({ grant_type: 'client_credentials', scope: ['system/*.rs'] }),
      });
      expect(res.status).toBe(200);
      const numeric = await call(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ grant_type: 'client_credentials', client_id: 42, client_secret: 7 }),
      });
      expect(numeric.status).toBe(401);
      expect(numeric.body.error).toBe('invalid_client');
    });

    it('refuses a token to a deactivated client', async () => {
      const c = await gw.clientOf('msp-inactive', ['system/*.rs']);
      await gw.core.db.pool.query('UPDATE client SET active = false WHERE id = $1', [c.clientId]);
      const res = await tokenRequest({ grant_type: 'client_credentials' }, basic(c.clientId, c.secret));
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
    });

    it('refuses another grant type with 400 unsupported_grant_type', async () => {
      const res = await tokenRequest(
        { grant_type: 'password', username: 'x', password: 'y' },
        basic(gw.admin.clientId, gw.admin.clientSecret),
      );
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('unsupported_grant_type');
      const missing = await tokenRequest({}, basic(gw.admin.clientId, gw.admin.clientSecret));
      expect(missing.status).toBe(400);
      expect(missing.body.error).toBe('unsupported_grant_type');
    });
  });

  describe('token endpoint with private_key_jwt (SMART Backend Services)', () => {
    let clientId: string;
    let privateKey: CryptoKey;
    const kid = 'backend-key-1';

    const assertion = (
      opts: { aud?: string; exp?: number; jti?: string; key?: CryptoKey; alg?: string; iss?: string } = {},
    ): Promise<string> => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ alg: opts.alg ?? 'RS384', kid, typ: 'JWT' })
        .setIssuer(opts.iss ?? clientId)
        .setSubject(clientId)
        .setAudience(opts.aud ?? tokenUrl)
        .setIssuedAt(now)
        .setExpirationTime(opts.exp ?? now + 240)
        .setJti(opts.jti ?? randomUUID())
        .sign(opts.key ?? privateKey);
    };
    const withAssertion = (jwt: string, extra: Record<string, string> = {}): Promise<HttpResult> =>
      tokenRequest({
        grant_type: 'client_credentials',
        client_assertion_type: CLIENT_ASSERTION_TYPE,
        client_assertion: jwt,
        ...extra,
      });

    beforeAll(async () => {
      const pair = await generateKeyPair('RS384', { extractable: true });
      privateKey = pair.privateKey;
      const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg: 'RS384', use: 'sig' };
      const { client } = await gw.core.clients.create({
        name: 'Backend service of msp-jwt',
        organization: 'Organization/msp-jwt',
        scopes: ['system/*.cruds'],
        jwks: { keys: [publicJwk] },
      });
      clientId = client.id;
      expect(client.hasSecret).toBe(false);
    });

    it('issues a token for an RS384 assertion that works on /fhir', async () => {
      const res = await withAssertion(await assertion(), { scope: 'system/Patient.cruds' });
      expect(res.status).toBe(200);
      expect(res.body.scope).toBe('system/Patient.cruds');
      const token = String(res.body.access_token);
      expect(decodeJwt(token).sub).toBe(clientId);
      const created = await call<Patient>(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        token,
        body: JSON.stringify(patient('280027511251110')),
      });
      expect(created.status).toBe(201);
      expect(created.body.meta?.tag).toContainEqual({ system: OWNER_TAG_SYSTEM, code: 'Organization/msp-jwt' });
      const read = await call<Patient>(`${gw.fhirUrl}/Patient/${created.body.id}`, { token });
      expect(read.status).toBe(200);
    });

    it('accepts an ES384 assertion from a client registered with an EC key', async () => {
      const pair = await generateKeyPair('ES384', { extractable: true });
      const { client } = await gw.core.clients.create({
        name: 'EC backend',
        organization: 'Organization/msp-jwt',
        scopes: ['system/Patient.rs'],
        jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'ec-1', alg: 'ES384' }] },
      });
      const now = Math.floor(Date.now() / 1000);
      const jwt = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES384', kid: 'ec-1' })
        .setIssuer(client.id)
        .setSubject(client.id)
        .setAudience(tokenUrl)
        .setExpirationTime(now + 120)
        .setJti(randomUUID())
        .sign(pair.privateKey);
      const res = await withAssertion(jwt);
      expect(res.status).toBe(200);
      expect(res.body.scope).toBe('system/Patient.rs');
    });

    it('refuses an assertion of a deactivated client', async () => {
      await gw.core.db.pool.query('UPDATE client SET active = false WHERE id = $1', [clientId]);
      try {
        const res = await withAssertion(await assertion());
        expect(res.status).toBe(401);
      } finally {
        await gw.core.db.pool.query('UPDATE client SET active = true WHERE id = $1', [clientId]);
      }
    });

    it('refuses the same assertion replayed (same jti)', async () => {
      const jwt = await assertion();
      expect((await withAssertion(jwt)).status).toBe(200);
      const replay = await withAssertion(jwt);
      expect(replay.status).toBe(401);
      expect(replay.body.error).toBe('invalid_client');
      const sameJti = await withAssertion(await assertion({ jti: String(decodeJwt(jwt).jti) }));
      expect(sameJti.status).toBe(401);
    });

    it('refuses an assertion for another audience', async () => {
      const res = await withAssertion(await assertion({ aud: 'https://other.example.org/oauth2/token' }));
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
    });

    it('refuses an assertion signed by a key that is not registered', async () => {
      const other = await generateKeyPair('RS384', { extractable: true });
      const res = await withAssertion(await assertion({ key: other.privateKey }));
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
    });

    it('refuses an assertion expiring far beyond 5 minutes ahead, or expired beyond the clock skew', async () => {
      const now = Math.floor(Date.now() / 1000);
      const far = await withAssertion(await assertion({ exp: now + 3600 }));
      expect(far.status).toBe(401);
      expect(far.body.error).toBe('invalid_client');
      expect(far.body.error_description).toMatch(/at most 300 s/);
      const past = await withAssertion(await assertion({ exp: now - 120 }));
      expect(past.status).toBe(401);
      expect(past.body.error).toBe('invalid_client');
      expect(past.body.error_description).toMatch(/"exp"/);
    });

    it('accepts every 5-minute assertion as SMART bulk-data-client makes them (exp = rounded now + 300)', async () => {
      // bulk-data-client: exp = Math.round(Date.now() / 1000) + 300, and jsonwebtoken adds iat = floor(now).
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const ms = Date.now();
        const exp = (i % 2 === 0 ? Math.round(ms / 1000) : Math.ceil(ms / 1000)) + 300;
        const jwt = await new SignJWT({})
          .setProtectedHeader({ alg: 'RS384', kid, typ: 'JWT' })
          .setIssuer(clientId)
          .setSubject(clientId)
          .setAudience(tokenUrl)
          .setIssuedAt(Math.floor(ms / 1000))
          .setExpirationTime(exp)
          .setJti(randomUUID())
          .sign(privateKey);
        statuses.push((await withAssertion(jwt)).status);
      }
      expect(statuses).toEqual(Array.from({ length: 20 }, () => 200));
    });

    it('accepts edge values: a fractional exp, an iat a few seconds ahead, an exp just past within the skew', async () => {
      const now = Date.now() / 1000;
      const signed = (claims: Record<string, number>): Promise<string> =>
        new SignJWT({ ...claims, iss: clientId, sub: clientId, aud: tokenUrl, jti: randomUUID() })
          .setProtectedHeader({ alg: 'RS384', kid, typ: 'JWT' })
          .sign(privateKey);
      expect((await withAssertion(await signed({ iat: now, exp: now + 300.999 }))).status).toBe(200);
      expect((await withAssertion(await signed({ iat: Math.floor(now) + 5, exp: Math.floor(now) + 305 }))).status).toBe(
        200,
      );
      expect((await withAssertion(await signed({ iat: Math.floor(now) - 40, exp: Math.floor(now) - 30 }))).status).toBe(
        200,
      );
      expect((await withAssertion(await signed({ exp: Math.floor(now) + 359 }))).status).toBe(200);
      expect((await withAssertion(await signed({ exp: Math.floor(now) + 400 }))).status).toBe(401);
    });

    it('refuses an assertion naming an unknown client, and a malformed one', async () => {
      const unknown = await withAssertion(await assertion({ iss: 'no-such-client' }));
      expect(unknown.status).toBe(401);
      expect(unknown.body.error).toBe('invalid_client');
      const garbage = await withAssertion('not-a-jwt');
      expect(garbage.status).toBe(400);
      expect(garbage.body.error).toBe('invalid_request');
      const badType = await tokenRequest({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:other',
        client_assertion: await assertion(),
      });
      expect(badType.status).toBe(400);
    });

    it('refuses an assertion whose client_id parameter names another client', async () => {
      const res = await withAssertion(await assertion(), { client_id: gw.admin.clientId });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
    });
  });

  describe('scopes', () => {
    let client: { clientId: string; secret: string };

    beforeAll(async () => {
      client = await gw.clientOf('msp-scopes', ['system/*.cruds']);
    });

    it('issues a narrower scope on request; a .rs token may search but not create', async () => {
      const res = await tokenRequest(
        { grant_type: 'client_credentials', scope: 'system/Patient.rs' },
        basic(client.clientId, client.secret),
      );
      expect(res.status).toBe(200);
      expect(res.body.scope).toBe('system/Patient.rs');
      const token = String(res.body.access_token);
      expect(decodeJwt(token).scope).toBe('system/Patient.rs');
      expect((await call(`${gw.fhirUrl}/Patient`, { token })).status).toBe(200);
      const create = await call<OperationOutcome>(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        token,
        body: JSON.stringify(patient('180027511252249')),
      });
      expect(create.status).toBe(403);
      expect(create.body.resourceType).toBe('OperationOutcome');
      expect(create.body.issue[0].code).toBe('forbidden');
      const otherType = await call<OperationOutcome>(`${gw.fhirUrl}/Observation`, { token });
      expect(otherType.status).toBe(403);
    });

    it("refuses a scope beyond the client's with 400 invalid_scope", async () => {
      const narrow = await gw.clientOf('msp-narrow', ['system/Patient.rs']);
      for (const scope of ['system/Patient.cruds', 'system/*.rs', 'system/Observation.rs', 'patient/Patient.rs']) {
        const res = await tokenRequest(
          { grant_type: 'client_credentials', scope },
          basic(narrow.clientId, narrow.secret),
        );
        expect([scope, res.status, res.body.error]).toEqual([scope, 400, 'invalid_scope']);
      }
    });

    it('answers a scope that only looks like an action name with 400 invalid_scope, not a server error', async () => {
      const res = await tokenRequest(
        { grant_type: 'client_credentials', scope: 'system/Patient.constructor' },
        basic(client.clientId, client.secret),
      );
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_scope');
    });
  });

  describe('access tokens on the FHIR API', () => {
    it('answers a request without a token with 401, an OperationOutcome and WWW-Authenticate', async () => {
      const res = await call<OperationOutcome>(`${gw.fhirUrl}/Patient`);
      expect(res.status).toBe(401);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      const basicInstead = await call(`${gw.fhirUrl}/Patient`, {
        headers: { authorization: basic(gw.admin.clientId, gw.admin.clientSecret) },
      });
      expect(basicInstead.status).toBe(401);
    });

    it('accepts the Bearer scheme whatever its case (RFC 7235)', async () => {
      const token = await gw.token();
      const res = await call(`${gw.fhirUrl}/Patient`, { headers: { authorization: `bearer ${token}` } });
      expect(res.status).toBe(200);
    });

    it('refuses a tampered token', async () => {
      const token = await gw.token();
      const [h, p, s] = token.split('.');
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
      const forgedPayload = Buffer.from(JSON.stringify({ ...claims, org: 'Organization/msp-a' })).toString('base64url');
      const flippedSig = `${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
      for (const bad of [
        `${h}.${forgedPayload}.${s}`,
        `${h}.${p}.${flippedSig}`,
        'not.a.token',
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`,
      ]) {
        const res = await call<OperationOutcome>(`${gw.fhirUrl}/Patient`, { token: bad });
        expect(res.status).toBe(401);
        expect(res.body.resourceType).toBe('OperationOutcome');
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      }
    });

    it('refuses a token signed by another key with the right claims', async () => {
      const { privateKey } = await generateKeyPair('ES256');
      const forged = await new SignJWT({ scope: 'system/*.cruds', org: 'Organization/gateway-operator', adm: true })
        .setProtectedHeader({ alg: 'ES256', kid: gw.core.tokens.jwks().keys[0].kid, typ: 'at+jwt' })
        .setIssuer(gw.baseUrl)
        .setSubject(gw.admin.clientId)
        .setAudience(`${gw.baseUrl}/fhir`)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
      expect((await call(`${gw.fhirUrl}/Patient`, { token: forged })).status).toBe(401);
    });

    it('refuses an expired token', async () => {
      // Same signing key (loaded from the database), negative lifetime: a genuine, expired token.
      const expiring = new TokenService(gw.core.db.pool, gw.core.clients, {
        issuer: gw.baseUrl,
        tokenEndpoint: tokenUrl,
        ttlSeconds: -60,
      });
      await expiring.init();
      const { access_token } = await expiring.issue({
        grant_type: 'client_credentials',
        client_id: gw.admin.clientId,
        client_secret: gw.admin.clientSecret,
      });
      const res = await call<OperationOutcome>(`${gw.fhirUrl}/Patient`, { token: access_token });
      expect(res.status).toBe(401);
      expect(res.body.issue[0].code).toBe('expired');
    });
  });

  describe('public routes', () => {
    it('serves the CapabilityStatement without a token, with the served types and project profiles', async () => {
      const res = await call<CapabilityStatement>(`${gw.fhirUrl}/metadata`);
      expect(res.status).toBe(200);
      expect(res.body.resourceType).toBe('CapabilityStatement');
      const resources = res.body.rest?.[0].resource ?? [];
      expect(resources.map((r) => r.type).sort()).toEqual([...SERVED_RESOURCE_TYPES].sort());
      const patientProfiles = resources.find((r) => r.type === 'Patient')?.supportedProfile ?? [];
      expect(patientProfiles).toContain('https://gateway.fr-primary-care.org/fhir/StructureDefinition/gw-patient');
      const all = resources.flatMap((r) => r.supportedProfile ?? []);
      for (const name of ['gw-encounter', 'gw-organization', 'gw-practitioner', 'gw-task']) {
        expect(all).toContain(`https://gateway.fr-primary-care.org/fhir/StructureDefinition/${name}`);
      }
    });

    it('serves the SMART configuration at both discovery paths', async () => {
      for (const path of ['/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration']) {
        const res = await call(`${gw.baseUrl}${path}`);
        expect(res.status).toBe(200);
        expect(res.body).toMatchObject({
          token_endpoint: tokenUrl,
          jwks_uri: `${gw.baseUrl}/.well-known/jwks.json`,
          grant_types_supported: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
        });
        expect(res.body.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
        expect(res.body.capabilities).toContain('client-confidential-asymmetric');
      }
    });

    it('publishes the JWKS that verifies access tokens, without private parts', async () => {
      const res = await call<{ keys: JWK[] }>(`${gw.baseUrl}/.well-known/jwks.json`);
      expect(res.status).toBe(200);
      expect(res.body.keys).toHaveLength(1);
      expect(res.body.keys[0].d).toBeUndefined();
      const { payload } = await jwtVerify(await gw.token(), createLocalJWKSet(res.body), { issuer: gw.baseUrl });
      expect(payload.sub).toBe(gw.admin.clientId);
    });

    it('serves liveness without a token', async () => {
      expect((await call(`${gw.baseUrl}/health/live`)).status).toBe(200);
    });
  });

  describe('organization isolation', () => {
    let a: { clientId: string; token: string };
    let b: { clientId: string; token: string };
    let admin: string;
    let created: Patient;
    const nir = '280027511259919';

    beforeAll(async () => {
      a = await gw.clientOf('msp-a', ['system/*.cruds']);
      b = await gw.clientOf('msp-b', ['system/*.cruds']);
      admin = await gw.token();
      const res = await call<Patient>(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        token: a.token,
        body: JSON.stringify(patient(nir, 'Lefebvre')),
      });
      expect(res.status).toBe(201);
      created = res.body;
    });

    it('stamps writes with the client (meta.source) and the owner organization (meta.tag)', () => {
      expect(created.meta?.source).toContain(a.clientId);
      expect(created.meta?.tag).toContainEqual({ system: OWNER_TAG_SYSTEM, code: 'Organization/msp-a' });
    });

    it('does not let another organization claim ownership through meta.tag', async () => {
      const body = {
        ...patient('180027511253338'),
        meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: 'Organization/msp-a' }] },
      };
      const res = await call<Patient>(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        token: b.token,
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(201);
      expect(res.body.meta?.tag?.filter((t) => t.system === OWNER_TAG_SYSTEM)).toEqual([
        { system: OWNER_TAG_SYSTEM, code: 'Organization/msp-b' },
      ]);
      expect((await call(`${gw.fhirUrl}/Patient/${res.body.id}`, { token: a.token })).status).toBe(404);
    });

    it('hides the resource from another organization: read, vread, history → 404', async () => {
      expect((await call(`${gw.fhirUrl}/Patient/${created.id}`, { token: a.token })).status).toBe(200);
      expect((await call(`${gw.fhirUrl}/Patient/${created.id}`, { token: b.token })).status).toBe(404);
      expect((await call(`${gw.fhirUrl}/Patient/${created.id}/_history/1`, { token: b.token })).status).toBe(404);
      expect((await call(`${gw.fhirUrl}/Patient/${created.id}/_history`, { token: b.token })).status).toBe(404);
    });

    it('finds nothing of another organization by search', async () => {
      const queries = [`identifier=${INS_TEST}|${nir}`, `_id=${created.id}`, 'family=Lefebvre', ''];
      for (const q of queries) {
        const asB = await call<Bundle>(`${gw.fhirUrl}/Patient?${q}`, { token: b.token });
        expect(asB.status).toBe(200);
        expect((asB.body.entry ?? []).map((e) => e.resource?.id)).not.toContain(created.id);
      }
      const asA = await call<Bundle>(`${gw.fhirUrl}/Patient?identifier=${INS_TEST}|${nir}`, { token: a.token });
      expect(asA.body.entry?.map((e) => e.resource?.id)).toEqual([created.id]);
      const typeHistory = await call<Bundle>(`${gw.fhirUrl}/Patient/_history`, { token: b.token });
      expect((typeHistory.body.entry ?? []).map((e) => e.resource?.id)).not.toContain(created.id);
    });

    it('refuses updates and deletes from another organization and keeps the data', async () => {
      const update = await call(`${gw.fhirUrl}/Patient/${created.id}`, {
        method: 'PUT',
        token: b.token,
        body: JSON.stringify({ ...patient(nir, 'Hijacked'), id: created.id }),
      });
      // 404, as for a read: the answer does not reveal that the id exists elsewhere.
      expect(update.status).toBe(404);
      const del = await call(`${gw.fhirUrl}/Patient/${created.id}`, { method: 'DELETE', token: b.token });
      expect(del.status).toBe(404);
      const conditional = await call(`${gw.fhirUrl}/Patient?identifier=${INS_TEST}|${nir}`, {
        method: 'PUT',
        token: b.token,
        body: JSON.stringify({ ...patient(nir, 'Hijacked'), id: created.id }),
      });
      expect([403, 404]).toContain(conditional.status);
      const current = await call<Patient>(`${gw.fhirUrl}/Patient/${created.id}`, { token: a.token });
      expect(current.status).toBe(200);
      expect(current.body.name?.[0].family).toBe('Lefebvre');
      expect(current.body.meta?.versionId).toBe('1');
    });

    it('refuses the same through a batch or a transaction Bundle', async () => {
      const batch = await call<Bundle>(gw.fhirUrl, {
        method: 'POST',
        token: b.token,
        body: JSON.stringify({
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            { request: { method: 'GET', url: `Patient/${created.id}` } },
            { request: { method: 'DELETE', url: `Patient/${created.id}` } },
          ],
        }),
      });
      expect(batch.status).toBe(200);
      expect(batch.body.entry?.map((e) => e.response?.status.slice(0, 3))).toEqual([
        expect.stringMatching(/^40[34]$/),
        expect.stringMatching(/^40[34]$/),
      ]);
      const transaction = await call(gw.fhirUrl, {
        method: 'POST',
        token: b.token,
        body: JSON.stringify({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              resource: { ...patient(nir, 'Hijacked'), id: created.id },
              request: { method: 'PUT', url: `Patient/${created.id}` },
            },
          ],
        }),
      });
      expect([403, 404]).toContain(transaction.status);
      const current = await call<Patient>(`${gw.fhirUrl}/Patient/${created.id}`, { token: a.token });
      expect(current.body.meta?.versionId).toBe('1');
    });

    it('includes nothing of another organization through _include or _revinclude', async () => {
      const own = await call<Patient>(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        token: b.token,
        body: JSON.stringify(patient('190027511255511', 'Bernard')),
      });
      const obsOfB = {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'poids' },
        subject: { reference: `Patient/${created.id}` },
      };
      // A client may not write facts about another organization's patient (403); such cross
      // references still exist (filed by an operator, or written before that rule): the operator
      // files them here under each organization.
      const byB = await call(`${gw.fhirUrl}/Observation`, {
        method: 'POST',
        token: b.token,
        body: JSON.stringify(obsOfB),
      });
      expect(byB.status).toBe(403);
      const obs = await call(`${gw.fhirUrl}/Observation`, {
        method: 'POST',
        token: admin,
        body: JSON.stringify(filedUnder('msp-b', obsOfB)),
      });
      expect(obs.status).toBe(201);
      const obsOfA = {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'taille' },
        subject: { reference: `Patient/${own.body.id}` },
      };
      expect(
        (
          await call(`${gw.fhirUrl}/Observation`, {
            method: 'POST',
            token: admin,
            body: JSON.stringify(filedUnder('msp-a', obsOfA)),
          })
        ).status,
      ).toBe(201);

      const included = await call<Bundle>(`${gw.fhirUrl}/Observation?_include=Observation:subject`, { token: b.token });
      expect(included.status).toBe(200);
      expect((included.body.entry ?? []).filter((e) => e.search?.mode === 'include')).toEqual([]);
      const revincluded = await call<Bundle>(
        `${gw.fhirUrl}/Patient?_id=${own.body.id}&_revinclude=Observation:subject`,
        { token: b.token },
      );
      expect((revincluded.body.entry ?? []).map((e) => e.resource?.resourceType)).toEqual(['Patient']);
    });

    it("does not let a chained search test attributes of another organization's resource", async () => {
      // B's own Observation points at A's Patient (filed by the operator: B cannot write it):
      // chaining through the reference must not reveal A's Patient family name or INS.
      const obsOfB = {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'pouls' },
        subject: { reference: `Patient/${created.id}` },
      };
      const obs = await call<Patient>(`${gw.fhirUrl}/Observation`, {
        method: 'POST',
        token: admin,
        body: JSON.stringify(filedUnder('msp-b', obsOfB)),
      });
      expect(obs.status).toBe(201);
      for (const chain of ['subject:Patient.family=Lefebvre', `subject:Patient.identifier=${INS_TEST}|${nir}`]) {
        const res = await call<Bundle>(`${gw.fhirUrl}/Observation?${chain}`, { token: b.token });
        expect([chain, res.status, (res.body.entry ?? []).map((e) => e.resource?.id)]).toEqual([chain, 200, []]);
      }
    });

    it('lets the admin file a resource under an organization through meta.tag', async () => {
      const body = {
        ...patient('290027511256647', 'Moreau'),
        meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: 'Organization/msp-a' }] },
      };
      const res = await call<Patient>(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        token: admin,
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(201);
      expect((await call(`${gw.fhirUrl}/Patient/${res.body.id}`, { token: a.token })).status).toBe(200);
      expect((await call(`${gw.fhirUrl}/Patient/${res.body.id}`, { token: b.token })).status).toBe(404);
    });

    it('lets the admin read and find it', async () => {
      expect((await call(`${gw.fhirUrl}/Patient/${created.id}`, { token: admin })).status).toBe(200);
      const found = await call<Bundle>(`${gw.fhirUrl}/Patient?_id=${created.id}`, { token: admin });
      expect(found.body.entry?.map((e) => e.resource?.id)).toEqual([created.id]);
    });

    it('lets a client read every Organization (shared directory) but change only its own', async () => {
      const orgs = [
        { resourceType: 'Organization', id: 'msp-a', name: 'MSP A', active: true },
        { resourceType: 'Organization', id: 'msp-b', name: 'MSP B', active: true },
      ];
      for (const org of orgs) {
        const put = await call(`${gw.fhirUrl}/Organization/${org.id}`, {
          method: 'PUT',
          token: admin,
          body: JSON.stringify(org),
        });
        expect(put.status).toBe(201);
      }
      expect((await call(`${gw.fhirUrl}/Organization/msp-a`, { token: a.token })).status).toBe(200);
      expect((await call(`${gw.fhirUrl}/Organization/msp-b`, { token: a.token })).status).toBe(200);
      const rename = (id: string, name: string): Promise<{ status: number }> =>
        call(`${gw.fhirUrl}/Organization/${id}`, {
          method: 'PUT',
          token: a.token,
          body: JSON.stringify({ resourceType: 'Organization', id, name, active: true }),
        });
      expect((await rename('msp-a', 'MSP A des Lilas')).status).toBe(200);
      expect((await rename('msp-b', 'Hijacked')).status).toBe(403);
    });
  });

  describe('admin API', () => {
    let nonAdmin: { clientId: string; token: string };

    beforeAll(async () => {
      nonAdmin = await gw.clientOf('msp-admin-test', ['system/*.cruds']);
    });

    it('refuses the admin API to a non-admin client with 403', async () => {
      const list = await call<OperationOutcome>(`${gw.baseUrl}/admin/clients`, { token: nonAdmin.token });
      expect(list.status).toBe(403);
      expect(list.body.resourceType).toBe('OperationOutcome');
      const create = await call(`${gw.baseUrl}/admin/clients`, {
        method: 'POST',
        token: nonAdmin.token,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'x',
          organization: 'Organization/msp-admin-test',
          scopes: 'system/*.cruds',
          admin: true,
        }),
      });
      expect(create.status).toBe(403);
      expect((await call(`${gw.baseUrl}/admin/audit`, { token: nonAdmin.token })).status).toBe(403);
      expect((await call(`${gw.baseUrl}/admin/jobs/failed`, { token: nonAdmin.token })).status).toBe(403);
      expect((await call(`${gw.baseUrl}/admin/clients`)).status).toBe(401);
    });

    it('refuses every operator route to a non-admin client, before running it (@AdminOnly on the controllers)', async () => {
      const routes: [string, string][] = [
        ['GET', '/admin/hl7/sources'],
        ['POST', '/admin/hl7/sources'],
        ['PUT', '/admin/hl7/sources/00000000-0000-0000-0000-000000000000'],
        ['GET', '/admin/hl7/messages'],
        ['GET', '/admin/hl7/messages/1'],
        ['POST', '/admin/hl7/messages/1/reprocess'],
        ['GET', '/admin/events'],
        ['GET', '/admin/exchange/routes'],
        ['POST', '/admin/exchange/routes'],
        ['GET', '/admin/exchange/deliveries'],
        ['GET', '/admin/exchange/summary'],
        ['POST', '/admin/exchange/deliveries/00000000-0000-0000-0000-000000000000/replay'],
        ['POST', '/exchange/mdn'],
        ['POST', '/admin/jobs/housekeeping/1/retry'],
      ];
      for (const [method, path] of routes) {
        const res = await call<OperationOutcome>(`${gw.baseUrl}${path}`, {
          method,
          token: nonAdmin.token,
          headers: { 'content-type': 'application/json' },
          body: method === 'GET' ? undefined : '{}',
        });
        expect([method, path, res.status, res.body.resourceType]).toEqual([method, path, 403, 'OperationOutcome']);
      }
    });

    it('lists clients for the admin, without secrets', async () => {
      const res = await call<Record<string, unknown>[]>(`${gw.baseUrl}/admin/clients`, { token: await gw.token() });
      expect(res.status).toBe(200);
      const ids = res.body.map((c) => c.id);
      expect(ids).toEqual(expect.arrayContaining([gw.admin.clientId, nonAdmin.clientId]));
      expect(JSON.stringify(res.body)).not.toMatch(/scrypt|secret_hash/);
    });

    it('creates a client whose secret yields a token limited to its organization and scopes', async () => {
      const res = await call<{ client: Record<string, unknown>; client_secret: string }>(
        `${gw.baseUrl}/admin/clients`,
        {
          method: 'POST',
          token: await gw.token(),
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            name: 'CPTS Sud',
            organization: 'Organization/cpts-sud',
            scopes: 'system/Patient.rs system/Observation.cruds',
          }),
        },
      );
      expect(res.status).toBe(201);
      expect(res.body.client).toMatchObject({
        organization: 'Organization/cpts-sud',
        admin: false,
        scopes: ['system/Patient.rs', 'system/Observation.cruds'],
      });
      const clientId = String(res.body.client.id);
      const token = await gw.token(clientId, res.body.client_secret);
      const claims = decodeJwt(token);
      expect(claims).toMatchObject({
        sub: clientId,
        org: 'Organization/cpts-sud',
        adm: false,
        scope: 'system/Patient.rs system/Observation.cruds',
      });
      expect((await call(`${gw.fhirUrl}/Patient`, { token })).status).toBe(200);
      expect((await call(`${gw.baseUrl}/admin/clients`, { token })).status).toBe(403);
    });

    it('creates a private_key_jwt client from a public JWKS, with no secret', async () => {
      const pair = await generateKeyPair('RS384', { extractable: true });
      const jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS384' }] };
      const res = await call<{ client: Record<string, unknown>; client_secret?: string }>(
        `${gw.baseUrl}/admin/clients`,
        {
          method: 'POST',
          token: await gw.token(),
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            name: 'Hospital backend',
            organization: 'Organization/ch-nord',
            scopes: ['system/*.rs'],
            jwks,
          }),
        },
      );
      expect(res.status).toBe(201);
      expect(res.body.client_secret).toBeUndefined();
      expect(res.body.client).toMatchObject({ hasSecret: false, organization: 'Organization/ch-nord' });
    });

    it('refuses a JWKS holding private or symmetric key material, or no keys', async () => {
      const admin = await gw.token();
      const pair = await generateKeyPair('RS384', { extractable: true });
      const jwksList = [
        { keys: [{ ...(await exportJWK(pair.privateKey)), kid: 'k1' }] },
        { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'k2' }] },
        { keys: [] },
        { keys: 'nope' },
      ];
      for (const jwks of jwksList) {
        const res = await call(`${gw.baseUrl}/admin/clients`, {
          method: 'POST',
          token: admin,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'bad keys', organization: 'Organization/x', scopes: 'system/*.rs', jwks }),
        });
        expect([JSON.stringify(jwks).slice(0, 40), res.status]).toEqual([JSON.stringify(jwks).slice(0, 40), 400]);
      }
      const listed = await call(`${gw.baseUrl}/admin/clients`, { token: admin });
      expect(JSON.stringify(listed.body)).not.toContain('"d":');
    });

    it('tolerates extra spaces between scopes', async () => {
      const res = await call<{ client: { scopes: string[] } }>(`${gw.baseUrl}/admin/clients`, {
        method: 'POST',
        token: await gw.token(),
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'spaces',
          organization: 'Organization/x',
          scopes: ' system/Patient.rs  system/Task.cruds ',
        }),
      });
      expect(res.status).toBe(201);
      expect(res.body.client.scopes).toEqual(['system/Patient.rs', 'system/Task.cruds']);
    });

    it('refuses to create a client with invalid scopes or organization', async () => {
      const admin = await gw.token();
      const bodies = [
        { name: 'x', organization: 'Organization/x', scopes: 'patient/*.read' },
        { name: 'x', organization: 'Organization/x', scopes: 'system/Observation.rs?category=laboratory' },
        { name: 'x', organization: 'not-a-reference', scopes: 'system/*.rs' },
        { name: 'x', scopes: 'system/*.rs' },
      ];
      for (const body of bodies) {
        const res = await call<OperationOutcome>(`${gw.baseUrl}/admin/clients`, {
          method: 'POST',
          token: admin,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        expect([JSON.stringify(body), res.status]).toEqual([JSON.stringify(body), 400]);
      }
    });

    it('pages the audit with _count, and answers a nonsensical _count without a server error', async () => {
      const admin = await gw.token();
      for (let i = 0; i < 3; i++) {
        expect((await call(`${gw.fhirUrl}/Patient?_count=1`, { token: admin })).status).toBe(200);
      }
      const two = await call<Bundle>(`${gw.baseUrl}/admin/audit?_count=2`, { token: admin });
      expect(two.status).toBe(200);
      expect(two.body.entry).toHaveLength(2);
      for (const count of ['-5', '0', '1.5', 'abc']) {
        const res = await call<Bundle>(`${gw.baseUrl}/admin/audit?_count=${count}`, { token: admin });
        expect([count, res.status]).toEqual([count, 200]);
      }
    });

    it('shows AuditEvents of reads, searches and creates with entity references and no patient data', async () => {
      const c = await gw.clientOf('msp-audit', ['system/*.cruds']);
      const family = 'Delacroix-Audit';
      const nir = '190027511254422';
      const created = await call<Patient>(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        token: c.token,
        body: JSON.stringify(patient(nir, family)),
      });
      expect(created.status).toBe(201);
      const ref = `Patient/${created.body.id}`;
      expect((await call(`${gw.fhirUrl}/${ref}`, { token: c.token })).status).toBe(200);
      expect(
        (await call(`${gw.fhirUrl}/Patient?family=${family}&identifier=${INS_TEST}|${nir}`, { token: c.token })).status,
      ).toBe(200);

      const res = await call<Bundle>(`${gw.baseUrl}/admin/audit?client=${c.clientId}`, { token: await gw.token() });
      expect(res.status).toBe(200);
      const events = (res.body.entry ?? []).map(
        (e) =>
          e.resource as unknown as {
            resourceType: string;
            subtype: { code: string }[];
            entity: { what?: { reference: string } }[];
            agent: {
              who: { identifier: { value: string } };
              extension?: { valueReference: { reference: string } }[];
            }[];
            outcome: string;
          },
      );
      expect(events.every((e) => e.resourceType === 'AuditEvent')).toBe(true);
      for (const interaction of ['create', 'read', 'search-type']) {
        const event = events.find((e) => e.subtype[0].code === interaction);
        // The patient entity (a search also has its masked query as an entity, without `what`).
        const refs = event?.entity.flatMap((x) => (x.what ? [x.what.reference] : []));
        expect([interaction, refs]).toEqual([interaction, [ref]]);
        expect(event?.agent[0].who.identifier.value).toBe(c.clientId);
        expect(event?.agent[0].extension?.[0].valueReference.reference).toBe('Organization/msp-audit');
        expect(event?.outcome).toBe('0');
      }
      const text = JSON.stringify(res.body);
      expect(text).not.toContain(family);
      expect(text).not.toContain('Claire');
      expect(text).not.toContain(nir);
    });

    it('records refused requests of a client in the audit, with their status', async () => {
      const d = await gw.clientOf('msp-refused', ['system/Patient.rs']);
      expect((await call(`${gw.fhirUrl}/Patient/not-there`, { token: d.token })).status).toBe(404);
      expect((await call(`${gw.fhirUrl}/Observation`, { token: d.token })).status).toBe(403);
      const res = await call<Bundle>(`${gw.baseUrl}/admin/audit?client=${d.clientId}`, { token: await gw.token() });
      const events = (res.body.entry ?? []).map(
        (e) =>
          e.resource as unknown as {
            subtype: { code: string }[];
            entity: { what: { reference: string } }[];
            outcome: string;
          },
      );
      // The refused read is recorded by the FHIR service as a denied read (with the patient when
      // the resource exists); the scope refusal by the error filter.
      expect(events.map((e) => [e.subtype[0].code, e.entity.map((x) => x.what.reference), e.outcome])).toEqual([
        ['get-refused', [], '4'],
        ['read', ['Patient/not-there'], '4'],
      ]);
    });
  });

  describe('log privacy', () => {
    it('logs neither the family name, nor the INS, nor bearer tokens or secrets', async () => {
      const family = 'Dupont-Aignan';
      const ins = '279035121518989';
      const c = await gw.clientOf('msp-logs', ['system/*.cruds']);
      const admin = await gw.token();
      const body = JSON.stringify(patient(ins, family));
      const created = await call<Patient>(`${gw.fhirUrl}/Patient`, { method: 'POST', token: c.token, body });
      expect(created.status).toBe(201);
      const conditional = await call(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        token: c.token,
        body,
        headers: { 'if-none-exist': `identifier=${INS_TEST}|${ins}` },
      });
      expect(conditional.status).toBe(200);
      const searches = [
        call(`${gw.fhirUrl}/Patient?family=${family}`, { token: c.token }),
        call(`${gw.fhirUrl}/Patient?identifier=${INS_TEST}|${ins}`, { token: admin }),
        call(`${gw.fhirUrl}/Patient/_search`, {
          method: 'POST',
          token: c.token,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: `family=${family}&identifier=${ins}`,
        }),
        call(`${gw.fhirUrl}/Patient/${created.body.id}`, { token: c.token }),
      ];
      for (const res of await Promise.all(searches)) {
        expect(res.status).toBe(200);
      }
      // Failures too: an invalid resource echoing the name, a forbidden read, a bad token, a bad secret.
      await call(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        token: c.token,
        body: JSON.stringify({ ...patient(ins, family), birthDate: family }),
      });
      await call(`${gw.fhirUrl}/Patient?family=${family}`, { token: `${c.token}x` });
      await call(`${gw.fhirUrl}/Patient?identifier=${ins}`);
      await tokenRequest({ grant_type: 'client_credentials' }, basic(c.clientId, `${c.secret}-wrong`));
      await new Promise((r) => setTimeout(r, 200)); // the request log line is written after the response

      const logs = gw.logs.join('\n');
      expect(logs).toContain(`/fhir/Patient/${created.body.id}`); // requests were logged, paths only
      for (const secret of [family, family.toUpperCase(), ins, c.token, admin, c.secret, gw.admin.clientSecret]) {
        expect([secret.slice(0, 20), logs.includes(secret)]).toEqual([secret.slice(0, 20), false]);
      }
      // A token's signature alone must not appear either (e.g. a truncated Authorization header).
      expect(logs).not.toContain(c.token.split('.')[2]);
    });
  });
});
