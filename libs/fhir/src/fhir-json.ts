import { randomBytes } from 'node:crypto';

/**
 * FHIR JSON that keeps the precision of decimals. R4 (datatypes.html#decimal, json.html#primitive)
 * says the precision of a decimal is significant: `1.00` must come back as `1.00`, while JSON.parse
 * turns it into the number 1. Node 20 has no JSON.parse source text access (Node 21+), so the
 * literal text of every number that does not print back as written is kept beside the parsed value:
 * in memory the value stays a JavaScript number (validation, FHIRPath and the search index see
 * numbers), and stringifyFhirJson writes the original text back while the number is unchanged.
 */

/** Holder (object or array) → property name → the number's text as it was received. */
const sourceText = new WeakMap<object, Map<string, string>>();
let anyRecorded = false;

interface NumberToken {
  start: number;
  end: number;
  text: string;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/**
 * The number literals of a JSON text (outside strings) whose text is not what JavaScript would
 * print for their value (`1.00`, `0.10`, `1e2`, `100000000000000000001`). Malformed text is not
 * diagnosed here: JSON.parse does that.
 */
export function nonCanonicalNumbers(text: string): NumberToken[] {
  const out: NumberToken[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      i = endOfString(text, i + 1);
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (!m) {
        i += 1;
        continue;
      }
      const end = i + m[0].length;
      if (String(Number(m[0])) !== m[0]) {
        out.push({ start: i, end, text: m[0] });
      }
      i = end;
    } else {
      i += 1;
    }
  }
  return out;
}

function endOfString(text: string, from: number): number {
  let i = from;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) {
      i += 2;
    } else if (c === 0x22) {
      return i + 1;
    } else {
      i += 1;
    }
  }
  return i;
}

/** JSON.parse that remembers the text of decimals written with a precision of their own. */
export function parseFhirJson(text: string): unknown {
  const tokens = nonCanonicalNumbers(text);
  if (tokens.length === 0) {
    return JSON.parse(text);
  }
  // Each such number becomes a marker string no client text can contain (NUL + a random nonce),
  // and the reviver, which sees the holder of every value, turns it back into a number.
  const marker = `\u0000${randomBytes(8).toString('hex')}:`;
  let marked = '';
  let last = 0;
  tokens.forEach((t, n) => {
    marked += `${text.slice(last, t.start)}"\\u0000${marker.slice(1)}${n}"`;
    last = t.end;
  });
  marked += text.slice(last);
  let parsed: unknown;
  try {
    parsed = JSON.parse(marked, function revive(this: unknown, key: string, value: unknown): unknown {
      if (typeof value === 'string' && value.startsWith(marker)) {
        const literal = tokens[Number(value.slice(marker.length))].text;
        record(this as object, key, literal);
        return Number(literal);
      }
      return value;
    });
  } catch {
    return JSON.parse(text); // the error message about the text the client sent
  }
  return parsed;
}

function record(holder: object, key: string, literal: string): void {
  let keys = sourceText.get(holder);
  if (!keys) {
    keys = new Map();
    sourceText.set(holder, keys);
  }
  keys.set(key, literal);
  anyRecorded = true;
}

/**
 * JSON.stringify that writes decimals back with the text they were received with, as long as
 * their value has not changed since.
 */
export function stringifyFhirJson(value: unknown): string {
  if (!anyRecorded) {
    return JSON.stringify(value);
  }
  const literals: string[] = [];
  const marker = `\u0000${randomBytes(8).toString('hex')}:`;
  const text = JSON.stringify(value, function replace(this: unknown, key: string, v: unknown): unknown {
    if (typeof v === 'number' && this && typeof this === 'object') {
      const literal = sourceText.get(this)?.get(key);
      if (literal !== undefined && Number(literal) === v) {
        literals.push(literal);
        return `${marker}${literals.length - 1}`;
      }
    }
    return v;
  });
  if (literals.length === 0) {
    return text;
  }
  const escaped = marker.slice(1);
  return text.replace(new RegExp(`"\\\\u0000${escaped}(\\d+)"`, 'g'), (_m, n: string) => literals[Number(n)]);
}

/**
 * Carries the decimal texts of `from`'s own properties over to `to`, a shallow copy of it
 * (`{ ...resource, meta }`): nested objects are shared and keep theirs.
 */
export function carryDecimals<T extends object>(from: object, to: T): T {
  const keys = sourceText.get(from);
  if (keys) {
    sourceText.set(to, new Map(keys));
  }
  return to;
}
