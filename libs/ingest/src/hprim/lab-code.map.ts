import type { Pool } from 'pg';
import { luhnKey } from '@gw/fhir';
import { GatewayError } from '@gw/platform';
import type { CodeLookup, LabCodeEntry } from './hprim.mapper';
import { isUcum } from './ucum';

/** A lab's key (FINESS or the header's lab line, see labKeyOf) and a local code: printable, no slash. */
const KEY = /^[^/\\\p{Cc}]{1,80}$/u;
const LOINC_CODE = /^(\d{1,7})-(\d)$/;

/** A mapping as the API shows it. */
export interface LabCodeMapping extends LabCodeEntry {
  lab: string;
  updatedBy: string;
  updatedAt: string;
}

/** What a client sends to map one code (PUT /ingest/lab-codes/:lab/:code). */
export interface LabCodeInput {
  loinc?: unknown;
  display?: unknown;
  unit?: unknown;
  factor?: unknown;
}

/** Whether a LOINC code has its format (1–7 digits, dash, check digit) and a right mod-10 check digit. */
export function isLoincCode(code: string): boolean {
  const m = LOINC_CODE.exec(code);
  return !!m && luhnKey(m[1]!) === m[2];
}

/** Checks a lab key or a local code from a URL. */
export function checkKey(what: 'lab' | 'code', value: string): string {
  if (!KEY.test(value) || value.trim() !== value) {
    throw new GatewayError('invalid', {
      text: `${what} must be 1 to 80 printable characters, without slashes or surrounding spaces`,
    });
  }
  return value;
}

/** Validates a mapping: LOINC code and check digit, a display, a UCUM unit, a positive factor only with a unit. */
export function validateLabCode(code: string, input: LabCodeInput): LabCodeEntry {
  const problems: { text: string; expression: string }[] = [];
  const { loinc, display, unit, factor } = input ?? {};
  if (typeof loinc !== 'string' || !isLoincCode(loinc)) {
    problems.push({ text: 'loinc must be a LOINC code with its check digit (e.g. 4548-4)', expression: 'loinc' });
  }
  if (typeof display !== 'string' || display.trim() === '' || display.length > 200) {
    problems.push({ text: 'display must be the LOINC name (1 to 200 characters)', expression: 'display' });
  }
  if (unit !== undefined && unit !== null && (typeof unit !== 'string' || !isUcum(unit))) {
    problems.push({
      text: 'unit must be a UCUM code (case-sensitive, e.g. mg/dL, 10*9/L, umol/L)',
      expression: 'unit',
    });
  }
  if (factor !== undefined && factor !== null) {
    if (typeof factor !== 'number' || !Number.isFinite(factor) || factor <= 0) {
      problems.push({ text: 'factor must be a positive number', expression: 'factor' });
    } else if (typeof unit !== 'string') {
      problems.push({ text: 'factor converts into unit: give the unit too', expression: 'factor' });
    }
  }
  if (problems.length > 0) {
    throw new GatewayError('invalid', problems);
  }
  return {
    code,
    loinc: loinc as string,
    display: (display as string).trim(),
    ...(typeof unit === 'string' ? { unit } : {}),
    ...(typeof factor === 'number' && factor !== 1 ? { factor } : {}),
  };
}

interface Row {
  lab: string;
  code: string;
  loinc: string;
  display: string;
  unit: string | null;
  factor: number | null;
  updated_by: string;
  updated_at: Date;
}

/** Each structure's code maps of its labs (table hprim_lab_code). */
export class LabCodeMap {
  constructor(private readonly pool: Pool) {}

  async list(organization: string, lab: string): Promise<LabCodeMapping[]> {
    const { rows } = await this.pool.query<Row>(
      'SELECT * FROM hprim_lab_code WHERE organization = $1 AND lab = $2 ORDER BY code',
      [organization, lab],
    );
    return rows.map(toMapping);
  }

  /** The lookup the mapper uses for one lab (read once per file). */
  async lookup(organization: string, lab: string): Promise<CodeLookup> {
    const byCode = new Map((await this.list(organization, lab)).map((m) => [m.code, m]));
    return (code) => byCode.get(code);
  }

  /** Adds or replaces one code's mapping; returns it and whether it was new. */
  async put(
    organization: string,
    lab: string,
    entry: LabCodeEntry,
    by: string,
  ): Promise<{ mapping: LabCodeMapping; created: boolean }> {
    const { rows } = await this.pool.query<Row & { inserted: boolean }>(
      `INSERT INTO hprim_lab_code (organization, lab, code, loinc, display, unit, factor, updated_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (organization, lab, code) DO UPDATE SET loinc = EXCLUDED.loinc, display = EXCLUDED.display,
         unit = EXCLUDED.unit, factor = EXCLUDED.factor, updated_by = EXCLUDED.updated_by, updated_at = now()
       RETURNING *, (xmax = 0) AS inserted`,
      [organization, lab, entry.code, entry.loinc, entry.display, entry.unit ?? null, entry.factor ?? null, by],
    );
    return { mapping: toMapping(rows[0]!), created: rows[0]!.inserted };
  }

  /** Removes a mapping (results filed with it keep their LOINC code); false when there was none. */
  async remove(organization: string, lab: string, code: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      'DELETE FROM hprim_lab_code WHERE organization = $1 AND lab = $2 AND code = $3',
      [organization, lab, code],
    );
    return (rowCount ?? 0) > 0;
  }
}

function toMapping(r: Row): LabCodeMapping {
  return {
    lab: r.lab,
    code: r.code,
    loinc: r.loinc,
    display: r.display,
    ...(r.unit ? { unit: r.unit } : {}),
    ...(r.factor !== null ? { factor: r.factor } : {}),
    updatedBy: r.updated_by,
    updatedAt: r.updated_at.toISOString(),
  };
}
