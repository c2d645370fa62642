import { buildMdn } from '@gw/exchange';
import { composeMail } from '@gw/testing/dovecot';
import { readInboundMail } from './inbound-mail.reader';

const zip = Buffer.from('PK\u0003\u0004 not really a zip');

describe('readInboundMail', () => {
  it('takes the IHE_XDM.ZIP attachment, the Message-ID and the MDN request, not the readable copy', async () => {
    const raw = await composeMail({
      from: 'dr.martin@medecin.mssante.fr',
      to: 'msp@msp.mssante.fr',
      messageId: '<abc-1@medecin.mssante.fr>',
      mdnTo: 'Dr Martin <dr.martin@medecin.mssante.fr>',
      attachments: [
        { filename: 'IHE_XDM.ZIP', content: zip, contentType: 'application/zip' },
        { filename: 'compte-rendu.pdf', content: Buffer.from('%PDF-1.4'), contentType: 'application/pdf' },
      ],
    });
    const mail = await readInboundMail(raw);
    expect(mail.messageId).toBe('<abc-1@medecin.mssante.fr>');
    expect(mail.dispositionNotificationTo).toBe('dr.martin@medecin.mssante.fr');
    expect(mail.isMdn).toBe(false);
    expect(mail.xdm).toHaveLength(1);
    expect(mail.xdm[0]!.equals(zip)).toBe(true);
  });

  it('accepts a renamed package and ignores a zip that does not say XDM', async () => {
    const raw = await composeMail({
      from: 'a@x.mssante.fr',
      to: 'b@y.mssante.fr',
      messageId: '<abc-2@x>',
      attachments: [
        { filename: 'ihe_xdm(1).zip', content: zip },
        { filename: 'photos.zip', content: zip, contentType: 'application/zip' },
      ],
    });
    const mail = await readInboundMail(raw);
    expect(mail.xdm).toHaveLength(1);
    expect(mail.dispositionNotificationTo).toBeUndefined();
  });

  it('recognises a disposition notification (never answered, never imported)', async () => {
    const raw = buildMdn({
      from: 'b@y.mssante.fr',
      to: 'gw@gw.mssante.fr',
      originalMessageId: '<d1@gw.mssante.fr>',
      finalRecipient: 'b@y.mssante.fr',
      disposition: 'processed',
    });
    const mail = await readInboundMail(Buffer.from(raw));
    expect(mail.isMdn).toBe(true);
    expect(mail.xdm).toEqual([]);
  });
});
