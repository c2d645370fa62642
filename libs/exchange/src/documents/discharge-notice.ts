import { parisParts } from '@gw/fhir';

/**
 * The facts a discharge notice is written from, when the hospital sent no letter. Plain values,
 * no FHIR resources: the routing code extracts them from the Encounter, Patient and Organization.
 */
export interface DischargeNoticeFacts {
  patient: {
    family: string;
    given?: string;
    /** `YYYY-MM-DD`. */
    birthDate?: string;
    /** The INS; printed only when `qualified` (DOMAIN §3: an INS is shared only when QUAL). */
    ins?: { value: string; qualified: boolean };
  };
  facility: { name: string; finess?: string };
  /** Unité fonctionnelle / service. */
  unit?: string;
  admittedAt?: Date | string;
  dischargedAt: Date | string;
  /** PMSI mode de sortie, simplified (ZFM-2: 8 home, 6/7 transfer, 9 death). */
  dischargeMode: 'home' | 'transfer' | 'death' | 'other';
  /** FINESS of the receiving establishment (PV1-37), for a transfer. */
  transferFiness?: string;
  /** Free-text destination (ZFM-4 / ZFV-6), e.g. "EHPAD Les Tilleuls". */
  destination?: string;
  /** Médecin traitant, when known. */
  gp?: { name: string; rpps?: string };
  /** Date before which the follow-up should be organised (not used in the death case). */
  followUpDueAt?: Date | string;
}

const EOL = '\r\n';
const MODE_TEXT: Record<DischargeNoticeFacts['dischargeMode'], string> = {
  home: 'retour à domicile',
  transfer: 'transfert',
  death: 'décès',
  other: 'autre',
};

/**
 * Writes a readable UTF-8 plain-text "Notification de sortie d'hospitalisation" (CRLF lines) with a
 * structured `key: value` summary at the end. Dates are shown in Europe/Paris. In the death case the
 * text asks for no action towards the patient (DOMAIN §4: no "call the patient" after ZFM-2 = 9).
 */
export function buildDischargeNotice(facts: DischargeNoticeFacts): { text: Buffer; title: string } {
  const lines = [
    "NOTIFICATION DE SORTIE D'HOSPITALISATION",
    "Document généré automatiquement par la passerelle en l'absence de lettre de liaison de l'établissement.",
    '',
    ...patientBlock(facts.patient),
    '',
    ...stayBlock(facts),
    '',
    ...actionBlock(facts),
    '',
    ...summaryBlock(facts),
  ];
  const title = `Notification de sortie d'hospitalisation du ${formatDate(facts.dischargedAt)}`;
  return { text: Buffer.from(lines.join(EOL) + EOL, 'utf8'), title };
}

function patientBlock(p: DischargeNoticeFacts['patient']): string[] {
  const out = [`Patient : ${p.family.toUpperCase()}${p.given ? ` ${p.given}` : ''}`];
  if (p.birthDate) {
    out.push(`Date de naissance : ${formatBirthDate(p.birthDate)}`);
  }
  if (p.ins?.qualified) {
    out.push(`INS (identité qualifiée) : ${p.ins.value}`);
  }
  return out;
}

function stayBlock(f: DischargeNoticeFacts): string[] {
  const out = [`Établissement : ${f.facility.name}${f.facility.finess ? ` (FINESS ${f.facility.finess})` : ''}`];
  if (f.unit) {
    out.push(`Unité : ${f.unit}`);
  }
  if (f.admittedAt !== undefined) {
    out.push(`Date d'entrée : ${formatDateTime(f.admittedAt)}`);
  }
  out.push(`Date de sortie : ${formatDateTime(f.dischargedAt)}`, `Mode de sortie : ${modeText(f)}`);
  if (f.destination) {
    out.push(`Destination : ${f.destination}`);
  }
  out.push(`Médecin traitant : ${f.gp ? `${f.gp.name}${f.gp.rpps ? ` (RPPS ${f.gp.rpps})` : ''}` : 'non renseigné'}`);
  return out;
}

function modeText(f: DischargeNoticeFacts): string {
  if (f.dischargeMode === 'transfer') {
    return f.transferFiness
      ? `transfert vers l'établissement FINESS ${f.transferFiness}`
      : 'transfert vers un autre établissement';
  }
  return MODE_TEXT[f.dischargeMode];
}

function actionBlock(f: DischargeNoticeFacts): string[] {
  if (f.dischargeMode === 'death') {
    // No follow-up request and no wording about reaching the patient: the notice informs only.
    return [
      'Le décès est survenu au cours du séjour.',
      'Cette notification est transmise pour information et mise à jour du dossier médical.',
    ];
  }
  const due = f.followUpDueAt !== undefined ? ` avant le ${formatDate(f.followUpDueAt)}` : '';
  const out = [`Suivi à organiser${due} : merci de contacter le patient et de planifier la consultation de suivi.`];
  if (f.dischargeMode === 'transfer') {
    out.push("Le patient a été transféré : le suivi débutera à sa sortie de l'établissement d'accueil.");
  }
  out.push("Aucune lettre de liaison n'a été reçue à ce jour ; la demander à l'établissement si nécessaire.");
  return out;
}

function summaryBlock(f: DischargeNoticeFacts): string[] {
  const kv: [string, string | undefined][] = [
    ['type', 'notification-sortie'],
    ['etablissement-finess', f.facility.finess],
    ['unite', f.unit],
    ['date-entree', f.admittedAt !== undefined ? isoParis(f.admittedAt) : undefined],
    ['date-sortie', isoParis(f.dischargedAt)],
    ['mode-sortie', f.dischargeMode],
    ['transfert-finess', f.dischargeMode === 'transfer' ? f.transferFiness : undefined],
    ['destination', f.destination],
    ['medecin-traitant-rpps', f.gp?.rpps],
    [
      'suivi-avant',
      f.dischargeMode !== 'death' && f.followUpDueAt !== undefined ? isoDateParis(f.followUpDueAt) : undefined,
    ],
    ['ins', f.patient.ins?.qualified ? f.patient.ins.value : undefined],
  ];
  const lines = kv
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
    .map(([k, v]) => `${k}: ${v.replace(/[\r\n]+/g, ' ')}`);
  return ['--- Résumé structuré ---', ...lines];
}

function toDate(v: Date | string): Date {
  const d = v instanceof Date ? v : new Date(v);
  if (Number.isNaN(d.getTime())) {
    throw new RangeError('Invalid date in discharge notice facts');
  }
  return d;
}

/** A date-only string (`YYYY-MM-DD`) is a calendar day: no time-zone shift. */
function dayOnly(v: Date | string): string[] | undefined {
  return typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v) ? v.split('-') : undefined;
}

function formatDateTime(v: Date | string): string {
  const day = dayOnly(v);
  if (day) {
    return `${day[2]}/${day[1]}/${day[0]}`;
  }
  const p = parisParts(toDate(v));
  return `${p.day}/${p.month}/${p.year} ${p.hour}:${p.minute}`;
}

function formatDate(v: Date | string): string {
  return formatDateTime(v).slice(0, 10);
}

function formatBirthDate(v: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(v);
  return m ? `${m[3]}/${m[2]}/${m[1]}` : v;
}

function isoDateParis(v: Date | string): string {
  const day = dayOnly(v);
  if (day) {
    return day.join('-');
  }
  const p = parisParts(toDate(v));
  return `${p.year}-${p.month}-${p.day}`;
}

/** ISO 8601 with the Europe/Paris offset of that instant, e.g. 2026-11-20T10:00:00+01:00. */
function isoParis(v: Date | string): string {
  const day = dayOnly(v);
  if (day) {
    return day.join('-');
  }
  const d = toDate(v);
  const p = parisParts(d);
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  const offset = Math.round((asUtc - Math.floor(d.getTime() / 1000) * 1000) / 60000);
  const sign = offset < 0 ? '-' : '+';
  const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0');
  const mm = String(Math.abs(offset) % 60).padStart(2, '0');
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}${sign}${hh}:${mm}`;
}
