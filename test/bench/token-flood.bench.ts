/**
 * Token endpoint under a wrong-secret flood: the latency of legitimate token requests alone and
 * during a bounded flood, with the failure limits on (defaults) and off (limits set out of reach),
 * and whether the time of a refusal tells an unknown client id from a known one.
 *
 * Starts, on loopback only, the built gateway (dist/, embedded PostgreSQL in a temporary data
 * directory, log level warn), registers clients through the admin API, then:
 *   - good alone: `--good` token requests (client_secret_basic), one at a time, from 127.0.0.1;
 *   - good during flood: the same, while `--flood` wrong-secret requests go out from
 *     `--connections` concurrent keep-alive connections spread over 8 loopback addresses
 *     (127.0.0.100–107), half on one victim client id, half on made-up ids;
 *   - timing (limits off only): `--probes` refusals for unknown ids and as many for known ids with
 *     a wrong secret, interleaved; median and p90 of each.
 *
 *   npm run bench:token-flood -- [--good 200] [--flood 2000] [--connections 16] [--probes 200]
 *
 * Writes test/bench/results/token-flood-<date>.json and prints a summary.
 */
import { Agent, request } from 'node:http';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, startEmbeddedGateway } from '../support/process';
import { percentile, round, sleep } from './bench-support';

const args = parseArgs({
  options: {
    good: { type: 'string', default: '200' },
    flood: { type: 'string', default: '2000' },
    connections: { type: 'string', default: '16' },
    probes: { type: 'string', default: '200' },
  },
}).values;

interface Gateway {
  base: string;
  admin: { id: string; secret: string };
  stop(): Promise<void>;
}

const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

/** POST /oauth2/token; resolves with the status and the elapsed milliseconds. */
function tokenCall(base: string, auth: string, agent: Agent): Promise<{ status: number; ms: number }> {
  const start = process.hrtime.bigint();
  return new Promise((done, fail) => {
    const req = request(
      `${base}/oauth2/token`,
      {
        method: 'POST',
        agent,
        headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      },
      (res) => {
        res.resume();
        res.on('end', () => done({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - start) / 1e6 }));
      },
    );
    req.on('error', fail);
    req.end('grant_type=client_credentials');
  });
}

async function startGateway(env: Record<string, string>): Promise<Gateway> {
  const { gw, base, dataDir, admin: creds } = await startEmbeddedGateway(env, 'gw-bench-flood-');
  return {
    base,
    admin: { id: creds.client_id, secret: creds.client_secret },
    async stop() {
      gw.child.kill('SIGTERM');
      await Promise.race([gw.exited, sleep(30_000)]);
      if (gw.child.exitCode === null) {
        gw.child.kill('SIGKILL');
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function createClient(gw: Gateway, name: string): Promise<{ id: string; secret: string }> {
  const tokenRes = await fetch(`${gw.base}/oauth2/token`, {
    method: 'POST',
    headers: {
      authorization: basic(gw.admin.id, gw.admin.secret),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  const token = ((await tokenRes.json()) as { access_token: string }).access_token;
  const res = await fetch(`${gw.base}/admin/clients`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, organization: `Organization/${name}`, scopes: 'system/*.rs' }),
  });
  const body = (await res.json()) as { client: { id: string }; client_secret: string };
  return { id: body.client.id, secret: body.client_secret };
}

function summary(latencies: number[]): { n: number; p50Ms: number; p99Ms: number; maxMs: number } {
  const sorted = Float64Array.from(latencies).sort();
  return {
    n: sorted.length,
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted[sorted.length - 1] ?? 0),
  };
}

/** `n` good token requests, one at a time, from 127.0.0.1 (keep-alive). */
async function goodLoop(gw: Gateway, client: { id: string; secret: string }, n: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await tokenCall(gw.base, basic(client.id, client.secret), agent);
    if (r.status !== 200) {
      throw new Error(`good request refused: ${r.status}`);
    }
    out.push(r.ms);
  }
  agent.destroy();
  return out;
}

async function flood(gw: Gateway, victim: string, total: number, connections: number): Promise<Record<string, number>> {
  const statuses: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1, localAddress: `127.0.0.${100 + (c % 8)}` });
      while (next < total) {
        const i = next++;
        const id = i % 2 === 0 ? victim : `made-up-${i}`;
        const r = await tokenCall(gw.base, basic(id, `guess-${i}`), agent);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      }
      agent.destroy();
    }),
  );
  return statuses;
}

async function scenario(limited: boolean): Promise<Record<string, unknown>> {
  const gw = await startGateway(
    limited ? {} : { GW_TOKEN_FAILURES_PER_CLIENT: '1000000000', GW_TOKEN_FAILURES_PER_ADDRESS: '1000000000' },
  );
  try {
    const good = await createClient(gw, 'bench-good');
    const victim = await createClient(gw, 'bench-victim');
    await goodLoop(gw, good, 20); // warm-up
    const alone = summary(await goodLoop(gw, good, Number(args.good)));
    const started = Date.now();
    const [during, statuses] = await Promise.all([
      goodLoop(gw, good, Number(args.good)),
      flood(gw, victim.id, Number(args.flood), Number(args.connections)),
    ]);
    const floodMs = Date.now() - started;
    const out: Record<string, unknown> = {
      limits: limited ? 'defaults (10 per client, 30 per address, 60 s)' : 'off',
      goodAlone: alone,
      goodDuringFlood: summary(during),
      flood: { requests: Number(args.flood), connections: Number(args.connections), ms: floodMs, statuses },
    };
    if (!limited) {
      out.timing = await timingProbe(gw, victim.id);
    }
    return out;
  } finally {
    await gw.stop();
  }
}

/** Refusals for unknown ids and for a known id with a wrong secret, interleaved, one at a time. */
async function timingProbe(gw: Gateway, known: string): Promise<Record<string, unknown>> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, localAddress: '127.0.0.200' });
  const unknown: number[] = [];
  const wrong: number[] = [];
  for (let i = 0; i < Number(args.probes); i++) {
    unknown.push((await tokenCall(gw.base, basic(`unknown-${i}`, 'x'), agent)).ms);
    wrong.push((await tokenCall(gw.base, basic(known, `wrong-${i}`), agent)).ms);
  }
  agent.destroy();
  const med = (l: number[]): number => round(percentile(Float64Array.from(l).sort(), 50));
  const p90 = (l: number[]): number => round(percentile(Float64Array.from(l).sort(), 90));
  return {
    unknownId: { medianMs: med(unknown), p90Ms: p90(unknown) },
    knownIdWrongSecret: { medianMs: med(wrong), p90Ms: p90(wrong) },
  };
}

async function main(): Promise<void> {
  const load = loadavg()[0];
  const runs = [await scenario(true), await scenario(false)];
  for (const r of runs) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
  }
  const dir = resolve(ROOT, 'test/bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `token-flood-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(
    file,
    JSON.stringify({ date: new Date().toISOString(), loadAvg1mBefore: round(load), args, runs }, null, 2),
  );
  process.stdout.write(`written ${file}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
