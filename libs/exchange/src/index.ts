export { ExchangeService } from './exchange.service';
export { MhdRecipient } from './mhd.recipient';
export { RouteStore, CHANNELS, RECIPIENT_ROLES } from './route.store';
export type { Route, RouteInput } from './route.store';
export { ChannelRegistry, PermanentDeliveryError, CHANNEL_NAMES } from './channel';
export type { Channel, ChannelName, DeliveryJobName, TaskEffect } from './channel';
export { channelsFromConfig } from './channel.registry';
export type { Delivery, DeliveryStatus, Attempt } from './delivery.store';
export { planDischarge } from './discharge.plan';
export type { DischargePlan } from './discharge.plan';
export { buildXdmZip, buildXdmMetadata, mssanteSubject, XDM_ZIP_NAME } from './xdm.builder';
export { buildProvideBundle, validateProvideBundle, isProvideBundle } from './mhd.builder';
export { buildDischargeNotice } from './discharge-notice';
export type { DischargeNoticeFacts } from './discharge-notice';
export { buildMdn, parseMdn, MdnFormatError } from './mdn';
export type { MdnReport } from './mdn';
export {
  BUSINESS_STATUS_SYSTEM,
  DELIVERY_ID_SYSTEM,
  MT_STATUS_EXTENSION,
  PRACTITIONER_FLAG_SYSTEM,
  TASK_CODE_SYSTEM,
  TERRITORY_COMMUNE_EXTENSION,
} from './exchange.codes';
export type { DocumentAuthor, DocumentPatient, ExchangeDocument, Submission } from './document.model';
export { EXCHANGE_MIGRATIONS } from './schema';
export { markHistoricDischarges } from './discharge.router';
