import { readFileSync } from 'node:fs';
import type { Pool } from 'pg';
import { Terminology } from '@gw/ingest';

/** One entry of the CIS/CIP → ATC map (ind_drug_atc); `code` is a CIS (8 digits) or a CIP7/CIP13. */
export interface DrugAtc {
  code: string;
  atc: string;
  source: string;
}

/** An ATC code at any level: A, A10, A10B, A10BA, A10BA02. */
const ATC_CODE = /^[A-Z](\d{2}([A-Z]([A-Z](\d{2})?)?)?)?$/;
const CIS = /^\d{8}$/;
const CIP = /^(\d{7}|\d{13})$/;

/**
 * Tab-separated lines as fields. BDPM files are Windows-1252: read as latin1, the codes (ASCII
 * digits and letters) come out intact whatever the labels' accents.
 */
function lines(text: string): string[][] {
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => l.split('\t').map((f) => f.trim()));
}

/**
 * `CIS_CIP_bdpm.txt` of the Base de données publique des médicaments (no header, tab-separated):
 * column 1 the CIS, 2 the CIP7, 7 the CIP13 (the others — label, status, price… — are not read).
 * Returns each CIS's presentation codes.
 */
export function parseCisCip(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of lines(text)) {
    const [cis, cip7, , , , , cip13] = f;
    if (!cis || !CIS.test(cis)) continue;
    const codes = out.get(cis) ?? [];
    for (const c of [cip7, cip13]) if (c && CIP.test(c)) codes.push(c);
    out.set(cis, codes);
  }
  return out;
}

/**
 * A CIS → ATC file (no header, tab-separated): column 1 the CIS, column 2 its ATC code — the layout
 * of the BDPM's `CIS_MITM.txt` (CIS, ATC, name, link); a CIS may appear on several lines.
 */
export function parseCisAtc(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [cis, atc] of lines(text)) {
    if (!cis || !atc || !CIS.test(cis) || !ATC_CODE.test(atc)) continue;
    out.set(cis, [...(out.get(cis) ?? []), atc]);
  }
  return out;
}

/** The map entries of the two BDPM files: each CIS and each of its CIP7/CIP13 under each ATC code of the CIS. */
export function bdpmEntries(cisCip: Map<string, string[]>, cisAtc: Map<string, string[]>, source: string): DrugAtc[] {
  const out: DrugAtc[] = [];
  for (const [cis, atcs] of cisAtc) {
    for (const atc of atcs) {
      for (const code of [cis, ...(cisCip.get(cis) ?? [])]) out.push({ code, atc, source });
    }
  }
  return out;
}

/**
 * The gateway's own map format (fhir-profiles/drug-atc/drug-atc.tsv): tab-separated
 * `code  atc  source`, `#` comments; code a CIS or a CIP7/CIP13. Throws on a malformed line, naming it.
 */
export function parseMapFile(text: string, file: string): DrugAtc[] {
  return text
    .split(/\r?\n/)
    .map((l, i) => ({ l, n: i + 1 }))
    .filter(({ l }) => l.trim() !== '' && !l.startsWith('#'))
    .map(({ l, n }) => {
      const [code = '', atc = '', source = file] = l.split('\t').map((f) => f.trim());
      if (!(CIS.test(code) || CIP.test(code)) || !ATC_CODE.test(atc)) {
        throw new Error(`${file}:${n}: expected "<CIS or CIP> <TAB> <ATC> [<TAB> source]"`);
      }
      return { code, atc, source };
    });
}

/** Adds entries to ind_drug_atc (already present: kept); returns how many were new. */
export async function loadDrugAtc(pool: Pool, entries: DrugAtc[]): Promise<number> {
  let added = 0;
  for (let i = 0; i < entries.length; i += 5000) {
    const chunk = entries.slice(i, i + 5000);
    const res = await pool.query(
      `INSERT INTO ind_drug_atc (system, code, atc, source)
       SELECT $1, code, atc, source FROM unnest($2::text[], $3::text[], $4::text[]) AS t(code, atc, source)
       ON CONFLICT DO NOTHING`,
      [Terminology.BDPM, chunk.map((e) => e.code), chunk.map((e) => e.atc), chunk.map((e) => e.source)],
    );
    added += res.rowCount ?? 0;
  }
  return added;
}

/** Reads the BDPM files (latin1) into map entries. */
export function readBdpmFiles(cisCipFile: string, cisAtcFile: string): DrugAtc[] {
  const cisCip = parseCisCip(readFileSync(cisCipFile, 'latin1'));
  const cisAtc = parseCisAtc(readFileSync(cisAtcFile, 'latin1'));
  return bdpmEntries(cisCip, cisAtc, 'BDPM');
}
