import { GatewayError, scopeAllows } from '@gw/platform';
import { dateRange, isKnownR4ResourceType } from '@gw/fhir';
import type { Principal } from '../repository/access.policy';
import { GROUP_EXPORT_TYPES } from '../repository/patient-compartment';

/** Kick-off parameters as received (query string or Parameters), before validation. */
export interface RawExportParams {
  _type?: string[];
  _since?: string[];
  _outputFormat?: string[];
  /** Names of other parameters given (refused unless the client asked for lenient handling). */
  unsupported: string[];
  lenient: boolean;
}

export interface ExportParams {
  /** Types to export, in export order. */
  types: string[];
  /** Types left out because the client's scopes do not allow reading them (no `_type` given). */
  skipped: string[];
  since?: string;
}

/** Bulk Data v2: ndjson is the only format required, and the only one served. */
const OUTPUT_FORMATS = new Set(['application/fhir+ndjson', 'application/ndjson', 'ndjson']);
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Validates the kick-off parameters against the Bulk Data v2 rules and the client's scopes.
 * An explicit `_type` the scopes do not cover is refused (403); without `_type`, the types the
 * client may not read are skipped and reported in the manifest's error file.
 */
export function validateExportParams(p: Principal, raw: RawExportParams): ExportParams {
  if (raw.unsupported.length > 0 && !raw.lenient) {
    throw new GatewayError(
      'invalid',
      raw.unsupported.map((n) => ({
        text: `Parameter ${n} is not supported by this server (send Prefer: handling=lenient to ignore it)`,
        expression: n,
        code: 'not-supported' as const,
      })),
    );
  }
  const formats = raw._outputFormat ?? [];
  if (formats.length > 1) {
    throw new GatewayError('invalid', { text: '_outputFormat given more than once', expression: '_outputFormat' });
  }
  if (formats[0] !== undefined && !OUTPUT_FORMATS.has(formats[0])) {
    throw new GatewayError('invalid', {
      text: `_outputFormat ${formats[0]} is not supported (application/fhir+ndjson)`,
      expression: '_outputFormat',
    });
  }
  const since = single(raw._since, '_since');
  // dateRange also refuses days a month does not have (Date.parse rolls 30 February over to March).
  if (since !== undefined && (!INSTANT.test(since) || Number.isNaN(Date.parse(since)) || !dateRange(since))) {
    throw new GatewayError('invalid', {
      text: `_since must be a FHIR instant (e.g. 2025-01-01T00:00:00Z), got ${since.slice(0, 40)}`,
      expression: '_since',
    });
  }
  if (!scopeAllows(p.scopes, 'Group', 'r')) {
    throw new GatewayError('forbidden', {
      text: 'Group export needs read access to Group (scope system/Group.r or system/*.r)',
    });
  }
  const requested = (raw._type ?? [])
    .flatMap((v) => v.split(','))
    .map((t) => t.trim())
    .filter(Boolean);
  if (requested.length === 0) {
    return {
      types: GROUP_EXPORT_TYPES.filter((t) => scopeAllows(p.scopes, t, 'r')),
      skipped: GROUP_EXPORT_TYPES.filter((t) => !scopeAllows(p.scopes, t, 'r')),
      since,
    };
  }
  const unknown = requested.filter((t) => !isKnownR4ResourceType(t));
  if (unknown.length > 0) {
    throw new GatewayError(
      'invalid',
      unknown.map((t) => ({ text: `_type: unknown resource type ${t}`, expression: '_type' })),
    );
  }
  const outside = requested.filter((t) => !GROUP_EXPORT_TYPES.includes(t));
  if (outside.length > 0) {
    throw new GatewayError(
      'invalid',
      outside.map((t) => ({
        text: `_type: ${t} is not in the Patient compartment and cannot be exported from a Group`,
        expression: '_type',
        code: 'not-supported' as const,
      })),
    );
  }
  const denied = requested.filter((t) => !scopeAllows(p.scopes, t, 'r'));
  if (denied.length > 0) {
    throw new GatewayError('forbidden', { text: `The client's scopes do not allow reading ${denied.join(', ')}` });
  }
  return { types: GROUP_EXPORT_TYPES.filter((t) => requested.includes(t)), skipped: [], since };
}

function single(values: string[] | undefined, name: string): string | undefined {
  if ((values?.length ?? 0) > 1) {
    throw new GatewayError('invalid', { text: `${name} given more than once`, expression: name });
  }
  return values?.[0];
}
