import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { decodeJwt } from 'jose';
import { IDNATPS } from '@gw/fhir';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { startOidcProvider } from '../support/oidc';
import type { OidcTestProvider } from '../support/oidc';
import { freePort } from '../support/ports';
import { killAll } from '../support/process';

const G15 = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const DASHBOARD_CLIENT = 'dashboard-msp-a';

/**
 * The dashboard's person login in a real (headless) Chromium: the gateway as relying party of a
 * real OpenID Connect provider (its login page), the one-time code redeemed by the page, the
 * person token in the tab; a person the directory does not know is told why; a callback from
 * another browser (no state cookie) and a second redemption of a code are refused.
 */
describe('dashboard login through an OpenID Connect provider', () => {
  let gw: TestGateway;
  let oidc: OidcTestProvider;
  let browser: Browser;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    const port = await freePort();
    const client = {
      client_id: 'gateway-dashboard',
      client_secret: 'gateway-dashboard-secret-0123456789abcdef',
      redirect_uris: [`http://127.0.0.1:${port}/dashboard/callback`],
    };
    oidc = await startOidcProvider([client], {
      'dr-martin': { SubjectNameID: '810000000001' },
      stranger: { SubjectNameID: '819999999999' },
    });
    gw = await startTestGateway({
      GW_HTTP_PORT: String(port),
      GW_DASHBOARD_OIDC_ISSUER: oidc.issuer,
      GW_DASHBOARD_OIDC_CLIENT_ID: client.client_id,
      GW_DASHBOARD_OIDC_CLIENT_SECRET: client.client_secret,
      GW_DASHBOARD_CLIENT_ID: DASHBOARD_CLIENT,
    });
    const admin = await gw.token();
    const put = async (resource: Record<string, unknown> & { resourceType: string; id: string }): Promise<void> => {
      const res = await fetch(`${gw.fhirUrl}/${resource.resourceType}/${resource.id}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/fhir+json' },
        body: JSON.stringify(resource),
      });
      expect(res.status).toBeLessThan(300);
    };
    await put({ resourceType: 'Organization', id: 'msp-a', name: 'MSP des Lilas' });
    await put({
      resourceType: 'Practitioner',
      id: 'pr-martin',
      identifier: [{ system: IDNATPS, value: '810000000001' }],
      name: [{ family: 'Martin' }],
    });
    await put({
      resourceType: 'PractitionerRole',
      id: 'role-martin',
      active: true,
      practitioner: { reference: 'Practitioner/pr-martin' },
      organization: { reference: 'Organization/msp-a' },
      code: [{ coding: [{ system: G15, code: '10' }] }],
    });
    await gw.core.clients.create({
      id: DASHBOARD_CLIENT,
      name: 'dashboard of MSP des Lilas',
      organization: 'Organization/msp-a',
      scopes: ['system/*.rs'],
      withSecret: true,
    });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await oidc?.stop();
    await killAll();
    await gw?.close();
  });

  /** Opens the dashboard in a fresh context and logs `login` in at the provider's page. */
  async function providerLogin(login: string): Promise<{ page: Page; codes: string[] }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    const codes: string[] = [];
    page.on('response', (res) => {
      const location = res.headers().location ?? '';
      const code = /#login_code=([^&]+)/.exec(location)?.[1];
      if (res.url().includes('/dashboard/callback') && code) {
        codes.push(decodeURIComponent(code));
      }
    });
    await page.goto(`${gw.baseUrl}/dashboard/`);
    await page.locator('#oidc-login').click();
    await page.locator('input[name="login"]').fill(login);
    await page.locator('input[name="password"]').fill('any');
    await page.locator('button[type="submit"]').click();
    await page.waitForURL(`${gw.baseUrl}/dashboard/**`);
    return { page, codes };
  }

  it('logs a practitioner in through the provider and keeps a person token in the tab only', async () => {
    const { page, codes } = await providerLogin('dr-martin');
    await page.locator('#board').waitFor({ state: 'visible' });
    // The fragment with the one-time code is gone from the address bar and the history.
    expect(page.url()).toBe(`${gw.baseUrl}/dashboard/`);
    const token = await page.evaluate<string | undefined>(
      "Object.values(sessionStorage).find((v) => v.split('.').length === 3)",
    );
    expect(decodeJwt(String(token))).toMatchObject({
      sub: 'Practitioner/pr-martin',
      act: { sub: DASHBOARD_CLIENT },
      practitioner_role: 'PractitionerRole/role-martin',
      profession: '10',
      health: true,
      // A provider proved who the person is: grants naming the Practitioner apply.
      identity_verified: true,
    });
    // The page says who is logged in: the person, their profession, their structure.
    await expect(page.locator('#who').textContent()).resolves.toBe('Martin — médecin — MSP des Lilas');
    // The code was redeemed once by the page: a second redemption is refused.
    expect(codes).toHaveLength(1);
    const again = await fetch(`${gw.baseUrl}/dashboard/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code: codes[0] }),
    });
    expect(again.status).toBe(400);
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('tells a person the directory does not know why the login is refused', async () => {
    const { page } = await providerLogin('stranger');
    await page.locator('#message').waitFor({ state: 'visible' });
    expect(await page.locator('#message').textContent()).toContain('No active Practitioner with this IdNatPS');
    expect(await page.locator('#board').isHidden()).toBe(true);
    expect(await page.evaluate<number>('sessionStorage.length')).toBe(0);
    await page.context().close();
  });

  it('refuses a callback that does not come back to the browser that started the login', async () => {
    const start = await fetch(`${gw.baseUrl}/dashboard/login`, { redirect: 'manual' });
    expect(start.status).toBe(302);
    const location = new URL(start.headers.get('location') ?? '');
    expect(location.origin).toBe(oidc.issuer);
    expect(location.searchParams.get('code_challenge_method')).toBe('S256');
    expect(location.searchParams.get('nonce')).toBeTruthy();
    // Without the state cookie (a login link planted in another browser).
    const state = location.searchParams.get('state') ?? '';
    const cb = await fetch(`${gw.baseUrl}/dashboard/callback?code=abc&state=${state}`, { redirect: 'manual' });
    expect(cb.status).toBe(302);
    expect(cb.headers.get('location')).toMatch(/^\.\/#login_error=/);
    expect(cb.headers.get('location')).not.toContain('login_code');
  });

  it('offers the provider login only when configured', async () => {
    const options = await fetch(`${gw.baseUrl}/dashboard/login/options`);
    expect(await options.json()).toEqual({ oidc: true });
  });
});
