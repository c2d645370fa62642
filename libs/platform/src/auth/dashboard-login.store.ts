import type { Pool } from 'pg';

/**
 * The dashboard's pending person logins (table dashboard_login, this feature's): the state of an
 * authorization request in flight, then the one-time code the page redeems. Keys are hashes; rows
 * live seconds. Kept in PostgreSQL so that any replica can take the provider's callback.
 */
export class DashboardLoginStore {
  constructor(private readonly pool: Pool) {}

  /** Records a login in flight (and drops the expired ones). */
  async start(stateHash: string, nonce: string, codeVerifier: string, seconds: number): Promise<void> {
    await this.pool.query('DELETE FROM dashboard_login WHERE expires_at < now()');
    await this.pool.query(
      `INSERT INTO dashboard_login (state_hash, nonce, code_verifier, expires_at)
       VALUES ($1, $2, $3, now() + make_interval(secs => $4))`,
      [stateHash, nonce, codeVerifier, seconds],
    );
  }

  /** Takes a login in flight by its state, once. */
  async takePending(stateHash: string): Promise<{ nonce: string; code_verifier: string } | undefined> {
    const res = await this.pool.query<{ nonce: string; code_verifier: string }>(
      `DELETE FROM dashboard_login WHERE state_hash = $1 AND code_hash IS NULL AND expires_at > now()
       RETURNING nonce, code_verifier`,
      [stateHash],
    );
    return res.rows[0];
  }

  /** Keeps the person token behind a one-time code for `seconds`. */
  async keepCode(
    randomStateHash: string,
    codeHash: string,
    token: { access_token: string; expires_in: number },
    seconds: number,
  ): Promise<void> {
    await this.pool.query(
      `INSERT INTO dashboard_login (state_hash, nonce, code_verifier, code_hash, access_token, expires_in, expires_at)
       VALUES ($1, '', '', $2, $3, $4, now() + make_interval(secs => $5))`,
      [randomStateHash, codeHash, token.access_token, token.expires_in, seconds],
    );
  }

  /** Takes the token behind a one-time code, once. */
  async takeCode(codeHash: string): Promise<{ access_token: string; expires_in: number } | undefined> {
    const res = await this.pool.query<{ access_token: string; expires_in: number }>(
      `DELETE FROM dashboard_login WHERE code_hash = $1 AND expires_at > now() RETURNING access_token, expires_in`,
      [codeHash],
    );
    return res.rows[0];
  }
}
