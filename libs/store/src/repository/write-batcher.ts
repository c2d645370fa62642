import type { Pool } from 'pg';
import { persistVersions } from './persist';
import type { NewVersion } from './persist';

interface Pending {
  version: NewVersion;
  resolve: () => void;
  reject: (err: unknown) => void;
}

// A few statements in flight keep PostgreSQL busy; everything that arrives meanwhile waits for
// the next statement. Under load, batches grow by themselves; alone, a create goes out at once.
const MAX_IN_FLIGHT = 4;
const MAX_BATCH = 100;

/**
 * Group commit for single creates: versions submitted while earlier statements are being written
 * are persisted together, in one statement and one commit. Each caller's promise settles only
 * after the commit that contains its version, so a 201 still follows durability.
 */
export class WriteBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;

  constructor(private readonly pool: Pool) {}

  write(version: NewVersion): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ version, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.inFlight++;
      void this.flush(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async flush(batch: Pending[]): Promise<void> {
    try {
      await persistVersions(
        this.pool,
        batch.map((p) => p.version),
      );
      batch.forEach((p) => p.resolve());
    } catch (err) {
      if (batch.length === 1) {
        batch[0].reject(err);
        return;
      }
      // The statement is atomic: nothing of the batch was written. Retry each version alone so
      // that one failing write cannot fail its neighbours.
      await Promise.all(batch.map((p) => persistVersions(this.pool, [p.version]).then(p.resolve, p.reject)));
    }
  }
}
