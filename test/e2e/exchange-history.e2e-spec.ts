import type { Task } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { eventually } from '../support/exchange';
import {
  ackCode,
  adt,
  call,
  createOrganization,
  finess,
  hl7Date,
  nir,
  registerSource,
  rpps,
  search,
  sendMllp,
  uniqueId,
} from '../support/hl7';

const DAY = 86_400_000;

/** Old discharges (history loads, late feeds) are stored and evented, but never routed as fresh ones. */
describe('exchange engine: historic discharges (default GW_EXCHANGE_MAX_DISCHARGE_AGE)', () => {
  let gw: TestGateway;
  const stamp = uniqueId('H');
  let seq = 0;

  beforeAll(async () => {
    gw = await startTestGateway({ GW_MLLP_ENABLED: 'true' });
    const hospital = await createOrganization(gw, 'CH Historique', finess('75000201'));
    await registerSource(gw, {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-X',
      organization: `Organization/${hospital}`,
      name: 'CH Historique',
    });
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
  });

  /** A01 then A03 over MLLP for a stay that ended `daysAgo` days ago; returns the Encounter id. */
  async function stay(daysAgo: number): Promise<string> {
    seq += 1;
    const admit = hl7Date(new Date(Date.now() - (daysAgo + 3) * DAY));
    const discharge = hl7Date(new Date(Date.now() - daysAgo * DAY));
    const visit = `${stamp}V${seq}`;
    const patient = {
      ipp: `${stamp}P${seq}`,
      ins: nir('2', '61', '04', '75', '156', String(300 + seq)),
      birthName: 'HISTO',
      birthGivens: ['Rose'],
      birthDate: '19610412',
      sex: 'F' as const,
      identityStatus: ['VALI', 'QUAL'],
    };
    const gp = { rpps: rpps(String(1000000500 + seq).slice(0, 10)), family: 'DURAND', given: 'Anne' };
    for (const [event, date] of [
      ['A01', admit],
      ['A03', discharge],
    ] as const) {
      const ack = await sendMllp(
        gw.mllpPort,
        adt(event, {
          controlId: `${visit}${event}`,
          messageDate: date,
          patient,
          gp,
          visit: {
            visitNumber: visit,
            patientClass: 'I',
            admitDate: admit,
            ...(event === 'A03' ? { dischargeDate: discharge } : {}),
          },
          movement: { id: `${visit}-${event}`, date, uf: { name: 'CARDIO', code: 'UF100' } },
        }),
      );
      expect(ackCode(ack)).toBe('AA');
    }
    const [enc] = await eventually(async () => {
      const found = await search<{ id: string; status: string }>(gw, 'Encounter', { identifier: visit });
      return found[0]?.status === 'finished' ? found : undefined;
    });
    return enc!.id;
  }

  async function routingOf(encounterId: string): Promise<string> {
    return eventually(async () => {
      const res = await call<Array<{ resource: string; routing: string | null }>>(
        gw,
        'GET',
        '/admin/events?type=encounter.discharged&_count=1000',
      );
      return res.body.find((e) => e.resource === `Encounter/${encounterId}`)?.routing ?? undefined;
    });
  }

  async function taskFor(encounterId: string): Promise<Task | undefined> {
    return (await search<Task>(gw, 'Task', { focus: `Encounter/${encounterId}` }))[0];
  }

  it('stores an A03 whose discharge is two years old, records the event as historic and creates no task', async () => {
    const enc = await stay(730);
    expect(await routingOf(enc)).toBe('historic');
    expect(await taskFor(enc)).toBeUndefined();
  });

  it('still routes a discharge of yesterday (a follow-up task is created)', async () => {
    const enc = await stay(1);
    expect(await routingOf(enc)).not.toBe('historic');
    expect(await taskFor(enc)).toBeDefined();
  });

  it('does not route finished hospital stays loaded through FHIR as history (a back-file, a Synthea bundle)', async () => {
    const patient = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/Patient`, {
      resourceType: 'Patient',
      name: [{ family: 'Ancien', given: ['Paul'] }],
      birthDate: '1930-05-02',
    });
    const old = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/Encounter`, {
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
      subject: { reference: `Patient/${patient.body.id}` },
      period: { start: '1951-03-01T08:00:00+01:00', end: '1951-03-09T11:00:00+01:00' },
    });
    expect(old.status).toBe(201);
    // A date-only end gives the event no instant: the rule reads the Encounter's period instead.
    const dateOnly = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/Encounter`, {
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
      subject: { reference: `Patient/${patient.body.id}` },
      period: { start: '2019-06-01', end: '2019-06-04' },
    });
    expect(dateOnly.status).toBe(201);
    for (const id of [old.body.id, dateOnly.body.id]) {
      expect(await routingOf(id)).toBe('historic');
      expect(await taskFor(id)).toBeUndefined();
    }
  });
});
