import type { Bundle, Measure, MeasureReport, OperationOutcome } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call } from '../support/hl7';

const ROSP = [
  'rosp-depistage-colorectal',
  'rosp-depistage-sein',
  'rosp-diabete-fond-oeil',
  'rosp-diabete-hba1c',
  'rosp-grippe-16-64-risque',
  'rosp-grippe-65',
];

/** The catalogue is versioned by effectivePeriod: the ROSP Measures end on 2025-12-31 (FMT from 2026). */
describe('versioned indicator catalogue', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway({ GW_INDICATOR_NOISE: 'false' });
  });
  afterAll(async () => gw.close());

  it('every Measure carries its effectivePeriod and its legal source; GET /fhir/Measure?effective=leD&effective=geD lists those in force on D', async () => {
    const all = await call<Bundle<Measure>>(gw, 'GET', `${gw.fhirUrl}/Measure?_count=100`);
    for (const e of all.body.entry ?? []) {
      expect(e.resource?.effectivePeriod?.start).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(e.resource?.relatedArtifact?.[0]?.display).toBeTruthy();
    }
    const rosp = all.body.entry?.find((e) => e.resource?.id === 'rosp-grippe-65')?.resource;
    expect(rosp?.effectivePeriod).toEqual({ start: '2017-01-01', end: '2025-12-31' });
    expect(rosp?.relatedArtifact?.[0]?.url).toBe(
      'https://www.legifrance.gouv.fr/eli/arrete/2016/10/20/AFSS1629881A/jo/texte',
    );
    const ids = async (q: string) =>
      ((await call<Bundle<Measure>>(gw, 'GET', `${gw.fhirUrl}/Measure?${q}&_count=100`)).body.entry ?? [])
        .map((e) => e.resource?.id)
        .sort();
    const in2026 = await ids('effective=le2026-06-01&effective=ge2026-06-01');
    expect(in2026.filter((id) => id?.startsWith('rosp-'))).toEqual([]);
    expect(in2026).toEqual(expect.arrayContaining(['cpts-sans-medecin-traitant', 'cpts-suivi-sortie-7j']));
    expect(
      (await ids('effective=le2025-06-01&effective=ge2025-06-01')).filter((id) => id?.startsWith('rosp-')),
    ).toEqual(ROSP);
  });

  it('$evaluate-measure over a period ending after a Measure ends: 422 naming the Measures in force then', async () => {
    const res = await call<OperationOutcome>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/rosp-grippe-65/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31`,
    );
    expect(res.status).toBe(422);
    expect(res.body.resourceType).toBe('OperationOutcome');
    const text = res.body.issue?.[0]?.diagnostics ?? res.body.issue?.[0]?.details?.text ?? '';
    expect(text).toContain('Measure/rosp-grippe-65 is not in force on 2026-12-31');
    // Its successor: the FMT Measure that names it as predecessor, not every Measure in force.
    expect(text.split('in force on that day:')[1]?.trim()).toBe('Measure/fmt-grippe-65');
    expect(text.split('in force on that day:')[1]).not.toContain('Measure/rosp-');
    expect(res.body.issue?.[0]?.expression).toEqual(['periodEnd']);
    // The last day in force is fine; so is an open-ended Measure in 2026.
    const last = await call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/rosp-grippe-65/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31`,
    );
    expect(last.status).toBe(200);
    const cpts = await call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/cpts-sans-medecin-traitant/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31`,
    );
    expect(cpts.status).toBe(200);
  });

  it('without a period, a Measure no longer in force is evaluated over its last 12 months in force', async () => {
    const res = await call<MeasureReport>(gw, 'GET', `${gw.fhirUrl}/Measure/rosp-grippe-65/$evaluate-measure`);
    expect(res.status).toBe(200);
    const today = new Date();
    const lastMonthEnd = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 0)).toISOString().slice(0, 10);
    expect(res.body.period).toEqual(
      lastMonthEnd > '2025-12-31' ? { start: '2025-01-01', end: '2025-12-31' } : expect.anything(),
    );
  });

  it('the monthly run evaluates the catalogue in force on the period end', async () => {
    await gw.core.repo.update(
      'Organization',
      'msp-v',
      {
        resourceType: 'Organization',
        id: 'msp-v',
        name: 'MSP V',
        type: [
          {
            coding: [{ system: 'https://gateway.fr-primary-care.org/fhir/CodeSystem/organization-type', code: 'MSP' }],
          },
        ],
      },
      { principal: { clientId: 'test', organization: 'Organization/gateway', admin: true, scopes: [] } },
    );
    const y2026 = await gw.core.indicators.storeMonthlyReports('2026-10-31');
    const y2025 = await gw.core.indicators.storeMonthlyReports('2025-12-31');
    expect([y2026.subjects, y2025.subjects]).toEqual([1, 1]);
    const inForce = (day: string) => gw.core.indicators.catalogue.inForce(day).map((m) => m.id);
    expect(inForce('2026-10-31').filter((id) => id.startsWith('rosp-'))).toEqual([]);
    expect(inForce('2025-12-31')).toEqual(expect.arrayContaining(ROSP));
    expect(y2026.reports).toBe(inForce('2026-10-31').length);
    expect(y2025.reports).toBe(inForce('2025-12-31').length);
  });
});
