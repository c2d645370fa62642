import type { Bundle, MeasureReport, Parameters, PractitionerRole } from '@medplum/fhirtypes';
import { ROLE_OPERATOR_VOUCHED, ROLE_TRUST_SYSTEM } from '@gw/fhir';
import type { RoleVouchEntry, RoleVouchPage } from '@gw/indicators';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call } from '../support/hl7';
import { typedOrganization } from '../support/indicators';
import { GATEWAY_CLI, run } from '../support/process';

const PERIOD = 'periodStart=2025-01-01&periodEnd=2025-12-31';
const FLU = 'rosp-grippe-65';

type Res = Record<string, unknown> & { resourceType: string };

/** The patients of a `$care-gaps` answer (`Patient/<id>`), sorted. */
function patientsOf(body: Parameters): string[] {
  return (body.parameter ?? [])
    .map((p) => {
      const composition = (p.resource as Bundle).entry?.[0]?.resource;
      return composition?.resourceType === 'Composition' ? (composition.subject?.reference ?? '') : '';
    })
    .sort();
}

/**
 * A structure's PractitionerRole is its own word: MSP B writing a role for MSP A's GP (P) and
 * declaring P as médecin traitant of its patients must not change P's figures, until an operator
 * vouches for that role (admin API /admin/practitioner-roles). B's roles for its own GP (Q) count
 * without a vouch. A: P's patients a1..a3; B: b1, b2 declare P, bq declares Q. All 75, none
 * vaccinated against the flu in 2025: each is in rosp-grippe-65 and has a care gap.
 */
describe('operator vouches for PractitionerRoles (médecin-traitant verification)', () => {
  let gw: TestGateway;
  let admin: string;
  let mspA: string;
  let mspB: string;
  let clientA: string;
  let clientB: string;
  let gpP: string;
  let gpQ: string;
  let roleBP: PractitionerRole;

  const post = async <T extends Res>(token: string, resource: T): Promise<T & { id: string }> => {
    const res = await call<T & { id: string }>(gw, 'POST', `${gw.fhirUrl}/${resource.resourceType}`, resource, token);
    if (res.status !== 201) {
      throw new Error(`POST ${resource.resourceType}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body;
  };
  const patient = async (id: string, gp: string, owner: string): Promise<void> => {
    const res = await call(
      gw,
      'PUT',
      `${gw.fhirUrl}/Patient/${id}`,
      {
        resourceType: 'Patient',
        id,
        meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${owner}` }] },
        name: [{ family: 'VOUCH', given: [id.toUpperCase()] }],
        gender: 'female',
        birthDate: '1950-03-01',
        generalPractitioner: [{ reference: `Practitioner/${gp}` }],
      },
      admin,
    );
    expect(res.status).toBe(201);
  };
  /** The GP's patients as a client sees them in `$care-gaps` (its own patients only). */
  const gapsOf = async (gp: string, token: string): Promise<string[]> => {
    const res = await call<Parameters>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&measureId=${FLU}&subject=Practitioner/${gp}`,
      undefined,
      token,
    );
    expect(res.status).toBe(200);
    return patientsOf(res.body);
  };
  /** The operator's (exact) count of the GP's patients in rosp-grippe-65. */
  const operatorCount = async (gp: string): Promise<number | undefined> => {
    const res = await call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/${FLU}/$evaluate-measure?${PERIOD}&population=all&subject=Practitioner/${gp}`,
      undefined,
      admin,
    );
    expect(res.status).toBe(200);
    return res.body.group?.[0]?.population?.find((p) => p.code?.coding?.[0]?.code === 'initial-population')?.count;
  };
  const review = async (query: string, token = admin) =>
    call<RoleVouchPage>(gw, 'GET', `${gw.baseUrl}/admin/practitioner-roles${query}`, undefined, token);
  const decide = async (id: string, action: 'verify' | 'unverify', token = admin) =>
    call<RoleVouchEntry>(gw, 'POST', `${gw.baseUrl}/admin/practitioner-roles/${id}/${action}`, undefined, token);

  beforeAll(async () => {
    gw = await startTestGateway({
      GW_WORKERS_INPROCESS: 'false',
      GW_MLLP_ENABLED: 'false',
      GW_INDICATOR_SMALL_CELL: '1',
    });
    admin = await gw.token();
    mspA = await typedOrganization(gw, 'MSP des Tilleuls', 'MSP');
    mspB = await typedOrganization(gw, 'MSP des Acacias', 'MSP');
    clientA = (await gw.clientOf(mspA, ['system/*.cruds'])).token;
    clientB = (await gw.clientOf(mspB, ['system/*.cruds'])).token;
    // P is A's own practitioner (registered by A's client), Q B's own.
    gpP = (
      await post(clientA, {
        resourceType: 'Practitioner',
        active: true,
        name: [{ family: 'PASTEUR', given: ['Paule'], prefix: ['Dr'] }],
      })
    ).id;
    gpQ = (await post(clientB, { resourceType: 'Practitioner', active: true, name: [{ family: 'QUENTIN' }] })).id;
    await post(clientA, {
      resourceType: 'PractitionerRole',
      active: true,
      practitioner: { reference: `Practitioner/${gpP}` },
      organization: { reference: `Organization/${mspA}` },
    });
    await post(clientB, {
      resourceType: 'PractitionerRole',
      active: true,
      practitioner: { reference: `Practitioner/${gpQ}` },
      organization: { reference: `Organization/${mspB}` },
    });
    // B's own word: P works at B.
    roleBP = await post(clientB, {
      resourceType: 'PractitionerRole' as const,
      active: true,
      practitioner: { reference: `Practitioner/${gpP}` },
      organization: { reference: `Organization/${mspB}` },
    });
    for (const id of ['rv-a1', 'rv-a2', 'rv-a3']) {
      await patient(id, gpP, mspA);
    }
    await patient('rv-b1', gpP, mspB);
    await patient('rv-b2', gpP, mspB);
    await patient('rv-bq', gpQ, mspB);
  });
  afterAll(async () => gw.close());

  it("B's own role for A's GP adds none of B's patients to the GP's figures; B's role for its own GP counts", async () => {
    expect(await operatorCount(gpP)).toBe(3);
    expect(await gapsOf(gpP, clientA)).toEqual(['Patient/rv-a1', 'Patient/rv-a2', 'Patient/rv-a3']);
    expect(await gapsOf(gpP, clientB)).toEqual([]);
    expect(await gapsOf(gpQ, clientB)).toEqual(['Patient/rv-bq']);
  });

  it('lists the roles to review (a practitioner the organization does not own, no vouch) with directory names only', async () => {
    const res = await review('?verified=false');
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(1);
    expect(res.body.roles).toEqual([
      {
        role: `PractitionerRole/${roleBP.id}`,
        practitioner: { reference: `Practitioner/${gpP}`, name: 'Dr Paule PASTEUR', owner: `Organization/${mspA}` },
        organization: { reference: `Organization/${mspB}`, name: 'MSP des Acacias' },
        active: true,
        verified: false,
      },
    ]);
    expect((await review('?verified=maybe')).status).toBe(400);
  });

  it('non-admin clients get 403 on the operator routes and cannot vouch by writing the tag themselves', async () => {
    expect((await review('?verified=false', clientB)).status).toBe(403);
    expect((await decide(roleBP.id as string, 'verify', clientB)).status).toBe(403);
    expect((await decide(roleBP.id as string, 'unverify', clientA)).status).toBe(403);
    const forged = await call<PractitionerRole>(
      gw,
      'PUT',
      `${gw.fhirUrl}/PractitionerRole/${roleBP.id}`,
      { ...roleBP, meta: { tag: [{ system: ROLE_TRUST_SYSTEM, code: ROLE_OPERATOR_VOUCHED }] } },
      clientB,
    );
    expect(forged.status).toBe(200);
    expect(forged.body.meta?.tag?.some((t) => t.system === ROLE_TRUST_SYSTEM)).toBe(false);
    expect(await gapsOf(gpP, clientB)).toEqual([]);
  });

  it("an operator's vouch makes B's declarations count; B changing the period keeps it, naming another GP drops it", async () => {
    const vouched = await decide(roleBP.id as string, 'verify');
    expect(vouched.status).toBe(200);
    expect(vouched.body).toMatchObject({ verified: true, basis: 'operator' });
    expect(await operatorCount(gpP)).toBe(5);
    expect(await gapsOf(gpP, clientB)).toEqual(['Patient/rv-b1', 'Patient/rv-b2']);
    expect((await review('?verified=false')).body.total).toBe(0);
    expect((await review('?verified=true')).body.roles.map((r) => r.role)).toEqual([`PractitionerRole/${roleBP.id}`]);

    const stored = (
      await call<PractitionerRole>(gw, 'GET', `${gw.fhirUrl}/PractitionerRole/${roleBP.id}`, undefined, clientB)
    ).body;
    expect(stored.meta?.tag).toContainEqual({ system: ROLE_TRUST_SYSTEM, code: ROLE_OPERATOR_VOUCHED });
    const put = (body: PractitionerRole) =>
      call(gw, 'PUT', `${gw.fhirUrl}/PractitionerRole/${roleBP.id}`, body, clientB);
    expect((await put({ ...stored, period: { start: '2020-01-01' } })).status).toBe(200);
    expect(await gapsOf(gpP, clientB)).toEqual(['Patient/rv-b1', 'Patient/rv-b2']);

    expect((await put({ ...stored, practitioner: { reference: `Practitioner/${gpQ}` } })).status).toBe(200);
    expect((await put({ ...stored, practitioner: { reference: `Practitioner/${gpP}` } })).status).toBe(200);
    expect(await gapsOf(gpP, clientB)).toEqual([]);
    expect(await operatorCount(gpP)).toBe(3);
    expect((await review('?verified=false')).body.roles.map((r) => r.role)).toEqual([`PractitionerRole/${roleBP.id}`]);
  });

  it('unverify withdraws the vouch; every decision is audited', async () => {
    expect((await decide(roleBP.id as string, 'verify')).status).toBe(200);
    expect(await gapsOf(gpP, clientB)).toEqual(['Patient/rv-b1', 'Patient/rv-b2']);
    const withdrawn = await decide(roleBP.id as string, 'unverify');
    expect(withdrawn.status).toBe(200);
    expect(withdrawn.body.verified).toBe(false);
    expect(await gapsOf(gpP, clientB)).toEqual([]);
    expect(await operatorCount(gpP)).toBe(3);
    // A role naming the organization's own practitioner stays verified: ownership is not a vouch.
    const own = (await review('')).body.roles.map((r) => r.practitioner.reference);
    expect(own).not.toContain(`Practitioner/${gpQ}`);
    expect((await decide('no-such-role', 'verify')).status).toBe(404);

    await gw.core.audit.flush();
    const rows = await gw.core.db.pool.query<{ interaction: string; entity: string[] }>(
      `SELECT interaction, entity FROM audit_event WHERE interaction LIKE 'practitioner-role-%' ORDER BY id`,
    );
    expect(rows.rows.map((r) => r.interaction)).toEqual([
      'practitioner-role-verify',
      'practitioner-role-verify',
      'practitioner-role-unverify',
    ]);
    expect(rows.rows[0]?.entity).toEqual([
      `PractitionerRole/${roleBP.id}`,
      `Practitioner/${gpP}`,
      `Organization/${mspB}`,
    ]);
  });

  /** The CLI (built: `npm run build`) against the test gateway's database; its exit code and JSON output. */
  async function cli<T>(args: string[]): Promise<{ code: number | null; out: T | undefined }> {
    const proc = run(GATEWAY_CLI, { GW_DATABASE_URL: gw.core.config.GW_DATABASE_URL as string }, args);
    const code = await proc.exited;
    const text = proc.out();
    const start = text.indexOf('{');
    return { code, out: code === 0 && start >= 0 ? (JSON.parse(text.slice(start)) as T) : undefined };
  }

  it('the CLI twin lists the roles to review, vouches and withdraws as the operator', async () => {
    const listed = await cli<RoleVouchPage>(['practitioner-roles:list', '--verified', 'false']);
    expect(listed.code).toBe(0);
    expect(listed.out?.roles.map((r) => r.role)).toEqual([`PractitionerRole/${roleBP.id}`]);
    const vouched = await cli<RoleVouchEntry>(['practitioner-roles:verify', `PractitionerRole/${roleBP.id}`]);
    expect(vouched.out).toMatchObject({ verified: true, basis: 'operator' });
    expect(await gapsOf(gpP, clientB)).toEqual(['Patient/rv-b1', 'Patient/rv-b2']);
    const withdrawn = await cli<RoleVouchEntry>(['practitioner-roles:unverify', roleBP.id as string]);
    expect(withdrawn.out).toMatchObject({ verified: false });
    expect(await gapsOf(gpP, clientB)).toEqual([]);
    expect((await cli(['practitioner-roles:list', '--verified', 'maybe'])).code).toBe(2);
  }, 60_000);
});
