/** The catalogue evaluation of the indicator benchmark, shared with the territory-load benchmark. */
import { resolve } from 'node:path';
import type { Pool } from 'pg';
import type { createLogger } from '@gw/platform';
import { AuditLog } from '@gw/store';
import type { FhirRepository } from '@gw/store';
import { IndicatorsService, measuresInForce } from '@gw/indicators';
import type { MeasureCounts, Period } from '@gw/indicators';
import { ROOT } from '../support/process';
import { postgresTicks, round } from './bench-support';

export interface SizeResult {
  patients: number;
  /** Set when the projection was replicated from a loaded territory of that size (see replicateProjection). */
  replicatedFrom?: number;
  load: { seconds: number; resources: number; perSecond: number; reused: boolean };
  persons: number;
  catalogue: { runsMs: number[]; bestMs: number; personsMs: number; perMeasureMs: Record<string, number> };
  alone: Record<string, number>;
  memory: { gatewayRssMb: number; gatewayHeapMb: number; postgresTempMb: number };
  postgresCpuSeconds: number;
  scores: Record<string, number | null>;
}

export interface EvaluateAllInput {
  pool: Pool;
  repo: FhirRepository;
  logger: ReturnType<typeof createLogger>;
  dataDir: string;
  period: Period;
  runs: number;
  cptsId: string;
  patients: number;
  replicatedFrom?: number;
  load: SizeResult['load'];
  /** Only the Measures in force on the period's end (what the monthly run evaluates); default: the whole catalogue. */
  inForce?: boolean;
}

/** `runs` evaluations of the whole catalogue together, then each measure alone, with CPU and memory. */
export async function evaluateAll(input: EvaluateAllInput): Promise<SizeResult> {
  const { pool, repo, logger, dataDir, period, runs } = input;
  const service = IndicatorsService.load(
    resolve(ROOT, 'fhir-profiles/measures'),
    pool,
    repo,
    new AuditLog(pool, logger),
    10,
    logger,
  );
  const scope = { kind: 'cpts' as const, id: input.cptsId };
  const measures = input.inForce ? measuresInForce(service.measures(), period.end) : service.measures();
  const runsMs: number[] = [];
  let best: { results: MeasureCounts[]; personsMs: number; persons: number } | undefined;
  let bestMs = Infinity;
  const pgBefore = postgresTicks(dataDir);
  const tempBefore = await tempBytes(pool);
  for (let i = 0; i < runs; i++) {
    const t = Date.now();
    const r = await service.evaluator.evaluate(measures, { period, scope });
    const ms = Date.now() - t;
    runsMs.push(ms);
    if (ms < bestMs) {
      bestMs = ms;
      best = r;
    }
  }
  const pgCpu = (postgresTicks(dataDir) - pgBefore) / 100 / runs;
  const tempMb = ((await tempBytes(pool)) - tempBefore) / 1024 / 1024 / runs;
  const alone: Record<string, number> = {};
  for (const m of measures) {
    const t = Date.now();
    await service.evaluator.evaluate([m], { period, scope });
    alone[m.id] = Date.now() - t;
  }
  const mem = process.memoryUsage();
  return {
    patients: input.patients,
    ...(input.replicatedFrom ? { replicatedFrom: input.replicatedFrom } : {}),
    load: input.load,
    persons: best!.persons,
    catalogue: {
      runsMs,
      bestMs,
      personsMs: best!.personsMs,
      perMeasureMs: Object.fromEntries(best!.results.map((r) => [r.measure.id, r.ms])),
    },
    alone,
    memory: {
      gatewayRssMb: round(mem.rss / 1024 / 1024),
      gatewayHeapMb: round(mem.heapUsed / 1024 / 1024),
      postgresTempMb: round(tempMb),
    },
    postgresCpuSeconds: round(pgCpu),
    scores: Object.fromEntries(best!.results.map((r) => [r.measure.id, ratio(r)])),
  };
}

function ratio(r: MeasureCounts): number | null {
  const d = r.total.denominator - r.total.exclusion;
  return d > 0 ? round((r.total.numerator / d) * 1000) / 1000 : null;
}

async function tempBytes(pool: Pool): Promise<number> {
  const r = await pool.query<{ b: string }>(
    'SELECT temp_bytes::text AS b FROM pg_stat_database WHERE datname = current_database()',
  );
  return Number(r.rows[0]?.b ?? 0);
}

export function oneYearBefore(day: string): string {
  const d = new Date(`${day}T00:00:00Z`);
  return new Date(Date.UTC(d.getUTCFullYear() - 1, d.getUTCMonth(), d.getUTCDate() + 1)).toISOString().slice(0, 10);
}
