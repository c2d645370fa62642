import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createLogger, loadConfig } from '@gw/platform';
import { bootstrapAdmin } from '../../apps/gateway/src/auth/bootstrap-admin';
import { createCore } from '../../apps/gateway/src/core';
import type { GatewayCore } from '../../apps/gateway/src/core';
import { createHttpApp } from '../../apps/gateway/src/http/http';
import { startMllp } from '../../apps/gateway/src/ingest/mllp.listener';
import { createTestDatabase } from './database';
import { freePort } from './ports';

export interface TestGateway {
  baseUrl: string;
  fhirUrl: string;
  core: GatewayCore;
  app: NestFastifyApplication;
  admin: { clientId: string; clientSecret: string };
  /** Port of the MLLP listener (127.0.0.1). */
  mllpPort: number;
  /** Stops the MLLP listener only (close() does it too). */
  closeMllp(): Promise<void>;
  /** Every log line the gateway wrote (to check that no patient data is logged). */
  logs: string[];
  token(clientId?: string, secret?: string, scope?: string): Promise<string>;
  /** Registers a client of a new organization and returns a token for it. */
  clientOf(orgId: string, scopes: string[]): Promise<{ clientId: string; secret: string; token: string }>;
  close(): Promise<void>;
}

/** Starts a real gateway (own database, real HTTP listener on loopback) for a test file. */
export async function startTestGateway(env: Record<string, string> = {}): Promise<TestGateway> {
  const port = await freePort();
  const config = loadConfig({
    GW_DATABASE_URL: await createTestDatabase(),
    GW_HTTP_PORT: String(port),
    GW_DATA_DIR: join(tmpdir(), `gw-test-data-${port}`),
    GW_LOG_LEVEL: 'info',
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const core = await createCore(config, createLogger(config.GW_LOG_LEVEL, sink));
  const app = await createHttpApp(core);
  await app.listen(config.GW_HTTP_PORT, '127.0.0.1');
  const mllp = await startMllp(core, 0);
  const admin = (await bootstrapAdmin(core)) as { clientId: string; clientSecret: string };
  const baseUrl = core.baseUrl;
  const token = async (clientId = admin.clientId, secret = admin.clientSecret, scope?: string): Promise<string> => {
    const res = await fetch(`${baseUrl}/oauth2/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }).toString(),
    });
    const body = (await res.json()) as { access_token?: string };
    if (!res.ok || !body.access_token) {
      throw new Error(`token request failed: ${res.status} ${JSON.stringify(body)}`);
    }
    return body.access_token;
  };
  return {
    baseUrl,
    fhirUrl: `${baseUrl}/fhir`,
    core,
    app,
    admin,
    mllpPort: mllp.port,
    closeMllp: () => mllp.server.close(1000),
    logs,
    token,
    async clientOf(orgId, scopes) {
      const { client, secret } = await core.clients.create({
        name: `client of ${orgId}`,
        organization: `Organization/${orgId}`,
        scopes,
        withSecret: true,
      });
      return { clientId: client.id, secret: secret as string, token: await token(client.id, secret as string) };
    },
    async close() {
      await mllp.server.close(1000);
      // Keep-alive sockets of the test's fetch clients would hold close() for Fastify's 72 s timeout.
      (app.getHttpServer() as { closeAllConnections?: () => void }).closeAllConnections?.();
      await app.close();
      await core.close();
      if (!env.GW_DATA_DIR) {
        rmSync(config.GW_DATA_DIR, { recursive: true, force: true });
      }
      // A close step abandoned after its bound (a job or connection that would not end) is worth
      // seeing in the test output: it is a hang the process shutdown's deadline would have hidden.
      for (const line of logs.filter((l) => l.includes('close step did not finish'))) {
        process.stderr.write(`test gateway: ${line}`);
      }
    },
  };
}
