import type { ContactPoint } from '@medplum/fhirtypes';
/**
 * Systems and extension URLs shared by the hospital feed (which writes them) and the exchange
 * layer (which reads them): French identifiers (DOMAIN §3), FR Core extensions, gateway codes.
 */
export const GW = 'https://gateway.fr-primary-care.org';
export const FINESS = 'https://finess.esante.gouv.fr';
export const RPPS = 'https://rpps.esante.gouv.fr';
export const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
/** Structure national id (IdNatStruct): `1` + FINESS, `3` + SIRET, … (DOMAIN §3). */
export const IDNATSTRUCT = 'urn:oid:1.2.250.1.71.4.2.2';
/** INS-NIR, INS-NIA and their test OIDs (FR Core). */
export const INS_OIDS = ['1.2.250.1.213.1.4.8', '1.2.250.1.213.1.4.9', '1.2.250.1.213.1.4.10', '1.2.250.1.213.1.4.11'];
export const RELIABILITY_EXTENSION = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability';
export const INSEE_CODE_EXTENSION = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code';
/** DMP consent policies (ZFA): `dmp-feeding`, `dmp-consultation`. */
export const CONSENT_CODES = `${GW}/fhir/CodeSystem/dmp-consent`;

/** Patient extension: status of the médecin traitant declaration (declared, departed, fictitious, none, seeking). */
export const MT_STATUS_EXTENSION = `${GW}/fhir/StructureDefinition/mt-status`;
/** FR Core ContactPoint extension: the kind of an e-mail address (`MSSANTE` for a messagerie sécurisée de santé). */
export const EMAIL_TYPE_EXTENSION = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type';

/** An e-mail telecom typed MSSANTE (FR Core email type). */
export function isMssanteTyped(t: ContactPoint): boolean {
  return (t.extension ?? []).some((e) => e.url === EMAIL_TYPE_EXTENSION && e.valueCoding?.code === 'MSSANTE');
}

/** An MSSanté address: an e-mail telecom typed MSSANTE, or an address of an mssante.fr domain. */
export function isMssanteEmail(t: ContactPoint): boolean {
  return (
    t?.system === 'email' &&
    typeof t.value === 'string' &&
    t.value !== '' &&
    (isMssanteTyped(t) || /[.@]mssante\.fr$/i.test(t.value))
  );
}

/** Organization extension (repeated): an INSEE commune code of a CPTS territory. */
export const TERRITORY_COMMUNE_EXTENSION = `${GW}/fhir/StructureDefinition/territory-commune`;
/** Organization.type codes of the gateway: `CPTS`, `MSP`, `CDS`, `cabinet`, `hospital`. */
export const ORGANIZATION_TYPE_SYSTEM = `${GW}/fhir/CodeSystem/organization-type`;
/**
 * Patient meta.tag managed by the gateway (a client's own value is replaced on every write): code
 * `verified-source` when the INS was written by a writer allowed to qualify identities (an operator,
 * a client or HL7 source granted it). Only such records merge across organizations.
 */
export const IDENTITY_TRUST_SYSTEM = `${GW}/fhir/CodeSystem/identity-trust`;
/** The code of {@link IDENTITY_TRUST_SYSTEM}: the record's qualified INS comes from a writer allowed to qualify. */
export const IDENTITY_VERIFIED_SOURCE = 'verified-source';
/**
 * Practitioner / PractitionerRole / Organization meta.tag managed by the gateway (a client's own
 * value is replaced on every write): code `verified-source` when the MSSanté telecoms were written
 * by an operator (admin) and have not changed since. Discharge e-mails go only to mailboxes the
 * gateway can vouch for (this tag, the directory import, or the patient's own organization).
 */
export const MAILBOX_TRUST_SYSTEM = `${GW}/fhir/CodeSystem/mailbox-trust`;
/** The code of {@link MAILBOX_TRUST_SYSTEM}: the MSSanté telecoms come from an operator. */
export const MAILBOX_VERIFIED_SOURCE = 'verified-source';
/**
 * PractitionerRole meta.tag managed by the gateway (a client's own value is dropped on every
 * write): code `operator-vouched` when an operator (admin client, the directory import) wrote the
 * role or vouched for it (admin API /admin/practitioner-roles), and no client has since changed its
 * practitioner or organization. Only such a role, or one naming the organization's own
 * practitioner, verifies that organization's médecin-traitant declarations (docs/indicators.md).
 */
export const ROLE_TRUST_SYSTEM = `${GW}/fhir/CodeSystem/role-trust`;
/** The code of {@link ROLE_TRUST_SYSTEM}: an operator stands behind the role. */
export const ROLE_OPERATOR_VOUCHED = 'operator-vouched';
/** Practitioner tag: a fictitious MT number assigned by the caisse (`fictitious`). */
export const PRACTITIONER_FLAG_SYSTEM = `${GW}/fhir/CodeSystem/practitioner-flag`;
/**
 * Encounter.class codes (v3 ActCode) of a hospital stay: an Encounter of one of these classes (or
 * with a `hospitalization`) that becomes finished is a discharge, routed to primary care.
 */
export const HOSPITAL_STAY_CLASSES = ['IMP', 'ACUTE', 'NONAC', 'SS', 'EMER', 'OBSENC', 'PRENC'] as const;
/** Task.code of the exchange layer: `discharge-follow-up`, `find-mt`. */
export const TASK_CODE_SYSTEM = `${GW}/fhir/CodeSystem/exchange-task`;

/** Systems written by both the HL7 v2 mapping and the synthetic territory (FR Core, ANS, HL7). */
export const GW_PATIENT_PROFILE = `${GW}/fhir/StructureDefinition/gw-patient`;
export const IDENTIFIER_TYPES = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identifier-type';
export const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
export const RELIABILITY_CODES = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445';
export const COMMUNE_CODES = 'https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM';
export const DISCHARGE_DISPOSITION = 'http://terminology.hl7.org/CodeSystem/discharge-disposition';
/** SIREN / SIRET identifiers of organizations. */
export const SIRENE = 'https://sirene.fr';

/** Luhn check digit of a digit string: the key of RPPS, FINESS, SIREN and SIRET numbers. */
export function luhnKey(digits: string): string {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) {
        d -= 9;
      }
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

/** The INS-NIR key: 97 − (the 13 first characters mod 97), Corsica 2A/2B read as 19/18. */
export function nirKey(first13: string): string {
  const n = BigInt(first13.replace('2A', '19').replace('2B', '18'));
  return String(97n - (n % 97n)).padStart(2, '0');
}

/** INS-NIR systems (FR Core): the production OID and its test and demo OIDs. */
export const INS_NIR_SYSTEMS = [
  'urn:oid:1.2.250.1.213.1.4.8',
  'urn:oid:1.2.250.1.213.1.4.10',
  'urn:oid:1.2.250.1.213.1.4.11',
];
/** INS-NIA (temporary number assigned while a NIR is awaited). */
export const INS_NIA_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.9';
const NIR_FORMAT = /^[12][0-9]{4}(2[AB]|[0-9]{2})[0-9]{8}$/;
const NIA_FORMAT = /^[1-8][0-9]{4}(2[AB]|[0-9]{2})[0-9]{8}$/;

/**
 * Why an INS cannot be used as one: its format (15 characters, 2A/2B for Corsica) or its key
 * (97 − the 13 first characters mod 97). The reason never repeats the value (it is patient data).
 * @param kind - `INS-NIR` or `INS-NIA` (an NIA is built like a NIR, first digit 1 to 8).
 * @returns `{ problem: 'format' | 'key', reason }`, or undefined when the INS is valid.
 */
export function insProblem(
  kind: 'INS-NIR' | 'INS-NIA',
  value: string,
): { problem: 'format' | 'key'; reason: string } | undefined {
  if (!(kind === 'INS-NIR' ? NIR_FORMAT : NIA_FORMAT).test(value)) {
    const first = kind === 'INS-NIR' ? 'sex 1 or 2' : 'first digit 1 to 8';
    return {
      problem: 'format',
      reason: `${kind} must be 15 characters (${first}, 13 digits with 2A/2B for Corsica, then the 2-digit key)`,
    };
  }
  if (nirKey(value.slice(0, 13)) !== value.slice(13)) {
    return { problem: 'key', reason: `${kind} key (last 2 digits) does not match the first 13 characters` };
  }
  return undefined;
}

/** @returns The INS kind of a FHIR identifier system, or undefined when it is not an INS system. */
export function insKindOf(system: string | undefined): 'INS-NIR' | 'INS-NIA' | undefined {
  return system === INS_NIA_SYSTEM ? 'INS-NIA' : system && INS_NIR_SYSTEMS.includes(system) ? 'INS-NIR' : undefined;
}
