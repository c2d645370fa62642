import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { writePortabilityArchive } from '../support/intake-archive';
import type { GeneratedArchive } from '../support/intake-archive';

/** Portability archive import through the operator API, run as a job by the gateway's own worker. */
describe('portability archive import (admin API, job)', () => {
  let gw: TestGateway;
  let dir: string;
  let admin: string;
  let archive: GeneratedArchive;

  const api = async (
    path: string,
    token: string,
    body?: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${gw.baseUrl}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gw-portability-e2e-'));
    mkdirSync(join(dir, 'imports'));
    archive = writePortabilityArchive(join(dir, 'imports', 'msp.zip'), { patients: 3, layout: 'mixed', damaged: [1] });
    gw = await startTestGateway({ GW_INTAKE_IMPORT_DIR: join(dir, 'imports'), GW_WORKERS_INPROCESS: 'true' });
    admin = await gw.token();
  });
  afterAll(async () => {
    await gw?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts an import from the import folder (202) and plans every patient of the archive in the worker', async () => {
    const started = await api('/admin/intake/imports', admin, {
      path: 'msp.zip',
      organization: 'Organization/msp-import',
    });
    expect(started.status).toBe(202);
    expect(started.json).toMatchObject({ status: 'queued', organization: 'Organization/msp-import' });
    const id = started.json.id as string;
    let progress: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) {
      progress = (await api(`/admin/intake/imports/${id}`, admin)).json;
      if ((progress.patients as { total: number }).total === 3) {
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(progress).toMatchObject({ id, patients: { total: 3 }, skipped: expect.any(Number) });
    // Folder-form patients' documents are known from the plan; zip-form ones when opened.
    expect((progress.documents as { total: number }).total).toBeGreaterThanOrEqual(4);
    const list = await api('/admin/intake/imports?_count=5', admin);
    expect((list.json as unknown as { id: string }[]).map((x) => x.id)).toContain(id);
    // Nothing of the patients in the gateway's logs (names, INS).
    const logs = gw.logs.join('');
    for (const p of archive.patients) {
      expect(logs).not.toContain(p.ins);
      expect(logs).not.toContain(p.family);
    }
  });

  it('refuses a file outside the import folder, a missing file and a missing organization', async () => {
    expect(
      (
        await api('/admin/intake/imports', admin, {
          path: '../imports/../../etc/passwd',
          organization: 'Organization/x',
        })
      ).status,
    ).toBe(403);
    expect(
      (await api('/admin/intake/imports', admin, { path: 'none.zip', organization: 'Organization/x' })).status,
    ).toBe(400);
    const missingOrg = await api('/admin/intake/imports', admin, { path: 'msp.zip' });
    expect(missingOrg).toMatchObject({ status: 400, json: { resourceType: 'OperationOutcome' } });
    expect((await api('/admin/intake/imports/00000000-0000-4000-8000-000000000000', admin)).status).toBe(404);
  });

  it('is for operators only', async () => {
    const client = await gw.clientOf('msp-import', ['system/*.cruds']);
    expect(
      (await api('/admin/intake/imports', client.token, { path: 'msp.zip', organization: 'Organization/msp-import' }))
        .status,
    ).toBe(403);
    expect((await api('/admin/intake/imports', client.token)).status).toBe(403);
  });
});
