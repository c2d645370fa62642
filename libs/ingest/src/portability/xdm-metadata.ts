import { createHash } from 'node:crypto';
import { XMLParser } from 'fast-xml-parser';
import type { Coding } from '@medplum/fhirtypes';
import { INS_OIDS } from '@gw/fhir';
import { canonicalSystem } from '../terminology/code-systems';
import type { Extraction, PatientTraits } from '../intake/extraction';

/** What METADATA.XML says of one document of an XDM subset (ITI TF-3 §4.2.3.2 DocumentEntry). */
export interface XdmDocumentEntry {
  /** The file name inside the subset (slot URI). */
  uri: string;
  mimeType?: string;
  uniqueId?: string;
  title?: string;
  /** ISO 8601 (from the HL7 DTM creationTime). */
  creationTime?: string;
  typeCode?: Coding;
  classCode?: Coding;
  formatCode?: Coding;
  patient: PatientTraits;
}

/** ITI TF-3 Table 4.2.5-1. */
const SCHEME = {
  typeCode: 'urn:uuid:f0306f51-975f-434e-a61c-c59651d33983',
  classCode: 'urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a',
  formatCode: 'urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d',
  patientId: 'urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427',
  uniqueId: 'urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab',
} as const;

// No entity expansion (no XML bomb), attributes kept, namespaces dropped (rim:/lcm: prefixes vary).
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  removeNSPrefix: true,
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => ['ExtrinsicObject', 'Slot', 'Value', 'Classification', 'ExternalIdentifier'].includes(name),
});

type Node = Record<string, unknown>;

/**
 * Reads an XDM METADATA.XML: the DocumentEntries by file name (upper case). Throws an Error with
 * a generic message when the file is not an ebRIM SubmitObjectsRequest.
 */
export function readXdmMetadata(xml: Buffer): Map<string, XdmDocumentEntry> {
  const doc = parser.parse(xml.toString('utf8')) as Node;
  const request = doc.SubmitObjectsRequest as Node | undefined;
  const list = request?.RegistryObjectList as Node | undefined;
  if (!list) {
    throw new Error('METADATA.XML is not an ebRIM SubmitObjectsRequest');
  }
  const out = new Map<string, XdmDocumentEntry>();
  for (const eo of (list.ExtrinsicObject as Node[] | undefined) ?? []) {
    const uri = slotValues(eo, 'URI')[0];
    if (uri) {
      out.set(uri.toUpperCase(), documentEntry(eo, uri));
    }
  }
  return out;
}

function documentEntry(eo: Node, uri: string): XdmDocumentEntry {
  const classification = (scheme: string): Coding | undefined => {
    const c = ((eo.Classification as Node[] | undefined) ?? []).find((x) => x['@classificationScheme'] === scheme);
    const code = text(c?.['@nodeRepresentation']);
    if (!c || !code) {
      return undefined;
    }
    const oid = slotValues(c, 'codingScheme')[0];
    return { system: systemOf(oid), code, display: localized(c) };
  };
  const external = (scheme: string): string | undefined => {
    const e = ((eo.ExternalIdentifier as Node[] | undefined) ?? []).find((x) => x['@identificationScheme'] === scheme);
    return text(e?.['@value']);
  };
  const creation = slotValues(eo, 'creationTime')[0];
  return {
    uri,
    mimeType: text(eo['@mimeType']),
    uniqueId: external(SCHEME.uniqueId),
    title: localized(eo),
    creationTime: creation ? hl7Dtm(creation) : undefined,
    typeCode: classification(SCHEME.typeCode),
    classCode: classification(SCHEME.classCode),
    formatCode: classification(SCHEME.formatCode),
    patient: patientTraits(external(SCHEME.patientId), slotValues(eo, 'sourcePatientInfo')),
  };
}

/** The patient from XDSDocumentEntry.patientId (an INS with its OID) and sourcePatientInfo (PID-3/5/7/8). */
export function patientTraits(patientId: string | undefined, info: string[]): PatientTraits {
  const traits: PatientTraits = { identifiers: [] };
  const addId = (cx: string): void => {
    const [value, , , authority] = cx.split('^');
    const oid = authority?.split('&')[1];
    if (!value || !oid) {
      return;
    }
    if (INS_OIDS.includes(oid)) {
      traits.ins ??= { value: unescape(value), oid };
    } else if (!traits.identifiers.some((i) => i.value === value)) {
      traits.identifiers.push({ system: `urn:oid:${oid}`, value: unescape(value) });
    }
  };
  if (patientId) {
    addId(patientId);
  }
  for (const line of info) {
    const [field, rest = ''] = [line.slice(0, line.indexOf('|')), line.slice(line.indexOf('|') + 1)];
    if (field === 'PID-3') {
      rest.split('~').forEach(addId);
    } else if (field === 'PID-5') {
      const [family, given, , , , , type] = rest.split('^');
      if (type === 'D') {
        traits.usedFamily = unescape(family);
      } else if (family) {
        traits.birthFamily ??= unescape(family);
      }
      if (given && !traits.given) {
        traits.given = unescape(given).split(/[ ,]+/).filter(Boolean);
      }
    } else if (field === 'PID-7' && /^\d{4}/.test(rest)) {
      traits.birthDate = [rest.slice(0, 4), rest.slice(4, 6), rest.slice(6, 8)].filter(Boolean).join('-');
    } else if (field === 'PID-8') {
      traits.sex = rest === 'F' ? 'female' : rest === 'M' ? 'male' : rest === 'O' ? 'other' : 'unknown';
    }
  }
  return traits;
}

/**
 * A document that is not CDA (a PDF/A of the patient's record) as an Extraction: the original
 * only, no facts; who it is about comes from its DocumentEntry. The uniqueId falls back to the
 * file's digest, so the same file imported twice is the same document.
 */
export function documentOnlyExtraction(entry: XdmDocumentEntry, content: Buffer, contentType: string): Extraction {
  return {
    patient: entry.patient,
    document: {
      uniqueId: entry.uniqueId ?? `urn:sha256:${createHash('sha256').update(content).digest('hex')}`,
      version: 1,
      // LOINC 55107-7 "Addendum document": the closest generic type when METADATA gives none.
      type: entry.typeCode ?? { system: 'http://loinc.org', code: '55107-7' },
      category: entry.classCode ? [entry.classCode] : undefined,
      title: entry.title,
      date: entry.creationTime,
      contentType,
      content,
    },
    resources: [],
    warnings: [],
  };
}

function slotValues(node: Node, name: string): string[] {
  const slot = ((node.Slot as Node[] | undefined) ?? []).find((s) => s['@name'] === name);
  const values = (slot?.ValueList as Node | undefined)?.Value as unknown[] | undefined;
  return (values ?? []).map(text).filter((v): v is string => v !== undefined);
}

function localized(node: Node): string | undefined {
  const ls = (node.Name as Node | undefined)?.LocalizedString as Node | Node[] | undefined;
  const first = Array.isArray(ls) ? ls[0] : ls;
  return text(first?.['@value']);
}

/**
 * A text or attribute value with the XML predefined entities and character references decoded
 * (the parser expands none, so that a DOCTYPE's own entities are never expanded).
 */
function text(v: unknown): string | undefined {
  if (typeof v !== 'string') {
    return undefined;
  }
  return v.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (m, e: string) => {
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (named[e]) {
      return named[e];
    }
    const code = e.startsWith('#x') ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
  });
}

/** A codingScheme OID as the canonical system the CDA reader also writes (LOINC, TRE_*, CIM-10…; unknown: urn:oid). */
function systemOf(oid: string | undefined): string | undefined {
  return oid ? canonicalSystem(oid) : undefined;
}

/** HL7 DTM (YYYY[MM[DD[HHMM[SS]]]]) to ISO 8601, UTC as XDS says. */
function hl7Dtm(v: string): string {
  const m = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?/.exec(v);
  if (!m) {
    return v;
  }
  const [, y, mo, d, h, mi, s] = m;
  if (!h) {
    return [y, mo, d].filter(Boolean).join('-');
  }
  return `${y}-${mo}-${d}T${h}:${mi ?? '00'}:${s ?? '00'}Z`;
}

function unescape(v: string): string {
  return v.replace(/\\([FSTRE])\\/g, (_m, c: string) => ({ F: '|', S: '^', T: '&', R: '~', E: '\\' })[c] ?? '');
}
