import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CatalogueError, MeasureCatalogue } from './catalogue';
import { tempDir } from '../../../test/support/temp-dir';

const SHIPPED = resolve(__dirname, '../../../fhir-profiles/measures');

/** A copy of the shipped catalogue in a temp folder, with `change` applied to one file. */
function variant(file: string, change: (doc: Record<string, unknown>) => void): string {
  const dir = tempDir('gw-measures-');
  for (const f of readdirSync(SHIPPED)) {
    const doc = JSON.parse(readFileSync(join(SHIPPED, f), 'utf8')) as Record<string, unknown>;
    if (f === file) {
      change(doc);
    }
    writeFileSync(join(dir, f), JSON.stringify(doc));
  }
  return dir;
}

type Pop = { code: { coding: { code: string }[] }; criteria: { expression: string } };
const populations = (doc: Record<string, unknown>) => (doc.group as { population: Pop[] }[])[0]!.population;

describe('MeasureCatalogue', () => {
  it('loads the shipped catalogue: 20 proportion measures, their value sets resolved (is-a as prefixes)', () => {
    const c = MeasureCatalogue.fromDirectory(SHIPPED);
    const ids = [...c.measures.keys()];
    expect(ids).toHaveLength(20);
    // The eleven 2026 FMT items: the patientèle of 31 December N-1, 5 € each.
    const fmt = ids.filter((id) => id.startsWith('fmt-')).map((id) => c.get(id)!);
    expect(fmt).toHaveLength(11);
    for (const m of fmt) {
      expect(m.patienteleDate).toBe('previous-year-end');
      expect(m.resource.extension).toContainEqual({
        url: 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/fmt-item',
        valueMoney: { value: 5, currency: 'EUR' },
      });
      expect(m.resource.effectivePeriod).toEqual({ start: '2026-01-01' });
    }
    expect(c.get('fmt-grippe-risque')?.stratifiers).toEqual(['structure', 'age-band', 'sex', 'ald', 'age70', 'c2s']);
    expect(c.get('cpts-sans-medecin-traitant')?.stratifiers).toContain('ald');
    const hba1c = c.get('rosp-diabete-hba1c')!;
    expect(hba1c).toMatchObject({
      basis: 'person',
      population: 'mt',
      improvement: 'increase',
      objectives: { minimumDenominator: 5, intermediate: 0.74, target: 0.92 },
    });
    expect(c.get('cpts-suivi-sortie-7j')).toMatchObject({
      basis: 'event',
      population: 'all',
      event: { resource: 'Encounter' },
    });
    expect(c.get('cpts-sans-medecin-traitant')?.improvement).toBe('decrease');
    // The ANS canonical first, then every legacy name of ATC (facts stored before canonicalisation).
    expect(c.resolve('https://gateway.fr-primary-care.org/fhir/ValueSet/antidiabetiques')).toEqual(
      [
        'https://smt.esante.gouv.fr/terminologie-atc',
        'http://www.whocc.no/atc',
        'urn:oid:2.16.840.1.113883.6.73',
        'urn:oid:1.2.250.1.215.200.1.2.1',
        'urn:oid:1.2.250.1.215.200.1.2.2',
      ].map((system) => ({ system, code: 'A10', prefix: true })),
    );
  });

  it('matches the codes real documents carry: NGAP AMY retinography, NABM HbA1c, the CCAM OID of older facts', () => {
    const c = MeasureCatalogue.fromDirectory(SHIPPED);
    const fundus = c.resolve('https://gateway.fr-primary-care.org/fhir/ValueSet/fond-oeil');
    expect(fundus).toContainEqual({ system: 'urn:oid:1.2.250.1.213.2.10', code: 'AMY', prefix: false });
    expect(fundus).toContainEqual({
      system: 'https://smt.esante.gouv.fr/terminologie-ccam',
      code: 'BGQP002',
      prefix: false,
    });
    expect(fundus).toContainEqual({ system: 'urn:oid:1.2.250.1.213.2.5', code: 'BGQP002', prefix: false });
    expect(c.resolve('https://gateway.fr-primary-care.org/fhir/ValueSet/hba1c')).toContainEqual({
      system: 'https://smt.esante.gouv.fr/terminologie-nabm',
      code: '1577',
      prefix: false,
    });
    const risk = c.resolve('https://gateway.fr-primary-care.org/fhir/ValueSet/risque-grippe');
    expect(risk).toContainEqual({ system: 'http://hl7.org/fhir/sid/icd-10', code: 'E11', prefix: true });
    expect(risk).toContainEqual({
      system: 'https://smt.esante.gouv.fr/terminologie-cim-10',
      code: 'E11',
      prefix: true,
    });
  });

  it('reads a ValueSet written with a legacy system name as its canonical too', () => {
    const dir = variant('ValueSet-vaccin-grippe.json', (vs) => {
      (vs.compose as { include: { system: string }[] }).include[0]!.system = 'http://www.whocc.no/atc';
    });
    const systems = MeasureCatalogue.fromDirectory(dir)
      .resolve('https://gateway.fr-primary-care.org/fhir/ValueSet/vaccin-grippe')
      .map((m) => m.system);
    expect(systems).toContain('https://smt.esante.gouv.fr/terminologie-atc');
    expect(systems).toContain('http://www.whocc.no/atc');
  });

  it('takes a new indicator as a new file, without code', () => {
    const dir = variant('Measure-rosp-grippe-65.json', () => undefined);
    const extra = JSON.parse(readFileSync(join(SHIPPED, 'Measure-rosp-grippe-65.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    extra.id = 'grippe-75';
    extra.url = 'https://example.org/Measure/grippe-75';
    populations(extra).forEach((p) => {
      p.criteria.expression = p.criteria.expression.replace('"min":65', '"min":75');
    });
    writeFileSync(join(dir, 'Measure-grippe-75.json'), JSON.stringify(extra));
    expect(MeasureCatalogue.fromDirectory(dir).get('grippe-75')?.initialPopulation).toEqual({ age: { min: 75 } });
  });

  it('refuses a broken file at boot, naming the file and what is wrong', () => {
    const unknownVs = variant('Measure-rosp-grippe-65.json', (doc) => {
      populations(doc)[2]!.criteria.expression = JSON.stringify({
        has: { resource: 'Immunization', valueSet: 'https://example.org/ValueSet/nope' },
      });
    });
    expect(() => MeasureCatalogue.fromDirectory(unknownVs)).toThrow(
      new CatalogueError('Measure-rosp-grippe-65.json: unknown ValueSet https://example.org/ValueSet/nope'),
    );
    const badCriteria = variant('Measure-rosp-grippe-65.json', (doc) => {
      populations(doc)[0]!.criteria.expression = JSON.stringify({ all: [{ age: { min: 'old' } }] });
    });
    expect(() => MeasureCatalogue.fromDirectory(badCriteria)).toThrow(
      /Measure-rosp-grippe-65\.json: population initial-population: .* at all\.0\.age\.min$/,
    );
    const noNumerator = variant('Measure-rosp-depistage-sein.json', (doc) => {
      (doc.group as { population: Pop[] }[])[0]!.population = populations(doc).filter(
        (p) => p.code.coding[0]!.code !== 'numerator',
      );
    });
    expect(() => MeasureCatalogue.fromDirectory(noNumerator)).toThrow(
      'Measure-rosp-depistage-sein.json: population numerator is missing',
    );
  });
});
