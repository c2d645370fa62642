import { crawlTypedValue } from '@medplum/core';
import type { TypedValueWithPath } from '@medplum/core';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';

/**
 * Issues medplum's validator raises on content that R4 allows, each with the rule that admits it.
 * Found by the official R4 examples (test/e2e/fhir-r4-examples.e2e-spec.ts). A correction applies
 * only when every element an issue names passes the R4 rule; anything else stands as reported.
 */
interface Correction {
  /** The validator's issue text this correction answers. */
  matches(text: string): boolean;
  /** Whether R4 allows the value at this path (a primitive) or the element there (an object). */
  allows(value: PathValue): boolean;
}

interface PathValue {
  /** The FHIR type of a primitive; undefined for an element reached through the resource JSON. */
  type?: string;
  value: unknown;
}

// R4 base64Binary (datatypes.html#base64Binary, regex `(\s*([0-9a-zA-Z\+\=]){4}\s*)+`): whitespace
// (line breaks of MIME-wrapped content) is allowed between groups; medplum's check refuses it.
const BASE64_WRAPPED = /^\s*(?:[A-Za-z0-9+/]{4}\s*)*(?:[A-Za-z0-9+/]{2}\s*==|[A-Za-z0-9+/]{3}\s*=)?\s*$/;

// The R4 regexes are XML Schema regexes, whose \s is space, tab, CR and LF only; JavaScript's \s
// (and String.trim) also takes U+00A0 and the other Unicode spaces, which are content in R4.
const XSD_CODE = /^[^ \t\r\n]+( [^ \t\r\n]+)*$/;
const XSD_NON_WHITESPACE = /[^ \t\r\n]/;

const CORRECTIONS: Correction[] = [
  {
    matches: (text) => text === 'Invalid base64Binary format',
    allows: (v) => v.type === 'base64Binary' && typeof v.value === 'string' && BASE64_WRAPPED.test(v.value),
  },
  {
    // datatypes.html#string: the 1 MB limit is the string type's; Narrative.div is xhtml, unlimited.
    matches: (text) => text === 'String cannot be larger than 1 MB',
    allows: (v) => v.type === 'xhtml',
  },
  {
    matches: (text) => text === 'Invalid code format',
    allows: (v) => v.type === 'code' && typeof v.value === 'string' && XSD_CODE.test(v.value),
  },
  {
    // Reported instead of the format check, so a code must also have the code format.
    matches: (text) => text === 'String must contain non-whitespace content',
    allows: (v) =>
      typeof v.value === 'string' &&
      XSD_NON_WHITESPACE.test(v.value) &&
      (v.type === 'string' || v.type === 'markdown' || (v.type === 'code' && XSD_CODE.test(v.value))),
  },
  {
    // ras-2 `probability is decimal implies (probability as decimal) <= 100`: a prediction without
    // a probability (probability is 0..1) meets it in the HL7 validator, where `is` on nothing is
    // false; medplum's FHIRPath gives empty there and counts the invariant as failed.
    matches: (text) => text.startsWith('Constraint ras-2 not met'),
    allows: (v) => isObject(v.value) && typeof v.value.probabilityDecimal !== 'number',
  },
];

/** `issues` without those R4 allows (see CORRECTIONS). */
export function withoutFalsePositives(resource: Resource, issues: OperationOutcomeIssue[]): OperationOutcomeIssue[] {
  const corrected = (i: OperationOutcomeIssue): Correction | undefined =>
    CORRECTIONS.find((c) => c.matches(i.details?.text ?? '') && (i.expression ?? []).length > 0);
  if (!issues.some(corrected)) {
    return issues;
  }
  const primitives = primitiveValues(resource);
  return issues.filter((i) => {
    const correction = corrected(i);
    return !(
      correction &&
      (i.expression ?? []).every((path) => {
        const value = primitives.get(path) ?? elementAt(resource, path);
        return value !== undefined && correction.allows(value);
      })
    );
  });
}

/** Every primitive value of the resource by its path (as the validator names it), with its FHIR type. */
function primitiveValues(resource: Resource): Map<string, PathValue> {
  const out = new Map<string, PathValue>();
  const visitProperty = (
    _parent: unknown,
    _key: string,
    _path: string,
    values: (TypedValueWithPath | TypedValueWithPath[])[],
  ): void => {
    for (const v of values.flat()) {
      if (v && (typeof v.value === 'string' || typeof v.value === 'number' || typeof v.value === 'boolean')) {
        // A choice element comes as `value[x]`; the validator names it as spelled in the JSON.
        const path = v.path.replace(/\[x\]$/, v.type.charAt(0).toUpperCase() + v.type.slice(1));
        out.set(path, { type: v.type, value: v.value });
      }
    }
  };
  try {
    crawlTypedValue(
      { type: resource.resourceType, value: resource },
      { visitProperty },
      { skipMissingProperties: true },
    );
  } catch {
    // a structurally broken resource: its issues stand as reported
  }
  return out;
}

/** The JSON element at a validator path (`RiskAssessment.prediction[0]`), or undefined. */
function elementAt(resource: Resource, path: string): PathValue | undefined {
  let node: unknown = resource;
  for (const step of path.split('.').slice(1)) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$/.exec(step);
    if (!m || !isObject(node)) {
      return undefined;
    }
    node = node[m[1]];
    if (m[2] !== undefined) {
      node = Array.isArray(node) ? node[Number(m[2])] : undefined;
    }
  }
  return node === undefined ? undefined : { value: node };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
