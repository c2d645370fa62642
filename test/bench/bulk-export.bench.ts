/**
 * Bulk export benchmark (issue #5): a Group of --patients members (default 2 000), each with 10
 * resources in its compartment (4 Observations, 2 Encounters, 2 Conditions, 1 Immunization,
 * 1 MedicationRequest), plus 10 % non-member patients with the same record; then
 * `Group/[id]/$export` by an organization's client (access policy on), timed from kick-off to the
 * manifest, and the download of every file. Starts its own gateway (embedded PostgreSQL, loopback).
 *
 *   npm run build --silent && node dist/test/bench/bulk-export.bench.js --patients 2000
 *
 * Writes test/bench/results/bulk-export-<date>.json and prints a summary.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, removeDataDirs, startEmbeddedGateway } from '../support/process';
import { pool, round, clientToken } from './bench-support';

type Res = Record<string, unknown> & { resourceType: string };

async function call(
  base: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** One patient and its 10 compartment resources, as transaction entries (urn:uuid references). */
function record(n: number): { fullUrl: string; resource: Res; request: { method: string; url: string } }[] {
  const uuid = (k: number): string => `urn:uuid:00000000-0000-4000-8000-${String(n * 16 + k).padStart(12, '0')}`;
  const subject = { reference: uuid(0) };
  const resources: Res[] = [
    {
      resourceType: 'Patient',
      identifier: [{ system: 'urn:oid:1.2.250.1.999.1.1', value: `IPP${n}` }],
      name: [{ family: `BENCH${n}`, given: ['Claire'] }],
      gender: n % 2 ? 'male' : 'female',
      birthDate: `${1930 + (n % 80)}-03-01`,
    },
    ...[0, 1, 2, 3].map((k): Res => ({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: k % 2 ? '4548-4' : '29463-7' }] },
      subject,
      effectiveDateTime: `2025-0${k + 1}-15`,
      valueQuantity: { value: 60 + k, unit: 'kg' },
    })),
    ...[0, 1].map((k): Res => ({
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject,
      period: { start: `2025-0${k + 2}-10T09:00:00Z` },
    })),
    ...[0, 1].map((k): Res => ({
      resourceType: 'Condition',
      subject,
      code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: k ? 'E11' : 'I10' }] },
    })),
    {
      resourceType: 'Immunization',
      status: 'completed',
      vaccineCode: { coding: [{ system: 'http://snomed.info/sct', code: '1181000221105' }] },
      patient: subject,
      occurrenceDateTime: '2025-10-15',
    },
    {
      resourceType: 'MedicationRequest',
      status: 'active',
      intent: 'order',
      medicationCodeableConcept: { text: 'metformine 1000 mg' },
      subject,
      authoredOn: '2025-03-01',
    },
  ];
  return resources.map((resource, k) => ({
    fullUrl: uuid(k),
    resource,
    request: { method: 'POST', url: resource.resourceType },
  }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { patients: { type: 'string', default: '2000' } } });
  const members = Number(values.patients);
  const total = Math.round(members * 1.1);
  const { gw, base, dataDir, admin: creds } = await startEmbeddedGateway();
  try {
    const tokenOf = (id: string, secret: string): Promise<string> => clientToken(base, id, secret);
    const admin = await tokenOf(creds.client_id, creds.client_secret);
    const created = JSON.parse(
      (
        await call(base, 'POST', '/admin/clients', admin, {
          name: 'bench MSP',
          organization: 'Organization/bench-msp',
          scopes: 'system/*.cruds',
        })
      ).text,
    ) as { client: { id: string }; client_secret: string };
    const token = await tokenOf(created.client.id, created.client_secret);

    // Load: 9 patient records (99 entries) per transaction, 4 in flight.
    const loadStart = Date.now();
    const patientIds: string[] = new Array<string>(total);
    const batches = Array.from({ length: Math.ceil(total / 9) }, (_, b) => b);
    await pool(batches, 4, async (b) => {
      const ns = Array.from({ length: 9 }, (_, k) => b * 9 + k).filter((n) => n < total);
      const res = await call(base, 'POST', '/fhir', token, {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: ns.flatMap(record),
      });
      if (res.status !== 200) {
        throw new Error(`load: ${res.status} ${res.text.slice(0, 500)}`);
      }
      const entries = (JSON.parse(res.text) as { entry: { response: { location: string } }[] }).entry;
      ns.forEach((n, k) => (patientIds[n] = /Patient\/([^/]+)/.exec(entries[k * 11].response.location)?.[1] as string));
    });
    const loadSeconds = (Date.now() - loadStart) / 1000;
    const group = await call(base, 'POST', '/fhir/Group', token, {
      resourceType: 'Group',
      type: 'person',
      actual: true,
      member: patientIds.slice(0, members).map((id) => ({ entity: { reference: `Patient/${id}` } })),
    });
    const groupId = (JSON.parse(group.text) as { id: string }).id;
    process.stdout.write(`loaded ${total} patients x 11 resources in ${round(loadSeconds)} s; group of ${members}\n`);

    const results: Record<string, unknown> = {
      date: new Date().toISOString(),
      machine: '2 cores, embedded PostgreSQL 18 (gateway, worker, database and client on the same machine)',
      members,
      resourcesPerMember: 10,
      nonMembers: total - members,
    };
    // Each scenario twice: the first run after the load also pays for autovacuum and cold caches.
    const scenarios = [
      ['all types (1st)', ''],
      ['_type=Observation (1st)', '?_type=Observation'],
      ['all types', ''],
      ['_type=Observation', '?_type=Observation'],
    ] as const;
    for (const [name, query] of scenarios) {
      const t0 = Date.now();
      const kick = await call(base, 'GET', `/fhir/Group/${groupId}/$export${query}`, token, undefined, {
        prefer: 'respond-async',
        accept: 'application/fhir+json',
      });
      const statusUrl = kick.headers.get('content-location') as string;
      let manifest: { output: { type: string; url: string; count: number }[] } | undefined;
      let pickedUp: number | undefined;
      while (!manifest) {
        const s = await call(base, 'GET', new URL(statusUrl).pathname, token);
        if (s.status !== 202 || s.headers.get('x-progress') !== 'queued') {
          pickedUp ??= Date.now();
        }
        if (s.status === 200) {
          manifest = JSON.parse(s.text) as typeof manifest;
        } else if (s.status !== 202) {
          throw new Error(`status ${s.status}: ${s.text}`);
        } else {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const exportSeconds = (Date.now() - t0) / 1000;
      const d0 = Date.now();
      let bytes = 0;
      let lines = 0;
      for (const o of manifest.output) {
        const f = await call(base, 'GET', new URL(o.url).pathname, token);
        bytes += f.text.length;
        lines += f.text.trimEnd().split('\n').length;
      }
      const downloadSeconds = (Date.now() - d0) / 1000;
      const resources = manifest.output.reduce((n, o) => n + o.count, 0);
      // Queue pickup: kick-off until the status first leaves 'queued' (at the 50 ms polling resolution).
      const r = {
        exportSeconds: round(exportSeconds),
        queuedSeconds: round(((pickedUp ?? Date.now()) - t0) / 1000),
        resources,
        resourcesPerSecond: Math.round(resources / exportSeconds),
        downloadSeconds: round(downloadSeconds),
        linesDownloaded: lines,
        megabytes: round(bytes / 1e6),
        files: manifest.output.map((o) => `${o.type}:${o.count}`),
      };
      results[name] = r;
      process.stdout.write(`export (${name}): ${JSON.stringify(r)}\n`);
    }
    mkdirSync(resolve(ROOT, 'test/bench/results'), { recursive: true });
    writeFileSync(
      resolve(ROOT, `test/bench/results/bulk-export-${new Date().toISOString().slice(0, 10)}.json`),
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
