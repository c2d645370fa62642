import iconv from 'iconv-lite';
import { buildAck } from './ack';
import { foldStay } from './fhir-mapping';
import type { StoredMovement } from './fhir-mapping';
import { Hl7ContentError, decodeMessage, hl7DateTime, parseEr7, unescapeHl7 } from './hl7-text';
import { insKeyValid } from './pam-fr';
import { peekTarget } from './ingest-service';

const MSH = (charset: string): string => `MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A01^ADT_A01|3975|P|2.5^FRA^2.11|||||FRA|${charset}`;

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
    expect(decodeMessage(latin1, undefined)).toEqual({ text: expect.stringContaining('BÉGAUDEAU'), charset: 'ISO-8859-1' });
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

  it('checks the INS-NIR key, Corsica included', () => {
    expect(insKeyValid('279035121518989')).toBe(true);
    expect(insKeyValid('279035121518988')).toBe(false);
    const body = '1850322A12345';
    const key = String(97 - Number(BigInt(body.replace('2A', '19')) % 97n)).padStart(2, '0');
    expect(insKeyValid(body + key)).toBe(true);
  });
});

describe('ACK', () => {
  it('echoes MSH-10 in MSA-2, swaps sender and receiver and locates the error in ERR', () => {
    const target = peekTarget(Buffer.from(`${MSH('8859/1')}\rPID|1`))?.target;
    expect(target).toBeDefined();
    const ack = buildAck(target!, 'AE', 'ACK1', [{ location: { segment: 'PV1', field: 19 }, code: '101', text: 'PV1-19 missing | required' }]);
    const lines = ack.split('\r');
    expect(lines[0]).toMatch(/^MSH\|\^~\\&\|DPI\|CHU-X\|GAM\|CHU-X\|\d{14}\+0000\|\|ACK\^A01\^ACK\|ACK1\|P\|2\.5\^FRA\^2\.11\|{6}8859\/1$/);
    expect(lines[1]).toBe('MSA|AE|3975|PV1-19 missing \\F\\ required');
    expect(lines[2]).toBe('ERR||PV1^1^19^1|101^Required field missing^HL70357|E||||PV1-19 missing \\F\\ required');
  });
});

describe('foldStay', () => {
  const m = (id: string, trigger: string, start: string, extra: Partial<StoredMovement['data']> = {}, cancelled = false, seq = 0): StoredMovement => ({
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
    expect(inOrder).toMatchObject({ status: 'finished', start: '2024-03-06T11:00:00+01:00', end: '2024-03-09T10:00:00+01:00', discharged: true, modeSortie: '8' });
    expect(inOrder.locations.map((l) => [l.unit.code, l.end])).toEqual([['4012', '2024-03-07T09:00:00+01:00'], ['5000', '2024-03-09T10:00:00+01:00']]);
  });

  it('cancelled movements count for nothing: a cancelled discharge reopens, a cancelled admission cancels', () => {
    const admit = m('1', 'A01', '2024-03-06T11:00:00+01:00');
    expect(foldStay([admit, m('3', 'A03', '2024-03-09T10:00:00+01:00', {}, true)]).status).toBe('in-progress');
    expect(foldStay([{ ...admit, cancelled: true }]).status).toBe('cancelled');
    expect(foldStay([m('0', 'A05', '2024-03-05T08:00:00+01:00')]).status).toBe('planned');
    expect(foldStay([admit, m('4', 'A21', '2024-03-07T08:00:00+01:00')]).status).toBe('onleave');
  });
});
