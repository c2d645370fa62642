import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

/** Categories of domain errors; one table maps each to an HTTP status and an issue code. */
export type ErrorCategory =
  | 'invalid'
  | 'unauthorized'
  | 'forbidden'
  | 'not-found'
  | 'gone'
  | 'conflict'
  | 'precondition-failed'
  | 'not-acceptable'
  | 'too-large'
  | 'unsupported-media-type'
  | 'business-rule'
  | 'throttled'
  | 'upstream-unavailable'
  | 'not-supported'
  | 'internal';

const CATEGORY_TABLE: Record<ErrorCategory, { status: number; code: OperationOutcomeIssue['code'] }> = {
  invalid: { status: 400, code: 'invalid' },
  unauthorized: { status: 401, code: 'login' },
  forbidden: { status: 403, code: 'forbidden' },
  'not-found': { status: 404, code: 'not-found' },
  gone: { status: 410, code: 'deleted' },
  conflict: { status: 409, code: 'conflict' },
  'precondition-failed': { status: 412, code: 'conflict' },
  'not-acceptable': { status: 406, code: 'not-supported' },
  'too-large': { status: 413, code: 'too-costly' },
  'unsupported-media-type': { status: 415, code: 'not-supported' },
  'business-rule': { status: 422, code: 'business-rule' },
  throttled: { status: 429, code: 'throttled' },
  'upstream-unavailable': { status: 503, code: 'transient' },
  'not-supported': { status: 501, code: 'not-supported' },
  internal: { status: 500, code: 'exception' },
};

export interface IssueInput {
  text: string;
  expression?: string;
  code?: OperationOutcomeIssue['code'];
  severity?: OperationOutcomeIssue['severity'];
}

/**
 * A typed domain error. Everything that leaves the HTTP API as an error is one of these, turned
 * into an OperationOutcome by one filter.
 */
export class GatewayError extends Error {
  readonly issues: OperationOutcomeIssue[];

  constructor(
    readonly category: ErrorCategory,
    issues: IssueInput | IssueInput[] | OperationOutcomeIssue[],
  ) {
    const list = (Array.isArray(issues) ? issues : [issues]).map((i) => toIssue(category, i));
    super(list.map((i) => i.details?.text ?? i.diagnostics ?? i.code).join('; '));
    this.issues = list;
  }

  get status(): number {
    return CATEGORY_TABLE[this.category].status;
  }

  toOutcome(): OperationOutcome {
    return { resourceType: 'OperationOutcome', issue: this.issues };
  }
}

function toIssue(category: ErrorCategory, input: IssueInput | OperationOutcomeIssue): OperationOutcomeIssue {
  if ('severity' in input && 'code' in input && !('text' in input)) {
    return input as OperationOutcomeIssue;
  }
  const i = input as IssueInput;
  return {
    severity: i.severity ?? 'error',
    code: i.code ?? CATEGORY_TABLE[category].code,
    details: { text: i.text },
    ...(i.expression ? { expression: [i.expression] } : {}),
  };
}
