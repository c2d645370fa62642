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
 * the text is not a FHIR date, including impossible calendar dates such as 1980-02-30.
 */
export function dateRange(text: string): DateRange | undefined {
  const m = DATE_RE.exec(text.trim());
  if (!m) {
    return undefined;
  }
  const [, y, mo, d, hh] = m;
  const year = Number(y);
  if (year === 0) {
    return undefined; // the FHIR date grammar has no year 0000 (nor has PostgreSQL)
  }
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
  // Date.UTC silently rolls 30 February over to 1 March: check against the month's length.
  if (day < 1 || day > daysInMonth(year, month)) {
    return undefined;
  }
  if (hh === undefined) {
    return { low: utc(year, month, day), high: utc(year, month, day + 1) };
  }
  return timeRange(m);
}

/** The interval of a dateTime: its precision (minute, second, or millisecond) is its width. */
function timeRange(m: RegExpExecArray): DateRange | undefined {
  const [, y, mo, d, hh, mi, ss, frac, tz] = m;
  // Checked here because Date.parse accepts 24:00 and the FHIR grammar does not.
  if (Number(hh) > 23 || Number(mi) > 59 || (ss !== undefined && Number(ss) > 60)) {
    return undefined;
  }
  const start = Date.parse(`${y}-${mo}-${d}T${hh}:${mi}:${ss ?? '00'}${frac ?? ''}${tz ?? 'Z'}`);
  if (Number.isNaN(start)) {
    return undefined;
  }
  const step = ss === undefined ? 60_000 : frac ? 1 : 1000;
  return { low: new Date(start).toISOString(), high: new Date(start + step).toISOString() };
}

/** Days in a month (`month` 0-based), leap years included. */
export function daysInMonth(year: number, month: number): number {
  return utcDate(year, month + 1, 0).getUTCDate(); // day 0 of the next month = last of this one
}

/**
 * Midnight UTC of a calendar day (month and day may overflow into the next ones). Built with
 * setUTCFullYear because Date.UTC maps years 0–99 to 1900–1999.
 */
function utcDate(year: number, month: number, day: number): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, month, day);
  return date;
}

/** ISO text of a day's midnight; past year 9999 ISO text gets a sign PostgreSQL cannot read. */
function utc(year: number, month: number, day: number): string {
  const date = utcDate(year, month, day);
  return date.getUTCFullYear() > 9999 ? MAX_DATE : date.toISOString();
}

/** Created once: an Intl.DateTimeFormat costs far more to build than to use. */
const parisFormat = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Europe/Paris',
  hourCycle: 'h23',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

export type CalendarParts = Record<'year' | 'month' | 'day' | 'hour' | 'minute' | 'second', string>;

/** The wall-clock calendar parts (2 digits, 4 for the year) of an instant in Europe/Paris. */
export function parisParts(instant: Date | number): CalendarParts {
  const parts = Object.fromEntries(parisFormat.formatToParts(instant).map((p) => [p.type, p.value]));
  return {
    year: parts.year as string,
    month: parts.month as string,
    day: parts.day as string,
    hour: parts.hour as string,
    minute: parts.minute as string,
    second: parts.second as string,
  };
}
