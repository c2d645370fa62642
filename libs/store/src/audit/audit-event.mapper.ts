/** An audit_event row as selected by AuditLog. */
export interface AuditRow {
  id: string | number;
  recorded: Date;
  client_id: string | null;
  organization: string | null;
  interaction: string;
  resource_type: string | null;
  entity: string[] | null;
  outcome: number;
  request_id: string | null;
  practitioner: string | null;
  practitioner_role: string | null;
  profession: string | null;
  id_nat_ps: string | null;
  patients: string[] | null;
  basis: string[] | null;
  purpose: string | null;
  decision: string | null;
  query: string | null;
}

/** ANS traçabilité des événements (TDE): the profile every trail AuditEvent claims. */
export const TDE_AUDITEVENT_PROFILE = 'https://interop.esante.gouv.fr/ig/fhir/tde/StructureDefinition/tde-auditevent';
/** Interactions of the gateway that FHIR's restful-interaction has no code for (bulk-download, *-refused, client-grants…). */
export const AUDIT_INTERACTION_SYSTEM = 'https://gateway.fr-primary-care.org/fhir/CodeSystem/audit-interaction';
/** The client's organization, on the client application agent (R4 agent.location is a Location). */
export const AUDIT_ORGANIZATION_EXTENSION =
  'https://gateway.fr-primary-care.org/fhir/StructureDefinition/audit-client-organization';
/** The Practitioner acting through the role of the person agent (its `who` is the PractitionerRole). */
export const AUDIT_PRACTITIONER_EXTENSION =
  'https://gateway.fr-primary-care.org/fhir/StructureDefinition/audit-practitioner';
const RESTFUL = 'http://hl7.org/fhir/restful-interaction';
const PROFESSION_SYSTEM = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const ID_NAT_PS_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.1';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const PARTICIPATION = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';

/** Our interaction names → FHIR restful-interaction codes (R4 valueset-type-restful-interaction). */
const RESTFUL_CODES: Record<string, string> = {
  read: 'read',
  vread: 'vread',
  search: 'search-type',
  history: 'history-instance',
  create: 'create',
  update: 'update',
  delete: 'delete',
  transaction: 'transaction',
  batch: 'batch',
  'bulk-export': 'operation',
};

/** AuditEvent.action (R4 audit-event-action): searches are queries (E, as IHE ATNA), reads R. */
function action(interaction: string): string {
  const code = RESTFUL_CODES[interaction] ?? (interaction.startsWith('operation:') ? 'operation' : undefined);
  switch (code) {
    case 'read':
    case 'vread':
    case 'history-instance':
      return 'R';
    case 'create':
      return 'C';
    case 'update':
      return 'U';
    case 'delete':
      return 'D';
    default:
      return interaction === 'bulk-download' ? 'R' : 'E';
  }
}

function subtype(interaction: string): Record<string, string> {
  const code = RESTFUL_CODES[interaction];
  if (code) {
    return { system: RESTFUL, code };
  }
  if (interaction.startsWith('operation:')) {
    return { system: RESTFUL, code: 'operation', display: `$${interaction.slice('operation:'.length)}` };
  }
  return { system: AUDIT_INTERACTION_SYSTEM, code: interaction };
}

/**
 * Renders a trail row as an AuditEvent of the ANS traçabilité profile (tde-auditevent: one
 * subtype, period.start, at most two agents each with a `who`): the person (their PractitionerRole,
 * IdNatPS as altId, profession TRE_G15 as role, purpose) when there is one, and the client
 * application; the bases of access as the requesting agent's `policy`; entities: the patients
 * (role Patient), the resources touched (Domain Resource) and the search's masked query (Query).
 * `patientId`: the trail of one patient, which shows that patient only, and the resources and
 * bases of a row only when it is about that patient alone (a search across several patients never
 * shows the others' part).
 */
export function toAuditEvent(r: AuditRow, opts: { patientId?: string } = {}): Record<string, unknown> {
  const recorded = r.recorded.toISOString();
  const decision = r.decision ?? (Number(r.outcome) < 400 ? 'permit' : 'deny');
  const patients = r.patients ?? [];
  const own = opts.patientId === undefined || (patients.length === 1 && patients[0] === opts.patientId);
  const shownPatients = opts.patientId === undefined ? patients : [opts.patientId];
  const agents = agentsOf(r, own ? (r.basis ?? []) : []);
  const entities = [
    ...shownPatients.map((id) => ({
      what: { reference: `Patient/${id}` },
      type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
      role: { system: OBJECT_ROLE, code: '1', display: 'Patient' },
    })),
    ...(own ? (r.entity ?? []) : [])
      .filter((e) => !shownPatients.some((id) => e === `Patient/${id}`))
      .map((e) => ({
        what: { reference: e },
        type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
        role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
      })),
    ...(r.query !== null
      ? [
          {
            type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
            role: { system: OBJECT_ROLE, code: '24', display: 'Query' },
            description: r.resource_type ?? undefined,
            query: Buffer.from(r.query, 'utf8').toString('base64'),
            detail: [{ type: 'query', valueString: r.query }],
          },
        ]
      : []),
  ];
  return {
    resourceType: 'AuditEvent',
    id: String(r.id),
    meta: { profile: [TDE_AUDITEVENT_PROFILE] },
    type: {
      system: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
      code: 'rest',
      display: 'RESTful Operation',
    },
    subtype: [subtype(r.interaction)],
    action: action(r.interaction),
    period: { start: recorded, end: recorded },
    recorded,
    outcome: Number(r.outcome) < 400 ? '0' : Number(r.outcome) < 500 ? '4' : '8',
    outcomeDesc: `${decision} (HTTP ${r.outcome})`,
    ...(r.purpose ? { purposeOfEvent: [purpose(r.purpose)] } : {}),
    agent: agents,
    source: {
      ...(r.request_id ? { site: String(r.request_id) } : {}),
      observer: { display: 'fhir-gateway' },
      type: [
        {
          system: 'http://terminology.hl7.org/CodeSystem/security-source-type',
          code: '4',
          display: 'Application Server',
        },
      ],
    },
    entity: entities,
  };
}

function purpose(code: string): Record<string, unknown> {
  return { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code }] };
}

/** The person (when one) then the client application; the first is the requestor and carries the bases. */
function agentsOf(r: AuditRow, basis: string[]): Record<string, unknown>[] {
  const reads = action(r.interaction) === 'R' || action(r.interaction) === 'E';
  const policy = basis.length > 0 ? { policy: basis } : {};
  const client = {
    type: { coding: [{ system: DCM, code: '110150', display: 'Application' }] },
    who: { identifier: { system: 'urn:gateway:client', value: r.client_id ?? undefined } },
    requestor: !r.practitioner_role,
    ...(r.organization
      ? { extension: [{ url: AUDIT_ORGANIZATION_EXTENSION, valueReference: { reference: r.organization } }] }
      : {}),
    ...(r.practitioner_role ? {} : policy),
  };
  if (!r.practitioner_role) {
    return [client];
  }
  const person = {
    type: {
      coding: [
        reads
          ? { system: PARTICIPATION, code: 'IRCP', display: 'information recipient' }
          : { system: PARTICIPATION, code: 'AUT', display: 'author (originator)' },
      ],
    },
    ...(r.profession ? { role: [{ coding: [{ system: PROFESSION_SYSTEM, code: r.profession }] }] } : {}),
    who: { reference: r.practitioner_role },
    ...(r.practitioner
      ? { extension: [{ url: AUDIT_PRACTITIONER_EXTENSION, valueReference: { reference: r.practitioner } }] }
      : {}),
    ...(r.id_nat_ps ? { altId: `${ID_NAT_PS_SYSTEM}|${r.id_nat_ps}` } : {}),
    requestor: true,
    ...policy,
    ...(r.purpose ? { purposeOfUse: [purpose(r.purpose)] } : {}),
  };
  return [person, client];
}
