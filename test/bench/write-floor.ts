import type { Pool } from 'pg';
import { TICK, postgresTicks, round } from './bench-support';

/** What a step of the measure cost: its wall time and PostgreSQL's CPU. */
export interface FloorCost {
  seconds: number;
  /** PostgreSQL's CPU (every process of the cluster: backend and parallel index builders). */
  postgresCpuSeconds: number;
  postgresCpuMsPerResource: number;
}

/** What PostgreSQL spends writing rows already computed, in one of two ways. */
export interface FloorPass extends FloorCost {
  /** Seconds per table (inserts; with `deferred`, plus its index builds). */
  byTable: Record<string, number>;
}

export interface WriteFloor {
  tables: number;
  rows: number;
  /**
   * Reading the same rows (every column, nothing written): part of both passes' cost that a
   * loader does not pay, so the write floor is each pass minus this.
   */
  read: FloorCost;
  /** Copies into tables with their indexes: every insert maintains them, as a load does. */
  maintained: FloorPass;
  /** Copies into bare tables, then their indexes built (the cheapest order for a first load). */
  deferred: FloorPass;
}

const SCRATCH = 'bench_write_floor';

/**
 * The write floor of a loaded database: the rows of every table the load filled, copied by
 * PostgreSQL itself (`INSERT … SELECT`) into empty copies of those tables, without triggers,
 * without a client and without computing anything. No loader of this store can write these rows
 * for less: it also has to produce them (JSON, search rows, projections) and send them.
 * One backend at a time, so the CPU per resource is one core's. Both passes read the rows they
 * copy: `read` measures that part alone.
 */
export async function writeFloor(pool: Pool, dataDir: string, resources: number): Promise<WriteFloor> {
  const client = await pool.connect();
  try {
    const tables = await client.query<{ t: string; cols: string; indexes: string[]; rows: string }>(
      `SELECT c.relname AS t, c.reltuples::bigint::text AS rows,
              (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS cols,
              ARRAY(SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = c.oid) AS indexes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.reltuples >= 100
        ORDER BY c.reltuples DESC`,
    );
    const measured = async (work: () => Promise<void>): Promise<FloorCost> => {
      const ticks = postgresTicks(dataDir);
      const started = Date.now();
      await work();
      const cpu = (postgresTicks(dataDir) - ticks) / TICK;
      return {
        seconds: round((Date.now() - started) / 1000),
        postgresCpuSeconds: round(cpu),
        postgresCpuMsPerResource: Math.round((cpu * 1e6) / resources) / 1000,
      };
    };
    const pass = async (deferred: boolean): Promise<FloorPass> => {
      await client.query(`DROP SCHEMA IF EXISTS ${SCRATCH} CASCADE; CREATE SCHEMA ${SCRATCH}`);
      for (const { t } of tables.rows) {
        await client.query(
          `CREATE TABLE ${SCRATCH}.${t} (LIKE public.${t} INCLUDING DEFAULTS INCLUDING GENERATED ${deferred ? '' : 'INCLUDING INDEXES'})`,
        );
      }
      await client.query('CHECKPOINT');
      const byTable: Record<string, number> = {};
      const cost = await measured(async () => {
        for (const { t, cols, indexes } of tables.rows) {
          const at = Date.now();
          await client.query(`INSERT INTO ${SCRATCH}.${t} (${cols}) SELECT ${cols} FROM public.${t}`);
          if (deferred) {
            for (const def of indexes) {
              // "CREATE [UNIQUE] INDEX name ON public.t USING …": the copy's index, unnamed.
              await client.query(def.replace(/INDEX \S+ ON public\.(\S+)/, `INDEX ON ${SCRATCH}.$1`));
            }
          }
          byTable[t] = round((Date.now() - at) / 1000);
        }
        await client.query('CHECKPOINT');
      });
      return { ...cost, byTable };
    };
    const read = await measured(async () => {
      for (const { t, cols } of tables.rows) {
        // Executed, its rows discarded: EXPLAIN ANALYZE without timing runs the whole scan and projection.
        await client.query(`EXPLAIN (ANALYZE, TIMING OFF) SELECT ${cols} FROM public.${t}`);
      }
    });
    const maintained = await pass(false);
    const deferred = await pass(true);
    return {
      tables: tables.rows.length,
      rows: tables.rows.reduce((n, r) => n + Number(r.rows), 0),
      read,
      maintained,
      deferred,
    };
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS ${SCRATCH} CASCADE`).catch(() => undefined);
    client.release();
  }
}
