/** Bounds on the shape of a JSON body, checked on its text before anything is built from it. */
export interface JsonLimits {
  /** Nesting of objects and arrays (the R4 examples reach 22). */
  maxDepth: number;
  /** Items of any one array, Bundle.entry included. */
  maxArrayItems: number;
  /** Characters of any one string as written (escapes count as written). */
  maxStringChars: number;
}

/**
 * Why a body was refused: `limit` says which bound (or rule) and `path` where, as a FHIRPath-like
 * expression (`Patient.identifier`, `Bundle.entry[3].resource.name[0].given`).
 */
export class JsonShapeError extends Error {
  constructor(
    readonly limit: 'depth' | 'array' | 'string' | 'key' | 'character',
    readonly path: string,
    message: string,
  ) {
    super(message);
  }

  /** Size bounds answer 413; a forbidden key or character is malformed input (400). */
  get tooLarge(): boolean {
    return this.limit === 'depth' || this.limit === 'array' || this.limit === 'string';
  }
}

/** Keys that name JavaScript's prototype machinery: never FHIR element names, refused anywhere. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** A NUL or a lone surrogate: PostgreSQL text cannot hold the first, UTF-8 cannot encode the second. */
// eslint-disable-next-line no-control-regex -- finding that control character is the point
const BAD_CHARACTER = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

interface Level {
  array: boolean;
  /** Items so far (arrays), or the key being read or last read (objects). */
  count: number;
  key: string | undefined;
}

/**
 * One linear pass over a JSON text that refuses, at the first offending token, what no FHIR
 * resource needs and what would make building or validating it costly: arrays too long, nesting
 * too deep, strings too long, prototype keys, NUL and lone surrogates (written as escapes).
 * Malformed JSON is not diagnosed here (JSON.parse does that); the pass only stays linear on it.
 */
export function checkJsonShape(text: string, limits: JsonLimits): void {
  const stack: Level[] = [];
  let expectKey = false;
  let rootType: string | undefined;
  const fail = (limit: JsonShapeError['limit'], message: string, arrayItself = false): never => {
    // An array too long is named by its parent's path (`Patient.identifier`), not by an item past its end.
    const path = pathOf(arrayItself ? stack.slice(0, -1) : stack, rootType);
    throw new JsonShapeError(limit, path, `${message} at ${path}`);
  };
  const item = (): void => {
    const top = stack[stack.length - 1];
    if (top?.array && ++top.count > limits.maxArrayItems) {
      fail('array', `Array of more than ${limits.maxArrayItems} items (GW_JSON_MAX_ARRAY_ITEMS)`, true);
    }
  };
  const open = (array: boolean): void => {
    item();
    if (stack.length >= limits.maxDepth) {
      fail('depth', `Nesting deeper than ${limits.maxDepth} levels (GW_JSON_MAX_DEPTH)`);
    }
    stack.push({ array, count: 0, key: undefined });
    expectKey = !array;
  };
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = endOfString(text, i + 1);
      const top = stack[stack.length - 1];
      const isKey = expectKey && top !== undefined && !top.array;
      // Only strings with escapes can hide a NUL or a surrogate (raw ones are not valid JSON or UTF-8).
      const value = isKey || text.slice(i + 1, end).includes('\\') ? decode(text, i, end) : undefined;
      if (isKey) {
        top.key = value;
        expectKey = false;
        if (FORBIDDEN_KEYS.has(value as string)) {
          fail('key', `Forbidden property name "${value}"`);
        }
      } else {
        item();
        if (end - i - 2 > limits.maxStringChars) {
          fail('string', `String longer than ${limits.maxStringChars} characters (GW_JSON_MAX_STRING_CHARS)`);
        }
        if (stack.length === 1 && top?.key === 'resourceType') {
          rootType = text.slice(i + 1, end - 1);
        }
      }
      if (value !== undefined && BAD_CHARACTER.test(value)) {
        fail('character', 'A NUL character or an unpaired surrogate (not valid Unicode text)');
      }
      i = end;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      open(c === 0x5b);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack.length > 0 && !stack[stack.length - 1].array;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39) || c === 0x74 || c === 0x66 || c === 0x6e) {
      // A number or true/false/null: one item, then skip to its end.
      item();
      i += 1;
      while (i < n && isLiteralChar(text.charCodeAt(i))) {
        i += 1;
      }
      continue;
    }
    i += 1;
  }
}

function isLiteralChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || c === 0x2e || c === 0x2b || c === 0x2d || c === 0x45;
}

/** Index just past the closing quote of the string whose content starts at `from`. */
function endOfString(text: string, from: number): number {
  let i = from;
  for (;;) {
    const q = text.indexOf('"', i);
    if (q === -1) {
      return text.length;
    }
    let backslashes = 0;
    while (text.charCodeAt(q - 1 - backslashes) === 0x5c) {
      backslashes += 1;
    }
    if (backslashes % 2 === 0) {
      return q + 1;
    }
    i = q + 1;
  }
}

/** The string's value (escapes resolved); its raw text when malformed (JSON.parse will say why). */
function decode(text: string, start: number, end: number): string {
  const raw = text.slice(start, end);
  if (raw.indexOf('\\') === -1) {
    return raw.slice(1, -1);
  }
  try {
    return JSON.parse(raw) as string;
  } catch {
    return raw.slice(1, -1);
  }
}

function pathOf(stack: Level[], rootType: string | undefined): string {
  let path = rootType && /^[A-Z][A-Za-z]{0,63}$/.test(rootType) ? rootType : '$';
  for (const level of stack) {
    if (level.array) {
      path += `[${Math.max(0, level.count - 1)}]`;
    } else if (level.key !== undefined) {
      path += `.${level.key.slice(0, 64)}`;
    }
  }
  return path;
}
