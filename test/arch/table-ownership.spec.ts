import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * Each feature owns its tables (created by its own migrations) and is the only code that writes SQL
 * against them; others go through its API. This check reads the sources: a table is owned by the
 * lib whose schema files create it, and any SQL in another lib or in an app that names it fails.
 */
const ROOT = join(__dirname, '..', '..');
const LIBS = ['platform', 'fhir', 'store', 'ingest', 'exchange', 'indicators'];

/** Deliberate exceptions, each with its reason. */
const ALLOWED: Record<string, string> = {
  'libs/indicators/src/indicators.schema.ts: resource':
    'the indicator projection is a trigger on resource writes, so that every write path keeps it in the same transaction',
  'libs/indicators/src/fmt-projection.schema.ts: resource':
    'migration 29 widens the same projection trigger (médecin traitant periods, coverages, dispensations) and projects the stored rows',
  'libs/indicators/src/fmt-projection.schema.ts: resource_history':
    'migration 29 rebuilds the médecin traitant periods once from every stored version of each Patient',
  'libs/indicators/src/mt-verification.schema.ts: resource':
    'migration 35 widens the same projection trigger (PractitionerRole) and fills the periods’ organization from the stored rows',
  'libs/indicators/src/role-vouch.schema.ts: resource':
    'migration 38 fills the projected practitioners’ owner from the stored rows (and on each projection) and re-projects the stored roles',
  'libs/store/src/directory/directory.schema.ts: client':
    'the one-time merge of duplicate Organizations re-binds the API clients of a merged one',
  'libs/store/src/directory/directory.schema.ts: hl7_source':
    'the one-time merge of duplicate Organizations re-binds the HL7 sources of a merged one',
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory()
      ? files(path)
      : /\.ts$/.test(name) && !/\.(int-)?spec\.ts$/.test(name)
        ? [path]
        : [];
  });
}

/** Table name → owning lib, from the CREATE TABLE statements of each lib's schema files. */
function owners(): Map<string, string> {
  const map = new Map<string, string>([['schema_migration', 'platform']]);
  for (const lib of LIBS) {
    for (const file of files(join(ROOT, 'libs', lib, 'src')).filter((f) => /schema\.ts$/.test(f))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/CREATE TABLE (?:IF NOT EXISTS )?([a-z_][a-z0-9_]*)/g)) {
        map.set(m[1]!, lib);
      }
    }
  }
  return map;
}

/** Tables a source file's SQL reads or writes (FROM, JOIN, INTO, UPDATE, DELETE FROM, TABLE, ON <table>). */
function tablesIn(text: string, known: Map<string, string>): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/\b(?:FROM|JOIN|INTO|UPDATE|TABLE|ON)\s+([a-z_][a-z0-9_]*)\b/g)) {
    if (known.has(m[1]!)) {
      found.add(m[1]!);
    }
  }
  return [...found];
}

describe('table ownership', () => {
  const known = owners();

  it('knows the tables of every feature', () => {
    expect(known.get('resource')).toBe('store');
    expect(known.get('hl7_message')).toBe('ingest');
    expect(known.get('exchange_delivery')).toBe('exchange');
    expect(known.get('ind_fact')).toBe('indicators');
    expect(known.get('client')).toBe('platform');
  });

  it('no lib or app writes SQL against another feature’s tables', () => {
    const violations: string[] = [];
    const sources = [
      ...LIBS.flatMap((lib) => files(join(ROOT, 'libs', lib, 'src')).map((f) => ({ f, owner: lib }))),
      ...files(join(ROOT, 'apps')).map((f) => ({ f, owner: 'app' })),
    ];
    for (const { f, owner } of sources) {
      for (const table of tablesIn(readFileSync(f, 'utf8'), known)) {
        const where = `${relative(ROOT, f)}: ${table}`;
        if (known.get(table) !== owner && !ALLOWED[where]) {
          violations.push(`${where} (owned by ${known.get(table)})`);
        }
      }
    }
    expect(violations).toEqual([]);
  });
});
