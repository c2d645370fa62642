import { createHash } from 'node:crypto';
import { IDNATPS } from '@gw/fhir';
import { nameUuid } from '@gw/platform';
import type {
  Binary,
  Bundle,
  BundleEntry,
  Coding,
  DocumentReference,
  Identifier,
  List,
  Organization,
  Patient,
  Practitioner,
  Reference,
  Resource,
} from '@medplum/fhirtypes';
import type { ExchangeDocument, Submission } from '../../documents/document.model';
import { FINESS, RPPS } from '../../exchange.codes';
import { DEFAULT_FACILITY_TYPE, DEFAULT_PRACTICE_SETTING, DMP_CONFIDENTIALITY_OID } from '../mss/xdm.builder';

const MHD = 'https://profiles.ihe.net/ITI/MHD/StructureDefinition';
/** MHD 4.x comprehensive metadata profiles (ITI-65). */
export const MHD_PROFILES = {
  bundle: `${MHD}/IHE.MHD.Comprehensive.ProvideBundle`,
  submissionSet: `${MHD}/IHE.MHD.Comprehensive.SubmissionSet`,
  documentReference: `${MHD}/IHE.MHD.Comprehensive.DocumentReference`,
} as const;
const LIST_TYPES = 'https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes';
const URI = 'urn:ietf:rfc:3986';
const CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';

/** Options of {@link buildProvideBundle}. */
export interface ProvideBundleOptions {
  /** Reference to the patient on the recipient (e.g. `Patient/123` or an absolute URL); else a logical INS reference. */
  patientReference?: string;
}

/**
 * Builds an IHE MHD ITI-65 Provide Document Bundle (MHD 4.x comprehensive metadata, ANS PDSm
 * constraints of DOMAIN §5): one SubmissionSet List, and per document a DocumentReference and the
 * Binary it points to. fullUrls are name-based UUIDs of the uniqueIds, so the bundle is deterministic.
 */
export function buildProvideBundle(s: Submission, opts: ProvideBundleOptions = {}): Bundle {
  const subject = patientSubject(s, opts.patientReference);
  const docs = s.documents.map((d) => ({
    doc: d,
    refUrl: urnUuid(`docref|${d.uniqueId}`),
    binUrl: urnUuid(`binary|${d.uniqueId}`),
  }));
  const entries: BundleEntry[] = [
    entry(
      urnUuid(`submissionset|${s.uniqueId}`),
      submissionSetList(
        s,
        subject,
        docs.map((d) => d.refUrl),
      ),
    ),
  ];
  for (const { doc, refUrl, binUrl } of docs) {
    entries.push(entry(refUrl, documentReference(doc, s, subject, binUrl)));
    entries.push(
      entry(binUrl, {
        resourceType: 'Binary',
        contentType: doc.contentType,
        data: doc.data.toString('base64'),
      } satisfies Binary),
    );
  }
  return {
    resourceType: 'Bundle',
    meta: { profile: [MHD_PROFILES.bundle] },
    type: 'transaction',
    timestamp: s.submissionTime,
    entry: entries,
  };
}

function entry(fullUrl: string, resource: Resource): BundleEntry {
  return { fullUrl, resource, request: { method: 'POST', url: resource.resourceType } };
}

function submissionSetList(s: Submission, subject: Reference<Patient>, items: string[]): List {
  const contentType = s.contentType ?? s.documents[0]?.typeCode;
  const extension: NonNullable<List['extension']> = [];
  if (contentType) {
    extension.push({ url: `${MHD}/ihe-designationType`, valueCodeableConcept: { coding: [contentType] } });
  }
  extension.push({ url: `${MHD}/ihe-sourceId`, valueIdentifier: { system: URI, value: urn(s.sourceId) } });
  const recipients = s.intendedRecipients.map((r, i) => recipientResource(r, `recipient-${i + 1}`));
  for (const r of recipients) {
    extension.push({ url: `${MHD}/ihe-intendedRecipient`, valueReference: { reference: `#${r.id ?? ''}` } });
  }
  // MHD 4.2 (ihe-authorOrg): an Organization author goes in an extension; a person in List.source.
  extension.push({ url: `${MHD}/ihe-authorOrg`, valueReference: { reference: '#author-org' } });
  return {
    resourceType: 'List',
    meta: { profile: [MHD_PROFILES.submissionSet] },
    contained: [...authorResources(s), ...recipients],
    extension,
    // MHD 4.2: entryUUID carries use official, uniqueId use usual.
    identifier: [
      { use: 'usual', system: URI, value: urn(s.uniqueId) },
      { use: 'official', system: URI, value: s.entryUuid },
    ],
    status: 'current',
    mode: 'working',
    title: s.title,
    code: { coding: [{ system: LIST_TYPES, code: 'submissionset' }] },
    subject,
    date: s.submissionTime,
    ...(s.author.person ? { source: { reference: '#author-person' } } : {}),
    entry: items.map((reference) => ({ item: { reference } })),
  };
}

type Recipient = Submission['intendedRecipients'][number];

/** ihe-intendedRecipient: a contained Practitioner (RPPS), Patient (patient mailbox) or Organization. */
function recipientResource(r: Recipient, id: string): Practitioner | Patient | Organization {
  const telecom = r.email ? [{ system: 'email' as const, value: r.email }] : undefined;
  if (r.rpps) {
    const name = r.display ? [{ text: r.display }] : undefined;
    return {
      resourceType: 'Practitioner',
      id,
      identifier: [
        { system: IDNATPS, value: `8${r.rpps}` },
        { system: RPPS, value: r.rpps },
      ],
      ...(name ? { name } : {}),
      ...(telecom ? { telecom } : {}),
    };
  }
  if (r.email && /@patient\.mssante\.fr$/i.test(r.email)) {
    // DOMAIN §6: the patient's own mailbox; no name here, it is in the document.
    return { resourceType: 'Patient', id, telecom };
  }
  return {
    resourceType: 'Organization',
    id,
    ...(r.display ? { name: r.display } : {}),
    ...(telecom ? { telecom } : {}),
  };
}

function authorResources(s: Submission): (Organization | Practitioner)[] {
  const org = s.author.organization;
  const out: (Organization | Practitioner)[] = [
    {
      resourceType: 'Organization',
      id: 'author-org',
      ...(org.finess ? { identifier: [{ system: FINESS, value: org.finess }] } : {}),
      name: org.name,
    },
  ];
  const p = s.author.person;
  if (p) {
    const ids: Identifier[] = p.rpps
      ? [
          { system: IDNATPS, value: `8${p.rpps}` },
          { system: RPPS, value: p.rpps },
        ]
      : [];
    const name = p.family || p.given ? [{ family: p.family, ...(p.given ? { given: [p.given] } : {}) }] : undefined;
    out.push({
      resourceType: 'Practitioner',
      id: 'author-person',
      ...(ids.length ? { identifier: ids } : {}),
      ...(name ? { name } : {}),
    });
  }
  return out;
}

function documentReference(
  d: ExchangeDocument,
  s: Submission,
  subject: Reference<Patient>,
  binaryUrl: string,
): DocumentReference {
  return {
    resourceType: 'DocumentReference',
    meta: { profile: [MHD_PROFILES.documentReference] },
    contained: authorResources(s),
    masterIdentifier: { use: 'usual', system: URI, value: urn(d.uniqueId) },
    identifier: [{ use: 'official', system: URI, value: d.entryUuid }],
    status: 'current',
    type: { coding: [d.typeCode] },
    category: [{ coding: [d.classCode] }],
    subject,
    date: d.creationTime,
    author: [{ reference: '#author-org' }, ...(s.author.person ? [{ reference: '#author-person' }] : [])],
    custodian: { reference: '#author-org' },
    ...(d.replaces
      ? { relatesTo: [{ code: 'replaces', target: { identifier: { system: URI, value: urn(d.replaces) } } }] }
      : {}),
    securityLabel: securityLabels(d),
    content: [{ attachment: attachment(d, binaryUrl), format: d.formatCode }],
    context: {
      ...(d.serviceStart || d.serviceEnd
        ? {
            period: {
              ...(d.serviceStart ? { start: d.serviceStart } : {}),
              ...(d.serviceEnd ? { end: d.serviceEnd } : {}),
            },
          }
        : {}),
      facilityType: { coding: [d.facilityType ?? DEFAULT_FACILITY_TYPE] },
      practiceSetting: { coding: [d.practiceSetting ?? DEFAULT_PRACTICE_SETTING] },
    },
  };
}

function attachment(d: ExchangeDocument, url: string): NonNullable<DocumentReference['content']>[number]['attachment'] {
  return {
    contentType: d.contentType,
    language: 'fr-FR',
    url,
    size: d.data.length,
    // FHIR Attachment.hash: base64 of the SHA-1 digest (not the hex form XDS uses).
    hash: createHash('sha1').update(d.data).digest('base64'),
    title: d.title,
    creation: d.creationTime,
  };
}

function securityLabels(d: ExchangeDocument): DocumentReference['securityLabel'] {
  const labels: Coding[] = [{ system: CONFIDENTIALITY, code: d.confidentiality }];
  if (d.hiddenFromPatient) {
    labels.push({
      system: `urn:oid:${DMP_CONFIDENTIALITY_OID}`,
      code: 'INVISIBLE_PATIENT',
      display: 'Non visible par le patient',
    });
  }
  return labels.map((c) => ({ coding: [c] }));
}

/** PDSm: the subject is the patient by qualified INS; a logical reference when no server id is given. */
function patientSubject(s: Submission, reference: string | undefined): Reference<Patient> {
  if (reference) {
    return { reference };
  }
  const p = s.patient;
  if (p.ins) {
    return { identifier: { system: urn(p.ins.oid), value: p.ins.value } };
  }
  if (p.local) {
    return {
      identifier: {
        system: /^[0-2](\.\d+)+$/.test(p.local.system) ? `urn:oid:${p.local.system}` : p.local.system,
        value: p.local.value,
      },
    };
  }
  throw new Error('Submission patient has neither an INS nor a local identifier');
}

/** A name-based UUID as a `urn:uuid:` fullUrl. */
function urnUuid(name: string): string {
  return `urn:uuid:${nameUuid(name)}`;
}

/** An OID as `urn:oid:`; a value already a URN (urn:uuid, urn:oid) is kept. */
function urn(id: string): string {
  return /^[0-2](\.\d+)+$/.test(id) ? `urn:oid:${id}` : id;
}

// ---------------------------------------------------------------------------------------------
// Document Recipient side (ITI-65 §2:3.65.4.1.3): checks made before accepting a bundle.

/** One problem found in a Provide Document Bundle; never carries patient data. */
export interface ProvideBundleIssue {
  /** FHIRPath-like location, e.g. `Bundle.entry[2].resource.content[0].attachment.hash`. */
  expression: string;
  diagnostics: string;
}

/** What {@link validateProvideBundle} found in an acceptable bundle (indexes into Bundle.entry). */
export interface ProvideBundleSummary {
  listIndex: number;
  /** One per DocumentReference; binaryIndex is -1 when the content is inline (attachment.data). */
  documents: { index: number; masterIdentifier: string; binaryIndex: number }[];
}

export type ProvideBundleValidation =
  { ok: true; submission: ProvideBundleSummary } | { ok: false; issues: ProvideBundleIssue[] };

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function objAt(v: unknown, key: string): Obj | undefined {
  const x = isObj(v) ? v[key] : undefined;
  return isObj(x) ? x : undefined;
}

function strAt(v: unknown, key: string): string | undefined {
  const x = isObj(v) ? v[key] : undefined;
  return typeof x === 'string' && x.length > 0 ? x : undefined;
}

function arrAt(v: unknown, key: string): unknown[] {
  const x = isObj(v) ? v[key] : undefined;
  return Array.isArray(x) ? x : [];
}

function hasSubmissionSetCode(resource: unknown): boolean {
  return arrAt(objAt(resource, 'code'), 'coding').some(
    (c) => strAt(c, 'code') === 'submissionset' && (strAt(c, 'system') ?? LIST_TYPES) === LIST_TYPES,
  );
}

/** Cheap test: a transaction Bundle holding a SubmissionSet List, so the MHD rules apply. */
export function isProvideBundle(bundle: unknown): boolean {
  if (strAt(bundle, 'resourceType') !== 'Bundle' || strAt(bundle, 'type') !== 'transaction') {
    return false;
  }
  return arrAt(bundle, 'entry').some((e) => {
    const r = objAt(e, 'resource');
    return strAt(r, 'resourceType') === 'List' && hasSubmissionSetCode(r);
  });
}

/**
 * The checks an MHD Document Recipient makes on an ITI-65 bundle before accepting it: transaction
 * type, one SubmissionSet List with a uniqueId, DocumentReferences with the required metadata,
 * content pointing to a Binary of the bundle (or inline) whose size and SHA-1 match, the List
 * listing every DocumentReference, POST on every entry. Never throws.
 */
export function validateProvideBundle(bundle: unknown): ProvideBundleValidation {
  const issues: ProvideBundleIssue[] = [];
  const issue = (expression: string, diagnostics: string): void => {
    issues.push({ expression, diagnostics });
  };
  if (strAt(bundle, 'resourceType') !== 'Bundle') {
    issue('Bundle', 'the body is not a FHIR Bundle');
    return { ok: false, issues };
  }
  if (strAt(bundle, 'type') !== 'transaction') {
    issue('Bundle.type', `Bundle.type must be transaction (got ${JSON.stringify(strAt(bundle, 'type') ?? null)})`);
  }
  const entries = arrAt(bundle, 'entry');
  entries.forEach((e, i) => checkRequest(e, i, issue));
  const listIndex = checkSubmissionSet(entries, issue);
  const documents = checkDocumentReferences(entries, issue);
  if (listIndex >= 0) {
    checkListEntries(entries, listIndex, documents, issue);
  }
  return issues.length > 0 || listIndex < 0
    ? { ok: false, issues }
    : { ok: true, submission: { listIndex, documents } };
}

type IssueFn = (expression: string, diagnostics: string) => void;

function checkRequest(e: unknown, i: number, issue: IssueFn): void {
  const method = strAt(objAt(e, 'request'), 'method');
  if (method !== 'POST') {
    issue(
      `Bundle.entry[${i}].request.method`,
      `every entry of a Provide Document Bundle must be a POST (got ${JSON.stringify(method ?? null)})`,
    );
  }
}

function checkSubmissionSet(entries: unknown[], issue: IssueFn): number {
  const lists = entries
    .map((e, i) => ({ r: objAt(e, 'resource'), i }))
    .filter(({ r }) => strAt(r, 'resourceType') === 'List' && hasSubmissionSetCode(r));
  if (lists.length !== 1) {
    issue(
      'Bundle.entry',
      lists.length === 0
        ? 'no List with code submissionset (the SubmissionSet is missing)'
        : `${lists.length} SubmissionSet Lists found, exactly one is allowed`,
    );
    return -1;
  }
  const { r, i } = lists[0];
  const ids = arrAt(r, 'identifier');
  // MHD 4.2: the uniqueId is the identifier with use usual (or typed uniqueId); an OID or a UUID URN.
  const unique = ids.find(
    (id) =>
      strAt(id, 'use') === 'usual' || arrAt(objAt(id, 'type'), 'coding').some((c) => strAt(c, 'code') === 'uniqueId'),
  );
  if (!unique || !/^urn:(oid|uuid):/.test(strAt(unique, 'value') ?? '')) {
    issue(
      `Bundle.entry[${i}].resource.identifier`,
      'the SubmissionSet has no uniqueId identifier (use usual, value urn:oid: or urn:uuid:)',
    );
  }
  return i;
}

function checkDocumentReferences(entries: unknown[], issue: IssueFn): ProvideBundleSummary['documents'] {
  const docs: ProvideBundleSummary['documents'] = [];
  entries.forEach((e, i) => {
    const r = objAt(e, 'resource');
    if (strAt(r, 'resourceType') === 'DocumentReference') {
      docs.push({
        index: i,
        masterIdentifier: strAt(objAt(r, 'masterIdentifier'), 'value') ?? '',
        binaryIndex: checkDocumentReference(r, i, entries, issue),
      });
    }
  });
  if (docs.length === 0) {
    issue('Bundle.entry', 'no DocumentReference in the bundle');
  }
  return docs;
}

/** Checks one DocumentReference; returns the index of its Binary (-1 inline or unresolved). */
function checkDocumentReference(r: Obj | undefined, i: number, entries: unknown[], issue: IssueFn): number {
  const at = `Bundle.entry[${i}].resource`;
  if (!strAt(objAt(r, 'masterIdentifier'), 'value')) {
    issue(`${at}.masterIdentifier`, 'masterIdentifier (document uniqueId) is missing');
  }
  if (!strAt(r, 'status')) {
    issue(`${at}.status`, 'status is missing');
  }
  const type = objAt(r, 'type');
  if (arrAt(type, 'coding').length === 0 && !strAt(type, 'text')) {
    issue(`${at}.type`, 'type is missing');
  }
  const subject = objAt(r, 'subject');
  if (!strAt(subject, 'reference') && !objAt(subject, 'identifier')) {
    issue(`${at}.subject`, 'subject (the patient) is missing');
  }
  return checkContent(objAt(arrAt(r, 'content')[0], 'attachment'), `${at}.content[0].attachment`, entries, issue);
}

function checkContent(a: Obj | undefined, at: string, entries: unknown[], issue: IssueFn): number {
  if (!a) {
    issue(at, 'content[0].attachment is missing');
    return -1;
  }
  if (!strAt(a, 'contentType')) {
    issue(`${at}.contentType`, 'contentType is missing');
  }
  const resolved = resolveBytes(a, at, entries, issue);
  if (resolved) {
    checkSizeAndHash(a, at, resolved.bytes, issue);
  }
  return resolved?.binaryIndex ?? -1;
}

function resolveBytes(
  a: Obj,
  at: string,
  entries: unknown[],
  issue: IssueFn,
): { bytes: Buffer; binaryIndex: number } | undefined {
  const inline = strAt(a, 'data');
  if (inline !== undefined) {
    return { bytes: Buffer.from(inline, 'base64'), binaryIndex: -1 };
  }
  const url = strAt(a, 'url');
  if (!url) {
    issue(`${at}.url`, 'the attachment has neither url nor data');
    return undefined;
  }
  const index = entries.findIndex((e) => strAt(e, 'fullUrl') === url);
  const target = objAt(entries[index], 'resource');
  if (index < 0 || strAt(target, 'resourceType') !== 'Binary') {
    issue(
      `${at}.url`,
      index < 0
        ? 'url does not match the fullUrl of any entry of the bundle'
        : `url points to Bundle.entry[${index}], which is not a Binary`,
    );
    return undefined;
  }
  const data = strAt(target, 'data');
  if (data === undefined) {
    issue(`Bundle.entry[${index}].resource.data`, 'the Binary has no data');
    return undefined;
  }
  return { bytes: Buffer.from(data, 'base64'), binaryIndex: index };
}

function checkSizeAndHash(a: Obj, at: string, bytes: Buffer, issue: IssueFn): void {
  const size = a.size;
  if (typeof size !== 'number') {
    issue(`${at}.size`, 'size is missing');
  } else if (size !== bytes.length) {
    issue(`${at}.size`, `size ${size} does not match the ${bytes.length} bytes of the document`);
  }
  const hash = strAt(a, 'hash');
  if (!hash) {
    issue(`${at}.hash`, 'hash (SHA-1, base64) is missing');
  } else if (!Buffer.from(hash, 'base64').equals(createHash('sha1').update(bytes).digest())) {
    issue(`${at}.hash`, 'hash is not the base64 SHA-1 of the document bytes');
  }
}

function checkListEntries(
  entries: unknown[],
  listIndex: number,
  docs: ProvideBundleSummary['documents'],
  issue: IssueFn,
): void {
  const listed = new Set(
    arrAt(objAt(entries[listIndex], 'resource'), 'entry').map((x) => strAt(objAt(x, 'item'), 'reference')),
  );
  for (const d of docs) {
    const fullUrl = strAt(entries[d.index], 'fullUrl');
    if (!fullUrl || !listed.has(fullUrl)) {
      issue(
        `Bundle.entry[${listIndex}].resource.entry`,
        `the SubmissionSet does not list the DocumentReference of Bundle.entry[${d.index}]`,
      );
    }
  }
}
