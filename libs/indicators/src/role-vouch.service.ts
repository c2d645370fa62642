import { formatHumanName } from '@medplum/core';
import type { Practitioner, PractitionerRole } from '@medplum/fhirtypes';
import type { Pool } from 'pg';
import { GatewayError } from '@gw/platform';
import { actorOf } from '@gw/store';
import type { AuditLog, FhirRepository, WriteContext } from '@gw/store';

/** A PractitionerRole as the operator reviews it: directory data only (references, names, period). */
export interface RoleVouchEntry {
  role: string;
  practitioner: { reference: string; name?: string; owner?: string };
  organization: { reference: string; name?: string };
  active: boolean;
  period?: { start?: string; end?: string };
  /** Whether the role verifies its organization's médecin-traitant declarations of the practitioner. */
  verified: boolean;
  /** Why it does: the organization owns the Practitioner, or an operator vouched for (or wrote) the role. */
  basis?: 'own-practitioner' | 'operator';
}

export interface RoleVouchPage {
  total: number;
  offset: number;
  roles: RoleVouchEntry[];
}

interface RoleRow {
  id: string;
  practitioner: string;
  organization: string;
  active: boolean;
  started: string | null;
  ended: string | null;
  vouched: boolean;
  practitioner_owner: string | null;
  organization_name: string | null;
  total?: string;
}

const ID = /^[A-Za-z0-9\-.]{1,64}$/;

const ROLE_ROWS = `SELECT r.id, r.practitioner, r.organization, r.active, r.vouched,
    to_char(r.started, 'YYYY-MM-DD') AS started, to_char(r.ended, 'YYYY-MM-DD') AS ended,
    pr.owner_org AS practitioner_owner, o.name AS organization_name
  FROM ind_practitioner_role r
  LEFT JOIN ind_practitioner pr ON r.practitioner = 'Practitioner/' || pr.id
  LEFT JOIN ind_organization o ON r.organization = 'Organization/' || o.id`;

/**
 * The operator's side of médecin-traitant verification (admin API /admin/practitioner-roles, CLI
 * practitioner-roles:*). A PractitionerRole is its structure's own word: it verifies the
 * structure's declarations of a GP only when the GP is the structure's own practitioner or an
 * operator vouched for it. Vouching writes the role again as the operator (the store then puts the
 * role-trust tag on it, docs/indicators.md); every decision is in the access audit.
 */
export class PractitionerRoleVouching {
  constructor(
    private readonly pool: Pool,
    private readonly repo: FhirRepository,
    private readonly audit: AuditLog,
  ) {}

  /**
   * The roles naming a practitioner their organization does not own — those whose counting rests on
   * an operator — `verified` false: not vouched for (to review), true: vouched for; absent: both.
   */
  async list(opts: { verified?: boolean; count: number; offset: number }): Promise<RoleVouchPage> {
    const vouched = opts.verified === undefined ? '' : ` AND r.vouched = ${opts.verified ? 'true' : 'false'}`;
    const res = await this.pool.query<RoleRow>(
      `SELECT x.*, count(*) OVER () AS total FROM (${ROLE_ROWS}
        WHERE r.practitioner IS NOT NULL AND r.organization IS NOT NULL
          AND pr.owner_org IS DISTINCT FROM r.organization${vouched}) x
       ORDER BY x.organization, x.id LIMIT $1 OFFSET $2`,
      [opts.count, opts.offset],
    );
    return { total: Number(res.rows[0]?.total ?? 0), offset: opts.offset, roles: await this.entries(res.rows) };
  }

  /** An operator vouches for the role: it verifies its organization's declarations of its practitioner. */
  async verify(id: string, op: WriteContext): Promise<RoleVouchEntry> {
    return this.decide(id, true, op);
  }

  /** An operator withdraws the vouch (an own practitioner's role still counts: ownership is not a vouch). */
  async unverify(id: string, op: WriteContext): Promise<RoleVouchEntry> {
    return this.decide(id, false, op);
  }

  private async decide(id: string, vouch: boolean, op: WriteContext): Promise<RoleVouchEntry> {
    if (!op.principal.admin) {
      throw new GatewayError('forbidden', {
        text: 'PractitionerRoles are vouched for by an operator (an admin client)',
      });
    }
    await this.repo.withTransaction(async (tx) => {
      const role = ID.test(id)
        ? await this.repo.readSystem<PractitionerRole>('PractitionerRole', id, { db: tx, forUpdate: true })
        : undefined;
      if (!role) {
        throw new GatewayError('not-found', { text: `PractitionerRole/${id} not found` });
      }
      if (!role.practitioner?.reference || !role.organization?.reference) {
        throw new GatewayError('business-rule', {
          text: `PractitionerRole/${id} names no practitioner or no organization: there is nothing to vouch for`,
        });
      }
      await this.repo.update('PractitionerRole', id, role, { ...op, roleVouch: vouch }, undefined, tx);
    });
    const entry = await this.entry(id);
    this.audit.record({
      ...actorOf(op.principal),
      interaction: vouch ? 'practitioner-role-verify' : 'practitioner-role-unverify',
      resourceType: 'PractitionerRole',
      entity: [entry.role, entry.practitioner.reference, entry.organization.reference],
      outcome: 200,
      requestId: op.requestId,
    });
    return entry;
  }

  private async entry(id: string): Promise<RoleVouchEntry> {
    const res = await this.pool.query<RoleRow>(`${ROLE_ROWS} WHERE r.id = $1`, [id]);
    const [entry] = await this.entries(res.rows);
    if (!entry) {
      throw new GatewayError('not-found', { text: `PractitionerRole/${id} not found` });
    }
    return entry;
  }

  /** The rows with their practitioners' names (the directory's Practitioner resources). */
  private async entries(rows: RoleRow[]): Promise<RoleVouchEntry[]> {
    const ids = rows.map((r) => /^Practitioner\/(.+)$/.exec(r.practitioner)?.[1]).filter((x): x is string => !!x);
    const practitioners = await this.repo.readSystemMany<Practitioner>('Practitioner', ids);
    return rows.map((r) => {
      const own = r.practitioner_owner !== null && r.practitioner_owner === r.organization;
      const name = practitioners.get(r.practitioner.slice('Practitioner/'.length))?.name?.[0];
      const basis = own ? 'own-practitioner' : r.vouched ? 'operator' : undefined;
      return {
        role: `PractitionerRole/${r.id}`,
        practitioner: {
          reference: r.practitioner,
          ...(name ? { name: formatHumanName(name, { prefix: true }) } : {}),
          ...(r.practitioner_owner ? { owner: r.practitioner_owner } : {}),
        },
        organization: { reference: r.organization, ...(r.organization_name ? { name: r.organization_name } : {}) },
        active: r.active,
        ...(r.started || r.ended
          ? { period: { ...(r.started ? { start: r.started } : {}), ...(r.ended ? { end: r.ended } : {}) } }
          : {}),
        verified: basis !== undefined,
        ...(basis ? { basis } : {}),
      };
    });
  }
}
