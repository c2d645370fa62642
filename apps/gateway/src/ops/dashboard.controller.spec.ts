import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
import type { GatewayCore } from '../core';
import { DashboardController } from './dashboard.controller';

/** A reply that records what the controller sent. */
function fakeReply(): {
  reply: FastifyReply;
  sent: { status?: number; headers: Record<string, string>; body?: unknown };
} {
  const sent: { status?: number; headers: Record<string, string>; body?: unknown } = { headers: {} };
  const reply = {
    status(code: number) {
      sent.status = code;
      return reply;
    },
    header(name: string, value: string) {
      sent.headers[name] = value;
      return reply;
    },
    send(body?: unknown) {
      sent.body = body;
      return reply;
    },
  };
  return { reply: reply as unknown as FastifyReply, sent };
}

const controller = (enabled: boolean): DashboardController =>
  new DashboardController({ config: { GW_DASHBOARD_ENABLED: enabled } } as unknown as GatewayCore);

describe('DashboardController', () => {
  it("redirects /dashboard to /dashboard/ so that the page's relative links resolve", () => {
    const { reply, sent } = fakeReply();
    controller(true).index({ url: '/dashboard?x=1' } as FastifyRequest, reply);
    expect(sent).toMatchObject({ status: 302, headers: { location: 'dashboard/' } });
  });

  it('serves the page with a content security policy, and chart.js from node_modules', () => {
    const page = fakeReply();
    controller(true).index({ url: '/dashboard/' } as FastifyRequest, page.reply);
    expect(page.sent.status).toBe(200);
    expect(page.sent.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.sent.headers['content-security-policy']).toContain("default-src 'self'");
    const chart = fakeReply();
    controller(true).chart(chart.reply);
    expect(String(chart.sent.body)).toContain('Chart');
  });

  it('serves only its own files, and nothing when disabled', () => {
    for (const name of ['tsconfig.json', 'globals.d.ts', '..%2Fsrc%2Fmain.ts']) {
      expect(() => controller(true).file(name, fakeReply().reply)).toThrow(GatewayError);
    }
    expect(() => controller(false).file('dashboard.js', fakeReply().reply)).toThrow(GatewayError);
    expect(() => controller(false).index({ url: '/dashboard' } as FastifyRequest, fakeReply().reply)).toThrow(
      GatewayError,
    );
  });
});
