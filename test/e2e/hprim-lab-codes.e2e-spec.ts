import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Observation } from '@medplum/fhirtypes';
import type { Extraction, ExtractionFiler, IntakeResult } from '@gw/ingest';
import type { Principal } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { send } from '../support/security';

/**
 * The lab code map API and the unknown-codes queue over real HTTP, the filer recording what the
 * pipeline is given (the real pipeline behind POST /ingest/documents: hprim-intake.e2e-spec.ts).
 */
class RecordingFiler implements ExtractionFiler {
  calls: { p: Principal; extractions: Extraction[] }[] = [];
  async ingestExtractions(p: Principal, extractions: Extraction[]): Promise<IntakeResult> {
    this.calls.push({ p, extractions });
    return Promise.resolve({ status: 'created', outcome: { resourceType: 'OperationOutcome', issue: [] } });
  }
}

const FILE = readFileSync(join(__dirname, '../fixtures/hprim/biomed-2-patients.hpr'));

describe('HPRIM lab code maps (HTTP)', () => {
  let gw: TestGateway;
  let msp: { org: string; token: string };
  let other: { org: string; token: string };
  const filer = new RecordingFiler();

  beforeAll(async () => {
    gw = await startTestGateway();
    gw.core.hprim.useFiler(filer);
    const client = async (name: string): Promise<{ org: string; token: string }> => {
      const res = await send(gw.baseUrl, 'POST', '/fhir/Organization', {
        token: await gw.token(),
        body: { resourceType: 'Organization', name },
      });
      const org = `Organization/${res.json<{ id: string }>().id}`;
      return { org, token: (await gw.clientOf(org.split('/')[1]!, ['system/*.cruds'])).token };
    };
    msp = await client('MSP HPRIM');
    other = await client('MSP Autre');
  }, 60_000);
  afterAll(async () => gw?.close());

  it('holds unmapped results, lists them for their structure only, files them after PUT of the mapping', async () => {
    const p: Principal = { clientId: 'msp', organization: msp.org, admin: false, scopes: ['system/*.cruds'] };
    await gw.core.hprim.ingest(p, FILE, { organization: msp.org, source: 'e2e' });
    const unmapped = await send(gw.baseUrl, 'GET', '/ingest/lab-codes/unmapped', { token: msp.token });
    expect(unmapped.status).toBe(200);
    expect(unmapped.json<{ code: string }[]>().map((u) => u.code)).toEqual([
      'ASPS',
      'CREA',
      'DFGE',
      'GLY',
      'HBA1C',
      'K',
      'LEUCO',
      'VXYZ',
    ]);
    const elsewhere = await send(gw.baseUrl, 'GET', '/ingest/lab-codes/unmapped', { token: other.token });
    expect(elsewhere.json()).toEqual([]);

    const put = await send(gw.baseUrl, 'PUT', '/ingest/lab-codes/750000001/GLY', {
      token: msp.token,
      body: { loinc: '2345-7', display: 'Glucose [Mass/volume] in Serum or Plasma', unit: 'mg/dL', factor: 100 },
    });
    expect(put.status).toBe(201);
    expect(put.json()).toMatchObject({
      mapping: { lab: '750000001', code: 'GLY', loinc: '2345-7', unit: 'mg/dL', factor: 100 },
      filed: { parts: 1, results: 1, failed: 0 },
    });
    const refiled = filer.calls.at(-1)!.extractions[0]!;
    expect(refiled.document.version).toBe(2);
    const glucose = refiled.resources
      .map((r) => r.resource)
      .find((r) => r.resourceType === 'Observation') as Observation;
    expect(glucose).toMatchObject({
      code: { coding: [{ code: '2345-7' }, { code: 'GLY' }] },
      valueQuantity: { value: 132 },
    });

    const again = await send(gw.baseUrl, 'PUT', '/ingest/lab-codes/750000001/GLY', {
      token: msp.token,
      body: { loinc: '2345-7', display: 'Glucose' },
    });
    expect(again.status).toBe(200);
    expect(again.json()).toMatchObject({ filed: { parts: 0, results: 0 } });

    const list = await send(gw.baseUrl, 'GET', '/ingest/lab-codes/750000001', { token: msp.token });
    expect(list.json()).toMatchObject({ organization: msp.org, codes: [{ code: 'GLY', display: 'Glucose' }] });
    // Another structure has its own (empty) map of the same lab.
    const theirs = await send(gw.baseUrl, 'GET', '/ingest/lab-codes/750000001', { token: other.token });
    expect(theirs.json()).toMatchObject({ organization: other.org, codes: [] });
    expect(gw.logs.join('')).not.toMatch(/DUBOIS|LEGRAND|261057505612350/);
  });

  it('refuses an invalid mapping with an OperationOutcome naming each field', async () => {
    const res = await send(gw.baseUrl, 'PUT', '/ingest/lab-codes/750000001/CREA', {
      token: msp.token,
      body: { loinc: '2160-1', display: '', unit: 'µmol/L', factor: -1 },
    });
    expect(res.status).toBe(400);
    expect(res.json<{ issue: { expression: string[] }[] }>().issue.map((i) => i.expression[0])).toEqual([
      'loinc',
      'display',
      'unit',
      'factor',
    ]);
  });

  it('lets a structure edit its own maps only; an operator any structure’s', async () => {
    const body = { loinc: '2160-0', display: 'Creatinine [Mass/volume] in Serum or Plasma' };
    const path = `/ingest/lab-codes/750000001/CREA?organization=${msp.org}`;
    expect((await send(gw.baseUrl, 'PUT', path, { token: other.token, body })).status).toBe(403);
    expect(
      (await send(gw.baseUrl, 'GET', `/ingest/lab-codes/unmapped?organization=${msp.org}`, { token: other.token }))
        .status,
    ).toBe(403);
    const byAdmin = await send(gw.baseUrl, 'PUT', path, { token: await gw.token(), body });
    expect(byAdmin.status).toBe(201);
    expect(byAdmin.json()).toMatchObject({ filed: { results: 1 } });
    const del = await send(gw.baseUrl, 'DELETE', '/ingest/lab-codes/750000001/CREA', { token: msp.token });
    expect(del.status).toBe(204);
    expect((await send(gw.baseUrl, 'DELETE', '/ingest/lab-codes/750000001/CREA', { token: msp.token })).status).toBe(
      404,
    );
  });
});
