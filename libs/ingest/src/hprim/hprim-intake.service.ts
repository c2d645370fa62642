import type { Pool, PoolClient } from 'pg';
import { GatewayError } from '@gw/platform';
import type { Principal } from '@gw/store';
import type { Extraction } from '../intake/extraction';
import type { IntakeReader } from '../intake/intake-input';
import { checkScopes } from '../intake/pipeline';
import type { IntakePipelineApi, IntakeResult } from '../intake/pipeline';
import { hprimExtraction } from './hprim.mapper';
import type { HprimCharset, HprimPart, HprimResult } from './hprim.reader';
import { HprimFormatError, looksLikeHprim, readHprim } from './hprim.reader';
import { LabCodeMap } from './lab-code.map';

/** Files extractions: the intake pipeline (matching, DocumentReference + Binary, facts, Provenance). */
export type ExtractionFiler = Pick<IntakePipelineApi, 'ingestExtractions'>;

/** One code whose results wait (GET /ingest/lab-codes/unmapped): no patient data, counts only. */
export interface UnmappedCode {
  lab: string;
  code: string;
  label: string;
  unit: string;
  held: number;
  firstHeldAt: string;
}

export interface HeldFiling {
  /** Parts filed again (document version + 1) and results filed from the queue. */
  parts: number;
  results: number;
  /** Parts the pipeline refused this time (their results stay held). */
  failed: number;
}

/**
 * HPRIM lab files into the intake pipeline, through each lab's code map: results whose local
 * code is mapped are filed with their LOINC code at once; the others are held (hprim_part,
 * hprim_held_result) and filed when their code is mapped, by filing the part again as the next
 * version of its document with every result mapped by then (the pipeline replaces a document
 * version's facts by the next one's).
 */
export class HprimIntake {
  readonly codes: LabCodeMap;
  private filer?: ExtractionFiler;

  constructor(private readonly pool: Pool) {
    this.codes = new LabCodeMap(pool);
  }

  /** The pipeline, set once it is built (it dispatches HPRIM bodies here: they depend on each other). */
  useFiler(filer: ExtractionFiler): void {
    this.filer = filer;
  }

  /**
   * The pipeline's text reader (IntakePipeline.registerTextReader): an HPRIM body read for the
   * caller's organization, its unmapped results held, the rest returned to be filed. A text body
   * that is not HPRIM is refused (415), as is a body read without a caller (nothing to map it for).
   */
  readonly reader: IntakeReader = async (body, { principal, source }) => {
    if (!looksLikeHprim(body)) {
      throw new GatewayError('unsupported-media-type', {
        text: 'Unsupported text document: expected an HPRIM Médecins file (a CDA, an IHE XDM zip otherwise)',
        expression: 'Content-Type',
      });
    }
    if (!principal?.organization) {
      throw new GatewayError('forbidden', { text: 'HPRIM results are filed for an organization: the client has none' });
    }
    const { extractions } = await this.prepare(principal, body, { organization: principal.organization, source });
    return extractions;
  };

  /**
   * Reads an HPRIM file and files it for `organization` (the structure the results belong to).
   * @throws GatewayError invalid (400) naming the line when the file cannot be read.
   */
  async ingest(p: Principal, body: Buffer, opts: { organization: string; source: string }): Promise<IntakeResult> {
    const filer = this.requireFiler();
    const { extractions, held } = await this.prepare(p, body, opts);
    const result = await filer.ingestExtractions(p, extractions, opts.source);
    if (result.status === 'rejected') {
      await this.release(held);
    }
    return result;
  }

  /**
   * Reads the file, maps each part through its lab's code map, holds the unmapped results (held
   * before filing, so that a crash between the two loses nothing) and says so in the part's
   * warnings (the pipeline's OperationOutcome).
   */
  private async prepare(
    p: Principal,
    body: Buffer,
    opts: { organization: string; source: string },
  ): Promise<{ extractions: Extraction[]; held: { id: string; created: boolean; previous: number }[] }> {
    let file;
    try {
      file = readHprim(body);
    } catch (e) {
      if (e instanceof HprimFormatError) {
        throw new GatewayError('invalid', { text: e.message, expression: e.location });
      }
      throw e;
    }
    const planned: { part: HprimPart; unmapped: HprimResult[]; version: number }[] = [];
    const extractions: Extraction[] = [];
    const lookups = new Map<string, Awaited<ReturnType<LabCodeMap['lookup']>>>();
    for (const part of file.parts) {
      const codes = lookups.get(part.lab) ?? (await this.codes.lookup(opts.organization, part.lab));
      lookups.set(part.lab, codes);
      const version = (await this.storedVersion(opts.organization, part.digest)) + 1;
      const { extraction, unmapped } = hprimExtraction(part, file.charset, { codes, version });
      if (unmapped.length > 0) {
        extraction.warnings.push(heldWarning(part.lab, unmapped.length));
      }
      extractions.push(extraction);
      planned.push({ part, unmapped, version });
    }
    // Scopes first: a caller that may not file these results holds nothing either.
    checkScopes(p, extractions);
    const held = await this.hold(p, opts, file.charset, planned);
    return { extractions, held };
  }

  /** Codes with held results, per lab, for one structure (or every structure for an operator). */
  async unmapped(organization: string | undefined): Promise<UnmappedCode[]> {
    const { rows } = await this.pool.query<{
      lab: string;
      code: string;
      label: string;
      unit: string;
      held: string;
      first: Date;
    }>(
      `SELECT p.lab, h.code, min(h.label) AS label, min(h.unit) AS unit, count(*) AS held, min(h.held_at) AS first
         FROM hprim_held_result h JOIN hprim_part p ON p.id = h.part_id
        WHERE h.status = 'held' AND ($1::text IS NULL OR p.organization = $1)
        GROUP BY p.lab, h.code ORDER BY p.lab, h.code`,
      [organization ?? null],
    );
    return rows.map((r) => ({
      lab: r.lab,
      code: r.code,
      label: r.label,
      unit: r.unit,
      held: Number(r.held),
      firstHeldAt: r.first.toISOString(),
    }));
  }

  /**
   * Files the held results of a lab whose codes are now mapped: each part concerned is filed
   * again (next document version, every result mapped by then), as the client that sent it.
   */
  async fileHeld(organization: string, lab: string): Promise<HeldFiling> {
    const filer = this.requireFiler();
    const { rows } = await this.pool.query<{ id: string }>(
      `SELECT DISTINCT p.id FROM hprim_part p
         JOIN hprim_held_result h ON h.part_id = p.id AND h.status = 'held'
         JOIN hprim_lab_code c ON c.organization = p.organization AND c.lab = p.lab AND c.code = h.code
        WHERE p.organization = $1 AND p.lab = $2 ORDER BY p.id`,
      [organization, lab],
    );
    const done: HeldFiling = { parts: 0, results: 0, failed: 0 };
    const codes = await this.codes.lookup(organization, lab);
    for (const { id } of rows) {
      const filed = await this.inTransaction((c) => this.fileHeldPart(c, filer, id, codes));
      if (filed === undefined) {
        done.failed++;
      } else if (filed > 0) {
        done.parts++;
        done.results += filed;
      }
    }
    return done;
  }

  /** One part, locked while it is filed (two mappings saved together file it once each, in turn). */
  private async fileHeldPart(
    c: PoolClient,
    filer: ExtractionFiler,
    id: string,
    codes: Awaited<ReturnType<LabCodeMap['lookup']>>,
  ): Promise<number | undefined> {
    const { rows } = await c.query<{
      part: Omit<HprimPart, 'raw'>;
      raw: Buffer;
      charset: HprimCharset;
      version: number;
      filer: Principal;
      source: string;
    }>('SELECT part, raw, charset, version, filer, source FROM hprim_part WHERE id = $1 FOR UPDATE', [id]);
    const row = rows[0];
    if (!row) {
      return 0;
    }
    const part: HprimPart = { ...row.part, raw: row.raw };
    const nowMapped = part.results.filter((r) => codes(r.code)).map((r) => r.line);
    const { rows: waiting } = await c.query<{ line: number }>(
      "SELECT line FROM hprim_held_result WHERE part_id = $1 AND status = 'held' AND line = ANY($2::int[])",
      [id, nowMapped],
    );
    if (waiting.length === 0) {
      return 0; // filed meanwhile by another mapping
    }
    const version = row.version + 1;
    const { extraction } = hprimExtraction(part, row.charset, { codes, version });
    // A refusal (the pipeline throws when its only document is refused) leaves the results held.
    const result = await filer.ingestExtractions(row.filer, [extraction], row.source).catch((e: unknown) => {
      if (e instanceof GatewayError) return undefined;
      throw e;
    });
    if (!result || result.status === 'rejected') {
      return undefined;
    }
    await c.query(
      "UPDATE hprim_held_result SET status = 'filed', filed_at = now() WHERE part_id = $1 AND line = ANY($2::int[])",
      [id, waiting.map((w) => w.line)],
    );
    await c.query('UPDATE hprim_part SET version = $2, updated_at = now() WHERE id = $1', [id, version]);
    return waiting.length;
  }

  /** The document version last filed for a part (0 when never held). */
  private async storedVersion(organization: string, digest: string): Promise<number> {
    const { rows } = await this.pool.query<{ version: number }>(
      'SELECT version FROM hprim_part WHERE organization = $1 AND digest = $2',
      [organization, digest],
    );
    return rows[0]?.version ?? 0;
  }

  /** Stores the parts with unmapped results and their held rows; returns what to drop if filing is refused. */
  private async hold(
    p: Principal,
    opts: { organization: string; source: string },
    charset: HprimCharset,
    planned: { part: HprimPart; unmapped: HprimResult[]; version: number }[],
  ): Promise<{ id: string; created: boolean; previous: number }[]> {
    const filer: Principal = {
      clientId: p.clientId,
      organization: p.organization,
      admin: p.admin,
      scopes: p.scopes,
      ...(p.grants ? { grants: p.grants } : {}),
    };
    return this.inTransaction(async (c) => {
      const held: { id: string; created: boolean; previous: number }[] = [];
      for (const { part, unmapped, version } of planned.filter((x) => x.unmapped.length > 0)) {
        const { raw, ...parsed } = part;
        const { rows } = await c.query<{ id: string; created: boolean }>(
          `INSERT INTO hprim_part (organization, lab, digest, charset, part, raw, version, filer, source)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (organization, digest) DO UPDATE SET version = EXCLUDED.version, filer = EXCLUDED.filer,
             source = EXCLUDED.source, updated_at = now()
           RETURNING id, (xmax = 0) AS created`,
          [opts.organization, part.lab, part.digest, charset, parsed, raw, version, filer, opts.source],
        );
        const id = rows[0]!.id;
        for (const r of unmapped) {
          await c.query(
            `INSERT INTO hprim_held_result (part_id, line, code, label, unit, status) VALUES ($1, $2, $3, $4, $5, 'held')
             ON CONFLICT (part_id, line) DO UPDATE SET status = 'held', filed_at = NULL`,
            [id, r.line, r.code, r.label, r.unit],
          );
        }
        held.push({ id, created: rows[0]!.created, previous: version - 1 });
      }
      return held;
    });
  }

  /** Undoes {@link hold} for a file the pipeline refused. */
  private async release(held: { id: string; created: boolean; previous: number }[]): Promise<void> {
    await this.inTransaction(async (c) => {
      for (const h of held) {
        if (h.created) {
          await c.query('DELETE FROM hprim_part WHERE id = $1', [h.id]);
        } else {
          await c.query('UPDATE hprim_part SET version = $2 WHERE id = $1', [h.id, h.previous]);
        }
      }
    });
  }

  private requireFiler(): ExtractionFiler {
    if (!this.filer) {
      throw new GatewayError('internal', { text: 'HPRIM intake has no pipeline to file into' });
    }
    return this.filer;
  }

  private async inTransaction<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }
}

function heldWarning(lab: string, count: number): { location: string; text: string } {
  return {
    location: `lab ${lab}`,
    text: `${count} result(s) held until their lab codes are mapped (GET /ingest/lab-codes/unmapped, PUT /ingest/lab-codes/{lab}/{code})`,
  };
}
