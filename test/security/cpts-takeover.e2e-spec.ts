import type { Bundle, Communication, Organization, OperationOutcome, Task } from '@medplum/fhirtypes';
import { ORGANIZATION_TYPE_SYSTEM, TERRITORY_COMMUNE_EXTENSION } from '@gw/fhir';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { Stays, TestSmtp, eventually, mailbox } from '../support/exchange';
import { call, createOrganization, finess, registerSource, search, uniqueId } from '../support/hl7';
import { GATEWAY_CLI, run } from '../support/process';

/**
 * The CPTS takeover: a structure client types its own Organization CPTS with territory communes,
 * and hospitals' "find a médecin traitant" discharges for those communes (Task, Communication,
 * an MSSanté e-mail with the patient's identity) go to it. Being a CPTS, its communes and its
 * member structures are granted by an operator only.
 */
describe('CPTS takeover: territories are granted by an operator, never self-declared', () => {
  let gw: TestGateway;
  let smtp: TestSmtp;
  let attacker: string;
  let attackerToken: string;
  let legit: string;
  let msp: string;
  const ATTACKER_MAILBOX = 'coordination@attaquant.mssante.fr';
  const LEGIT_MAILBOX = 'coordination@cpts-legitime.mssante.fr';
  const stays = new Stays(() => gw, uniqueId('K'));

  const CPTS_TYPE = [{ coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: 'CPTS' }] }];
  const commune = (insee: string) => ({ url: TERRITORY_COMMUNE_EXTENSION, valueCode: insee });
  /** `/admin/…` and absolute URLs as they are; anything else is a FHIR path. */
  const url = (path: string) => (/^(\/|http)/.test(path) ? path : `${gw.fhirUrl}/${path}`);
  const asAttacker = <T>(method: string, path: string, body?: unknown) =>
    call<T>(gw, method, url(path), body, attackerToken);
  const admin = <T>(method: string, path: string, body?: unknown) => call<T>(gw, method, url(path), body);
  const text = (o: unknown) => ((o as OperationOutcome).issue ?? []).map((i) => i.details?.text).join(' ');

  /** A stay of a patient without médecin traitant living in `insee`, discharged home; its find-MT Task. */
  async function dischargeWithoutMt(insee: string): Promise<Task> {
    const s = stays.stay(
      { address: { line: '2 place Bellecour', city: 'LYON', zip: '69002', insee } },
      { gp: undefined },
    );
    await s.send('A01', { date: '20261120100000' });
    await s.send('A03', { date: '20261122150000', exitMode: '8' });
    const enc = await stays.encounterOf(s.visit);
    return eventually(async () => (await search<Task>(gw, 'Task', { focus: `Encounter/${enc.id}` }))[0]);
  }

  async function routingOutcome(task: Task): Promise<string | undefined> {
    const res = await gw.core.db.pool.query<{ outcome: string }>(
      'SELECT outcome FROM exchange_routing WHERE $1 = ANY(tasks)',
      [`Task/${task.id}`],
    );
    return res.rows[0]?.outcome;
  }

  beforeAll(async () => {
    smtp = new TestSmtp();
    await smtp.start();
    gw = await startTestGateway({
      GW_MSS_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      GW_MSS_FROM: 'passerelle@gw-test.mssante.fr',
      GW_MSS_SMTP_INSECURE: 'true',
      GW_EXCHANGE_BACKOFF_MS: '300',
      GW_EXCHANGE_MAX_DISCHARGE_AGE: '36500d',
    });
    const hospital = await createOrganization(gw, 'CHU Test', finess('69000001'));
    await registerSource(gw, {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-X',
      organization: `Organization/${hospital}`,
      name: 'CHU Test',
    });
    const org = async (name: string, mail: string): Promise<string> =>
      (
        await admin<{ id: string }>('POST', 'Organization', {
          resourceType: 'Organization',
          active: true,
          name,
          type: [{ coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: 'MSP' }] }],
          telecom: [mailbox(mail)],
        })
      ).body.id;
    attacker = await org('Cabinet Attaquant', ATTACKER_MAILBOX);
    legit = await org('CPTS Légitime', LEGIT_MAILBOX);
    msp = await org('MSP du Parc', 'secretariat@msp-parc.mssante.fr');
    attackerToken = (await gw.clientOf(attacker, ['system/*.cruds'])).token;
  }, 120_000);

  /** The CLI (built: `npm run build`) against the test gateway's database; its JSON output. */
  async function cli<T>(args: string[]): Promise<{ code: number | null; out: T | string }> {
    const proc = run(GATEWAY_CLI, { GW_DATABASE_URL: gw.core.config.GW_DATABASE_URL as string }, args);
    const code = await proc.exited;
    const text = proc.out();
    const start = text.indexOf('{');
    return { code, out: code === 0 && start >= 0 ? (JSON.parse(text.slice(start)) as T) : text };
  }

  afterAll(async () => {
    await gw?.close();
    await smtp?.stop();
  });

  it('refuses a structure retyping its own Organization as a CPTS with communes (403), and nothing changes', async () => {
    const before = (await asAttacker<Organization>('GET', `Organization/${attacker}`)).body;
    const res = await asAttacker<OperationOutcome>('PUT', `Organization/${attacker}`, {
      ...before,
      type: CPTS_TYPE,
      extension: [commune('69123')],
    });
    expect(res.status).toBe(403);
    expect(text(res.body)).toMatch(/granted by an operator \(admin API \/admin\/cpts, or the CLI cpts:grant\)/);
    const after = (await admin<Organization>('GET', `Organization/${attacker}`)).body;
    expect(after.meta?.versionId).toBe(before.meta?.versionId);
    expect(JSON.stringify(after)).not.toContain('CPTS');
    const projected = await gw.core.db.pool.query('SELECT type, communes FROM ind_organization WHERE id = $1', [
      attacker,
    ]);
    expect(projected.rows[0]).toEqual({ type: 'MSP', communes: [] });
    // Only the communes, or only the type: refused as well; a batch entry too.
    for (const changed of [{ extension: [commune('69123')] }, { type: [{ coding: [{ code: 'CPTS' }] }] }]) {
      expect((await asAttacker('PUT', `Organization/${attacker}`, { ...before, ...changed })).status).toBe(403);
    }
    const batch = await asAttacker<Bundle>('POST', gw.fhirUrl, {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        {
          resource: { ...before, type: CPTS_TYPE, extension: [commune('69123')] },
          request: { method: 'PUT', url: `Organization/${attacker}` },
        },
      ],
    });
    expect(batch.body.entry?.[0]?.response?.status).toMatch(/^403/);
    // Its other fields stay its own to edit.
    const renamed = await asAttacker('PUT', `Organization/${attacker}`, { ...before, name: 'Cabinet Renommé' });
    expect(renamed.status).toBe(200);
  });

  it('refuses a client creating an Organization typed CPTS or listing communes (403), by POST or in a transaction', async () => {
    const cpts = { resourceType: 'Organization', name: 'Fausse CPTS', type: CPTS_TYPE, extension: [commune('69123')] };
    const created = await asAttacker<OperationOutcome>('POST', 'Organization', cpts);
    expect(created.status).toBe(403);
    expect(text(created.body)).toContain('of a new Organization');
    const tx = await asAttacker('POST', gw.fhirUrl, {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: cpts, request: { method: 'POST', url: 'Organization' } }],
    });
    expect(tx.status).toBe(403);
    // A client cannot choose a new id at all (404, as for any id it does not hold).
    const put = await asAttacker('PUT', 'Organization/fausse-cpts', { ...cpts, id: 'fausse-cpts' });
    expect(put.status).toBe(404);
    expect(await search(gw, 'Organization', { name: 'Fausse' })).toHaveLength(0);
  });

  it('refuses a structure declaring itself member of a CPTS (partOf) (403)', async () => {
    const before = (await asAttacker<Organization>('GET', `Organization/${attacker}`)).body;
    const res = await asAttacker<OperationOutcome>('PUT', `Organization/${attacker}`, {
      ...before,
      partOf: { reference: `Organization/${legit}` },
    });
    expect(res.status).toBe(403);
    expect(text(res.body)).toContain(`changes partOf of Organization/${attacker}`);
  });

  it('does not route a discharge without médecin traitant of that commune to the attacker', async () => {
    const before = (await asAttacker<Organization>('GET', `Organization/${attacker}`)).body;
    await asAttacker('PUT', `Organization/${attacker}`, { ...before, type: CPTS_TYPE, extension: [commune('69123')] });
    gw.core.exchange.cpts.invalidate();
    const task = await dischargeWithoutMt('69123');
    expect(task.code?.coding?.[0]?.code).toBe('find-mt');
    expect(task.owner).toBeUndefined();
    expect(task.businessStatus?.coding?.[0]?.code).toBe('unrouted');
    const comms = await search<Communication>(gw, 'Communication', { 'based-on': `Task/${task.id}` });
    expect(comms.map((c) => c.recipient?.[0]?.reference)).not.toContain(`Organization/${attacker}`);
    await new Promise((r) => setTimeout(r, 500));
    expect(smtp.to(ATTACKER_MAILBOX)).toHaveLength(0);
  });

  it('keeps the operator API to admin clients', async () => {
    for (const [method, path] of [
      ['GET', '/admin/cpts'],
      ['PUT', `/admin/cpts/${attacker}`],
      ['DELETE', `/admin/cpts/${attacker}`],
    ] as const) {
      const res = await asAttacker(method, path, method === 'PUT' ? { communes: ['69123'] } : undefined);
      expect([method, path, res.status]).toEqual([method, path, 403]);
    }
  });

  it('grants a territory and members as the operator: discharges of those communes go to that CPTS', async () => {
    const bad = await admin<OperationOutcome>('PUT', `/admin/cpts/${legit}`, { communes: ['6912'] });
    expect([bad.status, bad.body.issue?.[0]?.expression]).toEqual([400, ['communes[0]']]);
    const unknown = await admin('PUT', `/admin/cpts/${legit}`, { communes: ['69124'], members: ['Organization/nope'] });
    expect(unknown.status).toBe(400);
    expect((await admin('PUT', '/admin/cpts/nope', { communes: ['69124'] })).status).toBe(404);

    const res = await admin<{ communes: string[]; members: string[] }>('PUT', `/admin/cpts/${legit}`, {
      communes: ['69124', '2A004'],
      members: [`Organization/${msp}`],
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ communes: ['69124', '2A004'], members: [`Organization/${msp}`] });
    const member = (await admin<Organization>('GET', `Organization/${msp}`)).body;
    expect(member.partOf?.reference).toBe(`Organization/${legit}`);
    const projected = await gw.core.db.pool.query(
      'SELECT id, type, part_of, communes FROM ind_organization WHERE id = ANY($1) ORDER BY type',
      [[legit, msp]],
    );
    expect(projected.rows).toEqual([
      { id: legit, type: 'CPTS', part_of: null, communes: ['69124', '2A004'] },
      { id: msp, type: 'MSP', part_of: legit, communes: [] },
    ]);

    const task = await dischargeWithoutMt('69124');
    expect(task.owner?.reference).toBe(`Organization/${legit}`);
    await eventually(async () => smtp.to(LEGIT_MAILBOX).length > 0);

    // The granted CPTS may re-send its Organization unchanged (a new name is its own business).
    const cptsToken = (await gw.clientOf(legit, ['system/*.cruds'])).token;
    const own = (await call<Organization>(gw, 'GET', `${gw.fhirUrl}/Organization/${legit}`, undefined, cptsToken)).body;
    const renamed = await call(gw, 'PUT', `${gw.fhirUrl}/Organization/${legit}`, { ...own, name: 'CPTS L' }, cptsToken);
    expect(renamed.status).toBe(200);
    const extended = await call(
      gw,
      'PUT',
      `${gw.fhirUrl}/Organization/${legit}`,
      { ...own, extension: [...(own.extension ?? []), commune('69123')] },
      cptsToken,
    );
    expect(extended.status).toBe(403);
  });

  it('refuses (409) a grant of a commune another active CPTS covers, naming both', async () => {
    const res = await admin<OperationOutcome>('PUT', `/admin/cpts/${attacker}`, { communes: ['69123', '69124'] });
    expect(res.status).toBe(409);
    expect(text(res.body)).toContain(`69124 already covered by Organization/${legit}`);
    const after = (await admin<Organization>('GET', `Organization/${attacker}`)).body;
    expect(JSON.stringify(after)).not.toContain('CPTS');
    // A member of another CPTS is not taken over either.
    const member = await admin<OperationOutcome>('PUT', `/admin/cpts/${attacker}`, {
      communes: ['69123'],
      members: [`Organization/${msp}`],
    });
    expect(member.status).toBe(409);
    expect(text(member.body)).toContain(`is already part of Organization/${legit}`);
  });

  it('lists a legacy conflict (two CPTS written over FHIR cover a commune) and routes its discharges to neither, saying why', async () => {
    const legacy = async (name: string): Promise<string> =>
      (
        await admin<{ id: string }>('POST', 'Organization', {
          resourceType: 'Organization',
          active: true,
          name,
          type: CPTS_TYPE,
          telecom: [mailbox(`${name.toLowerCase().replace(/ /g, '-')}@legacy.mssante.fr`)],
          extension: [commune('69125')],
        })
      ).body.id;
    const a = await legacy('CPTS Ancienne A');
    const b = await legacy('CPTS Ancienne B');
    const listing = await admin<{ cpts: { organization: string }[]; conflicts: { commune: string; cpts: string[] }[] }>(
      'GET',
      '/admin/cpts',
    );
    expect(listing.status).toBe(200);
    expect(listing.body.conflicts).toEqual([{ commune: '69125', cpts: [`Organization/${a}`, `Organization/${b}`] }]);
    expect(listing.body.cpts.map((c) => c.organization)).toEqual(
      expect.arrayContaining([`Organization/${legit}`, `Organization/${a}`, `Organization/${b}`]),
    );

    gw.core.exchange.cpts.invalidate();
    const task = await dischargeWithoutMt('69125');
    expect(task.owner).toBeUndefined();
    expect(task.businessStatus?.coding?.[0]?.code).toBe('unrouted');
    expect(task.statusReason?.text).toContain(`plusieurs CPTS (Organization/${a}, Organization/${b})`);
    expect(await routingOutcome(task)).toBe('cpts-conflict');
    await new Promise((r) => setTimeout(r, 500));
    expect(smtp.mails.filter((m) => m.to.some((t) => t.endsWith('@legacy.mssante.fr')))).toHaveLength(0);

    // The operator settles it: revoking one routes the commune to the other.
    const revoked = await admin<{ communes: string[] }>('DELETE', `/admin/cpts/${b}`);
    expect([revoked.status, revoked.body.communes]).toEqual([200, []]);
    expect((await admin<{ conflicts: unknown[] }>('GET', '/admin/cpts')).body.conflicts).toEqual([]);
    expect((await dischargeWithoutMt('69125')).owner?.reference).toBe(`Organization/${a}`);
  });

  it('revokes a CPTS with its members, and audits every grant and revocation', async () => {
    const res = await admin<{ communes: string[]; members: string[] }>('DELETE', `/admin/cpts/${legit}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ communes: [], members: [] });
    expect((await admin<Organization>('GET', `Organization/${msp}`)).body.partOf).toBeUndefined();
    const org = (await admin<Organization>('GET', `Organization/${legit}`)).body;
    expect(JSON.stringify(org)).not.toMatch(/CPTS"|territory-commune/);
    const projected = await gw.core.db.pool.query('SELECT type, communes FROM ind_organization WHERE id = $1', [legit]);
    expect(projected.rows[0]).toEqual({ type: null, communes: [] });
    const audit = await admin<{ entry?: { resource: unknown }[] }>('GET', '/admin/audit');
    const changes = JSON.stringify(audit.body.entry?.map((e) => e.resource));
    expect(changes).toContain('cpts-grant');
    expect(changes).toContain('cpts-revoke');
    expect(changes).toContain(`Organization/${msp}`);
  });

  it('grants, lists and revokes with the CLI; a conflicting grant fails naming the other CPTS', async () => {
    const id = (
      await admin<{ id: string }>('POST', 'Organization', {
        resourceType: 'Organization',
        active: true,
        name: 'CPTS CLI',
      })
    ).body.id;
    const granted = await cli<{ communes: string[]; members: string[] }>([
      'cpts:grant',
      id,
      '--communes',
      '69130,69131',
      '--members',
      msp,
    ]);
    expect(granted).toEqual({
      code: 0,
      out: expect.objectContaining({ communes: ['69130', '69131'], members: [`Organization/${msp}`] }),
    });
    const listed = await cli<{ cpts: { organization: string; communes: string[] }[] }>(['cpts:list']);
    expect((listed.out as { cpts: { organization: string }[] }).cpts.map((c) => c.organization)).toContain(
      `Organization/${id}`,
    );
    const conflict = await cli(['cpts:grant', attacker, '--communes', '69131']);
    expect(conflict.code).toBe(1);
    expect(conflict.out).toContain(`69131 already covered by Organization/${id}`);
    const revoked = await cli<{ communes: string[] }>(['cpts:revoke', `Organization/${id}`]);
    expect(revoked).toEqual({ code: 0, out: expect.objectContaining({ communes: [], members: [] }) });
    expect((await admin<Organization>('GET', `Organization/${msp}`)).body.partOf).toBeUndefined();
  });
});
