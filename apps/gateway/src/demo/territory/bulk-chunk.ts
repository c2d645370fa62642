import type { Resource } from '@medplum/fhirtypes';
import type { FhirRepository, WriteContext } from '@gw/store';
import type { TerritoryGenerator } from './generator';
import { persistTerritoryBatch, prepareTerritoryBatch } from './loader';
import type { BatchCounts } from './loader';

/** Occurrences of each resource shape that get the full validation in a bulk load (per thread). */
export const SHAPE_SAMPLE = 3;

/**
 * Which resources a bulk load validates: the first {@link SHAPE_SAMPLE} of each shape (type,
 * declared profiles, top-level elements). The generator is trusted code whose resources differ by
 * values, not structure; a shape it has never produced before is validated as on the write path,
 * so a generator change that breaks the profiles fails the bulk load too.
 */
export class ShapeSampler {
  private readonly seen = new Map<string, number>();

  validate(r: Resource): boolean {
    const key = `${r.resourceType}|${(r.meta?.profile ?? []).join(' ')}|${Object.keys(r).sort().join(',')}`;
    const n = this.seen.get(key) ?? 0;
    if (n >= SHAPE_SAMPLE) {
      return false;
    }
    this.seen.set(key, n + 1);
    return true;
  }
}

export interface ChunkResult extends BatchCounts {
  people: number;
}

/**
 * Writes the persons [from, to) of a territory in transactions of about `batchSize` resources
 * with the write path's own batch preparation and write (loader.ts). The next batch is
 * generated and prepared while the previous one commits (one in flight: the thread's CPU and
 * PostgreSQL work at the same time).
 */
export async function writePersons(
  repo: FhirRepository,
  ctx: WriteContext,
  generator: TerritoryGenerator,
  sampler: ShapeSampler,
  range: { from: number; to: number; batchSize: number },
): Promise<ChunkResult> {
  const counts: ChunkResult = { resources: 0, byType: {}, historicDischarges: 0, resumed: false, people: 0 };
  let pending: Promise<void> | undefined;
  let batch: Resource[] = [];
  const flush = async (): Promise<void> => {
    const prepared = prepareTerritoryBatch(repo, ctx, batch, (r) => sampler.validate(r));
    batch = [];
    await pending;
    pending = persistTerritoryBatch(repo, prepared, counts);
    // A failure surfaces at the next await of `pending`; an unobserved rejection meanwhile is not fatal.
    pending.catch(() => undefined);
  };
  for (const person of generator.people(range.from, range.to)) {
    batch.push(...person.resources);
    counts.people++;
    if (batch.length >= range.batchSize) {
      await flush();
    }
  }
  if (batch.length > 0) {
    await flush();
  }
  await pending;
  return counts;
}
