import type { CodeableConcept, Organization } from '@medplum/fhirtypes';
import type { PoolClient } from 'pg';
import { ORGANIZATION_TYPE_SYSTEM } from '@gw/fhir';
import { GatewayError } from '@gw/platform';
import { isCptsCode } from '@gw/store';
import type { AuditLog, FhirRepository, Principal } from '@gw/store';
import { TERRITORY_COMMUNE_EXTENSION, mssanteMailbox } from '../exchange.codes';
import { cptsOrganizations, territoryCommunes } from './cpts.directory';
import type { CptsDirectory } from './cpts.directory';

/** A CPTS as the operator sees it. */
export interface CptsEntry {
  organization: string;
  name?: string;
  active: boolean;
  mailbox?: string;
  communes: string[];
  /** `Organization/<id>` of the structures whose partOf is this CPTS. */
  members: string[];
}

/** A commune claimed by several active CPTS (data written before grants, or by hand): routed to none. */
export interface CptsConflict {
  commune: string;
  cpts: string[];
}

/** Who asks for the change: an admin client (the API) or the CLI's operator principal. */
export interface OperatorContext {
  principal: Principal;
  requestId?: string;
}

/** INSEE commune code: 5 digits, or Corsica's 2A/2B + 3 digits. */
const INSEE = /^(?:\d{5}|2[AB]\d{3})$/;
const ORG_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const ORG_REF = /^Organization\/([A-Za-z0-9\-.]{1,64})$/;
const MAX_ITEMS = 2000;
/** Serialises grants: two concurrent grants cannot both take the same commune. */
const LOCK = 'cpts-territory';

/**
 * Operator grants of CPTS territories (admin API /admin/cpts, CLI cpts:*): being a CPTS, its
 * communes, its member structures. No client may set these itself (the access policy refuses it);
 * the writes go through the store as the operator, so the indicator projection follows.
 */
export class CptsTerritoryService {
  constructor(
    private readonly repo: FhirRepository,
    private readonly directory: CptsDirectory,
    private readonly audit: AuditLog,
  ) {}

  /** Every Organization typed CPTS, with its communes and members, and the communes several active CPTS claim. */
  async list(): Promise<{ cpts: CptsEntry[]; conflicts: CptsConflict[] }> {
    const orgs = await cptsOrganizations(this.repo);
    const members = await this.membersByParent();
    const cpts = orgs.map((o) => entry(o, members.get(`Organization/${o.id}`) ?? []));
    const claims = new Map<string, string[]>();
    for (const c of cpts.filter((x) => x.active)) {
      for (const commune of c.communes) {
        claims.set(commune, [...(claims.get(commune) ?? []), c.organization]);
      }
    }
    const conflicts = [...claims]
      .filter(([, refs]) => refs.length > 1)
      .map(([commune, refs]) => ({ commune, cpts: refs }))
      .sort((a, b) => a.commune.localeCompare(b.commune));
    return { cpts, conflicts };
  }

  /**
   * Makes `orgId` a CPTS covering exactly `communes`, with exactly `members` (when given; absent:
   * the current members stay). 409 when another active CPTS covers one of the communes or a member
   * belongs to another organization.
   */
  async grant(orgId: string, body: unknown, op: OperatorContext): Promise<CptsEntry> {
    const input = parseGrant(body);
    const ref = `Organization/${orgId}`;
    const result = await this.repo.withTransaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [LOCK]);
      const org = await this.organization(tx, orgId);
      if (org.active === false) {
        throw new GatewayError('business-rule', { text: `${ref} is inactive: activate it before granting it` });
      }
      await this.refuseTakenCommunes(tx, orgId, input.communes);
      const current = (await this.membersOf(tx, ref)).map((m) => `Organization/${m.id}`);
      const wanted = input.members ?? current;
      const touched = [ref];
      const members = await this.checkMembers(tx, orgId, wanted);
      await this.write(tx, withGrant(org, input.communes), op);
      for (const m of members.filter((x) => x.partOf?.reference !== ref)) {
        await this.write(tx, { ...m, partOf: { reference: ref } }, op);
        touched.push(`Organization/${m.id}`);
      }
      for (const gone of current.filter((c) => !wanted.includes(c))) {
        await this.leave(tx, gone, op);
        touched.push(gone);
      }
      return { entry: entry(withGrant(org, input.communes), wanted), touched };
    });
    this.changed('cpts-grant', result.touched, op);
    return result.entry;
  }

  /** Takes back the CPTS type, its communes and its members' partOf (idempotent). */
  async revoke(orgId: string, op: OperatorContext): Promise<CptsEntry> {
    const ref = `Organization/${orgId}`;
    const result = await this.repo.withTransaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [LOCK]);
      const org = withoutGrant(await this.organization(tx, orgId));
      await this.write(tx, org, op);
      const touched = [ref];
      for (const m of await this.membersOf(tx, ref)) {
        await this.leave(tx, `Organization/${m.id}`, op);
        touched.push(`Organization/${m.id}`);
      }
      return { entry: entry(org, []), touched };
    });
    this.changed('cpts-revoke', result.touched, op);
    return result.entry;
  }

  private async organization(tx: PoolClient, id: string): Promise<Organization> {
    const org = ORG_ID.test(id)
      ? await this.repo.readSystem<Organization>('Organization', id, { db: tx, forUpdate: true })
      : undefined;
    if (!org) {
      throw new GatewayError('not-found', { text: `Organization/${id} not found` });
    }
    return org;
  }

  private async refuseTakenCommunes(tx: PoolClient, orgId: string, communes: string[]): Promise<void> {
    const taken: string[] = [];
    for (const other of await cptsOrganizations(this.repo, tx)) {
      if (other.id === orgId || other.active === false) {
        continue;
      }
      const overlap = territoryCommunes(other).filter((c) => communes.includes(c));
      if (overlap.length > 0) {
        taken.push(`${overlap.join(', ')} already covered by Organization/${other.id} (${other.name ?? 'unnamed'})`);
      }
    }
    if (taken.length > 0) {
      throw new GatewayError('conflict', {
        text: `A commune is covered by one active CPTS only: ${taken.join('; ')}. Revoke or change that territory first`,
        expression: 'communes',
      });
    }
  }

  /** The member Organizations, each existing, not a CPTS, not a member of another organization. */
  private async checkMembers(tx: PoolClient, orgId: string, refs: string[]): Promise<Organization[]> {
    const out: Organization[] = [];
    for (const [i, ref] of refs.entries()) {
      const id = (ORG_REF.exec(ref) as RegExpExecArray)[1] as string;
      const m = await this.repo.readSystem<Organization>('Organization', id, { db: tx, forUpdate: true });
      const at = `members[${i}]`;
      if (!m || id === orgId || isCpts(m)) {
        throw new GatewayError('invalid', {
          text: `${ref} ${!m ? 'does not exist' : 'is a CPTS: it cannot be a member structure'}`,
          expression: at,
        });
      }
      const parent = m.partOf?.reference;
      if (parent && parent !== `Organization/${orgId}`) {
        throw new GatewayError('conflict', {
          text: `${ref} is already part of ${parent}: revoke it there first`,
          expression: at,
        });
      }
      out.push(m);
    }
    return out;
  }

  private async leave(tx: PoolClient, ref: string, op: OperatorContext): Promise<void> {
    const id = ref.slice('Organization/'.length);
    const m = await this.repo.readSystem<Organization>('Organization', id, { db: tx, forUpdate: true });
    if (m) {
      const left: Organization = { ...m };
      delete left.partOf;
      await this.write(tx, left, op);
    }
  }

  private async write(tx: PoolClient, org: Organization, op: OperatorContext): Promise<void> {
    if (!op.principal.admin) {
      throw new GatewayError('forbidden', { text: 'CPTS territories are granted by an operator (an admin client)' });
    }
    await this.repo.update('Organization', org.id as string, org, op, undefined, tx);
  }

  private async membersOf(tx: PoolClient, ref: string): Promise<Organization[]> {
    return this.repo.listContaining<Organization>('Organization', { partOf: { reference: ref } }, tx);
  }

  private async membersByParent(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const o of await this.repo.listContaining<Organization>('Organization', { partOf: {} })) {
      const parent = o.partOf?.reference;
      if (parent) {
        out.set(parent, [...(out.get(parent) ?? []), `Organization/${o.id}`]);
      }
    }
    return out;
  }

  /** Routing reads territories afresh, and the change is in the access audit. */
  private changed(interaction: string, entity: string[], op: OperatorContext): void {
    this.directory.invalidate();
    this.audit.record({
      clientId: op.principal.clientId,
      organization: op.principal.organization,
      interaction,
      resourceType: 'Organization',
      entity,
      outcome: 200,
      requestId: op.requestId,
    });
  }
}

function parseGrant(body: unknown): { communes: string[]; members?: string[] } {
  const b = body as { communes?: unknown; members?: unknown } | null;
  if (!b || typeof b !== 'object' || Array.isArray(b)) {
    throw new GatewayError('invalid', {
      text: 'expected {"communes": ["69123", …], "members": ["Organization/x", …]}',
    });
  }
  const communes = list(
    b.communes,
    'communes',
    INSEE,
    'an INSEE commune code (5 characters: digits, or 2A/2B + 3 digits)',
  );
  const members =
    b.members === undefined ? undefined : list(b.members, 'members', ORG_REF, 'a reference Organization/<id>');
  return { communes, members };
}

function list(value: unknown, field: string, shape: RegExp, what: string): string[] {
  if (!Array.isArray(value) || value.length > MAX_ITEMS) {
    throw new GatewayError('invalid', {
      text: `${field} must be an array of at most ${MAX_ITEMS} items`,
      expression: field,
    });
  }
  value.forEach((v, i) => {
    if (typeof v !== 'string' || !shape.test(v)) {
      throw new GatewayError('invalid', { text: `${field}[${i}] must be ${what}`, expression: `${field}[${i}]` });
    }
  });
  return [...new Set(value as string[])];
}

function isCpts(org: Organization): boolean {
  return (org.type ?? []).some((t) => (t.coding ?? []).some((c) => isCptsCode(c.code)));
}

/** The Organization without CPTS type codings nor territory communes. */
function withoutGrant(org: Organization): Organization {
  const type = (org.type ?? [])
    .map((t) => ({ ...t, coding: t.coding?.filter((c) => !isCptsCode(c.code)) }))
    .filter((t) => (t.coding?.length ?? 0) > 0 || t.text);
  const extension = (org.extension ?? []).filter((e) => e.url !== TERRITORY_COMMUNE_EXTENSION);
  const out: Organization = { ...org, type, extension };
  if (type.length === 0) {
    delete out.type;
  }
  if (extension.length === 0) {
    delete out.extension;
  }
  return out;
}

/** The Organization typed CPTS (replacing its other gateway organization type) and covering exactly `communes`. */
function withGrant(org: Organization, communes: string[]): Organization {
  const base = withoutGrant(org);
  const cpts: CodeableConcept = { coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: 'CPTS', display: 'CPTS' }] };
  const others = (base.type ?? [])
    .map((t) => ({ ...t, coding: t.coding?.filter((c) => c.system !== ORGANIZATION_TYPE_SYSTEM) }))
    .filter((t) => (t.coding?.length ?? 0) > 0 || t.text);
  return {
    ...base,
    type: [cpts, ...others],
    extension: [
      ...(base.extension ?? []),
      ...communes.map((c) => ({ url: TERRITORY_COMMUNE_EXTENSION, valueCode: c })),
    ],
  };
}

function entry(org: Organization, members: string[]): CptsEntry {
  return {
    organization: `Organization/${org.id}`,
    name: org.name,
    active: org.active !== false,
    mailbox: mssanteMailbox(org.telecom),
    communes: isCpts(org) ? territoryCommunes(org) : [],
    members: [...members].sort(),
  };
}
