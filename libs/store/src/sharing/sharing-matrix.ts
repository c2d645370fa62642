import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * Resource classes of the profession matrix (R.1110-1: only what each professional's mission
 * needs). A resource type no class names is `clinical`.
 */
export const RESOURCE_CLASSES = [
  'demographics',
  'appointments',
  'tasks',
  'communication',
  'care-team',
  'clinical',
  'medication',
  'documents',
] as const;
export type ResourceClass = (typeof RESOURCE_CLASSES)[number];

/** The class → resource types map; `clinical` is every type not listed here. */
export const DEFAULT_CLASS_TYPES: Readonly<Record<Exclude<ResourceClass, 'clinical'>, readonly string[]>> = {
  demographics: ['Patient', 'RelatedPerson', 'Coverage'],
  appointments: ['Appointment', 'AppointmentResponse', 'Schedule', 'Slot'],
  tasks: ['Task'],
  communication: ['Communication', 'CommunicationRequest'],
  'care-team': ['CareTeam', 'EpisodeOfCare', 'Consent'],
  medication: [
    'MedicationRequest',
    'MedicationStatement',
    'MedicationDispense',
    'MedicationAdministration',
    'Medication',
    'Immunization',
  ],
  documents: ['DocumentReference', 'DocumentManifest', 'Binary', 'Composition'],
};

const ALL: readonly ResourceClass[] = RESOURCE_CLASSES;
const ADMINISTRATIVE: readonly ResourceClass[] = ['demographics', 'appointments', 'tasks', 'communication'];

/**
 * The default matrix, by TRE_G15 profession code. Médecins, chirurgiens-dentistes, sages-femmes
 * and infirmiers read the whole record; a pharmacien the treatment (no clinical notes, results or
 * documents); a masseur-kinésithérapeute clinical facts and documents but not prescriptions;
 * another health profession the care organisation only. Non-health staff (secrétaire,
 * coordinateur non soignant) never read clinical content.
 */
export const DEFAULT_MATRIX: SharingMatrix = {
  classes: DEFAULT_CLASS_TYPES,
  professions: {
    '10': ALL,
    '40': ALL,
    '50': ALL,
    '60': ALL,
    '21': [...ADMINISTRATIVE, 'care-team', 'medication'],
    '70': [...ADMINISTRATIVE, 'care-team', 'clinical', 'documents'],
  },
  otherHealth: [...ADMINISTRATIVE, 'care-team'],
  nonHealth: ADMINISTRATIVE,
};

export interface SharingMatrix {
  /** Resource types of each class but `clinical`. */
  classes: Readonly<Partial<Record<ResourceClass, readonly string[]>>>;
  /** Classes a health professional of this TRE_G15 profession code reads. */
  professions: Readonly<Record<string, readonly ResourceClass[]>>;
  /** Classes of a health professional whose profession the matrix does not name. */
  otherHealth: readonly ResourceClass[];
  /** Classes of non-health staff (Communication payload and notes are masked for them). */
  nonHealth: readonly ResourceClass[];
}

const classSchema = z.enum(RESOURCE_CLASSES);
const typeName = z.string().regex(/^[A-Z][A-Za-z]{1,63}$/, 'a FHIR resource type');

/** The JSON file GW_SHARING_MATRIX_FILE: the same shape; `classes` defaults to DEFAULT_CLASS_TYPES. */
export const sharingMatrixSchema = z
  .object({
    classes: z
      .record(classSchema, z.array(typeName))
      .refine((c) => !('clinical' in c), { message: '"clinical" is every type no other class names: do not list it' })
      .optional(),
    professions: z.record(z.string().regex(/^\d{1,3}$/, 'a TRE_G15 profession code'), z.array(classSchema)),
    otherHealth: z.array(classSchema),
    nonHealth: z.array(classSchema).refine((c) => !c.some((k) => !ADMINISTRATIVE.includes(k)), {
      message: `non-health staff may only read ${ADMINISTRATIVE.join(', ')} (L.1110-4, R.1110-2)`,
    }),
  })
  .strict();

/** Reads and checks a matrix file; throws an Error naming the file and every problem. */
export function loadSharingMatrix(file: string | undefined): SharingMatrix {
  if (!file) {
    return DEFAULT_MATRIX;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`GW_SHARING_MATRIX_FILE ${file}: not a readable JSON file (${(err as Error).message})`);
  }
  const parsed = sharingMatrixSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`GW_SHARING_MATRIX_FILE ${file} is not a valid sharing matrix: ${problems.join('; ')}`);
  }
  return { ...parsed.data, classes: parsed.data.classes ?? DEFAULT_CLASS_TYPES };
}

/** The class of a resource type under `matrix`. */
export function classOf(matrix: SharingMatrix, resourceType: string): ResourceClass {
  for (const [cls, types] of Object.entries(matrix.classes)) {
    if (types?.includes(resourceType)) {
      return cls as ResourceClass;
    }
  }
  return 'clinical';
}

/** The classes a person reads under `matrix`. */
export function classesFor(
  matrix: SharingMatrix,
  person: { health: boolean; profession?: string },
): readonly ResourceClass[] {
  if (!person.health) {
    return matrix.nonHealth;
  }
  return (person.profession ? matrix.professions[person.profession] : undefined) ?? matrix.otherHealth;
}

/**
 * The matrix as a condition on resource types: either the types allowed (`allow`) or, when
 * `clinical` (every unnamed type) is allowed, the types denied (`deny`).
 */
export function typeRule(
  matrix: SharingMatrix,
  classes: readonly ResourceClass[],
): { allow: string[] } | { deny: string[] } {
  const named = Object.entries(matrix.classes) as [ResourceClass, readonly string[]][];
  if (classes.includes('clinical')) {
    return { deny: named.filter(([c]) => !classes.includes(c)).flatMap(([, t]) => t) };
  }
  return { allow: named.filter(([c]) => classes.includes(c)).flatMap(([, t]) => t) };
}
