import { createHash, randomBytes } from 'node:crypto';
import { ConfigError, OAuthError, OidcProviders } from '@gw/platform';
import type { DashboardLoginStore } from '@gw/platform';
import type { ClientRegistry, ExchangeResponse, GatewayConfig, OidcProviderConfig, TokenService } from '@gw/platform';

/** An authorization request waits this long for its callback. */
const PENDING_SECONDS = 600;
/** The one-time code handed to the page is redeemed within this. */
const CODE_SECONDS = 60;

const sha256 = (text: string): string => createHash('sha256').update(text).digest('base64url');
const random = (): string => randomBytes(32).toString('base64url');

interface DashboardOidc {
  provider: OidcProviderConfig;
  clientId: string;
  clientSecret: string;
  /** The gateway client (of the structure) the person acts through. */
  actorClientId: string;
}

/**
 * Dashboard login of a person through an OpenID Connect provider: the gateway is the relying
 * party (authorization code, PKCE, state bound to the browser by a cookie, nonce), then exchanges
 * the verified ID token's person for a person token of the dashboard's gateway client, and hands
 * the page a one-time code (in the URL fragment) that the page redeems by POST: the token itself
 * never appears in a URL. Pending logins live in the database, so any replica may take the callback.
 */
export class DashboardLogin {
  private readonly oidc?: DashboardOidc;
  private readonly providers?: OidcProviders;

  constructor(
    private readonly logins: DashboardLoginStore,
    private readonly tokens: TokenService,
    private readonly clients: ClientRegistry,
    config: GatewayConfig,
    private readonly baseUrl: string,
  ) {
    const issuer = config.GW_DASHBOARD_OIDC_ISSUER;
    if (!issuer) {
      return;
    }
    const clientId = config.GW_DASHBOARD_OIDC_CLIENT_ID;
    const clientSecret = config.GW_DASHBOARD_OIDC_CLIENT_SECRET;
    const actorClientId = config.GW_DASHBOARD_CLIENT_ID;
    if (!clientId || !clientSecret || !actorClientId) {
      throw new ConfigError(
        'GW_DASHBOARD_OIDC_ISSUER needs GW_DASHBOARD_OIDC_CLIENT_ID, GW_DASHBOARD_OIDC_CLIENT_SECRET and GW_DASHBOARD_CLIENT_ID',
      );
    }
    const provider = { issuer, audience: clientId };
    this.oidc = { provider, clientId, clientSecret, actorClientId };
    this.providers = new OidcProviders([provider]);
  }

  get enabled(): boolean {
    return this.oidc !== undefined;
  }

  get redirectUri(): string {
    return `${this.baseUrl}/dashboard/callback`;
  }

  /** Starts a login: the provider's authorization URL, and the state the browser's cookie keeps. */
  async start(): Promise<{ location: string; state: string }> {
    const { oidc, providers } = this.require();
    const metadata = await providers.metadata(oidc.provider);
    if (!metadata.authorization_endpoint) {
      throw new OAuthError(503, 'temporarily_unavailable', 'The provider publishes no authorization endpoint');
    }
    const state = random();
    const nonce = random();
    const verifier = random();
    await this.logins.start(sha256(state), nonce, verifier, PENDING_SECONDS);
    const url = new URL(metadata.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: oidc.clientId,
      redirect_uri: this.redirectUri,
      scope: 'openid',
      state,
      nonce,
      code_challenge: sha256(verifier),
      code_challenge_method: 'S256',
    }).toString();
    return { location: url.toString(), state };
  }

  /**
   * The provider's redirect: checks the state against the browser's cookie (single use), redeems
   * the code (PKCE), verifies the ID token (signature, iss, aud, exp, nonce), issues the person
   * token and returns the one-time code the page redeems.
   */
  async callback(
    code: string | undefined,
    state: string | undefined,
    cookieState: string | undefined,
  ): Promise<string> {
    const { oidc, providers } = this.require();
    if (!code || !state || state !== cookieState) {
      throw new OAuthError(400, 'invalid_request', 'This login was not started in this browser, or was already used');
    }
    const pending = await this.logins.takePending(sha256(state));
    if (!pending) {
      throw new OAuthError(400, 'invalid_request', 'This login expired or was already used: start again');
    }
    const idToken = await this.redeemAtProvider(code, pending.code_verifier);
    const verified = await providers.verify(idToken, { nonce: pending.nonce, provider: oidc.provider });
    if (!verified.idNatPs) {
      throw new OAuthError(400, 'invalid_grant', 'The provider names no person (no SubjectNameID or sub claim)');
    }
    const client = await this.clients.get(oidc.actorClientId);
    if (!client) {
      throw new OAuthError(
        503,
        'temporarily_unavailable',
        'The dashboard client (GW_DASHBOARD_CLIENT_ID) does not exist',
      );
    }
    const token = await this.tokens.personToken(client, verified.idNatPs, {}, true);
    const oneTime = random();
    await this.logins.keepCode(sha256(random()), sha256(oneTime), token, CODE_SECONDS);
    return oneTime;
  }

  /** The page's POST: the one-time code, once, for the person token. */
  async redeem(
    code: string | undefined,
  ): Promise<Pick<ExchangeResponse, 'access_token' | 'token_type' | 'expires_in'>> {
    const row = code ? await this.logins.takeCode(sha256(code)) : undefined;
    if (!row) {
      throw new OAuthError(400, 'invalid_grant', 'Unknown, expired or already used login code');
    }
    return { access_token: row.access_token, token_type: 'Bearer', expires_in: row.expires_in };
  }

  private async redeemAtProvider(code: string, verifier: string): Promise<string> {
    const { oidc, providers } = this.require();
    const metadata = await providers.metadata(oidc.provider);
    if (!metadata.token_endpoint) {
      throw new OAuthError(503, 'temporarily_unavailable', 'The provider publishes no token endpoint');
    }
    // RFC 6749 §2.3.1: client_secret_basic, each part form-urlencoded.
    const basic = Buffer.from(`${encodeURIComponent(oidc.clientId)}:${encodeURIComponent(oidc.clientSecret)}`).toString(
      'base64',
    );
    let res: Response;
    try {
      res = await fetch(metadata.token_endpoint, {
        method: 'POST',
        signal: AbortSignal.timeout(10_000),
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: this.redirectUri,
          code_verifier: verifier,
        }).toString(),
      });
    } catch {
      throw new OAuthError(
        503,
        'temporarily_unavailable',
        'The OpenID Connect provider cannot be reached; retry later',
      );
    }
    const body = (await res.json().catch(() => ({}))) as { id_token?: unknown; error?: unknown };
    if (!res.ok || typeof body.id_token !== 'string') {
      throw new OAuthError(
        400,
        'invalid_grant',
        `The provider refused the authorization code (${typeof body.error === 'string' ? body.error : res.status})`,
      );
    }
    return body.id_token;
  }

  private require(): { oidc: DashboardOidc; providers: OidcProviders } {
    if (!this.oidc || !this.providers) {
      throw new OAuthError(404, 'invalid_request', 'Dashboard login through a provider is not configured');
    }
    return { oidc: this.oidc, providers: this.providers };
  }
}
