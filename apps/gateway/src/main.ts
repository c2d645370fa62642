import { ConfigError, createLogger, loadConfig } from '@gw/platform';
import { bootstrapAdmin } from './bootstrap-admin';
import { createCore } from './core';
import { createHttpApp } from './http';
import { startMllp } from './mllp';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(err instanceof ConfigError ? 78 : 1);
  }
  const logger = createLogger(config.GW_LOG_LEVEL);
  const core = await createCore(config, logger);
  const app = await createHttpApp(core);
  await app.listen(config.GW_HTTP_PORT, config.GW_HTTP_HOST);
  const mllp = config.GW_MLLP_ENABLED ? await startMllp(core) : undefined;
  const admin = await bootstrapAdmin(core);
  logger.info(
    { url: `${core.baseUrl}/fhir`, mllp: mllp ? `${config.GW_MLLP_HOST}:${mllp.port}` : 'disabled', database: core.db.embedded ? 'embedded' : 'external', queue: core.queue.backend },
    'gateway ready',
  );
  if (admin) {
    // Printed once, on the first start only; also kept in the data directory (mode 0600).
    process.stdout.write(
      `\nFirst start: admin client created.\n  client_id:     ${admin.clientId}\n  client_secret: ${admin.clientSecret}\n  saved to:      ${admin.file}\n\n`,
    );
  }
  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) {
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await mllp?.server.close();
    await app.close();
    await core.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`Gateway failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
