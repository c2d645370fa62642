import { buildMdn, MdnFormatError, parseMdn } from './mdn.parser';

const BASE = {
  from: 'dr.martin@medecin.mssante.fr',
  to: 'passerelle@ch-test.mssante.fr',
  originalMessageId: '<xdm-123@gateway.example>',
  finalRecipient: 'dr.martin@medecin.mssante.fr',
  date: new Date('2026-11-20T10:00:00Z'),
};

describe('buildMdn / parseMdn', () => {
  it('round-trips a processed MDN', async () => {
    const raw = buildMdn({ ...BASE, disposition: 'processed' });
    expect(raw).toMatch(/\r\n/);
    expect(raw.replace(/\r\n/g, '')).not.toMatch(/\n/);
    expect(raw).toContain('Content-Type: multipart/report; report-type=disposition-notification;');
    await expect(parseMdn(raw)).resolves.toEqual({
      originalMessageId: '<xdm-123@gateway.example>',
      finalRecipient: 'dr.martin@medecin.mssante.fr',
      disposition: 'processed',
    });
  });

  it('round-trips a processed/error MDN with its Error field', async () => {
    const raw = buildMdn({ ...BASE, disposition: 'processed/error', error: 'Document illisible' });
    await expect(parseMdn(Buffer.from(raw))).resolves.toEqual({
      originalMessageId: '<xdm-123@gateway.example>',
      finalRecipient: 'dr.martin@medecin.mssante.fr',
      disposition: 'processed',
      error: 'Document illisible',
    });
  });

  it('reports the /error modifier when there is no Error field', async () => {
    const report = await parseMdn(buildMdn({ ...BASE, originalMessageId: 'bare@id', disposition: 'processed/error' }));
    expect(report.originalMessageId).toBe('<bare@id>');
    expect(report.error).toMatch(/processed\/error/);
  });

  it('reads the legacy RFC 3798 failed disposition', async () => {
    const raw = buildMdn({ ...BASE, disposition: 'processed' }).replace('; processed', '; failed');
    await expect(parseMdn(raw)).resolves.toMatchObject({
      disposition: 'failed',
      error: expect.stringMatching(/failed/),
    });
  });

  it('falls back to a report sent as inline text', async () => {
    const raw = buildMdn({ ...BASE, disposition: 'displayed' }).replace(
      'Content-Type: message/disposition-notification',
      'Content-Type: text/plain; charset=us-ascii',
    );
    await expect(parseMdn(raw)).resolves.toMatchObject({
      originalMessageId: '<xdm-123@gateway.example>',
      disposition: 'displayed',
    });
  });

  it('throws MdnFormatError on an ordinary e-mail', async () => {
    const mail = [
      'From: a@example.org',
      'To: b@example.org',
      'Subject: Bonjour',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Rien à signaler.',
      '',
    ].join('\r\n');
    await expect(parseMdn(mail)).rejects.toBeInstanceOf(MdnFormatError);
    await expect(parseMdn(mail)).rejects.toThrow('not an MDN: no message/disposition-notification part');
  });

  it('throws MdnFormatError when Original-Message-ID is missing', async () => {
    const raw = buildMdn({ ...BASE, disposition: 'processed' }).replace(/Original-Message-ID: .*\r\n/, '');
    await expect(parseMdn(raw)).rejects.toThrow(new MdnFormatError('MDN without Original-Message-ID'));
  });

  it('refuses header values with line breaks', () => {
    expect(() => buildMdn({ ...BASE, to: 'x@example.org\r\nBcc: y@example.org', disposition: 'processed' })).toThrow(
      TypeError,
    );
  });
});
