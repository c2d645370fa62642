import type { DischargeNoticeFacts } from './discharge-notice';
import { buildDischargeNotice } from './discharge-notice';

const BASE: DischargeNoticeFacts = {
  patient: {
    family: 'Dupont',
    given: 'Marie',
    birthDate: '1981-05-14',
    ins: { value: '281057512345678', qualified: true },
  },
  facility: { name: 'CH de Test', finess: '750000001' },
  unit: 'Cardiologie',
  admittedAt: '2026-11-18T07:00:00Z',
  dischargedAt: new Date('2026-11-20T09:00:00Z'),
  dischargeMode: 'home',
  gp: { name: 'Dr Paul MARTIN', rpps: '10001234567' },
  followUpDueAt: '2026-11-27',
};

function text(facts: DischargeNoticeFacts): string {
  return buildDischargeNotice(facts).text.toString('utf8');
}

describe('buildDischargeNotice', () => {
  it('writes the patient, the stay in Europe/Paris time and the follow-up due date', () => {
    const t = text(BASE);
    expect(t).toContain("NOTIFICATION DE SORTIE D'HOSPITALISATION");
    expect(t).toContain('Patient : DUPONT Marie');
    expect(t).toContain('Date de naissance : 14/05/1981');
    expect(t).toContain('INS (identité qualifiée) : 281057512345678');
    expect(t).toContain('Établissement : CH de Test (FINESS 750000001)');
    expect(t).toContain('Unité : Cardiologie');
    expect(t).toContain("Date d'entrée : 18/11/2026 08:00");
    expect(t).toContain('Date de sortie : 20/11/2026 10:00');
    expect(t).toContain('Mode de sortie : retour à domicile');
    expect(t).toContain('Médecin traitant : Dr Paul MARTIN (RPPS 10001234567)');
    expect(t).toContain('Suivi à organiser avant le 27/11/2026');
    expect(t).toMatch(/contacter le patient/);
  });

  it('ends with a structured key: value summary', () => {
    const t = text(BASE);
    const summary = t.slice(t.indexOf('--- Résumé structuré ---')).trim().split('\r\n').slice(1);
    expect(summary).toEqual([
      'type: notification-sortie',
      'etablissement-finess: 750000001',
      'unite: Cardiologie',
      'date-entree: 2026-11-18T08:00:00+01:00',
      'date-sortie: 2026-11-20T10:00:00+01:00',
      'mode-sortie: home',
      'medecin-traitant-rpps: 10001234567',
      'suivi-avant: 2026-11-27',
      'ins: 281057512345678',
    ]);
  });

  it('uses the summer offset of Europe/Paris', () => {
    const t = text({ ...BASE, dischargedAt: '2026-07-01T08:30:00Z' });
    expect(t).toContain('Date de sortie : 01/07/2026 10:30');
    expect(t).toContain('date-sortie: 2026-07-01T10:30:00+02:00');
  });

  it('names the receiving establishment of a transfer', () => {
    expect(
      text({ ...BASE, dischargeMode: 'transfer', transferFiness: '690000002', destination: 'SSR Les Tilleuls' }),
    ).toMatch(/Mode de sortie : transfert vers l'établissement FINESS 690000002\r\nDestination : SSR Les Tilleuls/);
  });

  it('does not ask to contact the patient after a death, nor set a follow-up date', () => {
    const t = text({ ...BASE, dischargeMode: 'death' });
    expect(t).toContain('Mode de sortie : décès');
    expect(t).not.toMatch(/contact|appeler|rappeler|joindre|suivi à organiser|27\/11\/2026|suivi-avant/i);
  });

  it('leaves out an INS that is not qualified', () => {
    const t = text({ ...BASE, patient: { ...BASE.patient, ins: { value: '281057512345678', qualified: false } } });
    expect(t).not.toContain('281057512345678');
  });

  it('titles the notice with the discharge date and no patient data', () => {
    expect(buildDischargeNotice(BASE).title).toBe("Notification de sortie d'hospitalisation du 20/11/2026");
  });
});
