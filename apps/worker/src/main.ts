import { join, resolve } from 'node:path';
import { ConfigError, GracefulShutdown, QueueService, createLogger, loadConfig, migrate, openDatabase, processShutdownSteps } from '@gw/platform';
import { MIGRATIONS } from '../../gateway/src/core';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions } from '@gw/fhir';
import { AuditLog, BulkExportService, FhirRepository, OrganizationAccessPolicy, registerHousekeepingJobs } from '@gw/store';
import { ExchangeService, workerConcurrency } from '@gw/exchange';
import { IndicatorsService } from '@gw/indicators';

/**
 * Out-of-process BullMQ worker: runs the same job handlers as the gateway for the queues named
 * in GW_WORKER_QUEUES (`*` = all), and the exchange outbox relay. Needs GW_DATABASE_URL: the
 * embedded database belongs to the gateway process.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.GW_DATABASE_URL) {
    throw new ConfigError('GW_DATABASE_URL is required for apps/worker (the embedded database belongs to the gateway)');
  }
  const logger = createLogger(config.GW_LOG_LEVEL).child({ process: 'worker' });
  const db = await openDatabase(config, logger);
  await migrate(db.pool, MIGRATIONS);
  loadFhirDefinitions();
  const profiles = ProfileRegistry.fromDirectory(resolve(config.GW_PROFILES_DIR));
  const policy = new OrganizationAccessPolicy();
  const repo = new FhirRepository(db.pool, new SearchParamRegistry(), policy, profiles);
  const queue = new QueueService({ databaseUrl: db.url, redisUrl: config.GW_REDIS_URL, lockMs: config.GW_QUEUE_LOCK_MS, logger });
  registerHousekeepingJobs(queue, db.pool);
  const exchange = new ExchangeService(db.pool, db.url, repo, queue, config, logger);
  exchange.register();
  const audit = new AuditLog(db.pool, logger);
  const indicators = IndicatorsService.load(join(resolve(config.GW_PROFILES_DIR), 'measures'), db.pool, repo, audit, config.GW_INDICATOR_SMALL_CELL, logger);
  indicators.register(queue);
  // Export files are written under GW_DATA_DIR: the gateway serves them, so it must be the same volume.
  new BulkExportService(db.pool, repo, policy, audit, queue, { dataDir: config.GW_DATA_DIR, retentionHours: config.GW_BULK_RETENTION_HOURS, logger }).register(queue);
  const queues = queue.startWorkers(config.GW_WORKER_QUEUES, { ...workerConcurrency(config), 'bulk-export': config.GW_BULK_CONCURRENCY });
  await exchange.start();
  logger.info({ queues, backend: queue.backend }, 'worker ready');
  new GracefulShutdown(processShutdownSteps({ relay: exchange, queue, audit, db }), { timeoutMs: config.GW_SHUTDOWN_TIMEOUT_MS, logger }).install();
}

main().catch((err: unknown) => {
  process.stderr.write(`Worker failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof ConfigError ? 78 : 1);
});
