import type { Group } from '@medplum/fhirtypes';
import { GatewayError, scopeAllows } from '@gw/platform';
import type { Principal, StoredResource } from '@gw/store';
import type { Scope } from './evaluator';

export type ReportType = 'population' | 'subject-list' | 'subject';

/** What {@link resolveScope} reads: the indicator projection's organizations and the store (as the client). */
export interface ScopeLookup {
  /** An organization of the projection (ind_organization): its type and the CPTS it belongs to; undefined when absent. */
  organization(id: string): Promise<{ type: string | null; partOf: string | null } | undefined>;
  /** Reads a resource as the client; throws not-found when the client may not see it. */
  read(p: Principal, type: string, id: string): Promise<StoredResource>;
}

/**
 * Turns the `subject` parameter of `$evaluate-measure` into a scope the client may see; throws
 * 403/404 otherwise. A CPTS gets population reports only; a structure sees itself, a CPTS itself
 * and its member structures (aggregates only); an admin anything.
 */
export async function resolveScope(
  lookup: ScopeLookup,
  p: Principal,
  subject: string | undefined,
  reportType: ReportType,
): Promise<Scope> {
  const clientOrg = p.organization.replace(/^Organization\//, '');
  const clientType = (await lookup.organization(clientOrg))?.type;
  if (reportType !== 'population' && !p.admin) {
    if (clientType === 'CPTS') {
      throw new GatewayError('forbidden', {
        text: 'A CPTS receives population reports only: patient lists belong to the structures that care for the patients',
      });
    }
    if (!scopeAllows(p.scopes, 'Patient', 'r')) {
      throw new GatewayError('forbidden', { text: 'Patient lists need a token allowing "r" on Patient' });
    }
  }
  if (!subject) {
    if (!p.admin) {
      throw new GatewayError('invalid', { text: 'subject is required', expression: 'subject' });
    }
    return { kind: 'all' };
  }
  const m = /^(Organization|Practitioner|Group|Patient)\/([A-Za-z0-9\-.]{1,64})$/.exec(subject);
  if (!m) {
    throw new GatewayError('invalid', {
      text: 'subject must be Organization/[id], Practitioner/[id], Group/[id] or Patient/[id]',
      expression: 'subject',
    });
  }
  const [, type, id] = m as unknown as [string, string, string];
  if (type === 'Patient') {
    if (reportType !== 'subject') {
      throw new GatewayError('invalid', {
        text: 'a Patient subject needs reportType=subject',
        expression: 'reportType',
      });
    }
    await lookup.read(p, 'Patient', id); // 404 unless the client may read this patient
    return { kind: 'patient', id };
  }
  if (reportType === 'subject') {
    throw new GatewayError('invalid', { text: 'reportType=subject needs a Patient subject', expression: 'subject' });
  }
  if (type === 'Organization') {
    const org = await lookup.organization(id);
    if (!org) {
      throw new GatewayError('not-found', { text: `Organization/${id} not found` });
    }
    const allowed = p.admin || id === clientOrg || (clientType === 'CPTS' && org.partOf === clientOrg);
    if (!allowed) {
      throw new GatewayError('forbidden', { text: `This client may not evaluate measures for Organization/${id}` });
    }
    return org.type === 'CPTS' ? { kind: 'cpts', id } : { kind: 'organization', id };
  }
  if (type === 'Practitioner') {
    if (p.admin) {
      return { kind: 'practitioner', id };
    }
    // A GP's patientèle among the caller's own patients (a CPTS: its structures'). Reading the
    // Practitioner proves nothing (the directory is shared: every client reads every GP).
    await lookup.read(p, 'Practitioner', id);
    const within: Scope =
      clientType === 'CPTS' ? { kind: 'cpts', id: clientOrg } : { kind: 'organization', id: clientOrg };
    return { kind: 'practitioner', id, within };
  }
  // Every active Patient member: for a non-admin caller the evaluation itself keeps only the
  // records it may read (EvaluateOptions.factOwners), so members filed elsewhere count nowhere and
  // nothing tells how many there were.
  const stored = await lookup.read(p, 'Group', id);
  const group = JSON.parse(stored.json as string) as Group;
  const patientIds = (group.member ?? [])
    .filter((mm) => !mm.inactive)
    .map((mm) => /^Patient\/(.+)$/.exec(mm.entity.reference ?? '')?.[1])
    .filter((x): x is string => !!x);
  return { kind: 'group', patientIds };
}
