import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import type { Pool } from 'pg';
import type { ClientRecord } from './client.registry';
import { OAuthError } from './oauth-error';
import type { OidcProviders } from './oidc-providers';

/** RFC 8693 §2.1 grant type. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** RFC 8693 §3 token type identifiers. */
export const TOKEN_TYPE = {
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
} as const;

/** A vendor's subject token lives at most 5 minutes (as a SMART client assertion). */
const SUBJECT_MAX_LIFETIME_SECONDS = 300;
const CLOCK_SKEW_SECONDS = 60;
const CLIENT_ALGS = ['RS384', 'ES384', 'RS256', 'ES256'];

/** The person a token acts for, as the gateway's token carries it. */
export interface PersonClaims {
  /** `Practitioner/<id>` */
  practitioner: string;
  /** `PractitionerRole/<id>` */
  role: string;
  /** TRE_G15 profession code of the role (or of the practitioner's qualification). */
  profession?: string;
  /** False for non-health staff (the role carries no health profession). */
  health: boolean;
  /**
   * The person's identity was established by an identity provider the gateway trusts (an OpenID
   * Connect token it verified), not only vouched for by the client's own signature.
   */
  identityVerified?: boolean;
}

/** A person resolved from the directory: the token's claims plus what the audit trail names. */
export interface ResolvedPerson extends PersonClaims {
  idNatPs: string;
  display?: string;
}

/**
 * Finds the person of an IdNatPS in the shared directory and the role they act in for an
 * organization. Implemented over the FHIR store by the composition root; throws OAuthError
 * (`invalid_grant` / `invalid_request`) with a text the vendor can act on.
 */
export interface PersonResolver {
  resolve(idNatPs: string, organization: string, roleId?: string): Promise<ResolvedPerson>;
}

/**
 * The subject token of an RFC 8693 exchange, checked: a JWT the client signed with its registered
 * key (`…:token-type:jwt`), or an ID / access token of a configured OpenID Connect provider.
 * Returns the IdNatPS it names. Errors never quote the token.
 */
export class SubjectTokenVerifier {
  constructor(
    private readonly pool: Pool,
    private readonly providers: OidcProviders,
    private readonly tokenEndpoint: string,
  ) {}

  async idNatPsOf(client: ClientRecord, token: string | undefined, type: string | undefined): Promise<string> {
    if (!token || !type) {
      throw new OAuthError(400, 'invalid_request', 'A token exchange needs subject_token and subject_token_type');
    }
    switch (type) {
      case TOKEN_TYPE.jwt:
        return this.vendorToken(client, token);
      case TOKEN_TYPE.idToken:
      case TOKEN_TYPE.accessToken: {
        const verified = await this.providers.verify(token);
        if (!verified.idNatPs) {
          throw new OAuthError(
            400,
            'invalid_grant',
            'The provider token names no person (no SubjectNameID or sub claim)',
          );
        }
        return verified.idNatPs;
      }
      default:
        throw new OAuthError(
          400,
          'invalid_request',
          `Unsupported subject_token_type: expected ${Object.values(TOKEN_TYPE).join(', ')}`,
        );
    }
  }

  /** A JWT the vendor signs for its user: iss = client_id, sub = IdNatPS, aud = the token endpoint, ≤ 5 min, jti once. */
  private async vendorToken(client: ClientRecord, token: string): Promise<string> {
    let iss: string | undefined;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw new OAuthError(400, 'invalid_grant', 'subject_token is not a JWT');
    }
    if (iss !== client.id) {
      throw new OAuthError(400, 'invalid_grant', 'subject_token must be issued by the client itself (iss = client_id)');
    }
    if (!client.jwks) {
      throw new OAuthError(
        400,
        'invalid_grant',
        'This client has no registered public key (JWKS): it cannot sign subject tokens; use an OpenID Connect token instead',
      );
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, createLocalJWKSet(client.jwks), {
        issuer: client.id,
        audience: this.tokenEndpoint,
        algorithms: CLIENT_ALGS,
        requiredClaims: ['exp', 'jti', 'sub'],
        clockTolerance: CLOCK_SKEW_SECONDS,
      }));
    } catch (err) {
      throw new OAuthError(400, 'invalid_grant', `subject_token rejected: ${(err as Error).message}`);
    }
    const now = Math.floor(Date.now() / 1000);
    const exp = Number(payload.exp);
    if (exp - now > SUBJECT_MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS) {
      throw new OAuthError(
        400,
        'invalid_grant',
        `subject_token expires in ${exp - now} s: at most ${SUBJECT_MAX_LIFETIME_SECONDS} s is accepted`,
      );
    }
    if (!(await this.useOnce(client.id, String(payload.jti), exp))) {
      throw new OAuthError(400, 'invalid_grant', 'subject_token jti already used (replay)');
    }
    return String(payload.sub);
  }

  /** Records a subject-token jti; false when this client already used it. */
  private async useOnce(clientId: string, jti: string, exp: number): Promise<boolean> {
    await this.pool.query('DELETE FROM subject_token_jti WHERE expires_at < now()');
    const res = await this.pool.query(
      `INSERT INTO subject_token_jti (client_id, jti, expires_at) VALUES ($1, $2, to_timestamp($3))
       ON CONFLICT DO NOTHING`,
      [clientId, jti, exp + CLOCK_SKEW_SECONDS],
    );
    return res.rowCount === 1;
  }
}

/**
 * Scopes of a person token: SMART v2 `user/` scopes are read as the same `system/` scopes (the
 * gateway has one scope model, and a person never gets more than the client may have).
 */
export function personScopes(requested: string): string {
  return requested.replace(/(^|\s)user\//g, '$1system/');
}
