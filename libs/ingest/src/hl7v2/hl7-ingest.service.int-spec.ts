import { resolve } from 'node:path';
import { Hl7Message } from '@medplum/core';
import { Pool } from 'pg';
import pino from 'pino';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions } from '@gw/fhir';
import { FhirRepository, OrganizationAccessPolicy } from '@gw/store';
import type { Principal } from '@gw/store';
import { createTestDatabase, migrateAll } from '@gw/testing/database';
import { adt, controlId, nir, uniqueId } from '@gw/testing/hl7';
import type { AdtOptions, PatientOptions } from '@gw/testing/hl7';
import { Hl7IngestService } from './hl7-ingest.service';
import type { ReceiveResult } from './hl7-ingest.service';

const ADMIN: Principal = { clientId: 'spec-admin', organization: 'Organization/gateway', admin: true, scopes: [] };
const MLLP = { transport: 'mllp' } as const;
/** A source that answers AA to event types it does not take (unknownEvents = ignore). */
const LENIENT = { app: 'LENIENT', facility: 'CH-L' };

/** The ACK as the sender reads it: MSA-1, MSA-2 and each ERR (ERR-2 location, ERR-3.1 code, ERR-4 severity, ERR-8 text). */
function read(result: ReceiveResult) {
  const ack = Hl7Message.parse(result.ack.toString('utf8'));
  return {
    code: ack.getSegment('MSA')?.getField(1)?.toString(),
    answers: ack.getSegment('MSA')?.getField(2)?.toString(),
    errors: ack.getAllSegments('ERR').map((e) => ({
      location: e.getField(2)?.toString() ?? '',
      code: e.getComponent(3, 1),
      severity: e.getField(4)?.toString() ?? '',
      text: e.getField(8)?.toString() ?? '',
    })),
  };
}

function patient(extra: Partial<PatientOptions> = {}): PatientOptions {
  return {
    ipp: uniqueId('IPP'),
    birthName: 'MARTIN',
    birthGivens: ['JULES'],
    birthDate: '19550301',
    sex: 'M',
    ...extra,
  };
}

/** An admission (A01) of a new patient in a new stay. */
function admission(opts: Partial<AdtOptions> = {}): string {
  return adt('A01', {
    controlId: controlId('ING'),
    patient: patient(),
    visit: { visitNumber: uniqueId('V'), patientClass: 'I', admitDate: '20250312090000' },
    movement: { id: uniqueId('M'), date: '20250312090000' },
    ...opts,
  });
}

describe('Hl7IngestService.handle: the ACK of each outcome (PostgreSQL)', () => {
  let pool: Pool;
  let repo: FhirRepository;
  let service: Hl7IngestService;

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('ingest') });
    await migrateAll(pool);
    loadFhirDefinitions();
    const profiles = ProfileRegistry.fromDirectory(resolve(__dirname, '../../../../fhir-profiles'));
    repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy(), profiles);
    service = new Hl7IngestService(pool, repo, { acceptUnknownSources: false, logger: pino({ level: 'silent' }) });
    const hospital = await repo.create({ resourceType: 'Organization', name: 'CHU X' }, { principal: ADMIN });
    await service.sources.create({
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-X',
      organization: `Organization/${hospital.id}`,
    });
    await service.sources.create({
      sendingApplication: LENIENT.app,
      sendingFacility: LENIENT.facility,
      organization: `Organization/${hospital.id}`,
      unknownEvents: 'ignore',
    });
  });
  afterAll(async () => pool.end());

  const handle = (er7: string | Buffer): Promise<ReceiveResult> =>
    service.handle(typeof er7 === 'string' ? Buffer.from(er7, 'utf8') : er7, MLLP);
  const ledgerRow = async (r: ReceiveResult) => service.ledger.read(r.messageId as number);
  const storedPatients = async (ipp: string): Promise<number> =>
    (await pool.query("SELECT 1 FROM resource WHERE resource_type = 'Patient' AND content::text LIKE $1", [`%${ipp}%`]))
      .rowCount ?? 0;

  it('rejects bytes that are not HL7 (AR, ERR 100) and keeps them in the ledger', async () => {
    const result = await handle('GET / HTTP/1.1\r\n\r\n');
    expect(result).toMatchObject({ ackCode: 'AR', status: 'rejected' });
    expect(read(result).errors).toEqual([
      expect.objectContaining({
        code: '100',
        severity: 'E',
        text: expect.stringContaining('must start with an MSH segment'),
      }),
    ]);
    expect(await ledgerRow(result)).toMatchObject({
      status: 'rejected',
      controlId: expect.stringMatching(/^unidentified:/),
    });
  });

  it('rejects a message without MSH-10 (AR naming MSH-10)', async () => {
    const result = await handle(admission({ controlId: '' }));
    expect(result.ackCode).toBe('AR');
    expect(read(result).errors).toEqual([expect.objectContaining({ location: 'MSH^1^10^1', code: '101' })]);
  });

  it('rejects an unknown sending system when unknown sources are not accepted (AR naming MSH-3), writing nothing', async () => {
    const er7 = admission({ app: 'STRANGER', facility: 'NOWHERE' });
    const result = await handle(er7);
    expect(result.ackCode).toBe('AR');
    expect(read(result).errors).toEqual([
      expect.objectContaining({
        location: 'MSH^1^3^1',
        text: expect.stringContaining('Unknown sending system STRANGER/NOWHERE'),
      }),
    ]);
    expect(await service.sources.find('STRANGER', 'NOWHERE')).toBeUndefined();
    expect(await ledgerRow(result)).toMatchObject({ status: 'rejected', resources: [] });
  });

  it('rejects an unsupported message type (AR naming MSH-9), or accepts and ignores it when its source says so', async () => {
    const lab = { patient: patient(), messageType: 'ORU^R01^ORU_R01' };
    const rejected = await handle(adt('A01', { ...lab, controlId: controlId('ORU') }));
    expect(rejected).toMatchObject({ ackCode: 'AR', status: 'rejected' });
    expect(read(rejected).errors).toEqual([expect.objectContaining({ location: 'MSH^1^9^1^1', code: '200' })]);

    const ignored = await handle(adt('A01', { ...lab, controlId: controlId('ORU'), ...LENIENT }));
    expect(ignored).toMatchObject({ ackCode: 'AA', status: 'ignored' });
    expect(read(ignored).errors).toEqual([]);
    expect(await ledgerRow(ignored)).toMatchObject({
      status: 'ignored',
      event: 'ORU^R01',
      error: expect.stringContaining('Unsupported message type ORU'),
    });
  });

  it('answers AE with an ERR naming the field when the content cannot be applied, and writes nothing', async () => {
    const who = patient();
    const result = await handle(admission({ patient: who, visit: { visitNumber: null } }));
    expect(result).toMatchObject({ ackCode: 'AE', status: 'error' });
    expect(read(result).errors).toEqual([
      expect.objectContaining({
        location: expect.stringMatching(/^PV1\^1\^19/),
        code: '101',
        text: expect.stringContaining('PV1-19'),
      }),
    ]);
    expect(await ledgerRow(result)).toMatchObject({ status: 'error', event: 'ADT^A01', resources: [] });
    expect(await storedPatients(who.ipp)).toBe(0);
  });

  it('accepts an admission (AA answering its MSH-10) once its resources and its ledger row are committed', async () => {
    const id = controlId('ING');
    const who = patient();
    const result = await handle(admission({ controlId: id, patient: who }));
    expect(result).toMatchObject({ ackCode: 'AA', status: 'processed' });
    expect(read(result)).toEqual({ code: 'AA', answers: id, errors: [] });
    const row = await ledgerRow(result);
    expect(row).toMatchObject({ status: 'processed', controlId: id, event: 'ADT^A01' });
    expect(row?.resources).toEqual(
      expect.arrayContaining([expect.stringMatching(/^Patient\//), expect.stringMatching(/^Encounter\//)]),
    );
    for (const ref of row?.resources ?? []) {
      const [type, rid] = ref.split('/') as [string, string];
      expect(await repo.readSystem(type, rid)).toBeDefined();
    }
    expect(await storedPatients(who.ipp)).toBe(1);
  });

  it('answers a replayed message with the original ACK and records it as a duplicate', async () => {
    const er7 = admission();
    const first = await handle(er7);
    const again = await handle(er7);
    expect(again).toMatchObject({ ackCode: 'AA', status: 'duplicate' });
    expect(again.ack.equals(first.ack)).toBe(true);
    expect(await ledgerRow(again)).toMatchObject({ status: 'duplicate', duplicateOf: first.messageId });
  });

  it('processes a reused MSH-10 with other content as a new message, naming the earlier one', async () => {
    const id = controlId('REUSE');
    const first = await handle(admission({ controlId: id }));
    const second = await handle(admission({ controlId: id }));
    expect(second).toMatchObject({ ackCode: 'AA', status: 'processed' });
    expect(second.messageId).not.toBe(first.messageId);
    expect(await ledgerRow(second)).toMatchObject({ status: 'processed', reuseOf: first.messageId });
  });

  it('accepts a message whose INS fails its key check, with a warning (ERR severity W) on PID-3', async () => {
    const ins = nir('1', '55', '03', '75', '156', '321');
    const wrongKey = ins.slice(0, 13) + String((Number(ins.slice(13)) % 97) + 1).padStart(2, '0');
    const result = await handle(admission({ patient: patient({ ins: wrongKey, identityStatus: ['VALI'] }) }));
    expect(result).toMatchObject({ ackCode: 'AA', status: 'processed' });
    expect(read(result).errors).toEqual([
      {
        location: 'PID^1^3^2^1',
        code: '102',
        severity: 'W',
        text: expect.stringMatching(/^PID-3\[2\]\.1: INS-NIR key/),
      },
    ]);
    expect(result.ack.toString('utf8')).not.toContain(wrongKey);
    expect(await ledgerRow(result)).toMatchObject({
      status: 'processed',
      warning: expect.stringContaining('PID-3[2].1'),
    });
  });
});
