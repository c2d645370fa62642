import { ConfigError, inboxName, loadConfig } from './config';

describe('GW_MSS_INBOXES', () => {
  const inbox = {
    url: 'imaps://imap.msp.mssante.fr:993',
    user: 'secretariat@msp.mssante.fr',
    passwordFile: '/run/secrets/imap',
    organization: 'Organization/msp-1',
  };

  it('reads a list of mailboxes with their defaults and names them user@host/folder', () => {
    const [m] = loadConfig({ GW_MSS_INBOXES: JSON.stringify([inbox]) }).GW_MSS_INBOXES;
    expect(m).toMatchObject({ folder: 'INBOX', quarantine: 'Quarantaine', pollSeconds: 60, insecure: false });
    expect(inboxName(m!)).toBe('secretariat@msp.mssante.fr@imap.msp.mssante.fr:993/INBOX');
    expect(loadConfig({}).GW_MSS_INBOXES).toEqual([]);
  });

  it('refuses a mailbox with both secrets or none, naming the field and never echoing a password', () => {
    const both = { ...inbox, password: 'hunter2-secret' };
    expect(() => loadConfig({ GW_MSS_INBOXES: JSON.stringify([both]) })).toThrow(ConfigError);
    const message = ((): string => {
      try {
        loadConfig({ GW_MSS_INBOXES: JSON.stringify([both, { ...inbox, organization: 'Patient/1' }]) });
        return 'accepted';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(message).toContain('0: give exactly one of password and passwordFile');
    expect(message).toContain('1.organization: expected Organization/<id>');
    expect(message).not.toContain('hunter2');
    const neither = { url: inbox.url, user: inbox.user, organization: inbox.organization };
    expect(() => loadConfig({ GW_MSS_INBOXES: JSON.stringify([neither]) })).toThrow(/exactly one of password/);
  });

  it('refuses two mailboxes with one name, and text that is not JSON', () => {
    expect(() => loadConfig({ GW_MSS_INBOXES: JSON.stringify([inbox, inbox]) })).toThrow(/same name/);
    expect(() => loadConfig({ GW_MSS_INBOXES: '[{' })).toThrow(/GW_MSS_INBOXES/);
  });
});
