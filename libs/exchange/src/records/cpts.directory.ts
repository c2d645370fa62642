import type { Organization } from '@medplum/fhirtypes';
import type { Logger } from '@gw/platform';
import type { FhirRepository, Queryable } from '@gw/store';
import { TERRITORY_COMMUNE_EXTENSION, mssanteMailbox } from '../exchange.codes';

export interface Cpts {
  ref: string;
  name: string;
  mailbox?: string;
}

/**
 * Who covers a commune: one CPTS, nobody, or several (`conflict`, the CPTS claiming it). A
 * conflict routes to none of them until an operator settles it (GET /admin/cpts lists it).
 */
export interface CommuneCoverage {
  cpts?: Cpts;
  conflict?: Cpts[];
}

/** The INSEE communes an Organization lists as its territory (extension territory-commune). */
export function territoryCommunes(org: Organization): string[] {
  const out: string[] = [];
  for (const e of org.extension ?? []) {
    const code =
      e.url === TERRITORY_COMMUNE_EXTENSION ? (e.valueCode ?? e.valueCoding?.code ?? e.valueString) : undefined;
    if (code && !out.includes(code)) {
      out.push(code);
    }
  }
  return out;
}

/** The Organizations typed CPTS (type code `CPTS`), active or not, oldest first. */
export async function cptsOrganizations(repo: FhirRepository, db?: Queryable): Promise<Organization[]> {
  return repo.listContaining<Organization>('Organization', { type: [{ coding: [{ code: 'CPTS' }] }] }, db);
}

/**
 * CPTS territories: active Organizations typed CPTS, with the INSEE communes of their projet de
 * santé (extension territory-commune), as granted by an operator. Few rows; kept in memory for a
 * few seconds.
 */
export class CptsDirectory {
  private byCommune?: Map<string, Cpts[]>;
  private loadedAt = 0;

  constructor(
    private readonly repo: FhirRepository,
    private readonly ttlMs = 5000,
    private readonly logger?: Logger,
  ) {}

  /** `db`: the caller's transaction when it holds one (a second pool connection could starve the pool). */
  async coverage(insee: string | undefined, db?: Queryable): Promise<CommuneCoverage> {
    if (!insee) {
      return {};
    }
    if (!this.byCommune || Date.now() - this.loadedAt > this.ttlMs) {
      this.byCommune = await this.load(db);
      this.loadedAt = Date.now();
    }
    const claimants = this.byCommune.get(insee) ?? [];
    return claimants.length > 1 ? { conflict: claimants } : { cpts: claimants[0] };
  }

  /** Forget the cache (a territory was just changed). */
  invalidate(): void {
    this.byCommune = undefined;
  }

  private async load(db: Queryable | undefined): Promise<Map<string, Cpts[]>> {
    const out = new Map<string, Cpts[]>();
    for (const org of await cptsOrganizations(this.repo, db)) {
      if (org.active === false) {
        continue;
      }
      const cpts: Cpts = {
        ref: `Organization/${org.id}`,
        name: org.name ?? (org.id as string),
        mailbox: mssanteMailbox(org.telecom),
      };
      for (const code of territoryCommunes(org)) {
        out.set(code, [...(out.get(code) ?? []), cpts]);
      }
    }
    for (const [commune, claimants] of out) {
      if (claimants.length > 1) {
        // Territory configuration, no patient data: the operator settles it (GET /admin/cpts).
        this.logger?.warn(
          { commune, cpts: claimants.map((c) => c.ref) },
          'CPTS territory conflict: several active CPTS cover this commune; its discharges go to none of them',
        );
      }
    }
    return out;
  }
}
