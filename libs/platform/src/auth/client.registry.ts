import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Pool } from 'pg';
import type { JSONWebKeySet } from 'jose';
import { GatewayError } from '../errors';
import { isValidScope } from './scopes';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number) => Promise<Buffer>;

/**
 * The key derivation used to check a secret (an object so that a unit test can count the calls:
 * every verification must derive once, whether or not the client exists).
 */
export const secretKdf = {
  derive: (secret: string, salt: Buffer, length: number): Promise<Buffer> => scrypt(secret, salt, length),
};

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
  /** Capabilities an operator granted (e.g. `ins-qualification`); never requested by the client. */
  grants: string[];
  /** When the client was last deactivated or activated again (absent: never). */
  statusChangedAt?: string;
}

/** What a request needs to know of its client, read at request time (see ClientStatusCache). */
export interface ClientStatus {
  active: boolean;
  admin: boolean;
  /** `Organization/<id>` */
  organization: string;
  grants: readonly string[];
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
  /**
   * @param opts.knownGrants the grant names an operator may give (the composition root passes the
   * ones the store understands); any other name is refused.
   */
  constructor(
    private readonly pool: Pool,
    private readonly opts: { knownGrants?: readonly string[] } = {},
  ) {}

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
      grants: r.grants ?? [],
      ...(r.status_changed_at ? { statusChangedAt: (r.status_changed_at as Date).toISOString() } : {}),
    };
  }

  /** The current status of a client (one indexed read; undefined when it does not exist). */
  async statusOf(id: string): Promise<ClientStatus | undefined> {
    const res = await this.pool.query('SELECT active, admin, organization, grants FROM client WHERE id = $1', [id]);
    const r = res.rows[0];
    return r ? { active: r.active, admin: r.admin, organization: r.organization, grants: r.grants ?? [] } : undefined;
  }

  /**
   * Deactivates (or activates again) a client. A deactivated client gets no token, and its live
   * tokens are refused within seconds (every gateway is told through NOTIFY, see the migration).
   * The last active admin client cannot be deactivated: nobody could operate the gateway any more.
   */
  async setActive(id: string, active: boolean): Promise<ClientRecord> {
    const conn = await this.pool.connect();
    try {
      await conn.query('BEGIN');
      // Locking every active admin serialises two admins deactivating each other at once.
      const admins = await conn.query('SELECT id FROM client WHERE admin AND active ORDER BY id FOR UPDATE');
      const row = (await conn.query('SELECT admin, active FROM client WHERE id = $1 FOR UPDATE', [id])).rows[0];
      if (!row) {
        throw new GatewayError('not-found', { text: `No client ${id}` });
      }
      if (!active && row.admin && row.active && admins.rows.every((a) => a.id === id)) {
        throw new GatewayError('conflict', {
          text: `Client ${id} is the last active admin client: activate or create another admin client before deactivating it`,
        });
      }
      if (row.active !== active) {
        await conn.query('UPDATE client SET active = $2, status_changed_at = now() WHERE id = $1', [id, active]);
      }
      await conn.query('COMMIT');
    } catch (err) {
      await conn.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      conn.release();
    }
    return (await this.get(id)) as ClientRecord;
  }

  /** Replaces the operator-granted capabilities of a client; unknown grant names are refused. */
  async setGrants(id: string, grants: readonly string[]): Promise<ClientRecord> {
    const known = this.opts.knownGrants ?? [];
    const unknown = grants.filter((g) => !known.includes(g));
    if (unknown.length > 0) {
      throw new GatewayError('invalid', {
        text: `Unknown grant(s): ${unknown.join(', ')}; known grants: ${known.join(', ') || '(none)'}`,
        expression: 'grants',
      });
    }
    const res = await this.pool.query('UPDATE client SET grants = $2 WHERE id = $1', [id, [...new Set(grants)].sort()]);
    if (res.rowCount !== 1) {
      throw new GatewayError('not-found', { text: `No client ${id}` });
    }
    return (await this.get(id)) as ClientRecord;
  }

  async list(): Promise<ClientRecord[]> {
    const res = await this.pool.query('SELECT id FROM client ORDER BY created_at');
    return Promise.all(res.rows.map(async (r) => (await this.get(r.id)) as ClientRecord));
  }

  async hasAdmin(): Promise<boolean> {
    const res = await this.pool.query('SELECT 1 FROM client WHERE admin AND active LIMIT 1');
    return res.rowCount === 1;
  }

  /**
   * Constant-time check of a client secret. An unknown id, a client without a secret or a
   * deactivated one costs the same key derivation as a wrong secret (against a dummy hash), so
   * that the time taken does not tell which client ids exist.
   */
  async verifySecret(id: string, secret: string): Promise<ClientRecord | undefined> {
    const res = await this.pool.query('SELECT secret_hash, active FROM client WHERE id = $1', [id]);
    const stored: string | null | undefined = res.rows[0]?.secret_hash;
    const usable = !!stored && res.rows[0].active === true;
    const matches = await checkSecret(secret, usable ? (stored as string) : await dummyHash());
    if (!usable || !matches) {
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

let dummy: Promise<string> | undefined;

/** A hash of a random secret nobody knows, made once per process: what a missing secret is checked against. */
function dummyHash(): Promise<string> {
  dummy ??= hashSecret(randomBytes(32).toString('base64url'));
  return dummy;
}

async function checkSecret(secret: string, stored: string): Promise<boolean> {
  const [scheme, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) {
    return false;
  }
  const expected = Buffer.from(hash, 'base64url');
  const actual = await secretKdf.derive(secret, Buffer.from(salt, 'base64url'), expected.length);
  return timingSafeEqual(expected, actual);
}
