import { randomUUID } from 'node:crypto';
import type { MeasureReport, MeasureReportGroupPopulation } from '@medplum/fhirtypes';
import { CODES } from '@gw/indicators';
import { IDENTITY_TRUST_SYSTEM, IDENTITY_VERIFIED_SOURCE, RELIABILITY_EXTENSION } from '@gw/fhir';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { ackCode, adt, call, controlId, nir, registerSource, sendMllp } from '../support/hl7';
import { typedOrganization } from '../support/indicators';

const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const QUAL = { url: RELIABILITY_EXTENSION, extension: [{ url: 'identityStatus', valueCoding: { code: 'QUAL' } }] };
const VERIFIED = { system: IDENTITY_TRUST_SYSTEM, code: IDENTITY_VERIFIED_SOURCE };

type Outcome = { issue: { code: string; details?: { text?: string }; expression?: string[] }[] };

/**
 * Facts a client asserts that other organizations' data depend on: a client writes only for its
 * own patients, cannot claim another structure's patient as the same person, and a PUT to an id it
 * cannot update tells nothing and creates nothing.
 */
describe('security: identity claims and writes for other organizations', () => {
  let gw: TestGateway;
  let orgA: string;
  let orgB: string;
  let tokenA: string;
  let tokenB: string;
  let gpA: string;
  const insA = nir('1', '48', '03', '75', '056', '101');
  const db = () => gw.core.db.pool;

  const post = <T = { id: string }>(type: string, body: object, token?: string) =>
    call<T>(gw, 'POST', `${gw.fhirUrl}/${type}`, body, token);
  const patient = (extra: object = {}) => ({
    resourceType: 'Patient',
    name: [{ family: 'TEST' }],
    gender: 'male',
    birthDate: '1948-03-01',
    ...extra,
  });
  const created = async (type: string, body: object, token?: string): Promise<string> => {
    const res = await post(type, body, token);
    expect(res.status).toBe(201);
    return res.body.id;
  };
  const personOf = async (...ids: string[]) =>
    (
      await db().query<{ id: string; person_key: string; ins: string | null }>(
        'SELECT id, person_key, ins FROM ind_patient WHERE id = ANY($1) ORDER BY id',
        [ids],
      )
    ).rows;
  const counts = (pops: MeasureReportGroupPopulation[] | undefined) =>
    Object.fromEntries((pops ?? []).map((p) => [p.code?.coding?.[0]?.code, p.count ?? 'masked']));
  const fluScore = async () => {
    const res = await call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/rosp-grippe-65/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31&subject=Organization/${orgA}`,
      undefined,
      tokenA,
    );
    expect(res.status).toBe(200);
    return counts(res.body.group?.[0]?.population);
  };
  const immunization = (patientRef: string) => ({
    resourceType: 'Immunization',
    status: 'completed',
    vaccineCode: { coding: [CODES.fluVaccine] },
    patient: { reference: patientRef },
    occurrenceDateTime: '2025-10-15',
  });

  let patientA: string; // A's patient, INS verified (written by the operator for A)
  let patientA2: string; // A's second patient, no INS

  beforeAll(async () => {
    // Exact figures: the scores are compared before and after one write (no small-cell rule, no noise).
    gw = await startTestGateway({ GW_INDICATOR_SMALL_CELL: '1', GW_INDICATOR_NOISE: 'false' });
    orgA = await typedOrganization(gw, 'MSP A', 'MSP');
    orgB = await typedOrganization(gw, 'MSP B', 'MSP');
    tokenA = (await gw.clientOf(orgA, ['system/*.cruds'])).token;
    tokenB = (await gw.clientOf(orgB, ['system/*.cruds'])).token;
    gpA = await created(
      'Practitioner',
      { resourceType: 'Practitioner', active: true, name: [{ family: 'GP' }] },
      tokenA,
    );
    const gp = { generalPractitioner: [{ reference: `Practitioner/${gpA}` }] };
    // The operator files A's qualified record (a writer allowed to qualify identities).
    patientA = await created(
      'Patient',
      patient({
        ...gp,
        identifier: [{ system: INS, value: insA }],
        extension: [QUAL],
        meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${orgA}` }] },
      }),
    );
    patientA2 = await created('Patient', patient(gp), tokenA);
  }, 120_000);

  afterAll(async () => gw?.close());

  describe('identity claims across organizations', () => {
    it('a qualified INS written by a client not allowed to qualify (even with a forged trust tag) merges nobody', async () => {
      const forged = await created(
        'Patient',
        patient({ identifier: [{ system: INS, value: insA }], extension: [QUAL], meta: { tag: [VERIFIED] } }),
        tokenB,
      );
      const read = await call<{ meta: { tag?: { system: string }[] } }>(
        gw,
        'GET',
        `${gw.fhirUrl}/Patient/${forged}`,
        undefined,
        tokenB,
      );
      expect(read.body.meta.tag?.some((t) => t.system === IDENTITY_TRUST_SYSTEM)).toBe(false);
      const rows = await personOf(patientA, forged);
      expect(rows.find((r) => r.id === patientA)?.ins).toBe(insA);
      expect(rows.find((r) => r.id === forged)?.ins).toBeNull();
      expect(new Set(rows.map((r) => r.person_key)).size).toBe(2);
      // And its subject evaluation reads only B's own record: A's facts are not its person's.
      await created(
        'Observation',
        {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [CODES.hba1c] },
          subject: { reference: `Patient/${patientA}` },
          effectiveDateTime: '2025-02-01',
        },
        tokenA,
      );
      const facts = await db().query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ind_fact WHERE person = (SELECT person_key FROM ind_patient WHERE id = $1)`,
        [forged],
      );
      expect(facts.rows[0]?.n).toBe(0);
    });

    it('the same qualified INS written by the operator for B merges with A (verified on both sides)', async () => {
      const verified = await created(
        'Patient',
        patient({
          identifier: [{ system: INS, value: insA }],
          extension: [QUAL],
          meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${orgB}` }] },
        }),
      );
      const rows = await personOf(patientA, verified);
      expect(rows.map((r) => r.person_key)).toEqual([`ins:${insA}`, `ins:${insA}`]);
      // B's client updating its own record without changing the INS keeps the verification.
      const current = await call<Record<string, unknown>>(
        gw,
        'GET',
        `${gw.fhirUrl}/Patient/${verified}`,
        undefined,
        tokenB,
      );
      const res = await call(
        gw,
        'PUT',
        `${gw.fhirUrl}/Patient/${verified}`,
        { ...current.body, telecom: [{ system: 'phone', value: '0102030405' }] },
        tokenB,
      );
      expect(res.status).toBe(200);
      expect((await personOf(verified))[0]?.person_key).toBe(`ins:${insA}`);
    });

    it('an HL7 source qualifies identities only when the operator marked it so (default: no)', async () => {
      const orgH = await typedOrganization(gw, 'CH Y', 'hospital');
      const sources = [
        { facility: 'CH-Y-Q', qualifiesIdentity: true, ins: nir('2', '51', '04', '75', '056', '201') },
        { facility: 'CH-Y-N', qualifiesIdentity: undefined, ins: nir('2', '51', '04', '75', '056', '202') },
      ];
      for (const s of sources) {
        await registerSource(gw, {
          sendingApplication: 'GAM',
          sendingFacility: s.facility,
          organization: `Organization/${orgH}`,
          qualifiesIdentity: s.qualifiesIdentity,
        });
        const message = adt('A28', {
          controlId: controlId(),
          facility: s.facility,
          patient: { ipp: `IPP-${s.facility}`, ins: s.ins, birthDate: '19510401', sex: 'F', identityStatus: ['QUAL'] },
        });
        expect(ackCode(await sendMllp(gw.mllpPort, message))).toBe('AA');
      }
      const rows = await db().query<{ ins: string | null; owner_org: string }>(
        'SELECT ins, owner_org FROM ind_patient WHERE owner_org = $1 ORDER BY ins NULLS LAST',
        [`Organization/${orgH}`],
      );
      expect(rows.rows).toEqual([
        { ins: sources[0]!.ins, owner_org: `Organization/${orgH}` },
        { ins: null, owner_org: `Organization/${orgH}` },
      ]);
    });

    it('a Patient.link to another organization’s patient is refused (403 naming the link), like one to an id nobody holds', async () => {
      const link = (id: string) => patient({ link: [{ other: { reference: `Patient/${id}` }, type: 'seealso' }] });
      const held = await post<Outcome>('Patient', link(patientA), tokenB);
      const absent = randomUUID();
      const none = await post<Outcome>('Patient', link(absent), tokenB);
      expect(held.status).toBe(403);
      expect(held.body.issue[0]?.expression).toEqual(['Patient.link[0].other']);
      expect(none.status).toBe(403);
      expect(JSON.stringify(none.body).replace(absent, patientA)).toBe(JSON.stringify(held.body));
      // Within A, the same link is accepted and counts for the indicators (same organization).
      const linked = await created('Patient', link(patientA2), tokenA);
      const row = await db().query<{ link: string; person_key: string }>(
        'SELECT link, person_key FROM ind_patient WHERE id = $1',
        [linked],
      );
      expect(row.rows[0]).toEqual({
        link: patientA2,
        person_key: `pat:${linked < patientA2 ? linked : patientA2}`,
      });
    });
  });

  describe('writes for another organization’s patient', () => {
    it('an Immunization for A’s patient written by B is refused and A’s score does not move', async () => {
      const before = await fluScore();
      expect(before).toMatchObject({ denominator: 2, numerator: 0 });
      const res = await post<Outcome>('Immunization', immunization(`Patient/${patientA2}`), tokenB);
      expect(res.status).toBe(403);
      expect(res.body.issue[0]).toMatchObject({
        code: 'forbidden',
        expression: ['Immunization.patient'],
        details: { text: `Patient/${patientA2} is not a patient this client may write for` },
      });
      // The same through a batch entry and a conditional update.
      const batch = await call<{ entry: { response: { status: string } }[] }>(
        gw,
        'POST',
        gw.fhirUrl,
        {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [{ resource: immunization(`Patient/${patientA2}`), request: { method: 'POST', url: 'Immunization' } }],
        },
        tokenB,
      );
      expect(batch.body.entry[0]?.response.status).toBe('403 Forbidden');
      const conditional = await call(
        gw,
        'PUT',
        `${gw.fhirUrl}/Immunization?identifier=urn:test|flu-1`,
        { ...immunization(`Patient/${patientA2}`), identifier: [{ system: 'urn:test', value: 'flu-1' }] },
        tokenB,
      );
      expect(conditional.status).toBe(403);
      expect(await fluScore()).toEqual(before);
      // A writes it for its own patient: the score moves.
      expect((await post('Immunization', immunization(`Patient/${patientA2}`), tokenA)).status).toBe(201);
      expect(await fluScore()).toMatchObject({ numerator: 1 });
    });

    it('a Group holding another organization’s patient is refused', async () => {
      const res = await post<Outcome>(
        'Group',
        {
          resourceType: 'Group',
          type: 'person',
          actual: true,
          member: [{ entity: { reference: `Patient/${patientA}` } }],
        },
        tokenB,
      );
      expect(res.status).toBe(403);
      expect(res.body.issue[0]?.expression).toEqual(['Group.member[0].entity']);
    });

    it('a transaction mixing allowed and forbidden entries is refused whole: nothing is written', async () => {
      const before = await db().query<{ n: number }>(`SELECT count(*)::int AS n FROM resource WHERE owner_org = $1`, [
        `Organization/${orgB}`,
      ]);
      const res = await call<Outcome>(
        gw,
        'POST',
        gw.fhirUrl,
        {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              fullUrl: 'urn:uuid:7d0c8f4e-0000-4000-8000-000000000001',
              resource: patient(),
              request: { method: 'POST', url: 'Patient' },
            },
            {
              resource: immunization('urn:uuid:7d0c8f4e-0000-4000-8000-000000000001'),
              request: { method: 'POST', url: 'Immunization' },
            },
            { resource: immunization(`Patient/${patientA2}`), request: { method: 'POST', url: 'Immunization' } },
          ],
        },
        tokenB,
      );
      expect(res.status).toBe(403);
      expect(res.body.issue).toHaveLength(1);
      expect(res.body.issue[0]?.expression).toEqual(['Bundle.entry[2].resource.patient']);
      const after = await db().query<{ n: number }>(`SELECT count(*)::int AS n FROM resource WHERE owner_org = $1`, [
        `Organization/${orgB}`,
      ]);
      expect(after.rows[0]?.n).toBe(before.rows[0]?.n);
    });
  });

  describe('PUT to an id the client cannot update', () => {
    const put = (type: string, id: string, body: object, token = tokenB) =>
      call<Outcome>(gw, 'PUT', `${gw.fhirUrl}/${type}/${id}`, { ...body, id }, token);

    it('answers the same whether another organization holds the id or nobody does, and creates nothing', async () => {
      const absent = randomUUID();
      const held = await put('Patient', patientA2, patient());
      const none = await put('Patient', absent, patient());
      expect(held.status).toBe(404);
      expect(none.status).toBe(404);
      expect(held.headers.get('content-type')).toBe(none.headers.get('content-type'));
      expect(JSON.stringify(none.body).replace(absent, patientA2)).toBe(JSON.stringify(held.body));
      expect(held.body.issue[0]?.details?.text).toContain('POST (the server assigns the id)');
      const rows = await db().query<{ id: string; owner_org: string; version_id: number }>(
        `SELECT id, owner_org, version_id FROM resource WHERE resource_type = 'Patient' AND id = ANY($1)`,
        [[absent, patientA2]],
      );
      expect(rows.rows).toEqual([{ id: patientA2, owner_org: `Organization/${orgA}`, version_id: 1 }]);
    });

    it('the same inside a transaction; a conditional update still creates (server-assigned id), an admin may PUT-create', async () => {
      const absent = randomUUID();
      const tx = await call<Outcome>(
        gw,
        'POST',
        gw.fhirUrl,
        {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [{ resource: { ...patient(), id: absent }, request: { method: 'PUT', url: `Patient/${absent}` } }],
        },
        tokenB,
      );
      expect(tx.status).toBe(404);
      const conditional = await call<{ id: string }>(
        gw,
        'PUT',
        `${gw.fhirUrl}/Patient?identifier=urn:test|b-1`,
        patient({ identifier: [{ system: 'urn:test', value: 'b-1' }] }),
        tokenB,
      );
      expect(conditional.status).toBe(201);
      expect(conditional.body.id).not.toBe(absent);
      const inTx = await call<{ entry: { response: { status: string } }[] }>(
        gw,
        'POST',
        gw.fhirUrl,
        {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              resource: patient({ identifier: [{ system: 'urn:test', value: 'b-2' }] }),
              request: { method: 'PUT', url: 'Patient?identifier=urn:test|b-2' },
            },
          ],
        },
        tokenB,
      );
      expect(inTx.body.entry[0]?.response.status).toBe('201 Created');
      expect((await put('Patient', absent, patient(), await gw.token())).status).toBe(201);
    });
  });
});
