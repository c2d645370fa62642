import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { GatewayError } from '@gw/platform';
import { actorOf } from '@gw/store';
import type { AuditActor, AuditLog, FhirRepository, Principal, Queryable } from '@gw/store';
import type { PatientTraits } from '../intake/extraction';

/** What a reviewer decided: the document's patient is a known one, a new one, or the document is refused. */
export type ReviewDecision =
  { kind: 'accept'; patientId: string } | { kind: 'create' } | { kind: 'reject'; reason?: string };

/** Acts on a decision for the channel that opened the review (e.g. the intake pipeline files the held document). */
export type ReviewResolver = (source: string, decision: ReviewDecision, by: Principal) => Promise<void>;

export type ReviewStatus = 'open' | 'accepted' | 'created' | 'rejected';
export const REVIEW_STATUSES: readonly ReviewStatus[] = ['open', 'accepted', 'created', 'rejected'];

export interface IdentityReview {
  id: string;
  /** `Organization/<id>` whose Patients the identity is matched among (whose queue it is). */
  owner: string;
  source: string;
  reason: string;
  traits: PatientTraits;
  /** `Patient/<id>` references of the candidates the rule found. */
  candidates: string[];
  status: ReviewStatus;
  createdAt: string;
  decidedAt?: string;
  decidedBy?: AuditActor;
  decision?: ReviewDecision;
}

export interface OpenReview {
  owner: string;
  source: string;
  traits: PatientTraits;
  reason: string;
  /** Patient ids or `Patient/<id>` references. */
  candidates: string[];
}

interface Row {
  id: string;
  owner: string;
  source: string;
  reason: string;
  traits: PatientTraits;
  candidates: string[];
  status: ReviewStatus;
  created_at: Date;
  decided_at: Date | null;
  decided_by: AuditActor | null;
  decision: ReviewDecision | null;
}

const STATUS_OF: Record<ReviewDecision['kind'], ReviewStatus> = {
  accept: 'accepted',
  create: 'created',
  reject: 'rejected',
};

/**
 * The identity review queue: identities the matching rule could not decide wait here, with the
 * document they came with held by its channel, until an operator or the owner organization decides.
 * Each channel registers a resolver for its source prefix; a decision runs the resolver, then is
 * recorded (one transaction around the review row: a failing resolver leaves the review open) and
 * audited with who took it. Traits stay in the row: never logged, never in the audit trail.
 */
export class IdentityReviewQueue {
  private readonly resolvers = new Map<string, ReviewResolver>();

  constructor(
    private readonly pool: Pool,
    private readonly repo: FhirRepository,
    private readonly audit: AuditLog,
  ) {}

  /** One resolver per source prefix (`intake:`); a second one for the same prefix is a wiring error. */
  registerResolver(sourcePrefix: string, fn: ReviewResolver): void {
    if (this.resolvers.has(sourcePrefix)) {
      throw new Error(`An identity review resolver is already registered for ${sourcePrefix}`);
    }
    this.resolvers.set(sourcePrefix, fn);
  }

  /** Opens a review (or refreshes the open one of the same source, so a retried document opens one); returns its id. */
  async open(db: Queryable, r: OpenReview): Promise<string> {
    const res = await db.query<{ id: string }>(
      `INSERT INTO identity_review (id, owner, source, reason, traits, candidates)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (source) WHERE status = 'open'
       DO UPDATE SET reason = EXCLUDED.reason, traits = EXCLUDED.traits, candidates = EXCLUDED.candidates
       RETURNING id`,
      [randomUUID(), r.owner, r.source, r.reason, JSON.stringify(r.traits), r.candidates.map(patientRef)],
    );
    return res.rows[0].id;
  }

  /** A page of reviews, oldest first; `owner` limits it to one organization's queue. */
  async list(q: {
    owner?: string;
    status?: ReviewStatus;
    count: number;
    offset: number;
  }): Promise<{ total: number; reviews: IdentityReview[] }> {
    const where = '($1::text IS NULL OR owner = $1) AND ($2::text IS NULL OR status = $2)';
    const values = [q.owner ?? null, q.status ?? null];
    const [page, total] = await Promise.all([
      this.pool.query<Row>(`SELECT * FROM identity_review WHERE ${where} ORDER BY created_at, id LIMIT $3 OFFSET $4`, [
        ...values,
        q.count,
        q.offset,
      ]),
      this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM identity_review WHERE ${where}`, values),
    ]);
    return { total: Number(total.rows[0].n), reviews: page.rows.map(toReview) };
  }

  /** One review; 404 when it does not exist or belongs to another organization than `owner`. */
  async get(id: string, owner?: string): Promise<IdentityReview> {
    const res = isUuid(id)
      ? await this.pool.query<Row>('SELECT * FROM identity_review WHERE id = $1 AND ($2::text IS NULL OR owner = $2)', [
          id,
          owner ?? null,
        ])
      : undefined;
    if (!res?.rows[0]) {
      throw new GatewayError('not-found', { text: `Identity review ${id} not found` });
    }
    return toReview(res.rows[0]);
  }

  /**
   * Decides an open review as `by` (an operator, or the owner organization when `owner` is given):
   * 409 when already decided, 422 when the accepted Patient is not one of the owner's. The
   * channel's resolver runs first; its failure leaves the review open.
   */
  async decide(id: string, decision: ReviewDecision, by: Principal, owner?: string): Promise<IdentityReview> {
    const tx = await this.pool.connect();
    try {
      await tx.query('BEGIN');
      const found = isUuid(id)
        ? await tx.query<Row>(
            'SELECT * FROM identity_review WHERE id = $1 AND ($2::text IS NULL OR owner = $2) FOR UPDATE',
            [id, owner ?? null],
          )
        : undefined;
      const row = found?.rows[0];
      if (!row) {
        throw new GatewayError('not-found', { text: `Identity review ${id} not found` });
      }
      if (row.status !== 'open') {
        throw new GatewayError('conflict', { text: `Identity review ${id} was already decided (${row.status})` });
      }
      if (decision.kind === 'accept') {
        await this.checkOwned(decision.patientId, row.owner);
      }
      await this.resolverFor(row.source)?.(row.source, decision, by);
      const updated = await tx.query<Row>(
        `UPDATE identity_review SET status = $2, decided_at = now(), decided_by = $3, decision = $4
         WHERE id = $1 RETURNING *`,
        [id, STATUS_OF[decision.kind], JSON.stringify(actorOf(by)), JSON.stringify(decision)],
      );
      await tx.query('COMMIT');
      this.audit.record({
        ...actorOf(by),
        interaction: `identity-review-${decision.kind}`,
        entity: [`IdentityReview/${id}`, ...(decision.kind === 'accept' ? [`Patient/${decision.patientId}`] : [])],
        patients: decision.kind === 'accept' ? [decision.patientId] : undefined,
        outcome: 200,
      });
      return toReview(updated.rows[0]);
    } catch (err) {
      await tx.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      tx.release();
    }
  }

  /** The resolver of the longest registered prefix of `source`. */
  private resolverFor(source: string): ReviewResolver | undefined {
    const prefix = [...this.resolvers.keys()]
      .filter((p) => source.startsWith(p))
      .sort((a, b) => b.length - a.length)[0];
    return prefix === undefined ? undefined : this.resolvers.get(prefix);
  }

  private async checkOwned(patientId: string, owner: string): Promise<void> {
    const as: Principal = { clientId: 'gw-identity-review', organization: owner, admin: false, scopes: [] };
    const stored = await this.repo.read(as, 'Patient', patientId).catch(() => undefined);
    if (!stored || stored.ownerOrg !== owner) {
      throw new GatewayError('business-rule', {
        text: `Patient/${patientId} is not a current Patient of ${owner}: accept one of its own Patients`,
        expression: 'patient',
      });
    }
  }
}

/** `Patient/<id>` from an id or a reference. */
export function patientRef(idOrRef: string): string {
  return idOrRef.startsWith('Patient/') ? idOrRef : `Patient/${idOrRef}`;
}

function isUuid(s: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(s);
}

function toReview(r: Row): IdentityReview {
  return {
    id: r.id,
    owner: r.owner,
    source: r.source,
    reason: r.reason,
    traits: r.traits,
    candidates: r.candidates,
    status: r.status,
    createdAt: r.created_at.toISOString(),
    ...(r.decided_at ? { decidedAt: r.decided_at.toISOString() } : {}),
    ...(r.decided_by ? { decidedBy: r.decided_by } : {}),
    ...(r.decision ? { decision: r.decision } : {}),
  };
}
