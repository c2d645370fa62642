import type { Hl7Message } from '@medplum/core';
import { Hl7Message as Message } from '@medplum/core';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { adt, ackCode, createOrganization, registerSource, sendMllp, uniqueId } from '../support/hl7';
import { PgProcess } from '../support/pg-process';
import { freePort } from '../support/ports';
import { killAll } from '../support/process';

const APP = 'GAM';
const FACILITY = 'CHU-DOWN';

function a28(ipp: string, controlId: string): string {
  return adt('A28', {
    app: APP,
    facility: FACILITY,
    controlId,
    patient: { ipp, birthName: 'PANNE', birthGivens: ['LUCIE'], birthDate: '19700101', sex: 'F' },
  });
}

/** ERR-3 code and ERR-8 text of an ACK. */
function errOf(ack: Hl7Message): { code?: string; text?: string } {
  const err = ack.getSegment('ERR');
  return { code: err?.getField(3)?.getComponent(1), text: err?.getField(8)?.toString() };
}

describe('HL7 v2 while the database is down', () => {
  let pg: PgProcess;
  let gw: TestGateway;
  let token: string;

  beforeAll(async () => {
    pg = new PgProcess(await freePort());
    await pg.start();
    gw = await startTestGateway({ GW_DATABASE_URL: pg.url });
    const org = await createOrganization(gw, 'CHU en panne');
    await registerSource(gw, {
      sendingApplication: APP,
      sendingFacility: FACILITY,
      organization: `Organization/${org}`,
    });
    token = await gw.token();
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await pg?.dispose();
    await killAll();
  });

  async function postHl7(er7: string): Promise<Hl7Message> {
    const res = await fetch(`${gw.baseUrl}/hl7v2`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'x-application/hl7-v2+er7' },
      body: er7,
    });
    expect(res.status).toBe(200);
    return Message.parse(await res.text());
  }

  it('answers AR (temporary, send again) over MLLP and HTTP, records nothing, then AA once it is back', async () => {
    const ipp = uniqueId('DOWN');
    const before = await sendMllp(gw.mllpPort, a28(uniqueId('UP'), uniqueId('UP')));
    expect(ackCode(before)).toBe('AA');

    await pg.stop();
    // Past the client-status cache's 2 s: the HTTP request below cannot re-read its client from
    // the registry, and must still get the HL7 answer (AR), not an authentication error.
    await new Promise((r) => setTimeout(r, 2500));
    const controlId = uniqueId('MSG');
    const message = a28(ipp, controlId);
    const overMllp = await sendMllp(gw.mllpPort, message);
    expect(ackCode(overMllp)).toBe('AR');
    expect(overMllp.getSegment('MSA')?.getField(2)?.toString()).toBe(controlId);
    expect(errOf(overMllp)).toEqual({
      code: '207',
      text: expect.stringMatching(/temporarily unavailable.*send the message again/i) as string,
    });
    const overHttp = await postHl7(message);
    expect(ackCode(overHttp)).toBe('AR');
    expect(errOf(overHttp).code).toBe('207');
    expect(gw.logs.join('')).toMatch(/hl7 message not processed: database unavailable/);

    await pg.start();
    let again: Hl7Message | undefined;
    for (let i = 0; i < 50 && (!again || ackCode(again) !== 'AA'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      again = await sendMllp(gw.mllpPort, message);
    }
    // The resend is processed (not answered as a duplicate of a half-recorded first try).
    expect(again && ackCode(again)).toBe('AA');
    const ledger = await gw.core.db.pool.query(
      `SELECT status FROM hl7_message WHERE source_key = $1 AND control_id = $2`,
      [`${APP}|${FACILITY}`, controlId],
    );
    expect(ledger.rows).toEqual([{ status: 'processed' }]);
  }, 120_000);
});
