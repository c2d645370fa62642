import type { MeasureReport, MeasureReportGroupPopulation } from '@medplum/fhirtypes';
import { CODES } from '@gw/indicators';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call } from '../support/hl7';
import { typedOrganization } from '../support/indicators';

type Res = Record<string, unknown> & { resourceType: string };
const MEASURE = 'rosp-depistage-sein';
const TRIALS = 20;

/** Month ends from 2024-01 on: monthEnd(0) = 2024-01-31. */
function monthEnd(i: number): string {
  return new Date(Date.UTC(2024, i + 1, 0)).toISOString().slice(0, 10);
}
function monthStart12(i: number): string {
  return new Date(Date.UTC(2024, i - 11, 1)).toISOString().slice(0, 10);
}
/** A fixed pseudo-random sequence (mulberry32): which targets had the screening is not a pattern. */
function coins(seed: number, n: number): boolean[] {
  let a = seed;
  return Array.from({ length: n }, () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 < 0.5;
  });
}

/**
 * The differencing attack replayed. A CPTS client (population reports only) wants to know whether
 * target patients of a member MSP had their screening mammography in a given month. Each target i
 * is the only person whose screening may fall in month i; the attacker knows everything else and
 * compares the report of the 12 months ending that month with the report ending the month before:
 * the numerators differ by exactly the target's status. On exact figures this is right every time
 * (and with periods a day apart it was: 3 of 3).
 */
describe('security: small-cell protection survives differencing', () => {
  let gw: TestGateway;
  let cpts: string;
  let msp: string;
  let tokenCpts: string;
  const screened = coins(15, TRIALS);

  beforeAll(async () => {
    gw = await startTestGateway({ GW_MLLP_ENABLED: 'false', GW_WORKERS_INPROCESS: 'false' });
    // A fixed secret makes this test reproducible; the gateway draws a random one per database.
    await gw.core.db.pool.query(`UPDATE ind_cell_key SET secret = 'differencing-e2e-fixed-secret'`);
    cpts = await typedOrganization(gw, 'CPTS', 'CPTS');
    msp = await typedOrganization(gw, 'MSP', 'MSP', cpts);
    tokenCpts = (await gw.clientOf(cpts, ['system/Measure.rs'])).token;
    const owner = { tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${msp}` }] };
    const entries: { fullUrl: string; resource: Res; request: { method: string; url: string } }[] = [];
    // Patients get fixed ids (an operator may choose them): each person's record key, hence the
    // noise, is then the same on every run, and so is the attack's score below.
    const add = (key: number, resource: Res): void => {
      const id = resource.resourceType === 'Patient' ? `differencing-${key}` : undefined;
      entries.push({
        fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(key).padStart(12, '0')}`,
        resource: { ...resource, ...(id ? { id } : {}), meta: owner },
        request: id ? { method: 'PUT', url: `Patient/${id}` } : { method: 'POST', url: resource.resourceType },
      });
    };
    const mammography = (key: number, patient: number, date: string): void =>
      add(key, {
        resourceType: 'Procedure',
        status: 'completed',
        code: { coding: [CODES.screeningMammography] },
        subject: { reference: `urn:uuid:00000000-0000-4000-8000-${String(patient).padStart(12, '0')}` },
        performedDateTime: date,
      });
    // 60 women of 63–65 over the two years; 15 screened in January 2024 (in every 2-year window
    // below); targets 1..20 screened on the 15th of month i (February 2024 … September 2025) or not.
    for (let p = 1; p <= 60; p++) {
      add(p, { resourceType: 'Patient', gender: 'female', birthDate: '1960-06-15', name: [{ family: `W${p}` }] });
    }
    for (let p = 1; p <= 15; p++) {
      mammography(100 + p, 40 + p, '2024-01-10');
    }
    screened.forEach((yes, i) => {
      if (yes) {
        mammography(200 + i, i + 1, `${monthEnd(i + 1).slice(0, 8)}15`);
      }
    });
    const res = await call(gw, 'POST', gw.fhirUrl, { resourceType: 'Bundle', type: 'transaction', entry: entries });
    expect(res.status).toBe(200);
  }, 120_000);

  afterAll(async () => gw?.close());

  const numerator = (pops: MeasureReportGroupPopulation[] | undefined): number =>
    pops?.find((p) => p.code?.coding?.[0]?.code === 'numerator')?.count as number;
  async function report(
    start: string,
    end: string,
    token = tokenCpts,
  ): Promise<{ status: number; body: MeasureReport }> {
    return call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/${MEASURE}/$evaluate-measure?periodStart=${start}&periodEnd=${end}&subject=Organization/${cpts}&population=all`,
      undefined,
      token,
    );
  }
  /** The attacker's guesses: screened in month i iff the numerator grew from the month before. */
  async function attack(token?: string): Promise<boolean[]> {
    const guesses: boolean[] = [];
    for (let i = 1; i <= TRIALS; i++) {
      const before = await report(monthStart12(i - 1), monthEnd(i - 1), token);
      const after = await report(monthStart12(i), monthEnd(i), token);
      expect([before.status, after.status]).toEqual([200, 200]);
      guesses.push(numerator(after.body.group?.[0]?.population) - numerator(before.body.group?.[0]?.population) >= 1);
    }
    return guesses;
  }

  it('on exact figures (an operator) the attack is right every time', async () => {
    const guesses = await attack(await gw.token());
    expect(guesses).toEqual(screened);
  });

  it("on a non-admin client's figures the naive differencing inference is no better than a weak guess", async () => {
    const guesses = await attack();
    const right = guesses.filter((g, i) => g === screened[i]).length;
    // Noise of two different cells n1, n2 drawn from the table (-2..+2 with p .15/.2/.3/.2/.15): the
    // observed difference is status + n1 - n2. The best rule on one pair ("difference >= 1") is right
    // with probability 1/2 + P(n1 = n2)/2 = 1/2 + 0.215/2 ≈ 0.61 per target: 12.2 of 20 expected.
    // We call the inference unreliable if it is right at most 16 times of 20 (a binomial(20, 0.61)
    // exceeds that with probability ≈ 3 %; the unprotected attack above scores 20 of 20). The secret and
    // the patients' ids are fixed above, so this outcome is the same on every run, not redrawn.
    process.stdout.write(`differencing attack: ${right} of ${TRIALS} right\n`);
    expect(right).toBeLessThanOrEqual(16);
  });

  it('the same report asked twice gives identical figures (noise cannot be averaged away)', async () => {
    const a = await report(monthStart12(12), monthEnd(12));
    const b = await report(monthStart12(12), monthEnd(12));
    expect(JSON.stringify(a.body.group)).toBe(JSON.stringify(b.body.group));
    const flag = a.body.extension?.find((e) => e.url.endsWith('measure-suppression'));
    expect(flag?.extension?.find((e) => e.url === 'cell-key-perturbation')?.valueBoolean).toBe(true);
  });

  it('periods a day apart, or not 12 whole calendar months, are refused with the parameter named', async () => {
    const dayShift = await call<{ issue: { expression?: string[] }[] }>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/${MEASURE}/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-30&subject=Organization/${cpts}`,
      undefined,
      tokenCpts,
    );
    expect(dayShift.status).toBe(400);
    expect(dayShift.body.issue[0]?.expression).toEqual(['periodEnd']);
    for (const [start, end] of [
      ['2025-01-02', '2025-12-31'],
      ['2025-02-01', '2025-12-31'],
    ]) {
      const res = await call<{ issue: { expression?: string[] }[] }>(
        gw,
        'GET',
        `${gw.fhirUrl}/Measure/${MEASURE}/$evaluate-measure?periodStart=${start}&periodEnd=${end}&subject=Organization/${cpts}`,
        undefined,
        tokenCpts,
      );
      expect(res.status).toBe(400);
      expect(res.body.issue[0]?.expression).toEqual(['periodStart']);
    }
  });
});
