import { resolve } from 'node:path';
import type { Bundle, OperationOutcome, Practitioner } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { Stays, TestSmtp, eventually, mailbox } from '../support/exchange';
import { createOrganization, finess, registerSource, search, uniqueId } from '../support/hl7';
import { GATEWAY_CLI, ROOT, killAll, run } from '../support/process';

const RPPS_SYSTEM = 'https://rpps.esante.gouv.fr';
const FIXTURES = resolve(ROOT, 'test/fixtures/directory');
// The professionals of the fixture files (RPPS with their Luhn key).
const LAMBERT = '10099000019';
const ROUGE = '10099000027';
const MARTIN = '10099000035';

/** `npm run gateway -- directory:import …` as a real process on the test gateway's database (build first: npm run build). */
async function importDirectory(
  gw: TestGateway,
  ps: string,
  mss?: string,
): Promise<{ code: number | null; out: string; stats: Record<string, number> }> {
  const args = [
    'directory:import',
    '--ps',
    resolve(FIXTURES, ps),
    ...(mss ? ['--mss', resolve(FIXTURES, mss)] : []),
    '--progress-ms',
    '0',
  ];
  const proc = run(
    GATEWAY_CLI,
    { GW_DATABASE_URL: gw.core.config.GW_DATABASE_URL as string, GW_LOG_LEVEL: 'warn' },
    args,
  );
  const code = await proc.exited;
  if (code !== 0) {
    throw new Error(`directory:import exited ${code}: ${proc.out()}`);
  }
  const line = proc
    .out()
    .split('\n')
    .find((l) => l.startsWith('{"status":"imported"'));
  return { code, out: proc.out(), stats: line ? (JSON.parse(line) as Record<string, number>) : {} };
}

async function practitioner(gw: TestGateway, rpps: string): Promise<Practitioner[]> {
  return search<Practitioner>(gw, 'Practitioner', { identifier: `${RPPS_SYSTEM}|${rpps}` });
}

describe('directory:import of the Annuaire Santé extractions (RPPS, MSSanté)', () => {
  let gw: TestGateway;
  let smtp: TestSmtp;
  let msp: { token: string };
  const stamp = uniqueId('I');
  const stays = new Stays(() => gw, stamp);

  beforeAll(async () => {
    smtp = new TestSmtp();
    await smtp.start();
    gw = await startTestGateway({
      GW_MSS_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      GW_MSS_FROM: 'passerelle@gw-test.mssante.fr',
      GW_MSS_SMTP_INSECURE: 'true',
      GW_EXCHANGE_MAX_DISCHARGE_AGE: '36500d',
    });
    msp = await gw.clientOf('msp-lilas', ['system/*.cruds']);
    const hospital = await createOrganization(gw, 'CHU Import', finess('75000401'));
    await registerSource(gw, {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-X',
      organization: `Organization/${hospital}`,
      name: 'CHU Import',
    });
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await gw?.close();
    await smtp?.stop();
  });

  it('imports one Practitioner per RPPS, takes over the one a structure registered, publishes listed mailboxes only, reports progress on stderr', async () => {
    const before = await fetch(`${gw.fhirUrl}/Practitioner`, {
      method: 'POST',
      headers: { authorization: `Bearer ${msp.token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({
        resourceType: 'Practitioner',
        identifier: [{ system: RPPS_SYSTEM, value: LAMBERT }],
        telecom: [mailbox('old.address@medecin.mssante.fr'), { system: 'phone', value: '0102030405' }],
      }),
    });
    const registered = (await before.json()) as Practitioner;
    expect(before.status).toBe(201);

    const first = await importDirectory(
      gw,
      'PS_LibreAcces_Personne_activite_v1.txt',
      'Extraction_Correspondance_MSSante_v1.txt',
    );
    expect(first.stats).toMatchObject({
      psLines: 5,
      professionals: 3,
      created: 2,
      updated: 1,
      unchanged: 0,
      mailboxes: 3,
      unlistedMailboxes: 1,
    });
    expect(first.out).toMatch(/directory:import professionals: 5 lines read/);
    expect(first.out).toMatch(/directory:import done:/);

    const [lambert] = await practitioner(gw, LAMBERT);
    expect(lambert.id).toBe(registered.id);
    expect(lambert.name?.[0]).toMatchObject({ family: 'LAMBERT', given: ['Hélène'], prefix: ['Docteur'] });
    expect(lambert.telecom?.map((t) => t.value)).toEqual(['0102030405', 'helene.lambert@medecin.mssante.fr']);
    expect(lambert.qualification?.[0].code.coding?.[0].code).toBe('10');
    // The unlisted (liste rouge) mailbox is in no resource: not read, not searchable.
    const [rouge] = await practitioner(gw, ROUGE);
    expect(rouge.telecom).toBeUndefined();
    expect(JSON.stringify(rouge)).not.toContain('paul.rouge');
    expect(await search(gw, 'Practitioner', { email: 'paul.rouge@medecin.mssante.fr' })).toEqual([]);
    expect(await practitioner(gw, '759912345')).toEqual([]);

    // The structure that registered LAMBERT no longer changes the entry the directory now maintains.
    const hijack = await fetch(`${gw.fhirUrl}/Practitioner/${lambert.id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${msp.token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ ...lambert, telecom: [mailbox('pirate@x.mssante.fr')] }),
    });
    expect(hijack.status).toBe(403);
    expect(JSON.stringify((await hijack.json()) as OperationOutcome)).toContain('directory import (Annuaire Santé)');
  });

  it('is idempotent: the same files again write no version', async () => {
    const versions = async (): Promise<string[]> =>
      (await Promise.all([LAMBERT, ROUGE, MARTIN].map((r) => practitioner(gw, r)))).map(
        (p) => p[0].meta?.versionId ?? '',
      );
    const before = await versions();
    const again = await importDirectory(
      gw,
      'PS_LibreAcces_Personne_activite_v1.txt',
      'Extraction_Correspondance_MSSante_v1.txt',
    );
    expect(again.code).toBe(0);
    expect(again.stats).toMatchObject({ professionals: 3, created: 0, updated: 0, unchanged: 3, deactivated: 0 });
    expect(await versions()).toEqual(before);
  });

  it('is incremental: a professional absent from the new full extraction becomes inactive, once', async () => {
    const next = await importDirectory(
      gw,
      'PS_LibreAcces_Personne_activite_v2.txt',
      'Extraction_Correspondance_MSSante_v1.txt',
    );
    expect(next.stats).toMatchObject({ professionals: 2, unchanged: 2, deactivated: 1 });
    const [martin] = await practitioner(gw, MARTIN);
    expect(martin.active).toBe(false);
    const versionAfter = martin.meta?.versionId;
    const same = await importDirectory(
      gw,
      'PS_LibreAcces_Personne_activite_v2.txt',
      'Extraction_Correspondance_MSSante_v1.txt',
    );
    expect(same.stats).toMatchObject({ deactivated: 0, unchanged: 2 });
    expect((await practitioner(gw, MARTIN))[0].meta?.versionId).toBe(versionAfter);
    const bundle = (await (
      await fetch(`${gw.fhirUrl}/Practitioner?identifier=${RPPS_SYSTEM}|${MARTIN}`, {
        headers: { authorization: `Bearer ${msp.token}` },
      })
    ).json()) as Bundle;
    expect(bundle.entry).toHaveLength(1);
  });

  it("routes a discharge to the imported personal mailbox, and to an unlisted one (the MT's own patient), never publishing it", async () => {
    const listed = stays.stay({}, { gp: { rpps: LAMBERT, family: 'LAMBERT', given: 'H' } });
    await listed.send('A01', { date: '20261120100000' });
    await listed.send('A03', { date: '20261122150000', exitMode: '8' });
    const unlisted = stays.stay({}, { gp: { rpps: ROUGE, family: 'ROUGE', given: 'P' } });
    await unlisted.send('A01', { date: '20261120100000' });
    await unlisted.send('A03', { date: '20261122150000', exitMode: '8' });
    await eventually(async () => smtp.to('helene.lambert@medecin.mssante.fr').length === 1, 30_000);
    await eventually(async () => smtp.to('paul.rouge@medecin.mssante.fr').length === 1, 30_000);
    // One Practitioner per RPPS still, and the feed did not touch the directory's entries.
    const [lambert] = await practitioner(gw, LAMBERT);
    expect((await practitioner(gw, ROUGE))[0].telecom).toBeUndefined();
    expect(lambert.name?.[0].family).toBe('LAMBERT');
    expect(lambert.meta?.tag?.some((t) => t.code === 'annuaire-sante')).toBe(true);
  });
});
