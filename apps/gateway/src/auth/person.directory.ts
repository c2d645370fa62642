import { OAuthError } from '@gw/platform';
import type { PersonResolver, ResolvedPerson } from '@gw/platform';
import { IDNATPS, parseSearchRequest } from '@gw/fhir';
import type { FhirRepository, Principal } from '@gw/store';
import type { CodeableConcept, Practitioner, PractitionerRole } from '@medplum/fhirtypes';

/** TRE_G15 ProfessionSante (the FHIR system of the NOS, and its OID form). */
export const PROFESSION_SYSTEMS = [
  'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante',
  'urn:oid:1.2.250.1.71.1.2.7',
];
/** Longest time a role's status is trusted: a role made inactive or deleted stops working within it. */
export const ROLE_STATUS_MAX_AGE_MS = 2000;

/** The gateway's own reads of the shared directory (Practitioner, PractitionerRole). */
const LOOKUP: Principal = {
  clientId: 'token-exchange',
  organization: 'Organization/gateway',
  admin: true,
  scopes: ['system/*.rs'],
};
const LIMITS = { defaultCount: 100, maxCount: 100 };

/** A role as a request needs it now: who holds it, where, whether it is usable, the profession. */
export interface RoleStatus extends ResolvedPerson {
  organization: string;
  active: boolean;
}

/**
 * The persons of token exchange, read from the shared directory: the Practitioner carrying an
 * IdNatPS, and the PractitionerRole through which they act for the client's organization. A
 * role's current status is cached {@link ROLE_STATUS_MAX_AGE_MS} at most, so that every request
 * of a person token checks it (inactive, ended, deleted, moved to another organization) without a
 * read per request.
 */
export class PersonDirectory implements PersonResolver {
  private readonly statuses = new Map<string, { status: RoleStatus | undefined; loadedAt: number }>();

  constructor(
    private readonly repo: FhirRepository,
    private readonly opts: { maxAgeMs?: number; now?: () => number } = {},
  ) {}

  async resolve(idNatPs: string, organization: string, roleId?: string): Promise<ResolvedPerson> {
    const practitioners = (
      await this.search<Practitioner>('Practitioner', [['identifier', `${IDNATPS}|${idNatPs}`]])
    ).filter((p) => p.active !== false);
    if (practitioners.length === 0) {
      throw new OAuthError(400, 'invalid_grant', 'No active Practitioner with this IdNatPS in the directory');
    }
    if (practitioners.length > 1) {
      throw new OAuthError(
        400,
        'invalid_grant',
        'Several Practitioners carry this IdNatPS in the directory: an operator must merge them first',
      );
    }
    const practitioner = practitioners[0];
    const roles = (
      await this.search<PractitionerRole>('PractitionerRole', [['practitioner', `Practitioner/${practitioner.id}`]])
    ).filter((r) => r.organization?.reference === organization);
    const role = chooseRole(roles, organization, roleId, this.now());
    return toPerson(practitioner, role, idNatPs);
  }

  /** The current status of a role (undefined: deleted or never existed), cached a short while. */
  async current(roleRef: string): Promise<RoleStatus | undefined> {
    const cached = this.statuses.get(roleRef);
    if (cached && this.now() - cached.loadedAt < (this.opts.maxAgeMs ?? ROLE_STATUS_MAX_AGE_MS)) {
      return cached.status;
    }
    const status = await this.load(roleRef);
    if (this.statuses.size > 10_000) {
      this.statuses.clear();
    }
    this.statuses.set(roleRef, { status, loadedAt: this.now() });
    return status;
  }

  private async load(roleRef: string): Promise<RoleStatus | undefined> {
    const [type, id] = roleRef.split('/');
    if (type !== 'PractitionerRole' || !id) {
      return undefined;
    }
    const role = await this.repo.readSystem<PractitionerRole>('PractitionerRole', id);
    const practitionerId = role?.practitioner?.reference?.split('/')[1];
    const practitioner = practitionerId
      ? await this.repo.readSystem<Practitioner>('Practitioner', practitionerId)
      : undefined;
    if (!role || !practitioner) {
      return undefined;
    }
    const idNatPs = practitioner.identifier?.find((i) => i.system === IDNATPS && i.value)?.value ?? '';
    return {
      ...toPerson(practitioner, role, idNatPs),
      organization: role.organization?.reference ?? '',
      active: practitioner.active !== false && roleUsable(role, this.now()),
    };
  }

  private async search<T>(type: string, pairs: [string, string][]): Promise<T[]> {
    const found = await this.repo.search(LOOKUP, parseSearchRequest(type, pairs, LIMITS), true);
    return found.matches.map((m) => JSON.parse(m.json ?? '{}') as T);
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}

/**
 * The role a person acts in: the one named by `practitioner_role`, else the only usable one.
 * None → invalid_grant; several without a choice → invalid_request listing them (RFC 6749 §5.2).
 */
function chooseRole(
  roles: PractitionerRole[],
  organization: string,
  roleId: string | undefined,
  now: number,
): PractitionerRole {
  if (roleId !== undefined) {
    const chosen = roles.find((r) => r.id === roleId);
    if (!chosen) {
      throw new OAuthError(
        400,
        'invalid_grant',
        `PractitionerRole/${roleId} is not a role of this practitioner in ${organization}`,
      );
    }
    if (!roleUsable(chosen, now)) {
      throw new OAuthError(400, 'invalid_grant', `PractitionerRole/${roleId} is not active`);
    }
    return chosen;
  }
  const usable = roles.filter((r) => roleUsable(r, now));
  if (usable.length === 1) {
    return usable[0];
  }
  if (usable.length > 1) {
    throw new OAuthError(
      400,
      'invalid_request',
      `The practitioner holds several active roles in ${organization}: choose one with practitioner_role (${usable
        .map((r) => r.id)
        .join(', ')})`,
    );
  }
  throw new OAuthError(
    400,
    'invalid_grant',
    roles.length > 0
      ? `The practitioner's role in ${organization} is not active`
      : `The practitioner holds no PractitionerRole in the client's organization ${organization}`,
  );
}

/** A role is usable when not marked inactive and within its period (FHIR: `active` absent is not a refusal). */
function roleUsable(role: PractitionerRole, now: number): boolean {
  const start = role.period?.start ? Date.parse(role.period.start) : undefined;
  const end = role.period?.end ? Date.parse(role.period.end) : undefined;
  return role.active !== false && !(start !== undefined && start > now) && !(end !== undefined && end <= now);
}

/**
 * The person's profession and whether they are health staff. The role's TRE_G15 code decides; a
 * role coded otherwise only (secrétaire, coordinateur: TRE_R21 Fonction and the like) is non-health
 * staff; a role without any code falls back to the practitioner's TRE_G15 qualification.
 */
function toPerson(practitioner: Practitioner, role: PractitionerRole, idNatPs: string): ResolvedPerson {
  const fromRole = professionOf(role.code);
  const roleCoded = (role.code ?? []).some((c) => (c.coding ?? []).length > 0);
  const profession =
    fromRole ?? (roleCoded ? undefined : professionOf((practitioner.qualification ?? []).map((q) => q.code)));
  const name = practitioner.name?.[0];
  const display = name ? [name.prefix?.join(' '), name.given?.join(' '), name.family].filter(Boolean).join(' ') : '';
  return {
    practitioner: `Practitioner/${practitioner.id}`,
    role: `PractitionerRole/${role.id}`,
    ...(profession ? { profession } : {}),
    health: profession !== undefined,
    idNatPs,
    ...(display ? { display } : {}),
  };
}

function professionOf(concepts: (CodeableConcept | undefined)[] | undefined): string | undefined {
  for (const concept of concepts ?? []) {
    const coding = concept?.coding?.find((c) => c.code && PROFESSION_SYSTEMS.includes(c.system ?? ''));
    if (coding?.code) {
      return coding.code;
    }
  }
  return undefined;
}
