import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];

// Imported by a test file: its directories go when the file's tests are done (this module is
// evaluated once per test file, before its tests run; Jest's global, absent from the build's types).
(globalThis as { afterAll?: (fn: () => void) => void }).afterAll?.(() => {
  for (const d of made.splice(0)) {
    rmSync(d, { recursive: true, force: true });
  }
});

/**
 * A fresh directory in the temporary folder, removed after the test file's tests: a test's
 * scratch files (catalogue variants, CSV files…) do not pile up run after run. Not for a
 * PostgreSQL cluster's directory, which must be stopped first (process.ts, removeDataDirs).
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
