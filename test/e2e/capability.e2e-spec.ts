import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

/** A value of the right shape for a search parameter type (the point is acceptance, not matches). */
const SAMPLE: Record<string, string> = {
  token: 'x',
  string: 'x',
  date: 'ge2020-01-01',
  reference: 'Patient/x',
  uri: 'http://example.org/x',
  number: '1',
  quantity: '1',
};

describe('the CapabilityStatement says what the server really does', () => {
  let gw: TestGateway;
  let token: string;
  let resources: CapabilityStatementRestResource[];

  beforeAll(async () => {
    gw = await startTestGateway();
    token = await gw.token();
    resources =
      ((await (await fetch(`${gw.fhirUrl}/metadata`)).json()) as CapabilityStatement).rest?.[0].resource ?? [];
  });
  afterAll(async () => gw.close());

  it.each(['Patient', 'Encounter', 'Observation', 'Task'])(
    'accepts every advertised %s search parameter under Prefer: handling=strict',
    async (type) => {
      const params = resources.find((r) => r.type === type)?.searchParam ?? [];
      expect(params.length).toBeGreaterThan(10);
      const refused: string[] = [];
      for (const p of params) {
        const res = await fetch(
          `${gw.fhirUrl}/${type}?${encodeURIComponent(p.name)}=${encodeURIComponent(SAMPLE[p.type] ?? 'x')}`,
          {
            headers: { authorization: `Bearer ${token}`, prefer: 'handling=strict' },
          },
        );
        if (res.status !== 200) {
          refused.push(`${p.name} (${p.type}): ${res.status}`);
        }
      }
      expect(refused).toEqual([]);
    },
  );

  it('advertises the includes and reverse includes that work', async () => {
    const patient = resources.find((r) => r.type === 'Patient');
    expect(patient?.searchRevInclude).toEqual(
      expect.arrayContaining(['Encounter:subject', 'Observation:subject', 'CareTeam:subject']),
    );
    expect(resources.find((r) => r.type === 'Encounter')?.searchInclude).toEqual(
      expect.arrayContaining(['Encounter:subject']),
    );
    for (const inc of ['_revinclude=Encounter:subject', '_revinclude=CareTeam:subject']) {
      const res = await fetch(`${gw.fhirUrl}/Patient?${inc}`, {
        headers: { authorization: `Bearer ${token}`, prefer: 'handling=strict' },
      });
      expect([inc, res.status]).toEqual([inc, 200]);
    }
  });

  it('refuses, under strict handling, a parameter it does not advertise', async () => {
    const res = await fetch(`${gw.fhirUrl}/Patient?phonetic=martin`, {
      headers: { authorization: `Bearer ${token}`, prefer: 'handling=strict' },
    });
    expect(res.status).toBe(400);
    expect(resources.find((r) => r.type === 'Patient')?.searchParam?.map((p) => p.name)).not.toContain('phonetic');
  });

  it('advertises the instance operations, and each answers at its advertised place', async () => {
    const measure = resources.find((r) => r.type === 'Measure');
    expect(measure?.operation).toEqual([
      { name: 'evaluate-measure', definition: 'http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure' },
      { name: 'care-gaps', definition: 'http://hl7.org/fhir/OperationDefinition/Measure-care-gaps' },
    ]);
    // An unknown Measure: the operation exists (404 OperationOutcome naming the Measure, not an unknown route).
    const res = await fetch(
      `${gw.fhirUrl}/Measure/no-such-measure/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31`,
      {
        headers: { authorization: `Bearer ${token}` },
      },
    );
    const body = (await res.json()) as { resourceType: string; issue?: { diagnostics?: string }[] };
    expect([res.status, body.resourceType]).toEqual([404, 'OperationOutcome']);
    expect(JSON.stringify(body.issue)).toContain('no-such-measure');
    const gaps = await fetch(`${gw.fhirUrl}/Measure/$care-gaps?measureId=no-such-measure`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(gaps.status).toBe(404);
  });
});
