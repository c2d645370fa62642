import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import type { DiagnosticReport, Observation } from '@medplum/fhirtypes';
import { PATIENT_PLACEHOLDER } from '../intake/extraction';
import { hprimExtraction, labCodeSystem } from './hprim.mapper';
import type { LabCodeEntry } from './hprim.mapper';
import { HprimFormatError, looksLikeHprim, readHprim } from './hprim.reader';
import { isUcum, ucumOf } from './ucum';

const FIXTURES = join(__dirname, '../../../../test/fixtures/hprim');
const fixture = (name: string): Buffer => readFileSync(join(FIXTURES, name));

const observations = (e: { resources: { resource: { resourceType: string } }[] }): Observation[] =>
  e.resources.map((r) => r.resource).filter((r): r is Observation => r.resourceType === 'Observation');

describe('readHprim', () => {
  it('reads a windows-1252 file of two patients: header traits, results, notes, raw part bytes', () => {
    const body = fixture('biomed-2-patients.hpr');
    const file = readHprim(body);
    expect(file).toMatchObject({ charset: 'windows-1252', complete: true });
    expect(file.parts).toHaveLength(2);
    const [first, second] = file.parts;
    expect(first!.patient).toEqual({
      identifiers: [],
      birthFamily: 'DUBOIS-TEST',
      given: ['Hélène', 'Marie'],
      birthDate: '1961-05-12',
      ins: { value: '261057505612350', oid: '1.2.250.1.213.1.4.8' },
      sex: 'female',
    });
    expect(first).toMatchObject({ lab: '750000001', requestNumber: 'D24031500042', date: '2025-03-15T08:30:00+01:00' });
    expect(first!.results.map((r) => r.code)).toEqual(['HBA1C', 'GLY', 'CREA', 'DFGE', 'ASPS']);
    expect(first!.results[0]!.notes).toEqual(['Objectif thérapeutique à adapter selon le patient.']);
    expect(first!.results[1]!.alternate).toEqual({ value: '7,33', unit: 'mmol/l', low: '3,89', high: '6,11' });
    expect(first!.report.join('\n')).toContain('Hémoglobine glyquée');
    // Each part keeps its own bytes, in the file's charset, and the two make up the file.
    expect(iconv.decode(first!.raw, 'windows-1252')).toMatch(/^LAB24-0315-0042\r\n[\s\S]*\*{4}FIN\*{4}\r\n$/);
    expect(Buffer.concat([first!.raw, second!.raw]).toString('latin1')).toBe(
      body.toString('latin1').replace('****FINFICHIER****\r\n', ''),
    );
    expect(first!.digest).not.toBe(second!.digest);
    // TEX before any RES is a note on the whole report.
    expect(second!.notes).toEqual(['Prélèvement hémolysé: potassium sous réserve.']);
  });

  it('does not take an NIR as the INS when it is not the patient’s own (the insured person’s)', () => {
    const second = readHprim(fixture('biomed-2-patients.hpr')).parts[1]!;
    expect(second.patient.ins).toBeUndefined();
    expect(second.patient.sex).toBeUndefined();
    expect(second.warnings).toEqual([
      { location: 'line 31', text: expect.stringContaining('birth year/month differ') },
    ]);
    // Warnings never carry the NIR itself.
    expect(JSON.stringify(second.warnings)).not.toContain('15002330120');
  });

  it('reads a UTF-8 file with a BOM and LF line ends; an empty NIR is no INS and no warning', () => {
    const file = readHprim(fixture('calanques-utf8.hpr'));
    expect(file.charset).toBe('UTF-8');
    expect(file.parts[0]!.patient).toEqual({
      identifiers: [],
      birthFamily: 'MOREAU-TEST',
      given: ['Chloé'],
      birthDate: '1975-07-21',
    });
    expect(file.parts[0]).toMatchObject({ lab: 'LABORATOIRE DES CALANQUES TEST', date: '2025-04-02', warnings: [] });
  });

  it('refuses a file cut before ****FIN****, an empty one, and a part with a short header, naming the line', () => {
    const text = fixture('calanques-utf8.hpr').toString('utf8');
    const cut = text.slice(0, text.indexOf('****FIN****'));
    expect(() => readHprim(Buffer.from(cut))).toThrow(/starting at line 1 has no \*{4}FIN\*{4}/);
    expect(() => readHprim(Buffer.from(''))).toThrow(HprimFormatError);
    expect(() => readHprim(Buffer.from('REF\nNOM\nPRENOM\n****LAB****\nRES|x|X|N|1||||F\n****FIN****\n'))).toThrow(
      /line 1 has 3 header lines/,
    );
  });

  it('accepts a file without ****FINFICHIER**** (complete: false) and sniffs HPRIM apart from other text', () => {
    const text = fixture('calanques-utf8.hpr').toString('utf8').replace('****FINFICHIER****\n', '');
    expect(readHprim(Buffer.from(text)).complete).toBe(false);
    expect(looksLikeHprim(fixture('biomed-2-patients.hpr'))).toBe(true);
    expect(looksLikeHprim(Buffer.from('MSH|^~\\&|GAM|CHU\rPID|1||1'))).toBe(false);
    expect(looksLikeHprim(Buffer.from('<ClinicalDocument/>'))).toBe(false);
  });
});

describe('hprimExtraction', () => {
  const file = readHprim(fixture('biomed-2-patients.hpr'));
  const codes: Record<string, LabCodeEntry> = {
    HBA1C: { code: 'HBA1C', loinc: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood' },
    GLY: {
      code: 'GLY',
      loinc: '2345-7',
      display: 'Glucose [Mass/volume] in Serum or Plasma',
      unit: 'mg/dL',
      factor: 100,
    },
  };

  it('without a code map: every result with its local code, a DiagnosticReport, the part as the document', () => {
    const { extraction, unmapped } = hprimExtraction(file.parts[0]!, file.charset);
    expect(unmapped).toEqual([]);
    expect(extraction.neverCreatePatient).toBe(true);
    expect(extraction.document).toMatchObject({
      uniqueId: file.parts[0]!.digest,
      setId: file.parts[0]!.digest,
      version: 1,
      type: { system: 'http://loinc.org', code: '11502-2' },
      contentType: 'text/plain; charset=windows-1252',
      custodian: { identifier: { system: 'https://finess.esante.gouv.fr', value: '750000001' } },
    });
    expect(extraction.document.content.equals(file.parts[0]!.raw)).toBe(true);
    const obs = observations(extraction);
    expect(obs).toHaveLength(5);
    expect(obs[2]).toMatchObject({
      code: { coding: [{ system: labCodeSystem('750000001'), code: 'CREA', display: 'Créatinine' }] },
      valueQuantity: { value: 78, unit: 'umol/L', system: 'http://unitsofmeasure.org', code: 'umol/L' },
      referenceRange: [{ low: { value: 45, code: 'umol/L' }, high: { value: 90, code: 'umol/L' } }],
      interpretation: [{ coding: [{ code: 'N' }] }],
      subject: { reference: PATIENT_PLACEHOLDER },
      effectiveDateTime: '2025-03-15T08:30:00+01:00',
      status: 'final',
    });
    expect(obs[3]!.valueQuantity).toEqual({
      value: 90,
      comparator: '>',
      unit: 'mL/min/{1.73_m2}',
      system: 'http://unitsofmeasure.org',
      code: 'mL/min/{1.73_m2}',
    });
    expect(obs[4]).toMatchObject({ valueString: 'Limpide' });
    const report = extraction.resources.at(-1)!.resource as DiagnosticReport;
    expect(report.result).toHaveLength(5);
    expect(report.result!.map((r) => r.reference)).toEqual(extraction.resources.slice(0, 5).map((r) => r.fullUrl));
  });

  it('with a code map: LOINC + local code, the unit converted by the factor; unmapped results returned apart', () => {
    const { extraction, unmapped } = hprimExtraction(file.parts[0]!, file.charset, {
      codes: (c) => codes[c],
      version: 3,
    });
    expect(unmapped.map((r) => r.code)).toEqual(['CREA', 'DFGE', 'ASPS']);
    expect(extraction.document.version).toBe(3);
    const [hba1c, gly] = observations(extraction);
    expect(hba1c).toMatchObject({
      code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }, { code: 'HBA1C' }] },
      valueQuantity: { value: 7.2, code: '%' },
      interpretation: [{ coding: [{ code: 'H' }] }],
      note: [{ text: 'Objectif thérapeutique à adapter selon le patient.' }],
    });
    expect(gly).toMatchObject({
      valueQuantity: { value: 132, unit: 'mg/dL', code: 'mg/dL' },
      referenceRange: [{ low: { value: 70 }, high: { value: 110 } }],
    });
  });

  it('keeps units without a UCUM mapping and unknown flags as text, with warnings naming the line', () => {
    const { extraction } = hprimExtraction(file.parts[1]!, file.charset);
    const obs = observations(extraction);
    expect(obs[1]!.valueQuantity).toMatchObject({ value: 6.4, code: '10*9/L' });
    expect(obs[2]).toMatchObject({ valueQuantity: { value: 12, unit: 'unités bizarres' }, status: 'preliminary' });
    expect(obs[2]!.valueQuantity!.code).toBeUndefined();
    expect(extraction.warnings.map((w) => w.location)).toEqual(['line 31', 'line 40']);
    expect((extraction.resources.at(-1)!.resource as DiagnosticReport).conclusion).toContain('hémolysé');
  });
});

describe('UCUM', () => {
  it.each([
    'mg/dL',
    '10*9/L',
    'mL/min/{1.73_m2}',
    'umol/L',
    'm[IU]/L',
    '%',
    'g/(24.h)',
    'mm[Hg]',
    '1',
    'mmol/mol',
    's',
  ])('accepts %s', (u) => expect(isUcum(u)).toBe(true));
  it.each(['mg/dl ', 'G/l', 'µmol/L', 'UI/L', 'mg//L', 'mg/(L', 'foo', ''])('refuses %s', (u) =>
    expect(isUcum(u)).toBe(false),
  );
  it('maps French lab spellings, G/L apart from g/L', () => {
    expect(ucumOf('G/L')).toBe('10*9/L');
    expect(ucumOf('g/l')).toBe('g/L');
    expect(ucumOf('µmol/l')).toBe('umol/L');
    expect(ucumOf('mUI/l')).toBe('m[IU]/L');
    expect(ucumOf('unités bizarres')).toBeUndefined();
  });
});
