import { randomUUID } from 'node:crypto';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import type { JWK, KeyObject } from 'jose';
import { IDNATPS } from '@gw/fhir';
import type { Principal } from '@gw/store';
import { AuthGuard } from '../../apps/gateway/src/auth/auth.guard';
import type { AuthedRequest } from '../../apps/gateway/src/auth/auth.guard';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { startOidcProvider } from '../support/oidc';
import type { OidcTestClient, OidcTestProvider } from '../support/oidc';
import { killAll } from '../support/process';

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const G15 = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const R21 = 'https://mos.esante.gouv.fr/NOS/TRE_R21-Fonction/FHIR/TRE-R21-Fonction';

/** IdNatPS of the directory's persons. */
const ID = {
  martin: '810000000001',
  secretary: '810000000002',
  nurse: '810000000003',
  former: '810000000004',
  elsewhere: '810000000005',
  unknown: '819999999999',
};

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

interface Key {
  privateKey: KeyObject;
  jwk: JWK;
}

async function key(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { privateKey: privateKey as KeyObject, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256' } };
}

/**
 * Persons acting through a client (RFC 8693 token exchange): a vendor's own JWT and a real OpenID
 * Connect provider's ID and access tokens, every refusal, the guard's Principal.person, and a role
 * made inactive or deleted stopping its tokens within seconds.
 */
describe('person tokens (RFC 8693 token exchange)', () => {
  let gw: TestGateway;
  let oidc: OidcTestProvider;
  let adminToken: string;
  let vendorKey: Key;
  let otherKey: Key;
  let vendor: { id: string; secret: string };
  let otherVendor: { id: string; secret: string };
  let secretOnly: { id: string; secret: string };
  const app: OidcTestClient = {
    client_id: 'vendor-app',
    client_secret: 'vendor-app-secret-vendor-app-secret-0000',
    redirect_uris: ['http://127.0.0.1:9/callback'],
  };
  const otherApp: OidcTestClient = { ...app, client_id: 'other-app' };
  const seen: Principal[] = [];

  const put = async (resource: Record<string, unknown> & { resourceType: string; id: string }): Promise<void> => {
    const res = await fetch(`${gw.fhirUrl}/${resource.resourceType}/${resource.id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(resource),
    });
    if (res.status >= 300) {
      throw new Error(`PUT ${resource.resourceType}/${resource.id}: ${res.status} ${await res.text()}`);
    }
  };
  const practitioner = (id: string, idNatPs: string, profession?: string): Promise<void> =>
    put({
      resourceType: 'Practitioner',
      id,
      identifier: [{ system: IDNATPS, value: idNatPs }],
      name: [{ family: id }],
      ...(profession ? { qualification: [{ code: { coding: [{ system: G15, code: profession }] } }] } : {}),
    });
  const role = (
    id: string,
    who: string,
    org: string,
    code?: { system: string; code: string },
    active = true,
  ): Promise<void> =>
    put({
      resourceType: 'PractitionerRole',
      id,
      active,
      practitioner: { reference: `Practitioner/${who}` },
      organization: { reference: `Organization/${org}` },
      ...(code ? { code: [{ coding: [code] }] } : {}),
    });

  async function exchange(
    client: { id: string; secret: string },
    fields: Record<string, string>,
    auth: 'basic' | 'post' = 'basic',
  ): Promise<Reply> {
    const res = await fetch(`${gw.baseUrl}/oauth2/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(auth === 'basic'
          ? { authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}` }
          : {}),
      },
      body: new URLSearchParams({
        grant_type: TE,
        ...(auth === 'post' ? { client_id: client.id, client_secret: client.secret } : {}),
        ...fields,
      }).toString(),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** A subject token signed by the vendor: iss = client, sub = IdNatPS, aud = token endpoint. */
  function vendorJwt(
    idNatPs: string,
    opts: { key?: Key; kid?: string; iss?: string; aud?: string; exp?: number; jti?: string } = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const k = opts.key ?? vendorKey;
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: opts.kid ?? k.jwk.kid })
      .setIssuer(opts.iss ?? vendor.id)
      .setSubject(idNatPs)
      .setAudience(opts.aud ?? `${gw.baseUrl}/oauth2/token`)
      .setIssuedAt(now)
      .setExpirationTime(opts.exp ?? now + 240)
      .setJti(opts.jti ?? randomUUID())
      .sign(k.privateKey);
  }

  const asVendor = async (idNatPs: string, extra: Record<string, string> = {}): Promise<Reply> =>
    exchange(vendor, { subject_token_type: JWT_TYPE, subject_token: await vendorJwt(idNatPs), ...extra });

  const readPatients = (token: string): Promise<Response> =>
    fetch(`${gw.fhirUrl}/Patient?_count=1`, { headers: { authorization: `Bearer ${token}` } });

  async function within(ms: number, f: () => Promise<boolean>): Promise<number> {
    const start = Date.now();
    while (!(await f())) {
      if (Date.now() - start > ms) {
        throw new Error(`not within ${ms} ms`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return Date.now() - start;
  }

  beforeAll(async () => {
    oidc = await startOidcProvider([app, otherApp], {
      'dr-martin': { SubjectNameID: ID.martin },
      'dr-martin-late': { SubjectNameID: ID.martin, expired: true },
      stranger: { SubjectNameID: ID.unknown },
    });
    gw = await startTestGateway({
      GW_OIDC_PROVIDERS: JSON.stringify([{ issuer: oidc.issuer, audience: app.client_id }]),
    });
    adminToken = await gw.token();
    for (const org of ['msp-a', 'msp-b']) {
      await put({ resourceType: 'Organization', id: org, name: org.toUpperCase() });
    }
    await practitioner('pr-martin', ID.martin, '10');
    await role('role-martin-a', 'pr-martin', 'msp-a', { system: G15, code: '10' });
    await role('role-martin-b', 'pr-martin', 'msp-b', { system: G15, code: '10' });
    await practitioner('pr-secretary', ID.secretary);
    await role('role-secretary', 'pr-secretary', 'msp-a', { system: R21, code: 'FON-12' });
    await practitioner('pr-nurse', ID.nurse, '60');
    await role('role-nurse-1', 'pr-nurse', 'msp-a');
    await role('role-nurse-2', 'pr-nurse', 'msp-a', { system: G15, code: '60' });
    await practitioner('pr-former', ID.former, '70');
    await role('role-former', 'pr-former', 'msp-a', { system: G15, code: '70' }, false);
    await practitioner('pr-elsewhere', ID.elsewhere, '21');
    await role('role-elsewhere', 'pr-elsewhere', 'msp-b', { system: G15, code: '21' });

    vendorKey = await key('vendor-1');
    otherKey = await key('other-1');
    const mk = async (name: string, k?: Key): Promise<{ id: string; secret: string }> => {
      const { client, secret } = await gw.core.clients.create({
        name,
        organization: 'Organization/msp-a',
        scopes: ['system/*.rs', 'system/Observation.cruds'],
        withSecret: true,
        ...(k ? { jwks: { keys: [k.jwk] } } : {}),
      });
      return { id: client.id, secret: secret as string };
    };
    vendor = await mk('vendor of MSP A', vendorKey);
    otherVendor = await mk('another vendor of MSP A', otherKey);
    secretOnly = await mk('secret-only client of MSP A');

    // Observes (never changes) what the guard decides: the Principal of each request.
    const original = AuthGuard.prototype.canActivate;
    jest.spyOn(AuthGuard.prototype, 'canActivate').mockImplementation(async function (this: AuthGuard, ctx) {
      const ok = await original.call(this, ctx);
      const principal = ctx.switchToHttp().getRequest<AuthedRequest>().principal;
      if (principal) {
        seen.push(principal);
      }
      return ok;
    });
  }, 120_000);

  afterAll(async () => {
    jest.restoreAllMocks();
    await oidc?.stop();
    await killAll();
    await gw?.close();
  });

  it('exchanges a vendor-signed JWT for a person token that reaches the FHIR API with Principal.person set', async () => {
    const res = await asVendor(ID.martin);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      issued_token_type: ACCESS_TOKEN,
      token_type: 'Bearer',
      expires_in: 300,
      scope: 'system/*.rs system/Observation.cruds',
    });
    const token = String(res.body.access_token);
    expect(decodeJwt(token)).toMatchObject({
      sub: 'Practitioner/pr-martin',
      act: { sub: vendor.id },
      client_id: vendor.id,
      fhirUser: `${gw.baseUrl}/fhir/Practitioner/pr-martin`,
      practitioner_role: 'PractitionerRole/role-martin-a',
      profession: '10',
      health: true,
    });
    seen.length = 0;
    expect((await readPatients(token)).status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      clientId: vendor.id,
      organization: 'Organization/msp-a',
      admin: false,
      person: {
        practitioner: 'Practitioner/pr-martin',
        role: 'PractitionerRole/role-martin-a',
        profession: '10',
        health: true,
        idNatPs: ID.martin,
        display: 'pr-martin',
        purpose: 'TREAT',
      },
    });
    // A system client's token has no person.
    seen.length = 0;
    expect((await readPatients(await gw.token(vendor.id, vendor.secret))).status).toBe(200);
    expect(seen[0].person).toBeUndefined();
  });

  it('authenticates the client by every method (client_secret_post, private_key_jwt) for an exchange', async () => {
    const post = await exchange(
      vendor,
      { subject_token_type: JWT_TYPE, subject_token: await vendorJwt(ID.martin) },
      'post',
    );
    expect(post.status).toBe(200);
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: vendorKey.jwk.kid })
      .setIssuer(vendor.id)
      .setSubject(vendor.id)
      .setAudience(`${gw.baseUrl}/oauth2/token`)
      .setExpirationTime(now + 120)
      .setJti(randomUUID())
      .sign(vendorKey.privateKey);
    const res = await fetch(`${gw.baseUrl}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: TE,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
        subject_token_type: JWT_TYPE,
        subject_token: await vendorJwt(ID.martin),
      }).toString(),
    });
    expect(res.status).toBe(200);
    const wrong = await exchange(
      { id: vendor.id, secret: 'wrong' },
      { subject_token_type: JWT_TYPE, subject_token: await vendorJwt(ID.martin) },
    );
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
  });

  it('exchanges an OpenID Connect ID token and a JWT access token of the configured provider (SubjectNameID)', async () => {
    const tokens = await oidc.login(app, 'dr-martin');
    const byId = await exchange(vendor, { subject_token_type: ID_TOKEN, subject_token: tokens.id_token });
    expect(byId.status).toBe(200);
    expect(decodeJwt(String(byId.body.access_token))).toMatchObject({
      sub: 'Practitioner/pr-martin',
      practitioner_role: 'PractitionerRole/role-martin-a',
    });
    const byAccess = await exchange(vendor, { subject_token_type: ACCESS_TOKEN, subject_token: tokens.access_token });
    expect(byAccess.status).toBe(200);
    seen.length = 0;
    expect((await readPatients(String(byId.body.access_token))).status).toBe(200);
    expect(seen[0].person?.idNatPs).toBe(ID.martin);
  });

  it('reads SMART user scopes as system scopes and never grants more than the client has', async () => {
    const ok = await asVendor(ID.martin, { scope: 'user/Patient.rs user/Observation.r' });
    expect(ok.status).toBe(200);
    expect(ok.body.scope).toBe('system/Patient.rs system/Observation.r');
    const more = await asVendor(ID.martin, { scope: 'user/Patient.cruds' });
    expect(more.status).toBe(400);
    expect(more.body.error).toBe('invalid_scope');
  });

  it('picks the role with practitioner_role, and asks for it when the practitioner has several', async () => {
    const several = await asVendor(ID.nurse);
    expect(several.status).toBe(400);
    expect(several.body.error).toBe('invalid_request');
    expect(String(several.body.error_description)).toMatch(/role-nurse-1, role-nurse-2|role-nurse-2, role-nurse-1/);
    const chosen = await asVendor(ID.nurse, { practitioner_role: 'role-nurse-2' });
    expect(chosen.status).toBe(200);
    expect(decodeJwt(String(chosen.body.access_token))).toMatchObject({
      practitioner_role: 'PractitionerRole/role-nurse-2',
      profession: '60',
      health: true,
    });
    // A role without a code: the practitioner's qualification gives the profession.
    const uncoded = await asVendor(ID.nurse, { practitioner_role: 'role-nurse-1' });
    expect(decodeJwt(String(uncoded.body.access_token))).toMatchObject({ profession: '60', health: true });
    const foreign = await asVendor(ID.nurse, { practitioner_role: 'role-martin-b' });
    expect(foreign.status).toBe(400);
    expect(foreign.body.error).toBe('invalid_grant');
  });

  it('marks non-health staff (a role coded as a function, not a TRE_G15 profession)', async () => {
    const res = await asVendor(ID.secretary);
    expect(res.status).toBe(200);
    const claims = decodeJwt(String(res.body.access_token));
    expect(claims).toMatchObject({ practitioner_role: 'PractitionerRole/role-secretary', health: false });
    expect(claims.profession).toBeUndefined();
    seen.length = 0;
    await readPatients(String(res.body.access_token));
    expect(seen[0].person).toMatchObject({ health: false });
  });

  describe('refuses', () => {
    const refused = async (res: Reply | Promise<Reply>, error: string, text: RegExp): Promise<void> => {
      const r = await res;
      expect({ status: r.status, error: r.body.error }).toEqual({
        status: error === 'invalid_client' ? 401 : 400,
        error,
      });
      expect(String(r.body.error_description)).toMatch(text);
      expect(r.body.access_token).toBeUndefined();
    };
    const jwtExchange = async (
      client: { id: string; secret: string },
      token: string | Promise<string>,
    ): Promise<Reply> => exchange(client, { subject_token_type: JWT_TYPE, subject_token: await token });

    it('a vendor JWT signed with a key not registered for the client (under its key id, or another)', async () => {
      await refused(
        jwtExchange(vendor, vendorJwt(ID.martin, { key: otherKey, kid: vendorKey.jwk.kid })),
        'invalid_grant',
        /signature verification failed/,
      );
      await refused(jwtExchange(vendor, vendorJwt(ID.martin, { key: otherKey })), 'invalid_grant', /no applicable key/);
    });

    it('a vendor JWT for another audience', () =>
      refused(
        jwtExchange(vendor, vendorJwt(ID.martin, { aud: `${gw.baseUrl}/fhir` })),
        'invalid_grant',
        /"aud" claim/,
      ));

    it('an expired vendor JWT, and one living longer than 5 minutes', async () => {
      const now = Math.floor(Date.now() / 1000);
      await refused(jwtExchange(vendor, vendorJwt(ID.martin, { exp: now - 120 })), 'invalid_grant', /"exp" claim/);
      await refused(jwtExchange(vendor, vendorJwt(ID.martin, { exp: now + 3600 })), 'invalid_grant', /at most 300 s/);
    });

    it('a replayed jti', async () => {
      const token = await vendorJwt(ID.martin);
      expect((await jwtExchange(vendor, token)).status).toBe(200);
      await refused(jwtExchange(vendor, token), 'invalid_grant', /already used/);
    });

    it('an IdNatPS the directory does not know', () =>
      refused(jwtExchange(vendor, vendorJwt(ID.unknown)), 'invalid_grant', /No active Practitioner/));

    it('a practitioner whose only role is in another organization', () =>
      refused(
        jwtExchange(vendor, vendorJwt(ID.elsewhere)),
        'invalid_grant',
        /no PractitionerRole in the client's organization Organization\/msp-a/,
      ));

    it('an inactive role', () => refused(jwtExchange(vendor, vendorJwt(ID.former)), 'invalid_grant', /is not active/));

    it("a secret-only client sending a JWT signed by another client's key, and a JWT issued by another client", async () => {
      await refused(
        jwtExchange(secretOnly, vendorJwt(ID.martin, { key: otherKey, iss: secretOnly.id })),
        'invalid_grant',
        /no registered public key/,
      );
      await refused(
        jwtExchange(vendor, vendorJwt(ID.martin, { key: otherKey, iss: otherVendor.id })),
        'invalid_grant',
        /iss = client_id/,
      );
    });

    it('an ID token of the provider for another client (aud), an expired one, and a tampered one', async () => {
      const other = await oidc.login(otherApp, 'dr-martin');
      await refused(
        exchange(vendor, { subject_token_type: ID_TOKEN, subject_token: other.id_token }),
        'invalid_grant',
        /"aud" claim/,
      );
      const late = await oidc.login(app, 'dr-martin-late');
      await refused(
        exchange(vendor, { subject_token_type: ID_TOKEN, subject_token: late.id_token }),
        'invalid_grant',
        /"exp" claim/,
      );
      const good = (await oidc.login(app, 'dr-martin')).id_token.split('.');
      const payload = JSON.parse(Buffer.from(good[1], 'base64url').toString()) as Record<string, unknown>;
      const forged = [
        good[0],
        Buffer.from(JSON.stringify({ ...payload, SubjectNameID: ID.nurse })).toString('base64url'),
        good[2],
      ];
      await refused(
        exchange(vendor, { subject_token_type: ID_TOKEN, subject_token: forged.join('.') }),
        'invalid_grant',
        /signature/,
      );
      const stranger = await oidc.login(app, 'stranger');
      await refused(
        exchange(vendor, { subject_token_type: ID_TOKEN, subject_token: stranger.id_token }),
        'invalid_grant',
        /No active Practitioner/,
      );
    });

    it('a token of a provider that is not configured', async () => {
      const k = await key('rogue');
      const now = Math.floor(Date.now() / 1000);
      const rogue = await new SignJWT({ SubjectNameID: ID.martin })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer('https://rogue.example')
        .setAudience(app.client_id)
        .setExpirationTime(now + 60)
        .sign(k.privateKey);
      await refused(
        exchange(vendor, { subject_token_type: ID_TOKEN, subject_token: rogue }),
        'invalid_grant',
        /not issued by a configured OpenID Connect provider/,
      );
    });

    it('malformed requests: no subject token, an unknown token type, an actor token', async () => {
      await refused(exchange(vendor, {}), 'invalid_request', /subject_token and subject_token_type/);
      await refused(
        exchange(vendor, { subject_token_type: 'urn:ietf:params:oauth:token-type:saml2', subject_token: 'x' }),
        'invalid_request',
        /Unsupported subject_token_type/,
      );
      await refused(
        exchange(vendor, { subject_token_type: JWT_TYPE, subject_token: await vendorJwt(ID.martin), actor_token: 'x' }),
        'invalid_request',
        /actor_token/,
      );
    });
  });

  it('stops a person token within seconds when its role is made inactive, or deleted', async () => {
    await role('role-temp', 'pr-elsewhere', 'msp-a', { system: G15, code: '21' });
    const token = String((await asVendor(ID.elsewhere)).body.access_token);
    expect((await readPatients(token)).status).toBe(200);
    await role('role-temp', 'pr-elsewhere', 'msp-a', { system: G15, code: '21' }, false);
    const took = await within(3000, async () => (await readPatients(token)).status === 401);
    expect(took).toBeLessThan(3000);
    const refusedRead = await readPatients(token);
    expect(await refusedRead.text()).toContain('no longer active');

    await role('role-temp', 'pr-elsewhere', 'msp-a', { system: G15, code: '21' }, true);
    await within(3000, async () => (await readPatients(token)).status === 200);
    const del = await fetch(`${gw.fhirUrl}/PractitionerRole/role-temp`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(del.status).toBeLessThan(300);
    expect(await within(3000, async () => (await readPatients(token)).status === 401)).toBeLessThan(3000);
  });

  it('writes no subject token and no IdNatPS of an exchange to the logs', async () => {
    const subject = await vendorJwt(ID.former);
    await exchange(vendor, { subject_token_type: JWT_TYPE, subject_token: subject });
    const logs = gw.logs.join('\n');
    expect(logs).not.toContain(subject.split('.')[1]);
    expect(logs).not.toContain(ID.former);
  });

  it('announces the grant type in the SMART configuration', async () => {
    const conf = (await (await fetch(`${gw.baseUrl}/.well-known/smart-configuration`)).json()) as {
      grant_types_supported: string[];
    };
    expect(conf.grant_types_supported).toContain(TE);
  });
});
