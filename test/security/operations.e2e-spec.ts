import { startTestGateway } from '@gw/testing/gateway';
import type { TestGateway } from '@gw/testing/gateway';

/** Operations endpoints and write races: what a stranger on the network or two racing writers can do. */
describe('metrics exposure', () => {
  let open: TestGateway;
  let tokened: TestGateway;
  let exposed: TestGateway;
  const scrapeToken = 'scrape-secret-0123456789abcdef';

  beforeAll(async () => {
    [open, tokened, exposed] = await Promise.all([
      startTestGateway(),
      startTestGateway({ GW_METRICS_TOKEN: scrapeToken, GW_HTTP_HOST: '0.0.0.0' }),
      // Configured for every interface without a scrape token (the test still binds loopback).
      startTestGateway({ GW_HTTP_HOST: '0.0.0.0' }),
    ]);
  });
  afterAll(() => Promise.all([open?.close(), tokened?.close(), exposed?.close()]));

  it('is open on a loopback listener without a token (a local scraper)', async () => {
    expect((await fetch(`${open.baseUrl}/metrics`)).status).toBe(200);
  });

  it('is refused on a non-loopback listener when no scrape token is configured', async () => {
    const res = await fetch(`${exposed.baseUrl}/metrics`);
    expect(res.status).toBe(403);
    expect(JSON.stringify(await res.json())).toContain('GW_METRICS_TOKEN');
  });

  it('needs the configured Bearer token when one is set', async () => {
    expect((await fetch(`${tokened.baseUrl}/metrics`)).status).toBe(401);
    const wrong = await fetch(`${tokened.baseUrl}/metrics`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    // An access token of the gateway is not the scrape token either.
    const access = await tokened.token();
    expect((await fetch(`${tokened.baseUrl}/metrics`, { headers: { authorization: `Bearer ${access}` } })).status).toBe(
      401,
    );
    const right = await fetch(`${tokened.baseUrl}/metrics`, { headers: { authorization: `Bearer ${scrapeToken}` } });
    expect(right.status).toBe(200);
    expect(await right.text()).toContain('http_request_duration_seconds');
  });
});

describe('two writers creating the same new id at once', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(() => gw?.close());

  it('never answers 500: one creates, the other updates or gets a 409 it can retry', async () => {
    const token = await gw.token();
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const id = `race-${i}`;
      const put = (family: string): Promise<Response> =>
        fetch(`${gw.fhirUrl}/Patient/${id}`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
          body: JSON.stringify({ resourceType: 'Patient', id, name: [{ family }] }),
        });
      const answers = await Promise.all([put('Un'), put('Deux'), put('Trois')]);
      statuses.push(...answers.map((r) => r.status));
    }
    expect(statuses.filter((s) => ![200, 201, 409].includes(s))).toEqual([]);
    expect(statuses.filter((s) => s === 201)).toHaveLength(10);
  });
});
