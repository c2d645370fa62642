import { ConfigError, CrashGuard, GracefulShutdown, createLogger, loadConfig } from '@gw/platform';
import { bootstrapAdmin } from './auth/bootstrap-admin';
import { createCore } from './core';
import { createHttpApp } from './http/http';
import { startMllp } from './ingest/mllp.listener';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(err instanceof ConfigError ? 78 : 1);
  }
  const logger = createLogger(config.GW_LOG_LEVEL);
  // No request, job or cancellation may take the process down (crash-guard.ts).
  new CrashGuard(logger).install();
  const core = await createCore(config, logger);
  const app = await createHttpApp(core);
  await app.listen(config.GW_HTTP_PORT, config.GW_HTTP_HOST);
  const mllp = config.GW_MLLP_ENABLED ? await startMllp(core) : undefined;
  const admin = await bootstrapAdmin(core);
  const mllpGraceMs = Math.min(5000, Math.floor(config.GW_SHUTDOWN_TIMEOUT_MS / 2));
  const shutdown = new GracefulShutdown(
    [
      // Stop accepting first; messages and requests in flight are answered (their ACK or response).
      ...(mllp ? [{ name: 'mllp listener', close: () => mllp.server.close(mllpGraceMs) }] : []),
      { name: 'http listener', close: () => app.close() },
      ...core.shutdownSteps(),
    ],
    { timeoutMs: config.GW_SHUTDOWN_TIMEOUT_MS, logger },
  );
  // Before saying ready: a supervisor (or a test) may send SIGTERM as soon as it reads the line, and
  // a signal that comes before its handler ends the process at once, nothing closed.
  shutdown.install();
  logger.info(
    {
      url: `${core.baseUrl}/fhir`,
      mllp: mllp ? `${config.GW_MLLP_HOST}:${mllp.port}` : 'disabled',
      database: core.db.embedded ? 'embedded' : 'external',
      queue: core.queue.backend,
    },
    'gateway ready',
  );
  if (admin) {
    // Printed once, on the first start only; also kept in the data directory (mode 0600).
    process.stdout.write(
      `\nFirst start: admin client created.\n  client_id:     ${admin.clientId}\n  client_secret: ${admin.clientSecret}\n  saved to:      ${admin.file}\n\n`,
    );
  }
  // The embedded PostgreSQL died and could not be restarted: stop with exit code 1, so that the
  // process supervisor (systemd, Docker, Kubernetes) starts the whole gateway again.
  core.db.onFailure((reason) => void shutdown.run(reason, 1));
}

main().catch((err: unknown) => {
  process.stderr.write(`Gateway failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
