import { resolve } from 'node:path';
import type { Communication, Practitioner, Task } from '@medplum/fhirtypes';
import { DirectoryImporter } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { Stays, TestSmtp, eventually, mailbox } from '../support/exchange';
import { call, createOrganization, finess, registerSource, rpps, search, uniqueId } from '../support/hl7';

const RPPS_SYSTEM = 'https://rpps.esante.gouv.fr';
const ATTACKER = 'attacker@b.mssante.fr';
const FIXTURES = resolve(__dirname, '../fixtures/directory');
/** A professional of the directory fixture, with the listed personal mailbox helene.lambert@medecin.mssante.fr. */
const LAMBERT = '10099000019';

/**
 * The shared directory holds one Practitioner per RPPS, whoever registers it first. A structure
 * registering a professional the directory does not know yet, with a mailbox it controls, must not
 * receive the discharges (patient identity, stay) that a hospital's feed routes to that professional.
 */
describe('security: discharge e-mails go only to mailboxes the gateway can vouch for', () => {
  let gw: TestGateway;
  let smtp: TestSmtp;
  let structureB: { token: string };
  const stays = new Stays(() => gw, uniqueId('M'));

  beforeAll(async () => {
    smtp = new TestSmtp();
    await smtp.start();
    gw = await startTestGateway({
      GW_MSS_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      GW_MSS_FROM: 'passerelle@gw-test.mssante.fr',
      GW_MSS_SMTP_INSECURE: 'true',
      GW_EXCHANGE_MAX_DISCHARGE_AGE: '36500d',
    });
    const hospital = await createOrganization(gw, 'CHU Mailbox', finess('75000501'));
    await registerSource(gw, {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-X',
      organization: `Organization/${hospital}`,
      name: 'CHU Mailbox',
    });
    const b = await createOrganization(gw, 'Cabinet B');
    structureB = await gw.clientOf(b, ['system/*.cruds']);
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await smtp?.stop();
  });

  function practitionerWith(rppsValue: string, address: string): Record<string, unknown> {
    return {
      resourceType: 'Practitioner',
      identifier: [{ system: RPPS_SYSTEM, value: rppsValue }],
      name: [{ family: 'DUPONT', given: ['Marc'] }],
      telecom: [mailbox(address)],
    };
  }

  /** A01 + A03 of a new stay whose médecin traitant (ROL ODRP) is `gpRpps`; the discharge's Task once written. */
  async function discharge(gpRpps: string): Promise<{ task: Task; patient: string }> {
    const s = stays.stay({}, { gp: { rpps: gpRpps, family: 'DUPONT', given: 'Marc' } });
    await s.send('A01', { date: '20261120100000' });
    const enc = await stays.encounterOf(s.visit);
    await s.send('A03', { date: '20261122150000', exitMode: '8' });
    const task = await eventually(
      async () => (await search<Task>(gw, 'Task', { focus: `Encounter/${enc.id}` }))[0],
      30_000,
    );
    return { task, patient: enc.subject.reference };
  }

  async function deliveriesTo(address: string): Promise<number> {
    const res = await gw.core.db.pool.query<{ n: string }>(
      'SELECT count(*)::text AS n FROM exchange_delivery WHERE destination = $1',
      [address],
    );
    return Number(res.rows[0]?.n);
  }

  it('sends nothing to the mailbox of a Practitioner another structure registered; the Task and Communication say why', async () => {
    const x = rpps('2000000101');
    const created = await call<Practitioner>(
      gw,
      'POST',
      `${gw.fhirUrl}/Practitioner`,
      practitionerWith(x, ATTACKER),
      structureB.token,
    );
    expect(created.status).toBe(201);
    // The client cannot vouch for its own mailbox either: its copy of the trust tag is dropped.
    expect(JSON.stringify(created.body.meta?.tag ?? [])).not.toContain('mailbox-trust');

    const { task, patient } = await discharge(x);
    // The hospital's feed named the structure's Practitioner (one per RPPS): routing by reference stays.
    expect(task.owner?.reference).toBe(`Practitioner/${created.body.id}`);
    expect(task.businessStatus?.coding?.[0]?.code).toBe('no-recipient');
    expect(task.statusReason?.text).toContain('non vérifiée');
    const [comm] = await search<Communication>(gw, 'Communication', { subject: patient });
    expect(comm?.recipient?.[0]?.reference).toBe(`Practitioner/${created.body.id}`);
    expect(comm?.status).toBe('not-done');
    expect(comm?.statusReason?.text).toContain('non vérifiée');
    expect(await deliveriesTo(ATTACKER)).toBe(0);
    expect(smtp.to(ATTACKER)).toHaveLength(0);
    expect(gw.logs.join('').includes(ATTACKER)).toBe(false);
  });

  it('sends to the mailbox an operator wrote, which another structure may not change', async () => {
    const y = rpps('2000000102');
    const own = 'dr.y@medecin.mssante.fr';
    const created = await call<Practitioner>(gw, 'POST', `${gw.fhirUrl}/Practitioner`, practitionerWith(y, own));
    expect(created.status).toBe(201);
    const hijack = await call(
      gw,
      'PUT',
      `${gw.fhirUrl}/Practitioner/${created.body.id}`,
      { ...created.body, telecom: [mailbox(ATTACKER)] },
      structureB.token,
    );
    expect(hijack.status).toBe(403);

    const { task } = await discharge(y);
    expect(task.businessStatus?.coding?.[0]?.code).not.toBe('no-recipient');
    await eventually(async () => smtp.to(own).length === 1, 30_000);
    expect(smtp.to(ATTACKER)).toHaveLength(0);
  });

  it('sends to the directory import’s mailbox once the import takes over the Practitioner a structure registered', async () => {
    const created = await call<Practitioner>(
      gw,
      'POST',
      `${gw.fhirUrl}/Practitioner`,
      practitionerWith(LAMBERT, ATTACKER),
      structureB.token,
    );
    expect(created.status).toBe(201);
    await new DirectoryImporter(gw.core.repo).run({
      psFile: resolve(FIXTURES, 'PS_LibreAcces_Personne_activite_v1.txt'),
      mssFile: resolve(FIXTURES, 'Extraction_Correspondance_MSSante_v1.txt'),
      progressMs: 0,
    });

    await discharge(LAMBERT);
    await eventually(async () => smtp.to('helene.lambert@medecin.mssante.fr').length === 1, 30_000);
    expect(smtp.to(ATTACKER)).toHaveLength(0);
  });
});
