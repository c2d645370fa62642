import { z } from 'zod';

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** One OpenID Connect provider trusted for person tokens (GW_OIDC_PROVIDERS). */
export const oidcProvidersSchema = z.array(
  z.object({
    issuer: z.string().url(),
    audience: z.string().min(1),
    claim: z.string().min(1).optional(),
  }),
);

export type OidcProviderConfig = z.infer<typeof oidcProvidersSchema>[number];

/** One inbound MSSanté mailbox the gateway polls (GW_MSS_INBOXES). */
export const mssInboxesSchema = z.array(
  z
    .object({
      /** Short name in logs and the ledger; default `user@host/folder`. */
      name: z.string().min(1).max(100).optional(),
      /** `imaps://host:993`, or `imap://host:143` (STARTTLS required unless insecure). */
      url: z.string().regex(/^imaps?:\/\/[^/]+\/?$/, 'expected imap://host:port or imaps://host:port'),
      user: z.string().min(1),
      password: z.string().min(1).optional(),
      /** A file holding the password (a mounted secret), read at start. */
      passwordFile: z.string().min(1).optional(),
      /** The Organization the mailbox receives for (`Organization/<id>`): documents become its records. */
      organization: z.string().regex(/^Organization\/[A-Za-z0-9\-.]{1,64}$/, 'expected Organization/<id>'),
      folder: z.string().min(1).default('INBOX'),
      /** Where a message that cannot be imported is moved (created when missing). */
      quarantine: z.string().min(1).default('Quarantaine'),
      /** Poll interval; new messages announced by IMAP IDLE are taken at once. */
      pollSeconds: z.number().int().min(1).max(3600).default(60),
      /** Transient failures of one message (database down…) before it is moved aside. */
      maxAttempts: z.number().int().min(1).max(1000).default(20),
      /** Larger messages are moved aside without being downloaded. */
      maxBytes: z
        .number()
        .int()
        .min(1024)
        .default(32 * 1024 * 1024),
      /** true: plain IMAP without STARTTLS, any certificate (tests and demo only). */
      insecure: z.boolean().default(false),
    })
    .strict()
    .refine((m) => (m.password === undefined) !== (m.passwordFile === undefined), {
      message: 'give exactly one of password and passwordFile',
    }),
);

export type MssInboxConfig = z.infer<typeof mssInboxesSchema>[number];

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The one schema of the gateway's environment. Every variable is `GW_*`; `process.env` is read
 * nowhere else. deploy/ files use the same names (checked by test/e2e/deploy-env.e2e-spec.ts).
 */
export const configSchema = z.object({
  GW_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  GW_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  GW_BASE_URL: z.string().url().optional(),
  /**
   * Bearer token a Prometheus scraper sends to `/metrics`. Unset: `/metrics` is open when the HTTP
   * listener is on loopback and refused (403) otherwise.
   */
  GW_METRICS_TOKEN: z.string().min(16).optional(),
  GW_DATA_DIR: z.string().min(1).default('./data'),
  GW_DATABASE_URL: z.string().url().optional(),
  GW_DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(16),
  GW_EMBEDDED_PG_PORT: z.coerce.number().int().min(1).max(65535).default(54329),
  /**
   * The embedded PostgreSQL, if it dies, is restarted (after 1 s, 2 s, 4 s… up to 30 s) at most this
   * many times within 10 minutes; then the gateway stops with exit code 1 (for its process
   * supervisor to restart it). 0: never restarted.
   */
  GW_EMBEDDED_PG_MAX_RESTARTS: z.coerce.number().int().min(0).max(1000).default(10),
  GW_REDIS_URL: z.string().url().optional(),
  GW_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(16 * 1024 * 1024),
  /**
   * Shape of JSON bodies, checked on the text before it is parsed (413 naming the bound and the
   * path): nesting depth, items per array (Bundle.entry included), characters per string.
   * Validating and storing one body is not yet split into slices that yield: measured with
   * `npm run bench:event-loop`, 10 000 identifiers on one Patient blocked the event loop ~1 s, so
   * arrays default to 1 000 items. Strings: the validator's own bound is 1 MB.
   */
  GW_JSON_MAX_DEPTH: z.coerce.number().int().min(8).max(1000).default(64),
  GW_JSON_MAX_ARRAY_ITEMS: z.coerce.number().int().min(10).default(1000),
  GW_JSON_MAX_STRING_CHARS: z.coerce
    .number()
    .int()
    .min(1024)
    .default(2 * 1024 * 1024),
  GW_TOKEN_TTL_SECONDS: z.coerce.number().int().min(30).max(3600).default(300),
  /**
   * Failed client authentications at the token endpoint allowed per client id, and per remote
   * address, within GW_TOKEN_FAILURE_WINDOW_SECONDS; past them the endpoint answers 429
   * (Retry-After) without checking the secret, until the oldest failure leaves the window.
   */
  GW_TOKEN_FAILURES_PER_CLIENT: z.coerce.number().int().min(1).default(10),
  GW_TOKEN_FAILURES_PER_ADDRESS: z.coerce.number().int().min(1).default(30),
  GW_TOKEN_FAILURE_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  /**
   * OpenID Connect providers whose ID or access tokens a client may exchange for a person token
   * (RFC 8693 token exchange): a JSON list of `{ "issuer", "audience", "claim"? }`. `audience` is the
   * client_id the provider issues the tokens to (checked as `aud`); `claim` holds the IdNatPS
   * (default `SubjectNameID`, Pro Santé Connect, then `sub`). Unset: no provider.
   */
  GW_OIDC_PROVIDERS: z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined) {
        return [];
      }
      const parsed = oidcProvidersSchema.safeParse(safeJson(text));
      if (!parsed.success) {
        ctx.addIssue({
          code: 'custom',
          message: 'expected a JSON list of {"issuer": URL, "audience": string, "claim"?: string}',
        });
        return z.NEVER;
      }
      return parsed.data;
    }),
  /**
   * Dashboard login of persons through an OpenID Connect provider (authorization code with PKCE),
   * the gateway being the relying party: the provider's issuer, the gateway's client_id and secret
   * there, and the gateway client (of the structure) the person acts through. Unset issuer: only
   * the client-secret login.
   */
  GW_DASHBOARD_OIDC_ISSUER: z.string().url().optional(),
  GW_DASHBOARD_OIDC_CLIENT_ID: z.string().min(1).optional(),
  GW_DASHBOARD_OIDC_CLIENT_SECRET: z.string().min(1).optional(),
  GW_DASHBOARD_CLIENT_ID: z.string().min(1).optional(),
  GW_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GW_WORKERS_INPROCESS: bool.default(true),
  GW_WORKER_QUEUES: z.string().default('*'),
  /**
   * How long a worker holds a job's lock between renewals; a job whose worker died (its lock
   * expired) is returned to the queue by the next stalled-job check, run at this interval.
   */
  GW_QUEUE_LOCK_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
  /**
   * SIGTERM/SIGINT: time allowed to close gracefully (listeners, jobs in flight, relay, queues,
   * database); past it the process exits 1 naming what it abandoned. Below the usual 30 s grace
   * period of orchestrators, so the process says so itself before being SIGKILLed.
   */
  GW_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(20_000),
  GW_AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).default(3650),
  GW_SEARCH_DEFAULT_COUNT: z.coerce.number().int().min(1).max(1000).default(20),
  GW_SEARCH_MAX_COUNT: z.coerce.number().int().min(1).max(10000).default(1000),
  /** Parameters per search request, and values per parameter (an OR list): more is a 400 naming it. */
  GW_SEARCH_MAX_PARAMS: z.coerce.number().int().min(1).default(50),
  GW_SEARCH_MAX_VALUES: z.coerce.number().int().min(1).default(100),
  /**
   * statement_timeout of a request's search (each statement; 0: none). Transactions, bulk export and
   * indicator evaluation run on their own connections without it.
   */
  GW_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(0).default(30_000),
  GW_PROFILES_DIR: z.string().min(1).default('./fhir-profiles'),
  GW_MLLP_ENABLED: bool.default(true),
  GW_MLLP_PORT: z.coerce.number().int().min(0).max(65535).default(2575),
  GW_MLLP_HOST: z.string().min(1).default('127.0.0.1'),
  GW_MLLP_TLS_CERT: z.string().min(1).optional(),
  GW_MLLP_TLS_KEY: z.string().min(1).optional(),
  GW_MLLP_TLS_CA: z.string().min(1).optional(),
  /**
   * With GW_MLLP_TLS_CA: refuse at the handshake a client without a certificate signed by that CA.
   * Unset: true when GW_MLLP_TLS_CA is set. false: certificates are verified when presented (and
   * then usable by a source's allowedCertificates) but not required.
   */
  GW_MLLP_TLS_REQUIRE_CLIENT_CERT: bool.optional(),
  /** Addresses or CIDR blocks (comma separated) that may connect at all; unset: any. */
  GW_MLLP_ALLOWED_IPS: z.string().optional(),
  /** MLLP connections open at once; one more is closed at once (and logged), the others go on. */
  GW_MLLP_MAX_CONNECTIONS: z.coerce.number().int().min(1).max(100_000).default(100),
  GW_MLLP_MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(4 * 1024 * 1024),
  GW_MLLP_IDLE_TIMEOUT_SECONDS: z.coerce.number().int().min(1).default(300),
  /** Unset: true with the embedded database (first-run convenience), false with GW_DATABASE_URL. */
  GW_HL7_ACCEPT_UNKNOWN_SOURCES: bool.optional(),
  /** MSSanté relay (`smtp://host:port`); unset: the MSSanté channel is off. */
  GW_MSS_SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\/[^/]+$/, 'expected smtp://host:port')
    .optional(),
  /** The gateway's application mailbox (MSSanté sender, MDN return address). */
  GW_MSS_FROM: z.string().email().optional(),
  GW_MSS_CLIENT_CERT: z.string().min(1).optional(),
  GW_MSS_CLIENT_KEY: z.string().min(1).optional(),
  GW_MSS_CA: z.string().min(1).optional(),
  /** true: no STARTTLS required (tests and demo only). */
  GW_MSS_SMTP_INSECURE: bool.default(false),
  /** Software reference sent in X-MSS-NIL. */
  GW_MSS_NIL: z.string().min(1).default('fhir-gateway-fr'),
  /**
   * Inbound MSSanté mailboxes (IMAP) whose IHE_XDM.ZIP attachments are imported: a JSON list of
   * `{ "url", "user", "password" | "passwordFile", "organization", "folder"?, "quarantine"?,
   * "pollSeconds"?, "maxAttempts"?, "maxBytes"?, "insecure"?, "name"? }`. Unset: none.
   */
  GW_MSS_INBOXES: z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined) {
        return [];
      }
      const parsed = mssInboxesSchema.safeParse(safeJson(text));
      if (!parsed.success) {
        // Paths and messages only: an issue never echoes the value (a password may be inline).
        const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(list)'}: ${i.message}`);
        ctx.addIssue({ code: 'custom', message: `expected a JSON list of mailboxes (${problems.join('; ')})` });
        return z.NEVER;
      }
      const names = parsed.data.map(inboxName);
      if (new Set(names).size !== names.length) {
        ctx.addIssue({ code: 'custom', message: 'two mailboxes with the same name' });
        return z.NEVER;
      }
      return parsed.data;
    }),
  /** MHD Document Recipient base URL (ITI-65); unset: no publication to the shared record. */
  GW_MHD_RECIPIENT_URL: z.string().url().optional(),
  GW_MHD_TOKEN_URL: z.string().url().optional(),
  GW_MHD_CLIENT_ID: z.string().min(1).optional(),
  GW_MHD_CLIENT_SECRET: z.string().min(1).optional(),
  /** XDS sourceId of the gateway (OID). */
  GW_XDS_SOURCE_OID: z
    .string()
    .regex(/^[0-2](\.(0|[1-9]\d*))+$/, 'expected an OID')
    .default('2.25.302176213964855170430424911486457343081'),
  GW_EXCHANGE_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(10),
  GW_EXCHANGE_BACKOFF_MS: z.coerce.number().int().min(10).default(5000),
  GW_EXCHANGE_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(16),
  /** Messages in flight per destination (relay or repository) per process. */
  GW_EXCHANGE_DESTINATION_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  /** Sends per second per destination per process. */
  GW_EXCHANGE_DESTINATION_RATE: z.coerce.number().int().min(1).default(200),
  /**
   * A discharge that ended longer ago than this (`30d`, `48h`; a bare number is days) is stored but
   * not routed: a history load or a late feed must not page the primary-care team about old stays.
   */
  GW_EXCHANGE_MAX_DISCHARGE_AGE: z
    .string()
    .regex(/^\d+[dh]?$/, 'expected a duration such as 30d or 48h')
    .default('30d')
    .transform((v) => Number.parseInt(v, 10) * (v.endsWith('h') ? 3_600_000 : 86_400_000)),
  /** Indicator counts below this are suppressed (with complementary cells); 1 disables suppression. */
  GW_INDICATOR_SMALL_CELL: z.coerce.number().int().min(1).max(1000).default(10),
  /**
   * Cell-key noise (-2..+2, consistent per cell) on the indicator counts non-admin clients see, so
   * that differencing two reports does not reveal a person; false only where exact figures are needed.
   */
  GW_INDICATOR_NOISE: bool.default(true),
  /**
   * Transactions evaluating a CPTS's (or the whole gateway's) Measures side by side, each with its
   * own persons table: about the cores PostgreSQL may use for it; 1 evaluates them one after another.
   */
  GW_INDICATOR_LANES: z.coerce.number().int().min(1).max(16).default(2),
  /** Hours a completed bulk export's files stay downloadable (then swept, hourly). */
  GW_BULK_RETENTION_HOURS: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 30)
    .default(24),
  /** Bulk exports run at once per process (each holds one database connection while it runs). */
  GW_BULK_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(2),
  /** Serve the indicator dashboard's static page at /dashboard (its data comes from the FHIR API). */
  GW_DASHBOARD_ENABLED: bool.default(true),
  /** Months an encounter keeps its structure in the patient's équipe de soins after it ended. */
  GW_SHARING_ENCOUNTER_MONTHS: z.coerce.number().int().min(0).max(600).default(24),
  /** JSON file replacing the default profession × resource-class matrix (checked at startup). */
  GW_SHARING_MATRIX_FILE: z.string().min(1).optional(),
  /** Folder the admin API may import portability archives from (default <GW_DATA_DIR>/imports). */
  GW_INTAKE_IMPORT_DIR: z.string().min(1).optional(),
  /** Patients of one portability archive imported side by side (each patient's documents in order). */
  GW_INTAKE_IMPORT_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(4),
  /**
   * Worker threads that parse and extract CDA documents for the intake (started on demand, gone
   * after 30 s idle); 0 reads them on the main thread (less memory: docs/intake.md, "Speed").
   */
  GW_INTAKE_READ_THREADS: z.coerce.number().int().min(0).max(16).default(2),
  /** Largest archive entry read into memory: one document, or one patient's XDM zip. */
  GW_INTAKE_ARCHIVE_MAX_ENTRY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(256 * 1024 * 1024),
});

export type GatewayConfig = z.infer<typeof configSchema>;

/** Names of every configuration variable the gateway understands. */
export const CONFIG_VARIABLES = Object.keys(configSchema.shape) as (keyof GatewayConfig)[];

export class ConfigError extends Error {}

/**
 * Validates the environment once at boot. Fails fast naming the variable, never echoing its
 * value (a database URL carries a password).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const picked: Record<string, string> = {};
  for (const key of CONFIG_VARIABLES) {
    const value = env[key];
    if (value !== undefined && value !== '') {
      picked[key] = value;
    }
  }
  const result = configSchema.safeParse(picked);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  return result.data;
}

/** The public base URL of the gateway (used in Location headers, links and token audiences). */
export function baseUrl(config: GatewayConfig, listeningPort?: number): string {
  if (config.GW_BASE_URL) {
    return config.GW_BASE_URL.replace(/\/+$/, '');
  }
  const host = config.GW_HTTP_HOST === '0.0.0.0' ? 'localhost' : config.GW_HTTP_HOST;
  return `http://${host}:${listeningPort ?? config.GW_HTTP_PORT}`;
}

/** The key of an inbound mailbox in logs and the ledger: its name, or `user@host/folder`. */
export function inboxName(m: Pick<MssInboxConfig, 'name' | 'url' | 'user' | 'folder'>): string {
  return m.name ?? `${m.user}@${new URL(m.url).host}/${m.folder}`;
}
