export { ExchangeService } from './exchange.service';
export { MhdRecipient } from './channels/mhd/mhd.recipient';
export { CptsTerritoryService } from './records/cpts-territory.service';
export type { CptsConflict, CptsEntry, OperatorContext } from './records/cpts-territory.service';
export { CptsDirectory } from './records/cpts.directory';
export type { CommuneCoverage, Cpts } from './records/cpts.directory';
export { RouteStore, CHANNELS, RECIPIENT_ROLES } from './records/route.store';
export type { Route, RouteInput } from './records/route.store';
export { ChannelRegistry, PermanentDeliveryError, CHANNEL_NAMES } from './channels/channel';
export type { Channel, ChannelName, DeliveryJobName, TaskEffect } from './channels/channel';
export { channelsFromConfig } from './channels/channel.registry';
export type { Delivery, DeliveryStatus, Attempt } from './records/delivery.store';
export { planDischarge } from './routing/discharge.plan';
export type { DischargePlan } from './routing/discharge.plan';
export { buildXdmZip, buildXdmMetadata, mssanteSubject, XDM_ZIP_NAME } from './channels/mss/xdm.builder';
export { buildProvideBundle, validateProvideBundle, isProvideBundle } from './channels/mhd/mhd.builder';
export { buildDischargeNotice } from './documents/discharge-notice';
export type { DischargeNoticeFacts } from './documents/discharge-notice';
export { buildMdn, parseMdn, MdnFormatError } from './channels/mss/mdn.parser';
export type { MdnReport } from './channels/mss/mdn.parser';
export {
  BUSINESS_STATUS_SYSTEM,
  DELIVERY_ID_SYSTEM,
  MT_STATUS_EXTENSION,
  PRACTITIONER_FLAG_SYSTEM,
  TASK_CODE_SYSTEM,
  TASK_TEXT,
  TERRITORY_COMMUNE_EXTENSION,
} from './exchange.codes';
export type { DocumentAuthor, DocumentPatient, ExchangeDocument, Submission } from './documents/document.model';
export { EXCHANGE_MIGRATIONS } from './records/exchange.schema';
export { markHistoricDischarges } from './routing/discharge.router';
