import { GW } from '@gw/fhir';

/** Systems and fixed values of the synthetic territory (FR Core / ANS nomenclatures, DOMAIN.md §3). */
export const IDNATSTRUCT = 'urn:oid:1.2.250.1.71.4.2.2';
export const GW_PRACTITIONER_PROFILE = `${GW}/fhir/StructureDefinition/gw-practitioner`;
export const GW_ORGANIZATION_PROFILE = `${GW}/fhir/StructureDefinition/gw-organization`;
export const GW_ENCOUNTER_PROFILE = `${GW}/fhir/StructureDefinition/gw-encounter`;
export const GW_TASK_PROFILE = `${GW}/fhir/StructureDefinition/gw-task`;
/** INS-NIR of test patients (DOMAIN.md §3: test data uses 1.4.10). */
export const INS_TEST_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.10';
export const PROFESSION = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
export const SPECIALTY = 'https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale';
export const CARE_TEAM_ROLE = `${GW}/fhir/CodeSystem/care-team-role`;
/** ALD numbers (1..30 list, 31 hors liste, 32 polypathologie) on Coverage exceptions (fmt-contract). */
export const ALD_SYSTEM = `${GW}/fhir/CodeSystem/ald`;
/** Coverage.type of the complémentaire santé solidaire (code C2S). */
export const COVERAGE_TYPE_SYSTEM = `${GW}/fhir/CodeSystem/coverage-type`;
/** Identifier of the territory marker (the CPTS Organization): `seed|patients|asOf`. */
export const TERRITORY_RUN_SYSTEM = `${GW}/fhir/NamingSystem/synthetic-territory`;

export const FAMILY_NAMES = [
  'MARTIN',
  'BERNARD',
  'THOMAS',
  'PETIT',
  'ROBERT',
  'RICHARD',
  'DURAND',
  'DUBOIS',
  'MOREAU',
  'LAURENT',
  'SIMON',
  'MICHEL',
  'LEFÈVRE',
  'LEROY',
  'ROUX',
  'DAVID',
  'BERTRAND',
  'MOREL',
  'FOURNIER',
  'GIRARD',
  'BONNET',
  'DUPONT',
  'LAMBERT',
  'FONTAINE',
  'ROUSSEAU',
  'VINCENT',
  'MÜLLER',
  'LEFEBVRE',
  'FAURE',
  'ANDRÉ',
  'MERCIER',
  'BLANC',
  'GUÉRIN',
  'BOYER',
  'GARNIER',
  'CHEVALIER',
  'FRANÇOIS',
  'LEGRAND',
  'GAUTHIER',
  'GARCIA',
  'PERRIN',
  'ROBIN',
  'CLÉMENT',
  'MORIN',
  'NICOLAS',
  'HENRY',
  'ROUSSEL',
  'MATHIEU',
  'GAUTIER',
  'MASSON',
];
export const GIVEN_FEMALE = [
  'MARIE',
  'JEANNE',
  'FRANÇOISE',
  'MONIQUE',
  'CATHERINE',
  'NATHALIE',
  'ISABELLE',
  'SYLVIE',
  'ANNE',
  'CHRISTINE',
  'SOPHIE',
  'CÉLINE',
  'JULIE',
  'CAMILLE',
  'LÉA',
  'EMMA',
  'CHLOÉ',
  'MANON',
  'INÈS',
  'JADE',
  'LOUISE',
  'HÉLÈNE',
];
export const GIVEN_MALE = [
  'JEAN',
  'PIERRE',
  'MICHEL',
  'ANDRÉ',
  'PHILIPPE',
  'ALAIN',
  'BERNARD',
  'JACQUES',
  'DANIEL',
  'PATRICK',
  'NICOLAS',
  'CHRISTOPHE',
  'LAURENT',
  'THOMAS',
  'JULIEN',
  'LUCAS',
  'HUGO',
  'LÉO',
  'GABRIEL',
  'RAPHAËL',
  'LOUIS',
  'JÉRÔME',
];
export const PLACE_PREFIX = [
  'Saint-Martin',
  'Sainte-Croix',
  'Villeneuve',
  'Montagnac',
  'Beaulieu',
  'Champclaux',
  'Roche',
  'Fontenay',
  'Vaux',
  'Bellevue',
  'Marsac',
  'Lavergne',
];
export const PLACE_SUFFIX = [
  '',
  '-sur-Allier',
  '-les-Bois',
  '-le-Haut',
  '-en-Val',
  '-la-Forêt',
  '-de-Combrailles',
  '-sous-Roche',
];
/** Departments the synthetic territories are placed in (one per seed, so two seeds do not share communes). */
export const DEPARTMENTS = ['63', '15', '43', '03', '19', '23', '87', '42', '71', '58'];

/**
 * Age pyramid of France by 5-year band (share of the population, INSEE 2024 estimates rounded),
 * 0–4 to 100+, and the share of women in each band.
 */
export const AGE_BANDS_5Y: readonly { share: number; female: number }[] = [
  { share: 5.2, female: 0.49 },
  { share: 5.8, female: 0.49 },
  { share: 6.2, female: 0.49 },
  { share: 6.2, female: 0.49 },
  { share: 5.8, female: 0.49 },
  { share: 5.6, female: 0.5 },
  { share: 6.0, female: 0.51 },
  { share: 6.3, female: 0.51 },
  { share: 6.2, female: 0.51 },
  { share: 6.4, female: 0.51 },
  { share: 6.6, female: 0.51 },
  { share: 6.6, female: 0.52 },
  { share: 6.3, female: 0.52 },
  { share: 5.9, female: 0.53 },
  { share: 5.5, female: 0.54 },
  { share: 4.3, female: 0.56 },
  { share: 3.0, female: 0.6 },
  { share: 2.1, female: 0.65 },
  { share: 1.0, female: 0.72 },
  { share: 0.3, female: 0.8 },
  { share: 0.05, female: 0.85 },
];
