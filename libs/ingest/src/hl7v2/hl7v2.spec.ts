import iconv from 'iconv-lite';
import type { Patient } from '@medplum/fhirtypes';
import { RELIABILITY_EXTENSION, nirKey } from '@gw/fhir';
import { buildAck } from './ack.builder';
import { buildPatient, foldStay } from './adt.mapper';
import type { StoredMovement } from './adt.mapper';
import { Hl7ContentError, contentDigest, decodeMessage, hl7DateTime, parseEr7, unescapeHl7 } from './hl7-text';
import { readAdt, readHeader } from './pam-fr.reader';
import type { AdtMessage } from './pam-fr.reader';
import { isUnavailable, peekTarget } from './hl7-ingest.service';

const MSH = (charset: string): string =>
  `MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A01^ADT_A01|3975|P|2.5^FRA^2.11|||||FRA|${charset}`;

describe('HL7 text', () => {
  it('decodes HL7 escape sequences, hex included', () => {
    expect(unescapeHl7('DUPONT\\T\\FILS \\S\\ 1\\F\\2\\R\\3\\E\\')).toBe('DUPONT&FILS ^ 1|2~3\\');
    expect(unescapeHl7('ligne\\.br\\suite')).toBe('ligne\nsuite');
    expect(unescapeHl7('H\\XC3A9\\LÈNE')).toBe('HéLÈNE');
    expect(unescapeHl7('\\H\\gras\\N\\')).toBe('gras');
  });

  it('reads HL7 times as Europe/Paris local time, winter and summer', () => {
    expect(hl7DateTime('20240306110000', { segment: 'ZBE', field: 2 })).toBe('2024-03-06T11:00:00+01:00');
    expect(hl7DateTime('20240706110000', { segment: 'ZBE', field: 2 })).toBe('2024-07-06T11:00:00+02:00');
    expect(hl7DateTime('202407061100+0000', { segment: 'ZBE', field: 2 })).toBe('2024-07-06T11:00:00+00:00');
    expect(hl7DateTime('19790328', { segment: 'PID', field: 7 })).toBe('1979-03-28');
    expect(() => hl7DateTime('20240230', { segment: 'PID', field: 7 })).toThrow(Hl7ContentError);
    expect(() => hl7DateTime('yesterday', { segment: 'PID', field: 7 })).toThrow(/not an HL7 date/);
  });

  it('honours MSH-18, detects undeclared charsets and refuses a UTF-8 label on latin1 bytes', () => {
    const latin1 = iconv.encode(`${MSH('8859/1')}\rPID|1||1^^^X^PI||BÉGAUDEAU`, 'latin1');
    expect(decodeMessage(latin1, undefined)).toEqual({
      text: expect.stringContaining('BÉGAUDEAU'),
      charset: 'ISO-8859-1',
    });
    const undeclared = iconv.encode(`${MSH('')}\rPID|1||1^^^X^PI||HÉLÈNE`, 'latin1');
    expect(decodeMessage(undeclared, undefined).charset).toBe('ISO-8859-1');
    const lying = iconv.encode(`${MSH('UNICODE UTF-8')}\rPID|1||1^^^X^PI||HÉLÈNE`, 'latin1');
    expect(() => decodeMessage(lying, undefined)).toThrow(/not valid UTF-8/);
    expect(decodeMessage(lying, 'ISO-8859-1').text).toContain('HÉLÈNE');
    const euro = iconv.encode(`${MSH('8859/15')}\rPID|1||1^^^X^PI||ŒUVRE`, 'iso-8859-15');
    expect(decodeMessage(euro, undefined).text).toContain('ŒUVRE');
  });

  it('rejects text that is not an HL7 message', () => {
    expect(() => parseEr7('hello')).toThrow(Hl7ContentError);
    expect(() => parseEr7(`${MSH('')}\r\u0000\u0001garbage`)).toThrow(/not an HL7 segment/);
  });
});

describe('an INS that fails its checks (PID-3)', () => {
  const GOOD = `2790363220004${nirKey('2790363220004')}`;
  const BAD_KEY = `2790363220004${nirKey('2790363220004') === '90' ? '91' : '90'}`;
  const INS_OID = '1.2.250.1.213.1.4.10';
  const IPP_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.2.10000';

  function read(ins: string, status: string, authority = `ASIP-SANTE-INS-NIR&${INS_OID}&ISO`): AdtMessage {
    const pid = `PID|1||IPP1^^^CHU-X&1.2.250.1.71.4.2.2.10000&ISO^PI~${ins}^^^${authority}^INS||MARTIN^JULES^JULES^^^^L||19550301|M${'|'.repeat(24)}${status}`;
    const msg = parseEr7(
      `MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A31^ADT_A05|1|P|2.5^FRA^2.11\rEVN||20240306111154\r${pid}\rPV1|1|N`,
    );
    return readAdt(msg, readHeader(msg));
  }

  const qualified = (ins: string): Patient => ({
    resourceType: 'Patient',
    id: 'p1',
    identifier: [
      { use: 'usual', type: { coding: [{ code: 'PI' }] }, system: IPP_SYSTEM, value: 'IPP1' },
      { use: 'official', system: `urn:oid:${INS_OID}`, value: ins },
    ],
    extension: [{ url: RELIABILITY_EXTENSION, extension: [{ url: 'identityStatus', valueCoding: { code: 'QUAL' } }] }],
  });
  const statusOf = (p: Patient): string | undefined =>
    p.extension?.find((e) => e.url === RELIABILITY_EXTENSION)?.extension?.find((e) => e.url === 'identityStatus')
      ?.valueCoding?.code;
  const insOf = (p: Patient): string[] =>
    (p.identifier ?? []).filter((i) => i.system === `urn:oid:${INS_OID}`).map((i) => i.value ?? '');

  it('reads a valid INS-NIR as the INS and keeps PID-32', () => {
    const adt = read(GOOD, 'QUAL');
    expect(adt.patient.ins).toEqual({ value: GOOD, oid: INS_OID, kind: 'INS-NIR' });
    expect(adt.patient.identityStatus).toBe('QUAL');
    expect(adt.warnings).toEqual([]);
  });

  it('drops an INS-NIR with a wrong key, forces PROV and warns at PID-3 without repeating the value', () => {
    const adt = read(BAD_KEY, 'QUAL');
    expect(adt.patient.ins).toBeUndefined();
    expect(adt.patient.identityStatus).toBe('PROV');
    expect(adt.patient.insRejected).toEqual({ declaredStatus: 'QUAL' });
    expect(adt.patient.ipp?.value).toBe('IPP1');
    expect(adt.warnings).toEqual([
      {
        location: { segment: 'PID', field: 3, repetition: 2, component: 1 },
        code: '102',
        text: expect.stringContaining('key'),
      },
    ]);
    expect(adt.warnings[0].text).not.toContain(BAD_KEY);
    expect(adt.warnings[0].text).not.toContain(BAD_KEY.slice(0, 13));
  });

  it('drops an INS of the wrong format (102) or of an authority that is not an INS OID (103)', () => {
    expect(read('27903632200', 'VALI').warnings[0]).toMatchObject({ code: '102', location: { component: 1 } });
    const other = read(GOOD, 'VALI', 'CHU-X&1.2.250.1.71.4.2.2.10000&ISO');
    expect(other.warnings[0]).toMatchObject({
      code: '103',
      location: { segment: 'PID', field: 3, repetition: 2, component: 4 },
    });
    expect(other.patient).toMatchObject({ ins: undefined, identityStatus: 'PROV' });
  });

  it('a new patient gets no INS and a provisional identity', () => {
    const p = buildPatient(undefined, read(BAD_KEY, 'QUAL').patient, IPP_SYSTEM);
    expect(insOf(p)).toEqual([]);
    expect(statusOf(p)).toBe('PROV');
    expect(p.identifier?.map((i) => i.value)).toEqual(['IPP1']);
  });

  it('a known patient keeps its valid INS and its qualified identity; PID-32 PROV still downgrades', () => {
    const kept = buildPatient(qualified(GOOD), read(BAD_KEY, 'QUAL').patient, IPP_SYSTEM);
    expect(insOf(kept)).toEqual([GOOD]);
    expect(statusOf(kept)).toBe('QUAL');
    const downgraded = buildPatient(qualified(GOOD), read(BAD_KEY, 'PROV~DOUT').patient, IPP_SYSTEM);
    expect(insOf(downgraded)).toEqual([GOOD]);
    expect(statusOf(downgraded)).toBe('PROV');
  });

  it('a stored INS that is itself invalid is dropped rather than written back', () => {
    const p = buildPatient(qualified(BAD_KEY), read(BAD_KEY, 'QUAL').patient, IPP_SYSTEM);
    expect(insOf(p)).toEqual([]);
    expect(statusOf(p)).toBe('PROV');
  });

  it('a valid INS in a later message replaces the provisional identity', () => {
    const first = buildPatient(undefined, read(BAD_KEY, 'QUAL').patient, IPP_SYSTEM);
    const fixed = buildPatient(first, read(GOOD, 'QUAL').patient, IPP_SYSTEM);
    expect(insOf(fixed)).toEqual([GOOD]);
    expect(statusOf(fixed)).toBe('QUAL');
  });
});

describe('ACK', () => {
  it('echoes MSH-10 in MSA-2, swaps sender and receiver and locates the error in ERR', () => {
    const target = peekTarget(Buffer.from(`${MSH('8859/1')}\rPID|1`))?.target;
    expect(target).toBeDefined();
    const ack = buildAck(target!, 'AE', 'ACK1', [
      { location: { segment: 'PV1', field: 19 }, code: '101', text: 'PV1-19 missing | required' },
    ]);
    const lines = ack.split('\r');
    expect(lines[0]).toMatch(
      /^MSH\|\^~\\&\|DPI\|CHU-X\|GAM\|CHU-X\|\d{14}\+0000\|\|ACK\^A01\^ACK\|ACK1\|P\|2\.5\^FRA\^2\.11\|{6}8859\/1$/,
    );
    expect(lines[1]).toBe('MSA|AE|3975|PV1-19 missing \\F\\ required');
    expect(lines[2]).toBe('ERR||PV1^1^19^1|101^Required field missing^HL70357|E||||PV1-19 missing \\F\\ required');
  });

  it('an AA may carry warnings: ERR-4 severity W', () => {
    const target = peekTarget(Buffer.from(`${MSH('8859/1')}\rPID|1`))?.target;
    const ack = buildAck(target!, 'AA', 'ACK2', [
      {
        location: { segment: 'PID', field: 3, repetition: 2, component: 1 },
        code: '102',
        severity: 'W',
        text: 'PID-3[2].1: INS-NIR key',
      },
    ]);
    const lines = ack.split('\r');
    expect(lines[1]).toBe('MSA|AA|3975|Message processed with warnings (see ERR)');
    expect(lines[2]).toBe('ERR||PID^1^3^2^1|102^Data type error^HL70357|W||||PID-3[2].1: INS-NIR key');
  });
});

describe('foldStay', () => {
  const m = (
    id: string,
    trigger: string,
    start: string,
    extra: Partial<StoredMovement['data']> = {},
    cancelled = false,
    seq = 0,
  ): StoredMovement => ({
    movementId: id,
    trigger,
    cancelled,
    seq,
    data: { trigger, start, class: 'I', ufMed: { code: extra.ufMed?.code ?? '4012' }, ...extra },
  });

  it('gives the same stay whatever order the movements arrive in', () => {
    const movements = [
      m('1', 'A01', '2024-03-06T11:00:00+01:00', {}, false, 1),
      m('2', 'A02', '2024-03-07T09:00:00+01:00', { ufMed: { code: '5000' } }, false, 2),
      m('3', 'A03', '2024-03-09T10:00:00+01:00', { modeSortie: '8' }, false, 3),
    ];
    const inOrder = foldStay(movements);
    const reversed = foldStay([...movements].reverse().map((x, i) => ({ ...x, seq: i })));
    expect(reversed).toEqual(inOrder);
    expect(inOrder).toMatchObject({
      status: 'finished',
      start: '2024-03-06T11:00:00+01:00',
      end: '2024-03-09T10:00:00+01:00',
      discharged: true,
      modeSortie: '8',
    });
    expect(inOrder.locations.map((l) => [l.unit.code, l.end])).toEqual([
      ['4012', '2024-03-07T09:00:00+01:00'],
      ['5000', '2024-03-09T10:00:00+01:00'],
    ]);
  });

  it('cancelled movements count for nothing: a cancelled discharge reopens, a cancelled admission cancels', () => {
    const admit = m('1', 'A01', '2024-03-06T11:00:00+01:00');
    expect(foldStay([admit, m('3', 'A03', '2024-03-09T10:00:00+01:00', {}, true)]).status).toBe('in-progress');
    expect(foldStay([{ ...admit, cancelled: true }]).status).toBe('cancelled');
    expect(foldStay([m('0', 'A05', '2024-03-05T08:00:00+01:00')]).status).toBe('planned');
    expect(foldStay([admit, m('4', 'A21', '2024-03-07T08:00:00+01:00')]).status).toBe('onleave');
  });
});

describe('content digest (replay detection)', () => {
  const msg = 'MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20261120101500||ADT^A01^ADT_A01|MSG1|P|2.5\rPID|1||123^^^CHU-X^PI\r';

  it('ignores MSH-7 and the segment terminator style', () => {
    const d = contentDigest(Buffer.from(msg));
    expect(contentDigest(Buffer.from(msg.replace('20261120101500', '20261121000000')))).toBe(d);
    expect(contentDigest(Buffer.from(msg.replace(/\r/g, '\r\n')))).toBe(d);
  });

  it('differs when anything else differs, MSH-10 included', () => {
    const d = contentDigest(Buffer.from(msg));
    expect(contentDigest(Buffer.from(msg.replace('123^', '124^')))).not.toBe(d);
    expect(contentDigest(Buffer.from(msg.replace('|P|', '|T|')))).not.toBe(d);
  });
});

describe('isUnavailable (AR "send again" rather than AE)', () => {
  const pgError = (code: string): Error => Object.assign(new Error('x'), { code });
  it.each(['08006', '08001', '57P01', '57P02', '57P03', '53300', '40P01', '40001', 'ECONNREFUSED', 'ECONNRESET'])(
    'takes %s as the database being unavailable',
    (code) => expect(isUnavailable(pgError(code))).toBe(true),
  );
  it('takes node-postgres pool timeouts and dropped connections as unavailable', () => {
    expect(isUnavailable(new Error('timeout exceeded when trying to connect'))).toBe(true);
    expect(isUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
  });
  it.each(['22P02', '23505', '23502', '42P01', 'XX000'])('keeps %s (data or program error) an AE', (code) =>
    expect(isUnavailable(pgError(code))).toBe(false),
  );
});
