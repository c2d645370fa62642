import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CatalogueError, MeasureCatalogue, PATIENTELE_DATE_EXTENSION, STRATIFIER_SYSTEM } from './catalogue';
import { CriteriaError, SqlParams, compileCriterion, parseCriterion } from './criteria';
import type { CompileContext } from './criteria';
import { tempDir } from '../../../test/support/temp-dir';

const SHIPPED = resolve(__dirname, '../../../fhir-profiles/measures');

/** A copy of the shipped catalogue with `change` applied to one Measure. */
function variant(file: string, change: (doc: Record<string, unknown>) => void): string {
  const dir = tempDir('gw-measures-');
  for (const f of readdirSync(SHIPPED)) {
    const doc = JSON.parse(readFileSync(join(SHIPPED, f), 'utf8')) as Record<string, unknown>;
    if (f === file) change(doc);
    writeFileSync(join(dir, f), JSON.stringify(doc));
  }
  return dir;
}

const ctx = (resolveCodes: CompileContext['resolve']): CompileContext => ({
  params: new SqlParams(),
  resolve: resolveCodes,
  periodStart: '$ps',
  periodEnd: '$pe',
  referenceDate: '$ref',
  row: 'r',
});

describe('FMT criteria atoms', () => {
  it('parses ald (numbers optional), c2s, ages in months and MedicationDispense facts with an ageMonths window', () => {
    expect(parseCriterion({ ald: {} })).toEqual({ ald: {} });
    expect(parseCriterion({ ald: { numbers: ['8', '31'] } })).toEqual({ ald: { numbers: ['8', '31'] } });
    expect(parseCriterion({ c2s: {} })).toEqual({ c2s: {} });
    expect(parseCriterion({ age: { min: 65 } })).toEqual({ age: { min: 65 } });
    expect(parseCriterion({ age: { min: 12, max: 24, unit: 'months' } })).toEqual({
      age: { min: 12, max: 24, unit: 'months' },
    });
    expect(
      parseCriterion({
        has: {
          resource: 'MedicationDispense',
          valueSet: 'https://x.org/vs',
          window: { ageMonths: { min: 0, max: 24 } },
        },
      }),
    ).toEqual({
      has: {
        resource: 'MedicationDispense',
        valueSet: 'https://x.org/vs',
        window: { ageMonths: { min: 0, max: 24 } },
        min: 1,
      },
    });
  });

  it('rejects malformed atoms, naming the path', () => {
    expect(() => parseCriterion({ all: [{ ald: { numbers: ['huit'] } }] })).toThrow(/ at all\.0\.ald\.numbers\.0$/);
    expect(() => parseCriterion({ c2s: { since: 2020 } })).toThrow(CriteriaError);
    expect(() => parseCriterion({ age: { min: 140 } })).toThrow(/an age in years is at most 130 at age/);
    expect(() => parseCriterion({ age: { min: 140, unit: 'months' } })).not.toThrow();
    expect(() =>
      parseCriterion({
        has: { resource: 'Observation', valueSet: 'https://x.org/vs', window: { ageMonths: { min: 5, max: 2 } } },
      }),
    ).toThrow(/ageMonths.min must not exceed ageMonths.max/);
  });

  it('compiles ATC codes to also match CIS/CIP codes through the drug map, other systems not', () => {
    const atc = compileCriterion(
      { has: { resource: 'MedicationDispense', valueSet: 'vs', window: 'period', min: 1 } },
      ctx(() => [{ system: 'https://smt.esante.gouv.fr/terminologie-atc', code: 'J07AM', prefix: true }]),
    );
    expect(atc).toContain('code = ANY(ARRAY(SELECT m.code FROM ind_drug_atc m WHERE m.atc LIKE');
    const loinc = compileCriterion(
      { has: { resource: 'Observation', valueSet: 'vs', window: 'period', min: 1 } },
      ctx(() => [{ system: 'http://loinc.org', code: '4548-4', prefix: false }]),
    );
    expect(loinc).not.toContain('ind_drug_atc');
  });

  it('the catalogue reads the optional stratifiers and the patientèle marker, and refuses unknown ones', () => {
    const named = variant('Measure-rosp-grippe-65.json', (doc) => {
      const group = (doc.group as { stratifier: unknown[] }[])[0]!;
      group.stratifier.push({ code: { coding: [{ system: STRATIFIER_SYSTEM, code: 'ald' }] } });
      (doc.extension as unknown[]).push({ url: PATIENTELE_DATE_EXTENSION, valueCode: 'previous-year-end' });
    });
    const m = MeasureCatalogue.fromDirectory(named).get('rosp-grippe-65')!;
    expect(m.stratifiers).toEqual(['structure', 'age-band', 'sex', 'ald']);
    expect(m.patienteleDate).toBe('previous-year-end');
    const bad = variant('Measure-rosp-grippe-65.json', (doc) => {
      (doc.group as { stratifier: unknown[] }[])[0]!.stratifier.push({
        code: { coding: [{ system: STRATIFIER_SYSTEM, code: 'income' }] },
      });
    });
    expect(() => MeasureCatalogue.fromDirectory(bad)).toThrow(
      new CatalogueError(
        'Measure-rosp-grippe-65.json: unknown stratifier income (known: structure, age-band, sex, ald, age70, c2s)',
      ),
    );
    const marker = variant('Measure-rosp-grippe-65.json', (doc) => {
      (doc.extension as unknown[]).push({ url: PATIENTELE_DATE_EXTENSION, valueCode: 'yesterday' });
    });
    expect(() => MeasureCatalogue.fromDirectory(marker)).toThrow(
      /measure-patientele-date must be one of previous-year-end/,
    );
  });
});

describe('versioned catalogue', () => {
  const grippe = 'Measure-rosp-grippe-65.json';
  const measure = (dir: string) => MeasureCatalogue.fromDirectory(dir);

  it('every shipped Measure is in force from 2017; the ROSP ones end on 2025-12-31, the CPTS ones stay open', () => {
    const c = measure(SHIPPED);
    expect(c.get('rosp-grippe-65')!.effective).toEqual({ start: '2017-01-01', end: '2025-12-31' });
    expect(c.get('cpts-suivi-sortie-7j')!.effective).toEqual({ start: '2017-01-01' });
    expect(c.inForce('2025-12-31').map((m) => m.id)).toContain('rosp-grippe-65');
    expect(
      c
        .inForce('2026-01-01')
        .map((m) => m.id)
        .filter((id) => !id.startsWith('fmt-'))
        .sort(),
    ).toEqual(['cpts-mt-trouve', 'cpts-sans-medecin-traitant', 'cpts-suivi-sortie-7j']);
    // The eleven FMT items come into force on 2026-01-01 and replace the ROSP ones they name.
    expect(c.inForce('2025-12-31').filter((m) => m.id.startsWith('fmt-'))).toEqual([]);
    expect(c.inForce('2026-01-01').filter((m) => m.id.startsWith('fmt-'))).toHaveLength(11);
    expect(c.replacements(c.get('rosp-grippe-16-64-risque')!, '2026-12-31').map((m) => m.id)).toEqual([
      'fmt-grippe-risque',
    ]);
  });

  it('names the successor a Measure out of force is replaced by, through predecessor links', () => {
    const dir = variant('Measure-rosp-grippe-65.json', () => undefined);
    const fmt = JSON.parse(readFileSync(join(dir, grippe), 'utf8')) as Record<string, unknown>;
    writeFileSync(
      join(dir, 'Measure-fmt-grippe-65.json'),
      JSON.stringify({
        ...fmt,
        id: 'fmt-grippe-65',
        url: 'https://gateway.fr-primary-care.org/fhir/Measure/fmt-grippe-65',
        effectivePeriod: { start: '2026-01-01' },
        relatedArtifact: [
          { type: 'citation', display: 'Convention médicale 2024-2029' },
          { type: 'predecessor', resource: 'https://gateway.fr-primary-care.org/fhir/Measure/rosp-grippe-65|2026.1' },
        ],
      }),
    );
    const c = measure(dir);
    expect(c.replacements(c.get('rosp-grippe-65')!, '2026-12-31').map((m) => m.id)).toEqual(['fmt-grippe-65']);
    expect(c.get('fmt-grippe-65')!.predecessors).toEqual([
      'https://gateway.fr-primary-care.org/fhir/Measure/rosp-grippe-65',
    ]);
  });

  it.each([
    [(d: Record<string, unknown>) => delete d.effectivePeriod, 'effectivePeriod.start must be a day'],
    [
      (d: Record<string, unknown>) => (d.effectivePeriod = { start: '2020-01-01', end: '2019-12-31' }),
      'effectivePeriod.end must be a day (YYYY-MM-DD) not before',
    ],
    [
      (d: Record<string, unknown>) => (d.relatedArtifact = [{ type: 'documentation' }]),
      'relatedArtifact needs a citation',
    ],
    [
      (d: Record<string, unknown>) =>
        (d.relatedArtifact = [
          { type: 'citation', display: 'x' },
          { type: 'successor', resource: 'https://gateway.fr-primary-care.org/fhir/Measure/nope' },
        ]),
      'relatedArtifact names https://gateway.fr-primary-care.org/fhir/Measure/nope, not a Measure of the catalogue',
    ],
  ])('refuses a catalogue whose versioning is broken (%#)', (change, message) => {
    expect(() => measure(variant(grippe, change))).toThrow(message);
  });
});
