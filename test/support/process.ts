import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { freePort } from './ports';

/** The repository root, whether this runs from sources (Jest) or from dist/ (benchmarks). */
function findRoot(dir: string): string {
  return existsSync(join(dir, 'package.json')) || dirname(dir) === dir ? dir : findRoot(dirname(dir));
}

export const ROOT = findRoot(__dirname);
export const GATEWAY_MAIN = resolve(ROOT, 'dist/apps/gateway/src/main.js');
export const GATEWAY_CLI = resolve(ROOT, 'dist/apps/gateway/src/cli.js');
export const WORKER_MAIN = resolve(ROOT, 'dist/apps/worker/src/main.js');

export interface Proc {
  child: ChildProcess;
  out: () => string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();

/** SIGKILLs every process started by `run` that is still alive (afterAll safety net). */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...running].map(
      (c) =>
        new Promise<void>((r) => {
          if (c.exitCode !== null || c.signalCode !== null) {
            r();
            return;
          }
          c.once('exit', () => r());
          c.kill('SIGKILL');
        }),
    ),
  );
  running.clear();
}

/** The pid of the embedded PostgreSQL of a data directory (a gateway's, or a cluster's own), 0 if none. */
export function postmasterPid(dataDir: string): number {
  for (const file of [join(dataDir, 'postgres', 'postmaster.pid'), join(dataDir, 'postmaster.pid')]) {
    if (existsSync(file)) {
      const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : 0;
    }
  }
  return 0;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops the PostgreSQL of a data directory that a killed gateway left running, as an operator
 * would (SIGINT, fast shutdown), waiting up to 10 s for it to exit.
 */
export async function stopPostmaster(dataDir: string): Promise<void> {
  const pid = postmasterPid(dataDir);
  if (pid > 0 && alive(pid)) {
    process.kill(pid, 'SIGINT');
    for (let i = 0; i < 100 && alive(pid); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Removes the data directories a test made (call after killAll). A gateway killed mid-test leaves
 * its embedded PostgreSQL running: it is stopped first (stopPostmaster), so no cluster outlives
 * the test and no directory is left behind in the temp folder.
 */
export async function removeDataDirs(dirs: Iterable<string>): Promise<void> {
  for (const dir of dirs) {
    await stopPostmaster(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a built entry point (`npm run build` first), or `-e <code>`, with a clean GW_* environment. */
export function run(script: string, env: Record<string, string>, args: string[] = []): Proc {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GW_')));
  // BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the spawned process.
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    cwd: ROOT,
    env: { ...clean, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let text = '';
  child.stdout?.on('data', (d) => (text += String(d)));
  child.stderr?.on('data', (d) => (text += String(d)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    out: () => text,
    exited,
    async waitFor(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(text)) {
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(
            `waiting for ${pattern}: ${child.exitCode !== null ? `exited ${child.exitCode}` : 'timeout'}\n${text.slice(-2000)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

export interface EmbeddedGateway {
  gw: Proc;
  port: number;
  base: string;
  dataDir: string;
  /** The admin client the first start created (data/admin-client.json). */
  admin: { client_id: string; client_secret: string };
}

/**
 * Starts the built gateway (`npm run build` first) on loopback with its own embedded PostgreSQL in
 * a fresh temporary data directory, MLLP off unless `env` says otherwise, and waits until it is
 * ready and has written its admin client.
 */
export async function startEmbeddedGateway(
  env: Record<string, string> = {},
  prefix = 'gw-bench-',
): Promise<EmbeddedGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dataDir, 0o755); // as root, PostgreSQL runs as its own OS user and must reach the folder
  const port = await freePort();
  const gw = run(GATEWAY_MAIN, {
    GW_DATA_DIR: dataDir,
    GW_HTTP_PORT: String(port),
    GW_EMBEDDED_PG_PORT: String(await freePort()),
    GW_MLLP_ENABLED: 'false',
    GW_LOG_LEVEL: 'warn',
    ...env,
  });
  await gw.waitFor(/client_secret:/, 120_000);
  const admin = JSON.parse(readFileSync(join(dataDir, 'admin-client.json'), 'utf8')) as EmbeddedGateway['admin'];
  return { gw, port, base: `http://127.0.0.1:${port}`, dataDir, admin };
}
