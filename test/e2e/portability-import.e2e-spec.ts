import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { writePortabilityArchive } from '../support/intake-archive';
import type { GeneratedArchive } from '../support/intake-archive';
import type { Bundle, DocumentReference, Immunization, Observation, Patient, Resource } from '@medplum/fhirtypes';

/** Portability archive import through the operator API, run as a job by the gateway's own worker. */
describe('portability archive import (admin API, job)', () => {
  let gw: TestGateway;
  let dir: string;
  let admin: string;
  let archive: GeneratedArchive;
  let importId: string;

  /** Polls the import's progress until it is completed or failed (the worker runs it). */
  const finished = async (id: string): Promise<Record<string, unknown>> => {
    let progress: Record<string, unknown> = {};
    for (let i = 0; i < 300; i++) {
      progress = (await api(`/admin/intake/imports/${id}`, admin)).json;
      if (progress.status === 'completed' || progress.status === 'failed') {
        return progress;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`import ${id} did not finish: ${JSON.stringify(progress)}`);
  };

  /** Every resource of a type the organization's client reads through FHIR (all pages). */
  const fhirAll = async (type: string, token: string): Promise<Resource[]> => {
    const out: Resource[] = [];
    let url: string | undefined = `${gw.fhirUrl}/${type}?_count=200`;
    while (url) {
      const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      const bundle = (await res.json()) as Bundle;
      out.push(...(bundle.entry ?? []).flatMap((e) => (e.resource ? [e.resource] : [])));
      url = bundle.link?.find((l) => l.relation === 'next')?.url;
    }
    return out;
  };

  /** What the import wrote for the organization, by type (ids), read through FHIR as its client. */
  const written = async (token: string): Promise<Record<string, string[]>> => {
    const types = ['Patient', 'DocumentReference', 'Observation', 'Immunization', 'Condition', 'Provenance'];
    const out: Record<string, string[]> = {};
    for (const t of types) {
      out[t] = (await fhirAll(t, token)).map((r) => r.id as string).sort();
    }
    return out;
  };

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
    importId = id;
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

  it('files every readable document through the intake pipeline: DocumentReferences and facts readable through FHIR', async () => {
    const progress = await finished(importId);
    // Patient 1's second document is damaged in the archive: recorded as failed, the others filed.
    const expected = archive.documents - 1;
    expect(progress).toMatchObject({
      status: 'completed',
      patients: { total: 3, done: 3 },
      documents: { total: archive.documents, done: archive.documents, created: expected, failed: 1, rejected: 0 },
    });
    expect(progress.resources as number).toBeGreaterThan(expected);
    const problems = progress.problems as { path: string; status: string; reason: string }[];
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ status: 'failed', reason: expect.any(String) });

    const reader = await gw.clientOf('msp-import', ['system/*.rs']);
    const docs = (await fhirAll('DocumentReference', reader.token)) as DocumentReference[];
    expect(docs).toHaveLength(expected);
    // One Patient per archive patient (matched by INS across their documents), each with their documents.
    const patients = (await fhirAll('Patient', reader.token)) as Patient[];
    expect(patients).toHaveLength(3);
    const byIns = new Map(
      patients.map((pt) => [pt.identifier?.find((i) => i.system === 'urn:oid:1.2.250.1.213.1.4.10')?.value, pt.id]),
    );
    for (const [n, p] of archive.patients.entries()) {
      const pid = byIns.get(p.ins);
      expect(pid).toBeDefined();
      const theirs = docs.filter((d) => d.subject?.reference === `Patient/${pid}`);
      expect(theirs).toHaveLength(p.documents.length - (n === 1 ? 1 : 0));
    }
    // The CDA ids are kept: every filed CDA document is found by its uniqueId.
    const cdaIds = new Set(docs.map((d) => d.masterIdentifier?.value));
    const filedCda = archive.patients.flatMap((p, n) =>
      p.documents.filter((d, i) => d.kind !== 'PDF' && !(n === 1 && i === 1)).map((d) => d.uniqueId),
    );
    for (const u of filedCda) {
      expect([...cdaIds].some((v) => v !== undefined && (v === u || v.endsWith(u)))).toBe(true);
    }
    // Facts: the CR-BIO results and the vaccinations, each on one of the archive's patients.
    const observations = (await fhirAll('Observation', reader.token)) as Observation[];
    const immunizations = (await fhirAll('Immunization', reader.token)) as Immunization[];
    expect(observations.length).toBeGreaterThanOrEqual(3);
    expect(immunizations.length).toBeGreaterThanOrEqual(3);
    const ids = new Set([...byIns.values()].map((id) => `Patient/${id}`));
    for (const o of observations) expect(ids.has(o.subject?.reference ?? '')).toBe(true);
    for (const i of immunizations) expect(ids.has(i.patient.reference ?? '')).toBe(true);
  });

  it('resumed after a crash between filing and recording, files nothing twice', async () => {
    const reader = await gw.clientOf('msp-import-resume', ['system/*.rs']);
    expect((await fhirAll('DocumentReference', reader.token)).length).toBe(0);
    const own = await gw.clientOf('msp-import', ['system/*.rs']);
    const before = await written(own.token);
    // The worst moment of a crash: the documents are filed but the import had not recorded it yet.
    const pool = gw.core.db.pool;
    const reset = await pool.query(
      `UPDATE intake_import_entry SET status = 'pending', finished_at = NULL, resources = 0
        WHERE import_id = $1 AND kind IN ('cda', 'pdf') AND status = 'created' AND unit IN (
          SELECT unit FROM intake_import_entry WHERE import_id = $1 AND unit > 0 GROUP BY unit ORDER BY unit LIMIT 2)`,
      [importId],
    );
    expect(reset.rowCount).toBeGreaterThanOrEqual(4);
    await pool.query(`UPDATE intake_import SET status = 'running', finished_at = NULL WHERE id = $1`, [importId]);
    // The gateway restarts on the same database: its worker takes the unfinished import up again.
    const databaseUrl = gw.core.config.GW_DATABASE_URL ?? '';
    expect(databaseUrl).not.toBe('');
    // The operator client lives in the database: the restarted gateway does not bootstrap another.
    const operator = gw.admin;
    await gw.close();
    gw = await startTestGateway({
      GW_DATABASE_URL: databaseUrl,
      GW_INTAKE_IMPORT_DIR: join(dir, 'imports'),
      GW_WORKERS_INPROCESS: 'true',
    });
    admin = await gw.token(operator.clientId, operator.clientSecret);
    const progress = await finished(importId);
    expect(progress).toMatchObject({
      status: 'completed',
      documents: { done: archive.documents, created: archive.documents - 1, failed: 1 },
    });
    const again = await gw.clientOf('msp-import', ['system/*.rs']);
    expect(await written(again.token)).toEqual(before);
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
