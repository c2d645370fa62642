import type { Organization } from '@medplum/fhirtypes';
import type { Pool } from 'pg';
import type { Queryable } from '@gw/store';
import { TERRITORY_COMMUNE_EXTENSION, mssanteMailbox } from './exchange.codes';

export interface Cpts {
  ref: string;
  name: string;
  mailbox?: string;
}

/**
 * CPTS territories: active Organizations typed CPTS, with the INSEE communes of their projet de
 * santé (extension territory-commune). Few rows; kept in memory for a few seconds.
 */
export class CptsDirectory {
  private byCommune?: Map<string, Cpts>;
  private loadedAt = 0;

  constructor(
    private readonly pool: Pool,
    private readonly ttlMs = 5000,
  ) {}

  /** `db`: the caller's transaction when it holds one (a second pool connection could starve the pool). */
  async forCommune(insee: string | undefined, db: Queryable = this.pool): Promise<Cpts | undefined> {
    if (!insee) {
      return undefined;
    }
    if (!this.byCommune || Date.now() - this.loadedAt > this.ttlMs) {
      this.byCommune = await this.load(db);
      this.loadedAt = Date.now();
    }
    return this.byCommune.get(insee);
  }

  /** Forget the cache (a territory was just changed). */
  invalidate(): void {
    this.byCommune = undefined;
  }

  private async load(db: Queryable): Promise<Map<string, Cpts>> {
    const res = await db.query<{ id: string; content: string }>(
      `SELECT id, content FROM resource WHERE resource_type = 'Organization' AND NOT deleted
         AND content::jsonb @> '{"type":[{"coding":[{"code":"CPTS"}]}]}' ORDER BY last_updated`,
    );
    const out = new Map<string, Cpts>();
    for (const row of res.rows) {
      const org = JSON.parse(row.content) as Organization;
      if (org.active === false) {
        continue;
      }
      const cpts: Cpts = { ref: `Organization/${row.id}`, name: org.name ?? row.id, mailbox: mssanteMailbox(org.telecom) };
      for (const e of org.extension ?? []) {
        const code = e.url === TERRITORY_COMMUNE_EXTENSION ? (e.valueCode ?? e.valueCoding?.code ?? e.valueString) : undefined;
        if (code) {
          out.set(code, cpts);
        }
      }
    }
    return out;
  }
}
