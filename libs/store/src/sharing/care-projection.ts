import type {
  CareTeam,
  CodeableConcept,
  Consent,
  ConsentProvision,
  Encounter,
  EpisodeOfCare,
  Patient,
  Period,
  Reference,
  Resource,
  Task,
} from '@medplum/fhirtypes';
import { dateRange, parseReference } from '@gw/fhir';
import type { IndexRows } from '@gw/fhir';
import { PATIENT_COMPARTMENT } from '../repository/patient-compartment';

/**
 * Consent category of the équipe-de-soins sharing Consents (permits and oppositions). Only Consents
 * of this category are read as sharing: the DMP consents mapped from PAM-FR ZFA (categories
 * `dmp-feeding`, `dmp-consultation`) are about the DMP and never grant or deny access here.
 */
export const SHARING_CONSENT_CATEGORY = {
  system: 'https://gateway.fr-primary-care.org/fhir/CodeSystem/consent-category',
  code: 'equipe-de-soins',
} as const;

/** meta.security codes that make a resource visible to its author's structure only. */
export const CONFIDENTIALITY_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
const RESTRICTED_CODES = ['R', 'V'];

/** Types whose writes maintain care_access / care_opposition rows (source = the resource). */
export const SHARING_SOURCE_TYPES: readonly string[] = [
  'Patient',
  'EpisodeOfCare',
  'Encounter',
  'CareTeam',
  'Consent',
  'Task',
];

export type AccessBasis = 'structure-team' | 'care-circle' | 'consent' | 'task';

/** One row of care_access: `grantee` may read the patient's record (or one resource of it). */
export interface CareAccessRow {
  patientId: string;
  /** `Organization/x` | `Practitioner/y` | `PractitionerRole/z` */
  grantee: string;
  basis: AccessBasis;
  /** Resource types granted; null: every type. */
  classes: string[] | null;
  /** The one resource granted (`Type/id`); null: the whole record. */
  resourceRef: string | null;
  /** Validity [from, to); null bounds are open. */
  from: string | null;
  to: string | null;
  /** CareTeam participant role (TRE_R259 code, e.g. PCP), or the Consent actor's role. */
  role: string | null;
  recognisedBy: string | null;
  recognisedAt: string | null;
}

/** One row of care_opposition: the patient objects to sharing with `actor` (null: everyone). */
export interface CareOppositionRow {
  patientId: string;
  actor: string | null;
  classes: string[] | null;
  from: string | null;
  to: string | null;
}

/** The rows a source resource maintains; `source` is its `Type/id`. */
export interface SharingRows {
  source: string;
  access: CareAccessRow[];
  oppositions: CareOppositionRow[];
}

export interface ProjectionContext {
  /** The organization the resource is filed under. */
  ownerOrg: string | null;
  /** Who wrote this version (the person's PractitionerRole, or the client). */
  writer: string;
  /** When this version was written (ISO instant). */
  at: string;
  /** Months an encounter keeps its structure's access after it ended (GW_SHARING_ENCOUNTER_MONTHS). */
  encounterMonths: number;
}

const GRANTEE_TYPES = ['Organization', 'Practitioner', 'PractitionerRole'];
const TASK_FINAL = ['completed', 'cancelled', 'failed', 'rejected', 'entered-in-error'];
const ENCOUNTER_VOID = ['cancelled', 'entered-in-error'];

/**
 * Compartment types that are never about one patient: a Group is a structure's list of patients
 * (an export cohort, a patientèle), filed and read under its organization even with one member.
 */
export const NOT_ONE_PATIENT_TYPES: readonly string[] = ['Group'];

/**
 * The one Patient a resource is about: the Patient itself, or the single distinct Patient its R4
 * patient-compartment parameters name; null when none or several, and for a Group.
 */
export function patientIdOf(resourceType: string, id: string, rows: IndexRows): string | null {
  if (resourceType === 'Patient') {
    return id;
  }
  const params = NOT_ONE_PATIENT_TYPES.includes(resourceType) ? undefined : PATIENT_COMPARTMENT[resourceType];
  if (!params) {
    return null;
  }
  const ids = new Set(
    rows.references.filter((r) => r.targetType === 'Patient' && params.includes(r.code)).map((r) => r.targetId),
  );
  return ids.size === 1 ? [...ids][0] : null;
}

/** meta.security holds v3-Confidentiality R (restricted) or V (very restricted). */
export function isRestricted(resource: Resource): boolean {
  return (resource.meta?.security ?? []).some(
    (c) => c.system === CONFIDENTIALITY_SYSTEM && RESTRICTED_CODES.includes(c.code ?? ''),
  );
}

/**
 * The care_access / care_opposition rows of a written resource, or undefined when its type is no
 * source (nothing to maintain). An ended or voided source yields no rows: its old rows are removed.
 */
export function projectSharing(
  resource: Resource,
  patientId: string | null,
  ctx: ProjectionContext,
): SharingRows | undefined {
  if (!SHARING_SOURCE_TYPES.includes(resource.resourceType)) {
    return undefined;
  }
  const out: SharingRows = { source: `${resource.resourceType}/${resource.id}`, access: [], oppositions: [] };
  if (!patientId) {
    return out;
  }
  const rows = sourceRows(resource, patientId, ctx);
  out.access = dedupe(rows.access.filter((r) => nonEmpty(r.from, r.to)));
  out.oppositions = rows.oppositions.filter((r) => nonEmpty(r.from, r.to));
  return out;
}

function sourceRows(
  resource: Resource,
  patientId: string,
  ctx: ProjectionContext,
): { access: CareAccessRow[]; oppositions: CareOppositionRow[] } {
  const only = (access: CareAccessRow[]): { access: CareAccessRow[]; oppositions: CareOppositionRow[] } => ({
    access,
    oppositions: [],
  });
  // Not a switch: the source types are a handful of the resource-type union.
  if (resource.resourceType === 'Consent') {
    return consentRows(resource, patientId, ctx);
  }
  if (resource.resourceType === 'Patient') {
    return only(patientRows(resource, patientId, ctx));
  }
  if (resource.resourceType === 'EpisodeOfCare') {
    return only(episodeRows(resource, patientId, ctx));
  }
  if (resource.resourceType === 'Encounter') {
    return only(encounterRows(resource, patientId, ctx));
  }
  if (resource.resourceType === 'CareTeam') {
    return only(careTeamRows(resource, patientId, ctx));
  }
  if (resource.resourceType === 'Task') {
    return only(taskRows(resource, patientId, ctx));
  }
  return only([]);
}

/**
 * Structure team: the organization holding the patient's file (the one it is filed under, its
 * managingOrganization) and the médecin traitant's structure (generalPractitioner: an
 * Organization, a PractitionerRole, or a Practitioner whose active PractitionerRoles the read rule
 * resolves to their organizations at read time, so that a role change needs no rewrite).
 */
function patientRows(p: Patient, patientId: string, ctx: ProjectionContext): CareAccessRow[] {
  const grantees = [ctx.ownerOrg, granteeOf(p.managingOrganization), ...(p.generalPractitioner ?? []).map(granteeOf)];
  return grantees.filter(isString).map((g) => row(patientId, g, 'structure-team', ctx, {}));
}

function episodeRows(e: EpisodeOfCare, patientId: string, ctx: ProjectionContext): CareAccessRow[] {
  if (e.status !== 'active') {
    return [];
  }
  const g = granteeOf(e.managingOrganization) ?? ctx.ownerOrg;
  return g ? [row(patientId, g, 'structure-team', ctx, periodOf(e.period))] : [];
}

/** An encounter opens its structure's access from its start to GW_SHARING_ENCOUNTER_MONTHS after its end. */
function encounterRows(e: Encounter, patientId: string, ctx: ProjectionContext): CareAccessRow[] {
  if (ENCOUNTER_VOID.includes(e.status)) {
    return [];
  }
  const { from, to } = periodOf(e.period);
  const ongoing = e.status === 'in-progress' || e.status === 'arrived' || e.status === 'planned';
  const end = to ?? (ongoing ? null : (from ?? ctx.at));
  const valid = { from, to: end ? addMonths(end, ctx.encounterMonths) : null };
  return [granteeOf(e.serviceProvider), ctx.ownerOrg]
    .filter(isString)
    .map((g) => row(patientId, g, 'structure-team', ctx, valid));
}

/** Care circle (ANS Cercle de soins): each participant over its period ∩ the CareTeam's. */
function careTeamRows(t: CareTeam, patientId: string, ctx: ProjectionContext): CareAccessRow[] {
  if (t.status && t.status !== 'active') {
    return [];
  }
  if (parseReference(t.subject?.reference ?? '')?.type !== 'Patient') {
    return [];
  }
  const team = periodOf(t.period);
  return (t.participant ?? []).flatMap((p) => {
    const g = granteeOf(p.member);
    if (!g) {
      return [];
    }
    const valid = intersect(team, periodOf(p.period));
    return [row(patientId, g, 'care-circle', ctx, { ...valid, role: firstCode(p.role) })];
  });
}

function consentRows(
  c: Consent,
  patientId: string,
  ctx: ProjectionContext,
): { access: CareAccessRow[]; oppositions: CareOppositionRow[] } {
  const out = { access: [] as CareAccessRow[], oppositions: [] as CareOppositionRow[] };
  if (c.status !== 'active' || !isSharingConsent(c) || !c.provision) {
    return out;
  }
  walkProvision(c.provision, { from: null, to: null, classes: null }, (prov, scope) => {
    const actors = (prov.actor ?? []).map((a) => ({ ref: granteeOf(a.reference), role: firstCode([a.role]) }));
    if (prov.type === 'permit') {
      for (const a of actors.filter((x) => x.ref)) {
        out.access.push(
          row(patientId, a.ref as string, 'consent', ctx, { ...scope, classes: scope.classes, role: a.role }),
        );
      }
    } else if (prov.type === 'deny') {
      const named = actors.map((a) => a.ref).filter(isString);
      for (const actor of named.length > 0 ? named : [null]) {
        out.oppositions.push({ patientId, actor, classes: scope.classes, from: scope.from, to: scope.to });
      }
    }
  });
  return out;
}

interface Scope {
  from: string | null;
  to: string | null;
  classes: string[] | null;
}

/** Nested provisions are read within their parent's period and classes. */
function walkProvision(
  prov: ConsentProvision,
  parent: Scope,
  visit: (prov: ConsentProvision, scope: Scope) => void,
): void {
  const classes = (prov.class ?? []).map((c) => c.code).filter(isString);
  const scope: Scope = {
    ...intersect(parent, periodOf(prov.period)),
    classes: classes.length > 0 ? classes : parent.classes,
  };
  visit(prov, scope);
  for (const nested of prov.provision ?? []) {
    walkProvision(nested, scope, visit);
  }
}

/** Whether a Consent is an équipe-de-soins sharing Consent (never a DMP one). */
export function isSharingConsent(c: Consent): boolean {
  return (c.category ?? []).some((cat) =>
    (cat.coding ?? []).some(
      (k) => k.system === SHARING_CONSENT_CATEGORY.system && k.code === SHARING_CONSENT_CATEGORY.code,
    ),
  );
}

/** The owner of an open Task (and the structure it is filed under) sees the Task, the Patient and the inputs. */
function taskRows(t: Task, patientId: string, ctx: ProjectionContext): CareAccessRow[] {
  if (TASK_FINAL.includes(t.status)) {
    return [];
  }
  const refs = [
    `Task/${t.id}`,
    `Patient/${patientId}`,
    ...(t.input ?? []).map((i) => normalisedRef(i.valueReference)).filter(isString),
  ];
  const grantees = [granteeOf(t.owner), ctx.ownerOrg].filter(isString);
  return grantees.flatMap((g) => [...new Set(refs)].map((ref) => row(patientId, g, 'task', ctx, { resourceRef: ref })));
}

function row(
  patientId: string,
  grantee: string,
  basis: AccessBasis,
  ctx: ProjectionContext,
  opts: {
    from?: string | null;
    to?: string | null;
    classes?: string[] | null;
    resourceRef?: string;
    role?: string | null;
  },
): CareAccessRow {
  return {
    patientId,
    grantee,
    basis,
    classes: opts.classes ?? null,
    resourceRef: opts.resourceRef ?? null,
    from: opts.from ?? null,
    to: opts.to ?? null,
    role: opts.role ?? null,
    recognisedBy: ctx.writer,
    recognisedAt: ctx.at,
  };
}

function granteeOf(ref: Reference | undefined): string | undefined {
  const r = normalisedRef(ref);
  return r && GRANTEE_TYPES.includes(r.slice(0, r.indexOf('/'))) ? r : undefined;
}

function normalisedRef(ref: Reference | undefined): string | undefined {
  const parsed = ref?.reference ? parseReference(ref.reference) : undefined;
  return parsed ? `${parsed.type}/${parsed.id}` : undefined;
}

/** A FHIR Period as [from, to): a date's precision is its interval (an end "2025-12-31" includes that day). */
function periodOf(p: Period | undefined): { from: string | null; to: string | null } {
  return {
    from: p?.start ? (dateRange(p.start)?.low ?? null) : null,
    to: p?.end ? (dateRange(p.end)?.high ?? null) : null,
  };
}

function intersect(
  a: { from: string | null; to: string | null },
  b: { from: string | null; to: string | null },
): { from: string | null; to: string | null } {
  const later = (x: string | null, y: string | null): string | null =>
    x === null ? y : y === null ? x : Date.parse(x) >= Date.parse(y) ? x : y;
  const earlier = (x: string | null, y: string | null): string | null =>
    x === null ? y : y === null ? x : Date.parse(x) <= Date.parse(y) ? x : y;
  return { from: later(a.from, b.from), to: earlier(a.to, b.to) };
}

function nonEmpty(from: string | null, to: string | null): boolean {
  return from === null || to === null || Date.parse(from) < Date.parse(to);
}

function addMonths(iso: string, months: number): string {
  const d = new Date(iso);
  d.setUTCMonth(d.getUTCMonth() + months);
  return d.toISOString();
}

function firstCode(concepts: (CodeableConcept | undefined)[] | undefined): string | null {
  for (const c of concepts ?? []) {
    const code = c?.coding?.find((k) => k.code)?.code;
    if (code) {
      return code;
    }
  }
  return null;
}

function dedupe(rows: CareAccessRow[]): CareAccessRow[] {
  const seen = new Set<string>();
  return rows.filter((r) => {
    const key = JSON.stringify([r.grantee, r.basis, r.classes, r.resourceRef, r.from, r.to, r.role]);
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

function isString(x: string | null | undefined): x is string {
  return typeof x === 'string';
}
