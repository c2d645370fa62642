import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import type { OidcProviderConfig } from '../config';
import { OAuthError } from './oauth-error';

/** The claims holding the IdNatPS, in order, when a provider names none (Pro Santé Connect first). */
export const DEFAULT_PERSON_CLAIMS = ['SubjectNameID', 'sub'];
/** Signature algorithms accepted from a provider (never `none`, never a MAC with a public key). */
const PROVIDER_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const CLOCK_SKEW_SECONDS = 60;
const DISCOVERY_TIMEOUT_MS = 5000;

/** What the gateway uses of a provider's discovery document (OpenID Connect Discovery 1.0 §3). */
export interface ProviderMetadata {
  issuer: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  jwks_uri: string;
}

interface Discovered {
  metadata: ProviderMetadata;
  keys: JWTVerifyGetKey;
}

/** A verified provider token: its claims, the provider, and the IdNatPS it names (when it does). */
export interface VerifiedProviderToken {
  payload: JWTPayload;
  provider: OidcProviderConfig;
  idNatPs?: string;
}

/**
 * The OpenID Connect providers trusted for person tokens (GW_OIDC_PROVIDERS, and the dashboard's
 * provider). Discovery is read once per provider (again after a failure), and the provider's keys
 * are fetched and cached by jose's remote JWKS (refetched on an unknown `kid`, i.e. a key rotation).
 */
export class OidcProviders {
  private readonly discovered = new Map<string, Promise<Discovered>>();

  constructor(private readonly providers: readonly OidcProviderConfig[]) {}

  /** The configured provider of this issuer (compared without a trailing slash). */
  find(issuer: string | undefined): OidcProviderConfig | undefined {
    const wanted = trimSlash(issuer ?? '');
    return wanted ? this.providers.find((p) => trimSlash(p.issuer) === wanted) : undefined;
  }

  /** The provider's discovery document (cached; a failure is retried on the next call). */
  async metadata(provider: OidcProviderConfig): Promise<ProviderMetadata> {
    return (await this.discover(provider)).metadata;
  }

  /**
   * Verifies an ID token or a JWT access token of a configured provider: signature with the
   * provider's keys, `iss`, `aud` (the configured audience), `exp`, and `nonce` when expected.
   * Errors are RFC 8693 `invalid_grant` and never quote the token.
   */
  async verify(
    token: string,
    opts: { nonce?: string; provider?: OidcProviderConfig } = {},
  ): Promise<VerifiedProviderToken> {
    let iss: string | undefined;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw new OAuthError(400, 'invalid_grant', 'subject_token is not a JWT');
    }
    const provider = opts.provider ?? this.find(iss);
    if (!provider || (opts.provider && trimSlash(iss ?? '') !== trimSlash(provider.issuer))) {
      throw new OAuthError(
        400,
        'invalid_grant',
        'subject_token was not issued by a configured OpenID Connect provider',
      );
    }
    const { keys, metadata } = await this.discover(provider);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: metadata.issuer,
        audience: provider.audience,
        algorithms: PROVIDER_ALGS,
        requiredClaims: ['exp'],
        clockTolerance: CLOCK_SKEW_SECONDS,
      }));
    } catch (err) {
      throw new OAuthError(400, 'invalid_grant', `subject_token rejected: ${(err as Error).message}`);
    }
    if (opts.nonce !== undefined && payload.nonce !== opts.nonce) {
      throw new OAuthError(400, 'invalid_grant', 'The ID token does not carry the nonce of this login');
    }
    return { payload, provider, idNatPs: personClaim(payload, provider) };
  }

  private discover(provider: OidcProviderConfig): Promise<Discovered> {
    const key = trimSlash(provider.issuer);
    let pending = this.discovered.get(key);
    if (!pending) {
      pending = fetchDiscovery(key);
      this.discovered.set(key, pending);
      // A provider down at boot or for a moment must not stay unusable: forget the failure.
      pending.catch(() => this.discovered.delete(key));
    }
    return pending;
  }
}

async function fetchDiscovery(issuer: string): Promise<Discovered> {
  let metadata: ProviderMetadata;
  try {
    const res = await fetch(`${issuer}/.well-known/openid-configuration`, {
      signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS),
      headers: { accept: 'application/json' },
    });
    if (!res.ok) {
      throw new Error(`status ${res.status}`);
    }
    metadata = (await res.json()) as ProviderMetadata;
  } catch {
    throw new OAuthError(503, 'temporarily_unavailable', 'The OpenID Connect provider cannot be reached; retry later');
  }
  // OpenID Connect Discovery §4.3: the document's issuer must be the one it was fetched for.
  if (trimSlash(String(metadata.issuer ?? '')) !== issuer || typeof metadata.jwks_uri !== 'string') {
    throw new OAuthError(
      503,
      'temporarily_unavailable',
      'The OpenID Connect provider published an invalid discovery document',
    );
  }
  return {
    metadata,
    keys: createRemoteJWKSet(new URL(metadata.jwks_uri), { timeoutDuration: DISCOVERY_TIMEOUT_MS }),
  };
}

/** The IdNatPS a provider token names: the configured claim, else SubjectNameID, then sub. */
function personClaim(payload: JWTPayload, provider: OidcProviderConfig): string | undefined {
  const names = provider.claim ? [provider.claim] : DEFAULT_PERSON_CLAIMS;
  for (const name of names) {
    const value = payload[name];
    if (typeof value === 'string' && value !== '') {
      return value;
    }
  }
  return undefined;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}
