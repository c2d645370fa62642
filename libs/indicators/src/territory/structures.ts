import type { Organization, Practitioner, PractitionerRole, Resource } from '@medplum/fhirtypes';
import { nameUuid } from '@gw/platform';
import { FINESS, IDNATPS, ORGANIZATION_TYPE_SYSTEM, PRACTITIONER_FLAG_SYSTEM, RPPS, TERRITORY_COMMUNE_EXTENSION } from '@gw/fhir';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { Rng, luhnKey } from './random';
import {
  CARE_TEAM_ROLE, DEPARTMENTS, FAMILY_NAMES, GIVEN_FEMALE, GIVEN_MALE, GW_ORGANIZATION_PROFILE, GW_PRACTITIONER_PROFILE, PLACE_PREFIX, PLACE_SUFFIX,
  PROFESSION, SIRENE, SPECIALTY, TERRITORY_RUN_SYSTEM,
} from './vocabulary';

export type StructureKind = 'MSP' | 'CDS' | 'cabinet';

export interface Commune {
  insee: string;
  name: string;
  postalCode: string;
}

/** A care structure of the CPTS and the people patients meet there. */
export interface Structure {
  key: string;
  id: string;
  ref: string;
  kind: StructureKind;
  name: string;
  /** Share of the territory's patients (relative). */
  weight: number;
  gps: string[];
  nurses: string[];
  coordinator?: string;
  /** System of the local patient id (IPP) of this structure's software. */
  ippSystem: string;
  commune: number;
}

export interface Hospital {
  id: string;
  name: string;
  ref: string;
  visitSystem: string;
}

/** Everything but the patients: who is who in the territory (small: one entry per professional). */
export interface Layout {
  ns: string;
  dept: string;
  cpts: Organization & { id: string };
  communes: Commune[];
  structures: Structure[];
  hospitals: Hospital[];
  /** Retired médecins traitants still declared by some patients. */
  retired: string[];
  /** The caisse's fictitious MT number. */
  fictitious: string;
  /** Organizations (except the CPTS), Practitioners and PractitionerRoles, in load order. */
  resources: Resource[];
}

export function ownerTag(orgRef: string): { system: string; code: string } {
  return { system: OWNER_TAG_SYSTEM, code: orgRef };
}

/**
 * The territory's structures sized after DOMAIN.md §2: an MSP ~5 000 patients, a CDS ~4 000,
 * an isolated GP ~1 100; about half the patients in MSPs, 15 % in CDS, the rest with isolated GPs.
 */
export function buildLayout(seed: number, patients: number, asOf: string): Layout {
  const ns = `territory|${seed}|${patients}|${asOf}`;
  const rng = Rng.for(seed, `${ns}|layout`);
  const dept = DEPARTMENTS[Math.abs(seed) % DEPARTMENTS.length] as string;
  const id = (key: string): string => nameUuid(`${ns}|${key}`);
  const communes = Array.from({ length: Math.min(60, Math.max(3, Math.round(patients / 2500))) }, (_, k) => ({
    insee: `${dept}${String(10 + k * 4).padStart(3, '0')}`,
    name: `${PLACE_PREFIX[k % PLACE_PREFIX.length]}${PLACE_SUFFIX[Math.floor(k / PLACE_PREFIX.length) % PLACE_SUFFIX.length]}`,
    postalCode: `${dept}${String(100 + ((k * 10) % 900)).padStart(3, '0')}`,
  }));
  const cptsId = id('cpts');
  const cptsRef = `Organization/${cptsId}`;
  const resources: Resource[] = [];
  const structures: Structure[] = [];
  const counts: Record<StructureKind, number> = {
    MSP: Math.max(1, Math.round((patients * 0.5) / 5000)),
    CDS: Math.max(1, Math.round((patients * 0.15) / 4000)),
    cabinet: Math.max(2, Math.round((patients * 0.35) / 1100)),
  };
  const shares: Record<StructureKind, number> = { MSP: 0.5, CDS: 0.15, cabinet: 0.35 };
  let serial = 0;
  const professional = (key: string, orgRef: string, profession: 'gp' | 'nurse' | 'coordinator', active = true): string => {
    const pid = id(`practitioner|${key}`);
    const r = Rng.for(seed, `${ns}|practitioner|${key}`);
    const female = r.chance(profession === 'gp' ? 0.5 : 0.85);
    const family = r.pick(FAMILY_NAMES);
    const given = r.pick(female ? GIVEN_FEMALE : GIVEN_MALE);
    const rpps10 = `10${String(r.int(0, 99_999_999)).padStart(8, '0')}`;
    const rpps = rpps10 + luhnKey(rpps10);
    const practitioner: Practitioner = {
      resourceType: 'Practitioner',
      id: pid,
      meta: { profile: [GW_PRACTITIONER_PROFILE], tag: [ownerTag(orgRef)] },
      identifier: [{ system: IDNATPS, value: `8${rpps}` }, { system: RPPS, value: rpps }],
      active,
      name: [{ use: 'official', family, given: [capitalise(given)], ...(profession === 'gp' ? { prefix: ['Dr'] } : {}) }],
      gender: female ? 'female' : 'male',
      telecom: active ? [{ system: 'email', value: `${slug(given)}.${slug(family)}.${rpps.slice(-4)}@${dept}.mssante.fr` }] : undefined,
    };
    const role: PractitionerRole = {
      resourceType: 'PractitionerRole',
      id: id(`role|${key}`),
      meta: { tag: [ownerTag(orgRef)] },
      active,
      practitioner: { reference: `Practitioner/${pid}` },
      organization: { reference: orgRef },
      code: [
        profession === 'gp'
          ? { coding: [{ system: PROFESSION, code: '10', display: 'Médecin' }] }
          : profession === 'nurse'
            ? { coding: [{ system: PROFESSION, code: '60', display: 'Infirmier' }] }
            : { coding: [{ system: CARE_TEAM_ROLE, code: 'coordinator', display: 'Coordinateur de parcours' }] },
      ],
      specialty: profession === 'gp' ? [{ coding: [{ system: SPECIALTY, code: 'SM54', display: 'Médecine générale' }] }] : undefined,
    };
    resources.push(practitioner, role);
    return `Practitioner/${pid}`;
  };
  for (const kind of ['MSP', 'CDS', 'cabinet'] as const) {
    for (let k = 0; k < counts[kind]; k++) {
      const key = `${kind}-${k + 1}`;
      const sid = id(`org|${key}`);
      const ref = `Organization/${sid}`;
      const commune = (serial++ * 7) % communes.length;
      const weight = shares[kind] / counts[kind];
      const place = communes[commune] as Commune;
      const gpCount = kind === 'cabinet' ? 1 : Math.max(2, Math.round((patients * weight) / (kind === 'MSP' ? 1050 : 1000)));
      const org: Organization = {
        resourceType: 'Organization',
        id: sid,
        meta: { profile: [GW_ORGANIZATION_PROFILE], tag: [ownerTag(ref)] },
        active: true,
        identifier: kind === 'cabinet' ? [{ system: SIRENE, value: siret(rng) }] : [{ system: FINESS, value: finess(dept, rng) }, { system: SIRENE, value: siret(rng) }],
        type: [{ coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: kind }] }],
        name: kind === 'MSP' ? `MSP de ${place.name}` : kind === 'CDS' ? `Centre de santé de ${place.name}` : `Cabinet médical ${k + 1} de ${place.name}`,
        partOf: { reference: cptsRef },
        address: [{ city: place.name, postalCode: place.postalCode, country: 'FR' }],
      };
      resources.push(org);
      const s: Structure = { key, id: sid, ref, kind, name: org.name as string, weight, gps: [], nurses: [], ippSystem: `urn:oid:1.2.250.1.999.${Math.abs(seed) % 1000}.${serial}`, commune };
      for (let g = 0; g < gpCount; g++) {
        s.gps.push(professional(`${key}-gp-${g + 1}`, ref, 'gp'));
      }
      const nurses = kind === 'MSP' ? Math.max(1, Math.round(gpCount * 0.8)) : kind === 'CDS' ? Math.max(1, Math.round(gpCount / 2)) : 0;
      for (let n = 0; n < nurses; n++) {
        s.nurses.push(professional(`${key}-nurse-${n + 1}`, ref, 'nurse'));
      }
      if (kind === 'MSP') {
        s.coordinator = professional(`${key}-coordinator`, ref, 'coordinator');
      }
      structures.push(s);
    }
  }
  const gpTotal = structures.reduce((n, s) => n + s.gps.length, 0);
  const retired = Array.from({ length: Math.max(1, Math.round(gpTotal * 0.05)) }, (_, k) => professional(`retired-${k + 1}`, cptsRef, 'gp', false));
  const fictitiousId = id('practitioner|fictitious');
  resources.push({
    resourceType: 'Practitioner',
    id: fictitiousId,
    meta: { tag: [ownerTag(cptsRef), { system: PRACTITIONER_FLAG_SYSTEM, code: 'fictitious', display: 'Numéro de médecin traitant fictif (caisse)' }] },
    active: true,
    name: [{ text: 'Médecin traitant fictif (caisse)' }],
  } as Practitioner);
  const hospitals: Hospital[] = ['Centre hospitalier', 'Clinique'].map((label, k) => {
    const hid = id(`hospital|${k + 1}`);
    const href = `Organization/${hid}`;
    resources.push({
      resourceType: 'Organization',
      id: hid,
      meta: { profile: [GW_ORGANIZATION_PROFILE], tag: [ownerTag(href)] },
      active: true,
      identifier: [{ system: FINESS, value: finess(dept, rng) }],
      type: [{ coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: 'hospital' }] }],
      name: `${label} de ${(communes[0] as Commune).name}`,
    } as Organization);
    return { id: hid, name: `${label} de ${(communes[0] as Commune).name}`, ref: href, visitSystem: `urn:oid:1.2.250.1.999.${Math.abs(seed) % 1000}.9${k + 1}` };
  });
  const cpts: Organization & { id: string } = {
    resourceType: 'Organization',
    id: cptsId,
    meta: { profile: [GW_ORGANIZATION_PROFILE], tag: [ownerTag(cptsRef)] },
    active: true,
    identifier: [{ system: SIRENE, value: siret(rng) }, { system: TERRITORY_RUN_SYSTEM, value: `${seed}|${patients}|${asOf}` }],
    type: [{ coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: 'CPTS' }] }],
    name: `CPTS de ${(communes[0] as Commune).name} (synthétique)`,
    telecom: [{ system: 'email', value: `coordination.cpts-${dept}-${Math.abs(seed)}@${dept}.mssante.fr` }],
    extension: communes.map((c) => ({ url: TERRITORY_COMMUNE_EXTENSION, valueCode: c.insee })),
  };
  return { ns, dept, cpts, communes, structures, hospitals, retired, fictitious: `Practitioner/${fictitiousId}`, resources };
}

/** FINESS: department + 6 digits + Luhn key (9 characters). */
function finess(dept: string, rng: Rng): string {
  const body = `${dept}${String(rng.int(0, 999_999)).padStart(6, '0')}`;
  return body + luhnKey(body);
}

/** SIRET: SIREN (8 digits + Luhn key) + NIC (4 digits), Luhn key over the 14 digits. */
function siret(rng: Rng): string {
  const siren8 = String(rng.int(10_000_000, 99_999_999));
  const body = `${siren8}${luhnKey(siren8)}${String(rng.int(1, 9999)).padStart(4, '0')}`;
  return body + luhnKey(body);
}

function capitalise(s: string): string {
  return s.charAt(0) + s.slice(1).toLowerCase();
}

function slug(s: string): string {
  return s.normalize('NFD').replace(/[^A-Za-z]/g, '').toLowerCase();
}
