/**
 * Systems and extension URLs shared by the hospital feed (which writes them) and the exchange
 * layer (which reads them): French identifiers (DOMAIN §3), FR Core extensions, gateway codes.
 */
export const GW = 'https://gateway.fr-primary-care.org';
export const FINESS = 'https://finess.esante.gouv.fr';
export const RPPS = 'https://rpps.esante.gouv.fr';
export const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
/** INS-NIR, INS-NIA and their test OIDs (FR Core). */
export const INS_OIDS = ['1.2.250.1.213.1.4.8', '1.2.250.1.213.1.4.9', '1.2.250.1.213.1.4.10', '1.2.250.1.213.1.4.11'];
export const RELIABILITY_EXTENSION = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability';
export const INSEE_CODE_EXTENSION = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code';
/** DMP consent policies (ZFA): `dmp-feeding`, `dmp-consultation`. */
export const CONSENT_CODES = `${GW}/fhir/CodeSystem/dmp-consent`;

/** Patient extension: status of the médecin traitant declaration (declared, departed, fictitious, none, seeking). */
export const MT_STATUS_EXTENSION = `${GW}/fhir/StructureDefinition/mt-status`;
/** Organization extension (repeated): an INSEE commune code of a CPTS territory. */
export const TERRITORY_COMMUNE_EXTENSION = `${GW}/fhir/StructureDefinition/territory-commune`;
/** Organization.type codes of the gateway: `CPTS`, `MSP`, `CDS`, `cabinet`, `hospital`. */
export const ORGANIZATION_TYPE_SYSTEM = `${GW}/fhir/CodeSystem/organization-type`;
/** Practitioner tag: a fictitious MT number assigned by the caisse (`fictitious`). */
export const PRACTITIONER_FLAG_SYSTEM = `${GW}/fhir/CodeSystem/practitioner-flag`;
/** Task.code of the exchange layer: `discharge-follow-up`, `find-mt`. */
export const TASK_CODE_SYSTEM = `${GW}/fhir/CodeSystem/exchange-task`;
