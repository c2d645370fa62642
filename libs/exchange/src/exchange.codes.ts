import type { CodeableConcept, ContactPoint, Extension } from '@medplum/fhirtypes';
import { GW, isMssanteEmail, isMssanteTyped } from '@gw/fhir';

export {
  CONSENT_CODES,
  EMAIL_TYPE_EXTENSION,
  FINESS,
  GW,
  INSEE_CODE_EXTENSION,
  INS_OIDS,
  MT_STATUS_EXTENSION,
  PRACTITIONER_FLAG_SYSTEM,
  RELIABILITY_EXTENSION,
  RPPS,
  TASK_CODE_SYSTEM,
  TERRITORY_COMMUNE_EXTENSION,
} from '@gw/fhir';

/** Gateway-defined systems used by the exchange layer (documented in docs/exchange.md). */
export const BUSINESS_STATUS_SYSTEM = `${GW}/fhir/CodeSystem/exchange-status`;
export const DELIVERY_ID_SYSTEM = `${GW}/fhir/NamingSystem/exchange-delivery`;
export const ROUTING_ID_SYSTEM = `${GW}/fhir/NamingSystem/exchange-routing`;
/** Task.input types of the follow-up Tasks (`discharge-letter`: the hospital's letter). */
export const TASK_INPUT_SYSTEM = `${GW}/fhir/CodeSystem/exchange-task-input`;
export const COORDINATOR_ROLES = new Set(['coordinator', 'coordinateur', '768730001']);

export type TaskKind = 'discharge-follow-up' | 'find-mt';
export const TASK_TEXT: Record<TaskKind, string> = {
  'discharge-follow-up': "Organiser le suivi après la sortie d'hospitalisation",
  'find-mt': 'Trouver un médecin traitant et organiser le suivi',
};

export type BusinessStatus =
  | 'notifications-pending'
  | 'notified'
  | 'acknowledged'
  | 'notification-failed'
  | 'no-recipient'
  | 'unrouted'
  | 'discharge-cancelled';

const BUSINESS_TEXT: Record<BusinessStatus, string> = {
  'notifications-pending': 'Notifications en cours d’envoi',
  notified: 'Équipe notifiée',
  acknowledged: 'Notifications lues ou intégrées',
  'notification-failed': 'Échec d’au moins une notification',
  'no-recipient': 'Aucun destinataire joignable par MSSanté',
  unrouted: 'Aucune CPTS ne couvre la commune du patient',
  'discharge-cancelled': 'Sortie annulée par l’établissement',
};

export function businessStatus(code: BusinessStatus): CodeableConcept {
  return {
    coding: [{ system: BUSINESS_STATUS_SYSTEM, code, display: BUSINESS_TEXT[code] }],
    text: BUSINESS_TEXT[code],
  };
}

/** An MSSanté mailbox: FR Core email type MSSANTE, or an address of an mssante.fr domain. */
export function mssanteMailbox(telecom: ContactPoint[] | undefined): string | undefined {
  const current = (telecom ?? []).filter((t) => isMssanteEmail(t) && !t.period?.end);
  return (current.find(isMssanteTyped) ?? current[0])?.value?.toLowerCase();
}

export function extensionCode(ext: Extension[] | undefined, url: string): string | undefined {
  const e = ext?.find((x) => x.url === url);
  return e?.valueCode ?? e?.valueCoding?.code ?? e?.valueString;
}
