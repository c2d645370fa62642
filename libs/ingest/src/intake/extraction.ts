import type { Coding, Resource } from '@medplum/fhirtypes';

/**
 * What the intake pipeline receives from a document reader (CI-SIS CDA, HPRIM, a portability
 * archive entry): who the document is about, as the document says it (never a stored id), the
 * document itself and the facts read from it. The pipeline matches the patient, keeps the
 * original (DocumentReference + Binary), writes the facts with a Provenance each, in one
 * transaction.
 */
export interface Extraction {
  /** The patient as the document names them (matched by the identity rules, never trusted as an id). */
  patient: PatientTraits;
  document: ExtractedDocument;
  /** The médecin traitant the document names (CDA header participant PCP), when it does. */
  pcp?: ExtractedPractitioner;
  /**
   * The facts (Condition, AllergyIntolerance, MedicationStatement, Immunization, Procedure,
   * DiagnosticReport, Observation, MedicationDispense…), without ids. Every reference to the
   * patient is {@link PATIENT_PLACEHOLDER}; references between facts of one document use
   * `urn:uuid:` fullUrls given in `fullUrl` below.
   */
  resources: ExtractedResource[];
  /** What was read but not understood (an unknown code system, an entry skipped), for the outcome. */
  warnings: ExtractionWarning[];
  /**
   * true: a lab file (HPRIM): the patient must already be known, never created from it (the
   * document waits in the identity review queue otherwise).
   */
  neverCreatePatient?: boolean;
}

/** Stands for the matched Patient in extracted resources; the pipeline rewrites it. */
export const PATIENT_PLACEHOLDER = 'urn:gw:intake:patient';

export interface ExtractedResource {
  resource: Resource;
  /** `urn:uuid:…` when another extracted resource references this one. */
  fullUrl?: string;
}

export interface ExtractionWarning {
  /** Where in the document (an XPath-like path for CDA, `line 12` for HPRIM). */
  location: string;
  text: string;
}

/** The patient's identity traits as a document carries them (INS traits: RNIV / Référentiel INS). */
export interface PatientTraits {
  /** INS-NIR / INS-NIA with its OID (1.2.250.1.213.1.4.8 NIR, .9 NIA, .10 test NIR, .11 test NIA). */
  ins?: { value: string; oid: string };
  /** Other identifiers (the sender's local patient number: IPP, number in the practice software). */
  identifiers: { system: string; value: string }[];
  /** Nom de naissance. */
  birthFamily?: string;
  /** Nom utilisé, when it differs. */
  usedFamily?: string;
  /** Prénoms de naissance (the first one first). */
  given?: string[];
  sex?: 'male' | 'female' | 'other' | 'unknown';
  /** YYYY-MM-DD (or a shorter precision when the document has no day). */
  birthDate?: string;
  /** INSEE code of the birth place (commune, or 99xxx country). */
  birthPlace?: string;
}

export interface ExtractedPractitioner {
  /** IdNatPS (8 + RPPS, or 0 + ADELI…). */
  idNatPs?: string;
  family?: string;
  given?: string;
  /** The structure: FINESS / SIRET / IdNatStruct, as the document names it. */
  organization?: { identifier?: { system: string; value: string }; name?: string };
}

/** The original document, as the DocumentReference will describe it. */
export interface ExtractedDocument {
  /** The CDA ClinicalDocument/id (root[^extension]) or a digest of the file for other formats. */
  uniqueId: string;
  /** CDA setId: versions of one document share it; a new version replaces the previous one's facts. */
  setId?: string;
  /** CDA versionNumber (1 when absent). */
  version: number;
  /** Document type (LOINC), e.g. 11502-2 for a CR-BIO. */
  type: Coding;
  /** Document class / format codes when known (XDS classCode, formatCode). */
  category?: Coding[];
  title?: string;
  /** When the document was made (effectiveTime), ISO 8601. */
  date?: string;
  author?: ExtractedPractitioner;
  custodian?: ExtractedPractitioner['organization'];
  /** Period of care the document covers (documentationOf/serviceEvent). */
  period?: { start?: string; end?: string };
  /** The encounter the document belongs to (componentOf/encompassingEncounter), as identifiers. */
  encounterIdentifier?: { system: string; value: string };
  /** The raw bytes' media type: `application/hl7-cda+xml`, `text/plain` (HPRIM)… */
  contentType: string;
  /** The raw bytes, kept as a Binary. */
  content: Buffer;
}

/** An extraction without its document's bytes: what is staged as JSON, or sent back by a read thread. */
export type DescribedExtraction = Omit<Extraction, 'document'> & { document: Omit<ExtractedDocument, 'content'> };

export function withoutBytes(ex: Extraction): DescribedExtraction {
  const document: Partial<ExtractedDocument> = { ...ex.document };
  delete document.content;
  return { ...ex, document: document as DescribedExtraction['document'] };
}
