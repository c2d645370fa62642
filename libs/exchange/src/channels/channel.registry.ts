import type { GatewayConfig } from '@gw/platform';
import { ChannelRegistry } from './channel';
import { MhdChannel } from './mhd/mhd.channel';
import { MssChannel } from './mss/mss.channel';

type ChannelConfig = Pick<
  GatewayConfig,
  | 'GW_MSS_SMTP_URL'
  | 'GW_MSS_FROM'
  | 'GW_MSS_CLIENT_CERT'
  | 'GW_MSS_CLIENT_KEY'
  | 'GW_MSS_CA'
  | 'GW_MSS_SMTP_INSECURE'
  | 'GW_MSS_NIL'
  | 'GW_MHD_RECIPIENT_URL'
  | 'GW_MHD_TOKEN_URL'
  | 'GW_MHD_CLIENT_ID'
  | 'GW_MHD_CLIENT_SECRET'
>;

/**
 * Every channel, configured or not (a delivery of an unconfigured one is a dead letter naming the
 * setting), in routing order: MSSanté to each recipient first, then the shared record.
 */
export function channelsFromConfig(config: ChannelConfig): ChannelRegistry {
  const mss = new MssChannel(
    config.GW_MSS_SMTP_URL && config.GW_MSS_FROM
      ? {
          url: config.GW_MSS_SMTP_URL,
          from: config.GW_MSS_FROM,
          clientCert: config.GW_MSS_CLIENT_CERT,
          clientKey: config.GW_MSS_CLIENT_KEY,
          ca: config.GW_MSS_CA,
          insecure: config.GW_MSS_SMTP_INSECURE,
          nil: config.GW_MSS_NIL,
        }
      : undefined,
  );
  const mhd = new MhdChannel(
    config.GW_MHD_RECIPIENT_URL
      ? {
          url: config.GW_MHD_RECIPIENT_URL,
          tokenUrl: config.GW_MHD_TOKEN_URL,
          clientId: config.GW_MHD_CLIENT_ID,
          clientSecret: config.GW_MHD_CLIENT_SECRET,
        }
      : undefined,
  );
  return new ChannelRegistry([mss, mhd]);
}
