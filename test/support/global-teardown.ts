import { rmSync } from 'node:fs';

/** Stops the run's PostgreSQL and removes its cluster (every test file's database: gigabytes). */
export default async function globalTeardown(): Promise<void> {
  const started = (globalThis as Record<string, unknown>).__GW_TEST_PG__ as
    { stop: () => Promise<void>; dir: string } | undefined;
  await started?.stop();
  if (started) {
    rmSync(started.dir, { recursive: true, force: true });
  }
}
