import pino from 'pino';

export type Logger = pino.Logger;

/**
 * Paths that may carry patient data or secrets. Request bodies and query strings are never
 * logged at all (a search URL carries identifiers); these cover objects handed to the logger.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'client_secret',
  'client_assertion',
  'resource',
  'patient',
  '*.name',
  '*.birthDate',
  '*.identifier',
  '*.address',
  '*.telecom',
  '*.text',
];

/** JSON logger (pino) with the redaction list; one per process. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'fhir-gateway' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/** Strips the query string: search parameters are patient data. */
export function pathOnly(url: string | undefined): string {
  if (!url) {
    return '';
  }
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
