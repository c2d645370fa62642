import type { Bundle, OperationOutcome, Patient, Practitioner, PractitionerRole, Task } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { Stays, TestSmtp, eventually, mailbox } from '../support/exchange';
import { createOrganization, finess, registerSource, rpps, search, uniqueId } from '../support/hl7';

const RPPS_SYSTEM = 'https://rpps.esante.gouv.fr';
const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';

interface Res<T> {
  status: number;
  body: T;
}

/** A FHIR call with a given client's token and extra headers (If-None-Exist). */
async function fhir<T = Record<string, unknown>>(
  gw: TestGateway,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Res<T>> {
  const res = await fetch(`${gw.fhirUrl}/${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/fhir+json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

const outcomeText = (o: unknown): string =>
  ((o as OperationOutcome).issue ?? []).map((i) => i.details?.text ?? '').join(' ');

describe('one shared directory: Practitioners and Organizations across organizations', () => {
  let gw: TestGateway;
  let smtp: TestSmtp;
  let msp: { token: string };
  let other: { token: string };
  let hospital: string;
  const stamp = uniqueId('D');
  const stays = new Stays(() => gw, stamp);

  beforeAll(async () => {
    smtp = new TestSmtp();
    await smtp.start();
    gw = await startTestGateway({
      GW_MSS_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      GW_MSS_FROM: 'passerelle@gw-test.mssante.fr',
      GW_MSS_SMTP_INSECURE: 'true',
      GW_EXCHANGE_MAX_DISCHARGE_AGE: '36500d',
      GW_EXCHANGE_BACKOFF_MS: '300',
    });
    msp = await gw.clientOf('msp-annuaire', ['system/*.cruds']);
    other = await gw.clientOf('cds-voisin', ['system/*.cruds']);
    hospital = await createOrganization(gw, 'CHU Annuaire', finess('75000301'));
    await registerSource(gw, {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-X',
      organization: `Organization/${hospital}`,
      name: 'CHU Annuaire',
    });
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await smtp?.stop();
  });

  it('a hospital naming a registered GP (ROL ODRP, same RPPS) references the one Practitioner, whose mailbox gets the discharge e-mail once an operator vouched for it', async () => {
    const gpRpps = rpps('1000090001');
    const address = `dr.annuaire.${stamp.toLowerCase()}@medecin.mssante.fr`;
    const registered = await fhir<Practitioner>(gw, msp.token, 'POST', 'Practitioner', {
      resourceType: 'Practitioner',
      identifier: [{ system: RPPS_SYSTEM, value: gpRpps }],
      name: [{ family: 'ANNUAIRE', given: ['Claire'] }],
      telecom: [mailbox(address)],
    });
    expect(registered.status).toBe(201);

    const s = stays.stay({}, { gp: { rpps: gpRpps, family: 'AUTRE-NOM', given: 'C' } });
    await s.send('A01', { date: '20261120100000' });
    const enc = await stays.encounterOf(s.visit);
    const found = await search<Practitioner>(gw, 'Practitioner', { identifier: `${RPPS_SYSTEM}|${gpRpps}` });
    expect(found.map((p) => p.id)).toEqual([registered.body.id]);
    // The feed did not rename nor take over the entry the MSP registered.
    expect([found[0].meta?.versionId, found[0].name?.[0].family, found[0].telecom?.[0].value]).toEqual([
      '1',
      'ANNUAIRE',
      address,
    ]);
    const patient = (await search<Patient>(gw, 'Patient', { _id: enc.subject.reference.split('/')[1] }))[0];
    expect(patient.generalPractitioner?.map((g) => g.reference)).toEqual([`Practitioner/${registered.body.id}`]);

    await s.send('A03', { date: '20261122150000', exitMode: '8' });
    // The MSP's own mailbox claim is not verified (neither the directory import nor an operator wrote
    // it): the MT keeps its Task, without an e-mail, and the Task says why.
    const task = await eventually(async () => (await search<Task>(gw, 'Task', { focus: `Encounter/${enc.id}` }))[0]);
    expect(task.statusReason?.text).toContain('non vérifiée');
    expect(smtp.to(address)).toHaveLength(0);

    // An operator confirms the mailbox (writes the entry): the next discharge reaches it.
    const vouched = await fhir<Practitioner>(gw, await gw.token(), 'PUT', `Practitioner/${registered.body.id}`, {
      ...found[0],
    });
    expect(vouched.status).toBe(200);
    const next = stays.stay({}, { gp: { rpps: gpRpps, family: 'AUTRE-NOM', given: 'C' } });
    await next.send('A01', { date: '20261120100000' });
    await next.send('A03', { date: '20261122150000', exitMode: '8' });
    const mails = await eventually(async () => (smtp.to(address).length > 0 ? smtp.to(address) : undefined), 30_000);
    expect(mails).toHaveLength(1);
  });

  it('a structure cannot change a Practitioner another organization registered (403 that says why), its mailbox included', async () => {
    const gp = await fhir<Practitioner>(gw, msp.token, 'POST', 'Practitioner', {
      resourceType: 'Practitioner',
      identifier: [{ system: RPPS_SYSTEM, value: rpps('1000090002') }],
      telecom: [mailbox('dr.two@medecin.mssante.fr')],
    });
    expect(gp.status).toBe(201);
    const hijack = await fhir<OperationOutcome>(gw, other.token, 'PUT', `Practitioner/${gp.body.id}`, {
      ...gp.body,
      telecom: [mailbox('pirate@cds.mssante.fr')],
    });
    expect(hijack.status).toBe(403);
    expect(hijack.body.resourceType).toBe('OperationOutcome');
    expect(outcomeText(hijack.body)).toMatch(/shared directory entry maintained by another organization.*mailbox/);
    const viaBundle = await fhir<Bundle>(gw, other.token, 'POST', '', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: { ...gp.body, telecom: [] }, request: { method: 'PUT', url: `Practitioner/${gp.body.id}` } }],
    });
    expect(viaBundle.status).toBe(403);
    expect((await fhir(gw, other.token, 'DELETE', `Practitioner/${gp.body.id}`)).status).toBe(403);
    const still = await fhir<Practitioner>(gw, other.token, 'GET', `Practitioner/${gp.body.id}`);
    expect([still.status, still.body.meta?.versionId, still.body.telecom?.[0].value]).toEqual([
      200,
      '1',
      'dr.two@medecin.mssante.fr',
    ]);
    // Its owner still can.
    expect(
      (await fhir(gw, msp.token, 'PUT', `Practitioner/${gp.body.id}`, { ...gp.body, name: [{ family: 'DEUX' }] }))
        .status,
    ).toBe(200);
  });

  it('a structure manages its own PractitionerRoles (role mailbox included) on a shared Practitioner, and only those', async () => {
    const gp = await fhir<Practitioner>(gw, msp.token, 'POST', 'Practitioner', {
      resourceType: 'Practitioner',
      identifier: [{ system: RPPS_SYSTEM, value: rpps('1000090003') }],
    });
    const role = {
      resourceType: 'PractitionerRole',
      active: true,
      practitioner: { reference: `Practitioner/${gp.body.id}` },
      organization: { reference: 'Organization/cds-voisin' },
      telecom: [mailbox('dr.three@cds-voisin.mssante.fr')],
    };
    const created = await fhir<PractitionerRole>(gw, other.token, 'POST', 'PractitionerRole', role);
    expect(created.status).toBe(201);
    expect(
      (
        await fhir(gw, other.token, 'PUT', `PractitionerRole/${created.body.id}`, {
          ...created.body,
          telecom: [mailbox('secretariat@cds-voisin.mssante.fr')],
        })
      ).status,
    ).toBe(200);
    const foreign = await fhir<OperationOutcome>(gw, msp.token, 'PUT', `PractitionerRole/${created.body.id}`, {
      ...created.body,
      telecom: [],
    });
    expect(foreign.status).toBe(403);
    const forOther = await fhir<OperationOutcome>(gw, other.token, 'POST', 'PractitionerRole', {
      ...role,
      organization: { reference: 'Organization/msp-annuaire' },
    });
    expect(forOther.status).toBe(403);
    expect(outcomeText(forOther.body)).toMatch(/own roles/);
  });

  it("every client reads and finds directory entries, and still not another organization's patients", async () => {
    const gpRpps = rpps('1000090004');
    const gp = await fhir<Practitioner>(gw, msp.token, 'POST', 'Practitioner', {
      resourceType: 'Practitioner',
      identifier: [{ system: RPPS_SYSTEM, value: gpRpps }],
    });
    expect((await fhir(gw, other.token, 'GET', `Practitioner/${gp.body.id}`)).status).toBe(200);
    const byIdNat = await fhir<Bundle>(
      gw,
      other.token,
      'GET',
      `Practitioner?identifier=${encodeURIComponent(`${IDNATPS}|8${gpRpps}`)}`,
    );
    expect(byIdNat.status).toBe(200);
    const byRpps = await fhir<Bundle>(
      gw,
      other.token,
      'GET',
      `Practitioner?identifier=${encodeURIComponent(`${RPPS_SYSTEM}|${gpRpps}`)}`,
    );
    expect(byRpps.body.entry?.map((e) => e.resource?.id)).toEqual([gp.body.id]);
    expect((await fhir(gw, other.token, 'GET', `Organization/${hospital}`)).status).toBe(200);
    const patient = await fhir<Patient>(gw, msp.token, 'POST', 'Patient', {
      resourceType: 'Patient',
      name: [{ family: 'PRIVE' }],
      generalPractitioner: [{ reference: `Practitioner/${gp.body.id}` }],
    });
    expect((await fhir(gw, other.token, 'GET', `Patient/${patient.body.id}`)).status).toBe(404);
    const hisPatients = await fhir<Bundle>(
      gw,
      other.token,
      'GET',
      `Patient?general-practitioner=Practitioner/${gp.body.id}`,
    );
    expect(hisPatients.body.entry ?? []).toEqual([]);
  });

  it('a conditional create by RPPS from two organizations, even at once and in two identifier forms, gives one Practitioner; a plain duplicate is 409', async () => {
    const gpRpps = rpps('1000090005');
    const body = {
      resourceType: 'Practitioner',
      identifier: [
        { system: RPPS_SYSTEM, value: gpRpps },
        { system: IDNATPS, value: `8${gpRpps}` },
      ],
    };
    const [a, b] = await Promise.all([
      fhir<Practitioner>(gw, msp.token, 'POST', 'Practitioner', body, {
        'if-none-exist': `identifier=${RPPS_SYSTEM}|${gpRpps}`,
      }),
      fhir<Practitioner>(gw, other.token, 'POST', 'Practitioner', body, {
        'if-none-exist': `identifier=${IDNATPS}|8${gpRpps}`,
      }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    expect(a.body.id).toBe(b.body.id);
    expect(await search(gw, 'Practitioner', { identifier: `${RPPS_SYSTEM}|${gpRpps}` })).toHaveLength(1);
    const dup = await fhir<OperationOutcome>(gw, other.token, 'POST', 'Practitioner', {
      resourceType: 'Practitioner',
      identifier: [{ system: IDNATPS, value: `8${gpRpps}` }],
    });
    expect(dup.status).toBe(409);
    expect(outcomeText(dup.body)).toContain(
      `Practitioner/${a.body.id} already holds the national identifier 8${gpRpps}`,
    );
  });
});
