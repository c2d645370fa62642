import { randomUUID } from 'node:crypto';
import { SignJWT, createLocalJWKSet, decodeJwt, exportJWK, generateKeyPair, importJWK, jwtVerify } from 'jose';
import type { JWK, JSONWebKeySet, KeyObject } from 'jose';
import type { Pool } from 'pg';
import { AuthFailureLimiter } from './auth-failure.limiter';
import { FairGate, GateFull } from './fair-gate';
import { OAuthError } from './oauth-error';
import type { AuthFailureLimits } from './auth-failure.limiter';
import type { ClientRecord, ClientRegistry } from './client.registry';
import { scopeWithin, splitScopes } from './scopes';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE, personScopes } from './token-exchange';
import type { PersonClaims, PersonResolver, SubjectTokenVerifier } from './token-exchange';

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ASSERTION_ALGS = ['RS384', 'ES384', 'RS256', 'ES256'];
const ALG = 'ES256';
const VERIFIED_CACHE_SIZE = 10_000;
/** SMART Backend Services: an assertion should expire within 5 minutes of its use. */
const ASSERTION_MAX_LIFETIME_SECONDS = 300;
/** Clock difference tolerated between a client and the gateway, in whole seconds (as jose's clockTolerance). */
const ASSERTION_CLOCK_SKEW_SECONDS = 60;

export { OAuthError };

export interface TokenRequest {
  grant_type?: string;
  scope?: string;
  client_id?: string;
  client_secret?: string;
  client_assertion_type?: string;
  client_assertion?: string;
  /** The raw Authorization header (client_secret_basic). */
  authorization?: string;
  /** The remote address of the request (failed attempts are limited per address). */
  address?: string;
  /** RFC 8693 token exchange: the token naming the person, and its type. */
  subject_token?: string;
  subject_token_type?: string;
  requested_token_type?: string;
  actor_token?: string;
  /** The PractitionerRole id the person acts in, when they hold several in the client's organization. */
  practitioner_role?: string;
}

/** An RFC 8693 §2.2.1 token exchange response. */
export interface ExchangeResponse {
  access_token: string;
  issued_token_type: typeof TOKEN_TYPE.accessToken;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

export interface AccessClaims {
  clientId: string;
  organization: string;
  admin: boolean;
  scopes: string[];
  /** The person the client acts for (a token exchange); absent for a system client's token. */
  person?: PersonClaims;
}

/**
 * SMART Backend Services token endpoint logic: authenticates the client (client_secret_basic or
 * private_key_jwt), narrows the scopes, and signs a short-lived JWT with the gateway's key.
 */
export class TokenService {
  private privateKey?: KeyObject | Uint8Array;
  private publicJwk?: JWK;
  private verifyKey?: KeyObject | Uint8Array;
  private readonly verified = new Map<string, { claims: AccessClaims; expiresAt: number }>();
  private readonly failures?: AuthFailureLimiter;
  /**
   * Client authentications (a key derivation, or a signature check) at once: 2 of libuv's 4
   * threads, served by remote address in turn, at most 4 waiting per address.
   */
  private readonly verifications = new FairGate(2, 4);

  constructor(
    private readonly pool: Pool,
    private readonly clients: ClientRegistry,
    private readonly opts: {
      issuer: string;
      tokenEndpoint: string;
      ttlSeconds: number;
      /** Limits of failed client authentications (none when absent). */
      failureLimits?: AuthFailureLimits;
      /** Token exchange (RFC 8693): subject-token checks and the directory lookup of persons. */
      exchange?: { subjects: SubjectTokenVerifier; persons: PersonResolver };
    },
  ) {
    this.failures = opts.failureLimits ? new AuthFailureLimiter(opts.failureLimits) : undefined;
  }

  /** Loads the signing key, creating it once for all replicas (advisory lock). */
  async init(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(7402119)');
      let row = (
        await client.query('SELECT kid, private_jwk, public_jwk FROM signing_key ORDER BY created_at DESC LIMIT 1')
      ).rows[0];
      if (!row) {
        const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
        const kid = randomUUID();
        const priv = { ...(await exportJWK(privateKey)), kid, alg: ALG };
        const pub = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' };
        await client.query('INSERT INTO signing_key (kid, alg, private_jwk, public_jwk) VALUES ($1, $2, $3, $4)', [
          kid,
          ALG,
          priv,
          pub,
        ]);
        row = { kid, private_jwk: priv, public_jwk: pub };
      }
      await client.query('COMMIT');
      this.privateKey = (await importJWK(row.private_jwk, ALG)) as KeyObject;
      this.publicJwk = row.public_jwk;
      this.verifyKey = (await importJWK(row.public_jwk, ALG)) as KeyObject;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  jwks(): JSONWebKeySet {
    return { keys: this.publicJwk ? [this.publicJwk] : [] };
  }

  async issue(
    req: TokenRequest,
  ): Promise<{ access_token: string; token_type: 'bearer'; expires_in: number; scope: string } | ExchangeResponse> {
    if (req.grant_type === TOKEN_EXCHANGE_GRANT) {
      return this.exchange(req);
    }
    if (req.grant_type !== 'client_credentials') {
      throw new OAuthError(
        400,
        'unsupported_grant_type',
        `Supported grant types: client_credentials, ${TOKEN_EXCHANGE_GRANT}`,
      );
    }
    const client = await this.authenticate(req);
    const scopes = this.grantScopes(client, req.scope);
    const token = await this.sign(client, scopes);
    return { access_token: token, token_type: 'bearer', expires_in: this.opts.ttlSeconds, scope: scopes.join(' ') };
  }

  /**
   * RFC 8693 token exchange: the client, authenticated as for client_credentials, presents a
   * token naming a person (a JWT it signed, or a provider's ID / access token); the gateway's
   * token then acts for that person through their role in the client's organization.
   */
  async exchange(req: TokenRequest): Promise<ExchangeResponse> {
    const client = await this.authenticate(req);
    return this.exchangeFor(client, req);
  }

  /** The exchange for an authenticated client: the subject token names the person. */
  private async exchangeFor(client: ClientRecord, req: TokenRequest): Promise<ExchangeResponse> {
    const exchange = this.requireExchange();
    if (req.requested_token_type && req.requested_token_type !== TOKEN_TYPE.accessToken) {
      throw new OAuthError(400, 'invalid_request', `requested_token_type must be ${TOKEN_TYPE.accessToken}`);
    }
    if (req.actor_token) {
      throw new OAuthError(
        400,
        'invalid_request',
        'actor_token is not supported: the authenticated client is the actor',
      );
    }
    // Scopes first: a request the client could never be granted costs no signature check.
    this.grantScopes(client, req.scope === undefined ? undefined : personScopes(req.scope));
    const idNatPs = await exchange.subjects.idNatPsOf(client, req.subject_token, req.subject_token_type);
    // A provider's token proves who the person is; a JWT the client signed is the client's word.
    const identityVerified = req.subject_token_type !== TOKEN_TYPE.jwt;
    return this.personToken(client, idNatPs, req, identityVerified);
  }

  /**
   * A person token for `idNatPs` acting through `client`, whose identity the caller has already
   * established (the token exchange above, or the dashboard's own OpenID Connect login, where the
   * gateway is the relying party and its dashboard client the actor).
   */
  async personToken(
    client: ClientRecord,
    idNatPs: string,
    req: Pick<TokenRequest, 'scope' | 'practitioner_role'> = {},
    identityVerified = false,
  ): Promise<ExchangeResponse> {
    const exchange = this.requireExchange();
    if (!client.active) {
      throw new OAuthError(401, 'invalid_client', 'The client is deactivated');
    }
    const scopes = this.grantScopes(client, req.scope === undefined ? undefined : personScopes(req.scope));
    const person = await exchange.persons.resolve(idNatPs, client.organization, req.practitioner_role || undefined);
    const token = await this.sign(client, scopes, {
      practitioner: person.practitioner,
      role: person.role,
      profession: person.profession,
      health: person.health,
      identityVerified,
    });
    return {
      access_token: token,
      issued_token_type: TOKEN_TYPE.accessToken,
      token_type: 'Bearer',
      expires_in: this.opts.ttlSeconds,
      scope: scopes.join(' '),
    };
  }

  private requireExchange(): { subjects: SubjectTokenVerifier; persons: PersonResolver } {
    if (!this.opts.exchange) {
      throw new OAuthError(400, 'unsupported_grant_type', 'Token exchange is not configured on this gateway');
    }
    return this.opts.exchange;
  }

  /** The gateway's access token: a system client's, or (with `person`) a person's through the client. */
  private async sign(client: ClientRecord, scopes: string[], person?: PersonClaims): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    // RFC 9068 §2.2: client_id besides sub (clients such as @medplum/core's MedplumClient check it).
    const claims: Record<string, unknown> = {
      client_id: client.id,
      scope: scopes.join(' '),
      org: client.organization,
      adm: client.admin,
    };
    if (person) {
      // RFC 8693 §4.1: the client acts for the person; SMART's fhirUser names the person's resource.
      Object.assign(claims, {
        adm: false,
        act: { sub: client.id },
        fhirUser: `${this.opts.issuer}/fhir/${person.practitioner}`,
        practitioner_role: person.role,
        ...(person.profession ? { profession: person.profession } : {}),
        health: person.health,
        ...(person.identityVerified ? { identity_verified: true } : {}),
      });
    }
    return new SignJWT(claims)
      .setProtectedHeader({ alg: ALG, kid: this.publicJwk?.kid, typ: 'at+jwt' })
      .setIssuer(this.opts.issuer)
      .setSubject(person ? person.practitioner : client.id)
      .setAudience(`${this.opts.issuer}/fhir`)
      .setIssuedAt(now)
      .setExpirationTime(now + this.opts.ttlSeconds)
      .setJti(randomUUID())
      .sign(this.requireKey());
  }

  /**
   * Verifies an access token. A token whose signature was already checked is served from a
   * bounded cache until it expires: importing the key and checking ES256 on every request was
   * the largest CPU cost of a read (profiled).
   */
  async verify(token: string): Promise<AccessClaims> {
    const cached = this.verified.get(token);
    if (cached && cached.expiresAt > Date.now()) {
      return cached.claims;
    }
    const { payload } = await jwtVerify(token, this.requireVerifyKey(), {
      issuer: this.opts.issuer,
      audience: `${this.opts.issuer}/fhir`,
      algorithms: [ALG],
    });
    const claims: AccessClaims = {
      clientId: String(payload.client_id ?? payload.sub),
      organization: String(payload.org),
      admin: payload.adm === true,
      scopes: String(payload.scope ?? '')
        .split(' ')
        .filter(Boolean),
    };
    if (typeof payload.practitioner_role === 'string') {
      claims.person = {
        practitioner: String(payload.sub),
        role: payload.practitioner_role,
        ...(typeof payload.profession === 'string' ? { profession: payload.profession } : {}),
        health: payload.health === true,
        identityVerified: payload.identity_verified === true,
      };
    }
    if (this.verified.size >= VERIFIED_CACHE_SIZE) {
      this.verified.delete(this.verified.keys().next().value as string);
    }
    this.verified.set(token, { claims, expiresAt: Number(payload.exp) * 1000 });
    return claims;
  }

  private requireVerifyKey(): KeyObject | Uint8Array {
    if (!this.verifyKey) {
      throw new Error('TokenService.init() was not called');
    }
    return this.verifyKey;
  }

  private requireKey(): KeyObject | Uint8Array {
    if (!this.privateKey) {
      throw new Error('TokenService.init() was not called');
    }
    return this.privateKey;
  }

  private grantScopes(client: ClientRecord, requested: string | undefined): string[] {
    if (!requested || requested.trim() === '') {
      return client.scopes;
    }
    const asked = splitScopes(requested);
    const refused = asked.filter((s) => !scopeWithin(s, client.scopes));
    if (refused.length > 0) {
      throw new OAuthError(400, 'invalid_scope', `Scope(s) not granted to this client: ${refused.join(' ')}`);
    }
    return asked;
  }

  /**
   * Authenticates the client, refusing at once (429, before any hashing or signature check) an id
   * or address with too many recent failures, and counting each failure.
   */
  private async authenticate(req: TokenRequest): Promise<ClientRecord> {
    const claimed = this.claimedClientId(req);
    const wait = claimed === undefined ? 0 : (this.failures?.retryAfterSeconds(claimed, req.address) ?? 0);
    if (wait > 0) {
      throw new OAuthError(
        429,
        'invalid_client',
        `Too many failed authentications for this client or from this address: retry in ${wait} s`,
        wait,
      );
    }
    try {
      return await this.verifications.run(req.address ?? '', () =>
        req.client_assertion || req.client_assertion_type
          ? this.authenticateAssertion(req)
          : this.authenticateSecret(req),
      );
    } catch (err) {
      if (err instanceof GateFull) {
        throw new OAuthError(429, 'invalid_client', 'Too many client authentications in progress from this address', 1);
      }
      if (claimed !== undefined && err instanceof OAuthError && err.error === 'invalid_client') {
        this.failures?.fail(claimed, req.address);
      }
      throw err;
    }
  }

  /** The client id a request claims (undefined when it names none: such a request costs nothing to refuse). */
  private claimedClientId(req: TokenRequest): string | undefined {
    if (req.client_assertion) {
      try {
        return decodeJwt(req.client_assertion).iss ?? req.client_id;
      } catch {
        return req.client_id;
      }
    }
    try {
      return parseBasic(req.authorization)?.id ?? req.client_id;
    } catch {
      return undefined;
    }
  }

  private async authenticateSecret(req: TokenRequest): Promise<ClientRecord> {
    const basic = parseBasic(req.authorization);
    const id = basic ? basic.id : req.client_id;
    const secret = basic ? basic.secret : req.client_secret;
    if (!id || !secret) {
      throw new OAuthError(
        401,
        'invalid_client',
        'Client authentication required: HTTP Basic (client_secret_basic) or a client_assertion (private_key_jwt)',
      );
    }
    const client = await this.clients.verifySecret(id, secret);
    if (!client) {
      throw new OAuthError(401, 'invalid_client', 'Unknown client or wrong secret');
    }
    return client;
  }

  /** SMART Backend Services: a JWT signed with the client's registered key. */
  private async authenticateAssertion(req: TokenRequest): Promise<ClientRecord> {
    if (req.client_assertion_type !== CLIENT_ASSERTION_TYPE || !req.client_assertion) {
      throw new OAuthError(
        400,
        'invalid_request',
        `client_assertion_type must be ${CLIENT_ASSERTION_TYPE} with a client_assertion`,
      );
    }
    let iss: string | undefined;
    try {
      iss = decodeJwt(req.client_assertion).iss;
    } catch {
      throw new OAuthError(400, 'invalid_request', 'client_assertion is not a JWT');
    }
    const client = iss ? await this.clients.get(iss) : undefined;
    // RFC 7521 §4.2: a client_id sent along must name the same client as the assertion.
    if (!client || !client.active || !client.jwks || (req.client_id !== undefined && req.client_id !== client.id)) {
      throw new OAuthError(401, 'invalid_client', 'Unknown client or no JWKS registered for it');
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(req.client_assertion, createLocalJWKSet(client.jwks), {
        issuer: client.id,
        subject: client.id,
        audience: this.opts.tokenEndpoint,
        algorithms: ASSERTION_ALGS,
        requiredClaims: ['exp', 'jti'],
        clockTolerance: ASSERTION_CLOCK_SKEW_SECONDS,
      }));
    } catch (err) {
      throw new OAuthError(401, 'invalid_client', `client_assertion rejected: ${(err as Error).message}`);
    }
    const exp = Number(payload.exp);
    checkAssertionLifetime(exp, Math.floor(Date.now() / 1000));
    if (!(await this.clients.useAssertionId(client.id, String(payload.jti), new Date(exp * 1000)))) {
      throw new OAuthError(401, 'invalid_client', 'client_assertion jti already used (replay)');
    }
    return client;
  }
}

/**
 * The lifetime limit of a client assertion, in whole seconds with the clock-skew allowance.
 * Clients compute exp from a rounded clock (SMART's bulk-data-client: `Math.round(now) + 300`),
 * so an exact 5-minute assertion can be up to a second "too long" against a fractional server
 * clock; comparing that strictly to 300 refused about half of them.
 */
export function checkAssertionLifetime(exp: number, nowSeconds: number): void {
  if (exp - nowSeconds > ASSERTION_MAX_LIFETIME_SECONDS + ASSERTION_CLOCK_SKEW_SECONDS) {
    throw new OAuthError(
      401,
      'invalid_client',
      `client_assertion expires in ${exp - nowSeconds} s: at most ${ASSERTION_MAX_LIFETIME_SECONDS} s (+${ASSERTION_CLOCK_SKEW_SECONDS} s clock skew) is accepted`,
    );
  }
}

/**
 * client_secret_basic (RFC 6749 §2.3.1): `Basic base64(urlencode(id):urlencode(secret))`. A header
 * that is not Basic gives undefined; a malformed one (no colon, bad %-escape) is the client's
 * error, 401 invalid_client, not a URIError turning into a 500.
 */
function parseBasic(authorization: string | undefined): { id: string; secret: string } | undefined {
  const m = /^basic\s+(\S+)$/i.exec(authorization?.trim() ?? '');
  if (!m) {
    return undefined;
  }
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  try {
    if (colon > 0) {
      return { id: decodeURIComponent(decoded.slice(0, colon)), secret: decodeURIComponent(decoded.slice(colon + 1)) };
    }
  } catch {
    // fall through: malformed %-escape
  }
  throw new OAuthError(
    401,
    'invalid_client',
    'Malformed HTTP Basic credentials: expected base64(client_id:client_secret)',
  );
}

/** Deletes the client-assertion ids past their expiry (replay protection no longer needs them). */
export async function purgeExpiredAssertionIds(pool: Pool): Promise<number> {
  return (await pool.query('DELETE FROM client_assertion_jti WHERE expires_at < now()')).rowCount ?? 0;
}
