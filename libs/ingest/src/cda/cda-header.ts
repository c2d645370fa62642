import type { Coding } from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import { resolveSystem } from '../terminology/code-systems';
import type { ExtractedDocument, ExtractedPractitioner, ExtractionWarning, PatientTraits } from '../intake/extraction';
import { cdaCodings, cdaPeriod, cdaTime } from './cda-values';
import { all, at, attr, first, text, type XmlNode } from './cda-xml';

/** IdNatPS (RPPS with prefix 8, ADELI with prefix 0…) and IdNatStruct OIDs (ANS). */
export const IDNATPS_OID = '1.2.250.1.71.4.2.1';
export const IDNATSTRUCT_OID = '1.2.250.1.71.4.2.2';
const INS_OIDS = ['1.2.250.1.213.1.4.8', '1.2.250.1.213.1.4.9', '1.2.250.1.213.1.4.10', '1.2.250.1.213.1.4.11'];
/** Document types that CI-SIS codes outside LOINC (TA_ASIP 1.2.250.1.213.1.1.4.12: SYNTH, REMB). */
const TA_ASIP_DOCUMENT_TYPES = 'urn:oid:1.2.250.1.213.1.1.4.12';

/** `root^extension`, or `root` alone (an II with only a root is a UUID or an OID instance). */
export function instanceId(node: XmlNode | undefined): string | undefined {
  const root = attr(node, 'root');
  if (!root) return undefined;
  const ext = attr(node, 'extension');
  return ext ? `${root}^${ext}` : root;
}

/** The patient traits (INS, local identifiers, birth names, sex, birth date and place). */
export function readPatient(doc: XmlNode): PatientTraits {
  const role = at(doc, 'recordTarget', 'patientRole');
  if (!role) {
    throw new GatewayError('business-rule', {
      text: 'The document names no patient (recordTarget/patientRole)',
      expression: 'ClinicalDocument/recordTarget',
    });
  }
  const traits: PatientTraits = { identifiers: [] };
  for (const id of all(role, 'id')) {
    const root = attr(id, 'root');
    const value = attr(id, 'extension');
    if (!root || !value) continue;
    if (INS_OIDS.includes(root) && !traits.ins) traits.ins = { value, oid: root };
    else traits.identifiers.push({ system: `urn:oid:${root}`, value });
  }
  const patient = first(role, 'patient');
  const name = first(patient, 'name');
  const families = all(name, 'family');
  const givens = all(name, 'given');
  const birthFamily =
    families.find((f) => attr(f, 'qualifier') === 'BR') ?? families.find((f) => !attr(f, 'qualifier'));
  const usedFamily = families.find((f) => attr(f, 'qualifier') === 'SP' || attr(f, 'qualifier') === 'CL');
  // CI-SIS: the unqualified given is the list of birth first names; the BR one the first of them.
  const givenList = text(givens.find((g) => !attr(g, 'qualifier')));
  const firstGiven = text(givens.find((g) => attr(g, 'qualifier') === 'BR'));
  const given = givenList ? givenList.split(/\s+/) : firstGiven ? [firstGiven] : undefined;
  if (given && firstGiven && given[0] !== firstGiven) given.unshift(firstGiven);
  if (text(birthFamily)) traits.birthFamily = text(birthFamily);
  if (text(usedFamily) && text(usedFamily) !== traits.birthFamily) traits.usedFamily = text(usedFamily);
  if (given) traits.given = given;
  const sex = attr(first(patient, 'administrativeGenderCode'), 'code');
  traits.sex = sex === 'M' ? 'male' : sex === 'F' ? 'female' : sex === 'U' ? 'unknown' : sex ? 'other' : undefined;
  if (!traits.sex) delete traits.sex;
  const birthDate = cdaTime(attr(first(patient, 'birthTime'), 'value'))?.slice(0, 10);
  if (birthDate) traits.birthDate = birthDate;
  const birthPlace = text(at(patient, 'birthplace', 'place', 'addr', 'county'));
  if (birthPlace) traits.birthPlace = birthPlace;
  return traits;
}

function organizationOf(node: XmlNode | undefined): ExtractedPractitioner['organization'] {
  if (!node) return undefined;
  const id = first(node, 'id');
  const root = attr(id, 'root');
  const value = attr(id, 'extension');
  const name = text(first(node, 'name'));
  if (!value && !name) return undefined;
  return {
    ...(root && value ? { identifier: { system: `urn:oid:${root}`, value } } : {}),
    ...(name ? { name } : {}),
  };
}

/** A person of the header (author, participant, performer): IdNatPS, names, structure. */
export function practitionerOf(
  entity: XmlNode | undefined,
  personTag: string,
  orgTag: string,
): ExtractedPractitioner | undefined {
  if (!entity) return undefined;
  const id = all(entity, 'id').find((i) => attr(i, 'root') === IDNATPS_OID);
  const name = at(entity, personTag, 'name');
  const p: ExtractedPractitioner = {};
  const idNatPs = attr(id, 'extension');
  if (idNatPs) p.idNatPs = idNatPs;
  const family = text(first(name, 'family'));
  const given = text(first(name, 'given'));
  if (family) p.family = family;
  if (given) p.given = given;
  const organization = organizationOf(first(entity, orgTag));
  if (organization) p.organization = organization;
  return Object.keys(p).length > 0 ? p : undefined;
}

/** The médecin traitant: header participant with functionCode PCP (VSM, IPS-FR, CR-BIO). */
export function readPcp(doc: XmlNode): ExtractedPractitioner | undefined {
  const participant = all(doc, 'participant').find((p) => attr(first(p, 'functionCode'), 'code') === 'PCP');
  return practitionerOf(first(participant, 'associatedEntity'), 'associatedPerson', 'scopingOrganization');
}

/** What the DocumentReference will say about the document. */
export function readDocument(doc: XmlNode, body: Buffer, warnings: ExtractionWarning[]): ExtractedDocument {
  const uniqueId = instanceId(first(doc, 'id'));
  if (!uniqueId) {
    throw new GatewayError('business-rule', { text: 'The document has no id', expression: 'ClinicalDocument/id' });
  }
  const type = documentType(first(doc, 'code'), warnings);
  const setId = instanceId(first(doc, 'setId'));
  const version = Number(attr(first(doc, 'versionNumber'), 'value') ?? '1');
  const authorNode = first(doc, 'author');
  const author = practitionerOf(first(authorNode, 'assignedAuthor'), 'assignedPerson', 'representedOrganization');
  const custodian = organizationOf(at(doc, 'custodian', 'assignedCustodian', 'representedCustodianOrganization'));
  const event = at(doc, 'documentationOf', 'serviceEvent');
  const period = cdaPeriod(first(event, 'effectiveTime'));
  const encounterId = first(at(doc, 'componentOf', 'encompassingEncounter'), 'id');
  const encRoot = attr(encounterId, 'root');
  const encValue = attr(encounterId, 'extension');
  const title = text(first(doc, 'title'));
  const date = cdaTime(attr(first(doc, 'effectiveTime'), 'value'));
  return {
    uniqueId,
    ...(setId ? { setId } : {}),
    version: Number.isInteger(version) && version > 0 ? version : 1,
    type,
    ...(title ? { title } : {}),
    ...(date ? { date } : {}),
    ...(author ? { author } : {}),
    ...(custodian ? { custodian } : {}),
    ...(period.start || period.end ? { period: { start: period.start, end: period.end } } : {}),
    ...(encRoot && encValue ? { encounterIdentifier: { system: `urn:oid:${encRoot}`, value: encValue } } : {}),
    contentType: 'application/hl7-cda+xml',
    content: body,
  };
}

function documentType(code: XmlNode | undefined, warnings: ExtractionWarning[]): Coding {
  const [coding] = cdaCodings(code, 'ClinicalDocument/code');
  if (!coding) {
    throw new GatewayError('business-rule', {
      text: 'The document has no type code',
      expression: 'ClinicalDocument/code',
    });
  }
  if (!resolveSystem(coding.system ?? '').known && coding.system !== TA_ASIP_DOCUMENT_TYPES) {
    warnings.push({ location: 'ClinicalDocument/code', text: `Document type system ${coding.system} is not known` });
  }
  return coding;
}
