import type { Migration } from '../database/migrate';

/** Tables of the platform: OAuth2 clients, seen client-assertion ids, token-signing keys. */
export const PLATFORM_MIGRATIONS: Migration[] = [
  {
    version: 1,
    feature: 'platform',
    name: 'clients, client assertions, signing keys',
    sql: `
-- OAuth2 clients (SMART Backend Services). Secrets are stored as scrypt hashes only.
CREATE TABLE client (
  id text PRIMARY KEY,
  name text NOT NULL,
  organization text NOT NULL,
  scopes text NOT NULL,
  admin boolean NOT NULL DEFAULT false,
  secret_hash text,
  jwks jsonb,
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- client_assertion jti already seen (replay protection), kept until they expire.
CREATE TABLE client_assertion_jti (
  jti text PRIMARY KEY,
  client_id text NOT NULL,
  expires_at timestamptz NOT NULL
);

CREATE TABLE signing_key (
  kid text PRIMARY KEY,
  alg text NOT NULL,
  private_jwk jsonb NOT NULL,
  public_jwk jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 15,
    feature: 'platform',
    name: 'client grants and live revocation',
    sql: `
-- Capabilities an operator grants a client (admin API / CLI), never requested by the client.
ALTER TABLE client ADD COLUMN grants text[] NOT NULL DEFAULT '{}';
-- When the client was last activated or deactivated (the operator listing shows it).
ALTER TABLE client ADD COLUMN status_changed_at timestamptz;
-- Every running gateway keeps a short cache of each client's status; a change from any process
-- (admin API, CLI, directory merge) is pushed to them at once on this channel (payload: the id).
CREATE FUNCTION gw_client_changed_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('gw_client_changed', COALESCE(NEW.id, OLD.id));
  RETURN NULL;
END
$fn$;
CREATE TRIGGER client_changed_notify AFTER UPDATE OR DELETE ON client
  FOR EACH ROW EXECUTE FUNCTION gw_client_changed_notify();
`,
  },
  {
    version: 21,
    feature: 'platform',
    name: 'person tokens: used subject-token ids, dashboard logins',
    sql: `
-- RFC 8693 subject tokens a client signed itself (jti single use), kept until they expire.
CREATE TABLE subject_token_jti (
  client_id text NOT NULL,
  jti text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (client_id, jti)
);
CREATE INDEX subject_token_jti_expiry_idx ON subject_token_jti (expires_at);

-- Dashboard logins through an OpenID Connect provider: the pending authorization request (state,
-- nonce, PKCE verifier), then the one-time code the page redeems for its person token. Shared by
-- every replica (the callback may reach another one); rows live minutes at most.
CREATE TABLE dashboard_login (
  state_hash text PRIMARY KEY,
  nonce text NOT NULL,
  code_verifier text NOT NULL,
  code_hash text UNIQUE,
  access_token text,
  expires_in integer,
  expires_at timestamptz NOT NULL
);
CREATE INDEX dashboard_login_expiry_idx ON dashboard_login (expires_at);
`,
  },
];
