import { createHash, randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { freePort } from './ports';
import { ROOT, run } from './process';
import type { Proc } from './process';

export interface OidcTestClient {
  client_id: string;
  client_secret: string;
  redirect_uris: string[];
}

export interface OidcTestProvider {
  issuer: string;
  proc: Proc;
  /**
   * Logs `login` in at the provider over HTTP (its real authorization endpoint and login page,
   * PKCE) as `client`, and returns the tokens its token endpoint issues.
   */
  login(client: OidcTestClient, login: string): Promise<{ id_token: string; access_token: string }>;
  stop(): Promise<void>;
}

/**
 * Starts the real OpenID Connect provider of test/support/oidc-provider.mjs in a child process on
 * a free loopback port. `accounts`: login -> claims (SubjectNameID…, `expired: true` for ID tokens
 * already expired).
 */
export async function startOidcProvider(
  clients: OidcTestClient[],
  accounts: Record<string, Record<string, unknown>>,
): Promise<OidcTestProvider> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const proc = run(resolve(ROOT, 'test/support/oidc-provider.mjs'), {
    OIDC_PORT: String(port),
    OIDC_CLIENTS: JSON.stringify(clients),
    OIDC_ACCOUNTS: JSON.stringify(accounts),
  });
  await proc.waitFor(/oidc provider listening/, 30_000);
  return {
    issuer,
    proc,
    login: (client, login) => codeFlow(issuer, client, login),
    async stop() {
      proc.child.kill('SIGTERM');
      await proc.exited;
    },
  };
}

/** The authorization code flow driven with fetch: a cookie jar, redirects followed by hand. */
async function codeFlow(
  issuer: string,
  client: OidcTestClient,
  login: string,
): Promise<{ id_token: string; access_token: string }> {
  const jar = new Map<string, string>();
  const go = async (url: string, init: RequestInit = {}): Promise<Response> => {
    const res = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: {
        ...(init.headers as Record<string, string>),
        cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
      },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return res;
  };
  const verifier = randomBytes(32).toString('base64url');
  const redirectUri = client.redirect_uris[0];
  const auth = new URL(`${issuer}/auth`);
  auth.search = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: redirectUri,
    response_type: 'code',
    scope: 'openid api',
    state: randomBytes(8).toString('hex'),
    nonce: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  let res = await go(auth.toString());
  const interaction = new URL(res.headers.get('location') ?? '', issuer).toString();
  res = await go(interaction, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ prompt: 'login', login, password: 'any' }).toString(),
  });
  // Back to the authorization endpoint, which redirects to the client with the code.
  for (let hops = 0; hops < 5 && res.status >= 300 && res.status < 400; hops++) {
    const next = new URL(res.headers.get('location') ?? '', issuer);
    if (next.toString().startsWith(redirectUri)) {
      const code = next.searchParams.get('code');
      if (!code) {
        throw new Error(`no code: ${next.search}`);
      }
      return exchangeCode(issuer, client, code, verifier);
    }
    res = await go(next.toString());
  }
  throw new Error(`login did not reach the redirect URI: ${res.status} ${await res.text()}`);
}

async function exchangeCode(
  issuer: string,
  client: OidcTestClient,
  code: string,
  verifier: string,
): Promise<{ id_token: string; access_token: string }> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: client.redirect_uris[0],
      code_verifier: verifier,
    }).toString(),
  });
  const body = (await res.json()) as { id_token: string; access_token: string };
  if (!res.ok) {
    throw new Error(`token endpoint: ${res.status} ${JSON.stringify(body)}`);
  }
  return body;
}
