/**
 * UCUM (https://ucum.org/ucum) for lab results: a syntax check of the case-sensitive codes a code
 * map may name, and the units French labs print mapped to their UCUM codes.
 */

const PREFIXES = ['da', 'Y', 'Z', 'E', 'P', 'T', 'G', 'M', 'k', 'h', 'd', 'c', 'm', 'u', 'n', 'p', 'f', 'a', 'z', 'y'];
/** Atoms that take a prefix (UCUM "metric" units) met in lab medicine. */
const METRIC = [
  'm',
  's',
  'g',
  'L',
  'l',
  'mol',
  'eq',
  'osm',
  'kat',
  'U',
  '[IU]',
  '[iU]',
  'Cel',
  'K',
  'Pa',
  'bar',
  'J',
  'W',
  'V',
  'A',
  'Hz',
  'Bq',
  'Gy',
  'Sv',
  'cd',
  'N',
  'C',
  'F',
  'Ohm',
  'S',
  'T',
  'H',
  'lm',
  'lx',
  'sr',
  'rad',
  't',
  '[CFU]',
  'm[Hg]',
  'm[H2O]',
];
/** Atoms without prefixes. */
const PLAIN = [
  'min',
  'h',
  'd',
  'wk',
  'mo',
  'a',
  '%',
  '[pH]',
  '[ppm]',
  '[ppb]',
  '[ppth]',
  "[arb'U]",
  '[HPF]',
  '[LPF]',
  '[drp]',
  '[degF]',
  '[in_i]',
  '[lb_av]',
  '[mi_i]',
  'deg',
];
const ATOMS = new Set([...METRIC, ...PLAIN]);
const METRIC_SET = new Set(METRIC);

/** A simple unit: (prefix) atom (exponent), or a factor such as 10*9 or 24, each with an optional {annotation}. */
function isSimpleUnit(text: string): boolean {
  if (/^\{[^{}]*\}$/.test(text)) {
    return true; // an annotation alone stands for the unity: {cells}
  }
  const unit = text.replace(/\{[^{}]*\}$/, '');
  if (/^\d+$/.test(unit) || /^10[*^][+-]?\d+$/.test(unit)) {
    return true; // a factor: 24 in g/(24.h), 10*9 in 10*9/L
  }
  const [, body = ''] = /^(.*?)([+-]?\d+)?$/.exec(unit) ?? [];
  return ATOMS.has(body) || PREFIXES.some((p) => body.startsWith(p) && METRIC_SET.has(body.slice(p.length)));
}

/**
 * Whether a text is a valid UCUM case-sensitive code built from the atoms of lab medicine:
 * components joined by `.` and `/`, parentheses, exponents, annotations (`{1.73_m2}`). `1` is the
 * unity (ratios, INR).
 */
export function isUcum(code: string): boolean {
  if (!code || code.length > 64 || /\s/.test(code)) {
    return false;
  }
  if (code === '1') {
    return true;
  }
  return isTerm(code.startsWith('/') ? code.slice(1) : code);
}

function isTerm(term: string): boolean {
  // Split on top-level operators, keeping parentheses and annotations whole.
  const parts: string[] = [];
  let depth = 0;
  let brace = false;
  let current = '';
  for (const ch of term) {
    if (ch === '{') brace = true;
    if (ch === '}') brace = false;
    if (!brace && ch === '(') depth++;
    if (!brace && ch === ')') depth--;
    if (depth < 0) return false;
    if (!brace && depth === 0 && (ch === '.' || ch === '/')) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  if (depth !== 0 || brace) {
    return false;
  }
  return parts.every((p) => {
    if (p === '') return false;
    const paren = /^\((.*)\)$/.exec(p);
    return paren ? isTerm(paren[1]!) : isSimpleUnit(p);
  });
}

/** Units as French labs print them → UCUM. Exact spelling first: G/L (giga per litre, cell counts) is not g/L. */
const EXACT: Record<string, string> = {
  'G/L': '10*9/L',
  'G/l': '10*9/L',
  'T/L': '10*12/L',
  'T/l': '10*12/L',
  'g/L': 'g/L',
  'g/l': 'g/L',
};

/** Case-insensitive spellings (keys lower case, µ as u, ³ as 3, ² as 2, comma decimals as dots). */
const LOOSE: Record<string, string> = {
  'mg/l': 'mg/L',
  'mg/dl': 'mg/dL',
  'g/dl': 'g/dL',
  'ug/l': 'ug/L',
  'ug/dl': 'ug/dL',
  'ng/ml': 'ng/mL',
  'ng/l': 'ng/L',
  'pg/ml': 'pg/mL',
  'mmol/l': 'mmol/L',
  'umol/l': 'umol/L',
  'nmol/l': 'nmol/L',
  'pmol/l': 'pmol/L',
  'mol/l': 'mol/L',
  'meq/l': 'meq/L',
  'ui/l': 'U/L',
  'u/l': 'U/L',
  'mui/l': 'm[IU]/L',
  'mui/ml': 'm[IU]/mL',
  'uui/ml': 'u[IU]/mL',
  'ui/ml': '[IU]/mL',
  'kui/l': 'k[IU]/L',
  '%': '%',
  'p.cent': '%',
  fl: 'fL',
  u3: 'fL',
  pg: 'pg',
  '/mm3': '/mm3',
  'elements/mm3': '/mm3',
  '/ul': '/uL',
  'mm/h': 'mm/h',
  'mm/1h': 'mm/h',
  s: 's',
  sec: 's',
  secondes: 's',
  'ml/min/1.73m2': 'mL/min/{1.73_m2}',
  'ml/min/1.73 m2': 'mL/min/{1.73_m2}',
  'ml/min': 'mL/min',
  'mg/mmol': 'mg/mmol',
  'mg/g': 'mg/g',
  'g/24h': 'g/(24.h)',
  'mg/24h': 'mg/(24.h)',
  'mmol/24h': 'mmol/(24.h)',
  'mosm/kg': 'mosm/kg',
  kg: 'kg',
  mmhg: 'mm[Hg]',
  ratio: '1',
};

/** The UCUM code of a unit as a lab prints it, or undefined when it is not one we know. */
export function ucumOf(labUnit: string): string | undefined {
  const text = labUnit.trim();
  if (!text) {
    return undefined;
  }
  if (EXACT[text]) {
    return EXACT[text];
  }
  const loose = text
    .toLowerCase()
    .replace(/[µμ]/g, 'u')
    .replace(/³/g, '3')
    .replace(/²/g, '2')
    .replace(/(\d),(\d)/g, '$1.$2');
  return LOOSE[loose];
}
