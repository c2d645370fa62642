import type { Coding } from '@medplum/fhirtypes';

/**
 * What the exchange layer sends: one clinical document with the XDS/MHD metadata both channels
 * need (IHE XDM for MSSanté, ITI-65 for the DMP-style record). Built from the stored resources by
 * the routing code; the builders below are pure functions of it.
 */
export interface ExchangeDocument {
  /** XDS uniqueId: an OID (`1.2.250...`) or `urn:uuid:...`; stable across resends of the same delivery. */
  uniqueId: string;
  /** XDS entryUUID (`urn:uuid:...`). */
  entryUuid: string;
  title: string;
  /** Document type (LOINC), e.g. 11490-0 lettre de liaison, 18842-5 for the generated notice. */
  typeCode: Coding;
  /** Class code (XDS classCode, ASIP/ANS JDV_J07 or LOINC). */
  classCode: Coding;
  /** Format code (urn:ihe:iti:xds:2017:mimeTypeSufficient for non-CDA, CDA template otherwise). */
  formatCode: Coding;
  contentType: 'application/pdf' | 'text/plain' | 'text/xml';
  data: Buffer;
  /** File name inside IHE_XDM/SUBSET01 (8.3 upper case, e.g. `DOC0001.TXT`). */
  fileName: string;
  /** ISO date-time of creation. */
  creationTime: string;
  /** Period of care the document covers (the stay). */
  serviceStart?: string;
  serviceEnd?: string;
  /** Confidentiality (HL7 v3 Confidentiality N/R/V). */
  confidentiality: 'N' | 'R' | 'V';
  /** true: XDS "Hidden from the patient" (DMP INVISIBLE_PATIENT). */
  hiddenFromPatient?: boolean;
  /** The document this one replaces (its uniqueId), if any. */
  replaces?: string;
  /** XDS healthcareFacilityTypeCode (ANS JDV_J02); the builders default to a health establishment. */
  facilityType?: Coding;
  /** XDS practiceSettingCode (ANS JDV_J04); the builders default to a generic hospital setting. */
  practiceSetting?: Coding;
}

export interface DocumentPatient {
  /** Qualified INS (NIR or NIA) with its OID, when the identity is qualified. */
  ins?: { value: string; oid: string };
  /** Local identifier at the sending facility (IPP) with its assigning authority OID or system. */
  local?: { value: string; system: string };
  family?: string;
  given?: string;
  birthDate?: string;
  gender?: 'male' | 'female' | 'other' | 'unknown';
}

export interface DocumentAuthor {
  /** The organization that produced the document (the hospital). */
  organization: { name: string; finess?: string };
  /** A person author when known (RPPS). */
  person?: { rpps?: string; family?: string; given?: string };
}

/** One submission: a SubmissionSet with its documents, for one patient. */
export interface Submission {
  /** SubmissionSet uniqueId (OID or urn:uuid), deterministic from the delivery. */
  uniqueId: string;
  /** SubmissionSet entryUUID (`urn:uuid:...`). */
  entryUuid: string;
  /** The gateway's source OID (XDS sourceId). */
  sourceId: string;
  /** ISO date-time of the submission. */
  submissionTime: string;
  title: string;
  /** XDS SubmissionSet contentTypeCode / MHD designationType; the builders default to the first document's typeCode. */
  contentType?: Coding;
  /** Intended recipients: MSSanté mailboxes and/or `Practitioner/...` / `Organization/...` display names. */
  intendedRecipients: { email?: string; display?: string; rpps?: string }[];
  patient: DocumentPatient;
  author: DocumentAuthor;
  documents: ExchangeDocument[];
}
