// A worker thread of the bulk territory load (bulk.ts): generates, prepares and writes the person
// ranges the main thread hands it, over its own connections, and answers each with its counts.
import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'pg';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions } from '@gw/fhir';
import { FhirRepository, OrganizationAccessPolicy } from '@gw/store';
import { ShapeSampler, writePersons } from './bulk-chunk';
import { TerritoryGenerator } from './generator';
import { loaderContext } from './loader';
import type { BulkWorkerData, ToMain, ToWorker } from './bulk';

async function main(): Promise<void> {
  const data = workerData as BulkWorkerData;
  const port = parentPort;
  if (!port) {
    throw new Error('bulk-worker runs as a worker thread');
  }
  loadFhirDefinitions();
  const pool = new Pool({ connectionString: data.databaseUrl, max: 2 });
  // The access policy only decides ownership and write refusals here: for an admin writer every
  // policy delegates both to the organization rule (OrganizationAccessPolicy).
  const repo = new FhirRepository(
    pool,
    new SearchParamRegistry(),
    new OrganizationAccessPolicy(),
    ProfileRegistry.fromDirectory(data.profilesDir),
    0,
    { encounterMonths: data.encounterMonths },
  );
  const generator = new TerritoryGenerator(data.territory);
  const ctx = loaderContext(data.clientId);
  const sampler = new ShapeSampler();
  const send = (m: ToMain): void => port.postMessage(m);
  port.on('message', (m: ToWorker) => {
    if (m.kind === 'stop') {
      void pool.end().then(() => port.close());
      return;
    }
    writePersons(repo, ctx, generator, sampler, m).then(
      (counts) => send({ kind: 'done', from: m.from, counts }),
      (err: unknown) => send({ kind: 'failed', message: err instanceof Error ? err.message : String(err) }),
    );
  });
  send({ kind: 'ready' });
}

void main();
