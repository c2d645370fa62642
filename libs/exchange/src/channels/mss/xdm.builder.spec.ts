import { createHash } from 'node:crypto';
import JSZip from 'jszip';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { Submission } from '../../documents/document.model';
import { buildXdmZip, mssanteSubject, XDM_ZIP_NAME } from './xdm.builder';

const LETTER = Buffer.from('Lettre de liaison\nCompte rendu de séjour.\n', 'utf8');
const NOTICE = Buffer.from('Notification de sortie\n', 'utf8');

function submission(over: Partial<Submission> = {}): Submission {
  return {
    uniqueId: '1.2.250.1.999.1.1.20261120',
    entryUuid: 'urn:uuid:11111111-1111-4111-8111-111111111111',
    sourceId: '1.2.250.1.999.1',
    submissionTime: '2026-11-20T09:30:00Z',
    title: 'Sortie du 20/11/2026',
    intendedRecipients: [
      { email: 'dr.martin@medecin.mssante.fr', rpps: '10001234567', display: 'MARTIN' },
      { email: 'ide.durand@infirmier.mssante.fr' },
    ],
    patient: {
      ins: { value: '281057512345678', oid: '1.2.250.1.213.1.4.10' },
      local: { value: 'IPP123', system: 'urn:oid:1.2.250.1.999.2' },
      family: 'DUPONT',
      given: 'MARIE',
      birthDate: '1981-05-14',
      gender: 'female',
    },
    author: {
      organization: { name: 'CH de Test', finess: '750000001' },
      person: { rpps: '10009876543', family: 'BERNARD', given: 'Luc' },
    },
    documents: [
      {
        uniqueId: '1.2.250.1.999.1.2.1',
        entryUuid: 'urn:uuid:22222222-2222-4222-8222-222222222222',
        title: 'Lettre de liaison',
        typeCode: { system: 'http://loinc.org', code: '11490-0', display: 'Lettre de sortie' },
        classCode: { system: 'urn:oid:1.2.250.1.213.1.1.4.1', code: '10', display: 'Compte rendu' },
        formatCode: {
          system: 'http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode',
          code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient',
        },
        contentType: 'text/plain',
        data: LETTER,
        fileName: 'DOC0001.TXT',
        creationTime: '2026-11-20T10:15:00+01:00',
        serviceStart: '2026-11-18T08:00:00+01:00',
        serviceEnd: '2026-11-20T10:00:00+01:00',
        confidentiality: 'N',
      },
      {
        uniqueId: '1.2.250.1.999.1.2.2',
        entryUuid: 'urn:uuid:33333333-3333-4333-8333-333333333333',
        title: 'Notification',
        typeCode: { system: 'http://loinc.org', code: '18842-5' },
        classCode: { system: 'urn:oid:1.2.250.1.213.1.1.4.1', code: '10' },
        formatCode: {
          system: 'http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode',
          code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient',
        },
        contentType: 'text/plain',
        data: NOTICE,
        fileName: 'DOC0002.TXT',
        creationTime: '2026-11-20T10:15:00+01:00',
        confidentiality: 'R',
        hiddenFromPatient: true,
      },
    ],
    ...over,
  };
}

type Node = Record<string, unknown>;
const ARRAYS = new Set([
  'rim:ExtrinsicObject',
  'rim:Slot',
  'rim:Value',
  'rim:Classification',
  'rim:ExternalIdentifier',
  'rim:Association',
]);
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  isArray: (tagName) => ARRAYS.has(tagName),
});

async function open(s: Submission): Promise<{ zip: JSZip; xml: string; list: Node }> {
  const zip = await JSZip.loadAsync(await buildXdmZip(s));
  const xml = await zip.file('IHE_XDM/SUBSET01/METADATA.XML')!.async('string');
  const root = parser.parse(xml) as Node;
  const list = (root['lcm:SubmitObjectsRequest'] as Node)['rim:RegistryObjectList'] as Node;
  return { zip, xml, list };
}

function slotValues(obj: Node, name: string): string[] {
  const slot = (obj['rim:Slot'] as Node[]).find((x) => x['@name'] === name);
  return slot ? ((slot['rim:ValueList'] as Node)['rim:Value'] as unknown[]).map(String) : [];
}

function externalId(obj: Node, scheme: string): string | undefined {
  return (obj['rim:ExternalIdentifier'] as Node[]).find((x) => x['@identificationScheme'] === scheme)?.['@value'] as
    string | undefined;
}

const DOC_PATIENT_ID = 'urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427';
const SS_PATIENT_ID = 'urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446';

describe('buildXdmZip', () => {
  it('lays out INDEX.HTM, README.TXT, METADATA.XML and the documents as XDM media', async () => {
    const { zip } = await open(submission());
    const files = Object.keys(zip.files)
      .filter((n) => !zip.files[n].dir)
      .sort();
    expect(files).toEqual([
      'IHE_XDM/SUBSET01/DOC0001.TXT',
      'IHE_XDM/SUBSET01/DOC0002.TXT',
      'IHE_XDM/SUBSET01/METADATA.XML',
      'INDEX.HTM',
      'README.TXT',
    ]);
    expect(await zip.file('IHE_XDM/SUBSET01/DOC0001.TXT')!.async('nodebuffer')).toEqual(LETTER);
    expect(XDM_ZIP_NAME).toBe('IHE_XDM.ZIP');
  });

  it('writes well-formed ebRIM metadata with one entry per document, a submission set and HasMember associations', async () => {
    const { xml, list } = await open(submission());
    expect(XMLValidator.validate(xml)).toBe(true);
    expect(xml).toContain('xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"');
    const docs = list['rim:ExtrinsicObject'] as Node[];
    expect(docs.map((d) => d['@id'])).toEqual([
      'urn:uuid:22222222-2222-4222-8222-222222222222',
      'urn:uuid:33333333-3333-4333-8333-333333333333',
    ]);
    expect(docs[0]['@objectType']).toBe('urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1');
    const ss = list['rim:RegistryPackage'] as Node;
    expect(
      (ss['rim:Classification'] as Node[]).some(
        (c) => c['@classificationNode'] === 'urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd',
      ),
    ).toBe(true);
    expect(slotValues(ss, 'intendedRecipient')).toEqual([
      '|810001234567^MARTIN^^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS|^^Internet^dr.martin@medecin.mssante.fr',
      '||^^Internet^ide.durand@infirmier.mssante.fr',
    ]);
    expect(slotValues(ss, 'submissionTime')).toEqual(['20261120093000']);
    const assoc = list['rim:Association'] as Node[];
    expect(assoc.map((a) => [a['@sourceObject'], a['@targetObject'], slotValues(a, 'SubmissionSetStatus')[0]])).toEqual(
      [
        [ss['@id'], docs[0]['@id'], 'Original'],
        [ss['@id'], docs[1]['@id'], 'Original'],
      ],
    );
  });

  it('records the SHA-1 hex hash and size of each document bytes', async () => {
    const { list } = await open(submission());
    const doc = (list['rim:ExtrinsicObject'] as Node[])[0];
    expect(slotValues(doc, 'hash')).toEqual([createHash('sha1').update(LETTER).digest('hex')]);
    expect(slotValues(doc, 'size')).toEqual([String(LETTER.length)]);
    expect(slotValues(doc, 'URI')).toEqual(['DOC0001.TXT']);
    expect(slotValues(doc, 'creationTime')).toEqual(['20261120091500']);
    expect(slotValues(doc, 'serviceStopTime')).toEqual(['20261120090000']);
  });

  it('uses the qualified INS with its OID as patientId', async () => {
    const { list } = await open(submission());
    const doc = (list['rim:ExtrinsicObject'] as Node[])[0];
    expect(externalId(doc, DOC_PATIENT_ID)).toBe('281057512345678^^^&1.2.250.1.213.1.4.10&ISO');
    expect(externalId(list['rim:RegistryPackage'] as Node, SS_PATIENT_ID)).toBe(
      '281057512345678^^^&1.2.250.1.213.1.4.10&ISO',
    );
  });

  it('falls back to the local id as patientId when the identity is not qualified', async () => {
    const base = submission();
    const { list } = await open(submission({ patient: { ...base.patient, ins: undefined } }));
    const doc = (list['rim:ExtrinsicObject'] as Node[])[0];
    expect(externalId(doc, DOC_PATIENT_ID)).toBe('IPP123^^^&1.2.250.1.999.2&ISO');
    expect(externalId(list['rim:RegistryPackage'] as Node, SS_PATIENT_ID)).toBe('IPP123^^^&1.2.250.1.999.2&ISO');
  });

  it('writes names and birth date only in sourcePatientInfo', async () => {
    const { zip, xml, list } = await open(submission());
    const doc = (list['rim:ExtrinsicObject'] as Node[])[0];
    expect(slotValues(doc, 'sourcePatientInfo')).toEqual([
      'PID-3|281057512345678^^^&1.2.250.1.213.1.4.10&ISO^INS~IPP123^^^&1.2.250.1.999.2&ISO^PI',
      'PID-5|DUPONT^MARIE^^^^^L',
      'PID-7|19810514',
      'PID-8|F',
    ]);
    expect(xml.match(/DUPONT/g)).toHaveLength(2);
    expect(xml.match(/19810514/g)).toHaveLength(2);
    for (const f of ['INDEX.HTM', 'README.TXT']) {
      expect(await zip.file(f)!.async('string')).not.toMatch(/DUPONT|MARIE|1981/);
    }
  });

  it('marks a document hidden from the patient with the DMP INVISIBLE_PATIENT confidentiality code', async () => {
    const { list } = await open(submission());
    const [visible, hidden] = list['rim:ExtrinsicObject'] as Node[];
    const codes = (d: Node): unknown[] =>
      (d['rim:Classification'] as Node[])
        .filter((c) => c['@classificationScheme'] === 'urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f')
        .map((c) => c['@nodeRepresentation']);
    expect(codes(visible)).toEqual(['N']);
    expect(codes(hidden)).toEqual(['R', 'INVISIBLE_PATIENT']);
  });

  it('escapes <, & and " in titles', async () => {
    const base = submission();
    const title = 'CR <urgent> & "confidentiel"';
    const { xml, list } = await open(submission({ title, documents: [{ ...base.documents[0], title }] }));
    expect(XMLValidator.validate(xml)).toBe(true);
    expect(xml).toContain('value="CR &lt;urgent&gt; &amp; &quot;confidentiel&quot;"');
    const doc = (list['rim:ExtrinsicObject'] as Node[])[0];
    expect(((doc['rim:Name'] as Node)['rim:LocalizedString'] as Node)['@value']).toBe(title);
  });

  it('is deterministic: the same submission gives byte-identical ZIPs', async () => {
    const a = await buildXdmZip(submission());
    const b = await buildXdmZip(submission());
    expect(b.equals(a)).toBe(true);
    // Entry dates come from submissionTime, not the clock.
    const zip = await JSZip.loadAsync(a);
    expect(Object.values(zip.files).every((f) => f.date.toISOString() === '2026-11-20T09:30:00.000Z')).toBe(true);
  });

  it('rejects a submission without any patient identifier', async () => {
    await expect(buildXdmZip(submission({ patient: { family: 'X' } }))).rejects.toThrow(
      /neither an INS nor a local identifier/,
    );
  });
});

describe('mssanteSubject', () => {
  it('prefixes the title as MSSanté expects for an XDM message', () => {
    expect(mssanteSubject('Lettre de liaison')).toBe('XDM/1.0/DDM+Lettre de liaison');
  });
});
