import type { Organization } from '@medplum/fhirtypes';
import type { FhirRepository, Queryable } from '@gw/store';
import { TERRITORY_COMMUNE_EXTENSION, mssanteMailbox } from '../exchange.codes';

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
    private readonly repo: FhirRepository,
    private readonly ttlMs = 5000,
  ) {}

  /** `db`: the caller's transaction when it holds one (a second pool connection could starve the pool). */
  async forCommune(insee: string | undefined, db?: Queryable): Promise<Cpts | undefined> {
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

  private async load(db: Queryable | undefined): Promise<Map<string, Cpts>> {
    const orgs = await this.repo.listContaining<Organization>(
      'Organization',
      { type: [{ coding: [{ code: 'CPTS' }] }] },
      db,
    );
    const out = new Map<string, Cpts>();
    for (const org of orgs) {
      if (org.active === false) {
        continue;
      }
      const cpts: Cpts = {
        ref: `Organization/${org.id}`,
        name: org.name ?? (org.id as string),
        mailbox: mssanteMailbox(org.telecom),
      };
      for (const e of org.extension ?? []) {
        const code =
          e.url === TERRITORY_COMMUNE_EXTENSION ? (e.valueCode ?? e.valueCoding?.code ?? e.valueString) : undefined;
        if (code) {
          out.set(code, cpts);
        }
      }
    }
    return out;
  }
}
