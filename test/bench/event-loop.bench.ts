/**
 * Event-loop benchmark: how long the largest bodies the gateway accepts (and a malicious one it
 * refuses) block everything else. Starts, on loopback only, the built gateway (dist/, embedded
 * PostgreSQL in a temporary data directory, settings at their defaults) and, for each body, posts
 * it `--repeat` times while pinging `/health/live` every 10 ms from this process. Prints, per body:
 * the status, the post's duration, the worst ping latency, and the gateway's own event-loop delay
 * (prom-client's monitorEventLoopDelay, p99 and max, read from /metrics, which resets it).
 *
 *   npm run bench:event-loop -- [--repeat 3]
 *
 * Writes test/bench/results/event-loop-<date>.json.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, startEmbeddedGateway } from '../support/process';
import { round, sleep } from './bench-support';

const args = parseArgs({ options: { repeat: { type: 'string', default: '3' } } }).values;

/** Default shape limits (libs/platform/src/config.ts). */
const MAX_ITEMS = 1000;
const MAX_BODY = 16 * 1024 * 1024;

interface Body {
  name: string;
  path: string;
  text: string;
}

function bodies(): Body[] {
  const identifiers = Array.from({ length: MAX_ITEMS }, (_, i) => ({
    system: 'urn:oid:1.2.250.1.71.4.2.7',
    value: `IPP-${i}`,
  }));
  const patient = (i: number): Record<string, unknown> => ({
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:1.2.250.1.71.4.2.7', value: `BUNDLE-${i}` }],
    name: [{ family: `FAMILLE${i}`, given: ['Prénom', 'Second'] }],
    gender: i % 2 ? 'female' : 'male',
    birthDate: '1970-01-01',
    address: [{ line: [`${i} rue de la République`], city: 'Lyon', postalCode: '69001' }],
  });
  const entries = Array.from({ length: MAX_ITEMS }, (_, i) => ({
    fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    resource: patient(i),
    request: { method: 'POST', url: 'Patient' },
  }));
  const bundle = JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: entries });
  if (bundle.length > MAX_BODY) {
    throw new Error(`the max-entries Bundle (${bundle.length} bytes) is over the body limit`);
  }
  const malicious = `{"resourceType":"Patient","identifier":[${'"abc",'.repeat(1_000_000)}"abc"]}`;
  const data = Buffer.alloc(700 * 1024, 'gateway ').toString('base64'); // under the validator's 1 MB
  return [
    {
      name: `Patient with ${MAX_ITEMS} identifiers`,
      path: '/fhir/Patient',
      text: JSON.stringify({ resourceType: 'Patient', identifier: identifiers }),
    },
    { name: `transaction Bundle of ${MAX_ITEMS} entries`, path: '/fhir', text: bundle },
    {
      name: `DocumentReference with a ${round(data.length / 1e6)} MB attachment`,
      path: '/fhir/DocumentReference',
      text: JSON.stringify({
        resourceType: 'DocumentReference',
        status: 'current',
        content: [{ attachment: { contentType: 'application/pdf', data } }],
      }),
    },
    { name: 'malicious: 1 000 000 identifiers (refused)', path: '/fhir/Patient', text: malicious },
  ];
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((done, fail) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += String(d)));
      res.on('end', () => done({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', fail);
    req.end(body);
  });
}

/** p99 and max of the gateway's event-loop delay since the last scrape (ms). */
async function loopDelay(port: number): Promise<{ p99: number; max: number }> {
  const text = (await send(port, 'GET', '/metrics', {})).text;
  const value = (name: string): number => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    p99: round(value('nodejs_eventloop_lag_p99_seconds') * 1000),
    max: round(value('nodejs_eventloop_lag_max_seconds') * 1000),
  };
}

/** Posts `body` while pinging /health/live every 10 ms; the worst ping and the loop delay meanwhile. */
async function measure(port: number, token: string, body: Body): Promise<Record<string, unknown>> {
  await loopDelay(port); // resets the gateway's histogram
  const pings: number[] = [];
  let stop = false;
  const pinger = (async () => {
    while (!stop) {
      const t = performance.now();
      await send(port, 'GET', '/health/live', {});
      pings.push(performance.now() - t);
      await sleep(10);
    }
  })();
  await sleep(100);
  const t0 = performance.now();
  const res = await send(
    port,
    'POST',
    body.path,
    { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
    body.text,
  );
  const ms = performance.now() - t0;
  await sleep(100);
  stop = true;
  await pinger;
  const delay = await loopDelay(port);
  let refusal: string | undefined;
  if (res.status >= 400) {
    refusal = (JSON.parse(res.text) as { issue: { details?: { text?: string } }[] }).issue[0]?.details?.text;
  }
  return {
    status: res.status,
    ...(refusal ? { refusal } : {}),
    bodyMB: round(Buffer.byteLength(body.text) / 1e6),
    postMs: round(ms),
    worstPingMs: round(Math.max(...pings)),
    loopDelayP99Ms: delay.p99,
    loopDelayMaxMs: delay.max,
  };
}

async function main(): Promise<void> {
  const { gw, port, dataDir, admin: creds } = await startEmbeddedGateway();
  try {
    const tokenRes = await send(
      port,
      'POST',
      '/oauth2/token',
      {
        authorization: `Basic ${Buffer.from(`${creds.client_id}:${creds.client_secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      'grant_type=client_credentials',
    );
    const token = (JSON.parse(tokenRes.text) as { access_token: string }).access_token;
    const results: Record<string, unknown> = {
      date: new Date().toISOString(),
      machine: `gateway + database + load generator on one machine, load average ${loadavg()[0].toFixed(1)}`,
    };
    for (const body of bodies()) {
      const runs: Record<string, unknown>[] = [];
      for (let i = 0; i < Number(args.repeat); i++) {
        runs.push(await measure(port, token, body));
      }
      results[body.name] = runs;
      console.log(body.name);
      console.table(runs);
    }
    const dir = resolve(ROOT, 'test/bench/results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, `event-loop-${new Date().toISOString().slice(0, 10)}.json`),
      JSON.stringify(results, null, 2),
    );
  } finally {
    gw.child.kill('SIGTERM');
    await gw.exited;
    agent.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
