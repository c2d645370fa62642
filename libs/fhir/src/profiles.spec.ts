import type {
  Encounter,
  Extension,
  Identifier,
  OperationOutcomeIssue,
  Organization,
  Patient,
  Practitioner,
  Reference,
  Resource,
  StructureDefinition,
  Task,
} from '@medplum/fhirtypes';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProfileRegistry } from './profiles';

const PROFILES_DIR = join(__dirname, '../../../fhir-profiles');
const CANONICAL = 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/';
const RELIABILITY = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability';
const BIRTH_PLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
const INSEE_CODE = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code';
const INS_NIR_TEST = 'urn:oid:1.2.250.1.213.1.4.10';
const INS_NIA = 'urn:oid:1.2.250.1.213.1.4.9';
const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
const RPPS = 'https://rpps.esante.gouv.fr';
const FINESS = 'https://finess.esante.gouv.fr';
const IDNATSTRUCT = 'urn:oid:1.2.250.1.71.4.2.2';
const INS_NIR_VALUE = '280027511204588';
const COMMUNE_CODES = 'https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM';
const IDENTIFIER_TYPES = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identifier-type';

let registry: ProfileRegistry;

beforeAll(() => {
  registry = ProfileRegistry.fromDirectory(PROFILES_DIR);
});

function meta(profile: string): Resource['meta'] {
  return { profile: [CANONICAL + profile] };
}

function errors(resource: Resource): OperationOutcomeIssue[] {
  return registry.validate(resource).filter((issue) => issue.severity === 'error');
}

/** Asserts an error at `expression` whose text contains `text` (a constraint key or medplum's message). */
function expectError(resource: Resource, expression: string, text: string): void {
  expect(errors(resource)).toContainEqual(
    expect.objectContaining({ expression: [expression], details: { text: expect.stringContaining(text) } }),
  );
}

function reliability(status: string): Extension {
  return {
    url: RELIABILITY,
    extension: [
      {
        url: 'identityStatus',
        valueCoding: { system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445', code: status },
      },
      { url: 'validationDate', valueDate: '2024-03-12' },
    ],
  };
}

function birthPlace(inseeCode: string, city: string): Extension {
  return {
    url: BIRTH_PLACE,
    valueAddress: {
      city,
      extension: [{ url: INSEE_CODE, valueCoding: { system: COMMUNE_CODES, code: inseeCode } }],
    },
  };
}

function insNir(value: string): Identifier {
  return {
    use: 'official',
    type: { coding: [{ system: IDENTIFIER_TYPES, code: 'INS-NIR' }] },
    system: INS_NIR_TEST,
    value,
  };
}

function qualifiedPatient(overrides: Partial<Patient> = {}): Patient {
  return {
    resourceType: 'Patient',
    meta: meta('gw-patient'),
    identifier: [insNir(INS_NIR_VALUE), { use: 'usual', system: 'urn:oid:1.2.250.1.999.1.2', value: 'IPP-004512' }],
    extension: [reliability('QUAL'), birthPlace('75056', 'Paris')],
    name: [{ use: 'official', family: 'DUPONT', given: ['Marie'] }],
    gender: 'female',
    birthDate: '1980-02-14',
    ...overrides,
  };
}

function practitioner(overrides: Partial<Practitioner> = {}): Practitioner {
  return {
    resourceType: 'Practitioner',
    meta: meta('gw-practitioner'),
    identifier: [
      { system: IDNATPS, value: '810101234567' },
      { system: RPPS, value: '10101234567' },
    ],
    name: [{ family: 'MARTIN', given: ['Paul'], prefix: ['Dr'] }],
    ...overrides,
  };
}

function organization(overrides: Partial<Organization> = {}): Organization {
  return {
    resourceType: 'Organization',
    meta: meta('gw-organization'),
    identifier: [
      { system: FINESS, value: '750712184' },
      { system: IDNATSTRUCT, value: '1750712184' },
    ],
    name: 'Maison de santé pluriprofessionnelle du Marais',
    ...overrides,
  };
}

function encounter(overrides: Partial<Encounter> = {}): Encounter {
  return {
    resourceType: 'Encounter',
    meta: meta('gw-encounter'),
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
    subject: { reference: 'Patient/pat-1' },
    period: { start: '2024-05-02T09:30:00+02:00', end: '2024-05-06T11:00:00+02:00' },
    hospitalization: {
      dischargeDisposition: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/discharge-disposition', code: 'home' }],
      },
    },
    ...overrides,
  };
}

function task(overrides: Partial<Task> = {}): Task {
  return {
    resourceType: 'Task',
    meta: meta('gw-task'),
    status: 'ready',
    intent: 'order',
    for: { reference: 'Patient/pat-1' },
    owner: { reference: 'Practitioner/idel-3' },
    authoredOn: '2024-05-06T11:05:00+02:00',
    restriction: { period: { end: '2024-05-08' } },
    description: 'Appeler le patient 48 h après sa sortie',
    ...overrides,
  };
}

describe('ProfileRegistry.fromDirectory', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) {
      rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    }
  });

  /** Writes a copy of gw-encounter with `edit` applied, alone in a fresh folder. */
  function folderWithEditedProfile(edit: (sd: StructureDefinition) => void): string {
    const sd = JSON.parse(
      readFileSync(join(PROFILES_DIR, 'StructureDefinition-gw-encounter.json'), 'utf8'),
    ) as StructureDefinition;
    edit(sd);
    dir = mkdtempSync(join(tmpdir(), 'gw-profiles-'));
    writeFileSync(join(dir, 'profile.json'), JSON.stringify(sd));
    return dir;
  }

  it('loads the five gateway profiles', () => {
    expect(registry.urls()).toEqual(
      ['gw-encounter', 'gw-organization', 'gw-patient', 'gw-practitioner', 'gw-task'].map((id) => CANONICAL + id),
    );
    expect(registry.has(CANONICAL + 'gw-patient')).toBe(true);
    expect(registry.has(CANONICAL + 'gw-medication')).toBe(false);
    expect(registry.get(CANONICAL + 'gw-medication')).toBeUndefined();
  });

  it('builds a snapshot from the base resource with the differential applied', () => {
    const sd = registry.get(CANONICAL + 'gw-practitioner') as StructureDefinition;
    const elements = sd.snapshot?.element ?? [];
    expect(sd.type).toBe('Practitioner');
    expect(elements[0].path).toBe('Practitioner');
    expect(elements.find((e) => e.path === 'Practitioner.name')).toMatchObject({ min: 1, max: '*' });
    expect(elements.find((e) => e.path === 'Practitioner.birthDate')).toMatchObject({ min: 0, max: '1' });
    const rootKeys = (elements[0].constraint ?? []).map((c) => c.key);
    expect(rootKeys).toEqual(expect.arrayContaining(['dom-2', 'gw-prac-1']));
  });

  it('resolves a versioned canonical only for the version it holds', () => {
    expect(registry.has(CANONICAL + 'gw-task|0.1.0')).toBe(true);
    expect(registry.has(CANONICAL + 'gw-task|9.9.9')).toBe(false);
  });

  it('refuses a profile that uses slicing', () => {
    const folder = folderWithEditedProfile((sd) => {
      sd.differential?.element.push({
        id: 'Encounter.identifier:visit',
        path: 'Encounter.identifier',
        sliceName: 'visit',
      });
    });
    expect(() => ProfileRegistry.fromDirectory(folder)).toThrow(/profile\.json: .*slicing is not supported/);
  });

  it('refuses an element nested in a datatype, which it could not enforce', () => {
    const folder = folderWithEditedProfile((sd) => {
      sd.differential?.element.push({ id: 'Encounter.subject.reference', path: 'Encounter.subject.reference', min: 1 });
    });
    expect(() => ProfileRegistry.fromDirectory(folder)).toThrow(/Encounter\.subject\.reference: no such element/);
  });

  it('refuses a warning-level constraint, which medplum never evaluates', () => {
    const folder = folderWithEditedProfile((sd) => {
      sd.differential?.element[0].constraint?.push({
        key: 'gw-enc-9',
        severity: 'warning',
        human: 'should have a location',
        expression: 'location.exists()',
      });
    });
    expect(() => ProfileRegistry.fromDirectory(folder)).toThrow(/constraint gw-enc-9 needs .* severity error/);
  });

  it('refuses a differential that loosens the base cardinality', () => {
    const folder = folderWithEditedProfile((sd) => {
      sd.differential?.element.push({ id: 'Encounter.serviceType', path: 'Encounter.serviceType', max: '*' });
    });
    expect(() => ProfileRegistry.fromDirectory(folder)).toThrow(/cardinality 0\.\.\* does not narrow 0\.\.1/);
  });

  it('names the file that is not valid JSON', () => {
    dir = mkdtempSync(join(tmpdir(), 'gw-profiles-'));
    writeFileSync(join(dir, 'broken.json'), '{ "resourceType": ');
    expect(() => ProfileRegistry.fromDirectory(dir as string)).toThrow(/broken\.json: not valid JSON/);
  });
});

describe('ProfileRegistry.validate', () => {
  it('ignores a meta.profile it does not know', () => {
    const patient: Patient = {
      resourceType: 'Patient',
      meta: { profile: ['https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient'] },
      extension: [reliability('QUAL')],
    };
    expect(registry.validate(patient)).toEqual([]);
  });

  it('leaves a resource that declares no profile alone', () => {
    expect(registry.validate({ resourceType: 'Practitioner' })).toEqual([]);
  });

  it('rejects a resource whose type is not the type of the declared profile, at meta.profile', () => {
    const resource: Practitioner = { resourceType: 'Practitioner', meta: meta('gw-patient') };
    expectError(resource, 'meta.profile', 'applies to Patient, not to Practitioner');
  });

  it('still reports base R4 errors such as a malformed birthDate', () => {
    expectError(qualifiedPatient({ birthDate: '14/02/1980' }), 'Patient.birthDate', 'Invalid date format');
  });

  it('reports every broken rule of the same element at once, not only the first', () => {
    const keys = errors({ resourceType: 'Patient', meta: meta('gw-patient'), extension: [reliability('QUAL')] })
      .filter((issue) => issue.expression?.[0] === 'Patient')
      .map((issue) => /gw-pat-\d+/.exec(issue.details?.text ?? '')?.[0]);
    expect(keys.sort()).toEqual(['gw-pat-3', 'gw-pat-4', 'gw-pat-5', 'gw-pat-6']);
  });
});

describe('gw-patient', () => {
  it('accepts a Patient with a qualified INS-NIR and INSEE birth place', () => {
    expect(registry.validate(qualifiedPatient())).toEqual([]);
  });

  it('accepts a Patient born in Corsica (INSEE 2A004) with a 2A INS-NIR', () => {
    const patient = qualifiedPatient({
      identifier: [insNir('185072A00403183')],
      extension: [reliability('QUAL'), birthPlace('2A004', 'Ajaccio')],
      name: [{ use: 'official', family: 'SANTONI', given: ['Ghjuvanni'] }],
      gender: 'male',
      birthDate: '1985-07-21',
    });
    expect(registry.validate(patient)).toEqual([]);
  });

  it('accepts a RECUP identity identified by an INS-NIA and born abroad (99xxx)', () => {
    const patient = qualifiedPatient({
      identifier: [{ use: 'temp', system: INS_NIA, value: '293079913501269' }],
      extension: [reliability('RECUP'), birthPlace('99135', 'Amsterdam')],
      birthDate: '1993-07-02',
    });
    expect(registry.validate(patient)).toEqual([]);
  });

  it('accepts a provisional identity with no INS, no birth date and no gender', () => {
    const patient: Patient = {
      resourceType: 'Patient',
      meta: meta('gw-patient'),
      extension: [reliability('PROV')],
      name: [{ use: 'usual', family: 'Inconnu', given: ['Jean'] }],
    };
    expect(registry.validate(patient)).toEqual([]);
  });

  it('rejects an INS-NIR of 14 digits at Patient.identifier[0]', () => {
    expectError(qualifiedPatient({ identifier: [insNir('28002751120458')] }), 'Patient.identifier[0]', 'gw-pat-10');
  });

  it('rejects an INS-NIA with letters outside the department at Patient.identifier[0]', () => {
    const patient = qualifiedPatient({ identifier: [{ system: INS_NIA, value: '2930799X3501269' }] });
    expectError(patient, 'Patient.identifier[0]', 'gw-pat-11');
  });

  it('rejects an identifier without a system at Patient.identifier[1]', () => {
    const patient = qualifiedPatient({ identifier: [insNir(INS_NIR_VALUE), { value: 'IPP-004512' }] });
    expectError(patient, 'Patient.identifier[1]', 'gw-pat-9');
  });

  it('rejects a QUAL identity without an INS identifier, pointing at Patient', () => {
    const patient = qualifiedPatient({ identifier: [{ system: 'urn:oid:1.2.250.1.999.1.2', value: 'IPP-004512' }] });
    expectError(patient, 'Patient', 'gw-pat-3');
  });

  it('rejects a RECUP identity with only a used name, pointing at Patient', () => {
    const patient = qualifiedPatient({ extension: [reliability('RECUP')], name: [{ use: 'usual', family: 'DURAND' }] });
    expectError(patient, 'Patient', 'gw-pat-4');
  });

  it("rejects a QUAL identity with gender 'unknown' or no birth date, pointing at Patient", () => {
    const patient = qualifiedPatient({ gender: 'unknown', birthDate: undefined });
    expectError(patient, 'Patient', 'gw-pat-5');
    expectError(patient, 'Patient', 'gw-pat-6');
  });

  it('rejects an identity status outside PROV/RECUP/VALI/QUAL at Patient.extension[0]', () => {
    expectError(qualifiedPatient({ extension: [reliability('CERT')] }), 'Patient.extension[0]', 'gw-pat-7');
  });

  it('rejects two identity reliability extensions, pointing at Patient', () => {
    const patient = qualifiedPatient({ extension: [reliability('QUAL'), reliability('PROV')] });
    expectError(patient, 'Patient', 'gw-pat-1');
  });

  it('rejects a birth place INSEE code of 4 characters at Patient.extension[1]', () => {
    const patient = qualifiedPatient({ extension: [reliability('QUAL'), birthPlace('7505', 'Paris')] });
    expectError(patient, 'Patient.extension[1]', 'gw-pat-8');
  });
});

describe('gw-practitioner', () => {
  it('accepts a practitioner with an IdNatPS and the bare RPPS', () => {
    expect(registry.validate(practitioner())).toEqual([]);
  });

  it('accepts a practitioner known only by an ADELI-based IdNatPS', () => {
    expect(registry.validate(practitioner({ identifier: [{ system: IDNATPS, value: '0751234567' }] }))).toEqual([]);
  });

  it('rejects an RPPS of 10 digits at Practitioner.identifier[1]', () => {
    const resource = practitioner({
      identifier: [
        { system: IDNATPS, value: '810101234567' },
        { system: RPPS, value: '1010123456' },
      ],
    });
    expectError(resource, 'Practitioner.identifier[1]', 'gw-prac-3');
  });

  it("rejects an IdNatPS that is neither '8' + RPPS nor '0' + ADELI at Practitioner.identifier[0]", () => {
    const resource = practitioner({ identifier: [{ system: IDNATPS, value: '910101234567' }] });
    expectError(resource, 'Practitioner.identifier[0]', 'gw-prac-2');
  });

  it('rejects a practitioner with only a local identifier, pointing at Practitioner', () => {
    const resource = practitioner({
      identifier: [{ system: 'https://cds-belleville.example.fr/staff', value: 'P-17' }],
    });
    expectError(resource, 'Practitioner', 'gw-prac-1');
  });

  it('rejects a practitioner without a name at Practitioner.name', () => {
    expectError(practitioner({ name: undefined }), 'Practitioner.name', 'Missing required property');
  });
});

describe('gw-organization', () => {
  it('accepts an MSP with a FINESS and its IdNatStruct', () => {
    expect(registry.validate(organization())).toEqual([]);
  });

  it('accepts a Corsican FINESS and a SIRET', () => {
    const resource = organization({
      identifier: [
        { system: FINESS, value: '2A0000014' },
        { system: 'https://sirene.fr', value: '26200001700019' },
      ],
      name: "Centre hospitalier d'Ajaccio",
    });
    expect(registry.validate(resource)).toEqual([]);
  });

  it('rejects a FINESS of 8 characters at Organization.identifier[0]', () => {
    const resource = organization({ identifier: [{ system: FINESS, value: '75071218' }] });
    expectError(resource, 'Organization.identifier[0]', 'gw-org-2');
  });

  it('rejects a SIRET of 13 digits at Organization.identifier[0]', () => {
    const resource = organization({ identifier: [{ system: 'https://sirene.fr', value: '2620000170001' }] });
    expectError(resource, 'Organization.identifier[0]', 'gw-org-3');
  });

  it('accepts every IdNatStruct prefix FR Core allows: 0 ADELI cabinet, 1 FINESS, 2 SIREN, 3 SIRET, 4 RPPS cabinet', () => {
    for (const value of [
      '0751234567',
      '07512345670001',
      '1750712184',
      '2262000017',
      '326200001700019',
      '410003456789',
      '4100034567890001',
    ]) {
      const resource = organization({ identifier: [{ system: IDNATSTRUCT, value }] });
      expect({ value, issues: registry.validate(resource) }).toEqual({ value, issues: [] });
    }
  });

  it('rejects an IdNatStruct whose prefix FR Core does not know, or whose body does not fit its prefix, at Organization.identifier[1]', () => {
    for (const value of ['226200001', '41000345678']) {
      expectError(
        organization({
          identifier: [
            { system: FINESS, value: '750712184' },
            { system: IDNATSTRUCT, value },
          ],
        }),
        'Organization.identifier[1]',
        'gw-org-4',
      );
    }
    const resource = organization({
      identifier: [
        { system: FINESS, value: '750712184' },
        { system: IDNATSTRUCT, value: '9750712184' },
      ],
    });
    expectError(resource, 'Organization.identifier[1]', 'gw-org-4');
  });

  it('rejects an organization with neither a national identifier nor a name', () => {
    const resource = organization({
      identifier: [{ system: 'https://cpts-paris12.example.fr/structures', value: 'S-4' }],
      name: undefined,
    });
    expectError(resource, 'Organization', 'gw-org-1');
    expectError(resource, 'Organization.name', 'Missing required property');
  });
});

describe('gw-encounter', () => {
  it('accepts a finished hospital stay with its period and discharge disposition', () => {
    expect(registry.validate(encounter())).toEqual([]);
  });

  it('accepts a planned encounter without a period', () => {
    const resource = encounter({ status: 'planned', period: undefined, hospitalization: undefined });
    expect(registry.validate(resource)).toEqual([]);
  });

  it('accepts a logical subject reference typed Patient, carrying the INS', () => {
    const subject: Reference<Patient> = { type: 'Patient', identifier: { system: INS_NIR_TEST, value: INS_NIR_VALUE } };
    expect(registry.validate(encounter({ subject }))).toEqual([]);
  });

  it('rejects an in-progress encounter without period.start, pointing at Encounter', () => {
    expectError(encounter({ status: 'in-progress', period: undefined }), 'Encounter', 'gw-enc-1');
  });

  it('rejects a finished encounter without period.end, pointing at Encounter', () => {
    expectError(encounter({ period: { start: '2024-05-02T09:30:00+02:00' } }), 'Encounter', 'gw-enc-2');
  });

  it('rejects a subject that is a Group at Encounter.subject', () => {
    expectError(encounter({ subject: { reference: 'Group/cpts-12' } }), 'Encounter.subject', 'gw-enc-3');
  });

  it('rejects an untyped identifier-only subject at Encounter.subject', () => {
    const resource = encounter({ subject: { identifier: { system: INS_NIR_TEST, value: INS_NIR_VALUE } } });
    expectError(resource, 'Encounter.subject', 'gw-enc-3');
  });

  it('rejects an encounter without subject at Encounter.subject', () => {
    expectError(encounter({ subject: undefined }), 'Encounter.subject', 'Missing required property');
  });
});

describe('gw-task', () => {
  it('accepts a ready follow-up task with an owner and a due date after authoredOn', () => {
    expect(registry.validate(task())).toEqual([]);
  });

  it('accepts a due date on the same day as authoredOn, whatever the precision', () => {
    const resource = task({ authoredOn: '2024-05-06T23:30:00+02:00', restriction: { period: { end: '2024-05-06' } } });
    expect(registry.validate(resource)).toEqual([]);
  });

  it('rejects a due date before authoredOn, pointing at Task', () => {
    expectError(task({ restriction: { period: { end: '2024-05-05T18:00:00+02:00' } } }), 'Task', 'gw-task-1');
  });

  it('rejects an in-progress task without owner, pointing at Task', () => {
    expectError(task({ status: 'in-progress', owner: undefined }), 'Task', 'gw-task-2');
  });

  it('rejects a task for a Practitioner at Task.for', () => {
    expectError(task({ for: { reference: 'Practitioner/idel-3' } }), 'Task.for', 'gw-task-3');
  });

  it('rejects a task without for and without intent', () => {
    const resource = task({ for: undefined, intent: undefined as unknown as Task['intent'] });
    expectError(resource, 'Task.for', 'Missing required property');
    expectError(resource, 'Task.intent', 'Missing required property');
  });
});
