import { join, resolve } from 'node:path';
import {
  ClientRegistry,
  GatewayError,
  ClientStatusCache,
  OidcProviders,
  PLATFORM_MIGRATIONS,
  SubjectTokenVerifier,
  QueueService,
  TokenService,
  baseUrl,
  migrate,
  openDatabase,
  closeSteps,
  processShutdownSteps,
  queueSettings,
  DashboardLoginStore,
} from '@gw/platform';
import type { DatabaseHandle, GatewayConfig, GatewayFeature, Logger, Migration, ShutdownStep } from '@gw/platform';
import { ProfileRegistry, SearchParamRegistry, buildCapabilityStatement, loadFhirDefinitions } from '@gw/fhir';
import type { CapabilityStatement } from '@medplum/fhirtypes';
import {
  AUDIT_DPO_GRANT,
  AUDIT_MIGRATIONS,
  AuditLog,
  BULK_EXPORT_MIGRATIONS,
  BulkExportService,
  DIRECTORY_MIGRATIONS,
  DomainEventLog,
  EVENT_MIGRATIONS,
  STORE_MIGRATIONS,
  SHARING_MIGRATIONS,
  CareAccessPolicy,
  FhirRepository,
  FhirService,
  IDENTITY_QUALIFICATION_GRANT,
  PERSON_IDENTITY_GRANT,
  housekeepingFeature,
  loadSharingMatrix,
  rebuildSharingProjection,
} from '@gw/store';
import {
  CdaReadPool,
  HPRIM_MIGRATIONS,
  Hl7IngestService,
  HprimIntake,
  IDENTITY_MIGRATIONS,
  INGEST_MIGRATIONS,
  INTAKE_MIGRATIONS,
  MAILBOX_MIGRATIONS,
  PORTABILITY_MIGRATIONS,
  IdentityReviewQueue,
  IntakePipeline,
  MailboxFeature,
  PatientMatcher,
  PortabilityImportService,
} from '@gw/ingest';
import { CptsTerritoryService, EXCHANGE_MIGRATIONS, ExchangeService, MhdRecipient } from '@gw/exchange';
import {
  BENCHMARK_MIGRATIONS,
  INDICATOR_MIGRATIONS,
  IndicatorsService,
  PractitionerRoleVouching,
} from '@gw/indicators';
import { DashboardLogin } from './auth/dashboard-login.service';
import { PersonDirectory } from './auth/person.directory';

export const VERSION = '0.1.0';

/**
 * The gateway's schema: each feature's migrations (a feature owns its tables). Parts of one version
 * from several features are applied in this order.
 */
export const MIGRATIONS: readonly Migration[] = [
  ...PLATFORM_MIGRATIONS,
  ...STORE_MIGRATIONS,
  ...EVENT_MIGRATIONS,
  ...INGEST_MIGRATIONS,
  ...HPRIM_MIGRATIONS,
  ...PORTABILITY_MIGRATIONS,
  ...MAILBOX_MIGRATIONS,
  ...EXCHANGE_MIGRATIONS,
  ...INDICATOR_MIGRATIONS,
  ...BENCHMARK_MIGRATIONS,
  ...BULK_EXPORT_MIGRATIONS,
  ...DIRECTORY_MIGRATIONS,
  ...AUDIT_MIGRATIONS,
  ...SHARING_MIGRATIONS,
  ...IDENTITY_MIGRATIONS,
  ...INTAKE_MIGRATIONS,
];

/** Capabilities an operator may grant a client (admin API, CLI); the store acts on them. */
export const CLIENT_GRANTS: readonly string[] = [IDENTITY_QUALIFICATION_GRANT, AUDIT_DPO_GRANT, PERSON_IDENTITY_GRANT];

/** Everything the gateway is made of, built once at boot (also used by tests and the CLI). */
export interface GatewayCore {
  config: GatewayConfig;
  logger: Logger;
  db: DatabaseHandle;
  baseUrl: string;
  repo: FhirRepository;
  service: FhirService;
  audit: AuditLog;
  clients: ClientRegistry;
  /** Each client's current status (active, admin, organization, grants), checked on every request. */
  clientStatus: ClientStatusCache;
  tokens: TokenService;
  /** Persons of token exchange: directory lookup, and each role's current status (checked per request). */
  persons: PersonDirectory;
  /** Dashboard login of persons through an OpenID Connect provider (disabled when not configured). */
  dashboardLogin: DashboardLogin;
  queue: QueueService;
  profiles: ProfileRegistry;
  capability: CapabilityStatement;
  /** HL7 v2 intake (MLLP and POST /hl7v2). */
  hl7: Hl7IngestService;
  /** HPRIM lab files: per-lab code maps, results held until their code is mapped. */
  hprim: HprimIntake;
  /** Patient matching (one rule for every channel) and the identity review queue. */
  identity: { matcher: PatientMatcher; reviews: IdentityReviewQueue };
  /** Practice intake: CDA, IHE XDM, HPRIM documents filed through one pipeline (POST /ingest/documents, MHD). */
  intake: IntakePipeline;
  /** Inbound MSSanté mailboxes (GW_MSS_INBOXES): pollers, their ledger. */
  mailbox: MailboxFeature;
  /** Discharge routing, MSSanté and MHD deliveries. */
  exchange: ExchangeService;
  /** Operator grants of CPTS territories (type, communes, member structures). */
  cpts: CptsTerritoryService;
  /** Operator vouches for PractitionerRoles (médecin-traitant verification). */
  practitionerRoles: PractitionerRoleVouching;
  indicators: IndicatorsService;
  /** FHIR Bulk Data group export (kick-off, status, files, jobs). */
  bulk: BulkExportService;
  /** Domain events recorded by the store (read side, operator API). */
  events: DomainEventLog;
  /** Portability archive imports (admin API, CLI, the `intake.import-archive` job). */
  portability: PortabilityImportService;
  /** Shutdown after the listeners: relay, jobs in flight, queues, audit buffer, database. */
  shutdownSteps(): ShutdownStep[];
  close(): Promise<void>;
}

/** What a process built by {@link createCore} runs. */
export interface CoreOptions {
  /** The port actually listened on when GW_HTTP_PORT=0 (links, token audience). */
  port?: number;
  /** Run job workers and the features' background work (default GW_WORKERS_INPROCESS). */
  workers?: boolean;
  /**
   * false for a worker-only process: no token keys prepared, no indicator catalogue written
   * (the gateway does both), nothing served.
   */
  http?: boolean;
  /** `client`: attach to the embedded database of a running gateway (the CLI). */
  role?: 'owner' | 'client';
}

/**
 * THE composition root of every process (gateway, worker, CLI, tests): opens the database
 * (embedded unless GW_DATABASE_URL), applies every feature's migrations, builds the store, auth,
 * queue and features, registers their jobs (the catalogue must be complete), and in a process that
 * runs workers starts the workers and the features' background work.
 */
export async function createCore(config: GatewayConfig, logger: Logger, opts: CoreOptions = {}): Promise<GatewayCore> {
  // A wrong matrix file stops the start before anything is opened, with the file's problems.
  const matrix = loadSharingMatrix(config.GW_SHARING_MATRIX_FILE);
  const db = await openDatabase(config, logger, opts.role ?? 'owner');
  try {
    const applied = await migrate(db.pool, MIGRATIONS);
    if (applied.length > 0) {
      logger.info({ migrations: applied }, 'schema migrations applied');
    }
    const projected = await rebuildSharingProjection(db.pool, config.GW_SHARING_ENCOUNTER_MONTHS);
    if (projected > 0) {
      logger.info({ sources: projected }, 'équipe-de-soins projection written for the stored resources');
    }
    const http = opts.http ?? true;
    loadFhirDefinitions();
    const profiles = ProfileRegistry.fromDirectory(resolve(config.GW_PROFILES_DIR));
    const registry = new SearchParamRegistry();
    const base = baseUrl(config, opts.port);
    // System clients keep their organization's rights; persons (token exchange) get the équipe-de-soins rule.
    const policy = new CareAccessPolicy(matrix);
    const repo = new FhirRepository(db.pool, registry, policy, profiles, config.GW_STATEMENT_TIMEOUT_MS, {
      encounterMonths: config.GW_SHARING_ENCOUNTER_MONTHS,
    });
    const audit = new AuditLog(db.pool, logger);
    const mhdRecipient = new MhdRecipient(repo);
    const service = new FhirService(repo, audit, {
      baseUrl: base,
      defaultCount: config.GW_SEARCH_DEFAULT_COUNT,
      maxCount: config.GW_SEARCH_MAX_COUNT,
      maxParams: config.GW_SEARCH_MAX_PARAMS,
      maxValues: config.GW_SEARCH_MAX_VALUES,
      logger,
      bundleInterceptor: (p, body) => mhdRecipient.intercept(p, body),
      afterBundle: (p, body, response) => mhdRecipient.afterStored(p, body, response),
    });
    const clients = new ClientRegistry(db.pool, { knownGrants: CLIENT_GRANTS });
    const clientStatus = new ClientStatusCache(clients, { databaseUrl: db.url, logger });
    const persons = new PersonDirectory(repo);
    const tokens = new TokenService(db.pool, clients, {
      issuer: base,
      tokenEndpoint: `${base}/oauth2/token`,
      exchange: {
        subjects: new SubjectTokenVerifier(
          db.pool,
          new OidcProviders(config.GW_OIDC_PROVIDERS),
          `${base}/oauth2/token`,
        ),
        persons,
      },
      ttlSeconds: config.GW_TOKEN_TTL_SECONDS,
      failureLimits: {
        perClient: config.GW_TOKEN_FAILURES_PER_CLIENT,
        perAddress: config.GW_TOKEN_FAILURES_PER_ADDRESS,
        windowMs: config.GW_TOKEN_FAILURE_WINDOW_SECONDS * 1000,
      },
    });
    const dashboardLogin = new DashboardLogin(new DashboardLoginStore(db.pool), tokens, clients, config, base);
    const queue = new QueueService({
      databaseUrl: db.url,
      redisUrl: config.GW_REDIS_URL,
      lockMs: config.GW_QUEUE_LOCK_MS,
      settings: queueSettings(config),
      logger,
    });
    const indicators = IndicatorsService.load(
      join(resolve(config.GW_PROFILES_DIR), 'measures'),
      db.pool,
      repo,
      audit,
      config.GW_INDICATOR_SMALL_CELL,
      logger,
      {
        noise: config.GW_INDICATOR_NOISE,
        lanes: config.GW_INDICATOR_LANES,
        drugAtcFile: join(resolve(config.GW_PROFILES_DIR), 'drug-atc', 'drug-atc.tsv'),
      },
    );
    if (http) {
      await tokens.init();
      await indicators.install();
    }
    const exchange = new ExchangeService(db.pool, db.url, repo, queue, config, logger);
    const bulk = new BulkExportService(db.pool, repo, policy, audit, queue, {
      dataDir: config.GW_DATA_DIR,
      retentionHours: config.GW_BULK_RETENTION_HOURS,
      logger,
    });
    const matcher = new PatientMatcher(repo);
    const reviews = new IdentityReviewQueue(db.pool, repo, audit);
    const cdaReads = new CdaReadPool(config.GW_INTAKE_READ_THREADS);
    const intake = new IntakePipeline(repo, matcher, reviews, base, cdaReads.read);
    // HPRIM lab files: text bodies of the pipeline are read by it; held results filed once their codes are mapped.
    const hprim = new HprimIntake(db.pool);
    hprim.useFiler(intake);
    intake.registerTextReader(hprim.reader);
    // Inbound MSSanté mailboxes: their documents through the intake pipeline, MDNs through the outbound relay.
    const mailbox = new MailboxFeature(
      db.pool,
      config.GW_MSS_INBOXES,
      { intake, sendMdn: exchange.mdnSender, acceptMdn: (raw) => exchange.acceptMdn(raw) },
      logger,
    );
    // Portability archives: each patient's documents through the same intake pipeline.
    const portability = new PortabilityImportService(db.pool, queue, intake, {
      importDir: config.GW_INTAKE_IMPORT_DIR ?? join(config.GW_DATA_DIR, 'imports'),
      maxEntryBytes: config.GW_INTAKE_ARCHIVE_MAX_ENTRY_BYTES,
      concurrency: config.GW_INTAKE_IMPORT_CONCURRENCY,
      logger,
    });
    const features: GatewayFeature[] = [
      housekeepingFeature(db.pool, config.GW_AUDIT_RETENTION_DAYS),
      exchange,
      indicators,
      bulk,
      portability,
      mailbox,
    ];
    for (const f of features) {
      f.register?.(queue);
    }
    queue.verifyHandlers();
    const started: GatewayFeature[] = [];
    if (opts.workers ?? config.GW_WORKERS_INPROCESS) {
      queue.startWorkers(config.GW_WORKER_QUEUES);
      for (const f of features) {
        await f.start?.(queue);
        started.push(f);
      }
    }
    const capability = buildCapabilityStatement({ baseUrl: base, version: VERSION, registry, profiles });
    const hl7 = new Hl7IngestService(db.pool, repo, {
      acceptUnknownSources: config.GW_HL7_ACCEPT_UNKNOWN_SOURCES ?? db.embedded,
      logger,
    });
    // MHD Document Recipient: the CDA of a stored ITI-65 submission are filed by the intake pipeline
    // too. A CDA the intake cannot read refuses the submission before it is stored; one refused
    // while filing (nothing of it written) is named in the ITI-65 answer.
    mhdRecipient.setCdaSink(
      async (p, doc) => {
        const result = await intake.ingest(p, { ...doc, source: 'mhd' }).catch((err: unknown) => ({
          status: 'rejected' as const,
          outcome: err instanceof GatewayError ? err.toOutcome() : undefined,
        }));
        if (result.status !== 'rejected') {
          return undefined;
        }
        // Codes only: an outcome may quote the document.
        const codes = result.outcome?.issue.map((i) => i.code) ?? ['exception'];
        logger.warn({ issues: codes }, 'an MHD document was stored but not filed by the intake');
        return (
          result.outcome ?? {
            resourceType: 'OperationOutcome',
            issue: [{ severity: 'error', code: 'exception', diagnostics: 'the intake failed' }],
          }
        );
      },
      // Only whether it can be read: a sender allowed to submit documents but not to file their facts
      // still gets its submission stored (the refusal is then named in the answer).
      async (p, doc) => {
        await intake.read({ ...doc, source: 'mhd' }, p);
      },
    );
    const shutdownSteps = (): ShutdownStep[] => [
      // After the listeners (no request checks a token any more), before the database.
      { name: 'client status listener', close: () => clientStatus.close() },
      ...processShutdownSteps({ features, started, queue, audit, db }),
      // Last: the features that read documents have stopped.
      { name: 'intake read threads', close: () => cdaReads.close() },
    ];
    return {
      config,
      logger,
      db,
      baseUrl: base,
      repo,
      service,
      audit,
      clients,
      clientStatus,
      tokens,
      persons,
      dashboardLogin,
      queue,
      profiles,
      capability,
      hl7,
      hprim,
      identity: { matcher, reviews },
      intake,
      mailbox,
      exchange,
      cpts: new CptsTerritoryService(repo, exchange.cpts, audit),
      practitionerRoles: new PractitionerRoleVouching(db.pool, repo, audit),
      indicators,
      bulk,
      events: new DomainEventLog(db.pool),
      portability,
      shutdownSteps,
      // In-process close (tests, the CLI): bounded per step, never hangs on a job that will not end.
      async close() {
        await closeSteps(shutdownSteps(), logger);
      },
    };
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
}
