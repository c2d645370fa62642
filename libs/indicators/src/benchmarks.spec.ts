import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { MeasureReport } from '@medplum/fhirtypes';
import {
  BenchmarkFormatError,
  REPORT_BENCHMARK_EXTENSION,
  attachBenchmarks,
  departementOf,
  parseBenchmarkCsv,
} from './benchmarks';

const SHIPPED = resolve(__dirname, '../../../fhir-profiles/benchmarks/ald-sans-medecin-traitant.csv');
const HEADER = 'indicator;territory_level;territory_code;date;percent;source_url;note';
const URL = 'https://example.org/publication';

describe('benchmark CSV', () => {
  it('reads the shipped published figures: France 3.8 % in December 2024, Cher 9 % in May 2023', () => {
    const rows = parseBenchmarkCsv(readFileSync(SHIPPED, 'utf8'));
    expect(rows).toHaveLength(8);
    expect(rows.every((r) => r.indicator === 'ald-sans-medecin-traitant')).toBe(true);
    expect(rows.find((r) => r.level === 'france' && r.observed === '2024-12-31')).toMatchObject({
      code: 'FR',
      percent: 3.8,
    });
    expect(rows.find((r) => r.code === '18')).toMatchObject({ level: 'departement', percent: 9, note: 'Cher' });
  });

  it('names the line and the field of the first bad line', () => {
    const bad = (line: string): string => {
      try {
        parseBenchmarkCsv(`${HEADER}\nx;france;FR;2024-12-31;3.8;${URL};ok\n${line}\n`);
      } catch (err) {
        expect(err).toBeInstanceOf(BenchmarkFormatError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad(`x;departement;20;2024-12-31;3;${URL}`)).toBe('line 3: territory_code "20" is not a departement code');
    expect(bad(`x;france;FR;2024-13-45;3;${URL}`)).toMatch(/^line 3: date/);
    expect(bad(`x;france;FR;2023-02-29;3;${URL}`)).toMatch(/^line 3: date/);
    expect(bad(`x;france;FR;2024-12-31;103;${URL}`)).toMatch(/^line 3: percent "103"/);
    expect(bad('x;france;FR;2024-12-31;3;not-a-url')).toMatch(/^line 3: source_url/);
    expect(bad(`X Y;france;FR;2024-12-31;3;${URL}`)).toMatch(/^line 3: indicator/);
    expect(bad('x;france;FR')).toMatch(/^line 3: expected 6 or 7 fields/);
  });

  it('refuses a file without the header or without any figure', () => {
    expect(() => parseBenchmarkCsv(`indicator,territory_level\n`)).toThrow(/line 1: the header must be/);
    expect(() => parseBenchmarkCsv(`${HEADER}\n# only a comment\n`)).toThrow(/no benchmark line/);
  });

  it('derives the département of INSEE communes, Corsica and overseas included', () => {
    expect(departementOf('18033')).toBe('18');
    expect(departementOf('2A004')).toBe('2A');
    expect(departementOf('97411')).toBe('974');
    expect(departementOf('7510')).toBeUndefined();
  });

  it('puts one extension per figure on the report group, naming the stratum it compares to', () => {
    const report: MeasureReport = {
      resourceType: 'MeasureReport',
      status: 'complete',
      type: 'summary',
      measure: 'm',
      period: {},
      group: [{}],
    };
    const rows = parseBenchmarkCsv(readFileSync(SHIPPED, 'utf8')).filter((r) => r.code === 'FR' || r.code === '18');
    attachBenchmarks(report, { indicator: 'ald-sans-medecin-traitant', stratum: 'ald:yes' }, rows);
    const exts = report.group?.[0]?.extension?.filter((e) => e.url === REPORT_BENCHMARK_EXTENSION) ?? [];
    expect(exts).toHaveLength(4);
    const cher = exts.find((e) => e.extension?.some((x) => x.url === 'territory' && x.valueString === '18'));
    expect(cher?.extension).toEqual(
      expect.arrayContaining([
        { url: 'value', valueQuantity: { value: 9, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } },
        { url: 'date', valueDate: '2023-05-10' },
        { url: 'stratum', valueString: 'ald:yes' },
      ]),
    );
  });
});
