import { createHash } from 'node:crypto';
import type { Binary, Bundle, DocumentReference, List } from '@medplum/fhirtypes';
import type { Submission } from '../../documents/document.model';
import { buildProvideBundle, isProvideBundle, MHD_PROFILES, validateProvideBundle } from './mhd.builder';

const LETTER = Buffer.from('Lettre de liaison\nCompte rendu de séjour.\n', 'utf8');

function submission(over: Partial<Submission> = {}): Submission {
  return {
    uniqueId: '1.2.250.1.999.1.1.20261120',
    entryUuid: 'urn:uuid:11111111-1111-4111-8111-111111111111',
    sourceId: '1.2.250.1.999.1',
    submissionTime: '2026-11-20T09:30:00Z',
    title: 'Sortie du 20/11/2026',
    intendedRecipients: [{ email: 'dr.martin@medecin.mssante.fr', rpps: '10001234567' }],
    patient: {
      ins: { value: '281057512345678', oid: '1.2.250.1.213.1.4.10' },
      local: { value: 'IPP123', system: 'urn:oid:1.2.250.1.999.2' },
    },
    author: { organization: { name: 'CH de Test', finess: '750000001' } },
    documents: [
      {
        uniqueId: '1.2.250.1.999.1.2.1',
        entryUuid: 'urn:uuid:22222222-2222-4222-8222-222222222222',
        title: 'Lettre de liaison',
        typeCode: { system: 'http://loinc.org', code: '11490-0' },
        classCode: { system: 'urn:oid:1.2.250.1.213.1.1.4.1', code: '10' },
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
        hiddenFromPatient: true,
        replaces: '1.2.250.1.999.1.2.0',
      },
    ],
    ...over,
  };
}

/** A deep copy that a test can tamper with. */
function bundle(): Bundle {
  return JSON.parse(JSON.stringify(buildProvideBundle(submission(), {}))) as Bundle;
}

function docRef(b: Bundle): DocumentReference {
  return b.entry![1].resource as DocumentReference;
}

function issuesOf(b: unknown): { expression: string; diagnostics: string }[] {
  const r = validateProvideBundle(b);
  return r.ok ? [] : r.issues;
}

describe('buildProvideBundle', () => {
  it('builds a comprehensive ITI-65 transaction with a SubmissionSet, a DocumentReference and its Binary', () => {
    const b = buildProvideBundle(submission(), {});
    expect(b.type).toBe('transaction');
    expect(b.meta?.profile).toEqual([MHD_PROFILES.bundle]);
    expect(b.entry!.map((e) => [e.resource?.resourceType, e.request?.method, e.request?.url])).toEqual([
      ['List', 'POST', 'List'],
      ['DocumentReference', 'POST', 'DocumentReference'],
      ['Binary', 'POST', 'Binary'],
    ]);
    expect(
      b.entry!.every((e) =>
        /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(e.fullUrl ?? ''),
      ),
    ).toBe(true);
    const list = b.entry![0].resource as List;
    expect(list.code?.coding?.[0]).toEqual({
      system: 'https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes',
      code: 'submissionset',
    });
    expect(list.identifier).toEqual([
      { use: 'usual', system: 'urn:ietf:rfc:3986', value: 'urn:oid:1.2.250.1.999.1.1.20261120' },
      { use: 'official', system: 'urn:ietf:rfc:3986', value: 'urn:uuid:11111111-1111-4111-8111-111111111111' },
    ]);
    expect(list.entry).toEqual([{ item: { reference: b.entry![1].fullUrl } }]);
    expect(validateProvideBundle(b)).toEqual({
      ok: true,
      submission: {
        listIndex: 0,
        documents: [{ index: 1, masterIdentifier: 'urn:oid:1.2.250.1.999.1.2.1', binaryIndex: 2 }],
      },
    });
  });

  it('describes the document with PDSm metadata: INS subject, base64 SHA-1, size, security labels, replaces', () => {
    const b = buildProvideBundle(submission(), {});
    const d = docRef(b);
    expect(d.subject).toEqual({ identifier: { system: 'urn:oid:1.2.250.1.213.1.4.10', value: '281057512345678' } });
    expect(d.content![0].attachment).toMatchObject({
      contentType: 'text/plain',
      language: 'fr-FR',
      url: b.entry![2].fullUrl,
      size: LETTER.length,
      hash: createHash('sha1').update(LETTER).digest('base64'),
    });
    expect(d.securityLabel!.map((l) => l.coding![0].code)).toEqual(['N', 'INVISIBLE_PATIENT']);
    expect(d.relatesTo).toEqual([
      {
        code: 'replaces',
        target: { identifier: { system: 'urn:ietf:rfc:3986', value: 'urn:oid:1.2.250.1.999.1.2.0' } },
      },
    ]);
    expect(d.context?.period).toEqual({ start: '2026-11-18T08:00:00+01:00', end: '2026-11-20T10:00:00+01:00' });
    expect((b.entry![2].resource as Binary).data).toBe(LETTER.toString('base64'));
  });

  it('uses the given patient reference as subject', () => {
    const d = docRef(buildProvideBundle(submission(), { patientReference: 'Patient/42' }));
    expect(d.subject).toEqual({ reference: 'Patient/42' });
  });

  it('is deterministic', () => {
    expect(JSON.stringify(buildProvideBundle(submission(), {}))).toBe(
      JSON.stringify(buildProvideBundle(submission(), {})),
    );
  });
});

describe('validateProvideBundle', () => {
  it('reports a wrong hash at the attachment hash', () => {
    const b = bundle();
    docRef(b).content![0].attachment.hash = createHash('sha1').update('other').digest('base64');
    expect(issuesOf(b)).toEqual([
      {
        expression: 'Bundle.entry[1].resource.content[0].attachment.hash',
        diagnostics: 'hash is not the base64 SHA-1 of the document bytes',
      },
    ]);
  });

  it('reports a wrong size at the attachment size', () => {
    const b = bundle();
    docRef(b).content![0].attachment.size = 3;
    expect(issuesOf(b)).toEqual([
      {
        expression: 'Bundle.entry[1].resource.content[0].attachment.size',
        diagnostics: `size 3 does not match the ${LETTER.length} bytes of the document`,
      },
    ]);
  });

  it('reports a missing SubmissionSet List', () => {
    const b = bundle();
    b.entry!.splice(0, 1);
    expect(issuesOf(b)).toEqual([
      { expression: 'Bundle.entry', diagnostics: 'no List with code submissionset (the SubmissionSet is missing)' },
    ]);
  });

  it('reports an attachment whose Binary is not in the bundle', () => {
    const b = bundle();
    b.entry!.splice(2, 1);
    expect(issuesOf(b)).toEqual([
      {
        expression: 'Bundle.entry[1].resource.content[0].attachment.url',
        diagnostics: 'url does not match the fullUrl of any entry of the bundle',
      },
    ]);
  });

  it('reports a bundle that is not a transaction', () => {
    const b = bundle();
    b.type = 'batch';
    expect(issuesOf(b)).toEqual([
      { expression: 'Bundle.type', diagnostics: 'Bundle.type must be transaction (got "batch")' },
    ]);
  });

  it('reports a DocumentReference the SubmissionSet does not list, a missing uniqueId and a PUT entry', () => {
    const b = bundle();
    const list = b.entry![0].resource as List;
    list.entry = [];
    list.identifier = list.identifier!.filter((i) => i.use !== 'usual');
    b.entry![2].request = { method: 'PUT', url: 'Binary/x' };
    expect(issuesOf(b).map((i) => i.expression)).toEqual([
      'Bundle.entry[2].request.method',
      'Bundle.entry[0].resource.identifier',
      'Bundle.entry[0].resource.entry',
    ]);
  });

  it('reports missing required DocumentReference elements', () => {
    const b = bundle();
    const d = docRef(b);
    delete d.masterIdentifier;
    delete d.type;
    delete d.subject;
    expect(issuesOf(b).map((i) => i.expression)).toEqual([
      'Bundle.entry[1].resource.masterIdentifier',
      'Bundle.entry[1].resource.type',
      'Bundle.entry[1].resource.subject',
    ]);
  });

  it('accepts inline data instead of a Binary', () => {
    const b = bundle();
    const att = docRef(b).content![0].attachment;
    delete att.url;
    att.data = LETTER.toString('base64');
    b.entry!.splice(2, 1);
    const r = validateProvideBundle(b);
    expect(r).toEqual({
      ok: true,
      submission: {
        listIndex: 0,
        documents: [{ index: 1, masterIdentifier: 'urn:oid:1.2.250.1.999.1.2.1', binaryIndex: -1 }],
      },
    });
  });

  it('never throws on junk and keeps patient data out of the messages', () => {
    for (const junk of [
      null,
      42,
      'x',
      [],
      { resourceType: 'Bundle' },
      {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [null, 1, { resource: { resourceType: 'DocumentReference', content: 'x' } }],
      },
    ]) {
      expect(validateProvideBundle(junk).ok).toBe(false);
    }
    const b = bundle();
    docRef(b).content![0].attachment.size = 1;
    expect(JSON.stringify(issuesOf(b))).not.toMatch(/281057512345678|IPP123/);
  });
});

describe('isProvideBundle', () => {
  it('recognises a transaction with a SubmissionSet List and nothing else', () => {
    expect(isProvideBundle(buildProvideBundle(submission(), {}))).toBe(true);
    expect(
      isProvideBundle({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ resource: { resourceType: 'Patient' } }],
      }),
    ).toBe(false);
    expect(isProvideBundle({ ...bundle(), type: 'batch' })).toBe(false);
    expect(isProvideBundle(undefined)).toBe(false);
  });
});
