import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ContactPoint, Practitioner } from '@medplum/fhirtypes';
import { EMAIL_TYPE_EXTENSION, IDNATPS, RPPS } from '@gw/fhir';
import { GatewayError } from '@gw/platform';
import type { Principal } from '../repository/access.policy';
import { ANNUAIRE_SANTE, DIRECTORY_ORG, DIRECTORY_SOURCE_SYSTEM } from './directory.identity';
import type { NewVersion } from '../repository/persist';
import type { FhirRepository, StoredResource } from '../repository/fhir.repository';
import { OWNER_TAG_SYSTEM } from '../repository/fhir.repository';

/** The import acts as an operator: it may change every directory entry (and takes over those it lists). */
export const DIRECTORY_IMPORT_PRINCIPAL: Principal = {
  clientId: 'directory-import',
  organization: DIRECTORY_ORG,
  admin: true,
  scopes: ['system/*.cruds'],
};

const PROFESSION_SYSTEM = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';

/**
 * Columns read by name from the header line (Annuaire Santé public extractions, pipe-separated;
 * see docs/directory.md for the layout and its source). Other columns are ignored.
 */
const PS = {
  type: "Type d'identifiant PP",
  id: 'Identifiant PP',
  idNat: 'Identification nationale PP',
  civility: "Libellé civilité d'exercice",
  family: "Nom d'exercice",
  given: "Prénom d'exercice",
  profession: 'Code profession',
  professionLabel: 'Libellé profession',
};
const MSS = {
  kind: 'Type de BAL',
  address: 'Adresse BAL',
  idNat: 'Identification nationale PP',
  structure: 'Identification Structure',
  unlisted: 'Liste rouge',
};

const BATCH = 500;

export interface DirectoryImportStats {
  run: number;
  psLines: number;
  professionals: number;
  created: number;
  updated: number;
  unchanged: number;
  deactivated: number;
  mailboxes: number;
  unlistedMailboxes: number;
  mailboxesGone: number;
}

export interface DirectoryImportOptions {
  /** PS_LibreAcces_Personne_activite extraction (full). */
  psFile: string;
  /** Extraction_Correspondance_MSSante (full); without it, mailboxes stay as the last import left them. */
  mssFile?: string;
  /** Called with a progress line at most every `progressMs` (and at the end of each phase). */
  onProgress?: (line: string) => void;
  progressMs?: number;
}

/**
 * Imports the Annuaire Santé extractions: streamed line by line, staged in batches, then one
 * Practitioner per RPPS written in batches of 500. Idempotent (a professional whose lines and
 * listed mailboxes did not change gets no new version) and incremental (a professional or a
 * mailbox absent from a new full extraction becomes inactive).
 */
export class DirectoryImporter {
  constructor(private readonly repo: FhirRepository) {}

  async run(opts: DirectoryImportOptions): Promise<DirectoryImportStats> {
    const pool = this.repo.pool;
    const run = Number(
      (
        await pool.query<{ id: string }>(
          'INSERT INTO directory_import_run (ps_file, mss_file) VALUES ($1, $2) RETURNING id',
          [opts.psFile, opts.mssFile ?? null],
        )
      ).rows[0].id,
    );
    const stats: DirectoryImportStats = {
      run,
      psLines: 0,
      professionals: 0,
      created: 0,
      updated: 0,
      unchanged: 0,
      deactivated: 0,
      mailboxes: 0,
      unlistedMailboxes: 0,
      mailboxesGone: 0,
    };
    const progress = throttle(opts.onProgress, opts.progressMs ?? 5000);
    try {
      if (opts.mssFile) {
        await this.loadMailboxes(run, opts.mssFile, stats, progress);
      }
      await this.stageProfessionals(run, opts.psFile, stats, progress);
      await this.writePractitioners(run, stats, progress);
      await this.deactivateMissing(run, stats);
      progress(`done: ${JSON.stringify(stats)}`, true);
      await pool.query('UPDATE directory_import_run SET finished_at = now(), stats = $2 WHERE id = $1', [
        run,
        JSON.stringify(stats),
      ]);
      return stats;
    } finally {
      await pool.query('DELETE FROM directory_ps_line WHERE run = $1', [run]);
    }
  }

  private async loadMailboxes(
    run: number,
    file: string,
    stats: DirectoryImportStats,
    progress: Progress,
  ): Promise<void> {
    let rows: unknown[][] = [];
    const flush = async (): Promise<void> => {
      if (rows.length === 0) {
        return;
      }
      const cols = [0, 1, 2, 3, 4].map((i) => rows.map((r) => r[i]));
      await this.repo.pool.query(
        `INSERT INTO directory_mailbox (address, kind, id_nat_ps, structure_id, unlisted, active, last_seen_run)
         SELECT DISTINCT ON (a) a, k, p, s, u, true, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[]) AS t(a, k, p, s, u)
         ON CONFLICT (address) DO UPDATE SET kind = EXCLUDED.kind, id_nat_ps = EXCLUDED.id_nat_ps, structure_id = EXCLUDED.structure_id,
           unlisted = EXCLUDED.unlisted, active = true, last_seen_run = EXCLUDED.last_seen_run`,
        [...cols, run],
      );
      rows = [];
    };
    await readPipeFile(
      file,
      Object.values(MSS).filter((c) => c !== MSS.unlisted),
      async (get) => {
        const address = get(MSS.address).toLowerCase();
        if (!address.includes('@')) {
          return;
        }
        const unlisted = /^(o|oui|1|true|y|yes)$/i.test(get(MSS.unlisted));
        rows.push([address, get(MSS.kind).toUpperCase(), get(MSS.idNat) || null, get(MSS.structure) || null, unlisted]);
        stats.mailboxes += 1;
        stats.unlistedMailboxes += unlisted ? 1 : 0;
        if (rows.length >= 1000) {
          await flush();
          progress(`mailboxes: ${stats.mailboxes} lines read`);
        }
      },
    );
    await flush();
    const gone = await this.repo.pool.query(
      'UPDATE directory_mailbox SET active = false WHERE active AND last_seen_run <> $1',
      [run],
    );
    stats.mailboxesGone = gone.rowCount ?? 0;
    progress(`mailboxes: ${stats.mailboxes} read, ${stats.mailboxesGone} gone`, true);
  }

  private async stageProfessionals(
    run: number,
    file: string,
    stats: DirectoryImportStats,
    progress: Progress,
  ): Promise<void> {
    let batch: { idNat: string; line: string }[] = [];
    const flush = async (): Promise<void> => {
      if (batch.length > 0) {
        await this.repo.pool.query(
          'INSERT INTO directory_ps_line (run, id_nat_ps, line) SELECT $1, i, l::jsonb FROM unnest($2::text[], $3::text[]) AS t(i, l)',
          [run, batch.map((b) => b.idNat), batch.map((b) => b.line)],
        );
        batch = [];
      }
    };
    await readPipeFile(file, [PS.type, PS.id, PS.idNat, PS.family], async (get) => {
      stats.psLines += 1;
      // Type d'identifiant PP 8 = RPPS (the national key); ADELI-only entries are not keyed here.
      if (get(PS.type) !== '8' || !/^\d{11}$/.test(get(PS.id))) {
        return;
      }
      const line = {
        rpps: get(PS.id),
        civility: get(PS.civility),
        family: get(PS.family),
        given: get(PS.given),
        profession: get(PS.profession),
        professionLabel: get(PS.professionLabel),
      };
      batch.push({ idNat: get(PS.idNat) || `8${line.rpps}`, line: JSON.stringify(line) });
      if (batch.length >= 1000) {
        await flush();
        progress(`professionals: ${stats.psLines} lines read`);
      }
    });
    await flush();
    progress(`professionals: ${stats.psLines} lines read`, true);
  }

  private async writePractitioners(run: number, stats: DirectoryImportStats, progress: Progress): Promise<void> {
    const pool = this.repo.pool;
    let after = '';
    for (;;) {
      const groups = (
        await pool.query<{ id_nat_ps: string; lines: PsLine[] }>(
          `SELECT id_nat_ps, jsonb_agg(line ORDER BY line::text) AS lines FROM directory_ps_line WHERE run = $1 AND id_nat_ps > $2
           GROUP BY id_nat_ps ORDER BY id_nat_ps LIMIT ${BATCH}`,
          [run, after],
        )
      ).rows;
      if (groups.length === 0) {
        return;
      }
      after = groups[groups.length - 1].id_nat_ps;
      await this.writeBatch(run, groups, stats);
      progress(
        `practitioners: ${stats.professionals} (${stats.created} created, ${stats.updated} updated, ${stats.unchanged} unchanged)`,
      );
    }
  }

  private async writeBatch(
    run: number,
    groups: { id_nat_ps: string; lines: PsLine[] }[],
    stats: DirectoryImportStats,
  ): Promise<void> {
    const ids = groups.map((g) => g.id_nat_ps);
    await this.repo.withTransaction(async (tx) => {
      const mailboxes = await tx.query<{ id_nat_ps: string; address: string }>(
        "SELECT id_nat_ps, address FROM directory_mailbox WHERE active AND NOT unlisted AND kind = 'PER' AND id_nat_ps = ANY($1) ORDER BY address",
        [ids],
      );
      const known = await tx.query<{ id_nat_ps: string; digest: string; active: boolean }>(
        'SELECT id_nat_ps, digest, active FROM directory_professional WHERE id_nat_ps = ANY($1)',
        [ids],
      );
      const holders = await tx.query<{ key: string; id: string }>(
        "SELECT key, id FROM directory_identity WHERE resource_type = 'Practitioner' AND key = ANY($1) FOR UPDATE",
        [ids.map((i) => `ps:${i}`)],
      );
      const versions: NewVersion[] = [];
      const seen: { idNat: string; id: string; digest: string }[] = [];
      for (const g of groups) {
        stats.professionals += 1;
        const listed = mailboxes.rows.filter((m) => m.id_nat_ps === g.id_nat_ps).map((m) => m.address);
        const digest = createHash('sha256')
          .update(JSON.stringify([g.lines, listed]))
          .digest('hex');
        const holder = holders.rows.find((h) => h.key === `ps:${g.id_nat_ps}`)?.id;
        const before = known.rows.find((k) => k.id_nat_ps === g.id_nat_ps);
        const existing = holder
          ? await this.repo.read(DIRECTORY_IMPORT_PRINCIPAL, 'Practitioner', holder, tx).catch(() => undefined)
          : undefined;
        if (existing && before?.digest === digest && before.active) {
          stats.unchanged += 1;
          seen.push({ idNat: g.id_nat_ps, id: existing.id, digest });
          continue;
        }
        const resource = practitionerOf(existing, g.id_nat_ps, g.lines, listed);
        const ctx = { principal: DIRECTORY_IMPORT_PRINCIPAL, requestId: `directory-import-${run}` };
        const v = existing
          ? this.repo.prepareUpdate(existing, { ...resource, id: existing.id }, ctx)
          : this.repo.prepareCreate(resource, ctx);
        versions.push(v);
        stats[existing ? 'updated' : 'created'] += 1;
        seen.push({ idNat: g.id_nat_ps, id: v.id, digest });
      }
      await this.repo.persist(tx, versions);
      await tx.query(
        `INSERT INTO directory_professional (id_nat_ps, practitioner_id, digest, last_seen_run, active)
         SELECT i, p, d, $4, true FROM unnest($1::text[], $2::text[], $3::text[]) AS t(i, p, d)
         ON CONFLICT (id_nat_ps) DO UPDATE SET practitioner_id = EXCLUDED.practitioner_id, digest = EXCLUDED.digest, last_seen_run = EXCLUDED.last_seen_run, active = true`,
        [seen.map((s) => s.idNat), seen.map((s) => s.id), seen.map((s) => s.digest), run],
      );
    });
  }

  /** A professional the new full extraction no longer lists: Practitioner active=false (one new version). */
  private async deactivateMissing(run: number, stats: DirectoryImportStats): Promise<void> {
    await this.repo.withTransaction(async (tx) => {
      const gone = await tx.query<{ practitioner_id: string }>(
        'UPDATE directory_professional SET active = false WHERE active AND last_seen_run <> $1 RETURNING practitioner_id',
        [run],
      );
      const versions: NewVersion[] = [];
      for (const row of gone.rows) {
        const existing: StoredResource | undefined = await this.repo
          .read(DIRECTORY_IMPORT_PRINCIPAL, 'Practitioner', row.practitioner_id, tx)
          .catch(() => undefined);
        if (existing?.json) {
          const current = JSON.parse(existing.json) as Practitioner;
          if (current.active !== false) {
            versions.push(
              this.repo.prepareUpdate(
                existing,
                { ...current, active: false },
                { principal: DIRECTORY_IMPORT_PRINCIPAL, requestId: `directory-import-${run}` },
              ),
            );
          }
        }
      }
      await this.repo.persist(tx, versions);
      stats.deactivated = versions.length;
    });
  }
}

interface PsLine {
  rpps: string;
  civility: string;
  family: string;
  given: string;
  profession: string;
  professionLabel: string;
}

/**
 * The directory's view of a professional over what is stored: identifiers (others kept), name,
 * professions, active; e-mail entries replaced by the listed personal MSSanté mailboxes (the
 * directory is authoritative for them), phones kept; owned by the directory, tagged with its source.
 */
function practitionerOf(
  existing: StoredResource | undefined,
  idNat: string,
  lines: PsLine[],
  listed: string[],
): Practitioner {
  const current = existing?.json ? (JSON.parse(existing.json) as Practitioner) : undefined;
  const first = lines[0];
  const professions = [
    ...new Map(lines.filter((l) => l.profession).map((l) => [l.profession, l.professionLabel])).entries(),
  ];
  const telecom: ContactPoint[] = [
    ...(current?.telecom ?? []).filter((t) => t.system !== 'email'),
    ...listed.map((address) => ({
      system: 'email' as const,
      value: address,
      extension: [{ url: EMAIL_TYPE_EXTENSION, valueCoding: { code: 'MSSANTE' } }],
    })),
  ];
  const others = (current?.identifier ?? []).filter((i) => i.system !== IDNATPS && i.system !== RPPS);
  const out: Practitioner = {
    ...(current ?? {}),
    resourceType: 'Practitioner',
    meta: {
      tag: [
        { system: OWNER_TAG_SYSTEM, code: DIRECTORY_ORG },
        { system: DIRECTORY_SOURCE_SYSTEM, code: ANNUAIRE_SANTE },
      ],
    },
    identifier: [{ system: IDNATPS, value: idNat }, { system: RPPS, value: first.rpps }, ...others],
    active: true,
    name: [
      {
        use: 'official',
        family: first.family,
        ...(first.given ? { given: [first.given] } : {}),
        ...(first.civility ? { prefix: [first.civility] } : {}),
      },
    ],
  };
  if (professions.length > 0) {
    out.qualification = professions.map(([code, display]) => ({
      code: { coding: [{ system: PROFESSION_SYSTEM, code, ...(display ? { display } : {}) }] },
    }));
  }
  if (telecom.length > 0) {
    out.telecom = telecom;
  } else {
    delete out.telecom;
  }
  return out;
}

type Progress = (line: string, force?: boolean) => void;

function throttle(sink: ((line: string) => void) | undefined, everyMs: number): Progress {
  let last = Date.now();
  return (line, force = false) => {
    if (sink && (force || Date.now() - last >= everyMs)) {
      last = Date.now();
      sink(line);
    }
  };
}

/**
 * Streams a pipe-separated extraction (header line first), calling `onRow` with a getter by column
 * name. Fails at once, naming them, when a `required` column is missing from the header.
 */
async function readPipeFile(
  file: string,
  required: string[],
  onRow: (get: (column: string) => string) => Promise<void>,
): Promise<void> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let index: Map<string, number> | undefined;
  for await (const raw of lines) {
    if (index === undefined) {
      const header = raw
        .replace(/^\uFEFF/, '')
        .split('|')
        .map((h) => h.trim());
      index = new Map(header.map((h, i) => [h, i]));
      const missing = required.filter((c) => !index?.has(c));
      if (missing.length > 0) {
        throw new GatewayError('invalid', {
          text: `${file}: missing column(s) ${missing.map((m) => `"${m}"`).join(', ')} in the header line`,
        });
      }
      continue;
    }
    if (raw.trim() === '') {
      continue;
    }
    const fields = raw.split('|');
    const map = index;
    await onRow((column) => {
      const i = map.get(column);
      return i === undefined ? '' : (fields[i] ?? '').trim();
    });
  }
}
