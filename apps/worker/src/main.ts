import { ConfigError, CrashGuard, GracefulShutdown, createLogger, loadConfig } from '@gw/platform';
import { createCore } from '../../gateway/src/core';

/**
 * Out-of-process worker: the gateway's own composition root with nothing served. It runs the job
 * handlers of the queues named in GW_WORKER_QUEUES (`*` = all) and the features' background work
 * (the outbox relay, schedules). Needs GW_DATABASE_URL: the embedded database belongs to the gateway.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.GW_DATABASE_URL) {
    throw new ConfigError('GW_DATABASE_URL is required for apps/worker (the embedded database belongs to the gateway)');
  }
  const logger = createLogger(config.GW_LOG_LEVEL).child({ process: 'worker' });
  // No request, job or cancellation may take the process down (crash-guard.ts).
  new CrashGuard(logger).install();
  const core = await createCore(config, logger, { workers: true, http: false });
  // Signal handlers before saying ready (see the gateway's main.ts).
  new GracefulShutdown(core.shutdownSteps(), { timeoutMs: config.GW_SHUTDOWN_TIMEOUT_MS, logger }).install();
  logger.info({ queues: config.GW_WORKER_QUEUES, backend: core.queue.backend }, 'worker ready');
}

main().catch((err: unknown) => {
  process.stderr.write(`Worker failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof ConfigError ? 78 : 1);
});
