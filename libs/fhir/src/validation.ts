import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import type { ProfileRegistry } from './profiles';

/**
 * Validates a resource about to be written: against base R4 (structure, cardinality, value
 * formats, invariants) and against each project profile it declares in `meta.profile`.
 * Throws a 400 GatewayError listing every issue with its FHIRPath expression.
 */
export function validateForWrite(resource: Resource, profiles?: ProfileRegistry): void {
  const issues: OperationOutcomeIssue[] = [];
  try {
    issues.push(...validateResource(resource).filter(isError));
  } catch (err) {
    issues.push(...issuesOf(err));
  }
  if (profiles) {
    issues.push(...profiles.validate(resource).filter(isError));
  }
  if (issues.length > 0) {
    throw new GatewayError('invalid', issues);
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
