import type { Resource } from '@medplum/fhirtypes';
import type { PoolClient } from 'pg';
import type { FhirRepository, NewVersion, WriteContext } from '@gw/store';
import { markHistoricDischarges } from '@gw/exchange';
import type { TerritoryGenerator } from './generator';

export interface LoadProgress {
  /** Persons whose records are committed. */
  people: number;
  peopleTotal: number;
  resources: number;
  elapsedMs: number;
}

export interface TerritoryLoaderOptions {
  onProgress?: (p: LoadProgress) => void;
  /** Resources per transaction (default 400). */
  batchSize?: number;
  /** Transactions in flight (default 3: the next batch is validated while others commit). */
  inFlight?: number;
  /** Recorded as the writer of every version (resource_history.client_id, meta.source). */
  clientId?: string;
}

export interface LoadSummary {
  status: 'loaded' | 'already-loaded';
  /** Resources written by this call (0 when already loaded). */
  resources: number;
  perSecond: number;
  people: number;
  elapsedMs: number;
  /** `Organization/<id>` of the CPTS. */
  cpts: string;
  byType: Record<string, number>;
  /** Hospital discharges recorded as historic (not routed to MSSanté/MHD). */
  historicDischarges: number;
  /** Some resources were already there (an interrupted earlier load): kept and skipped. */
  resumed: boolean;
}

/**
 * Loads a {@link TerritoryGenerator} through the store's write path (validation against base R4
 * and the declared profiles, search index, the indicator projection trigger) in transactions of a
 * few hundred creates, a few in flight. Idempotent: the CPTS Organization is written last, so its
 * presence means "already loaded"; an interrupted load is resumed (existing ids skipped).
 * Territories of another seed, size or date have other ids: they coexist as other CPTS.
 */
export class TerritoryLoader {
  private readonly ctx: WriteContext;

  constructor(
    private readonly repo: FhirRepository,
    private readonly options: TerritoryLoaderOptions = {},
  ) {
    this.ctx = loaderContext(options.clientId);
  }

  async load(generator: TerritoryGenerator): Promise<LoadSummary> {
    const started = Date.now();
    const cpts = `Organization/${generator.cpts.id}`;
    const summary: LoadSummary = {
      status: 'loaded',
      resources: 0,
      perSecond: 0,
      people: 0,
      elapsedMs: 0,
      cpts,
      byType: {},
      historicDischarges: 0,
      resumed: false,
    };
    if ((await this.exists([generator.cpts])).length > 0) {
      return { ...summary, status: 'already-loaded', people: generator.options.patients };
    }
    const total = generator.options.patients;
    const batchSize = this.options.batchSize ?? 400;
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    const submit = async (resources: Resource[], people: number): Promise<void> => {
      while (inFlight.size >= (this.options.inFlight ?? 3)) {
        await Promise.race(inFlight);
      }
      if (failure) {
        throw failure;
      }
      const p = this.write(resources, summary).then(
        () => {
          summary.people += people;
          this.options.onProgress?.({
            people: summary.people,
            peopleTotal: total,
            resources: summary.resources,
            elapsedMs: Date.now() - started,
          });
        },
        (err: unknown) => {
          failure ??= err;
        },
      );
      const tracked = p.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    };
    try {
      const structures = generator.structures();
      for (let i = 0; i < structures.length; i += batchSize) {
        await submit(structures.slice(i, i + batchSize), 0);
      }
      let batch: Resource[] = [];
      let people = 0;
      for (const person of generator.people()) {
        batch.push(...person.resources);
        people++;
        if (batch.length >= batchSize) {
          await submit(batch, people);
          batch = [];
          people = 0;
        }
      }
      if (batch.length > 0) {
        await submit(batch, people);
      }
    } finally {
      // Whatever stopped the loop, the transactions in flight end (commit or roll back) before load() returns.
      await Promise.all(inFlight);
    }
    if (failure) {
      throw failure;
    }
    await this.write([generator.cpts], summary);
    summary.elapsedMs = Date.now() - started;
    summary.perSecond = summary.resources / Math.max(0.001, summary.elapsedMs / 1000);
    return summary;
  }

  /** One transaction: prepared creates (validated, indexed) in one statement, then the historic-discharge marks. */
  private async write(resources: Resource[], summary: LoadSummary): Promise<void> {
    await writeTerritoryBatch(this.repo, this.ctx, resources, summary, () => true);
  }

  /** `Type/id` of those resources already stored. */
  private async exists(resources: Resource[], db?: PoolClient): Promise<string[]> {
    return this.repo.existing(resources, db);
  }
}

/** Who writes the territory: an admin system client (its id in resource_history.client_id and meta.source). */
export function loaderContext(clientId = 'territory-loader'): WriteContext {
  return {
    principal: {
      clientId,
      organization: 'Organization/territory-loader',
      admin: true,
      scopes: ['system/*.cruds'],
    },
  };
}

/** What a batch write adds to the load's counts. */
export type BatchCounts = Pick<LoadSummary, 'resources' | 'byType' | 'historicDischarges' | 'resumed'>;

/**
 * THE write of a batch of territory resources, for both loaders (TerritoryLoader and the bulk
 * load): the creates prepared by the store (stamps, search rows, sharing rows; see
 * {@link prepareTerritoryBatch}), then {@link persistTerritoryBatch}.
 */
export async function writeTerritoryBatch(
  repo: FhirRepository,
  ctx: WriteContext,
  resources: Resource[],
  counts: BatchCounts,
  validate: (r: Resource) => boolean,
): Promise<void> {
  await persistTerritoryBatch(repo, prepareTerritoryBatch(repo, ctx, resources, validate), counts);
}

/**
 * The store's preparation of each create (CPU only, no database: a bulk load prepares the next
 * batch while the previous one commits). `validate` says which resources get the full validation
 * (the write path: all; the bulk load: a sample of each shape).
 */
export function prepareTerritoryBatch(
  repo: FhirRepository,
  ctx: WriteContext,
  resources: Resource[],
  validate: (r: Resource) => boolean,
): NewVersion[] {
  return resources.map((r) => repo.prepareCreate(r, ctx, r.id as string, { validate: validate(r) }));
}

/**
 * One transaction: the prepared creates not stored yet persisted in one statement, then the
 * historic-discharge marks.
 */
export async function persistTerritoryBatch(
  repo: FhirRepository,
  prepared: NewVersion[],
  counts: BatchCounts,
): Promise<void> {
  await repo.withTransaction(async (tx) => {
    // A previous run that stopped half-way left some of these: keep them (same ids, same content).
    const existing = new Set(await repo.existing(prepared, tx));
    const versions = existing.size > 0 ? prepared.filter((v) => !existing.has(`${v.resourceType}/${v.id}`)) : prepared;
    counts.resumed ||= existing.size > 0;
    await repo.persist(tx, versions);
    // Which Encounters are discharges is the trigger's call (it recorded their events): all are offered.
    const stays = versions.filter((v) => v.resourceType === 'Encounter').map((v) => `Encounter/${v.id}`);
    if (stays.length > 0) {
      // Read the count before adding: `x += await y` would read x before the await (lost updates across batches).
      const marked = await markHistoricDischarges(tx, stays);
      counts.historicDischarges += marked;
    }
    for (const v of versions) {
      counts.byType[v.resourceType] = (counts.byType[v.resourceType] ?? 0) + 1;
    }
    counts.resources += versions.length;
  });
}
