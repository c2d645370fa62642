import { randomUUID } from 'node:crypto';
import type { Resource } from '@medplum/fhirtypes';
import type { PoolClient } from 'pg';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import type { FhirRepository, NewVersion } from '@gw/store';
import { EXCHANGE_PRINCIPAL } from './discharge-context.loader';

const CTX = { principal: EXCHANGE_PRINCIPAL };

/** Writes the exchange layer's own resources (Task, Communication, AuditEvent) through the store. */
export class ResourceWriter {
  constructor(private readonly repo: FhirRepository) {}

  /** Validates and stamps a new resource filed under `owner`; persist the result with `flush`. */
  prepare<T extends Resource>(
    resource: T,
    owner: string | undefined,
    id: string = randomUUID(),
  ): { version: NewVersion; ref: string } {
    const version = this.repo.prepareCreate(withOwner(resource, owner), CTX, id);
    return { version, ref: `${resource.resourceType}/${id}` };
  }

  async flush(db: PoolClient, versions: NewVersion[]): Promise<void> {
    if (versions.length > 0) {
      await this.repo.persist(db, versions);
    }
  }

  /**
   * Read-modify-write of one resource under its row lock. `mutate` returns false to leave it as is.
   * Returns false when the resource is gone.
   */
  async modify<T extends Resource>(db: PoolClient, ref: string, mutate: (r: T) => boolean): Promise<boolean> {
    const [type, id] = ref.split('/');
    const resource = await this.repo.readSystem<T>(type as string, id as string, { db, forUpdate: true });
    if (!resource) {
      return false;
    }
    if (!mutate(resource)) {
      return true;
    }
    await this.repo.update(type as string, id as string, resource, CTX, undefined, db);
    return true;
  }

  /** Takes a resource's row lock in `tx` (its read-modify-writes then run in turn). */
  async lock(tx: PoolClient, ref: string): Promise<void> {
    const [type, id] = ref.split('/');
    await this.repo.readSystem(type as string, id as string, { db: tx, forUpdate: true });
  }

  /** Fire-and-forget create outside any transaction (grouped commits): the attempt AuditEvents. */
  async create<T extends Resource>(resource: T, owner: string | undefined): Promise<void> {
    await this.repo.create(withOwner(resource, owner), CTX);
  }
}

/** The owner tag the store reads to file a resource under an organization (admin principal only). */
function withOwner<T extends Resource>(resource: T, owner: string | undefined): T {
  return owner
    ? {
        ...resource,
        meta: { ...resource.meta, tag: [...(resource.meta?.tag ?? []), { system: OWNER_TAG_SYSTEM, code: owner }] },
      }
    : resource;
}
