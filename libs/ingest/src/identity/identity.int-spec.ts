import { resolve } from 'node:path';
import { Pool } from 'pg';
import pino from 'pino';
import type { Patient } from '@medplum/fhirtypes';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions, nirKey } from '@gw/fhir';
import { AuditLog, FhirRepository, OrganizationAccessPolicy } from '@gw/store';
import type { Principal } from '@gw/store';
import { createTestDatabase, migrateAll } from '@gw/testing/database';
import type { PatientTraits } from '../intake/extraction';
import { PatientMatcher } from './matcher';
import { IdentityReviewQueue } from './review-queue';
import type { ReviewDecision } from './review-queue';

const TEST_NIR = '1.2.250.1.213.1.4.10';
const nir = (first13: string): string => `${first13}${nirKey(first13)}`;
const ADMIN: Principal = { clientId: 'spec-admin', organization: 'Organization/gateway', admin: true, scopes: [] };
const client = (org: string): Principal => ({
  clientId: `spec-${org}`,
  organization: org,
  admin: false,
  scopes: ['system/*.cruds'],
});

describe('PatientMatcher and IdentityReviewQueue (PostgreSQL)', () => {
  let pool: Pool;
  let repo: FhirRepository;
  let audit: AuditLog;
  let matcher: PatientMatcher;
  let queue: IdentityReviewQueue;
  let mspA: string;
  let mspB: string;
  const seq = { n: 0 };

  /** A Patient of `org` born `birthDate`, with optional INS and local number. */
  async function patient(
    org: string,
    o: { family?: string; given?: string; birthDate?: string; ins?: string; local?: string } = {},
  ): Promise<string> {
    const identifier = [
      ...(o.ins ? [{ use: 'official' as const, system: `urn:oid:${TEST_NIR}`, value: o.ins }] : []),
      ...(o.local ? [{ system: 'urn:lgc:weda', value: o.local }] : []),
    ];
    const p: Patient = {
      resourceType: 'Patient',
      identifier,
      name: [{ use: 'official', family: o.family ?? 'LÉGER', given: [o.given ?? 'Anaïs'] }],
      gender: 'female',
      birthDate: o.birthDate ?? '1971-05-02',
    };
    return (await repo.create(p, { principal: client(org) })).id;
  }
  const traits = (o: Partial<PatientTraits> = {}): PatientTraits => ({
    identifiers: [],
    birthFamily: 'LEGER',
    given: ['ANAIS'],
    sex: 'female',
    birthDate: '1971-05-02',
    ...o,
  });
  /** A birth date no other test uses, so that each test sees only its own patients. */
  const day = (): string => `1950-01-${String(++seq.n).padStart(2, '0')}`;

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('identity') });
    await migrateAll(pool);
    loadFhirDefinitions();
    const profiles = ProfileRegistry.fromDirectory(resolve(__dirname, '../../../../fhir-profiles'));
    repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy(), profiles);
    audit = new AuditLog(pool, pino({ level: 'silent' }));
    matcher = new PatientMatcher(repo);
    queue = new IdentityReviewQueue(pool, repo, audit);
    mspA = `Organization/${(await repo.create({ resourceType: 'Organization', name: 'MSP A' }, { principal: ADMIN })).id}`;
    mspB = `Organization/${(await repo.create({ resourceType: 'Organization', name: 'MSP B' }, { principal: ADMIN })).id}`;
  });
  afterAll(async () => {
    await audit.flush();
    await pool.end();
  });

  describe('match', () => {
    it('finds by qualified INS among the owner’s Patients only, never another organization’s', async () => {
      const ins = nir('2710599350012');
      const a = await patient(mspA, { ins, birthDate: day() });
      await patient(mspB, { ins, birthDate: day() });
      expect(await matcher.match(pool, mspA, traits({ ins: { value: ins, oid: TEST_NIR } }))).toEqual({
        kind: 'matched',
        patientId: a,
        rule: 'ins',
      });
      const c = await pool.connect();
      try {
        // A third organization has no such patient: nothing, although B's record has the INS and traits.
        expect(await matcher.match(c, 'Organization/none', traits({ ins: { value: ins, oid: TEST_NIR } }))).toEqual({
          kind: 'none',
        });
      } finally {
        c.release();
      }
    });

    it('finds by the sender’s local identifier, and sends an INS conflict to review', async () => {
      const local = `L${Date.now()}`;
      const b = await patient(mspA, { local, ins: nir('2710599350013'), birthDate: day() });
      expect(
        await matcher.match(pool, mspA, traits({ identifiers: [{ system: 'urn:lgc:weda', value: local }] })),
      ).toEqual({ kind: 'matched', patientId: b, rule: 'local-identifier' });
      const other = { value: nir('2710599350099'), oid: TEST_NIR };
      expect(
        await matcher.match(
          pool,
          mspA,
          traits({ ins: other, identifiers: [{ system: 'urn:lgc:weda', value: local }] }),
        ),
      ).toEqual({ kind: 'review', reason: 'ins-conflict', candidates: [b] });
    });

    it('matches on normalised traits, sends a partial or double match to review, finds none otherwise', async () => {
      const born = day();
      const t = await patient(mspA, { family: "D'ARC-LÉGER", given: 'Jean-Anaïs', birthDate: born });
      const exact = traits({ birthFamily: 'D ARC LEGER', given: ['JEAN ANAIS'], birthDate: born });
      expect(await matcher.match(pool, mspA, exact)).toEqual({ kind: 'matched', patientId: t, rule: 'traits' });
      expect(await matcher.match(pool, mspA, { ...exact, given: ['PAUL'] })).toEqual({
        kind: 'review',
        reason: 'traits-partial',
        candidates: [t],
      });
      // A mistyped birth date still finds the record by its names: partial.
      expect(await matcher.match(pool, mspA, { ...exact, birthDate: day() })).toMatchObject({
        kind: 'review',
        candidates: [t],
      });
      const twin = await patient(mspA, { family: "D'ARC-LÉGER", given: 'Jean-Anaïs', birthDate: born });
      const several = await matcher.match(pool, mspA, exact);
      expect(several).toMatchObject({ kind: 'review', reason: 'traits-several' });
      expect(several.kind === 'review' && [...several.candidates].sort()).toEqual([t, twin].sort());
      expect(await matcher.match(pool, mspB, exact)).toEqual({ kind: 'none' });
    });
  });

  describe('review queue', () => {
    const decided: { source: string; decision: ReviewDecision; by: string }[] = [];
    let failNext = false;
    beforeAll(() => {
      queue.registerResolver('spec:', async (source, decision, by) => {
        if (failNext) {
          failNext = false;
          throw new Error('resolver down');
        }
        decided.push({ source, decision, by: by.clientId });
        return Promise.resolve();
      });
    });

    it('refuses a second resolver for one prefix', () => {
      expect(() => queue.registerResolver('spec:', async () => Promise.resolve())).toThrow('already registered');
    });

    it('opens one review per source, lists it by owner and status, and accepts a Patient of the owner', async () => {
      const p = await patient(mspA, { birthDate: day() });
      const source = `spec:${Date.now()}`;
      const id = await queue.open(pool, {
        owner: mspA,
        source,
        traits: traits(),
        reason: 'traits-partial',
        candidates: [p],
      });
      expect(
        await queue.open(pool, { owner: mspA, source, traits: traits(), reason: 'traits-several', candidates: [p] }),
      ).toBe(id);
      const open = await queue.list({ owner: mspA, status: 'open', count: 100, offset: 0 });
      expect(open.reviews.find((r) => r.id === id)).toMatchObject({
        reason: 'traits-several',
        candidates: [`Patient/${p}`],
        traits: { birthFamily: 'LEGER' },
      });
      expect((await queue.list({ owner: mspB, count: 100, offset: 0 })).reviews.some((r) => r.id === id)).toBe(false);
      await expect(queue.get(id, mspB)).rejects.toMatchObject({ status: 404 });

      const other = await patient(mspB, { birthDate: day() });
      await expect(queue.decide(id, { kind: 'accept', patientId: other }, client(mspA), mspA)).rejects.toMatchObject({
        status: 422,
      });
      const done = await queue.decide(id, { kind: 'accept', patientId: p }, client(mspA), mspA);
      expect(done).toMatchObject({ status: 'accepted', decision: { kind: 'accept', patientId: p } });
      expect(done.decidedBy).toMatchObject({ clientId: `spec-${mspA}`, organization: mspA });
      expect(decided.at(-1)).toEqual({ source, decision: { kind: 'accept', patientId: p }, by: `spec-${mspA}` });
      await expect(queue.decide(id, { kind: 'create' }, ADMIN)).rejects.toMatchObject({ status: 409 });

      await audit.flush();
      const trail = await pool.query<{ interaction: string; client_id: string; entity: string[]; patients: string[] }>(
        `SELECT interaction, client_id, entity, patients FROM audit_event WHERE $1 = ANY(entity)`,
        [`IdentityReview/${id}`],
      );
      expect(trail.rows).toEqual([
        {
          interaction: 'identity-review-accept',
          client_id: `spec-${mspA}`,
          entity: [`IdentityReview/${id}`, `Patient/${p}`],
          patients: [p],
        },
      ]);
    });

    it('a failing resolver leaves the review open; another owner cannot decide it', async () => {
      const id = await queue.open(pool, {
        owner: mspA,
        source: `spec:f${Date.now()}`,
        traits: traits(),
        reason: 'ins-conflict',
        candidates: [],
      });
      await expect(queue.decide(id, { kind: 'reject', reason: 'x' }, client(mspB), mspB)).rejects.toMatchObject({
        status: 404,
      });
      failNext = true;
      await expect(queue.decide(id, { kind: 'create' }, ADMIN)).rejects.toThrow('resolver down');
      expect((await queue.get(id)).status).toBe('open');
      expect(await queue.decide(id, { kind: 'reject', reason: 'not ours' }, ADMIN)).toMatchObject({
        status: 'rejected',
        decision: { kind: 'reject', reason: 'not ours' },
        decidedBy: { clientId: 'spec-admin', admin: true },
      });
    });
  });
});
