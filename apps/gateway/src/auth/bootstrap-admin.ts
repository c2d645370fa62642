import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { GatewayCore } from '../core';

export const ADMIN_CREDENTIALS_FILE = 'admin-client.json';

/**
 * On a first start (no admin client yet): creates the operator Organization and an admin client,
 * writes its credentials to GW_DATA_DIR/admin-client.json (mode 0600) and returns them so they
 * can be printed once. Later starts return undefined.
 */
export async function bootstrapAdmin(
  core: GatewayCore,
): Promise<{ clientId: string; clientSecret: string; file: string } | undefined> {
  if (await core.clients.hasAdmin()) {
    return undefined;
  }
  const system = {
    clientId: 'gateway-bootstrap',
    organization: 'Organization/gateway-operator',
    admin: true,
    scopes: ['system/*.cruds'],
  };
  await core.repo.update(
    'Organization',
    'gateway-operator',
    { resourceType: 'Organization', id: 'gateway-operator', active: true, name: 'Gateway operator' },
    { principal: system },
  );
  const { client, secret } = await core.clients.create({
    name: 'Gateway administrator',
    organization: system.organization,
    scopes: ['system/*.cruds'],
    admin: true,
    withSecret: true,
  });
  const file = resolve(core.config.GW_DATA_DIR, ADMIN_CREDENTIALS_FILE);
  mkdirSync(resolve(core.config.GW_DATA_DIR), { recursive: true });
  const credentials = {
    client_id: client.id,
    client_secret: secret,
    token_endpoint: `${core.baseUrl}/oauth2/token`,
    fhir_base: `${core.baseUrl}/fhir`,
  };
  writeFileSync(file, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  return { clientId: client.id, clientSecret: secret as string, file };
}
