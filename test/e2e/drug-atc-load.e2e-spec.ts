import { resolve } from 'node:path';
import { Terminology } from '@gw/ingest';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { GATEWAY_CLI, ROOT, killAll, run } from '../support/process';

const FIXTURES = resolve(ROOT, 'test/fixtures/drug-atc');

/** `npm run gateway -- indicators:load-drug-atc …` as a real process on the test gateway's database (build first: npm run build). */
async function load(gw: TestGateway, args: string[]): Promise<{ code: number | null; out: string }> {
  const proc = run(GATEWAY_CLI, { GW_DATABASE_URL: gw.core.config.GW_DATABASE_URL as string, GW_LOG_LEVEL: 'warn' }, [
    'indicators:load-drug-atc',
    ...args,
  ]);
  const code = await proc.exited;
  return { code, out: proc.out() };
}

describe('indicators:load-drug-atc (BDPM files into the CIS/CIP → ATC map)', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway();
  }, 120_000);
  afterAll(async () => {
    await killAll();
    await gw.close();
  });

  const rows = async (code: string) =>
    (
      await gw.core.db.pool.query<{ system: string; atc: string }>(
        'SELECT system, atc FROM ind_drug_atc WHERE code = $1 ORDER BY atc',
        [code],
      )
    ).rows;

  it('the boot added the shipped map (pairs the ANS samples state)', async () => {
    expect(await rows('3400932857241')).toEqual([
      { system: Terminology.BDPM, atc: 'J07AM' },
      { system: Terminology.BDPM, atc: 'J07AM01' },
    ]);
  });

  it('maps the CIS and its CIP7 and CIP13 to the CIS’s ATC code; a second load adds nothing', async () => {
    const args = ['--cis-cip', resolve(FIXTURES, 'CIS_CIP_bdpm.txt'), '--cis-atc', resolve(FIXTURES, 'CIS_ATC.txt')];
    const first = await load(gw, args);
    expect(first.code).toBe(0);
    // The CIS, its CIP7 and CIP13 under J07AM01; the CIP13 already was (the CNAM-HR pair of the shipped map).
    expect(JSON.parse(first.out.trim().split('\n').at(-1) ?? '{}')).toEqual({ entries: 3, added: 2 });
    expect(await rows('3285724')).toEqual([{ system: Terminology.BDPM, atc: 'J07AM01' }]);
    expect((await rows('68747507')).map((r) => r.atc)).toEqual(['J07AM', 'J07AM01']);
    const again = await load(gw, args);
    expect(JSON.parse(again.out.trim().split('\n').at(-1) ?? '{}')).toEqual({ entries: 3, added: 0 });
  });

  it('refuses to run without its files, saying which', async () => {
    const res = await load(gw, ['--cis-cip', resolve(FIXTURES, 'CIS_CIP_bdpm.txt')]);
    expect(res.code).toBe(2);
    expect(res.out).toContain('indicators:load-drug-atc needs --cis-cip and --cis-atc, or --map');
  });
});
