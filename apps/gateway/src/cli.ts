import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SIRENE } from '@gw/fhir';
import { createLogger, loadConfig, splitScopes } from '@gw/platform';
import { BenchmarkFormatError, loadDrugAtc, parseBenchmarkCsv, parseMapFile, readBdpmFiles } from '@gw/indicators';
import type { BenchmarkRow } from '@gw/indicators';
import { DirectoryImporter, OWNER_TAG_SYSTEM } from '@gw/store';
import { BulkTerritoryLoader, TerritoryGenerator, TerritoryLoader } from './demo/territory';
import type { LoadProgress } from './demo/territory';
import type { GatewayCore } from './core';
import { CLIENT_GRANTS, createCore } from './core';

const USAGE = `Usage: npm run gateway -- <command> [options]

Commands:
  client:create   Register an OAuth2 client (SMART Backend Services)
      --name <text>            display name (required)
      --org <Organization/id>  the organization the client belongs to, or
      --org-name <text>        create that Organization first (with --finess <9 chars> / --siret <14 digits>)
      --scopes "<scopes>"      e.g. "system/Patient.rs system/Encounter.cruds" (required)
      --jwks <file.json>       public JWKS for private_key_jwt (else a secret is generated)
      --admin                  admin client (sees every organization)
  client:list     List registered clients (id, organization, admin, active/inactive, grants, scopes, name)
  client:deactivate <id>         Deactivate a client: no new token, its live tokens refused within seconds
                                 (the last active admin client cannot be deactivated)
  client:activate <id>           Activate a deactivated client again
  client:grants <id> [grant...]  Set the capabilities an operator grants a client (none given: remove all);
                                 known: ${CLIENT_GRANTS.join(', ')}
  indicators:run  Evaluate the indicator catalogue for every CPTS and structure and store the MeasureReports
      --period-end <YYYY-MM-DD>  end of the 12-month period (default: end of last month)
      --months <n>               also the n-1 months before, one run per month end (trends; default 1)
  indicators:load-benchmarks <file.csv>  Load published national benchmarks (open data; format in
                                 docs/indicators.md "Benchmarks"); a line already loaded is replaced
  indicators:load-drug-atc  Add CIS/CIP -> ATC pairs to the map drug criteria read (docs/indicators.md)
      --cis-cip <file>           BDPM CIS_CIP_bdpm.txt (tab-separated: CIS, CIP7, …, CIP13 in column 7)
      --cis-atc <file>           CIS -> ATC, tab-separated: CIS, ATC code (e.g. BDPM CIS_MITM.txt)
      --map <file>               or the gateway's own format: code <TAB> ATC [<TAB> source]
  demo:territory  Load a synthetic CPTS territory (structures, professionals, patients, care) through the store
      --patients <n>             persons (default 10000); ~3 % get a second record in another practice
      --seed <n>                 random seed (default 1): same seed, size and date = same resources and ids
      --as-of <YYYY-MM-DD>       last day of the data; the 12 months before it are the indicator year
                                 (default: end of last month). Re-running the same load says already-loaded.
      --bulk                     bulk load: the same stored result, persons written by worker threads in
                                 parallel, the full validation on a sample of each resource shape
      --workers <n>              worker threads of --bulk (default: the machine's cores)
  cpts:grant <orgId>  Make an Organization a CPTS covering exactly these INSEE communes (an operator grant)
      --communes <a,b,…>         INSEE codes, e.g. 69123,69124 (required; refused when another active CPTS covers one)
      --members <a,b,…>          member structures (ids or Organization/ids), exactly these; omitted: unchanged
  cpts:revoke <orgId> Take back the CPTS type, its communes and its members
  cpts:list       List the CPTS with their communes, members and conflicting communes (JSON)
  practitioner-roles:list   The PractitionerRoles naming a practitioner their organization does not own (JSON)
      --verified <true|false>    false: those no operator vouched for (to review); true: vouched; omitted: both
  practitioner-roles:verify <roleId>    Vouch for a role: it verifies its organization's médecin-traitant
                                 declarations of its practitioner (docs/indicators.md)
  practitioner-roles:unverify <roleId>  Withdraw the vouch
  directory:import  Import the Annuaire Santé public extractions (pipe-separated, header line; see docs/directory.md)
      --ps <file>                PS_LibreAcces_Personne_activite_*.txt (full extraction; required)
      --mss <file>               Extraction_Correspondance_MSSante_*.txt (full extraction of MSSanté mailboxes)
      --progress-ms <n>          progress line on stderr at most every n ms (default 5000)
                                 Same files twice: no new versions. A professional or mailbox absent from a
                                 new full extraction becomes inactive.
  intake:import-archive <file>  Import a portability archive (one IHE XDM per patient + transverse archive)
                                 into an organization's records; runs as a job in the worker, resumes after
                                 a restart. Prints the import (id, progress).
      --org <Organization/id>    whose records the documents become (required)
      --wait                     follow the progress on stderr until the import ends
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      org: { type: 'string' },
      'org-name': { type: 'string' },
      finess: { type: 'string' },
      siret: { type: 'string' },
      scopes: { type: 'string' },
      jwks: { type: 'string' },
      admin: { type: 'boolean', default: false },
      'period-end': { type: 'string' },
      months: { type: 'string' },
      patients: { type: 'string' },
      seed: { type: 'string' },
      'as-of': { type: 'string' },
      ps: { type: 'string' },
      mss: { type: 'string' },
      'progress-ms': { type: 'string' },
      communes: { type: 'string' },
      members: { type: 'string' },
      wait: { type: 'boolean', default: false },
      bulk: { type: 'boolean', default: false },
      workers: { type: 'string' },
      'cis-cip': { type: 'string' },
      'cis-atc': { type: 'string' },
      map: { type: 'string' },
      verified: { type: 'string' },
    },
  });
  const config = loadConfig();
  const core = await createCore(config, createLogger('warn'), { workers: false, role: 'client' });
  try {
    switch (command) {
      case 'client:create':
        return await createClient(core, values);
      case 'client:list':
        for (const c of await core.clients.list()) {
          process.stdout.write(
            `${c.id}\t${c.organization}\t${c.admin ? 'admin' : ''}\t${c.active ? 'active' : 'inactive'}\t${c.grants.join(',')}\t${c.scopes.join(' ')}\t${c.name}\n`,
          );
        }
        return 0;
      case 'client:deactivate':
      case 'client:activate':
      case 'client:grants':
        return await changeClient(core, command, positionals);
      case 'indicators:run':
        return await runIndicators(core, values['period-end'], values.months);
      case 'indicators:load-benchmarks':
        return await loadBenchmarks(core, positionals[0]);
      case 'indicators:load-drug-atc':
        return await loadDrugMap(core, values['cis-cip'], values['cis-atc'], values.map);
      case 'demo:territory':
        return await loadTerritory(core, values.patients ?? '10000', values.seed ?? '1', values['as-of'], {
          bulk: values.bulk ?? false,
          workers: values.workers,
        });
      case 'cpts:grant':
      case 'cpts:revoke':
      case 'cpts:list':
        return await cpts(core, command, positionals[0], values.communes, values.members);
      case 'practitioner-roles:list':
      case 'practitioner-roles:verify':
      case 'practitioner-roles:unverify':
        return await practitionerRoles(core, command, positionals[0], values.verified);
      case 'directory:import':
        return await importDirectory(core, values.ps, values.mss, values['progress-ms']);
      case 'intake:import-archive':
        return await importArchive(core, positionals[0], values.org, values.wait ?? false);
      default:
        process.stderr.write(`Unknown command ${command}\n${USAGE}`);
        return 2;
    }
  } finally {
    await core.close();
  }
}

type Values = {
  name?: string;
  org?: string;
  'org-name'?: string;
  finess?: string;
  siret?: string;
  scopes?: string;
  jwks?: string;
  admin?: boolean;
};

async function createClient(core: GatewayCore, v: Values): Promise<number> {
  if (!v.name || !v.scopes || (!v.org && !v['org-name'])) {
    process.stderr.write(`client:create needs --name, --scopes and --org or --org-name\n${USAGE}`);
    return 2;
  }
  const org = v.org ?? (await createOrganization(core, v['org-name'] as string, v.finess, v.siret));
  const jwks = v.jwks ? JSON.parse(readFileSync(v.jwks, 'utf8')) : undefined;
  const { client, secret } = await core.clients.create({
    name: v.name,
    organization: org,
    scopes: splitScopes(v.scopes),
    admin: v.admin,
    withSecret: !jwks,
    jwks,
  });
  process.stdout.write(
    `${JSON.stringify({ client_id: client.id, ...(secret ? { client_secret: secret } : {}), organization: client.organization, scopes: client.scopes.join(' '), token_endpoint: `${core.baseUrl}/oauth2/token` }, null, 2)}\n`,
  );
  return 0;
}

async function changeClient(core: GatewayCore, command: string, args: string[]): Promise<number> {
  const [id, ...grants] = args;
  if (!id || (command !== 'client:grants' && grants.length > 0)) {
    process.stderr.write(
      `${command} needs one client id${command === 'client:grants' ? ' then the grants' : ''}\n${USAGE}`,
    );
    return 2;
  }
  const client =
    command === 'client:grants'
      ? await core.clients.setGrants(id, grants)
      : await core.clients.setActive(id, command === 'client:activate');
  core.audit.record({
    clientId: CLI_OPERATOR.clientId,
    organization: CLI_OPERATOR.organization,
    interaction: command.replace(':', '-'),
    entity: [`Client/${id}`],
    outcome: 200,
  });
  process.stdout.write(
    `${JSON.stringify({ client_id: client.id, active: client.active, grants: client.grants, admin: client.admin })}\n`,
  );
  return 0;
}

async function runIndicators(core: GatewayCore, periodEnd: string | undefined, months = '1'): Promise<number> {
  const n = Number(months);
  if (!Number.isInteger(n) || n < 1 || n > 60) {
    process.stderr.write('--months must be an integer from 1 to 60\n');
    return 2;
  }
  const first = await core.indicators.storeMonthlyReports(periodEnd);
  const ends = [first.period.end];
  for (let i = 1; i < n; i++) {
    const last = new Date(`${first.period.end}T00:00:00Z`);
    const end = new Date(Date.UTC(last.getUTCFullYear(), last.getUTCMonth() - i + 1, 0)).toISOString().slice(0, 10);
    await core.indicators.storeMonthlyReports(end);
    ends.push(end);
  }
  process.stdout.write(
    `${JSON.stringify({ periodEnds: ends, reportsPerRun: first.reports, subjects: first.subjects, firstRunMs: first.ms })}\n`,
  );
  return 0;
}

async function loadBenchmarks(core: GatewayCore, file: string | undefined): Promise<number> {
  if (!file) {
    process.stderr.write(`indicators:load-benchmarks needs <file.csv>\n${USAGE}`);
    return 2;
  }
  let rows: BenchmarkRow[];
  try {
    rows = parseBenchmarkCsv(readFileSync(file, 'utf8'));
  } catch (err) {
    if (err instanceof BenchmarkFormatError) {
      process.stderr.write(`${file}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const loaded = await core.indicators.benchmarks.load(rows);
  process.stdout.write(`${JSON.stringify({ status: 'loaded', file, ...loaded })}\n`);
  return 0;
}

async function loadDrugMap(
  core: GatewayCore,
  cisCip: string | undefined,
  cisAtc: string | undefined,
  map: string | undefined,
): Promise<number> {
  if (!map && (!cisCip || !cisAtc)) {
    process.stderr.write(`indicators:load-drug-atc needs --cis-cip and --cis-atc, or --map\n${USAGE}`);
    return 2;
  }
  const entries = [
    ...(cisCip && cisAtc ? readBdpmFiles(cisCip, cisAtc) : []),
    ...(map ? parseMapFile(readFileSync(map, 'utf8'), map) : []),
  ];
  const added = await loadDrugAtc(core.db.pool, entries);
  process.stdout.write(`${JSON.stringify({ entries: entries.length, added })}\n`);
  return 0;
}

async function loadTerritory(
  core: GatewayCore,
  patients: string,
  seed: string,
  asOf = lastMonthEnd(),
  opts: { bulk: boolean; workers?: string } = { bulk: false },
): Promise<number> {
  let generator: TerritoryGenerator;
  const workers = opts.workers === undefined ? undefined : Number(opts.workers);
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1)) {
    process.stderr.write(`--workers must be a positive integer\n${USAGE}`);
    return 2;
  }
  try {
    generator = new TerritoryGenerator({ patients: Number(patients), seed: Number(seed), asOf });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  let last = 0;
  const onProgress = (p: LoadProgress): void => {
    if (p.elapsedMs - last >= 5000 || p.people === p.peopleTotal) {
      last = p.elapsedMs;
      process.stderr.write(
        `${p.people}/${p.peopleTotal} persons, ${p.resources} resources, ${Math.round(p.resources / Math.max(0.001, p.elapsedMs / 1000))}/s\n`,
      );
    }
  };
  const summary = opts.bulk
    ? await new BulkTerritoryLoader(core.repo, {
        databaseUrl: core.db.url,
        profilesDir: resolve(core.config.GW_PROFILES_DIR),
        encounterMonths: core.config.GW_SHARING_ENCOUNTER_MONTHS,
        workers,
        onProgress,
      }).load(generator)
    : await new TerritoryLoader(core.repo, { onProgress }).load(generator);
  process.stdout.write(
    `${JSON.stringify({ ...summary, perSecond: Math.round(summary.perSecond), seed: Number(seed), asOf }, null, 2)}\n`,
  );
  return 0;
}

async function importDirectory(
  core: GatewayCore,
  ps: string | undefined,
  mss: string | undefined,
  progressMs = '5000',
): Promise<number> {
  if (!ps || !Number.isInteger(Number(progressMs))) {
    process.stderr.write(
      `directory:import needs --ps <file> (and optionally --mss <file>, --progress-ms <n>)\n${USAGE}`,
    );
    return 2;
  }
  const stats = await new DirectoryImporter(core.repo).run({
    psFile: ps,
    mssFile: mss,
    progressMs: Number(progressMs),
    onProgress: (line) => process.stderr.write(`${new Date().toISOString()} directory:import ${line}\n`),
  });
  process.stdout.write(`${JSON.stringify({ status: 'imported', ...stats })}\n`);
  return 0;
}

async function importArchive(
  core: GatewayCore,
  file: string | undefined,
  org: string | undefined,
  wait: boolean,
): Promise<number> {
  if (!file || !org) {
    process.stderr.write(`intake:import-archive needs <file> and --org <Organization/id>\n${USAGE}`);
    return 2;
  }
  const organization = org.startsWith('Organization/') ? org : `Organization/${org}`;
  let progress = await core.portability.startImport(CLI_OPERATOR, { path: file, organization }, { trustedPath: true });
  core.audit.record({
    clientId: CLI_OPERATOR.clientId,
    organization: CLI_OPERATOR.organization,
    interaction: 'intake-import',
    entity: [`intake-import/${progress.id}`, organization],
    outcome: 202,
  });
  while (wait && (progress.status === 'queued' || progress.status === 'running')) {
    await new Promise((r) => setTimeout(r, 2000));
    progress = await core.portability.progress(progress.id);
    const d = progress.documents;
    process.stderr.write(
      `${new Date().toISOString()} ${progress.status} patients ${progress.patients.done}/${progress.patients.total}, documents ${d.done}/${d.total} (${d.failed} failed, ${d.rejected} refused, ${d.review} in review), ${progress.documentsPerSecond}/s\n`,
    );
  }
  process.stdout.write(`${JSON.stringify(progress, null, 2)}\n`);
  return progress.status === 'failed' ? 1 : 0;
}

/** The operator principal of the CLI: what it writes is recorded under this client id. */
const CLI_OPERATOR = {
  clientId: 'gateway-cli',
  organization: 'Organization/gateway-operator',
  admin: true,
  scopes: ['system/*.cruds'],
};

async function cpts(
  core: GatewayCore,
  command: string,
  orgId: string | undefined,
  communes: string | undefined,
  members: string | undefined,
): Promise<number> {
  const split = (v: string): string[] =>
    v
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const id = orgId?.replace(/^Organization\//, '');
  const op = { principal: CLI_OPERATOR, requestId: `cli-${randomUUID()}` };
  let out: unknown;
  if (command === 'cpts:list') {
    out = await core.cpts.list();
  } else if (!id || (command === 'cpts:grant' && communes === undefined)) {
    process.stderr.write(`${command} needs <orgId>${command === 'cpts:grant' ? ' and --communes' : ''}\n${USAGE}`);
    return 2;
  } else if (command === 'cpts:grant') {
    const body = {
      communes: split(communes as string),
      ...(members === undefined
        ? {}
        : { members: split(members).map((m) => (m.startsWith('Organization/') ? m : `Organization/${m}`)) }),
    };
    out = await core.cpts.grant(id, body, op);
  } else {
    out = await core.cpts.revoke(id, op);
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return 0;
}

async function practitionerRoles(
  core: GatewayCore,
  command: string,
  roleId: string | undefined,
  verified: string | undefined,
): Promise<number> {
  let out: unknown;
  if (command === 'practitioner-roles:list') {
    if (verified !== undefined && verified !== 'true' && verified !== 'false') {
      process.stderr.write(`--verified must be true or false\n${USAGE}`);
      return 2;
    }
    out = await core.practitionerRoles.list({
      verified: verified === undefined ? undefined : verified === 'true',
      count: 1000,
      offset: 0,
    });
  } else {
    const id = roleId?.replace(/^PractitionerRole\//, '');
    if (!id) {
      process.stderr.write(`${command} needs <roleId>\n${USAGE}`);
      return 2;
    }
    const op = { principal: CLI_OPERATOR, requestId: `cli-${randomUUID()}` };
    out =
      command === 'practitioner-roles:verify'
        ? await core.practitionerRoles.verify(id, op)
        : await core.practitionerRoles.unverify(id, op);
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return 0;
}

function lastMonthEnd(): string {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 0)).toISOString().slice(0, 10);
}

async function createOrganization(core: GatewayCore, name: string, finess?: string, siret?: string): Promise<string> {
  const identifier = [
    ...(finess ? [{ system: 'https://finess.esante.gouv.fr', value: finess }] : []),
    ...(siret ? [{ system: SIRENE, value: siret }] : []),
  ];
  const id = randomUUID();
  // The organization owns itself, so that its own clients can read it.
  const meta = { tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${id}` }] };
  const { stored } = await core.repo.update(
    'Organization',
    id,
    { resourceType: 'Organization', id, meta, active: true, name, ...(identifier.length ? { identifier } : {}) },
    { principal: CLI_OPERATOR },
  );
  return `Organization/${stored.id}`;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
