import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MATRIX, classOf, classesFor, loadSharingMatrix, typeRule } from './sharing-matrix';
import { tempDir } from '../../../../test/support/temp-dir';

const dir = tempDir('matrix-');
const file = (name: string, body: unknown): string => {
  const path = join(dir, name);
  writeFileSync(path, typeof body === 'string' ? body : JSON.stringify(body));
  return path;
};

describe('sharing matrix', () => {
  it('classes a type no class names as clinical', () => {
    expect(classOf(DEFAULT_MATRIX, 'Observation')).toBe('clinical');
    expect(classOf(DEFAULT_MATRIX, 'MedicationRequest')).toBe('medication');
    expect(classOf(DEFAULT_MATRIX, 'Patient')).toBe('demographics');
  });

  it('lets a médecin read everything, a pharmacien the treatment only, non-health staff no clinical content', () => {
    expect(typeRule(DEFAULT_MATRIX, classesFor(DEFAULT_MATRIX, { health: true, profession: '10' }))).toEqual({
      deny: [],
    });
    const pharma = typeRule(DEFAULT_MATRIX, classesFor(DEFAULT_MATRIX, { health: true, profession: '21' }));
    expect('allow' in pharma && pharma.allow).toEqual(expect.arrayContaining(['MedicationRequest', 'Patient']));
    expect('allow' in pharma && pharma.allow).not.toContain('Observation');
    expect('allow' in pharma && pharma.allow).not.toContain('DocumentReference');
    const secretary = typeRule(DEFAULT_MATRIX, classesFor(DEFAULT_MATRIX, { health: false, profession: '10' }));
    expect('allow' in secretary && secretary.allow).toEqual(
      expect.arrayContaining(['Patient', 'Appointment', 'Task', 'Communication']),
    );
    expect('allow' in secretary && secretary.allow).not.toContain('CareTeam');
    const kine = typeRule(DEFAULT_MATRIX, classesFor(DEFAULT_MATRIX, { health: true, profession: '70' }));
    expect('deny' in kine && kine.deny).toContain('MedicationRequest');
  });

  it('gives an unnamed health profession the care organisation only', () => {
    expect(classesFor(DEFAULT_MATRIX, { health: true, profession: '91' })).toEqual(DEFAULT_MATRIX.otherHealth);
    expect(classesFor(DEFAULT_MATRIX, { health: true })).toEqual(DEFAULT_MATRIX.otherHealth);
  });

  it('loads a replacement matrix file and keeps the default classes when it names none', () => {
    const m = loadSharingMatrix(
      file('ok.json', { professions: { '10': ['clinical', 'demographics'] }, otherHealth: [], nonHealth: ['tasks'] }),
    );
    expect(m.professions['10']).toEqual(['clinical', 'demographics']);
    expect(m.classes).toEqual(DEFAULT_MATRIX.classes);
    expect(loadSharingMatrix(undefined)).toBe(DEFAULT_MATRIX);
  });

  it('refuses a matrix file with unknown classes, clinical content for non-health staff or bad JSON, naming the problem', () => {
    expect(() =>
      loadSharingMatrix(file('bad-class.json', { professions: { '10': ['x-ray'] }, otherHealth: [], nonHealth: [] })),
    ).toThrow(/bad-class\.json is not a valid sharing matrix: professions\.10\.0/);
    expect(() =>
      loadSharingMatrix(file('nonhealth.json', { professions: {}, otherHealth: [], nonHealth: ['clinical'] })),
    ).toThrow(/nonHealth: non-health staff may only read/);
    expect(() => loadSharingMatrix(file('broken.json', '{'))).toThrow(/not a readable JSON file/);
    expect(() => loadSharingMatrix(join(dir, 'missing.json'))).toThrow(/GW_SHARING_MATRIX_FILE/);
  });
});
