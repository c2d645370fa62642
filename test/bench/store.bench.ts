/**
 * Store benchmark (issue #2): single creates with 16 concurrent clients, 100-entry transaction
 * bundles, search by identifier as the store grows to --size resources, and the raw COPY ceiling
 * of the same rows in the same database. Starts its own gateway (embedded PostgreSQL, loopback).
 *
 *   npm run bench:store -- --size 1000000
 *
 * Writes test/bench/results/store-<date>.json and prints a summary.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Patient } from '@medplum/fhirtypes';
import { SearchParamRegistry, loadFhirDefinitions, nirKey } from '@gw/fhir';
import { embeddedDatabaseUrl } from '@gw/platform';
import { freePort } from '../support/ports';
import { GATEWAY_MAIN, ROOT, run } from '../support/process';

const INS = 'urn:oid:1.2.250.1.213.1.4.10';
const IPP = 'urn:oid:1.2.250.1.999.1.1';
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

interface HttpResult {
  status: number;
  body: string;
  ms: number;
}

function http(base: string, method: string, path: string, token: string, body?: string): Promise<HttpResult> {
  const started = process.hrtime.bigint();
  return new Promise((done, fail) => {
    const req = request(
      `${base}${path}`,
      { method, agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          done({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            ms: Number(process.hrtime.bigint() - started) / 1e6,
          }),
        );
      },
    );
    req.on('error', fail);
    req.end(body);
  });
}

const FAMILIES = [
  'Martin',
  'Bernard',
  'Dubois',
  'Thomas',
  'Robert',
  'Richard',
  'Petit',
  'Durand',
  'Leroy',
  'Moreau',
  'Lefèvre',
  'Girard',
];
const GIVEN = ['Claire', 'Hélène', 'Louis', 'Jules', 'Emma', 'Léa', 'Hugo', 'Chloé', 'Gabriel', 'Inès'];
const COMMUNES = [
  ['75056', 'Paris', '75011'],
  ['13055', 'Marseille', '13005'],
  ['69123', 'Lyon', '69003'],
  ['2A004', 'Ajaccio', '20000'],
  ['59350', 'Lille', '59000'],
];

/** A realistic patient numbered n: test INS-NIR, local IPP, name, birth date, address. */
function patient(n: number): Patient {
  const sex = n % 2 === 0 ? 'female' : 'male';
  const year = 1930 + (n % 90);
  const [insee, city, postalCode] = COMMUNES[n % COMMUNES.length];
  const nir13 = `${sex === 'female' ? 2 : 1}${String(year).slice(2)}${String((n % 12) + 1).padStart(2, '0')}${String(n).padStart(8, '0')}`;
  return {
    resourceType: 'Patient',
    identifier: [
      { use: 'official', system: INS, value: nir13 + nirKey(nir13) },
      { use: 'usual', system: IPP, value: `IPP${n}` },
    ],
    name: [{ use: 'official', family: FAMILIES[n % FAMILIES.length], given: [GIVEN[n % GIVEN.length]] }],
    gender: sex,
    birthDate: `${year}-${String((n % 12) + 1).padStart(2, '0')}-${String((n % 28) + 1).padStart(2, '0')}`,
    address: [
      {
        line: [`${n % 200} rue de la République`],
        city,
        postalCode,
        extension: [
          {
            url: 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code',
            valueCoding: { code: insee },
          },
        ],
      },
    ],
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function stats(latencies: number[], seconds: number, units: number): Record<string, number> {
  const s = [...latencies].sort((a, b) => a - b);
  return {
    perSecond: Math.round(units / seconds),
    p50ms: round(percentile(s, 50)),
    p99ms: round(percentile(s, 99)),
    count: units,
    seconds: round(seconds),
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Runs `total` tasks with `concurrency` loops; returns latencies and elapsed seconds. */
async function load(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<HttpResult>,
  expectStatus: number,
): Promise<{ latencies: number[]; seconds: number }> {
  let next = 0;
  const latencies: number[] = [];
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const r = await task(i);
        if (r.status !== expectStatus) {
          throw new Error(`request ${i}: HTTP ${r.status} ${r.body.slice(0, 300)}`);
        }
        latencies.push(r.ms);
      }
    }),
  );
  return { latencies, seconds: (Date.now() - started) / 1000 };
}

function transaction(from: number, size: number): string {
  const entry = Array.from({ length: size }, (_, k) => ({
    fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(from + k).padStart(12, '0')}`,
    resource: patient(from + k),
    request: { method: 'POST', url: 'Patient' },
  }));
  return JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '1000000' },
      creates: { type: 'string', default: '20000' },
      searches: { type: 'string', default: '2000' },
    },
  });
  const size = Number(values.size);
  const dataDir = mkdtempSync(join(tmpdir(), 'gw-bench-'));
  chmodSync(dataDir, 0o755);
  const port = await freePort();
  const pgPort = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const gw = run(GATEWAY_MAIN, {
    GW_DATA_DIR: dataDir,
    GW_HTTP_PORT: String(port),
    GW_EMBEDDED_PG_PORT: String(pgPort),
    GW_LOG_LEVEL: 'warn',
    GW_DATABASE_POOL_SIZE: '24',
  });
  await gw.waitFor(/client_secret:/, 120_000);
  const creds = JSON.parse(readFileSync(join(dataDir, 'admin-client.json'), 'utf8')) as {
    client_id: string;
    client_secret: string;
  };
  // Access tokens live GW_TOKEN_TTL_SECONDS (5 min): a long fill renews its token like a real client.
  let token = '';
  const renew = async (): Promise<void> => {
    const res = await fetch(`${base}/oauth2/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${creds.client_id}:${creds.client_secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials',
    });
    token = ((await res.json()) as { access_token: string }).access_token;
  };
  await renew();
  const renewal = setInterval(() => void renew(), 120_000);
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: '2 cores, embedded PostgreSQL 18 (gateway + database + load generator on the same machine)',
  };

  try {
    // 1. Single creates, 16 concurrent clients.
    const creates = Number(values.creates);
    const c = await load(
      creates,
      16,
      (i) => http(base, 'POST', '/fhir/Patient', token, JSON.stringify(patient(10_000_000 + i))),
      201,
    );
    results.creates16 = stats(c.latencies, c.seconds, creates);
    console.log('creates, 16 clients:', results.creates16);

    // 2. + 3. Fill the store with 100-entry transactions, measuring ingest and search as it grows.
    const pool = new Pool({
      connectionString: embeddedDatabaseUrl(dataDir, pgPort),
      max: 4,
    });
    const checkpoints = [10_000, 100_000, 1_000_000].filter((n) => n <= size);
    if (!checkpoints.includes(size)) {
      checkpoints.push(size);
    }
    const searchAt: Record<string, unknown> = {};
    let loaded = 0;
    let bundleStats: Record<string, number> | undefined;
    for (const target of checkpoints) {
      const bundles = Math.ceil((target - loaded) / 100);
      const startAt = loaded;
      const b = await load(
        bundles,
        4,
        (i) => http(base, 'POST', '/fhir', token, transaction(startAt + i * 100, 100)),
        200,
      );
      loaded += bundles * 100;
      bundleStats = {
        ...stats(b.latencies, b.seconds, bundles * 100),
        bundleP99ms: round(
          percentile(
            [...b.latencies].sort((x, y) => x - y),
            99,
          ),
        ),
      };
      console.log(`transactions up to ${loaded}:`, bundleStats);
      await pool.query('ANALYZE');
      const total = loaded + creates;
      const searches = Number(values.searches);
      const search = (i: number): Promise<HttpResult> =>
        http(base, 'GET', `/fhir/Patient?identifier=${IPP}|IPP${(i * 7919) % loaded}`, token);
      const one = await load(Math.min(searches, 1000), 1, search, 200);
      const s = await load(searches, 16, (i) => search(i + 1), 200);
      searchAt[String(total)] = {
        oneClient: stats(one.latencies, one.seconds, Math.min(searches, 1000)),
        clients16: stats(s.latencies, s.seconds, searches),
        bundleIngest: bundleStats,
      };
      console.log(`token search, store of ${total} resources:`, searchAt[String(total)]);
    }
    results.searchByIdentifier = searchAt;
    results.bundles100 = bundleStats;

    // 4. Raw ceiling: COPY of the same rows (resource, history, index rows) into scratch tables.
    results.copyCeiling = await copyCeiling(pool, 20_000);
    console.log('COPY ceiling:', results.copyCeiling);
    const ingest = (bundleStats as Record<string, number>).perSecond;
    results.bundleVsCopy = round(ingest / (results.copyCeiling as Record<string, number>).perSecond);
    console.log('bundle ingest / COPY ceiling:', results.bundleVsCopy);
    await pool.end();
  } finally {
    clearInterval(renewal);
    gw.child.kill('SIGTERM');
    await gw.exited;
  }
  const outDir = resolve(ROOT, 'test/bench/results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `store-${new Date().toISOString().slice(0, 10)}-${size}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`results written to ${file}`);
}

/** COPY of what the gateway writes per resource (row, history row, index rows), same indexes. */
async function copyCeiling(pool: Pool, n: number): Promise<Record<string, number>> {
  loadFhirDefinitions();
  const registry = new SearchParamRegistry(['Patient']);
  const tables = ['resource', 'resource_history', 'sp_token', 'sp_string', 'sp_date', 'sp_reference', 'sp_number'];
  await pool.query('DROP SCHEMA IF EXISTS bench_copy CASCADE; CREATE SCHEMA bench_copy');
  for (const t of tables) {
    await pool.query(`CREATE TABLE bench_copy.${t} (LIKE public.${t} INCLUDING ALL)`);
  }
  const lines: Record<string, string[]> = Object.fromEntries(tables.map((t) => [t, []]));
  const now = new Date().toISOString();
  const esc = (v: string | null): string =>
    v === null ? '\\N' : v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n');
  for (let i = 0; i < n; i++) {
    const id = `copy-${i}`;
    const p = { ...patient(50_000_000 + i), id, meta: { versionId: '1', lastUpdated: now } };
    const json = JSON.stringify(p);
    lines.resource.push(['Patient', id, '1', now, 'f', 'Organization/x', esc(json)].join('\t'));
    lines.resource_history.push(['Patient', id, '1', now, 'f', 'Organization/x', 'c', 'r', esc(json)].join('\t'));
    const rows = registry.extract(p as Patient);
    rows.tokens.forEach((r) => lines.sp_token.push(['Patient', id, r.code, esc(r.system), esc(r.value)].join('\t')));
    rows.strings.forEach((r) => lines.sp_string.push(['Patient', id, r.code, esc(r.value), esc(r.raw)].join('\t')));
    rows.dates.forEach((r) => lines.sp_date.push(['Patient', id, r.code, r.low, r.high].join('\t')));
    rows.references.forEach((r) =>
      lines.sp_reference.push(['Patient', id, r.code, r.targetType, r.targetId].join('\t')),
    );
  }
  const client = await pool.connect();
  const started = Date.now();
  try {
    for (const t of tables) {
      if (lines[t].length === 0) {
        continue;
      }
      await new Promise<void>((done, fail) => {
        const stream = client.query(copyFrom(`COPY bench_copy.${t} FROM STDIN`));
        stream.on('finish', () => done());
        stream.on('error', fail);
        stream.end(`${lines[t].join('\n')}\n`);
      });
    }
  } finally {
    client.release();
  }
  const seconds = (Date.now() - started) / 1000;
  await pool.query('DROP SCHEMA bench_copy CASCADE');
  return { perSecond: Math.round(n / seconds), resources: n, seconds: round(seconds) };
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
