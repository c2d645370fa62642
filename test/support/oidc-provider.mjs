// A real OpenID Connect provider (npm oidc-provider, ESM-only) for the tests, run as a child
// process with `node`: Jest's module system does not load ESM packages. Its login page is
// oidc-provider's development interaction (any login, any password): the login is the account id.
//
// Environment: OIDC_PORT; OIDC_CLIENTS: JSON list of { client_id, client_secret, redirect_uris };
// OIDC_ACCOUNTS: JSON object login -> extra claims (e.g. { "SubjectNameID": "810001234567" }).
// An account whose claims hold "expired": true gets ID tokens that expired 10 minutes ago.
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.OIDC_CLIENTS ?? '[]');
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS ?? '{}');

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        const extra = { ...(accounts[id] ?? {}) };
        delete extra.expired;
        return { sub: id, ...extra };
      },
    };
  },
  // Pro Santé Connect's access tokens name the person too.
  async extraTokenClaims(_ctx, token) {
    const id = accounts[token.accountId]?.SubjectNameID;
    return id ? { SubjectNameID: id } : undefined;
  },
  claims: { openid: ['sub', 'SubjectNameID'] },
  // Pro Santé Connect puts SubjectNameID in its tokens: the ID token carries the scope's claims.
  conformIdTokenClaims: false,
  // First-party test clients: no consent screen.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid');
    grant.addOIDCClaims(['sub', 'SubjectNameID']);
    grant.addResourceScope('urn:test:api', 'api');
    await grant.save();
    return grant;
  },
  ttl: {
    IdToken(ctx) {
      return accounts[ctx?.oidc?.account?.accountId ?? '']?.expired ? -600 : 600;
    },
  },
  pkce: { required: () => true },
  cookies: { keys: ['oidc-test-cookie-key'] },
  features: {
    devInteractions: { enabled: true },
    // Access tokens as JWTs (as Pro Santé Connect's), audience the client they are issued to.
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:test:api',
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, _resource, client) => ({
        scope: 'api',
        audience: client.clientId,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 300,
      }),
    },
  },
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`oidc provider listening on ${issuer}\n`);
});
