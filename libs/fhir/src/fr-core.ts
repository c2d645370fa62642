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
