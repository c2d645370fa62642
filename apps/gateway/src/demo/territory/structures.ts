import type { Organization, Practitioner, PractitionerRole, Resource } from '@medplum/fhirtypes';
import { nameUuid } from '@gw/platform';
import {
  FINESS,
  IDNATPS,
  ORGANIZATION_TYPE_SYSTEM,
  PRACTITIONER_FLAG_SYSTEM,
  RPPS,
  SIRENE,
  TERRITORY_COMMUNE_EXTENSION,
  luhnKey,
} from '@gw/fhir';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { Rng } from './random';
import {
  CARE_TEAM_ROLE,
  DEPARTMENTS,
  FAMILY_NAMES,
  GIVEN_FEMALE,
  GIVEN_MALE,
  GW_ORGANIZATION_PROFILE,
  GW_PRACTITIONER_PROFILE,
  PLACE_PREFIX,
  PLACE_SUFFIX,
  IDNATSTRUCT,
  PROFESSION,
  SPECIALTY,
  TERRITORY_RUN_SYSTEM,
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
  const b = new LayoutBuilder(seed, patients, asOf);
  const counts: Record<StructureKind, number> = {
    MSP: Math.max(2, Math.round((patients * SHARES.MSP) / 5000)),
    CDS: Math.max(1, Math.round((patients * SHARES.CDS) / 4000)),
    cabinet: Math.max(2, Math.round((patients * SHARES.cabinet) / 1100)),
  };
  const structures: Structure[] = [];
  for (const kind of ['MSP', 'CDS', 'cabinet'] as const) {
    for (let k = 0; k < counts[kind]; k++) {
      structures.push(b.structure(kind, k, SHARES[kind] / counts[kind]));
    }
  }
  const gpTotal = structures.reduce((n, s) => n + s.gps.length, 0);
  const retired = Array.from({ length: Math.max(1, Math.round(gpTotal * 0.05)) }, (_, k) =>
    b.professional(`retired-${k + 1}`, b.cptsRef, 'gp', false),
  );
  const fictitious = b.fictitiousMt();
  const hospitals = ['Centre hospitalier', 'Clinique'].map((label, k) => b.hospital(label, k));
  const cpts = b.cpts();
  return {
    ns: b.ns,
    dept: b.dept,
    cpts,
    communes: b.communes,
    structures,
    hospitals,
    retired,
    fictitious,
    resources: b.resources,
  };
}

const SHARES: Record<StructureKind, number> = { MSP: 0.5, CDS: 0.15, cabinet: 0.35 };

/** Builds the layout's resources in a fixed order (the random draws, hence the output, depend on it). */
class LayoutBuilder {
  readonly ns: string;
  readonly dept: string;
  readonly communes: Commune[];
  readonly resources: Resource[] = [];
  readonly cptsRef: string;
  private readonly rng: Rng;
  private serial = 0;

  constructor(
    private readonly seed: number,
    private readonly patients: number,
    private readonly asOf: string,
  ) {
    this.ns = `territory|${seed}|${patients}|${asOf}`;
    this.rng = Rng.for(seed, `${this.ns}|layout`);
    this.dept = DEPARTMENTS[Math.abs(seed) % DEPARTMENTS.length] as string;
    const dept = this.dept;
    this.communes = Array.from({ length: Math.min(60, Math.max(3, Math.round(patients / 2500))) }, (_, k) => ({
      insee: `${dept}${String(10 + k * 4).padStart(3, '0')}`,
      name: `${PLACE_PREFIX[k % PLACE_PREFIX.length]}${PLACE_SUFFIX[Math.floor(k / PLACE_PREFIX.length) % PLACE_SUFFIX.length]}`,
      postalCode: `${dept}${String(100 + ((k * 10) % 900)).padStart(3, '0')}`,
    }));
    this.cptsRef = `Organization/${this.id('cpts')}`;
  }

  id(key: string): string {
    return nameUuid(`${this.ns}|${key}`);
  }

  /** A member structure with its GPs, nurses and (MSP) coordinator. */
  structure(kind: StructureKind, k: number, weight: number): Structure {
    const key = `${kind}-${k + 1}`;
    const sid = this.id(`org|${key}`);
    const ref = `Organization/${sid}`;
    const commune = (this.serial++ * 7) % this.communes.length;
    const place = this.communes[commune] as Commune;
    const gpCount =
      kind === 'cabinet' ? 1 : Math.max(2, Math.round((this.patients * weight) / (kind === 'MSP' ? 1050 : 1000)));
    const name =
      kind === 'MSP'
        ? `MSP de ${place.name}`
        : kind === 'CDS'
          ? `Centre de santé de ${place.name}`
          : `Cabinet médical ${k + 1} de ${place.name}`;
    this.resources.push({
      resourceType: 'Organization',
      id: sid,
      meta: { profile: [GW_ORGANIZATION_PROFILE], tag: [ownerTag(ref)] },
      active: true,
      identifier: structureIdentifiers(kind === 'cabinet' ? undefined : finess(this.dept, this.rng), siret(this.rng)),
      type: [{ coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: kind }] }],
      name,
      partOf: { reference: this.cptsRef },
      address: [{ city: place.name, postalCode: place.postalCode, country: 'FR' }],
    } as Organization);
    const s: Structure = {
      key,
      id: sid,
      ref,
      kind,
      name,
      weight,
      gps: [],
      nurses: [],
      ippSystem: `urn:oid:1.2.250.1.999.${Math.abs(this.seed) % 1000}.${this.serial}`,
      commune,
    };
    for (let g = 0; g < gpCount; g++) {
      s.gps.push(this.professional(`${key}-gp-${g + 1}`, ref, 'gp'));
    }
    const nurses =
      kind === 'MSP'
        ? Math.max(1, Math.round(gpCount * 0.8))
        : kind === 'CDS'
          ? Math.max(1, Math.round(gpCount / 2))
          : 0;
    for (let n = 0; n < nurses; n++) {
      s.nurses.push(this.professional(`${key}-nurse-${n + 1}`, ref, 'nurse'));
    }
    if (kind === 'MSP') {
      s.coordinator = this.professional(`${key}-coordinator`, ref, 'coordinator');
    }
    return s;
  }

  /** A Practitioner (RPPS with its Luhn key, IdNatPS, MSSanté mailbox) and their PractitionerRole; returns `Practitioner/<id>`. */
  professional(key: string, orgRef: string, profession: 'gp' | 'nurse' | 'coordinator', active = true): string {
    const pid = this.id(`practitioner|${key}`);
    const r = Rng.for(this.seed, `${this.ns}|practitioner|${key}`);
    const female = r.chance(profession === 'gp' ? 0.5 : 0.85);
    const family = r.pick(FAMILY_NAMES);
    const given = r.pick(female ? GIVEN_FEMALE : GIVEN_MALE);
    const rpps10 = `10${String(r.int(0, 99_999_999)).padStart(8, '0')}`;
    const rpps = rpps10 + luhnKey(rpps10);
    const practitioner: Practitioner = {
      resourceType: 'Practitioner',
      id: pid,
      meta: { profile: [GW_PRACTITIONER_PROFILE], tag: [ownerTag(orgRef)] },
      identifier: [
        { system: IDNATPS, value: `8${rpps}` },
        { system: RPPS, value: rpps },
      ],
      active,
      name: [
        { use: 'official', family, given: [capitalise(given)], ...(profession === 'gp' ? { prefix: ['Dr'] } : {}) },
      ],
      gender: female ? 'female' : 'male',
      telecom: active
        ? [{ system: 'email', value: `${slug(given)}.${slug(family)}.${rpps.slice(-4)}@${this.dept}.mssante.fr` }]
        : undefined,
    };
    const role: PractitionerRole = {
      resourceType: 'PractitionerRole',
      id: this.id(`role|${key}`),
      meta: { tag: [ownerTag(orgRef)] },
      active,
      practitioner: { reference: `Practitioner/${pid}` },
      organization: { reference: orgRef },
      code: [{ coding: [ROLE_CODES[profession]] }],
      specialty:
        profession === 'gp'
          ? [{ coding: [{ system: SPECIALTY, code: 'SM54', display: 'Médecine générale' }] }]
          : undefined,
    };
    this.resources.push(practitioner, role);
    return `Practitioner/${pid}`;
  }

  /** The caisse's fictitious MT number (tag practitioner-flag#fictitious). */
  fictitiousMt(): string {
    const fid = this.id('practitioner|fictitious');
    this.resources.push({
      resourceType: 'Practitioner',
      id: fid,
      meta: {
        tag: [
          ownerTag(this.cptsRef),
          {
            system: PRACTITIONER_FLAG_SYSTEM,
            code: 'fictitious',
            display: 'Numéro de médecin traitant fictif (caisse)',
          },
        ],
      },
      active: true,
      name: [{ text: 'Médecin traitant fictif (caisse)' }],
    } as Practitioner);
    return `Practitioner/${fid}`;
  }

  hospital(label: string, k: number): Hospital {
    const hid = this.id(`hospital|${k + 1}`);
    const ref = `Organization/${hid}`;
    const name = `${label} de ${(this.communes[0] as Commune).name}`;
    this.resources.push({
      resourceType: 'Organization',
      id: hid,
      meta: { profile: [GW_ORGANIZATION_PROFILE], tag: [ownerTag(ref)] },
      active: true,
      identifier: structureIdentifiers(finess(this.dept, this.rng)),
      type: [{ coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: 'hospital' }] }],
      name,
    } as Organization);
    return { id: hid, name, ref, visitSystem: `urn:oid:1.2.250.1.999.${Math.abs(this.seed) % 1000}.9${k + 1}` };
  }

  /** The CPTS: its communes (territory-commune), a mailbox, and the marker identifier of this load. */
  cpts(): Organization & { id: string } {
    return {
      resourceType: 'Organization',
      id: this.id('cpts'),
      meta: { profile: [GW_ORGANIZATION_PROFILE], tag: [ownerTag(this.cptsRef)] },
      active: true,
      identifier: [
        ...structureIdentifiers(undefined, siret(this.rng)),
        { system: TERRITORY_RUN_SYSTEM, value: `${this.seed}|${this.patients}|${this.asOf}` },
      ],
      type: [{ coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: 'CPTS' }] }],
      name: `CPTS de ${(this.communes[0] as Commune).name} (synthétique)`,
      telecom: [
        { system: 'email', value: `coordination.cpts-${this.dept}-${Math.abs(this.seed)}@${this.dept}.mssante.fr` },
      ],
      extension: this.communes.map((c) => ({ url: TERRITORY_COMMUNE_EXTENSION, valueCode: c.insee })),
    };
  }
}

const ROLE_CODES: Record<'gp' | 'nurse' | 'coordinator', { system: string; code: string; display: string }> = {
  gp: { system: PROFESSION, code: '10', display: 'Médecin' },
  nurse: { system: PROFESSION, code: '60', display: 'Infirmier' },
  coordinator: { system: CARE_TEAM_ROLE, code: 'coordinator', display: 'Coordinateur de parcours' },
};

/** FINESS and/or SIRET, and the IdNatStruct they give (DOMAIN.md §3: `1` + FINESS, else `3` + SIRET). */
function structureIdentifiers(finessNumber?: string, siretNumber?: string): { system: string; value: string }[] {
  return [
    ...(finessNumber ? [{ system: FINESS, value: finessNumber }] : []),
    ...(siretNumber ? [{ system: SIRENE, value: siretNumber }] : []),
    { system: IDNATSTRUCT, value: finessNumber ? `1${finessNumber}` : `3${siretNumber}` },
  ];
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
  return s
    .normalize('NFD')
    .replace(/[^A-Za-z]/g, '')
    .toLowerCase();
}
