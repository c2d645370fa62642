import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'pg';
import type { Observation } from '@medplum/fhirtypes';
import type { Principal } from '@gw/store';
import { createTestDatabase, migrateAll } from '@gw/testing/database';
import type { Extraction } from '../intake/extraction';
import { HprimIntake } from './hprim-intake.service';
import type { ExtractionFiler } from './hprim-intake.service';
import type { IntakeResult } from '../intake/pipeline';
import { validateLabCode } from './lab-code.map';

const FIXTURES = join(__dirname, '../../../../test/fixtures/hprim');
const MSP = 'Organization/msp-hprim';
const CLIENT: Principal = { clientId: 'msp-client', organization: MSP, admin: false, scopes: ['system/*.cruds'] };

/**
 * Stands for IntakePipeline.ingestExtractions (helper "cda"): records what it is given and answers
 * as the pipeline would — review for a patient it does not know (DUBOIS-TEST is the known one),
 * rejected when told to.
 */
class RecordingFiler implements ExtractionFiler {
  calls: { p: Principal; extractions: Extraction[]; source: string }[] = [];
  reject = false;

  async ingestExtractions(p: Principal, extractions: Extraction[], source: string): Promise<IntakeResult> {
    this.calls.push({ p, extractions, source });
    const known = extractions.every((e) => e.patient.birthFamily === 'DUBOIS-TEST');
    return Promise.resolve({
      status: this.reject ? 'rejected' : known ? 'created' : 'review',
      outcome: { resourceType: 'OperationOutcome', issue: [] },
    });
  }
}

const loincs = (e: Extraction): string[] =>
  e.resources
    .map((r) => r.resource)
    .filter((r): r is Observation => r.resourceType === 'Observation')
    .map((o) => o.code.coding?.[0]?.code ?? '');

describe('HprimIntake (PostgreSQL)', () => {
  let pool: Pool;
  let intake: HprimIntake;
  let filer: RecordingFiler;
  const body = readFileSync(join(FIXTURES, 'biomed-2-patients.hpr'));

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('hprim') });
    await migrateAll(pool);
    intake = new HprimIntake(pool);
    filer = new RecordingFiler();
    intake.useFiler(filer);
    for (const [code, loinc, display, unit, factor] of [
      ['HBA1C', '4548-4', 'Hemoglobin A1c/Hemoglobin.total in Blood', '%', undefined],
      ['GLY', '2345-7', 'Glucose [Mass/volume] in Serum or Plasma', 'mg/dL', 100],
      ['K', '2823-3', 'Potassium [Moles/volume] in Serum or Plasma', undefined, undefined],
    ] as const) {
      await intake.codes.put(MSP, '750000001', validateLabCode(code, { loinc, display, unit, factor }), 'spec');
    }
  });
  afterAll(async () => pool.end());

  it('files mapped results at once, holds the others, lists them without patient data, files them once mapped', async () => {
    const result = await intake.ingest(CLIENT, body, { organization: MSP, source: 'spec:1' });
    expect(result.status).toBe('review');
    expect(filer.calls).toHaveLength(1);
    const [first, second] = filer.calls[0]!.extractions;
    // The held results are said in the parts' warnings (the pipeline's OperationOutcome), counts only.
    const held = [first!, second!].flatMap((e) => e.warnings.filter((w) => /held until/.test(w.text)));
    expect(held.map((w) => w.text.match(/^\d+/)?.[0])).toEqual(['3', '2']);
    expect(loincs(first!)).toEqual(['4548-4', '2345-7']);
    expect(loincs(second!)).toEqual(['2823-3']);
    expect(first!.document.version).toBe(1);

    const unmapped = await intake.unmapped(MSP);
    expect(unmapped.map((u) => [u.lab, u.code, u.held])).toEqual([
      ['750000001', 'ASPS', 1],
      ['750000001', 'CREA', 1],
      ['750000001', 'DFGE', 1],
      ['750000001', 'LEUCO', 1],
      ['750000001', 'VXYZ', 1],
    ]);
    expect(JSON.stringify(unmapped)).not.toMatch(/DUBOIS|LEGRAND|1961|2610575/);
    expect(await intake.unmapped('Organization/other')).toEqual([]);

    // Mapping CREA files the first part again as version 2 with every result mapped by then.
    await intake.codes.put(
      MSP,
      '750000001',
      validateLabCode('CREA', { loinc: '2160-0', display: 'Creatinine [Mass/volume] in Serum or Plasma' }),
      'spec',
    );
    expect(await intake.fileHeld(MSP, '750000001')).toEqual({ parts: 1, results: 1, failed: 0 });
    const refiled = filer.calls[1]!;
    expect(refiled.p).toEqual(CLIENT);
    expect(refiled.source).toBe('spec:1');
    expect(refiled.extractions[0]!.document).toMatchObject({ version: 2, setId: first!.document.setId });
    expect(loincs(refiled.extractions[0]!)).toEqual(['4548-4', '2345-7', '2160-0']);
    expect((await intake.unmapped(MSP)).map((u) => u.code)).toEqual(['ASPS', 'DFGE', 'LEUCO', 'VXYZ']);
    // Nothing more to file: no call.
    expect(await intake.fileHeld(MSP, '750000001')).toEqual({ parts: 0, results: 0, failed: 0 });
    expect(filer.calls).toHaveLength(2);
  });

  it('keeps results held when the pipeline refuses the re-filing, and files them on the next try', async () => {
    await intake.codes.put(
      MSP,
      '750000001',
      validateLabCode('LEUCO', { loinc: '6690-2', display: 'Leukocytes [#/volume] in Blood', unit: '10*9/L' }),
      'spec',
    );
    filer.reject = true;
    expect(await intake.fileHeld(MSP, '750000001')).toEqual({ parts: 0, results: 0, failed: 1 });
    expect((await intake.unmapped(MSP)).map((u) => u.code)).toContain('LEUCO');
    filer.reject = false;
    expect(await intake.fileHeld(MSP, '750000001')).toEqual({ parts: 1, results: 1, failed: 0 });
    const last = filer.calls.at(-1)!.extractions[0]!;
    expect(last.document.version).toBe(2);
    expect(loincs(last)).toEqual(['2823-3', '6690-2']);
  });

  it('a file the pipeline refuses leaves nothing held', async () => {
    const other = readFileSync(join(FIXTURES, 'calanques-utf8.hpr'));
    filer.reject = true;
    const result = await intake.ingest(CLIENT, other, { organization: MSP, source: 'spec:2' });
    filer.reject = false;
    expect(result.status).toBe('rejected');
    expect((await intake.unmapped(MSP)).map((u) => u.lab)).not.toContain('LABORATOIRE DES CALANQUES TEST');
  });

  it('answers 400 naming the line for an unreadable file, without calling the pipeline', async () => {
    const calls = filer.calls.length;
    await expect(
      intake.ingest(CLIENT, Buffer.from('REF\nNOM\n****FIN****\n'), { organization: MSP, source: 'spec:3' }),
    ).rejects.toMatchObject({ status: 400, issues: [expect.objectContaining({ expression: ['line 1'] })] });
    expect(filer.calls).toHaveLength(calls);
  });

  it('validates mappings: LOINC check digit, UCUM unit, factor only with a unit', () => {
    expect(() => validateLabCode('X', { loinc: '4548-3', display: 'x' })).toThrow(/check digit/);
    expect(() => validateLabCode('X', { loinc: '4548-4', display: 'x', unit: 'mg/dl ' })).toThrow(/UCUM/);
    expect(() => validateLabCode('X', { loinc: '4548-4', display: 'x', factor: 10 })).toThrow(/give the unit/);
    expect(() => validateLabCode('X', { loinc: '4548-4', display: '' })).toThrow(/display/);
    expect(validateLabCode('X', { loinc: '2345-7', display: 'Glucose', unit: 'mg/dL', factor: 100 })).toEqual({
      code: 'X',
      loinc: '2345-7',
      display: 'Glucose',
      unit: 'mg/dL',
      factor: 100,
    });
  });
});
