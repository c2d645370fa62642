import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type {
  AllergyIntolerance,
  CodeableConcept,
  Condition,
  DiagnosticReport,
  Immunization,
  MedicationDispense,
  MedicationStatement,
  Observation,
  Procedure,
  Resource,
} from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import { ATC, BDPM, CCAM, CIM_10, CISP_2, LOINC, NABM, NGAP, UCUM } from '../terminology/code-systems';
import { PATIENT_PLACEHOLDER, type Extraction } from '../intake/extraction';
import { readCda } from './cda.reader';

const SAMPLES = join(__dirname, '../../../../../shared/samples/ans-cda');
const read = (file: string): Extraction => readCda(readFileSync(join(SAMPLES, file)));
const ofType = <T extends Resource>(e: Extraction, type: T['resourceType']): T[] =>
  e.resources.map((r) => r.resource).filter((r): r is T => r.resourceType === type);
const codes = (c: CodeableConcept | undefined): string[] => (c?.coding ?? []).map((x) => `${x.system}|${x.code}`);
const TEST_INS = { value: '279035121518989', oid: '1.2.250.1.213.1.4.10' };

function expectError(body: string | Buffer, status: number, expression: string): void {
  try {
    readCda(typeof body === 'string' ? Buffer.from(body) : body);
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayError);
    expect((e as GatewayError).status).toBe(status);
    expect((e as GatewayError).issues[0].expression).toEqual([expression]);
    return;
  }
  throw new Error('expected an error');
}

describe('CI-SIS CDA reader on the ANS samples', () => {
  it('VSM 1.4: PCP, CIM-10 problems and history, CCAM procedure, allergy, CIS+CIP treatments without ATC', () => {
    const e = read('VSM_1.4_2022.01.xml');
    expect(e.patient).toMatchObject({
      ins: TEST_INS,
      birthFamily: 'PAT-TROIS',
      sex: 'female',
      birthDate: '1979-03-28',
      birthPlace: '51215',
    });
    expect(e.patient.given?.[0]).toBe('DOMINIQUE');
    expect(e.pcp).toMatchObject({ idNatPs: '801234567897', family: 'MEDIONI', given: 'Stéphane' });
    expect(e.document).toMatchObject({
      uniqueId: '1.2.250.1.213.1.1.1.13.2022.1.1',
      setId: '1.2.250.1.213.1.1.1.13.2022.1',
      version: 1,
    });
    expect(e.document.type.code).toBe('SYNTH');
    const conditions = ofType<Condition>(e, 'Condition');
    expect(conditions.flatMap((c) => codes(c.code))).toEqual(
      expect.arrayContaining([`${CIM_10}|G45.9`, `${CIM_10}|I20.0`, `${CIM_10}|N10`, `${CIM_10}|I21.1`]),
    );
    const history = conditions.find((c) => c.code?.coding?.[0].code === 'N10');
    expect(history?.clinicalStatus?.coding?.[0].code).toBe('resolved');
    expect(ofType<Procedure>(e, 'Procedure').flatMap((p) => codes(p.code))).toContain(`${CCAM}|DDAF004`);
    expect(ofType<AllergyIntolerance>(e, 'AllergyIntolerance')).toHaveLength(1);
    const meds = ofType<MedicationStatement>(e, 'MedicationStatement');
    expect(meds.map((m) => codes(m.medicationCodeableConcept))).toEqual([
      [`${BDPM}|63564053`, `${BDPM}|3400938022209`],
      [`${BDPM}|63245753`, `${BDPM}|3400935693099`],
    ]);
    expect(meds.flatMap((m) => codes(m.medicationCodeableConcept)).some((c) => c.startsWith(ATC))).toBe(false);
    for (const r of e.resources) expect(JSON.stringify(r.resource)).toContain(PATIENT_PLACEHOLDER);
  });

  it('IPS-FR: PCP, CISP-2 and CIM-10 problems, vaccinations CIS + ATC, LOINC results, version 2', () => {
    const e = read('IPS-FR_2024.01.xml');
    expect(e.pcp?.idNatPs).toBe('801234567897');
    expect(e.document).toMatchObject({ version: 2, type: { system: LOINC, code: '60591-5' } });
    const problems = ofType<Condition>(e, 'Condition').flatMap((c) => codes(c.code));
    expect(problems).toEqual(expect.arrayContaining([`${CISP_2}|T89`, `${CIM_10}|E06.3`]));
    const vaccines = ofType<Immunization>(e, 'Immunization');
    expect(vaccines.length).toBeGreaterThanOrEqual(2);
    expect(codes(vaccines[0].vaccineCode)).toEqual([`${BDPM}|60917345`, `${ATC}|J07CA01`]);
    const crp = ofType<Observation>(e, 'Observation').find((o) => o.code.coding?.[0].code === '1988-5');
    expect(crp?.code.coding?.[0].system).toBe(LOINC);
    expect(crp?.category?.[0].coding?.[0].code).toBe('laboratory');
  });

  it('CR-BIO glycaemia: LOINC, UCUM mmol/L, interpretation, reference range, effective time, in a DiagnosticReport', () => {
    const e = read('BIO-CR-BIO_2024.01_Glycemie_mole.xml');
    const [glucose] = ofType<Observation>(e, 'Observation');
    expect(codes(glucose.code)).toEqual([`${LOINC}|40193-5`]);
    expect(glucose.valueQuantity).toEqual({ value: 4.89, unit: 'mmol/L', system: UCUM, code: 'mmol/L' });
    expect(glucose.interpretation?.[0].coding?.[0].code).toBeDefined();
    expect(glucose.referenceRange?.[0].low?.unit ?? glucose.referenceRange?.[0].high?.unit).toBe('mmol/L');
    expect(glucose.effectiveDateTime).toBe('2014-04-02T14:55:21+02:00');
    const [report] = ofType<DiagnosticReport>(e, 'DiagnosticReport');
    const fullUrl = e.resources.find((r) => r.resource === glucose)?.fullUrl;
    expect(report.result).toEqual([{ reference: fullUrl }]);
    expect(e.pcp?.idNatPs).toBe('00B1057294');
  });

  it('CR-BIO TSH: LOINC and UCUM units', () => {
    const obs = ofType<Observation>(read('BIO-CR-BIO_2024.01_TSH_1.xml'), 'Observation');
    const tsh = obs.find((o) => o.code.coding?.[0].code === '3016-3');
    expect(tsh?.valueQuantity).toEqual({ value: 1.95, unit: 'm[IU]/L', system: UCUM, code: 'm[IU]/L' });
  });

  it('CR-BIO CRP coded outside LOINC: the result is kept with its local code, and a warning says so', () => {
    const e = read('BIO-CR-BIO_2024.01_CRP_non_LOINC.xml');
    const [crp] = ofType<Observation>(e, 'Observation');
    expect(codes(crp.code)).toEqual(['urn:oid:1.2.250.1.2.3.4|1234']);
    expect(crp.valueQuantity).toMatchObject({ value: 1, comparator: '<=', unit: 'mg/L' });
    expect(crp.referenceRange?.[0].high).toMatchObject({ value: 5, unit: 'mg/L' });
    expect(e.warnings.some((w) => w.text.includes('1.2.250.1.2.3.4'))).toBe(true);
  });

  it('CR-BIO cervical screening: HPV-HR test and cytology results, NABM act, HPV vaccination', () => {
    const e = read('BIO-CR-BIO_2024.01_DEP-CCU-tout-structure.xml');
    const obs = ofType<Observation>(e, 'Observation').flatMap((o) => codes(o.code));
    expect(obs).toEqual(expect.arrayContaining([`${LOINC}|77379-6`, `${LOINC}|10524-7`]));
    expect(ofType<Procedure>(e, 'Procedure').flatMap((p) => codes(p.code))).toContain(`${NABM}|0027`);
    const [hpv] = ofType<Immunization>(e, 'Immunization');
    expect(codes(hpv.vaccineCode)).toContain(`${ATC}|J07BM`);
  });

  it('VAC: vaccine administrations with CIS, ATC and CIP, dates and rank', () => {
    const vaccines = ofType<Immunization>(read('VAC_2023.01.xml'), 'Immunization');
    expect(vaccines).toHaveLength(4);
    expect(codes(vaccines[1].vaccineCode)).toEqual([`${BDPM}|68747507`, `${ATC}|J07AM`, `${BDPM}|3400932857241`]);
    expect(vaccines.map((v) => v.protocolApplied?.[0].doseNumberPositiveInt)).toEqual([1, 1, 2, 1]);
    expect(vaccines[1].occurrenceDateTime).toBe('2009-09-28T09:49:14+01:00');
  });

  it('OPH-CR-RTN: the retinography is a Procedure coded NGAP AMY, not CCAM', () => {
    const [proc] = ofType<Procedure>(read('OPH-CR-RTN_2022.01.xml'), 'Procedure');
    expect(codes(proc.code)).toEqual([`${NGAP}|AMY`]);
    expect(proc.performedPeriod?.start).toBe('2021-11-04T15:30:00+01:00');
  });

  it('CNAM-HR: dispensations CIP13 + ATC, vaccines, LPP devices, stays, CCAM / NABM / NGAP acts', () => {
    const e = read('CNAM-HR_2021.01.xml');
    const dispensed = ofType<MedicationDispense>(e, 'MedicationDispense');
    expect(codes(dispensed[0].medicationCodeableConcept)).toEqual([`${BDPM}|3400935673220`, `${ATC}|G03`]);
    expect(ofType(e, 'Immunization')).toHaveLength(3);
    expect(ofType(e, 'SupplyDelivery')).toHaveLength(2);
    expect(ofType(e, 'Encounter')).toHaveLength(2);
    const acts = ofType<Procedure>(e, 'Procedure').flatMap((p) => codes(p.code));
    expect(acts).toEqual(expect.arrayContaining([`${CCAM}|QEQJ001`, `${NABM}|1208`, `${NGAP}|G`]));
    expect(e.document.type.code).toBe('REMB');
  });

  it('unstructured CDA (PDF body): the document alone, no facts invented', () => {
    const e = read('DOC_NON_STRUCTURE_CDA-R2-N1.xml');
    expect(e.resources).toEqual([]);
    expect(e.document.uniqueId).toBe('1.3.6.1.4.1.19376.1.2.20.12345.1.1');
    expect(e.document.content.length).toBeGreaterThan(400_000);
  });
});

describe('CDA reader on bad input', () => {
  it('refuses a DOCTYPE (XML bomb) before any expansion', () => {
    const bomb =
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><ClinicalDocument xmlns="urn:hl7-org:v3">&lol2;</ClinicalDocument>';
    expectError(bomb, 400, '!DOCTYPE');
  });

  it('names the root element of a non-CDA XML', () => {
    expectError('<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir"/>', 400, 'Bundle');
  });

  it('refuses bytes that are not the charset the declaration names', () => {
    expectError(
      Buffer.from(
        '<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3"><title>Caf\xe9</title></ClinicalDocument>',
        'latin1',
      ),
      400,
      'xml.encoding',
    );
  });

  it('reads an ISO-8859-1 document as its declaration says', () => {
    const sample = readFileSync(join(SAMPLES, 'VAC_2023.01.xml'), 'utf8').replace(
      'encoding="utf-8"',
      'encoding="ISO-8859-1"',
    );
    const e = readCda(Buffer.from(sample, 'latin1'));
    expect(e.document.type.display).toBe('Historique de vaccinations');
    expect(e.document.title).toContain('vaccination');
  });

  it('refuses a document over the size limit', () => {
    expectError(Buffer.alloc(33 * 1024 * 1024, 0x20), 413, 'ClinicalDocument');
  });

  it('refuses truncated XML', () => {
    const sample = readFileSync(join(SAMPLES, 'VAC_2023.01.xml'));
    expectError(sample.subarray(0, 20000), 400, 'xml');
  });

  it('refuses a CDA without patient', () => {
    expectError(
      '<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/><code code="11502-2" codeSystem="2.16.840.1.113883.6.1"/></ClinicalDocument>',
      422,
      'ClinicalDocument/recordTarget',
    );
  });
});
