import type { Practitioner } from '@medplum/fhirtypes';
import { MAILBOX_TRUST_SYSTEM, MAILBOX_VERIFIED_SOURCE } from '@gw/fhir';
import type { Principal } from './access.policy';
import { hasVerifiedMailbox, mssanteTelecoms, withMailboxTrust } from './mailbox-trust';

const TYPE = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type';
const VERIFIED = { system: MAILBOX_TRUST_SYSTEM, code: MAILBOX_VERIFIED_SOURCE };
const client: Principal = { clientId: 'c', organization: 'Organization/b', admin: false, scopes: [] };
const operator: Principal = { ...client, admin: true };

function practitioner(address?: string, extra: Partial<Practitioner> = {}): Practitioner {
  return {
    resourceType: 'Practitioner',
    telecom: address ? [{ system: 'email', value: address }] : undefined,
    ...extra,
  };
}

describe('mailbox trust tag', () => {
  it('reads MSSanté telecoms: typed MSSANTE or an mssante.fr domain, other e-mails ignored', () => {
    expect(mssanteTelecoms(practitioner('dr@x.mssante.fr'))).not.toBe('');
    expect(mssanteTelecoms(practitioner('dr@gmail.com'))).toBe('');
    const typed = practitioner(undefined, {
      telecom: [{ system: 'email', value: 'dr@x.fr', extension: [{ url: TYPE, valueCoding: { code: 'MSSANTE' } }] }],
    });
    expect(mssanteTelecoms(typed)).not.toBe('');
  });

  it('tags an MSSanté telecom written by an operator; never a client’s, whose own tag is dropped', () => {
    expect(withMailboxTrust([], practitioner('dr@x.mssante.fr'), operator)).toEqual([VERIFIED]);
    expect(withMailboxTrust([VERIFIED], practitioner('dr@x.mssante.fr'), client)).toEqual([]);
    expect(withMailboxTrust([VERIFIED], practitioner(), operator)).toEqual([]);
    expect(withMailboxTrust([VERIFIED], { resourceType: 'Patient' }, operator)).toEqual([]);
    const org = {
      resourceType: 'Organization' as const,
      telecom: [{ system: 'email' as const, value: 'a@b.mssante.fr' }],
    };
    expect(withMailboxTrust([], org, operator)).toEqual([VERIFIED]);
  });

  it('keeps the tag on a later client write only while the MSSanté telecoms are unchanged', () => {
    const previous = JSON.stringify({ ...practitioner('dr@x.mssante.fr'), meta: { tag: [VERIFIED] } });
    const renamed = practitioner('DR@x.mssante.fr', { name: [{ family: 'X' }] });
    expect(withMailboxTrust([], renamed, client, previous)).toEqual([VERIFIED]);
    expect(withMailboxTrust([], practitioner('attacker@b.mssante.fr'), client, previous)).toEqual([]);
    const added = practitioner(undefined, {
      telecom: [
        { system: 'email', value: 'dr@x.mssante.fr' },
        { system: 'email', value: 'attacker@b.mssante.fr' },
      ],
    });
    expect(withMailboxTrust([], added, client, previous)).toEqual([]);
    expect(withMailboxTrust([], renamed, client, JSON.stringify(practitioner('dr@x.mssante.fr')))).toEqual([]);
  });

  it('says whether a resource carries the tag', () => {
    expect(hasVerifiedMailbox({ ...practitioner(), meta: { tag: [VERIFIED] } })).toBe(true);
    expect(hasVerifiedMailbox(practitioner())).toBe(false);
  });
});
