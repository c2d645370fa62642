import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { freePort } from './ports';

export const DOVECOT_BIN = process.env.GW_TEST_DOVECOT ?? '/usr/sbin/dovecot';

export interface MailUser {
  user: string;
  password: string;
}

/** A message as the test reads it back from the server. */
export interface StoredMessage {
  uid: number;
  flags: Set<string>;
  messageId?: string;
}

/**
 * A real Debian dovecot (IMAP only, plain text on loopback, no SSL) started as a child process
 * with its whole configuration in a temporary directory: passwd-file users, maildirs under the
 * same directory. Run as root (our CI), dovecot refuses to run its login and mail processes as
 * root, so they run as `nobody`, who then owns the maildirs; otherwise everything runs as the
 * current user.
 */
export class TestDovecot {
  private child?: ChildProcess;

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async start(users: MailUser[]): Promise<TestDovecot> {
    const dir = mkdtempSync(join(tmpdir(), 'gw-dovecot-'));
    // The unprivileged login process must reach the sockets under base_dir.
    chmodSync(dir, 0o755);
    const port = await freePort();
    const server = new TestDovecot(dir, port);
    const account = runAs();
    const mail = join(dir, 'mail');
    mkdirSync(mail);
    if (account.chown) {
      chownSync(mail, account.uid, account.gid);
    }
    writeFileSync(join(dir, 'passwd'), users.map((u) => `${u.user}:{PLAIN}${u.password}\n`).join(''), { mode: 0o600 });
    writeFileSync(join(dir, 'dovecot.conf'), config(dir, port, account));
    const check = spawnSync(DOVECOT_BIN, ['-c', join(dir, 'dovecot.conf'), '-n'], { encoding: 'utf8' });
    if (check.status !== 0) {
      throw new Error(`dovecot configuration refused: ${check.stderr}`);
    }
    server.child = spawn(DOVECOT_BIN, ['-F', '-c', join(dir, 'dovecot.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    await server.ready();
    return server;
  }

  get url(): string {
    return `imap://127.0.0.1:${this.port}`;
  }

  /** dovecot's own log (login failures, refused settings): for a failing test's message. */
  log(): string {
    const path = join(this.dir, 'dovecot.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  /** A connected IMAP client for a user (close it with logout()). */
  async client(u: MailUser): Promise<ImapFlow> {
    const c = new ImapFlow({
      host: '127.0.0.1',
      port: this.port,
      secure: false,
      auth: { user: u.user, pass: u.password },
      logger: false,
    });
    await c.connect();
    return c;
  }

  /** Delivers a message into a user's folder by IMAP APPEND; returns its UID. */
  async append(u: MailUser, raw: Buffer | string, folder = 'INBOX'): Promise<number> {
    const c = await this.client(u);
    try {
      const res = await c.append(folder, raw);
      if (!res || res.uid === undefined) {
        throw new Error('APPEND returned no UID');
      }
      return res.uid;
    } finally {
      await c.logout();
    }
  }

  /** The messages of a folder, with their flags and Message-ID (an absent folder: none). */
  async messages(u: MailUser, folder = 'INBOX'): Promise<StoredMessage[]> {
    const c = await this.client(u);
    try {
      if (!(await c.list()).some((m) => m.path === folder)) {
        return [];
      }
      const lock = await c.getMailboxLock(folder);
      try {
        const out: StoredMessage[] = [];
        if ((c.mailbox && c.mailbox.exists) === 0) {
          return out;
        }
        for await (const m of c.fetch('1:*', { uid: true, flags: true, envelope: true })) {
          out.push({ uid: m.uid, flags: m.flags ?? new Set(), messageId: m.envelope?.messageId });
        }
        return out;
      } finally {
        lock.release();
      }
    } finally {
      await c.logout();
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Resolves once the IMAP port accepts connections; throws with dovecot's log if it exits. */
  private async ready(): Promise<void> {
    const deadline = Date.now() + 15_000;
    let output = '';
    this.child?.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    while (Date.now() < deadline) {
      if (this.child?.exitCode !== null) {
        throw new Error(`dovecot exited at start: ${output}\n${this.log()}`);
      }
      if (await accepts(this.port)) {
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.stop();
    throw new Error(`dovecot did not listen on ${this.port}: ${output}\n${this.log()}`);
  }
}

interface Account {
  user: string;
  group: string;
  uid: number;
  gid: number;
  /** The maildir root must be given to the mail user (running as root). */
  chown: boolean;
}

function runAs(): Account {
  const me = userInfo();
  if (me.uid !== 0) {
    const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
    return { user: me.username, group, uid: me.uid, gid: me.gid, chown: false };
  }
  const entry = spawnSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).stdout.trim().split(':');
  const uid = Number(entry[2] ?? 65534);
  const gid = Number(entry[3] ?? 65534);
  const group = spawnSync('getent', ['group', String(gid)], { encoding: 'utf8' }).stdout.split(':')[0] || 'nogroup';
  return { user: 'nobody', group, uid, gid, chown: true };
}

function config(dir: string, port: number, a: Account): string {
  const me = userInfo();
  return `# Written by test/support/dovecot.ts
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
instance_name = gw-test-${port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = ${me.uid === 0 ? 'root' : me.username}
default_internal_group = ${me.uid === 0 ? 'root' : a.group}
default_login_user = ${a.user}
first_valid_uid = ${Math.min(a.uid, 1)}
first_valid_gid = 0
mail_location = maildir:${dir}/mail/%u
mail_uid = ${a.uid}
mail_gid = ${a.gid}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=${a.uid} gid=${a.gid} home=${dir}/mail/%u
}
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** What {@link composeMail} puts in a test message. */
export interface ComposeOptions {
  from: string;
  to: string;
  messageId: string;
  subject?: string;
  /** Attachments (an IHE_XDM.ZIP, a readable PDF…). */
  attachments?: { filename: string; content: Buffer; contentType?: string }[];
  /** Asks for an MDN (Disposition-Notification-To) at this address. */
  mdnTo?: string;
  text?: string;
}

/** A raw RFC 5322 message as an MSSanté client sends it (nodemailer's composer). */
export async function composeMail(o: ComposeOptions): Promise<Buffer> {
  const { default: MailComposer } = await import('nodemailer/lib/mail-composer');
  const mail = new MailComposer({
    from: o.from,
    to: o.to,
    subject: o.subject ?? 'XDM/1.0/DDM+Document',
    messageId: o.messageId,
    text: o.text ?? 'Document joint au format IHE XDM.',
    headers: o.mdnTo ? { 'Disposition-Notification-To': o.mdnTo } : {},
    attachments: o.attachments ?? [],
  });
  return mail.compile().build();
}
