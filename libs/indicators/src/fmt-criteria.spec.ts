import { readFileSync, readdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CatalogueError, MeasureCatalogue, PATIENTELE_DATE_EXTENSION, STRATIFIER_SYSTEM } from './catalogue';
import { CriteriaError, SqlParams, compileCriterion, parseCriterion } from './criteria';
import type { CompileContext } from './criteria';

const SHIPPED = resolve(__dirname, '../../../fhir-profiles/measures');

/** A copy of the shipped catalogue with `change` applied to one Measure. */
function variant(file: string, change: (doc: Record<string, unknown>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-measures-'));
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
    expect(atc).toContain('FROM ind_drug_atc m WHERE m.atc LIKE');
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
