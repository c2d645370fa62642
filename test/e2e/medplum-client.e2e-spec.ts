import { MedplumClient, OperationOutcomeError } from '@medplum/core';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { INS_TEST, insPatient } from '../support/fixtures';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

/**
 * @medplum/core's MedplumClient against the gateway: client credentials login, then CRUD, search
 * and history. It checks the access token's `client_id` claim after login and, since the token
 * has no Medplum `login_id`, never calls Medplum's own `auth/me`.
 */
describe('MedplumClient (client credentials) against the gateway', () => {
  let gw: TestGateway;
  const tokenCalls: { authorization: boolean; secretInBody: boolean }[] = [];

  /** Global fetch, recording what each token request carried. */
  const recordingFetch = async (input: Parameters<typeof fetch>[0], init?: RequestInit): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (url.endsWith('/oauth2/token')) {
      const headers = new Headers(init?.headers);
      tokenCalls.push({
        authorization: headers.has('authorization'),
        secretInBody: String(init?.body).includes('client_secret='),
      });
    }
    return fetch(input, init);
  };

  const client = (
    opts: { authCredentialsMethod?: 'body' | 'header'; refreshGracePeriod?: number } = {},
  ): MedplumClient =>
    new MedplumClient({
      baseUrl: gw.baseUrl,
      fhirUrlPath: 'fhir',
      tokenUrl: 'oauth2/token',
      fetch: recordingFetch,
      cacheTime: 0,
      ...opts,
    });

  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => gw.close());
  beforeEach(() => {
    tokenCalls.length = 0;
  });

  it('logs in with the secret in the body, then creates, reads, searches, updates, reads history and deletes a Patient', async () => {
    // Medplum refreshes a token that expires within refreshGracePeriod (5 min by default): with the
    // gateway's 5-minute tokens, that default would fetch a new token before every request.
    const medplum = client({ refreshGracePeriod: 60_000 });
    await medplum.startClientLogin(gw.admin.clientId, gw.admin.clientSecret);
    expect(medplum.isAuthenticated(60_000)).toBe(true);
    expect(tokenCalls).toEqual([{ authorization: false, secretInBody: true }]);

    const created = await medplum.createResource<Patient>(insPatient('280027511204885', 'Medplum'));
    expect(created.id).toEqual(expect.any(String));
    expect(created.meta?.versionId).toBe('1');

    const read = await medplum.readResource('Patient', created.id);
    expect(read.name?.[0].family).toBe('Medplum');

    const found = await medplum.searchResources('Patient', { identifier: `${INS_TEST}|280027511204885` });
    expect(found.map((p) => p.id)).toEqual([created.id]);

    const updated = await medplum.updateResource<Patient>({ ...read, birthDate: '1980-02-28' });
    expect(updated.meta?.versionId).toBe('2');
    expect(updated.birthDate).toBe('1980-02-28');

    const history: Bundle<Patient> = await medplum.readHistory('Patient', created.id);
    expect(history.type).toBe('history');
    expect(history.entry?.map((e) => e.resource?.meta?.versionId)).toEqual(['2', '1']);
    const v1 = await medplum.readVersion('Patient', created.id, '1');
    expect(v1.birthDate).toBe('1980-02-27');

    await medplum.deleteResource('Patient', created.id);
    await expect(medplum.readResource('Patient', created.id)).rejects.toBeInstanceOf(OperationOutcomeError);
    // One login for the whole sequence.
    expect(tokenCalls).toHaveLength(1);
  });

  it('logs in with HTTP Basic (authCredentialsMethod header)', async () => {
    const medplum = client({ authCredentialsMethod: 'header', refreshGracePeriod: 60_000 });
    await medplum.startClientLogin(gw.admin.clientId, gw.admin.clientSecret);
    expect(tokenCalls).toEqual([{ authorization: true, secretInBody: false }]);
    const bundle = await medplum.search('Patient', { _count: '1' });
    expect(bundle.resourceType).toBe('Bundle');
  });

  it('refuses a wrong secret: the login rejects with an OperationOutcomeError and leaves the client unauthenticated', async () => {
    const medplum = client();
    await expect(medplum.startClientLogin(gw.admin.clientId, 'not-the-secret')).rejects.toThrow(OperationOutcomeError);
    expect(medplum.isAuthenticated()).toBe(false);
  });
});
