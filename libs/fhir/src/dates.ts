/** A FHIR date/dateTime/instant as the half-open UTC interval [low, high) it denotes. */
export interface DateRange {
  low: string;
  high: string;
}

export const MIN_DATE = '-infinity';
export const MAX_DATE = 'infinity';

const DATE_RE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * Turns a FHIR date value into the interval its precision implies: "2024" is the whole year,
 * "2024-03-05" the whole day (UTC), a dateTime to the second its second. Returns undefined when
 * the text is not a FHIR date.
 */
export function dateRange(text: string): DateRange | undefined {
  const m = DATE_RE.exec(text.trim());
  if (!m) {
    return undefined;
  }
  const [, y, mo, d, hh, mi, ss, frac, tz] = m;
  const year = Number(y);
  if (mo === undefined) {
    return { low: utc(year, 0, 1), high: utc(year + 1, 0, 1) };
  }
  const month = Number(mo) - 1;
  if (month < 0 || month > 11) {
    return undefined;
  }
  if (d === undefined) {
    return { low: utc(year, month, 1), high: utc(year, month + 1, 1) };
  }
  const day = Number(d);
  if (day < 1 || day > 31) {
    return undefined;
  }
  if (hh === undefined) {
    return { low: utc(year, month, day), high: utc(year, month, day + 1) };
  }
  const iso = `${y}-${mo}-${d}T${hh}:${mi}:${ss ?? '00'}${frac ?? ''}${tz ?? 'Z'}`;
  const start = Date.parse(iso);
  if (Number.isNaN(start)) {
    return undefined;
  }
  const step = ss === undefined ? 60_000 : frac ? 1 : 1000;
  return { low: new Date(start).toISOString(), high: new Date(start + step).toISOString() };
}

function utc(year: number, month: number, day: number): string {
  return new Date(Date.UTC(year, month, day)).toISOString();
}
