import { IDNATPS } from '@gw/fhir';
import { OWNER_TAG_SYSTEM, SHARING_CONSENT_CATEGORY } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { personToken, vendorClient } from '../support/persons';
import type { VendorClient } from '../support/persons';
import { send } from '../support/security';

const G15 = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const R21 = 'https://mos.esante.gouv.fr/NOS/TRE_R21-Fonction/FHIR/TRE-R21-Fonction';
const R259 = 'https://mos.esante.gouv.fr/NOS/TRE_R259-HL7RoleClass/FHIR/TRE-R259-HL7RoleClass';
const CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
const DAY = 86_400_000;
const iso = (days: number): string => new Date(Date.now() + days * DAY).toISOString();

/** The persons of the matrix: who they are, where they work, in which profession. */
const PERSONS = {
  gp: { idNatPs: '810000100001', org: 'msp', profession: '10' },
  nurseMsp: { idNatPs: '810000100002', org: 'msp', profession: '60' },
  secretary: { idNatPs: '810000100003', org: 'msp', fonction: 'FON-12' },
  nurseOut: { idNatPs: '810000100004', org: 'cabinet', profession: '60' },
  pharmacist: { idNatPs: '810000100005', org: 'pharmacy', profession: '21' },
  coordinator: { idNatPs: '810000100006', org: 'cpts', profession: '60' },
  hospital: { idNatPs: '810000100007', org: 'hospital', profession: '10' },
} as const;
type Who = keyof typeof PERSONS;
const WHO = Object.keys(PERSONS) as Who[];

/**
 * What each person may read, by every route: one line per resource, one letter per person in
 * {@link WHO} order (gp, nurseMsp, secretary, nurseOut, pharmacist, coordinator, hospital):
 * `y` visible, `.` not. Patient P is the MSP's (its médecin traitant is the GP); the outside nurse
 * is in P's care circle; the pharmacy has P's consent for the treatment; the CPTS owns an open
 * "find a médecin traitant" Task for patient Q with the hospital letter as input; H is the
 * hospital's own patient.
 */
const EXPECTED: Record<string, string> = {
  'Patient/p': 'yyyyy..',
  'Observation/obs-p': 'yy.y...',
  'Condition/restricted-p': 'yy.....',
  'MedicationStatement/med-p': 'yy.yy..',
  'Communication/comm-p': 'yyyy...',
  'DocumentReference/letter-q': 'yy...y.',
  'Task/task-q': 'yyy..y.',
  'Patient/q': 'yyy..y.',
  'Observation/obs-q': 'yy.....',
  'Encounter/enc-h': '......y',
};

/** `y`/`.` per person of {@link WHO} for a row of {@link EXPECTED}, as a record. */
function expectation(row: string): Record<Who, boolean> {
  return Object.fromEntries(WHO.map((w, i) => [w, row[i] === 'y'])) as Record<Who, boolean>;
}

/**
 * The équipe-de-soins access matrix (CSP L.1110-4, L.1110-12), with real person tokens (token
 * exchange with a vendor-signed JWT): two MSP professions and its secretary, a nurse outside the MSP
 * named in the care circle, a pharmacist with consent, a CPTS coordinator owning a Task, a hospital
 * doctor. For each: read, search (totals), _include, _revinclude, chained search, instance and type
 * history, bulk export, the access trail; then again after the patient's opposition (to everyone,
 * then to one professional) and after the care-circle participation ends.
 */
describe('équipe-de-soins access matrix (persons, every route)', () => {
  let gw: TestGateway;
  let admin: string;
  const tokens = {} as Record<Who, string>;
  const vendors: Record<string, VendorClient> = {};

  const put = async (resource: Record<string, unknown> & { resourceType: string; id: string }, owner?: string) => {
    const meta = (resource.meta ?? {}) as { tag?: unknown[] };
    const tag = { system: OWNER_TAG_SYSTEM, code: `Organization/${owner}` };
    const body = owner ? { ...resource, meta: { ...meta, tag: [...(meta.tag ?? []), tag] } } : resource;
    const res = await send(gw.baseUrl, 'PUT', `/fhir/${resource.resourceType}/${resource.id}`, { token: admin, body });
    if (res.status >= 300) {
      throw new Error(`PUT ${resource.resourceType}/${resource.id}: ${res.status} ${res.text}`);
    }
  };
  const get = (who: Who, path: string) => send(gw.baseUrl, 'GET', `/fhir/${path}`, { token: tokens[who] });
  const ids = (bundle: { entry?: { resource: { resourceType: string; id: string } }[] }): string[] =>
    (bundle.entry ?? []).map((e) => `${e.resource.resourceType}/${e.resource.id}`).sort();

  /** Whether `who` reads `ref` by id; anything but 200 or 404 fails the test. */
  async function reads(who: Who, ref: string): Promise<boolean> {
    const res = await get(who, ref);
    expect([200, 404]).toContain(res.status);
    return res.status === 200;
  }

  /** Whether a search of `ref`'s type by `_id` finds it (and says so in `total`). */
  async function finds(who: Who, ref: string): Promise<boolean> {
    const [type, id] = ref.split('/');
    const res = await get(who, `${type}?_id=${id}&_total=accurate`);
    expect(res.status).toBe(200);
    const bundle = res.json<{ total: number; entry?: unknown[] }>();
    expect(bundle.total).toBe(bundle.entry?.length ?? 0);
    return bundle.total === 1;
  }

  /** Whether the instance history of `ref` answers with its versions. */
  async function history(who: Who, ref: string): Promise<boolean> {
    const res = await get(who, `${ref}/_history`);
    expect([200, 404]).toContain(res.status);
    return res.status === 200;
  }

  /** Every route that reads one resource, for every person: they all agree with `expected`. */
  async function checkAll(expected: Record<string, string>): Promise<void> {
    const wrong: string[] = [];
    for (const [ref, row] of Object.entries(expected)) {
      const want = expectation(row);
      for (const who of WHO) {
        const seen = { read: await reads(who, ref), search: await finds(who, ref), history: await history(who, ref) };
        for (const [route, got] of Object.entries(seen)) {
          if (got !== want[who]) {
            wrong.push(
              `${who} ${route} ${ref}: ${got ? 'visible' : 'hidden'}, expected ${want[who] ? 'visible' : 'hidden'}`,
            );
          }
        }
      }
    }
    expect(wrong).toEqual([]);
  }

  beforeAll(async () => {
    gw = await startTestGateway({ GW_EXCHANGE_MAX_DISCHARGE_AGE: '36500d' });
    admin = await gw.token();
    const orgs = {
      msp: 'MSP des Tilleuls',
      cabinet: 'Cabinet infirmier Rivière',
      pharmacy: 'Pharmacie du Marché',
      cpts: 'CPTS du Val',
      hospital: 'CH Nord',
    };
    for (const [id, name] of Object.entries(orgs)) {
      await put({ resourceType: 'Organization', id, name });
    }
    for (const who of WHO) {
      const p = PERSONS[who] as { idNatPs: string; org: string; profession?: string; fonction?: string };
      await put({
        resourceType: 'Practitioner',
        id: `pr-${who}`,
        identifier: [{ system: IDNATPS, value: p.idNatPs }],
        name: [{ family: who }],
      });
      await put({
        resourceType: 'PractitionerRole',
        id: `role-${who}`,
        active: true,
        practitioner: { reference: `Practitioner/pr-${who}` },
        organization: { reference: `Organization/${p.org}` },
        code: [
          {
            coding: [p.profession ? { system: G15, code: p.profession } : { system: R21, code: p.fonction as string }],
          },
        ],
      });
    }
    // Patient P: the MSP's, the GP its médecin traitant.
    await put(
      {
        resourceType: 'Patient',
        id: 'p',
        name: [{ family: 'Partage', given: ['Paul'] }],
        generalPractitioner: [{ reference: 'PractitionerRole/role-gp' }],
      },
      'msp',
    );
    const p = { reference: 'Patient/p' };
    await put(
      { resourceType: 'Observation', id: 'obs-p', status: 'final', code: { text: 'HbA1c' }, subject: p },
      'msp',
    );
    await put(
      {
        resourceType: 'Condition',
        id: 'restricted-p',
        meta: { security: [{ system: CONFIDENTIALITY, code: 'R' }] },
        subject: p,
        code: { text: 'restricted' },
      },
      'msp',
    );
    await put(
      {
        resourceType: 'MedicationStatement',
        id: 'med-p',
        status: 'active',
        subject: p,
        medicationCodeableConcept: { text: 'metformine' },
      },
      'msp',
    );
    await put(
      {
        resourceType: 'Communication',
        id: 'comm-p',
        status: 'completed',
        subject: p,
        payload: [{ contentString: 'résultat à revoir' }],
      },
      'msp',
    );
    // The care circle (ANS Cercle de soins): the GP as PCP, the outside nurse for a month.
    await put(
      {
        resourceType: 'CareTeam',
        id: 'circle-p',
        status: 'active',
        subject: p,
        participant: [
          { member: { reference: 'PractitionerRole/role-gp' }, role: [{ coding: [{ system: R259, code: 'PCP' }] }] },
          { member: { reference: 'PractitionerRole/role-nurseOut' }, period: { start: iso(-10), end: iso(30) } },
        ],
      },
      'msp',
    );
    // The patient's consent to the pharmacy reading the treatment.
    await put(
      {
        resourceType: 'Consent',
        id: 'consent-pharmacy',
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
        category: [{ coding: [{ ...SHARING_CONSENT_CATEGORY }] }],
        patient: p,
        policyRule: { text: 'CSP L.1110-4' },
        provision: {
          type: 'permit',
          period: { start: iso(-1), end: iso(365) },
          actor: [{ role: { text: 'pharmacien' }, reference: { reference: 'Organization/pharmacy' } }],
          class: [
            { system: 'http://hl7.org/fhir/resource-types', code: 'Patient' },
            { system: 'http://hl7.org/fhir/resource-types', code: 'MedicationStatement' },
          ],
        },
      },
      'msp',
    );
    // Patient Q (the MSP's, no médecin traitant): the CPTS owns the find-MT Task, the letter its input.
    await put({ resourceType: 'Patient', id: 'q', name: [{ family: 'Sansmt' }] }, 'msp');
    const q = { reference: 'Patient/q' };
    await put({ resourceType: 'Observation', id: 'obs-q', status: 'final', code: { text: 'INR' }, subject: q }, 'msp');
    await put(
      {
        resourceType: 'DocumentReference',
        id: 'letter-q',
        status: 'current',
        subject: q,
        content: [{ attachment: { contentType: 'text/plain', data: 'bGV0dHJl' } }],
      },
      'msp',
    );
    await put(
      {
        resourceType: 'Task',
        id: 'task-q',
        status: 'requested',
        intent: 'order',
        for: q,
        owner: { reference: 'Organization/cpts' },
        input: [{ type: { text: 'Lettre de liaison' }, valueReference: { reference: 'DocumentReference/letter-q' } }],
      },
      'msp',
    );
    // Patient H: the hospital's own, with a stay.
    await put({ resourceType: 'Patient', id: 'h', name: [{ family: 'Hopital' }] }, 'hospital');
    await put(
      {
        resourceType: 'Encounter',
        id: 'enc-h',
        status: 'in-progress',
        class: { code: 'IMP' },
        subject: { reference: 'Patient/h' },
        serviceProvider: { reference: 'Organization/hospital' },
        period: { start: iso(-2) },
      },
      'hospital',
    );
    // Patient HM: the hospital's, its médecin traitant named as the GP's Practitioner.
    await put(
      {
        resourceType: 'Patient',
        id: 'hm',
        name: [{ family: 'Hopital' }],
        generalPractitioner: [{ reference: 'Practitioner/pr-gp' }],
      },
      'hospital',
    );
    await put(
      { resourceType: 'Group', id: 'group-msp', type: 'person', actual: true, member: [{ entity: p }, { entity: q }] },
      'msp',
    );
    for (const org of Object.keys(orgs)) {
      vendors[org] = await vendorClient(gw, `Organization/${org}`, ['system/*.cruds']);
    }
    for (const who of WHO) {
      tokens[who] = await personToken(gw, vendors[PERSONS[who].org], PERSONS[who].idNatPs);
    }
  }, 120_000);
  afterAll(async () => gw?.close());

  it('reads, searches and histories: each person sees what their basis gives, nothing else', async () => {
    await checkAll(EXPECTED);
  }, 120_000);

  it('searches by patient count only what the person may see (total and paging do not leak)', async () => {
    const totals = async (who: Who, query: string): Promise<number> => {
      const res = await get(who, `${query}&_total=accurate&_count=1`);
      expect(res.status).toBe(200);
      return res.json<{ total: number }>().total;
    };
    // P's compartment: Observation, Condition (restricted), MedicationStatement, Communication.
    const got = Object.fromEntries(
      await Promise.all(
        WHO.map(async (w) => [
          w,
          [
            await totals(w, 'Observation?subject=Patient/p'),
            await totals(w, 'Condition?subject=Patient/p'),
            await totals(w, 'MedicationStatement?subject=Patient/p'),
          ].join(' '),
        ]),
      ),
    );
    expect(got).toEqual({
      gp: '1 1 1',
      nurseMsp: '1 1 1',
      secretary: '0 0 0',
      nurseOut: '1 0 1',
      pharmacist: '0 0 1',
      coordinator: '0 0 0',
      hospital: '0 0 0',
    });
  });

  it('includes, revincludes and chains only what the person may read', async () => {
    const bundle = async (who: Who, query: string): Promise<string[]> => {
      const res = await get(who, query);
      expect(res.status).toBe(200);
      return ids(res.json());
    };
    // _include: the pharmacist gets the treatment and P (consented classes); nothing else.
    expect(
      await bundle('pharmacist', 'MedicationStatement?subject=Patient/p&_include=MedicationStatement:subject'),
    ).toEqual(['MedicationStatement/med-p', 'Patient/p']);
    // _revinclude: the outside nurse gets P, its Observation and treatment, never the restricted Condition.
    expect(
      await bundle(
        'nurseOut',
        'Patient?_id=p&_revinclude=Observation:subject&_revinclude=Condition:subject&_revinclude=MedicationStatement:subject',
      ),
    ).toEqual(['MedicationStatement/med-p', 'Observation/obs-p', 'Patient/p']);
    expect(
      await bundle('secretary', 'Patient?_id=p&_revinclude=Observation:subject&_revinclude=Communication:subject'),
    ).toEqual(['Communication/comm-p', 'Patient/p']);
    // Chained: the hospital cannot find P's Observation by the patient's name, the MSP nurse can.
    expect(await bundle('hospital', 'Observation?subject:Patient.family=Partage')).toEqual([]);
    expect(await bundle('nurseMsp', 'Observation?subject:Patient.family=Partage')).toEqual(['Observation/obs-p']);
    // The coordinator's Task brings its input along, not the patient's other facts.
    expect(await bundle('coordinator', 'Task?_id=task-q&_include=Task:patient')).toEqual(['Patient/q', 'Task/task-q']);
    expect(await bundle('coordinator', 'Observation?subject=Patient/q')).toEqual([]);
  });

  it('gives non-health staff the communication header without its content', async () => {
    const secretary = (await get('secretary', 'Communication/comm-p')).json<{
      payload?: unknown;
      meta?: { tag?: { code: string }[] };
    }>();
    expect(secretary.payload).toBeUndefined();
    expect(secretary.meta?.tag?.some((t) => t.code === 'SUBSETTED')).toBe(true);
    expect((await get('gp', 'Communication/comm-p')).json()).toHaveProperty('payload');
  });

  it('type history lists only what the person may read', async () => {
    const listed = async (who: Who): Promise<string[]> => {
      const res = await get(who, 'Observation/_history?_count=50');
      expect(res.status).toBe(200);
      return [...new Set(ids(res.json()))];
    };
    expect(await listed('nurseOut')).toEqual(['Observation/obs-p']);
    expect(await listed('pharmacist')).toEqual([]);
    expect(await listed('gp')).toEqual(['Observation/obs-p', 'Observation/obs-q']);
  });

  it('bulk export: the structure team exports its Group, a person of another structure cannot see it', async () => {
    const ASYNC = { accept: 'application/fhir+json', prefer: 'respond-async' };
    const denied = await send(gw.baseUrl, 'GET', '/fhir/Group/group-msp/$export', {
      token: tokens.nurseOut,
      headers: ASYNC,
    });
    expect(denied.status).toBe(404);
    const kick = await send(gw.baseUrl, 'GET', '/fhir/Group/group-msp/$export', {
      token: tokens.secretary,
      headers: ASYNC,
    });
    expect(kick.status).toBe(202);
    const statusUrl = new URL(kick.headers['content-location'] as string, gw.baseUrl).pathname;
    let manifest: { output: { type: string; url: string }[] } | undefined;
    for (let i = 0; i < 300 && !manifest; i++) {
      const s = await send(gw.baseUrl, 'GET', statusUrl, { token: tokens.secretary });
      if (s.status === 200) {
        manifest = s.json();
      } else {
        expect(s.status).toBe(202);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // The secretary's export: the structure's Group, demographics, the Task, the communication
    // header; no clinical type.
    expect(manifest?.output.map((o) => o.type).sort()).toEqual(['Communication', 'Group', 'Patient', 'Task']);
    // Another person of the same structure cannot follow it (the export is the secretary's).
    expect((await send(gw.baseUrl, 'GET', statusUrl, { token: tokens.gp })).status).toBe(404);
  }, 60_000);

  it('indicator operations: population reports for the structure, patient-level ones only to who reads clinical content', async () => {
    const evaluate = (who: Who, query: string) =>
      get(who, `Measure/rosp-diabete-hba1c/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31&${query}`);
    expect((await evaluate('gp', 'reportType=population')).status).toBe(200);
    expect((await evaluate('secretary', 'reportType=population')).status).toBe(200);
    expect((await evaluate('gp', 'reportType=subject-list')).status).toBe(200);
    expect((await evaluate('nurseMsp', 'reportType=subject&subject=Patient/p')).status).toBe(200);
    // A recall list names patients with their clinical gaps: not for non-health staff or a pharmacist.
    expect((await evaluate('secretary', 'reportType=subject-list')).status).toBe(403);
    expect((await evaluate('pharmacist', 'reportType=subject&subject=Patient/p')).status).toBe(403);
    // One patient's report only for a patient the person may read; another structure's figures never.
    expect((await evaluate('hospital', 'reportType=subject&subject=Patient/p')).status).toBe(404);
    expect((await evaluate('nurseOut', 'reportType=population&subject=Organization/msp')).status).toBe(403);
  });

  it('answers "who looked at my record" to the médecin traitant, not to another professional', async () => {
    const trail = await get('gp', 'AuditEvent?patient=Patient/p&_count=200');
    expect(trail.status).toBe(200);
    const events = trail.json<{
      entry: { resource: { agent: { who?: { reference?: string }; policy?: string[] }[]; outcome: string } }[];
    }>().entry;
    const byNurse = events.filter((e) => e.resource.agent[0]?.who?.reference === 'PractitionerRole/role-nurseOut');
    expect(byNurse.length).toBeGreaterThan(0);
    expect(byNurse.some((e) => e.resource.agent[0]?.policy?.includes('care-circle:CareTeam/circle-p'))).toBe(true);
    const byHospital = events.filter((e) => e.resource.agent[0]?.who?.reference === 'PractitionerRole/role-hospital');
    // The hospital's attempts were refused: the trail shows them as failures.
    expect(byHospital.length).toBeGreaterThan(0);
    expect(byHospital.every((e) => e.resource.outcome !== '0')).toBe(true);
    expect((await get('nurseOut', 'AuditEvent?patient=Patient/p')).status).toBe(403);
  });

  it("a structure claiming another structure's GP gets nothing of that GP's patients; the GP does once their identity is trusted", async () => {
    // A rogue structure writes a PractitionerRole naming the MSP's GP, and its software vouches for
    // the GP by a JWT it signs: the token works (a role in the rogue structure), nothing opens.
    await put({ resourceType: 'Organization', id: 'rogue', name: 'Cabinet Usurpateur' });
    const rogue = await vendorClient(gw, 'Organization/rogue', ['system/*.cruds']);
    const rogueSystem = await send(gw.baseUrl, 'POST', '/oauth2/token', {
      body: `grant_type=client_credentials&client_id=${rogue.id}&client_secret=${rogue.secret}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const role = await send(gw.baseUrl, 'POST', '/fhir/PractitionerRole', {
      token: rogueSystem.json<{ access_token: string }>().access_token,
      body: {
        resourceType: 'PractitionerRole',
        active: true,
        practitioner: { reference: 'Practitioner/pr-gp' },
        organization: { reference: 'Organization/rogue' },
        code: [{ coding: [{ system: G15, code: '10' }] }],
      },
    });
    expect(role.status).toBe(201);
    const fake = await personToken(gw, rogue, PERSONS.gp.idNatPs);
    for (const ref of ['Patient/hm', 'Patient/p', 'Observation/obs-p']) {
      expect((await send(gw.baseUrl, 'GET', `/fhir/${ref}`, { token: fake })).status).toBe(404);
    }
    expect((await send(gw.baseUrl, 'GET', '/fhir/AuditEvent?patient=Patient/hm', { token: fake })).status).toBe(403);
    // The real GP through the MSP's software: the Practitioner-level grant needs a proved identity
    // (an OpenID Connect provider) or a client an operator trusts to authenticate its users.
    expect(await reads('gp', 'Patient/hm')).toBe(false);
    const grant = await send(gw.baseUrl, 'PUT', `/admin/clients/${vendors.msp?.id}/grants`, {
      token: admin,
      body: { grants: ['person-identity'] },
      headers: { 'content-type': 'application/json' },
    });
    expect(grant.status).toBe(200);
    const deadline = Date.now() + 5_000;
    while (!(await reads('gp', 'Patient/hm')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await reads('gp', 'Patient/hm')).toBe(true);
    expect((await send(gw.baseUrl, 'GET', '/fhir/Patient/hm', { token: fake })).status).toBe(404);
  });

  it('after an opposition to everyone, other structures lose access; the MSP keeps its own record', async () => {
    await put(
      {
        resourceType: 'Consent',
        id: 'opposition-p',
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
        category: [{ coding: [{ ...SHARING_CONSENT_CATEGORY }] }],
        patient: { reference: 'Patient/p' },
        policyRule: { text: 'CSP L.1110-4' },
        provision: { type: 'deny' },
      },
      'msp',
    );
    await checkAll({
      'Patient/p': 'yyy....',
      'Observation/obs-p': 'yy.....',
      'MedicationStatement/med-p': 'yy.....',
    });
    // A DMP consent (PAM-FR ZFA) is about the DMP only: it never acts as a sharing opposition.
    await put({
      resourceType: 'Consent',
      id: 'opposition-p',
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [
        { coding: [{ system: 'https://gateway.fr-primary-care.org/fhir/CodeSystem/consent', code: 'dmp-feeding' }] },
      ],
      patient: { reference: 'Patient/p' },
      policyRule: { text: 'DMP' },
      provision: { type: 'deny' },
      meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: 'Organization/msp' }] },
    });
    await checkAll({ 'Observation/obs-p': EXPECTED['Observation/obs-p'] as string });
  }, 120_000);

  it('after an opposition to one professional, that person loses access, the others keep theirs', async () => {
    await put(
      {
        resourceType: 'Consent',
        id: 'opposition-nurse',
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
        category: [{ coding: [{ ...SHARING_CONSENT_CATEGORY }] }],
        patient: { reference: 'Patient/p' },
        policyRule: { text: 'CSP L.1110-4' },
        provision: {
          type: 'deny',
          actor: [{ role: { text: 'infirmier' }, reference: { reference: 'PractitionerRole/role-nurseMsp' } }],
        },
      },
      'msp',
    );
    await checkAll({ 'Observation/obs-p': 'y..y...', 'Patient/p': 'y.yyy..' });
    await send(gw.baseUrl, 'DELETE', '/fhir/Consent/opposition-nurse', { token: admin });
    await checkAll({ 'Observation/obs-p': EXPECTED['Observation/obs-p'] as string });
  }, 120_000);

  it('after the care-circle participation ends, the outside nurse loses access', async () => {
    const circle = (await send(gw.baseUrl, 'GET', '/fhir/CareTeam/circle-p', { token: admin })).json<{
      resourceType: string;
      id: string;
      participant: Record<string, unknown>[];
    }>();
    circle.participant[1] = { ...circle.participant[1], period: { start: iso(-10), end: iso(-1) } };
    await put(circle, 'msp');
    await checkAll({
      'Patient/p': 'yyy.y..',
      'Observation/obs-p': 'yy.....',
      'MedicationStatement/med-p': 'yy..y..',
    });
  }, 120_000);
});
