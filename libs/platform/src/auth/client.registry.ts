import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Pool } from 'pg';
import type { JSONWebKeySet } from 'jose';
import { isValidScope } from './scopes';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number) => Promise<Buffer>;

export interface ClientRecord {
  id: string;
  name: string;
  /** `Organization/<id>` */
  organization: string;
  scopes: string[];
  admin: boolean;
  hasSecret: boolean;
  jwks?: JSONWebKeySet;
  active: boolean;
}

export interface NewClient {
  name: string;
  organization: string;
  scopes: string[];
  admin?: boolean;
  /** Register a shared secret (client_secret_basic); returned once, stored hashed. */
  withSecret?: boolean;
  /** Register a public JWKS (private_key_jwt). */
  jwks?: JSONWebKeySet;
  id?: string;
}

/** OAuth2 clients of the gateway; secrets are kept as scrypt hashes only. */
export class ClientRegistry {
  constructor(private readonly pool: Pool) {}

  async create(input: NewClient): Promise<{ client: ClientRecord; secret?: string }> {
    const bad = input.scopes.filter((s) => !isValidScope(s));
    if (bad.length > 0 || input.scopes.length === 0) {
      throw new Error(
        `Invalid scope(s): ${bad.join(' ') || '(none given)'}; expected e.g. system/Patient.rs or system/*.cruds`,
      );
    }
    if (!/^Organization\/[A-Za-z0-9\-.]{1,64}$/.test(input.organization)) {
      throw new Error('The organization must be a reference Organization/<id>');
    }
    if (!input.withSecret && !input.jwks) {
      throw new Error('A client needs a secret or a JWKS to authenticate');
    }
    if (input.jwks) {
      checkPublicJwks(input.jwks);
    }
    const id = input.id ?? `gw-${randomBytes(9).toString('base64url')}`;
    const secret = input.withSecret ? randomBytes(32).toString('base64url') : undefined;
    const secretHash = secret ? await hashSecret(secret) : null;
    await this.pool.query(
      `INSERT INTO client (id, name, organization, scopes, admin, secret_hash, jwks) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        id,
        input.name,
        input.organization,
        input.scopes.join(' '),
        !!input.admin,
        secretHash,
        input.jwks ? JSON.stringify(input.jwks) : null,
      ],
    );
    return { client: (await this.get(id)) as ClientRecord, secret };
  }

  async get(id: string): Promise<ClientRecord | undefined> {
    const res = await this.pool.query('SELECT * FROM client WHERE id = $1', [id]);
    const r = res.rows[0];
    if (!r) {
      return undefined;
    }
    return {
      id: r.id,
      name: r.name,
      organization: r.organization,
      scopes: String(r.scopes).split(' ').filter(Boolean),
      admin: r.admin,
      hasSecret: !!r.secret_hash,
      jwks: r.jwks ?? undefined,
      active: r.active,
    };
  }

  async list(): Promise<ClientRecord[]> {
    const res = await this.pool.query('SELECT id FROM client ORDER BY created_at');
    return Promise.all(res.rows.map(async (r) => (await this.get(r.id)) as ClientRecord));
  }

  async hasAdmin(): Promise<boolean> {
    const res = await this.pool.query('SELECT 1 FROM client WHERE admin AND active LIMIT 1');
    return res.rowCount === 1;
  }

  /** Constant-time check of a client secret. */
  async verifySecret(id: string, secret: string): Promise<ClientRecord | undefined> {
    const res = await this.pool.query('SELECT secret_hash FROM client WHERE id = $1 AND active', [id]);
    const stored: string | null | undefined = res.rows[0]?.secret_hash;
    if (!stored || !(await checkSecret(secret, stored))) {
      return undefined;
    }
    return this.get(id);
  }

  /** Records a client-assertion jti; false when it was already used (replay). */
  async useAssertionId(clientId: string, jti: string, expiresAt: Date): Promise<boolean> {
    await this.pool.query('DELETE FROM client_assertion_jti WHERE expires_at < now()');
    const res = await this.pool.query(
      'INSERT INTO client_assertion_jti (jti, client_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING',
      [`${clientId}:${jti}`, clientId, expiresAt],
    );
    return res.rowCount === 1;
  }
}

/** Members of a JWK that only a private or symmetric key has (RFC 7517/7518). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * A registered JWKS must hold public RSA/EC keys only: it is stored in clear and listed by the
 * admin API, so a private key pasted by mistake would leak, and an "oct" key would turn the
 * asymmetric private_key_jwt into a shared secret.
 */
function checkPublicJwks(jwks: JSONWebKeySet): void {
  const keys: unknown = (jwks as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new Error('The JWKS must be an object {"keys": [...]} with at least one public key');
  }
  for (const key of keys as Record<string, unknown>[]) {
    if (!key || typeof key !== 'object' || (key.kty !== 'RSA' && key.kty !== 'EC')) {
      throw new Error('JWKS keys must be RSA or EC public keys (kty RSA or EC)');
    }
    if (PRIVATE_JWK_MEMBERS.some((m) => m in key)) {
      throw new Error('The JWKS holds private key material: register the public key only');
    }
  }
}

async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(secret, salt, 32);
  return `scrypt$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

async function checkSecret(secret: string, stored: string): Promise<boolean> {
  const [scheme, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) {
    return false;
  }
  const expected = Buffer.from(hash, 'base64url');
  const actual = await scrypt(secret, Buffer.from(salt, 'base64url'), expected.length);
  return timingSafeEqual(expected, actual);
}
