import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Bundle, Communication, Resource } from '@medplum/fhirtypes';
import { parseSearchRequest } from '@gw/fhir';
import type { Principal } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { tempDir } from '../support/temp-dir';

const NO_PARAMS = { unsupported: [], lenient: false };

/**
 * The équipe-de-soins policy in a running gateway: the structure writes over HTTP as a system
 * client (unchanged rights); persons (built as Principals, their tokens come from the token
 * exchange) read through the gateway's own store and bulk export.
 */
describe('équipe-de-soins sharing (running gateway)', () => {
  let gw: TestGateway;
  let msp: { clientId: string; token: string };
  let patient: string;
  let group: string;
  const person = (org: string, role: string, health: boolean, profession?: string): Principal => ({
    clientId: msp.clientId,
    organization: `Organization/${org}`,
    admin: false,
    scopes: ['system/*.cruds'],
    person: { practitioner: `Practitioner/${role}-pr`, role: `PractitionerRole/${role}`, health, profession },
  });

  const post = async <T extends Resource>(resource: T): Promise<string> => {
    const res = await fetch(`${gw.fhirUrl}/${resource.resourceType}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${msp.token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(resource),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as Resource).id as string;
  };

  beforeAll(async () => {
    gw = await startTestGateway();
    msp = await gw.clientOf('msp-share', ['system/*.cruds']);
    patient = await post({ resourceType: 'Patient', name: [{ family: 'Equipe' }] });
    const subject = { reference: `Patient/${patient}` };
    await post({ resourceType: 'Observation', status: 'final', code: { text: 'glycémie' }, subject });
    await post<Communication>({
      resourceType: 'Communication',
      status: 'completed',
      subject,
      payload: [{ contentString: 'compte rendu confidentiel' }],
    });
    group = await post({ resourceType: 'Group', type: 'person', actual: true, member: [{ entity: subject }] });
  });
  afterAll(async () => gw?.close());

  it('keeps the system client rights over HTTP and writes the projection of its Patient', async () => {
    const res = await fetch(`${gw.fhirUrl}/Observation?subject=Patient/${patient}&_total=accurate`, {
      headers: { authorization: `Bearer ${msp.token}` },
    });
    expect(((await res.json()) as Bundle).total).toBe(1);
    const rows = await gw.core.db.pool.query('SELECT grantee, basis FROM care_access WHERE source = $1', [
      `Patient/${patient}`,
    ]);
    expect(rows.rows).toEqual([{ grantee: 'Organization/msp-share', basis: 'structure-team' }]);
  });

  it('lets a structure nurse read and search, and shows nothing to a person of another structure', async () => {
    const query = parseSearchRequest('Observation', [['_total', 'accurate']], { defaultCount: 20, maxCount: 100 });
    const nurse = person('msp-share', 'nurse', true, '60');
    expect((await gw.core.repo.search(nurse, query, true)).total).toBe(1);
    expect((await gw.core.repo.read(nurse, 'Patient', patient)).id).toBe(patient);
    const outsider = person('elsewhere', 'other-nurse', true, '60');
    expect((await gw.core.repo.search(outsider, query, true)).total).toBe(0);
    await expect(gw.core.repo.read(outsider, 'Patient', patient)).rejects.toMatchObject({ category: 'not-found' });
    await expect(
      gw.core.bulk.kickOff(outsider, group, NO_PARAMS, `${gw.fhirUrl}/Group/${group}/$export`),
    ).rejects.toMatchObject({ category: 'not-found' });
  });

  it('exports to the secretary the demographics and communication headers, never clinical content', async () => {
    const secretary = person('msp-share', 'secretary', false);
    const id = await gw.core.bulk.kickOff(secretary, group, NO_PARAMS, `${gw.fhirUrl}/Group/${group}/$export`);
    // Another person of the same software may not follow or fetch it.
    await expect(gw.core.bulk.status(person('msp-share', 'nurse', true, '60'), id, 'x')).rejects.toMatchObject({
      category: 'not-found',
    });
    let status = await gw.core.bulk.status(secretary, id, 'x');
    for (let i = 0; i < 100 && status.state === 'in-progress'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await gw.core.bulk.status(secretary, id, 'x');
    }
    expect(status.state).toBe('completed');
    const manifest = status.state === 'completed' ? (status.manifest as { output: { type: string }[] }) : undefined;
    const output = (manifest?.output ?? []).map((o) => o.type);
    // The Group is the structure's own list; the Observation (clinical) is not exported.
    expect(output.sort()).toEqual(['Communication', 'Group', 'Patient']);
    const file = await gw.core.bulk.file(secretary, id, 'Communication.ndjson');
    const text = await readFile(file.path, 'utf8');
    expect(text).not.toContain('confidentiel');
    expect(text).toContain('SUBSETTED');
  });

  it('refuses to start with an invalid GW_SHARING_MATRIX_FILE and names the problem', async () => {
    const bad = join(tempDir('matrix-'), 'matrix.json');
    await writeFile(bad, JSON.stringify({ professions: { '21': ['everything'] }, otherHealth: [], nonHealth: [] }));
    await expect(startTestGateway({ GW_SHARING_MATRIX_FILE: bad })).rejects.toThrow(
      /is not a valid sharing matrix: professions\.21\.0/,
    );
  });
});
