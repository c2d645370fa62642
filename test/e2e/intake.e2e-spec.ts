import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import JSZip from 'jszip';
import type {
  Bundle,
  BundleEntry,
  CareTeam,
  DocumentReference,
  Immunization,
  Observation,
  OperationOutcome,
  Patient,
  Procedure,
  Provenance,
  Resource,
} from '@medplum/fhirtypes';
import { buildProvideBundle } from '@gw/exchange';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

/** The ANS CI-SIS examples, read in place next to the repository (see their SOURCES.md). */
const SAMPLES = join(__dirname, '../../../shared/samples/ans-cda');
const sample = (name: string): Buffer => readFileSync(join(SAMPLES, name));
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const ATC = 'https://smt.esante.gouv.fr/terminologie-atc';
const TRE_R259 = 'https://mos.esante.gouv.fr/NOS/TRE_R259-HL7RoleClass/FHIR/TRE-R259-HL7RoleClass';
const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
const RELIABILITY = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability';
const RELIABILITY_CODES = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445';

interface Answer {
  status: number;
  body: Omit<Bundle, 'resourceType'> & Pick<OperationOutcome, 'issue'> & { resourceType: string };
}

/** The status, or the outcome's issues when it is not the expected one (the failure then says why). */
const statusOf = (a: Answer, expected: number): number | string =>
  a.status === expected ? a.status : `${a.status} ${JSON.stringify(a.body.issue ?? a.body.entry?.at(-1))}`;

describe('practice intake: POST /ingest/documents files CI-SIS documents as FHIR', () => {
  let gw: TestGateway;
  let n = 0;

  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => gw?.close());

  /** A client of a fresh organization (each sample in its own, so their one test patient never meets itself). */
  const structure = async (scopes = ['system/*.cruds']): Promise<{ token: string; org: string }> => {
    n += 1;
    const org = `msp-intake-${n}`;
    const c = await gw.clientOf(org, scopes);
    return { token: c.token, org };
  };

  const post = async (
    token: string,
    body: Buffer | string,
    contentType = 'application/hl7-cda+xml',
  ): Promise<Answer> => {
    const res = await fetch(`${gw.baseUrl}/ingest/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
      body,
    });
    return { status: res.status, body: (await res.json()) as Answer['body'] };
  };

  const get = async <T extends Resource>(token: string, path: string): Promise<T[]> => {
    const res = await fetch(`${gw.fhirUrl}/${path}`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const bundle = (await res.json()) as Bundle<T>;
    return (bundle.entry ?? []).map((e) => e.resource as T);
  };

  const created = (a: Answer, type: string): string[] =>
    (a.body.entry ?? [])
      .filter((e: BundleEntry) => e.fullUrl?.startsWith(`${type}/`) && e.response?.status === '201 Created')
      .map((e: BundleEntry) => e.fullUrl as string);

  const patientOf = (a: Answer): string => {
    const ref = (a.body.entry ?? []).find((e) => e.fullUrl?.startsWith('Patient/'))?.fullUrl;
    expect(ref).toBeDefined();
    return ref as string;
  };

  const codes = (c: { coding?: { system?: string; code?: string }[] } | undefined): string[] =>
    (c?.coding ?? []).map((x) => `${x.system}|${x.code}`);

  /** Counts of the owner's resources, to prove that nothing was written. */
  const counts = async (): Promise<string> => {
    const res = await gw.core.db.pool.query<{ resource_type: string; n: string }>(
      `SELECT resource_type, count(*) AS n FROM resource GROUP BY resource_type ORDER BY resource_type`,
    );
    const staged = await gw.core.db.pool.query<{ n: string }>('SELECT count(*) AS n FROM intake_document');
    return JSON.stringify([res.rows, staged.rows[0].n]);
  };

  it('VSM: the patient created from the INS traits, the PCP on the CareTeam (TRE_R259 PCP) and as generalPractitioner, facts with Provenance', async () => {
    const s = await structure();
    const a = await post(s.token, sample('VSM_1.4_2022.01.xml'));
    expect(statusOf(a, 201)).toBe(201);
    expect(a.body.type).toBe('transaction-response');
    const patientRef = patientOf(a);
    const [patient] = await get<Patient>(s.token, `Patient?_id=${patientRef.split('/')[1]}`);
    expect(patient.identifier?.some((i) => i.system === 'urn:oid:1.2.250.1.213.1.4.10')).toBe(true);
    expect(patient.name?.[0].use).toBe('official');
    // A document's INS is never qualified by itself (INS guide): a provisional identity, received in a document.
    expect(patient.extension?.find((e) => e.url === RELIABILITY)).toEqual({
      url: RELIABILITY,
      extension: [
        {
          url: 'identityStatus',
          valueCoding: { system: RELIABILITY_CODES, code: 'PROV', display: 'Identité provisoire' },
        },
        {
          url: 'methodCollection',
          valueCoding: {
            system: 'https://gateway.fr-primary-care.org/fhir/CodeSystem/identity-method-collection',
            code: 'document',
            display: 'Traits reçus dans un document',
          },
        },
      ],
    });
    expect(patient.meta?.tag ?? []).not.toContainEqual(expect.objectContaining({ code: 'verified-source' }));
    const [pcp] = await get<{ resourceType: 'Practitioner'; id: string }>(
      s.token,
      `Practitioner?identifier=${IDNATPS}|801234567897`,
    );
    expect(patient.generalPractitioner).toEqual([{ reference: `Practitioner/${pcp.id}` }]);
    const [team] = await get<CareTeam>(s.token, `CareTeam?patient=${patientRef}`);
    expect(team.participant).toEqual([
      expect.objectContaining({
        member: { reference: `Practitioner/${pcp.id}` },
        role: [{ coding: [expect.objectContaining({ system: TRE_R259, code: 'PCP' })] }],
      }),
    ]);
    const conditions = await get<Resource>(s.token, `Condition?patient=${patientRef}&_count=100`);
    expect(conditions.length).toBeGreaterThanOrEqual(4);
    const [doc] = await get<DocumentReference>(s.token, `DocumentReference?patient=${patientRef}`);
    expect(doc).toMatchObject({ status: 'current', type: { coding: [expect.objectContaining({ code: 'SYNTH' })] } });
    const binary = await fetch(`${gw.fhirUrl}/${doc.content[0].attachment.url}`, {
      headers: { authorization: `Bearer ${s.token}`, accept: 'application/fhir+json' },
    });
    expect(binary.status).toBe(200);
    const data = ((await binary.json()) as { data: string }).data;
    expect(Buffer.from(data, 'base64').equals(sample('VSM_1.4_2022.01.xml'))).toBe(true);
    const provenances = await get<Provenance>(
      s.token,
      `Provenance?target=${conditions[0].resourceType}/${conditions[0].id}`,
    );
    expect(provenances[0].entity).toEqual([{ role: 'source', what: { reference: `DocumentReference/${doc.id}` } }]);
  });

  it('CR-BIO glucose: LOINC, UCUM, reference range; CRP coded outside LOINC kept; TSH; cervical screening', async () => {
    const s = await structure();
    const a = await post(s.token, sample('BIO-CR-BIO_2024.01_Glycemie_mole.xml'), 'application/xml');
    expect(statusOf(a, 201)).toBe(201);
    const obs = await get<Observation>(s.token, `Observation?patient=${patientOf(a)}&_count=100`);
    const glucose = obs.find((o) => codes(o.code).includes(`${LOINC}|40193-5`)) as Observation;
    expect(glucose.valueQuantity).toEqual({ value: 4.89, unit: 'mmol/L', system: UCUM, code: 'mmol/L' });
    expect(glucose.referenceRange?.length).toBeGreaterThan(0);
    expect(await get(s.token, `DiagnosticReport?patient=${patientOf(a)}`)).toHaveLength(1);

    const c = await structure();
    const crp = await post(c.token, sample('BIO-CR-BIO_2024.01_CRP_non_LOINC.xml'));
    expect(statusOf(crp, 201)).toBe(201);
    const crpObs = await get<Observation>(c.token, `Observation?patient=${patientOf(crp)}&_count=100`);
    expect(crpObs.some((o) => codes(o.code).includes('urn:oid:1.2.250.1.2.3.4|1234'))).toBe(true);
    const warnings = crp.body.entry?.at(-1)?.response?.outcome as OperationOutcome;
    expect(warnings.issue.some((i) => i.severity === 'warning')).toBe(true);

    for (const name of ['BIO-CR-BIO_2024.01_TSH_1.xml', 'BIO-CR-BIO_2024.01_DEP-CCU-tout-structure.xml']) {
      const t = await structure();
      const r = await post(t.token, sample(name));
      expect({ name, status: r.status }).toEqual({ name, status: 201 });
      expect((await get(t.token, `Observation?patient=${patientOf(r)}&_count=100`)).length).toBeGreaterThan(0);
    }
  });

  it('VAC: four immunizations with ATC; IPS-FR; OPH: the retinography as NGAP AMY; CNAM-HR; the unstructured PDF kept without facts', async () => {
    const v = await structure();
    const vac = await post(v.token, sample('VAC_2023.01.xml'));
    expect(statusOf(vac, 201)).toBe(201);
    const imm = await get<Immunization>(v.token, `Immunization?patient=${patientOf(vac)}&_count=100`);
    expect(imm).toHaveLength(4);
    expect(imm.some((i) => codes(i.vaccineCode).includes(`${ATC}|J07AM`))).toBe(true);
    // Small enough for a Binary: the bytes are kept there only, and the original as received is
    // that Binary's first version, served unchanged even after its owner rewrites the Binary.
    const [binary] = created(vac, 'Binary');
    const staged = await gw.core.db.pool.query<{ id: string; raw: Buffer | null }>(
      `SELECT id, raw FROM intake_document WHERE result @> $1::jsonb`,
      [JSON.stringify([{ fullUrl: binary }])],
    );
    expect(staged.rows).toEqual([{ id: expect.any(String), raw: null }]);
    const rewrite = await fetch(`${gw.fhirUrl}/${binary}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${v.token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({
        resourceType: 'Binary',
        id: binary!.split('/')[1],
        contentType: 'text/plain',
        data: 'AA==',
      }),
    });
    expect(rewrite.status).toBe(200);
    const vacOriginal = await fetch(`${gw.baseUrl}/ingest/documents/${staged.rows[0]!.id}/content`, {
      headers: { authorization: `Bearer ${v.token}` },
    });
    expect(vacOriginal.status).toBe(200);
    expect(Buffer.from(await vacOriginal.arrayBuffer()).equals(sample('VAC_2023.01.xml'))).toBe(true);

    const i = await structure();
    const ips = await post(i.token, sample('IPS-FR_2024.01.xml'));
    expect(statusOf(ips, 201)).toBe(201);
    expect((await get(i.token, `Immunization?patient=${patientOf(ips)}&_count=100`)).length).toBeGreaterThanOrEqual(2);
    // 1.5 MB: too large for a Binary, the original is served from the intake staging table.
    expect(created(ips, 'Binary')).toHaveLength(0);
    const [ipsDoc] = await get<DocumentReference>(i.token, `DocumentReference?patient=${patientOf(ips)}`);
    const url = ipsDoc.content[0].attachment.url as string;
    expect(url).toMatch(/\/ingest\/documents\/[0-9a-f-]{36}\/content$/);
    const original = await fetch(url, { headers: { authorization: `Bearer ${i.token}` } });
    expect(Buffer.from(await original.arrayBuffer()).equals(sample('IPS-FR_2024.01.xml'))).toBe(true);
    const stranger = await structure();
    expect((await fetch(url, { headers: { authorization: `Bearer ${stranger.token}` } })).status).toBe(404);

    const o = await structure();
    const oph = await post(o.token, sample('OPH-CR-RTN_2022.01.xml'));
    expect(statusOf(oph, 201)).toBe(201);
    const procs = await get<Procedure>(o.token, `Procedure?patient=${patientOf(oph)}`);
    expect(procs.flatMap((p) => codes(p.code))).toContain('urn:oid:1.2.250.1.213.2.10|AMY');

    const h = await structure();
    const hr = await post(h.token, sample('CNAM-HR_2021.01.xml'));
    expect(statusOf(hr, 201)).toBe(201);
    expect((await get(h.token, `MedicationDispense?patient=${patientOf(hr)}&_count=100`)).length).toBeGreaterThan(0);

    const p = await structure();
    const pdf = await post(p.token, sample('DOC_NON_STRUCTURE_CDA-R2-N1.xml'));
    expect(statusOf(pdf, 201)).toBe(201);
    expect(created(pdf, 'DocumentReference')).toHaveLength(1);
    expect(created(pdf, 'Binary')).toHaveLength(1);
    expect(created(pdf, 'Provenance')).toHaveLength(0);
  });

  it('an IHE XDM zip of one sample is filed like the CDA itself', async () => {
    const s = await structure();
    const zip = new JSZip();
    zip.file('IHE_XDM/SUBSET01/METADATA.XML', '<?xml version="1.0"?><SubmitObjectsRequest/>');
    zip.file('IHE_XDM/SUBSET01/DOC0001.XML', sample('VAC_2023.01.xml'));
    const body = await zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' });
    const a = await post(s.token, body, 'application/zip');
    expect(statusOf(a, 201)).toBe(201);
    expect(await get(s.token, `Immunization?patient=${patientOf(a)}&_count=100`)).toHaveLength(4);
  });

  it('the same document twice writes nothing new and answers the same Bundle', async () => {
    const s = await structure();
    const first = await post(s.token, sample('OPH-CR-RTN_2022.01.xml'));
    expect(statusOf(first, 201)).toBe(201);
    const before = await counts();
    const second = await post(s.token, sample('OPH-CR-RTN_2022.01.xml'));
    expect(statusOf(second, 201)).toBe(201);
    expect(second.body.entry?.slice(0, -1)).toEqual(first.body.entry?.slice(0, -1));
    expect(await counts()).toBe(before);
  });

  it('bad inputs: an error naming the element, and nothing written', async () => {
    const s = await structure();
    const before = await counts();
    const bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><ClinicalDocument>&a;</ClinicalDocument>';
    const cases: [Buffer | string, string, number][] = [
      [bomb, 'application/xml', 400],
      ['<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir"/>', 'application/xml', 400],
      [sample('VAC_2023.01.xml').subarray(0, 20000), 'application/hl7-cda+xml', 400],
      [Buffer.from('PK\x03\x04truncated', 'latin1'), 'application/zip', 400],
      ['not a document', 'text/plain', 415],
    ];
    for (const [body, type, status] of cases) {
      const a = await post(s.token, body, type);
      expect({ type, status: a.status, rt: a.body.resourceType }).toEqual({ type, status, rt: 'OperationOutcome' });
      expect(a.body.issue[0].expression?.length).toBeGreaterThan(0);
    }
    const reader = await structure(['system/*.rs']);
    expect((await post(reader.token, sample('VAC_2023.01.xml'))).status).toBe(403);
    expect(await counts()).toBe(before);
  });

  it('a patient whose traits half-match: 202 and a review; accept files the held document on the chosen patient', async () => {
    const s = await structure();
    const first = await post(s.token, sample('VAC_2023.01.xml'));
    expect(statusOf(first, 201)).toBe(201);
    const patientRef = patientOf(first);
    // The same person without an INS, another birth date and another document id: a partial match.
    const other = sample('OPH-CR-RTN_2022.01.xml')
      .toString('utf8')
      .replace(/root="1\.2\.250\.1\.213\.1\.4\.10"/g, 'root="1.2.250.1.999.1"')
      .replace(/<birthTime value="\d{8}/, '<birthTime value="19790329');
    const before = await counts();
    const held = await post(s.token, other);
    expect(statusOf(held, 202)).toBe(202);
    expect(held.body.resourceType).toBe('OperationOutcome');
    const reviews = await gw.core.db.pool.query<{ id: string; candidates: string[] }>(
      `SELECT id, candidates FROM identity_review WHERE owner = $1 AND status = 'open'`,
      [`Organization/${s.org}`],
    );
    expect(reviews.rows).toHaveLength(1);
    expect(await get(s.token, `Procedure?patient=${patientRef}`)).toHaveLength(0);
    const accept = await fetch(`${gw.baseUrl}/ingest/identity/reviews/${reviews.rows[0].id}/accept`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ patient: patientRef }),
    });
    expect(accept.status === 200 ? 200 : await accept.text()).toBe(200);
    const procs = await get<Procedure>(s.token, `Procedure?patient=${patientRef}`);
    expect(procs.flatMap((p) => codes(p.code))).toContain('urn:oid:1.2.250.1.213.2.10|AMY');
    expect(await counts()).not.toBe(before);
  });
  it('a new version of a document (same setId) supersedes the old one and replaces its facts', async () => {
    const s = await structure();
    const v1 = await post(s.token, sample('VAC_2023.01.xml'));
    expect(statusOf(v1, 201)).toBe(201);
    const patientRef = patientOf(v1);
    const oldFacts = created(v1, 'Immunization');
    expect(oldFacts).toHaveLength(4);
    const v2Body = sample('VAC_2023.01.xml')
      .toString('latin1')
      .replace('<id root="1.2.250.1.213.1.1.1.37.2023.1.1"/>', '<id root="1.2.250.1.213.1.1.1.37.2023.1.2"/>')
      .replace('<versionNumber value="1" />', '<versionNumber value="2" />');
    const v2 = await post(s.token, Buffer.from(v2Body, 'latin1'));
    expect(statusOf(v2, 201)).toBe(201);
    const docs = await get<DocumentReference>(s.token, `DocumentReference?patient=${patientRef}`);
    const current = docs.find((d) => d.status === 'current') as DocumentReference;
    const old = docs.find((d) => d.status === 'superseded') as DocumentReference;
    expect(current.relatesTo).toEqual([{ code: 'replaces', target: { reference: `DocumentReference/${old.id}` } }]);
    const imm = await get<Immunization>(s.token, `Immunization?patient=${patientRef}&_count=100`);
    expect(imm).toHaveLength(4);
    expect(imm.map((i) => `Immunization/${i.id}`).some((r) => oldFacts.includes(r))).toBe(false);
  });

  it('a held document rejected by the reviewer is discarded: nothing filed, the original dropped', async () => {
    const s = await structure();
    expect(statusOf(await post(s.token, sample('VAC_2023.01.xml')), 201)).toBe(201);
    const other = sample('VSM_1.4_2022.01.xml')
      .toString('utf8')
      .replace(/root="1\.2\.250\.1\.213\.1\.4\.10"/g, 'root="1.2.250.1.999.1"')
      .replace(/<birthTime value="\d{8}/, '<birthTime value="19790329');
    const held = await post(s.token, other);
    expect(statusOf(held, 202)).toBe(202);
    const before = await counts();
    const [review] = (
      await gw.core.db.pool.query<{ id: string }>(
        `SELECT id FROM identity_review WHERE owner = $1 AND status = 'open'`,
        [`Organization/${s.org}`],
      )
    ).rows;
    const reject = await fetch(`${gw.baseUrl}/ingest/identity/reviews/${review.id}/reject`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'not our patient' }),
    });
    expect(reject.status).toBe(200);
    const staged = await gw.core.db.pool.query<{ status: string; raw: Buffer | null }>(
      `SELECT status, raw FROM intake_document WHERE owner = $1 AND status <> 'filed'`,
      [`Organization/${s.org}`],
    );
    expect(staged.rows).toEqual([{ status: 'rejected', raw: null }]);
    expect(JSON.parse(await counts())[0]).toEqual(JSON.parse(before)[0]);
    // No patient data in the logs (the ANS test patient's INS and birth name).
    expect(gw.logs.join('').includes('279035121518989')).toBe(false);
  });

  it('an operator files for the organization it names; a structure only for its own', async () => {
    const s = await structure();
    const admin = await gw.token();
    const res = await fetch(`${gw.baseUrl}/ingest/documents?organization=Organization/${s.org}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/xml' },
      body: sample('VAC_2023.01.xml'),
    });
    expect(res.status).toBe(201);
    const imm = await get<Immunization>(s.token, 'Immunization?_count=100');
    expect(imm).toHaveLength(4);
    const other = await structure();
    const refused = await fetch(`${gw.baseUrl}/ingest/documents?organization=Organization/${s.org}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${other.token}`, 'content-type': 'application/xml' },
      body: sample('OPH-CR-RTN_2022.01.xml'),
    });
    expect(refused.status).toBe(403);
  });

  it('concurrent posts: two documents of one new patient make one Patient, one document posted twice is filed once', async () => {
    const s = await structure();
    const answers = await Promise.all([
      post(s.token, sample('VAC_2023.01.xml')),
      post(s.token, sample('VSM_1.4_2022.01.xml')),
      post(s.token, sample('VAC_2023.01.xml')),
    ]);
    expect(answers.map((a) => statusOf(a, 201))).toEqual([201, 201, 201]);
    expect(await get(s.token, 'Patient?_count=10')).toHaveLength(1);
    expect(await get(s.token, 'Immunization?_count=100')).toHaveLength(4);
    expect(await get(s.token, 'CareTeam?_count=10')).toHaveLength(1);
  });

  it('MHD Document Recipient: the CDA of a stored ITI-65 submission is filed by the same pipeline', async () => {
    const s = await structure();
    const coding = { system: LOINC, code: '11369-6' };
    const bundle = buildProvideBundle({
      uniqueId: '1.2.250.1.999.7.1',
      entryUuid: 'urn:uuid:9a1d8b0e-0000-4000-8000-000000000001',
      sourceId: '1.2.250.1.999.7',
      submissionTime: '2024-01-02T10:00:00+01:00',
      title: 'Vaccinations',
      intendedRecipients: [{ display: 'MSP' }],
      patient: { ins: { value: '279035121518989', oid: '1.2.250.1.213.1.4.10' }, family: 'X', given: 'Y' },
      author: { organization: { name: 'Centre de vaccination' } },
      documents: [
        {
          uniqueId: '1.2.250.1.999.7.1.1',
          entryUuid: 'urn:uuid:9a1d8b0e-0000-4000-8000-000000000002',
          title: 'Vaccinations',
          typeCode: coding,
          classCode: coding,
          formatCode: { system: 'urn:oid:1.2.250.1.213.1.1.4.2.282', code: 'urn:asip:ci-sis:vac:2023' },
          contentType: 'text/xml',
          data: sample('VAC_2023.01.xml'),
          fileName: 'VAC.xml',
          creationTime: '2024-01-02T10:00:00+01:00',
          confidentiality: 'N',
        },
      ],
    });
    const res = await fetch(gw.fhirUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(bundle),
    });
    expect(res.status === 200 ? 200 : await res.text()).toBe(200);
    const staged = await gw.core.db.pool.query<{ status: string; source: string }>(
      'SELECT status, source FROM intake_document WHERE owner = $1',
      [`Organization/${s.org}`],
    );
    expect(staged.rows).toEqual([{ status: 'filed', source: 'mhd' }]);
    const [patient] = await get<Patient>(s.token, 'Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|279035121518989');
    expect(await get(s.token, `Immunization?patient=Patient/${patient.id}&_count=100`)).toHaveLength(4);
  });
  it('MHD Document Recipient: a CDA the intake refuses refuses the ITI-65 submission, naming the document entry; nothing stored', async () => {
    const s = await structure();
    const coding = { system: LOINC, code: '11369-6' };
    // A CDA without recordTarget: the intake cannot say whose it is (422).
    const vac = sample('VAC_2023.01.xml').toString('utf8');
    const noPatient = Buffer.from(vac.replace(/<recordTarget>[\s\S]*?<\/recordTarget>/, ''), 'utf8');
    const bundle = buildProvideBundle({
      uniqueId: '1.2.250.1.999.7.2',
      entryUuid: 'urn:uuid:9a1d8b0e-0000-4000-8000-000000000011',
      sourceId: '1.2.250.1.999.7',
      submissionTime: '2024-01-02T10:00:00+01:00',
      title: 'Vaccinations',
      intendedRecipients: [{ display: 'MSP' }],
      patient: { ins: { value: '279035121518989', oid: '1.2.250.1.213.1.4.10' }, family: 'X', given: 'Y' },
      author: { organization: { name: 'Centre de vaccination' } },
      documents: [
        {
          uniqueId: '1.2.250.1.999.7.2.1',
          entryUuid: 'urn:uuid:9a1d8b0e-0000-4000-8000-000000000012',
          title: 'Vaccinations',
          typeCode: coding,
          classCode: coding,
          formatCode: { system: 'urn:oid:1.2.250.1.213.1.1.4.2.282', code: 'urn:asip:ci-sis:vac:2023' },
          contentType: 'text/xml',
          data: noPatient,
          fileName: 'VAC.xml',
          creationTime: '2024-01-02T10:00:00+01:00',
          confidentiality: 'N',
        },
      ],
    });
    const docIndex = (bundle.entry ?? []).findIndex((e) => e.resource?.resourceType === 'DocumentReference');
    const res = await fetch(gw.fhirUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(bundle),
    });
    const outcome = (await res.json()) as OperationOutcome;
    expect(res.status).toBe(422);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue[0]).toMatchObject({ severity: 'error', expression: [`Bundle.entry[${docIndex}]`] });
    expect(outcome.issue[0].details?.text).toMatch(/^ITI-65: the document of Bundle\.entry\[\d+\] was not accepted/);
    // Nothing half-written: neither the submission nor anything of the intake.
    expect(await get(s.token, 'DocumentReference')).toEqual([]);
    expect(await get(s.token, 'List')).toEqual([]);
    const staged = await gw.core.db.pool.query('SELECT 1 FROM intake_document WHERE owner = $1', [
      `Organization/${s.org}`,
    ]);
    expect(staged.rows).toEqual([]);
  });
});
