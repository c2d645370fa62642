import { MllpServer } from '@gw/ingest';
import type { GatewayCore } from '../core';

/** Starts the MLLP listener configured by GW_MLLP_*; returns it with the port actually bound. */
export async function startMllp(
  core: GatewayCore,
  port = core.config.GW_MLLP_PORT,
): Promise<{ server: MllpServer; port: number }> {
  const c = core.config;
  if (
    (c.GW_MLLP_TLS_CERT && !c.GW_MLLP_TLS_KEY) ||
    (!c.GW_MLLP_TLS_CERT && c.GW_MLLP_TLS_KEY) ||
    (c.GW_MLLP_TLS_CA && !c.GW_MLLP_TLS_CERT)
  ) {
    throw new Error('MLLP TLS needs both GW_MLLP_TLS_CERT and GW_MLLP_TLS_KEY (GW_MLLP_TLS_CA only with them)');
  }
  if (c.GW_MLLP_TLS_REQUIRE_CLIENT_CERT && !c.GW_MLLP_TLS_CA) {
    throw new Error(
      'GW_MLLP_TLS_REQUIRE_CLIENT_CERT needs GW_MLLP_TLS_CA (the CA client certificates are checked against)',
    );
  }
  const server = new MllpServer(
    async (frame) => {
      const ctx = { transport: 'mllp' as const, peer: { address: frame.peer, certificate: frame.certificate } };
      const result = frame.oversized
        ? await core.hl7.rejectOversized(frame.payload, c.GW_MLLP_MAX_MESSAGE_BYTES, ctx)
        : await core.hl7.handle(frame.payload, ctx);
      return result.ack;
    },
    {
      host: c.GW_MLLP_HOST,
      port,
      maxMessageBytes: c.GW_MLLP_MAX_MESSAGE_BYTES,
      idleTimeoutMs: c.GW_MLLP_IDLE_TIMEOUT_SECONDS * 1000,
      tls:
        c.GW_MLLP_TLS_CERT && c.GW_MLLP_TLS_KEY
          ? {
              certFile: c.GW_MLLP_TLS_CERT,
              keyFile: c.GW_MLLP_TLS_KEY,
              caFile: c.GW_MLLP_TLS_CA,
              requireClientCert: c.GW_MLLP_TLS_REQUIRE_CLIENT_CERT ?? true,
            }
          : undefined,
      maxConnections: c.GW_MLLP_MAX_CONNECTIONS,
      allowedIps: c.GW_MLLP_ALLOWED_IPS?.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      logger: core.logger,
    },
  );
  return { server, port: await server.listen() };
}
