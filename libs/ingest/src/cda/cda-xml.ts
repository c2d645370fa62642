import { XMLParser } from 'fast-xml-parser';
import iconv from 'iconv-lite';
import { GatewayError } from '@gw/platform';

/**
 * A parsed XML element: attributes under `@name`, child elements always as arrays (a CDA element
 * may repeat almost anywhere), text under `#text`.
 */
export interface XmlNode {
  [key: string]: (XmlNode | string)[] | string | undefined;
}

/** Largest CDA accepted (a level-1 CDA carries a base64 PDF: tens of MB are real). */
export const MAX_CDA_BYTES = 32 * 1024 * 1024;
const CDA_NAMESPACE = 'urn:hl7-org:v3';

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  ignorePiTags: true,
  ignoreDeclaration: true,
  // Only the five predefined entities and character references: a DOCTYPE is refused before parsing.
  processEntities: true,
  htmlEntities: false,
  maxNestedTags: 200,
  isArray: (_name: string, _path: unknown, _leaf: boolean, isAttribute: boolean) => !isAttribute,
});

/**
 * Decodes the bytes with the charset the XML declaration names (UTF-8 when none, per XML 1.0 §4.3.3),
 * refusing bytes that are not valid in it: a wrong charset is an error, not mojibake in a record.
 */
export function decodeXml(body: Buffer): string {
  if (body.length > MAX_CDA_BYTES) {
    throw new GatewayError('too-large', {
      text: `The document exceeds ${MAX_CDA_BYTES} bytes`,
      expression: 'ClinicalDocument',
    });
  }
  if (body.length >= 2 && ((body[0] === 0xfe && body[1] === 0xff) || (body[0] === 0xff && body[1] === 0xfe))) {
    return iconv.decode(body, body[0] === 0xff ? 'utf-16le' : 'utf-16be');
  }
  const head = body.subarray(0, 200).toString('latin1');
  const declared = /^(?:\uFEFF|\xEF\xBB\xBF)?<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']/.exec(head)?.[1];
  const charset = (declared ?? 'UTF-8').toUpperCase();
  if (charset === 'UTF-8' || charset === 'UTF8') {
    const text = body.toString('utf8');
    if (text.includes('\uFFFD') && !Buffer.from(text, 'utf8').equals(body)) {
      throw new GatewayError('invalid', {
        text: 'The document is not valid UTF-8 (the charset its XML declaration names, or the default)',
        expression: 'xml.encoding',
      });
    }
    return text.replace(/^\uFEFF/, '');
  }
  if (!iconv.encodingExists(charset)) {
    throw new GatewayError('invalid', {
      text: `Unknown charset ${charset} in the XML declaration`,
      expression: 'xml.encoding',
    });
  }
  return iconv.decode(body, charset);
}

/**
 * Parses a CDA document safely: no DOCTYPE (no entity expansion: the "billion laughs" bomb, no
 * external entities), bounded size and depth, root `ClinicalDocument` in the HL7 v3 namespace.
 * Errors name the element at fault.
 */
export function parseCda(body: Buffer): XmlNode {
  const text = decodeXml(body);
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) {
    throw new GatewayError('invalid', {
      text: 'A DOCTYPE or ENTITY declaration is not accepted in a CDA document',
      expression: '!DOCTYPE',
    });
  }
  let doc: XmlNode;
  try {
    doc = parser.parse(text) as XmlNode;
  } catch (e) {
    throw new GatewayError('invalid', {
      text: `Not well-formed XML: ${e instanceof Error ? e.message.split('\n')[0] : 'parse error'}`,
      expression: 'xml',
    });
  }
  const roots = Object.keys(doc).filter((k) => !k.startsWith('?') && !k.startsWith('#'));
  const root = first(doc, 'ClinicalDocument');
  if (!root) {
    throw new GatewayError('invalid', {
      text: `Not a CDA document: the root element is ${roots[0] ?? '(none)'}, not ClinicalDocument`,
      expression: roots[0] ?? 'xml',
    });
  }
  // removeNSPrefix drops xmlns attributes: read the namespace declaration from the start tag.
  const startTag = /<(?:[A-Za-z_][\w.-]*:)?ClinicalDocument\b[^>]*>/.exec(text)?.[0] ?? '';
  if (!startTag.includes(`"${CDA_NAMESPACE}"`) && !startTag.includes(`'${CDA_NAMESPACE}'`)) {
    throw new GatewayError('invalid', {
      text: `Not a CDA document: ClinicalDocument is not in the ${CDA_NAMESPACE} namespace`,
      expression: 'ClinicalDocument',
    });
  }
  return root;
}

export function all(node: XmlNode | undefined, name: string): XmlNode[] {
  const v = node?.[name];
  // A leaf element without attributes comes out of the parser as a bare string.
  return Array.isArray(v) ? v.map((n: XmlNode | string) => (typeof n === 'string' ? { '#text': n } : n)) : [];
}

export function first(node: XmlNode | undefined, name: string): XmlNode | undefined {
  return all(node, name)[0];
}

/** The first element at a path of child names (`['patientRole', 'patient', 'name']`). */
export function at(node: XmlNode | undefined, ...path: string[]): XmlNode | undefined {
  let cur = node;
  for (const p of path) cur = first(cur, p);
  return cur;
}

export function attr(node: XmlNode | undefined, name: string): string | undefined {
  const v = node?.[`@${name}`];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function text(node: XmlNode | undefined): string | undefined {
  const v = node?.['#text'];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

export function templateIds(node: XmlNode | undefined): string[] {
  return all(node, 'templateId')
    .map((t) => attr(t, 'root'))
    .filter((r): r is string => !!r);
}

export function hasTemplate(node: XmlNode | undefined, root: string): boolean {
  return templateIds(node).includes(root);
}
