export { OrganizationAccessPolicy } from './repository/access.policy';
export type { AccessPolicy, PersonContext, Principal, StoredRef } from './repository/access.policy';
export { IDENTITY_QUALIFICATION_GRANT, PERSON_IDENTITY_GRANT } from './repository/access.policy';
export { CPTS_TYPE_CODE, isCptsCode } from './repository/operator-grants';
export { AuditLog, actorOf, isAudited, markAudited } from './audit/audit.log';
export type { AuditActor, AuditRecord } from './audit/audit.log';
export { AUDIT_MIGRATIONS } from './audit/audit.schema';
export { AUDIT_DPO_GRANT } from './audit/patient-trail';
export { basesFor } from './audit/audit-basis';
export type { AccessBasis } from './audit/audit-basis';
export { auditQuery, patientsOfResource } from './audit/audit-subject';
export {
  FhirRepository,
  OWNER_TAG_SYSTEM,
  SOURCE_PREFIX,
  groupMatches,
  lockAllQuery,
  withTransaction,
} from './repository/fhir.repository';
export type {
  HistoryQuery,
  Queryable,
  SharingSettings,
  StoredResource,
  SearchResult,
  WriteContext,
} from './repository/fhir.repository';
export { FhirService } from './rest/fhir.service';
export type { FhirRequest, FhirResponse, ServiceOptions } from './rest/fhir.service';
export { inlineSql, persistVersions } from './repository/persist';
export type { ExtraStatement, NewVersion } from './repository/persist';
export { housekeepingFeature, registerHousekeepingJobs } from './audit/housekeeping.feature';
export { BulkExportService } from './bulk-export/bulk-export.service';
export type { BulkExportOptions, ExportStatus } from './bulk-export/bulk-export.service';
export type { RawExportParams } from './bulk-export/bulk-export.params';
export { GROUP_EXPORT_TYPES, PATIENT_COMPARTMENT, activePatientMembers } from './repository/patient-compartment';
export { STORE_MIGRATIONS } from './repository/resource-store.schema';
export { EVENT_MIGRATIONS } from './events/events.schema';
export { BULK_EXPORT_MIGRATIONS } from './bulk-export/bulk-export.schema';
export { DomainEventLog, eventResource, lockEvent, markEventsDispatched } from './events/domain-event.log';
export type { DomainEventEntry } from './events/domain-event.log';
export {
  ANNUAIRE_SANTE,
  DIRECTORY_ORG,
  DIRECTORY_SOURCE_SYSTEM,
  DIRECTORY_TYPES,
  IDENTITY_TYPES,
  equivalentTokens,
  identityKey,
  identityKeys,
  isDirectorySourced,
  personalMailbox,
} from './directory/directory.identity';
export { directoryConflict } from './repository/persist';
export { hasVerifiedMailbox } from './repository/mailbox-trust';
export { isVouchedRole } from './repository/role-trust';
export { DIRECTORY_IMPORT_PRINCIPAL, DirectoryImporter } from './directory/directory.importer';
export type { DirectoryImportOptions, DirectoryImportStats } from './directory/directory.importer';
export { DIRECTORY_MIGRATIONS } from './directory/directory.schema';
export { OutboxRelay } from './events/outbox.relay';
export type { OutboxEvent, OutboxHandlers } from './events/outbox.relay';
export { CareAccessPolicy } from './sharing/care-access.policy';
export {
  CONFIDENTIALITY_SYSTEM,
  SHARING_CONSENT_CATEGORY,
  SHARING_SOURCE_TYPES,
  isSharingConsent,
  projectSharing,
} from './sharing/care-projection';
export type {
  AccessBasis as SharingBasis,
  CareAccessRow,
  CareOppositionRow,
  SharingRows,
} from './sharing/care-projection';
export {
  DEFAULT_MATRIX,
  RESOURCE_CLASSES,
  classOf,
  classesFor,
  loadSharingMatrix,
  sharingMatrixSchema,
} from './sharing/sharing-matrix';
export type { ResourceClass, SharingMatrix } from './sharing/sharing-matrix';
export { SHARING_MIGRATIONS } from './sharing/sharing.schema';
export { rebuildSharingProjection } from './sharing/sharing-rebuild';
