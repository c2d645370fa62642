import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { CODES } from '@gw/indicators';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call } from '../support/hl7';
import { typedOrganization } from '../support/indicators';
import { countColour, decodePng } from '../support/png';

const THRESHOLD = 5;
/** The indicator series colour of apps/gateway/dashboard/dashboard.js. */
const SERIES_COLOUR = '#0b63c5';
const MEASURE = 'rosp-diabete-hba1c';

type Res = Record<string, unknown> & { resourceType: string };
interface Client {
  clientId: string;
  secret: string;
  token: string;
}

/**
 * The dashboard in a real (headless) Chromium against a real gateway. MSP A has 12 treated
 * diabetics, all with a first HbA1c in February 2025; 2 get their second in September and 5 more
 * in October. So the September report is suppressed (numerator 2 < 5) and October to December
 * show 7/12; the 5 without a second assay are the recall list. MSP B (3 diabetics) is a small
 * cell in the CPTS's per-structure view.
 */
describe('indicator dashboard in a browser', () => {
  let gw: TestGateway;
  let browser: Browser;
  let cpts: string;
  let mspA: string;
  let mspB: string;
  let clientA: Client;
  let clientCpts: Client;
  let clientC: Client;
  const pageErrors: string[] = [];

  const org = (name: string, type: string, partOf?: string): Promise<string> =>
    typedOrganization(gw, name, type, partOf);

  /** A transaction of treated diabetics born in 1950 (and their GP) posted by a structure's client. */
  async function diabetics(
    token: string,
    prefix: string,
    n: number,
    hba1cDates: (i: number) => string[],
  ): Promise<void> {
    const gp = `urn:uuid:00000000-0000-4000-8000-${String(prefix.charCodeAt(0)).padStart(12, '0')}`;
    const entries: { fullUrl?: string; resource: Res }[] = [
      {
        fullUrl: gp,
        resource: { resourceType: 'Practitioner', active: true, name: [{ family: 'GP', given: [prefix] }] },
      },
    ];
    for (let i = 1; i <= n; i++) {
      const p = `urn:uuid:00000000-0000-4000-9000-${String(prefix.charCodeAt(0) * 100 + i).padStart(12, '0')}`;
      const subject = { reference: p };
      entries.push(
        {
          fullUrl: p,
          resource: {
            resourceType: 'Patient',
            name: [{ family: 'TEST', given: [`${prefix}${i}`] }],
            gender: 'male',
            birthDate: '1950-01-01',
            generalPractitioner: [{ reference: gp }],
          },
        },
        {
          resource: {
            resourceType: 'MedicationRequest',
            status: 'active',
            intent: 'order',
            medicationCodeableConcept: { coding: [CODES.metformin] },
            subject,
            authoredOn: '2025-01-15',
          },
        },
        ...hba1cDates(i).map((date) => ({
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [CODES.hba1c] },
            subject,
            effectiveDateTime: date,
          },
        })),
      );
    }
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: entries.map((e) => ({ ...e, request: { method: 'POST', url: e.resource.resourceType } })),
    };
    const res = await call(gw, 'POST', gw.fhirUrl, bundle, token);
    expect(res.status).toBe(200);
  }

  beforeAll(async () => {
    gw = await startTestGateway({
      GW_WORKERS_INPROCESS: 'false',
      GW_MLLP_ENABLED: 'false',
      GW_INDICATOR_SMALL_CELL: String(THRESHOLD),
      // Exact figures are what these tests check (test/security/differencing.e2e-spec.ts covers the noise).
      GW_INDICATOR_NOISE: 'false',
    });
    cpts = await org('CPTS du Val', 'CPTS');
    mspA = await org('MSP des Lilas', 'MSP', cpts);
    mspB = await org('MSP du Parc', 'MSP', cpts);
    clientA = await gw.clientOf(mspA, ['system/*.cruds']);
    const clientB = await gw.clientOf(mspB, ['system/*.cruds']);
    clientCpts = await gw.clientOf(cpts, ['system/Measure.rs', 'system/MeasureReport.rs', 'system/Organization.rs']);
    await diabetics(clientA.token, 'P', 12, (i) => [
      '2025-02-01',
      ...(i <= 2 ? ['2025-09-10'] : i <= 7 ? ['2025-10-10'] : []),
    ]);
    await diabetics(clientB.token, 'Q', 3, () => []);
    for (const end of ['2025-09-30', '2025-10-31', '2025-11-30', '2025-12-31']) {
      await gw.core.indicators.storeMonthlyReports(end);
    }
    // A structure registered after the last run: no stored reports.
    clientC = await gw.clientOf(await org('Cabinet des Tilleuls', 'MSP'), ['system/*.rs']);
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
  });

  /** A fresh browser context (its own sessionStorage) logged in with a client's credentials. */
  async function loggedIn(client: Client): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1100, height: 1400 } });
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/status of 40[13]/.test(msg.text())) {
        pageErrors.push(msg.text());
      }
    });
    await page.goto(`${gw.baseUrl}/dashboard`);
    await page.getByLabel('Identifiant du client (client_id)').fill(client.clientId);
    await page.getByLabel('Secret du client').fill(client.secret);
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.locator('#board').waitFor({ state: 'visible' });
    return page;
  }

  /** Pixels of the series colour in the chart's lower 70 % (below its title and legend). */
  async function seriesPixels(page: Page): Promise<number> {
    const shot = decodePng(await page.locator('#chart').screenshot());
    const top = Math.floor(shot.height * 0.3);
    return countColour(
      { ...shot, height: shot.height - top, rgba: shot.rgba.subarray(top * shot.width * 4) },
      SERIES_COLOUR,
    );
  }

  async function rows(page: Page): Promise<string[][]> {
    return page
      .locator('#values tbody tr')
      .evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent ?? '')));
  }

  it('serves the page, its modules and chart.js publicly; nothing else', async () => {
    const page = await fetch(`${gw.baseUrl}/dashboard`, { redirect: 'manual' });
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toBe('dashboard/');
    for (const [path, type] of [
      ['/dashboard/', 'text/html'],
      ['/dashboard/dashboard.js', 'text/javascript'],
      ['/dashboard/vendor/chart.umd.min.js', 'text/javascript'],
    ] as const) {
      const res = await fetch(`${gw.baseUrl}${path}`);
      expect([path, res.status, res.headers.get('content-type')?.split(';')[0]]).toEqual([path, 200, type]);
    }
    const other = await fetch(`${gw.baseUrl}/dashboard/tsconfig.json`);
    expect(other.status).toBe(404);
    expect(((await other.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
  });

  it('a structure: measures, trend chart drawn with data, suppressed month in the table, recall list', async () => {
    const page = await loggedIn(clientA);
    await expect(page.locator('#who').textContent()).resolves.toContain('MSP des Lilas');
    const measures = await page.locator('#measure option').evaluateAll((os) => os.map((o) => o.getAttribute('value')));
    expect(measures).toHaveLength(8);
    expect(measures).toContain(MEASURE);
    await page.selectOption('#measure', MEASURE);
    await page.locator('#values tbody tr').nth(3).waitFor();

    const table = await rows(page);
    expect(table.map((r) => r[0])).toEqual(['2025-09', '2025-10', '2025-11', '2025-12']);
    // September: the numerator (2) is a small cell: every count and the score are masked, not zero.
    expect(table[0]!.slice(1, 6)).toEqual(Array(5).fill(`masqué (< ${THRESHOLD})`));
    expect(table[0]![6]).toBe('masqué');
    // December: 7 of 12, under the intermediate objective (74 %).
    expect(table[3]!.slice(1, 8)).toEqual(['12', '12', '0', '7', '58,3 %', 'non atteint', 'rapport mensuel']);
    await expect(page.locator('#objectives').textContent()).resolves.toMatch(
      /Objectif intermédiaire : 74 %.*Cible : 92 %/,
    );

    // The chart: the series colour below the title and legend (where only the data line can be).
    expect(await seriesPixels(page)).toBeGreaterThan(300);

    await page.getByRole('button', { name: 'Afficher la liste de rappel' }).click();
    const recall = page.locator('#recall-result table');
    await recall.waitFor();
    await expect(recall.locator('caption').textContent()).resolves.toContain('5 patient(s) à rappeler');
    const names = await recall.locator('tbody tr td:nth-child(2)').allTextContents();
    expect(names.sort()).toEqual(['TEST P10', 'TEST P11', 'TEST P12', 'TEST P8', 'TEST P9']);
    await page.context().close();
  });

  it('a CPTS: its structures as suppressed cells, and the recall list refused with the reason', async () => {
    const page = await loggedIn(clientCpts);
    await page.selectOption('#measure', MEASURE);
    const structures = await page.locator('#structure option').allTextContents();
    expect(structures).toEqual(['Tout le périmètre', 'MSP des Lilas', 'MSP du Parc']);
    expect((await rows(page))[3]!.slice(1, 6)).toEqual(['15', '15', '0', '7', '46,7 %']);
    // MSP B's 3 patients are a small cell; MSP A is hidden as its complement.
    await page.selectOption('#structure', { label: 'MSP du Parc' });
    expect((await rows(page))[3]![2]).toBe(`masqué (< ${THRESHOLD})`);
    await page.selectOption('#structure', { label: 'MSP des Lilas' });
    expect((await rows(page))[3]![2]).toBe('masqué (complément)');

    await page.getByRole('button', { name: 'Afficher la liste de rappel' }).click();
    const refusal = page.locator('#recall-result .refusal');
    await refusal.waitFor();
    await expect(refusal.textContent()).resolves.toContain('A CPTS receives population reports only');
    await expect(page.locator('#board').isVisible()).resolves.toBe(true);
    await page.context().close();
  });

  it('no stored reports yet: says how to run them and shows the live evaluation', async () => {
    const page = await loggedIn(clientC);
    const notice = page.locator('#no-reports');
    await notice.waitFor({ state: 'visible' });
    await expect(notice.textContent()).resolves.toContain('npm run gateway -- indicators:run --months 12');
    await page.locator('#values tbody tr').first().waitFor();
    const [row] = await rows(page);
    expect(row![0]).toMatch(/^\d{4}-\d{2} \(en direct\)$/);
    expect(row![7]).toBe('en direct');
    // No patient in that period: no score, so no data drawn (the pixel check above is not the legend).
    expect(row![5]).toBe('sans objet');
    expect(await seriesPixels(page)).toBeLessThan(20);
    await page.context().close();
  });

  it('an invalid or expired token sends back to the login form with the reason', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gw.baseUrl}/dashboard/`);
    await page.getByLabel('Jeton d’accès (Bearer)').fill('eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9.c2ln');
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await expect(page.locator('#message').textContent()).resolves.toContain('reconnectez-vous');
    await expect(page.locator('#login').isVisible()).resolves.toBe(true);
    // The page keeps its token in sessionStorage only: nothing kept after a refused one.
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    // A wrong secret: the OAuth error is shown, the form stays.
    await page.getByLabel('Identifiant du client (client_id)').fill(clientA.clientId);
    await page.getByLabel('Secret du client').fill('wrong');
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.getByRole('alert').filter({ hasText: 'Connexion refusée' }).waitFor();
    await context.close();
  });

  it('the page logged no script error', () => {
    expect(pageErrors).toEqual([]);
  });
});
