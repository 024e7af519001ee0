/**
 * build(deps): the gateway's behaviour as a Fastify instance (never listens; main.ts does).
 * Routes are registered by hand so every path can be grepped.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import cookie from '@fastify/cookie';
import { natsNames } from '@hatch/contracts';
import type { Registry } from 'prom-client';
import type { Logger } from '@hatch/log';
import { purgeExpiredIdempotencyKeys, type Db } from '@hatch/db';
import type { Bus } from '@hatch/runtime';
import type { GatewayConfig } from './config.js';
import { registerErrorHandling } from './errors.js';
import { registerAuth, sessionSecret } from './auth.js';
import { typeboxValidatorCompiler } from './validation.js';
import { healthRoutes } from './routes/health.js';
import { loginRoute, logoutRoute } from './routes/session.js';
import { messageRoutes } from './routes/messages.js';
import { twilioWebhooks } from './webhooks/twilio.js';
import { emailRoutes } from './routes/emails.js';
import { sendgridWebhooks } from './webhooks/sendgrid.js';
import { registerIdempotency } from './idempotency.js';
import { HttpError, notFound } from './errors.js';
import { createSendBatcher, type SendBatcherOptions } from './send-batcher.js';
import { startOutboxRelay, type OutboxRelay, type OutboxRelayOptions } from './outbox-relay.js';
import { registerRealtime } from './realtime/index.js';
import type { RealtimeHub } from './realtime/hub.js';
import { webRoutes } from './web.js';

export interface GatewayDeps {
  config: GatewayConfig;
  log: Logger;
  db: Db;
  bus: Bus;
  registry: Registry;
}

export interface BuildOptions {
  outbox?: OutboxRelayOptions;
  sends?: SendBatcherOptions;
  /** the built web UI (default: web/dist of this checkout) */
  webRoot?: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    outbox: OutboxRelay;
  }
}

/** Request bodies above this are 413 (contract: 64 KiB; attachments get their own limit later). */
export const BODY_LIMIT_BYTES = 64 * 1024;

export async function build(deps: GatewayDeps, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    requestIdHeader: 'x-request-id',
  });
  app.setValidatorCompiler(typeboxValidatorCompiler);
  // JSON only: a text/plain body is 415, not parsed (contract), and a cross-site form cannot
  // post JSON without a CORS preflight, which keeps cookie-authenticated POSTs CSRF-safe.
  app.removeContentTypeParser('text/plain');
  registerErrorHandling(app);
  await app.register(helmet, { global: true, contentSecurityPolicy: false });
  // Signed cookies (the web UI's session); a malformed Cookie header parses to nothing, never a 5xx.
  await app.register(cookie, { secret: sessionSecret(deps.config.HATCH_API_TOKEN) });
  registerIdempotency(app, deps.db);
  const names = natsNames(deps.config.HATCH_NATS_PREFIX);
  const relay = startOutboxRelay({ db: deps.db, bus: deps.bus, names, log: deps.log, registry: deps.registry }, opts.outbox);
  app.decorate('outbox', relay);
  // Expired idempotency keys go in bounded batches (keys are kept 24 h).
  const purge = setInterval(() => {
    purgeExpiredIdempotencyKeys(deps.db.db).catch((err: unknown) => deps.log.warn({ err: { message: (err as Error).message } }, 'idempotency purge failed'));
  }, 10 * 60_000);
  purge.unref();
  app.addHook('onClose', async () => {
    clearInterval(purge);
    await relay.stop();
  });

  const session = { apiToken: deps.config.HATCH_API_TOKEN, secureCookies: deps.config.PUBLIC_URL.startsWith('https://') };
  const sends = createSendBatcher({ db: deps.db, log: deps.log, registry: deps.registry }, opts.sends);
  // Every /api route but the login lives in this one encapsulated plugin: its onRequest hook
  // authenticates and its rate limiter counts, for exactly the routes registered here, decided by
  // the route the router matched, never by the raw URL (SECURITY.md: `/%61pi/...` and absolute-form
  // targets reached the API routes while a URL-string test skipped authentication).
  let realtime!: RealtimeHub;
  await app.register(
    async (api) => {
      registerAuth(api, deps.config.HATCH_API_TOKEN);
      // Per credential (the principal auth found), per replica.
      await api.register(rateLimit, {
        global: true,
        hook: 'preHandler',
        max: deps.config.HATCH_RATE_LIMIT_PER_MINUTE,
        timeWindow: 60_000,
        keyGenerator: (req) => req.principal ?? req.ip,
        errorResponseBuilder: (_req, ctx) =>
          new HttpError('RATE_LIMITED', `rate limit of ${ctx.max} requests per minute exceeded; retry in ${Math.ceil(ctx.ttl / 1000)} s`, {
            headers: { 'retry-after': String(Math.ceil(ctx.ttl / 1000)) },
          }),
      });
      realtime = await registerRealtime(api, { db: deps.db, bus: deps.bus, log: deps.log, registry: deps.registry, names, config: deps.config });
      logoutRoute(api, session);
      messageRoutes(api, { db: deps.db, relay, sends, smsFrom: deps.config.TWILIO_PHONE_NUMBER, chatFrom: deps.config.HATCH_SENDER_NAME });
      emailRoutes(api, { db: deps.db, relay, fromEmail: deps.config.SENDGRID_FROM_EMAIL });
      // An unknown /api path is a route of this plugin too (more specific than the web UI's
      // `/*`), so it is authenticated first: 401, then 404. A not-found handler would not do:
      // the router hands such paths to the UI's catch-all, outside this plugin.
      api.all('/', notFound);
      api.all('/*', notFound);
    },
    { prefix: '/api' },
  );
  healthRoutes(app, {
    registry: deps.registry,
    checks: {
      database: async () => {
        await deps.db.sql`SELECT 1`;
      },
      nats: () => deps.bus.ping(),
      events: () => realtime.check(),
    },
    extra: () => ({ realtime: realtime.lagReport() }),
  });
  loginRoute(app, session);
  twilioWebhooks(app, { db: deps.db, log: deps.log, registry: deps.registry, publicUrl: deps.config.PUBLIC_URL, authToken: deps.config.TWILIO_AUTH_TOKEN });
  sendgridWebhooks(app, { db: deps.db, log: deps.log, registry: deps.registry, publicKey: deps.config.SENDGRID_WEBHOOK_PUBLIC_KEY });
  await webRoutes(app, { root: opts.webRoot ?? deps.config.HATCH_WEB_DIR });
  return app;
}
