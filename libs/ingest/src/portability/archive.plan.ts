/** What one file of a portability archive (or of a patient's XDM zip inside it) is to the import. */
export type EntryKind = 'xdm-zip' | 'cda' | 'pdf' | 'metadata' | 'other' | 'transverse';

export interface PlannedEntry {
  path: string;
  /** The patient unit (its XDM zip or folder), numbered from 1 in archive order; 0: none. */
  unit: number;
  kind: EntryKind;
  status: 'pending' | 'skipped';
  reason?: string;
}

/** Reasons recorded for files the import reads but does not file as documents. */
export const SKIP_REASONS = {
  transverse: 'transverse archive: structure-level data, not filed as patient documents',
  metadata: 'XDM metadata: read for the documents it describes',
  other: 'not a document of an IHE XDM subset (CDA XML or PDF)',
} as const;

const XDM_FOLDER = /(^|\/)IHE_XDM\//i;

/**
 * Sorts the file names of a portability archive (ANS PDLGC draft: one IHE XDM per patient plus a
 * transverse archive) into patient units and documents. A patient's XDM is either a zip anywhere in
 * the archive or a folder holding `IHE_XDM/` (its documents are grouped by the path before it).
 * Anything under a folder or zip named `TRANSVERS…` is the transverse archive. Directory entries
 * are left out. Within a unit, METADATA.XML comes first, then documents in path order (the
 * exporting software numbers them DOC0001… in the order it wrote them).
 */
export function planArchive(names: readonly string[]): { entries: PlannedEntry[]; units: number } {
  const unitOf = new Map<string, number>();
  const entries: PlannedEntry[] = [];
  for (const path of names) {
    if (path.endsWith('/')) {
      continue;
    }
    if (path.split('/').some((segment) => /^TRANSVERS/i.test(segment))) {
      entries.push({ path, unit: 0, kind: 'transverse', status: 'skipped', reason: SKIP_REASONS.transverse });
      continue;
    }
    if (/\.zip$/i.test(path)) {
      const unit = unitOf.size + 1;
      unitOf.set(`zip:${path}`, unit);
      entries.push({ path, unit, kind: 'xdm-zip', status: 'pending' });
      continue;
    }
    const folder = XDM_FOLDER.exec(path);
    if (!folder) {
      entries.push({ path, unit: 0, kind: 'other', status: 'skipped', reason: SKIP_REASONS.other });
      continue;
    }
    const key = `dir:${path.slice(0, folder.index)}`;
    let unit = unitOf.get(key);
    if (unit === undefined) {
      unit = unitOf.size + 1;
      unitOf.set(key, unit);
    }
    entries.push({ ...classifyXdmFile(path), unit });
  }
  entries.sort((a, b) => a.unit - b.unit || rank(a) - rank(b) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { entries, units: unitOf.size };
}

/** The files of one patient's XDM (folder or zip), relative or not: metadata, CDA, PDF or other. */
export function classifyXdmFile(path: string): Omit<PlannedEntry, 'unit'> {
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (/^METADATA\.XML$/i.test(base)) {
    return { path, kind: 'metadata', status: 'skipped', reason: SKIP_REASONS.metadata };
  }
  if (XDM_FOLDER.test(path) && /\.xml$/i.test(base)) {
    return { path, kind: 'cda', status: 'pending' };
  }
  if (XDM_FOLDER.test(path) && /\.pdf$/i.test(base)) {
    return { path, kind: 'pdf', status: 'pending' };
  }
  return { path, kind: 'other', status: 'skipped', reason: SKIP_REASONS.other };
}

function rank(e: PlannedEntry): number {
  return e.kind === 'metadata' ? 0 : 1;
}
