export { Hl7IngestService, peekTarget } from './hl7v2/hl7-ingest.service';
export type { IngestOptions, MessageStatus, ReceiveContext, ReceiveResult } from './hl7v2/hl7-ingest.service';
export { SourceRegistry } from './hl7v2/hl7-source.registry';
export type { Hl7Source, MllpPeer, SourceInput } from './hl7v2/hl7-source.registry';
export { MllpServer } from './hl7v2/mllp.server';
export type { MllpOptions } from './hl7v2/mllp.server';
export { buildAck, escapeHl7 } from './hl7v2/ack.builder';
export type { AckCode, AckTarget } from './hl7v2/ack.builder';
export { decodeMessage, parseEr7, unescapeHl7, hl7DateTime, Hl7ContentError } from './hl7v2/hl7-text';
export type { Charset } from './hl7v2/hl7-text';
export { readAdt, readHeader } from './hl7v2/pam-fr.reader';
export type { AdtMessage } from './hl7v2/pam-fr.reader';
export { foldStay, buildEncounter, buildPatient } from './hl7v2/adt.mapper';
export type { Stay, StoredMovement } from './hl7v2/adt.mapper';
export { INGEST_MIGRATIONS } from './hl7v2/hl7v2.schema';
export { Hl7Ledger } from './hl7v2/hl7.ledger';
export type { LedgerEntry, LedgerFilter, LedgerMessage } from './hl7v2/hl7.ledger';
export { HprimIntake } from './hprim/hprim-intake.service';
export type { ExtractionFiler, HeldFiling, UnmappedCode } from './hprim/hprim-intake.service';
export { HPRIM_MIGRATIONS } from './hprim/hprim.schema';
export { readHprim, looksLikeHprim, decodeHprim, labKeyOf, HprimFormatError } from './hprim/hprim.reader';
export type { HprimFile, HprimPart, HprimResult, HprimCharset } from './hprim/hprim.reader';
export { hprimExtraction, labCodeSystem } from './hprim/hprim.mapper';
export type { CodeLookup, LabCodeEntry } from './hprim/hprim.mapper';
export { LabCodeMap, checkKey, isLoincCode, validateLabCode } from './hprim/lab-code.map';
export type { LabCodeInput, LabCodeMapping } from './hprim/lab-code.map';
export { isUcum, ucumOf } from './hprim/ucum';
export { PORTABILITY_MIGRATIONS } from './portability/portability.schema';
export { PortabilityImportService } from './portability/portability.service';
export type { ImportProgress, PortabilityOptions } from './portability/portability.service';
export { planArchive } from './portability/archive.plan';
export { readXdmMetadata } from './portability/xdm-metadata';
export * as Terminology from './terminology/code-systems';
export {
  canonicalSystem,
  normalizeCoding,
  resolveSystem,
  sameSystem,
  systemIdentities,
  systemOid,
  CODE_SYSTEMS,
} from './terminology/code-systems';
export type { CodeSystemEntry, ResolvedSystem } from './terminology/code-systems';
export { readCda } from './cda/cda.reader';
export { CdaReadPool } from './cda/cda-read.pool';
export type { CdaReader } from './cda/cda-read.pool';
export { parseCda, decodeXml, MAX_CDA_BYTES } from './cda/cda-xml';
export { PATIENT_PLACEHOLDER } from './intake/extraction';
export type {
  Extraction,
  ExtractedDocument,
  ExtractedPractitioner,
  ExtractedResource,
  ExtractionWarning,
  PatientTraits,
} from './intake/extraction';
export { readIntakeInput, readXdm } from './intake/intake-input';
export type { IntakeInput, IntakeReader } from './intake/intake-input';
export {
  IntakePipeline,
  checkScopes as checkIntakeScopes,
  INTAKE_REVIEW_PREFIX,
  CDA_DOCUMENT_ID,
  CDA_SET_ID,
  patientFromTraits,
} from './intake/pipeline';
export type { IntakeResult, IntakePipelineApi } from './intake/pipeline';
export { INTAKE_MIGRATIONS } from './intake/intake.schema';
export { PatientMatcher } from './identity/matcher';
export { decideMatch, compareTraits, normaliseTrait, usableIns } from './identity/matching.rules';
export type { MatchResult, MatchRule, ReviewReason, Candidate } from './identity/matching.rules';
export { IdentityReviewQueue, REVIEW_STATUSES, patientRef } from './identity/review-queue';
export type { IdentityReview, OpenReview, ReviewDecision, ReviewResolver, ReviewStatus } from './identity/review-queue';
export { IDENTITY_MIGRATIONS } from './identity/identity.schema';
export { MAILBOX_MIGRATIONS } from './mailbox/mailbox.schema';
export { MailboxFeature } from './mailbox/mailbox.feature';
export { MailboxStore } from './mailbox/mailbox.store';
export type { MailboxMessage, MailboxSummary, MessageState, MessageOutcome } from './mailbox/mailbox.store';
export type { MailboxIntake, MailboxPorts, MdnReply } from './mailbox/mailbox.ports';
export { readInboundMail, XDM_ATTACHMENT } from './mailbox/inbound-mail.reader';
export type { InboundMail } from './mailbox/inbound-mail.reader';
