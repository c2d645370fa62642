import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, killAll, postmasterPid, removeDataDirs, startEmbeddedGateway } from '../support/process';
import type { EmbeddedGateway } from '../support/process';

/** The built gateway on its own embedded PostgreSQL, logging at info (the restart lines). */
function startGateway(extra: Record<string, string> = {}): Promise<EmbeddedGateway> {
  return startEmbeddedGateway({ GW_LOG_LEVEL: 'info', ...extra }, 'gw-embedded-kill-');
}

const dataDirs: string[] = [];

afterAll(async () => {
  await killAll();
  await removeDataDirs(dataDirs);
});

describe('the embedded PostgreSQL killed under a running gateway', () => {
  it('is restarted by the gateway: ready again and writing without operator action', async () => {
    const { gw, base, dataDir } = await startGateway();
    dataDirs.push(dataDir);
    const creds = JSON.parse(readFileSync(join(dataDir, 'admin-client.json'), 'utf8')) as {
      client_id: string;
      client_secret: string;
    };
    const first = postmasterPid(dataDir);
    expect(first).toBeGreaterThan(0);

    process.kill(first, 'SIGKILL');
    const killedAt = Date.now();
    let status = 0;
    let sawUnready = false;
    while (Date.now() - killedAt < 30_000) {
      status = await fetch(`${base}/health/ready`).then(
        (r) => r.status,
        () => 0,
      );
      sawUnready ||= status === 503;
      if (status === 200 && sawUnready) {
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(sawUnready).toBe(true);
    expect(status).toBe(200);

    const second = postmasterPid(dataDir);
    expect(second).not.toBe(first);
    expect(alive(second)).toBe(true);
    expect(gw.out()).toMatch(/"msg":"embedded PostgreSQL exited unexpectedly"/);
    expect(gw.out()).toMatch(/"msg":"embedded PostgreSQL restarted"/);

    const tokenRes = await fetch(`${base}/oauth2/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${creds.client_id}:${creds.client_secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials',
    });
    expect(tokenRes.status).toBe(200);
    const token = ((await tokenRes.json()) as { access_token: string }).access_token;
    const created = await fetch(`${base}/fhir/Patient`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Relance' }] }),
    });
    expect(created.status).toBe(201);

    // A shutdown stops the restarted PostgreSQL and does not start it again.
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    expect(alive(second)).toBe(false);
    expect(gw.out().match(/"msg":"embedded PostgreSQL restarted"/g)).toHaveLength(1);
  }, 180_000);

  it('stops the gateway with exit code 1 once the restarts allowed are spent (for its supervisor to restart it)', async () => {
    const { gw, dataDir } = await startGateway({ GW_EMBEDDED_PG_MAX_RESTARTS: '0' });
    dataDirs.push(dataDir);
    process.kill(postmasterPid(dataDir), 'SIGKILL');
    expect(await gw.exited).toBe(1);
    expect(gw.out()).toMatch(/embedded PostgreSQL could not be kept running/);
  }, 180_000);
});
