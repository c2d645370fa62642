export {
  SERVED_RESOURCE_TYPES,
  isServedResourceType,
  isKnownR4ResourceType,
  loadFhirDefinitions,
  r4PatientCompartment,
} from './definitions';
export type { CompartmentResource } from './definitions';
export type { ServedResourceType } from './definitions';
export { dateRange, MIN_DATE, MAX_DATE, parisParts } from './dates';
export type { CalendarParts, DateRange } from './dates';
export { SearchParamRegistry, normalizeString, parseReference } from './search-params';
export type {
  IndexedKind,
  IndexRows,
  SearchParamDef,
  TokenRow,
  StringRow,
  DateRow,
  ReferenceRow,
  NumberRow,
} from './search-params';
export { MAX_OFFSET, parseSearchRequest, splitPrefix, splitValues } from './search-request';
export type { Prefix, SearchRequest, SearchParamClause, IncludeClause } from './search-request';
export { ProfileRegistry } from './profiles';
export { validateForWrite } from './validation';
export { carryDecimals, nonCanonicalNumbers, parseFhirJson, stringifyFhirJson } from './fhir-json';
export { JsonShapeError, checkJsonShape } from './json-shape';
export type { JsonLimits } from './json-shape';
export { buildCapabilityStatement } from './capability';
export {
  CONSENT_CODES,
  FINESS,
  GW,
  IDNATPS,
  IDNATSTRUCT,
  INSEE_CODE_EXTENSION,
  INS_OIDS,
  MT_STATUS_EXTENSION,
  ORGANIZATION_TYPE_SYSTEM,
  PRACTITIONER_FLAG_SYSTEM,
  IDENTITY_TRUST_SYSTEM,
  EMAIL_TYPE_EXTENSION,
  isMssanteEmail,
  isMssanteTyped,
  IDENTITY_VERIFIED_SOURCE,
  MAILBOX_TRUST_SYSTEM,
  MAILBOX_VERIFIED_SOURCE,
  RELIABILITY_EXTENSION,
  ROLE_OPERATOR_VOUCHED,
  ROLE_TRUST_SYSTEM,
  RPPS,
  TASK_CODE_SYSTEM,
  TERRITORY_COMMUNE_EXTENSION,
  luhnKey,
  nirKey,
  insProblem,
  insKindOf,
  INS_NIR_SYSTEMS,
  INS_NIA_SYSTEM,
  GW_PATIENT_PROFILE,
  IDENTIFIER_TYPES,
  V2_0203,
  RELIABILITY_CODES,
  COMMUNE_CODES,
  DISCHARGE_DISPOSITION,
  SIRENE,
  HOSPITAL_STAY_CLASSES,
} from './fr-core';
export { SUBSETTED_TAG, parseSubsetting, subsetResource, unknownElements } from './subsetting';
export type { Subsetting } from './subsetting';
