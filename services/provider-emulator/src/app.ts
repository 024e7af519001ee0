/**
 * buildApp(deps): the emulator's HTTP behaviour as a Fastify instance (never listens; the
 * library's startEmulator does). Routes are registered by hand so every path can be grepped:
 *
 *   POST /2010-04-01/Accounts/:AccountSid/Messages.json      Twilio create      (twilio.ts)
 *   GET  /2010-04-01/Accounts/:AccountSid/Messages/:Sid.json  Twilio fetch
 *   GET  /2010-04-01/Accounts/:AccountSid/Messages.json      Twilio list
 *   POST /v3/mail/send                                       SendGrid send      (sendgrid.ts)
 *   POST /_emulator/twilio/inbound                           play an inbound SMS
 *   GET|DELETE /_emulator/messages|emails|inbound            records
 *   GET|POST|DELETE /_emulator/faults                        fault injection
 *   GET /_emulator/info, GET /healthz
 *
 * The admin routes are unauthenticated: the emulator is a development and test tool that must
 * never be exposed beyond the machine or cluster running Hatch's tests.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import formbody from '@fastify/formbody';
import type { Logger } from '@hatch/log';
import { FaultError, parseFaultSpec, type FaultStore, type Provider } from './faults.js';
import { registerSendGrid, type SendGridContext, type SendGridState } from './sendgrid.js';
import { sendgridErrors } from './sendgrid-errors.js';
import { registerTwilio, type TwilioContext, type TwilioHandle } from './twilio.js';
import { twilioError } from './twilio-errors.js';
import type { TwilioState } from './twilio-resource.js';

export interface AppDeps {
  log: Logger;
  faults: FaultStore;
  twilio: { ctx: TwilioContext; state: TwilioState };
  sendgrid: { ctx: SendGridContext; state: SendGridState };
}

export interface App {
  app: FastifyInstance;
  twilio: TwilioHandle;
}

type Query = Record<string, string | undefined>;

function boolFilter(v: string | undefined): boolean | undefined {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  return undefined;
}

function isProvider(v: unknown): v is Provider {
  return v === 'twilio' || v === 'sendgrid';
}

export async function buildApp(deps: AppDeps): Promise<App> {
  const app = Fastify({
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- sets Fastify's logger type parameter: without it the app is no plain FastifyInstance
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    // Per-request logs would cost more than the requests themselves under `pnpm bench`;
    // handlers log what matters at debug, faults and failed webhooks at warn.
    logController: new LogController({ disableRequestLogging: true }),
    // Keep-alive sockets (SDK agents) must not hold stop() open.
    forceCloseConnections: true,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
  });

  // Framework-level failures (unparsable body, too large, wrong content type) answer in the
  // shape of the API that was called, so SDKs raise their own error types for them too.
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err, path: req.url.split('?')[0] }, 'emulator error');
    const message = status >= 500 ? 'internal error' : err.message;
    if (req.url.startsWith('/v3/')) return reply.code(status).send(sendgridErrors([null, status === 413 ? 'Payload Too Large' : message]));
    if (req.url.startsWith('/2010-04-01/')) return reply.code(status).send(twilioError(status === 413 ? 21617 : 20001, status, message));
    return reply.code(status).send({ error: message });
  });

  // An API the emulator does not implement answers a provider-shaped 404, so an SDK caller gets
  // the SDK's own error (RestException / ResponseError) naming the path, not a parse failure.
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? req.url;
    if (req.url.startsWith('/v3/'))
      return reply.code(404).send(sendgridErrors([null, `not implemented by the emulator: ${req.method} ${path}`]));
    if (req.url.startsWith('/2010-04-01/'))
      return reply.code(404).send(twilioError(20404, 404, `The requested resource ${path} was not found`));
    return reply.code(404).send({ error: `no route ${req.method} ${path}` });
  });

  // Twilio's API and webhooks are form-encoded; SendGrid and the admin API are JSON.
  await app.register(formbody, { bodyLimit: 1024 * 1024 });

  const twilio = registerTwilio(app, deps.twilio.ctx, deps.twilio.state);
  registerSendGrid(app, deps.sendgrid.ctx, deps.sendgrid.state);

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/_emulator/info', async () => ({
    twilio: {
      accountSid: deps.twilio.ctx.settings.accountSid,
      phoneNumber: deps.twilio.ctx.settings.phoneNumber,
      inboundUrl: deps.twilio.ctx.settings.inboundUrl,
    },
    sendgrid: {
      webhookUrl: deps.sendgrid.ctx.settings.webhookUrl,
      publicKeyBase64: deps.sendgrid.ctx.signer.publicKeyBase64,
      publicKeyPem: deps.sendgrid.ctx.signer.publicKeyPem,
    },
    callbackDelayMs: deps.twilio.ctx.callbackDelayMs,
  }));

  // ---- records ---------------------------------------------------------------------------
  app.get<{ Querystring: Query }>('/_emulator/messages', async (req) => {
    const { to, sid } = req.query;
    const accepted = boolFilter(req.query.accepted);
    const log = deps.twilio.state.messages;
    const messages = log
      .list()
      .filter(
        (m) =>
          (to === undefined || m.to === to) && (sid === undefined || m.sid === sid) && (accepted === undefined || m.accepted === accepted),
      );
    return { messages, evicted: log.evicted };
  });
  app.delete('/_emulator/messages', async (_req, reply) => {
    deps.twilio.state.messages.clear();
    return reply.code(204).send();
  });

  app.get<{ Querystring: Query }>('/_emulator/emails', async (req) => {
    const to = req.query.to?.toLowerCase();
    const { messageId } = req.query;
    const accepted = boolFilter(req.query.accepted);
    const log = deps.sendgrid.state.emails;
    const emails = log
      .list()
      .filter(
        (e) =>
          (to === undefined || e.recipients.some((r) => r.toLowerCase() === to)) &&
          (messageId === undefined || e.messageId === messageId) &&
          (accepted === undefined || e.accepted === accepted),
      );
    return { emails, evicted: log.evicted };
  });
  app.delete('/_emulator/emails', async (_req, reply) => {
    deps.sendgrid.state.emails.clear();
    return reply.code(204).send();
  });

  app.get('/_emulator/inbound', async () => ({ inbound: deps.twilio.state.inbound.list(), evicted: deps.twilio.state.inbound.evicted }));
  app.delete('/_emulator/inbound', async (_req, reply) => {
    deps.twilio.state.inbound.clear();
    return reply.code(204).send();
  });

  // ---- faults ----------------------------------------------------------------------------
  app.get<{ Querystring: Query }>('/_emulator/faults', async (req) => {
    const p = req.query.provider;
    return { faults: deps.faults.list(isProvider(p) ? p : undefined) };
  });
  // One fault object or an array of them; all are checked before any is added.
  app.post('/_emulator/faults', async (req, reply) => {
    const input: unknown[] = Array.isArray(req.body) ? req.body : [req.body];
    try {
      const specs = input.map((f, i) => {
        try {
          return parseFaultSpec(f);
        } catch (err) {
          if (err instanceof FaultError && input.length > 1) throw new FaultError(err.problems.map((p) => `[${i}] ${p}`));
          throw err;
        }
      });
      const added = specs.map((s) => deps.faults.add(s));
      deps.log.info(
        { faults: added.map((f) => ({ id: f.id, provider: f.provider, kind: f.kind, count: f.count, match: f.match })) },
        'faults added',
      );
      return reply.code(201).send({ faults: added });
    } catch (err) {
      if (err instanceof FaultError) return reply.code(400).send({ error: 'invalid fault', problems: err.problems });
      throw err;
    }
  });
  app.delete<{ Querystring: Query }>('/_emulator/faults', async (req, reply) => {
    const p = req.query.provider;
    if (p !== undefined && !isProvider(p)) return reply.code(400).send({ error: 'provider must be twilio or sendgrid' });
    deps.faults.reset(p);
    deps.log.info({ provider: p ?? 'all' }, 'faults reset');
    return reply.code(204).send();
  });

  return { app, twilio };
}
