import type { Pool } from 'pg';
import { GatewayError } from '@gw/platform';
import { dateRange, parseReference } from '@gw/fhir';
import type { Principal } from '../repository/access.policy';
import type { AuditLog } from './audit.log';
import { actorOf, markAudited } from './audit.log';
import { auditQuery } from './audit-subject';

/**
 * Grant: the client's organization's data protection officer (DPO) reads the access trail of the
 * patients whose record the organization holds (`AuditEvent?patient=`).
 */
export const AUDIT_DPO_GRANT = 'audit-dpo';

const WHO_MAY =
  "A patient's access trail (AuditEvent?patient=) is open to the patient's médecin traitant only (a person whose Practitioner or PractitionerRole Patient.generalPractitioner names, or an active participant with role PCP of the patient's active CareTeam), and to a client an operator granted audit-dpo for the patients whose record its organization holds";

/** Parameters of a trail search besides `patient`; others are refused (never silently widened). */
const TRAIL_PARAMS = new Set(['patient', 'date', '_count', '_cursor', '_format', '_pretty']);

interface Coding {
  code?: string;
}
interface Period {
  start?: string;
  end?: string;
}
interface CareTeamJson {
  status?: string;
  period?: Period;
  participant?: { role?: { coding?: Coding[] }[]; member?: { reference?: string }; period?: Period }[];
}

/**
 * `GET /fhir/AuditEvent?patient=` answered from the access trail: who looked at a patient's
 * record (every permit and deny naming that patient), newest first, paged with `_count` and a
 * keyset cursor, bounded with `date=ge…`/`le…`. Only the médecin traitant and a DPO may ask.
 */
export class PatientTrail {
  constructor(
    private readonly pool: Pool,
    private readonly audit: AuditLog,
    private readonly opts: { baseUrl: string; defaultCount: number; maxCount: number },
  ) {}

  /** Whether a search is a trail search (the other AuditEvent searches read stored AuditEvents). */
  static handles(type: string, pairs: readonly [string, string][]): boolean {
    return type === 'AuditEvent' && pairs.some(([k]) => k === 'patient');
  }

  /** The searchset Bundle (JSON text) of one patient's trail; 403 for anyone but the MT or a DPO. */
  async search(p: Principal, pairs: [string, string][], requestId?: string): Promise<string> {
    const q = this.parse(pairs);
    const base = { ...actorOf(p), resourceType: 'AuditEvent', patients: [q.patientId], query: auditQuery(pairs) };
    if (!(await this.mayRead(p, q.patientId))) {
      this.audit.record({ ...base, interaction: 'search', outcome: 403, requestId });
      throw markAudited(new GatewayError('forbidden', { text: WHO_MAY }));
    }
    const page = await this.audit.patientTrail({ ...q, count: q.count + 1 });
    const events = page.events.slice(0, q.count);
    const hasMore = page.events.length > q.count;
    this.audit.record({ ...base, interaction: 'search', outcome: 200, requestId });
    const self = this.link(pairs, q.count, q.before);
    const links = [{ relation: 'self', url: self }];
    if (hasMore) {
      links.push({ relation: 'next', url: this.link(pairs, q.count, Number(events.at(-1)?.id)) });
    }
    const url = `${this.opts.baseUrl}/fhir/AuditEvent`;
    return JSON.stringify({
      resourceType: 'Bundle',
      type: 'searchset',
      total: page.total,
      link: links,
      entry: events.map((e) => ({ fullUrl: `${url}/${String(e.id)}`, resource: e, search: { mode: 'match' } })),
    });
  }

  private link(pairs: [string, string][], count: number, before?: number): string {
    const q = new URLSearchParams(pairs.filter(([k]) => k !== '_count' && k !== '_cursor'));
    q.set('_count', String(count));
    if (before !== undefined) {
      q.set('_cursor', String(before));
    }
    return `${this.opts.baseUrl}/fhir/AuditEvent?${q.toString()}`;
  }

  private parse(pairs: [string, string][]): {
    patientId: string;
    from?: string;
    to?: string;
    count: number;
    before?: number;
  } {
    const unknown = pairs.filter(([k]) => !TRAIL_PARAMS.has(k)).map(([k]) => k);
    if (unknown.length > 0) {
      throw new GatewayError('invalid', {
        text: `A patient's trail is searched with patient, date (ge/gt/le/lt/eq), _count and _cursor only, not ${unknown.join(', ')}`,
        expression: unknown[0],
      });
    }
    const patients = pairs.filter(([k]) => k === 'patient').map(([, v]) => v);
    const ref = patients.length === 1 && !patients[0].includes(',') ? patientRef(patients[0]) : undefined;
    if (!ref) {
      throw new GatewayError('invalid', {
        text: 'patient must name one Patient: patient=Patient/<id> or patient=<id>',
        expression: 'patient',
      });
    }
    let from: string | undefined;
    let to: string | undefined;
    for (const [, v] of pairs.filter(([k]) => k === 'date')) {
      const [, prefix = 'eq', value] = /^(eq|gt|ge|lt|le)?(.*)$/.exec(v) ?? [];
      const range = value ? dateRange(value) : undefined;
      if (!range) {
        throw new GatewayError('invalid', {
          text: `date must be a FHIR date or instant with an optional ge/gt/le/lt/eq prefix, not "${v.slice(0, 40)}"`,
          expression: 'date',
        });
      }
      const lower = prefix === 'gt' ? range.high : range.low;
      const upper = prefix === 'lt' ? range.low : range.high;
      if (prefix !== 'lt' && prefix !== 'le') {
        from = from && from > lower ? from : lower;
      }
      if (prefix !== 'gt' && prefix !== 'ge') {
        to = to && to < upper ? to : upper;
      }
    }
    return { patientId: ref, from, to, count: this.count(pairs), before: cursor(pairs) };
  }

  private count(pairs: [string, string][]): number {
    const v = pairs.find(([k]) => k === '_count')?.[1];
    if (v === undefined || v === '') {
      return this.opts.defaultCount;
    }
    if (!/^\d+$/.test(v) || Number(v) < 1) {
      throw new GatewayError('invalid', {
        text: `_count must be a positive integer, not "${v.slice(0, 20)}"`,
        expression: '_count',
      });
    }
    return Math.min(Number(v), this.opts.maxCount);
  }

  /**
   * The médecin traitant (Patient.generalPractitioner names the person's Practitioner or role, or
   * an active PCP participant of an active CareTeam of the patient does), or a DPO-granted client
   * of the organization that holds the Patient record.
   */
  private async mayRead(p: Principal, patientId: string): Promise<boolean> {
    const patient = await this.pool.query<{ content: string; owner_org: string | null }>(
      `SELECT content, owner_org FROM resource WHERE resource_type = 'Patient' AND id = $1 AND NOT deleted`,
      [patientId],
    );
    const row = patient.rows[0];
    if (!row) {
      return false;
    }
    if (p.grants?.includes(AUDIT_DPO_GRANT) && row.owner_org === p.organization) {
      return true;
    }
    if (!p.person) {
      return false;
    }
    // The Practitioner itself only for an identity proved (PersonContext.identityVerified).
    const me = new Set(p.person.identityVerified ? [p.person.practitioner, p.person.role] : [p.person.role]);
    const gps =
      (JSON.parse(row.content) as { generalPractitioner?: { reference?: string }[] }).generalPractitioner ?? [];
    if (gps.some((g) => me.has(normalised(g.reference)))) {
      return true;
    }
    const teams = await this.pool.query<{ content: string }>(
      `SELECT r.content FROM resource r JOIN sp_reference s ON s.resource_type = r.resource_type AND s.id = r.id
        WHERE r.resource_type = 'CareTeam' AND NOT r.deleted AND s.code IN ('subject', 'patient')
          AND s.target_type = 'Patient' AND s.target_id = $1`,
      [patientId],
    );
    const now = Date.now();
    return teams.rows.some((t) => {
      const team = JSON.parse(t.content) as CareTeamJson;
      if ((team.status !== undefined && team.status !== 'active') || !covers(team.period, now)) {
        return false;
      }
      return (team.participant ?? []).some(
        (m) =>
          me.has(normalised(m.member?.reference)) &&
          covers(m.period, now) &&
          (m.role ?? []).some((r) => (r.coding ?? []).some((c) => c.code === 'PCP')),
      );
    });
  }
}

function patientRef(value: string): string | undefined {
  if (/^[A-Za-z0-9\-.]{1,64}$/.test(value)) {
    return value;
  }
  const ref = parseReference(value);
  return ref?.type === 'Patient' ? ref.id : undefined;
}

function cursor(pairs: [string, string][]): number | undefined {
  const v = pairs.find(([k]) => k === '_cursor')?.[1];
  if (v === undefined) {
    return undefined;
  }
  if (!/^\d{1,18}$/.test(v)) {
    throw new GatewayError('invalid', { text: '_cursor must be the value a next link gave', expression: '_cursor' });
  }
  return Number(v);
}

function normalised(reference: string | undefined): string {
  const ref = reference ? parseReference(reference) : undefined;
  return ref ? `${ref.type}/${ref.id}` : '';
}

/** Whether a FHIR Period (absent: always) covers an instant; a date's precision is its interval. */
function covers(period: Period | undefined, at: number): boolean {
  const start = period?.start ? dateRange(period.start)?.low : undefined;
  const end = period?.end ? dateRange(period.end)?.high : undefined;
  return (start === undefined || Date.parse(start) <= at) && (end === undefined || Date.parse(end) > at);
}
