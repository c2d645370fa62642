/**
 * FHIR R4 http.html#mime-type: the gateway speaks JSON only, so a client that asks for another
 * format (`_format=xml`, `Accept: application/fhir+xml`) gets 406 rather than JSON it did not ask
 * for. Returns why the request is not acceptable, or undefined when JSON (or anything) will do.
 */
export function notAcceptableReason(accept: string | undefined, format: string | undefined): string | undefined {
  if (format !== undefined && format !== '') {
    // `+` in a query string reads as a space: `_format=application/fhir+xml` arrives as `application/fhir xml`.
    return /json/i.test(format)
      ? undefined
      : `_format=${format} is not supported: this server returns application/fhir+json only`;
  }
  if (accept === undefined || accept.trim() === '') {
    return undefined;
  }
  const acceptable = accept.split(',').some((range) => {
    const [type, ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    if (q !== undefined && !(Number(q.slice(2)) > 0)) {
      return false;
    }
    // application/fhir+json, application/json, application/json+fhir, NDJSON (bulk files), wildcards
    return type === '*/*' || type === 'application/*' || /json/.test(type);
  });
  return acceptable ? undefined : `Accept: ${accept} is not supported: this server returns application/fhir+json only`;
}
