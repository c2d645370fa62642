import { randomBytes } from 'node:crypto';
import type { Patient } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import {
  FACILITY_OID,
  FS,
  RawMllp,
  VT,
  ackCode,
  ackControlId,
  adt,
  call,
  controlId,
  createOrganization,
  encode,
  frame,
  ledger,
  registerSource,
  search,
  sendMllp,
  uniqueId,
} from '../support/hl7';
import type { PatientOptions } from '../support/hl7';

const IPP_SYSTEM = `urn:oid:${FACILITY_OID}`;
const APP = 'GAM';
const FACILITY = 'CHU-T';

describe('HL7 v2 MLLP transport faults (raw sockets)', () => {
  let gw: TestGateway;
  let sourceId: string;
  let ignoringSourceId: string;
  const sockets: RawMllp[] = [];

  beforeAll(async () => {
    gw = await startTestGateway();
    const org = await createOrganization(gw, 'CHU T');
    sourceId = await registerSource(gw, {
      sendingApplication: APP,
      sendingFacility: FACILITY,
      organization: `Organization/${org}`,
    });
    ignoringSourceId = await registerSource(gw, {
      sendingApplication: 'LABO',
      sendingFacility: FACILITY,
      organization: `Organization/${org}`,
      unknownEvents: 'ignore',
    });
  });
  afterEach(async () => {
    await Promise.all(sockets.splice(0).map((s) => s.close()));
  });
  afterAll(async () => gw?.close());

  async function open(port = gw.mllpPort): Promise<RawMllp> {
    const s = await RawMllp.open(port);
    sockets.push(s);
    return s;
  }

  function patient(extra: Partial<PatientOptions> = {}): PatientOptions {
    return {
      ipp: uniqueId('T'),
      birthName: 'FAURÉ',
      birthGivens: ['GABRIEL'],
      birthDate: '19450512',
      sex: 'M',
      ...extra,
    };
  }

  /** An identity feed message (A28) of this source. */
  function a28(p = patient(), id = controlId('T')): string {
    return adt('A28', { app: APP, facility: FACILITY, controlId: id, patient: p });
  }

  async function patients(ipp: string): Promise<Patient[]> {
    return search<Patient>(gw, 'Patient', { identifier: `${IPP_SYSTEM}|${ipp}` });
  }

  /** The gateway still answers over HTTP and over a new MLLP connection. */
  async function expectAlive(): Promise<void> {
    expect((await fetch(`${gw.baseUrl}/health/live`)).status).toBe(200);
    const p = patient();
    const ack = await sendMllp(gw.mllpPort, a28(p));
    expect(ackCode(ack)).toBe('AA');
    expect(await patients(p.ipp)).toHaveLength(1);
  }

  it('answers binary garbage with AR or closes the connection, and keeps serving', async () => {
    const garbage = randomBytes(8192).filter((b) => b !== VT && b !== FS);
    const framed = await open();
    await framed.write(frame(Buffer.from(garbage)));
    const ack = await framed.ack(0, 5000);
    if (ack) {
      expect(ackCode(ack)).toBe('AR');
    } else {
      expect(framed.closed).toBe(true);
    }

    const unframed = await open();
    await unframed.write(Buffer.from(randomBytes(4096)));
    await unframed.write(Buffer.from([FS, 0x0d]));
    const second = await unframed.ack(0, 3000);
    if (second) {
      expect(ackCode(second)).toBe('AR');
    }
    await expectAlive();
  });

  it('discards a frame cut by a dropped connection: nothing written, the next connection works', async () => {
    const p = patient();
    const id = controlId('CUT');
    const bytes = encode(a28(p, id), 'utf8');
    const before = await ledger(gw, { source: sourceId });

    const cut = await open();
    await cut.write(Buffer.concat([Buffer.from([VT]), bytes.subarray(0, Math.floor(bytes.length * 0.6))]));
    cut.destroy();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await patients(p.ipp)).toHaveLength(0);
    expect(await ledger(gw, { source: sourceId })).toHaveLength(before.length);

    // The whole message, same MSH-10, is a new message (not a duplicate of anything).
    const next = await open();
    await next.write(frame(bytes));
    const ack = await next.ack(0);
    expect(ack && ackCode(ack)).toBe('AA');
    expect(ack && ackControlId(ack)).toBe(id);
    expect(await patients(p.ipp)).toHaveLength(1);
    expect((await ledger(gw, { source: sourceId })).filter((r) => r.controlId === id).map((r) => r.status)).toEqual([
      'processed',
    ]);
  });

  it('answers a 10 MB message AR with its MSH-10 and keeps the connection usable', async () => {
    const p = patient();
    const id = controlId('BIG');
    const big = adt('A28', {
      app: APP,
      facility: FACILITY,
      controlId: id,
      patient: p,
      extraSegments: [`NTE|1||${'x'.repeat(10 * 1024 * 1024)}`],
    });
    const s = await open();
    await s.send(big);
    const ack = await s.ack(0, 30000);
    expect(ack && ackCode(ack)).toBe('AR');
    expect(ack && ackControlId(ack)).toBe(id);
    expect(await patients(p.ipp)).toHaveLength(0);

    // docs/hl7v2.md: the frame is discarded up to its end and the connection stays usable.
    const small = patient();
    await s.send(a28(small));
    const next = await s.ack(1, 10000);
    expect(next && ackCode(next)).toBe('AA');
    expect(await patients(small.ipp)).toHaveLength(1);
    expect((await fetch(`${gw.baseUrl}/health/live`)).status).toBe(200);
  });

  it('answers two messages pipelined in one write with two ACKs, in order', async () => {
    const p = patient({ birthName: 'RAVEL' });
    const [id1, id2] = [controlId('P'), controlId('P')];
    const first = adt('A28', { app: APP, facility: FACILITY, controlId: id1, patient: p });
    const second = adt('A31', {
      app: APP,
      facility: FACILITY,
      controlId: id2,
      patient: { ...p, usedName: 'DEBUSSY', usedGiven: 'Claude' },
    });
    const s = await open();
    await s.write(Buffer.concat([frame(encode(first, 'utf8')), frame(encode(second, 'utf8'))]));
    const frames = await s.waitFrames(2);
    expect(frames).toHaveLength(2);
    const [a1, a2] = [await s.ack(0), await s.ack(1)];
    expect([a1 && ackControlId(a1), a2 && ackControlId(a2)]).toEqual([id1, id2]);
    expect([a1 && ackCode(a1), a2 && ackCode(a2)]).toEqual(['AA', 'AA']);
    const [found] = await patients(p.ipp);
    expect(found.name?.find((n) => n.use === 'usual')?.family).toBe('DEBUSSY');
  });

  it('reassembles a frame written in several pieces', async () => {
    const p = patient({ birthName: 'SATIÉ' });
    const id = controlId('SPL');
    const bytes = frame(encode(a28(p, id), 'utf8'));
    const s = await open();
    const cuts = [0, 1, 40, Math.floor(bytes.length / 2), bytes.length - 1, bytes.length];
    for (let i = 0; i < cuts.length - 1; i++) {
      await s.write(bytes.subarray(cuts[i], cuts[i + 1]));
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    const ack = await s.ack(0);
    expect(ack && [ackCode(ack), ackControlId(ack)]).toEqual(['AA', id]);
    expect(s.frames).toHaveLength(1);
    expect((await patients(p.ipp))[0]?.name?.[0]?.family).toBe('SATIÉ');
  });

  it('rejects an unknown source (AR) when unknown sources are not accepted, and records it', async () => {
    const p = patient();
    const id = controlId('UNK');
    const ack = await sendMllp(
      gw.mllpPort,
      adt('A28', { app: 'INCONNU', facility: 'NULLE-PART', controlId: id, patient: p }),
    );
    expect(ackCode(ack)).toBe('AR');
    expect(ackControlId(ack)).toBe(id);
    expect(await search<Patient>(gw, 'Patient', { identifier: p.ipp })).toHaveLength(0);
    expect((await ledger(gw, { status: 'rejected' })).filter((r) => r.controlId === id)).toHaveLength(1);

    // Once an administrator registers it, the same message (same MSH-10) is processed.
    const org = await createOrganization(gw, 'Clinique inconnue');
    await registerSource(gw, {
      sendingApplication: 'INCONNU',
      sendingFacility: 'NULLE-PART',
      organization: `Organization/${org}`,
    });
    const retry = await sendMllp(
      gw.mllpPort,
      adt('A28', { app: 'INCONNU', facility: 'NULLE-PART', controlId: id, patient: p }),
    );
    expect(ackCode(retry)).toBe('AA');
    expect(await search<Patient>(gw, 'Patient', { identifier: p.ipp })).toHaveLength(1);
  });

  it('rejects unsupported message types and events (AR), or ignores them (AA, ignored) when the source says so', async () => {
    const p = patient();
    const a08 = controlId('A08');
    let ack = await sendMllp(
      gw.mllpPort,
      adt('A08', { app: APP, facility: FACILITY, controlId: a08, patient: p, visit: { visitNumber: uniqueId('V') } }),
    );
    expect(ackCode(ack)).toBe('AR');
    expect(ackControlId(ack)).toBe(a08);
    expect(ack.getSegment('ERR')?.getComponent(3, 1)).toBe('201'); // HL7 table 0357: unsupported event code
    const oru = controlId('ORU');
    ack = await sendMllp(
      gw.mllpPort,
      adt('A28', { app: APP, facility: FACILITY, controlId: oru, patient: p, messageType: 'ORU^R01^ORU_R01' }),
    );
    expect(ackCode(ack)).toBe('AR');
    expect(ackControlId(ack)).toBe(oru);
    expect(ack.getSegment('ERR')?.getComponent(3, 1)).toBe('200'); // HL7 table 0357: unsupported message type
    expect(await patients(p.ipp)).toHaveLength(0);

    const ignored = controlId('IGN');
    ack = await sendMllp(
      gw.mllpPort,
      adt('A08', {
        app: 'LABO',
        facility: FACILITY,
        controlId: ignored,
        patient: p,
        visit: { visitNumber: uniqueId('V') },
      }),
    );
    expect(ackCode(ack)).toBe('AA');
    expect(ackControlId(ack)).toBe(ignored);
    expect(await patients(p.ipp)).toHaveLength(0);
    const rows = (await ledger(gw, { source: ignoringSourceId })).filter((r) => r.controlId === ignored);
    expect(rows.map((r) => r.status)).toEqual(['ignored']);
  });

  it('with GW_HL7_ACCEPT_UNKNOWN_SOURCES: registers an unknown sender bound to a new Organization; CIDR allow-list; idle timeout', async () => {
    const open2 = await startTestGateway({
      GW_HL7_ACCEPT_UNKNOWN_SOURCES: 'true',
      GW_MLLP_ALLOWED_IPS: '10.1.0.0/16, 127.0.0.0/8',
      GW_MLLP_IDLE_TIMEOUT_SECONDS: '1',
    });
    try {
      const p = patient();
      const ack = await sendMllp(
        open2.mllpPort,
        adt('A28', { app: 'NOUVEAU', facility: 'CLINIQUE-DU-LAC', patient: p }),
      );
      expect(ackCode(ack)).toBe('AA');
      const sources = (await call<Array<Record<string, unknown>>>(open2, 'GET', '/admin/hl7/sources')).body;
      const src = sources.find((x) => x.sendingApplication === 'NOUVEAU' && x.sendingFacility === 'CLINIQUE-DU-LAC');
      expect(src).toBeDefined();
      // The source is bound to the Organization created for it, named after MSH-4.
      const org = await call<{ name?: string }>(open2, 'GET', `${open2.fhirUrl}/${String(src?.organization)}`);
      expect({ status: org.status, name: org.body?.name }).toEqual({ status: 200, name: 'CLINIQUE-DU-LAC' });
      const [found] = await search<Patient>(open2, 'Patient', { identifier: `${IPP_SYSTEM}|${p.ipp}` });
      expect(found).toBeDefined();

      // A silent connection is closed after GW_MLLP_IDLE_TIMEOUT_SECONDS.
      const idle = await RawMllp.open(open2.mllpPort);
      sockets.push(idle);
      expect(await idle.waitClosed(500)).toBe(false);
      expect(await idle.waitClosed(4000)).toBe(true);
    } finally {
      await open2.close();
    }
  });

  it('disconnects at once a peer outside GW_MLLP_ALLOWED_IPS', async () => {
    const restricted = await startTestGateway({ GW_MLLP_ALLOWED_IPS: '10.0.0.1' });
    try {
      const s = await open(restricted.mllpPort);
      await s.send(a28()).catch(() => undefined);
      expect(await s.waitClosed(3000)).toBe(true);
      expect(s.frames).toHaveLength(0);
    } finally {
      await restricted.close();
    }
  });
});
