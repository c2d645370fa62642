import { createHash } from 'node:crypto';
import JSZip from 'jszip';
import type { Coding } from '@medplum/fhirtypes';
import { IDNATPS } from '@gw/fhir';
import type { DocumentAuthor, DocumentPatient, ExchangeDocument, Submission } from '../../documents/document.model';

/** Name of the attachment that carries the XDM package in an MSSanté message (DOMAIN §6). */
export const XDM_ZIP_NAME = 'IHE_XDM.ZIP';

/** ITI TF-1 §16 / MSSanté: subject of a message carrying an XDM package. */
export function mssanteSubject(title: string): string {
  return `XDM/1.0/DDM+${title.replace(/[\r\n]+/g, ' ')}`;
}

/** ASIP/ANS confidentiality codes (DMP visibility); OID not checked against the CI-SIS volet. */
export const DMP_CONFIDENTIALITY_OID = '1.2.250.1.213.1.1.4.13';
/** Default XDS healthcareFacilityTypeCode (ANS JDV_J02, TRE_R02 SA01 "Etablissement public de santé"; unchecked). */
export const DEFAULT_FACILITY_TYPE: Coding = {
  system: 'urn:oid:1.2.250.1.71.4.2.4',
  code: 'SA01',
  display: 'Etablissement public de santé',
};
/** Default XDS practiceSettingCode (ANS JDV_J04 "ETABLISSEMENT"; unchecked). */
export const DEFAULT_PRACTICE_SETTING: Coding = {
  system: 'urn:oid:1.2.250.1.213.1.1.4.9',
  code: 'ETABLISSEMENT',
  display: 'Etablissement de santé',
};

const IDNATPS_OID = IDNATPS.slice('urn:oid:'.length);
const IDNATSTRUCT_OID = '1.2.250.1.71.4.2.2';
const CONFIDENTIALITY_OID = '2.16.840.1.113883.5.25';
const NS_LCM = 'urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0';
const NS_RIM = 'urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0';

/** ITI TF-3 §4.2.5 (Table 4.2.5-1): classification and identification scheme UUIDs. */
const XDS = {
  docEntryType: 'urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1',
  docAuthor: 'urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d',
  docClassCode: 'urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a',
  docConfidentiality: 'urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f',
  docFormatCode: 'urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d',
  docFacilityType: 'urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1',
  docPracticeSetting: 'urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead',
  docTypeCode: 'urn:uuid:f0306f51-975f-434e-a61c-c59651d33983',
  docPatientId: 'urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427',
  docUniqueId: 'urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab',
  submissionSet: 'urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd',
  ssAuthor: 'urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d',
  ssContentType: 'urn:uuid:aa543740-bdda-424e-8c96-df4873be8500',
  ssPatientId: 'urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446',
  ssSourceId: 'urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832',
  ssUniqueId: 'urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8',
} as const;

/** FHIR code system URIs whose XDS codingScheme is an OID. */
const SCHEME_OIDS: Record<string, string> = {
  'http://loinc.org': '2.16.840.1.113883.6.1',
  'http://snomed.info/sct': '2.16.840.1.113883.6.96',
  'http://terminology.hl7.org/CodeSystem/v3-Confidentiality': CONFIDENTIALITY_OID,
  'http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode': '1.3.6.1.4.1.19376.1.2.3',
};

/**
 * Builds the IHE XDM package (ITI TF-1 §16, ITI TF-3 §4.2 ebRIM metadata) that MSSanté attaches as
 * `IHE_XDM.ZIP`: INDEX.HTM, README.TXT, IHE_XDM/SUBSET01/METADATA.XML and the documents.
 * Deterministic: every entry is dated with the submission time, so the same Submission gives the
 * same bytes. Throws a RangeError on an invalid date and an Error when the patient has no identifier.
 */
export async function buildXdmZip(s: Submission): Promise<Buffer> {
  const date = parseDate(s.submissionTime, 'submissionTime');
  const zip = new JSZip();
  // Folders first, with a fixed date: jszip would otherwise create them dated "now".
  for (const dir of ['IHE_XDM/', 'IHE_XDM/SUBSET01/']) {
    zip.file(dir, null, { dir: true, date, createFolders: false });
  }
  const add = (name: string, data: Buffer): void => {
    zip.file(name, data, { date, createFolders: false, binary: true });
  };
  add('INDEX.HTM', Buffer.from(indexHtm(s), 'utf8'));
  add('README.TXT', Buffer.from(readmeTxt(s), 'utf8'));
  add('IHE_XDM/SUBSET01/METADATA.XML', Buffer.from(buildXdmMetadata(s), 'utf8'));
  for (const d of s.documents) {
    add(`IHE_XDM/SUBSET01/${d.fileName}`, d.data);
  }
  return zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE', platform: 'DOS' });
}

/** METADATA.XML: an ebRIM SubmitObjectsRequest (ITI TF-3 §4.2.1, XDM §4.2.1.5 media). */
export function buildXdmMetadata(s: Submission): string {
  const patientId = xdsPatientId(s.patient);
  const objects = [
    ...s.documents.map((d, i) => documentEntry(d, i, s, patientId)),
    submissionSetPackage(s, patientId),
    ...s.documents.map((d, i) => association(s.entryUuid, d.entryUuid, i)),
  ];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<lcm:SubmitObjectsRequest xmlns:lcm="${NS_LCM}" xmlns:rim="${NS_RIM}">`,
    '<rim:RegistryObjectList>',
    ...objects,
    '</rim:RegistryObjectList>',
    '</lcm:SubmitObjectsRequest>',
    '',
  ].join('\n');
}

function documentEntry(d: ExchangeDocument, i: number, s: Submission, patientId: string): string {
  const id = d.entryUuid;
  const cl = (scheme: string, c: Coding, n: string): string => codedClassification(scheme, id, c, `cl-doc${i}-${n}`);
  const confidentiality = [
    cl(XDS.docConfidentiality, { system: CONFIDENTIALITY_OID, code: d.confidentiality }, 'conf'),
  ];
  if (d.hiddenFromPatient) {
    // DMP visibility rides on a second confidentialityCode (CI-SIS volet DMP).
    confidentiality.push(
      cl(
        XDS.docConfidentiality,
        { system: DMP_CONFIDENTIALITY_OID, code: 'INVISIBLE_PATIENT', display: 'Non visible par le patient' },
        'conf-hidden',
      ),
    );
  }
  return [
    `<rim:ExtrinsicObject id="${attr(id)}" mimeType="${attr(d.contentType)}" objectType="${XDS.docEntryType}">`,
    ...documentSlots(d, s.patient),
    name(d.title),
    authorClassification(XDS.docAuthor, id, s.author, `cl-doc${i}-author`),
    cl(XDS.docClassCode, d.classCode, 'class'),
    ...confidentiality,
    cl(XDS.docFormatCode, d.formatCode, 'format'),
    cl(XDS.docFacilityType, d.facilityType ?? DEFAULT_FACILITY_TYPE, 'facility'),
    cl(XDS.docPracticeSetting, d.practiceSetting ?? DEFAULT_PRACTICE_SETTING, 'practice'),
    cl(XDS.docTypeCode, d.typeCode, 'type'),
    externalId(XDS.docPatientId, id, patientId, 'XDSDocumentEntry.patientId', `ei-doc${i}-patient`),
    externalId(XDS.docUniqueId, id, xdsUniqueId(d.uniqueId), 'XDSDocumentEntry.uniqueId', `ei-doc${i}-unique`),
    '</rim:ExtrinsicObject>',
  ].join('\n');
}

function documentSlots(d: ExchangeDocument, p: DocumentPatient): string[] {
  const slots = [
    slot('creationTime', [hl7Ts(d.creationTime, 'creationTime')]),
    slot('hash', [createHash('sha1').update(d.data).digest('hex')]),
    slot('languageCode', ['fr-FR']),
  ];
  if (d.serviceStart) {
    slots.push(slot('serviceStartTime', [hl7Ts(d.serviceStart, 'serviceStart')]));
  }
  if (d.serviceEnd) {
    slots.push(slot('serviceStopTime', [hl7Ts(d.serviceEnd, 'serviceEnd')]));
  }
  slots.push(
    slot('size', [String(d.data.length)]),
    slot('sourcePatientId', [sourcePatientId(p)]),
    slot('sourcePatientInfo', sourcePatientInfo(p)),
    slot('URI', [d.fileName]),
  );
  return slots;
}

function submissionSetPackage(s: Submission, patientId: string): string {
  const id = s.entryUuid;
  const recipients = s.intendedRecipients.map(intendedRecipient).filter((r) => r !== '||');
  const contentType = s.contentType ?? s.documents[0]?.typeCode;
  return [
    `<rim:RegistryPackage id="${attr(id)}">`,
    slot('submissionTime', [hl7Ts(s.submissionTime, 'submissionTime')]),
    ...(recipients.length > 0 ? [slot('intendedRecipient', recipients)] : []),
    name(s.title),
    authorClassification(XDS.ssAuthor, id, s.author, 'cl-ss-author'),
    ...(contentType ? [codedClassification(XDS.ssContentType, id, contentType, 'cl-ss-content')] : []),
    `<rim:Classification id="cl-ss-node" classifiedObject="${attr(id)}" classificationNode="${XDS.submissionSet}"/>`,
    externalId(XDS.ssUniqueId, id, xdsUniqueId(s.uniqueId), 'XDSSubmissionSet.uniqueId', 'ei-ss-unique'),
    externalId(XDS.ssSourceId, id, xdsUniqueId(s.sourceId), 'XDSSubmissionSet.sourceId', 'ei-ss-source'),
    externalId(XDS.ssPatientId, id, patientId, 'XDSSubmissionSet.patientId', 'ei-ss-patient'),
    '</rim:RegistryPackage>',
  ].join('\n');
}

function association(ssId: string, docId: string, i: number): string {
  return [
    `<rim:Association id="as-${i}" associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember" sourceObject="${attr(ssId)}" targetObject="${attr(docId)}">`,
    slot('SubmissionSetStatus', ['Original']),
    '</rim:Association>',
  ].join('\n');
}

function authorClassification(scheme: string, objectId: string, a: DocumentAuthor, id: string): string {
  const slots = [slot('authorInstitution', [xon(a.organization)])];
  if (a.person && (a.person.rpps || a.person.family)) {
    slots.push(slot('authorPerson', [xcn(a.person)]));
  }
  // ITI TF-3 §4.2.3.1.4: author is a Classification with an empty nodeRepresentation.
  return [
    `<rim:Classification id="${id}" classificationScheme="${scheme}" classifiedObject="${attr(objectId)}" nodeRepresentation="">`,
    ...slots,
    '</rim:Classification>',
  ].join('\n');
}

function codedClassification(scheme: string, objectId: string, c: Coding, id: string): string {
  return [
    `<rim:Classification id="${id}" classificationScheme="${scheme}" classifiedObject="${attr(objectId)}" nodeRepresentation="${attr(c.code ?? '')}">`,
    slot('codingScheme', [codingScheme(c.system)]),
    name(c.display ?? c.code ?? ''),
    '</rim:Classification>',
  ].join('\n');
}

function externalId(scheme: string, objectId: string, value: string, label: string, id: string): string {
  return [
    `<rim:ExternalIdentifier id="${id}" identificationScheme="${scheme}" registryObject="${attr(objectId)}" value="${attr(value)}">`,
    name(label),
    '</rim:ExternalIdentifier>',
  ].join('\n');
}

function slot(slotName: string, values: string[]): string {
  const list = values.map((v) => `<rim:Value>${text(v)}</rim:Value>`).join('');
  return `<rim:Slot name="${attr(slotName)}"><rim:ValueList>${list}</rim:ValueList></rim:Slot>`;
}

function name(value: string): string {
  return `<rim:Name><rim:LocalizedString xml:lang="fr-FR" charset="UTF-8" value="${attr(value)}"/></rim:Name>`;
}

/** XDS patientId (ITI TF-3 §4.2.3.2.16): the qualified INS with its OID, else the local id. */
export function xdsPatientId(p: DocumentPatient): string {
  if (p.ins) {
    return `${hl7(p.ins.value)}^^^&${bareOid(p.ins.oid)}&ISO`;
  }
  if (p.local) {
    return localCx(p.local);
  }
  throw new Error('Submission patient has neither an INS nor a local identifier');
}

/** sourcePatientId is the id at the source (the IPP) when known. */
function sourcePatientId(p: DocumentPatient): string {
  return p.local ? localCx(p.local) : xdsPatientId(p);
}

function localCx(local: { value: string; system: string }): string {
  const oid = asOid(local.system);
  // HL7 table 0301: an assigning authority that is not an OID is given as a URI.
  return oid ? `${hl7(local.value)}^^^&${oid}&ISO` : `${hl7(local.value)}^^^&${hl7(local.system)}&URI`;
}

/** ITI TF-3 §4.2.3.2.23: PID-3, PID-5, PID-7, PID-8; the only place names and birth date appear. */
function sourcePatientInfo(p: DocumentPatient): string[] {
  const ids = [
    p.ins ? `${xdsPatientId({ ins: p.ins })}^INS` : undefined,
    p.local ? `${localCx(p.local)}^PI` : undefined,
  ].filter((v): v is string => !!v);
  const out = [`PID-3|${ids.join('~')}`];
  if (p.family || p.given) {
    out.push(`PID-5|${hl7(p.family ?? '')}^${hl7(p.given ?? '')}^^^^^L`);
  }
  if (p.birthDate) {
    out.push(`PID-7|${p.birthDate.replace(/-/g, '').slice(0, 8)}`);
  }
  if (p.gender) {
    out.push(`PID-8|${{ male: 'M', female: 'F', other: 'O', unknown: 'U' }[p.gender]}`);
  }
  return out;
}

/** XON with the IdNatStruct (1 + FINESS), as the CI-SIS expects for authorInstitution. */
function xon(org: DocumentAuthor['organization']): string {
  return org.finess ? `${hl7(org.name)}^^^^^&${IDNATSTRUCT_OID}&ISO^IDNST^^^1${hl7(org.finess)}` : hl7(org.name);
}

/** XCN with the IdNatPS (8 + RPPS) when the RPPS is known. */
function xcn(p: NonNullable<DocumentAuthor['person']>): string {
  const names = `${hl7(p.family ?? '')}^${hl7(p.given ?? '')}`;
  return p.rpps ? `8${hl7(p.rpps)}^${names}^^^^^^&${IDNATPS_OID}&ISO^D^^^IDNPS` : `^${names}`;
}

/** ITI TF-3 §4.2.3.3.6 intendedRecipient: XON|XCN|XTN; an MSSanté mailbox is an Internet XTN. */
function intendedRecipient(r: Submission['intendedRecipients'][number]): string {
  const person = r.rpps ? xcn({ rpps: r.rpps, family: r.display }) : r.display ? `^${hl7(r.display)}` : '';
  const telecom = r.email ? `^^Internet^${hl7(r.email)}` : '';
  return `|${person}|${telecom}`;
}

function codingScheme(system: string | undefined): string {
  if (!system) {
    return '';
  }
  return SCHEME_OIDS[system] ?? asOid(system) ?? system;
}

/** XDS uniqueIds are bare OIDs; a urn:uuid is kept as is. */
function xdsUniqueId(id: string): string {
  return asOid(id) ?? id;
}

function asOid(value: string): string | undefined {
  const m = /^(?:urn:oid:)?([0-2](?:\.\d+)+)$/.exec(value);
  return m ? m[1] : undefined;
}

function bareOid(value: string): string {
  return value.replace(/^urn:oid:/, '');
}

function parseDate(iso: string, field: string): Date {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) {
    throw new RangeError(`Invalid date in ${field}`);
  }
  return d;
}

/** HL7 DTM in UTC (ITI TF-3 §4.2.3.1.5); a plain date stays a date. */
function hl7Ts(iso: string, field: string): string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) {
    return iso.replace(/-/g, '');
  }
  return parseDate(iso, field).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/** HL7 v2 escaping of the delimiters used inside slot values. */
function hl7(v: string): string {
  return v
    .replace(/\\/g, '\\E\\')
    .replace(/\|/g, '\\F\\')
    .replace(/\^/g, '\\S\\')
    .replace(/&/g, '\\T\\')
    .replace(/~/g, '\\R\\');
}

// eslint-disable-next-line no-control-regex
const XML_INVALID = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

function text(v: string): string {
  return v.replace(XML_INVALID, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function attr(v: string): string {
  return text(v)
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
    .replace(/\r/g, '&#13;')
    .replace(/\n/g, '&#10;')
    .replace(/\t/g, '&#9;');
}

/** XDM INDEX.HTM (ITI TF-1 §16.1.1): what the media holds, without any patient data. */
function indexHtm(s: Submission): string {
  const items = s.documents.map(
    (d) => `<li><a href="IHE_XDM/SUBSET01/${attr(d.fileName)}">${text(d.title)}</a> (${text(d.contentType)})</li>`,
  );
  return [
    '<!DOCTYPE html>',
    '<html lang="fr"><head><meta charset="utf-8"><title>IHE XDM</title></head><body>',
    `<h1>${text(s.title)}</h1>`,
    '<p>Contenu IHE XDM : <a href="IHE_XDM/SUBSET01/METADATA.XML">IHE_XDM/SUBSET01/METADATA.XML</a></p>',
    `<ul>${items.join('')}</ul>`,
    '<p><a href="README.TXT">README.TXT</a></p>',
    '</body></html>',
    '',
  ].join('\r\n');
}

/** XDM README.TXT (ITI TF-1 §16.1.1): who produced the media. */
function readmeTxt(s: Submission): string {
  return [
    'IHE XDM package',
    'Produced by: fhir-gateway-fr (open-source FHIR R4 gateway for French primary care)',
    `Source (XDS sourceId): ${bareOid(s.sourceId)}`,
    `Author institution: ${s.author.organization.name}${s.author.organization.finess ? ` (FINESS ${s.author.organization.finess})` : ''}`,
    `Submission time (UTC): ${parseDate(s.submissionTime, 'submissionTime').toISOString()}`,
    `Documents: ${s.documents.length}`,
    'Metadata: IHE_XDM/SUBSET01/METADATA.XML',
    '',
  ].join('\r\n');
}
