import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { JWK, KeyObject } from 'jose';
import type { TestGateway } from './gateway';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** A vendor's system client with a registered signing key: it vouches for its users by signed JWTs. */
export interface VendorClient {
  id: string;
  secret: string;
  privateKey: KeyObject;
  kid: string;
}

/** Registers a client of `organization` with a secret and an ES256 key of its own. */
export async function vendorClient(gw: TestGateway, organization: string, scopes: string[]): Promise<VendorClient> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = randomUUID();
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256' };
  const { client, secret } = await gw.core.clients.create({
    name: `vendor of ${organization}`,
    organization,
    scopes,
    withSecret: true,
    jwks: { keys: [jwk] },
  });
  return { id: client.id, secret: secret as string, privateKey: privateKey as KeyObject, kid };
}

/**
 * A person token (RFC 8693): the vendor's client authenticates with its secret and names the
 * person by a JWT it signs (sub = IdNatPS). Throws with the gateway's answer when refused.
 */
export async function personToken(
  gw: TestGateway,
  vendor: VendorClient,
  idNatPs: string,
  scope = 'user/*.rs',
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const subject = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: vendor.kid })
    .setIssuer(vendor.id)
    .setSubject(idNatPs)
    .setAudience(`${gw.baseUrl}/oauth2/token`)
    .setIssuedAt(now)
    .setExpirationTime(now + 240)
    .setJti(randomUUID())
    .sign(vendor.privateKey);
  const res = await fetch(`${gw.baseUrl}/oauth2/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${vendor.id}:${vendor.secret}`).toString('base64')}`,
    },
    body: new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token_type: JWT_TOKEN_TYPE,
      subject_token: subject,
      scope,
    }).toString(),
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) {
    throw new Error(`token exchange for ${idNatPs}: HTTP ${res.status} ${JSON.stringify(body)}`);
  }
  return body.access_token;
}
