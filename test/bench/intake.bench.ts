/**
 * Intake benchmark: (1) POST /ingest/documents of --documents synthetic CDA documents (a VSM,
 * CR-BIO, VAC mix over --documents / 3 patients, --concurrency in flight) by an organization's
 * client; (2) the import of a synthetic portability archive of --patients patients (VSM, CR-BIO,
 * VAC and a PDF each) through the admin API, run by the gateway's worker. For each: documents/s,
 * resources/s (what the pipeline answered as created) and the gateway process's RSS (sampled every
 * 250 ms: peak and end). Starts its own gateway (embedded PostgreSQL, loopback).
 *
 *   npm run bench:intake -- --documents 900 --patients 1000 [--import-concurrency 4] [--read-threads 2]
 *
 * Writes test/bench/results/intake-<date>-<patients>.json and prints a summary.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, removeDataDirs, startEmbeddedGateway } from '../support/process';
import { syntheticCda, writePortabilityArchive } from '../support/intake-archive';
import { TICK, clientToken, machineBusyTicks, pool, postgresTicks, procTicks, round, sleep } from './bench-support';

const KINDS = ['VSM', 'CR-BIO', 'VAC'] as const;

/** Resident set size of a process in MB (VmRSS), 0 once it is gone. */
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Cores used from now until stopped by the gateway process, its PostgreSQL (postmaster and
 * backends) and the whole machine (anything else running shows as the difference), and the
 * CPU milliseconds per document of the gateway and of PostgreSQL.
 */
function coresProbe(pid: number, dataDir: string): { stop(documents: number): Record<string, number> } {
  const t0 = Date.now();
  const gw0 = procTicks(pid)?.ticks ?? 0;
  const pg0 = postgresTicks(dataDir);
  const m0 = machineBusyTicks();
  return {
    stop(documents) {
      const s = (Date.now() - t0) / 1000;
      const gw = ((procTicks(pid)?.ticks ?? 0) - gw0) / TICK;
      const pg = (postgresTicks(dataDir) - pg0) / TICK;
      return {
        gatewayCores: round(gw / s),
        postgresCores: round(pg / s),
        machineCores: round((machineBusyTicks() - m0) / TICK / s),
        gatewayCpuMsPerDocument: round((gw * 1000) / Math.max(1, documents)),
        postgresCpuMsPerDocument: round((pg * 1000) / Math.max(1, documents)),
      };
    },
  };
}

/** Samples a process's RSS until stopped: peak and last value, in MB. */
function rssSampler(pid: number): { stop(): { peakMb: number; endMb: number; startMb: number } } {
  const startMb = rssMb(pid);
  let peakMb = startMb;
  const timer = setInterval(() => (peakMb = Math.max(peakMb, rssMb(pid))), 250);
  return {
    stop() {
      clearInterval(timer);
      const endMb = rssMb(pid);
      return { startMb: round(startMb), peakMb: round(Math.max(peakMb, endMb)), endMb: round(endMb) };
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      documents: { type: 'string', default: '900' },
      patients: { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '4' },
      /** Patients imported side by side by the gateway's worker (GW_INTAKE_IMPORT_CONCURRENCY); unset: its default. */
      'import-concurrency': { type: 'string' },
      /** Worker threads reading CDA documents (GW_INTAKE_READ_THREADS); unset: the gateway's default. */
      'read-threads': { type: 'string' },
      'max-seconds': { type: 'string', default: '0' },
    },
  });
  const documents = Number(values.documents);
  const patients = Number(values.patients);
  const concurrency = Number(values.concurrency);
  /** Bound of the import phase (0: none): past it, what was imported so far is reported (`status` partial). */
  const maxSeconds = Number(values['max-seconds']);
  const importDir = resolve(ROOT, 'data', `bench-intake-imports-${process.pid}`);
  mkdirSync(importDir, { recursive: true });
  // The archive first: generating 10 000 patients blocks this process for minutes, which an HTTP
  // connection kept alive to the gateway would not survive.
  const g0 = Date.now();
  const archive = writePortabilityArchive(join(importDir, 'bench.zip'), { patients, seed: 11, layout: 'mixed' });
  const generateSeconds = (Date.now() - g0) / 1000;
  const importConcurrency = values['import-concurrency'];
  const readThreads = values['read-threads'];
  const {
    gw,
    base,
    dataDir,
    admin: creds,
  } = await startEmbeddedGateway({
    GW_INTAKE_IMPORT_DIR: importDir,
    ...(importConcurrency ? { GW_INTAKE_IMPORT_CONCURRENCY: importConcurrency } : {}),
    ...(readThreads ? { GW_INTAKE_READ_THREADS: readThreads } : {}),
  });
  const pid = gw.child.pid as number;
  try {
    const tokenOf = (id: string, secret: string): Promise<string> => clientToken(base, id, secret);
    let admin = await tokenOf(creds.client_id, creds.client_secret);
    const res = await fetch(`${base}/admin/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bench MSP', organization: 'Organization/bench-msp', scopes: 'system/*.cruds' }),
    });
    const created = (await res.json()) as { client: { id: string }; client_secret: string };
    const token = await tokenOf(created.client.id, created.client_secret);
    const results: Record<string, unknown> = {
      date: new Date().toISOString(),
      machine: '2 cores, embedded PostgreSQL 18 (gateway, worker, database and client on the same machine)',
      rssIdleMb: round(rssMb(pid)),
    };

    // 1. POST /ingest/documents: patient n gets document n % 3 of the mix, three documents per patient.
    const bodies = Array.from({ length: documents }, (_, i) => {
      const kind = KINDS[i % 3];
      return { kind, ...syntheticCda(kind, Math.floor(i / 3), i % 3, 7) };
    });
    const statuses: Record<string, number> = {};
    let resources = 0;
    const latencies: number[] = [];
    const rssPost = rssSampler(pid);
    const coresPost = coresProbe(pid, dataDir);
    const t0 = Date.now();
    await pool(bodies, concurrency, async (d) => {
      const s = Date.now();
      const r = await fetch(`${base}/ingest/documents`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/hl7-cda+xml' },
        body: d.body,
      });
      const text = await r.text();
      latencies.push(Date.now() - s);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status < 300) {
        resources += ((JSON.parse(text) as { entry?: unknown[] }).entry ?? []).length;
      } else if ((statuses[r.status] ?? 0) <= 3) {
        process.stderr.write(`POST /ingest/documents (${d.kind}): ${r.status} ${text.slice(0, 300)}\n`);
      }
    });
    const postSeconds = (Date.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    results.ingestDocuments = {
      documents,
      concurrency,
      mix: 'VSM, CR-BIO, VAC in turn (3 per patient)',
      statuses,
      seconds: round(postSeconds),
      documentsPerSecond: round(documents / postSeconds),
      resourcesPerSecond: round(resources / postSeconds),
      resources,
      p50Ms: latencies[Math.floor(latencies.length / 2)],
      p99Ms: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))],
      rss: rssPost.stop(),
      cpu: coresPost.stop(documents),
    };
    process.stdout.write(`POST /ingest/documents: ${JSON.stringify(results.ingestDocuments)}\n`);

    // 2. Portability import of --patients patients, by the worker.
    const rssImport = rssSampler(pid);
    const coresImport = coresProbe(pid, dataDir);
    const i0 = Date.now();
    const start = await fetch(`${base}/admin/intake/imports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ path: 'bench.zip', organization: 'Organization/bench-import' }),
    });
    if (!start.ok) {
      throw new Error(`POST /admin/intake/imports: ${start.status} ${await start.text()}`);
    }
    const { id } = (await start.json()) as { id: string };
    type Progress = {
      status: string;
      failure?: string;
      documents: { done: number; created: number; review: number; rejected: number; failed: number };
      resources: number;
      documentsPerSecond: number;
      elapsedSeconds: number;
      problems: unknown[];
    };
    let progress: Progress | undefined;
    let lastLog = 0;
    for (;;) {
      const r = await fetch(`${base}/admin/intake/imports/${id}`, { headers: { authorization: `Bearer ${admin}` } });
      if (r.status === 401) {
        // The admin token expired during a long import: a new one.
        admin = await tokenOf(creds.client_id, creds.client_secret);
        continue;
      }
      progress = (await r.json()) as Progress;
      if (progress.status === 'completed' || progress.status === 'failed') {
        break;
      }
      if (maxSeconds > 0 && Date.now() - i0 > maxSeconds * 1000) {
        progress = { ...progress, status: `partial (stopped after ${maxSeconds} s)` };
        break;
      }
      if (Date.now() - lastLog > 30_000) {
        lastLog = Date.now();
        process.stdout.write(
          `import: ${progress.documents.done}/${archive.documents} documents, ${round((Date.now() - i0) / 1000)} s, RSS ${round(rssMb(pid))} MB\n`,
        );
      }
      await sleep(500);
    }
    const importSeconds = (Date.now() - i0) / 1000;
    results.portabilityImport = {
      patients,
      importConcurrency: importConcurrency ? Number(importConcurrency) : 'gateway default',
      readThreads: readThreads ? Number(readThreads) : 'gateway default',
      documentsInArchive: archive.documents,
      archiveMb: round(statSync(join(importDir, 'bench.zip')).size / 1e6),
      generateSeconds: round(generateSeconds),
      status: progress.status,
      failure: progress.failure,
      documents: progress.documents,
      problems: progress.problems.length,
      seconds: round(importSeconds),
      documentsPerSecond: round(progress.documents.done / importSeconds),
      documentsPerSecondReported: progress.documentsPerSecond,
      resources: progress.resources,
      resourcesPerSecond: round(progress.resources / importSeconds),
      rss: rssImport.stop(),
      cpu: coresImport.stop(progress.documents.done),
    };
    process.stdout.write(`portability import: ${JSON.stringify(results.portabilityImport)}\n`);
    mkdirSync(resolve(ROOT, 'test/bench/results'), { recursive: true });
    writeFileSync(
      resolve(ROOT, `test/bench/results/intake-${new Date().toISOString().slice(0, 10)}-${patients}.json`),
      `${JSON.stringify(results, null, 2)}\n`,
    );
  } finally {
    gw.child.kill('SIGTERM');
    await gw.exited;
    await removeDataDirs([dataDir]);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
