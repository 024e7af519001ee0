/**
 * build(deps): the gateway's behaviour as a Fastify instance (never listens; main.ts does).
 * Routes are registered by hand so every path can be grepped.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type RouteOptions } from 'fastify';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import cookie from '@fastify/cookie';
import { natsNames } from '@hatch/contracts';
import type { Registry } from 'prom-client';
import type { Logger } from '@hatch/log';
import { purgeAuditEvents, purgeAuthFailures, purgeExpiredIdempotencyKeys, purgeExpiredSessions, type Db } from '@hatch/db';
import type { Bus } from '@hatch/bus';
import type { GatewayConfig } from './config.js';
import { clientErrorHandler, frameworkErrors, registerErrorHandling, retryLater } from './errors.js';
import { registerJsonBodyParser } from './json-body.js';
import { registerPipelineOrder } from './pipelining.js';
import { Authenticator, registerAuth } from './auth.js';
import { configuredScryptParams, createPasswordHasher } from './passwords.js';
import { startRevocations } from './revocations.js';
import { createAudit } from './audit.js';
import { createAuthFailureLimiter } from './auth-failures.js';
import { registerBodyBudget } from './body-budget.js';
import { typeboxValidatorCompiler } from './validation.js';
import { healthRoutes } from './routes/health.js';
import { loginRoute, sessionRoutes } from './routes/session.js';
import { tokenRoutes } from './routes/tokens.js';
import { acceptInviteRoute, userRoutes } from './routes/users.js';
import { auditRoutes } from './routes/audit.js';
import { messageRoutes } from './routes/messages.js';
import { registerWebhooks } from './webhooks/index.js';
import { emailRoutes } from './routes/emails.js';
import { registerIdempotency } from './idempotency.js';
import { notFound, rateLimitExceeded } from './errors.js';
import { createSendBatcher, type SendBatcherOptions } from './send-batcher.js';
import { startOutboxRelay, type OutboxRelay, type OutboxRelayOptions } from './outbox-relay.js';
import { registerRealtime } from './realtime/index.js';
import type { RealtimeHub } from './realtime/hub.js';
import { webRoutes } from './web.js';
import { openApiRoutes, registerOpenApi } from './openapi.js';

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
  /** sees every route as it is registered (test/openapi.test.ts: each one is in the OpenAPI document) */
  onRoute?: (route: RouteOptions) => void;
  /** the clock that decides session, token and invite expiry (tests move it instead of sleeping) */
  now?: () => number;
  /** how long a found session or token is believed without the database (default AUTH_CACHE_TTL_MS) */
  authCacheTtlMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    outbox: OutboxRelay;
  }
}

/** the failed-authentication window (issue 14: at most HATCH_AUTH_FAILURES_PER_MINUTE a minute) */
export const AUTH_FAILURE_WINDOW_MS = 60_000;

/** Request bodies above this are 413 (contract: 64 KiB; attachments get their own limit later). */
export const BODY_LIMIT_BYTES = 64 * 1024;

export async function build(deps: GatewayDeps, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- sets Fastify's logger type parameter: without it the app is no plain FastifyInstance
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // Requests that reach a closing gateway are answered by the draining hook below instead.
    return503OnClosing: false,
    requestIdHeader: 'x-request-id',
    // What Node's HTTP parser refuses (malformed request line or headers), and what fails before
    // routing (malformed percent-encoding), in the contract's error shape too.
    clientErrorHandler,
    frameworkErrors,
    // req.ip is the client behind exactly the configured proxies, never anyone's X-Forwarded-For.
    trustProxy: deps.config.trustProxy,
    // Slow clients (issue 14): headers, then the whole request, must arrive in time; an idle
    // keep-alive connection outlives the proxy's. The request timeout does not cut SSE streams:
    // their request is complete at once, and only the response goes on.
    requestTimeout: deps.config.HATCH_HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: deps.config.HATCH_HTTP_KEEPALIVE_TIMEOUT_MS,
    // Node's http.createServer options (HTTP/1), checked every second (Node's default: 30 s).
    // fastify passes `http` on at runtime, but its types only know it for HTTP/2: spread untyped.
    ...({ http: { headersTimeout: deps.config.HATCH_HTTP_HEADERS_TIMEOUT_MS, connectionsCheckingInterval: 1000 } } as object),
  });
  if (opts.onRoute) app.addHook('onRoute', opts.onRoute);
  app.setValidatorCompiler(typeboxValidatorCompiler);
  // JSON only: a text/plain body is 415, not parsed (contract), and a cross-site form cannot
  // post JSON without a CORS preflight, which keeps cookie-authenticated POSTs CSRF-safe.
  app.removeContentTypeParser('text/plain');
  // JSON strings must be valid Unicode (no lone surrogate escape): json-body.ts.
  registerJsonBodyParser(app);
  registerErrorHandling(app);
  // Pipelined requests run one after the other, never after an answer that closed the connection.
  registerPipelineOrder(app);
  registerDraining(app, deps.log);
  await app.register(helmet, { global: true, contentSecurityPolicy: false });
  // The web UI's session cookie (a random id: auth.ts); a malformed Cookie header parses to nothing, never a 5xx.
  await app.register(cookie);
  registerBodyBudget(app, deps, { maxBytes: deps.config.HATCH_BODY_BYTES_IN_FLIGHT_MAX, defaultBodyLimit: BODY_LIMIT_BYTES });
  registerIdempotency(app, deps.db);
  // Before any route: its onRoute hook collects them all for the OpenAPI document.
  await registerOpenApi(app);
  const failures = createAuthFailureLimiter(deps, { limit: deps.config.HATCH_AUTH_FAILURES_PER_MINUTE, windowMs: AUTH_FAILURE_WINDOW_MS });
  const names = natsNames(deps.config.HATCH_NATS_PREFIX);
  const hourMs = 3600_000;
  const auth = new Authenticator(deps, {
    apiToken: deps.config.HATCH_API_TOKEN,
    idleMs: deps.config.HATCH_SESSION_IDLE_HOURS * hourMs,
    absoluteMs: deps.config.HATCH_SESSION_MAX_DAYS * 24 * hourMs,
    now: opts.now,
    cacheTtlMs: opts.authCacheTtlMs,
  });
  app.decorate('accounts', auth);
  const revocations = startRevocations({ bus: deps.bus, names, log: deps.log });
  revocations.onRevoked((ev) => auth.forget(ev));
  const audit = createAudit(deps);
  const hasher = createPasswordHasher({
    concurrency: deps.config.HATCH_PASSWORD_HASH_CONCURRENCY,
    queueMax: deps.config.HATCH_PASSWORD_HASH_QUEUE_MAX,
    params: configuredScryptParams(deps.config),
  });
  const relay = startOutboxRelay(
    { db: deps.db, bus: deps.bus, names, log: deps.log, registry: deps.registry },
    { stalledAfterMs: deps.config.HATCH_OUTBOX_STALLED_AFTER_MS, ...opts.outbox },
  );
  app.decorate('outbox', relay);
  // Expired idempotency keys and stale failed-authentication logs go in bounded batches.
  const purge = setInterval(() => {
    purgeExpiredIdempotencyKeys(deps.db.db).catch((err: unknown) =>
      deps.log.warn({ err: { message: (err as Error).message } }, 'idempotency purge failed'),
    );
    purgeAuthFailures(deps.db.db, AUTH_FAILURE_WINDOW_MS).catch((err: unknown) =>
      deps.log.warn({ err: { message: (err as Error).message } }, 'auth failure purge failed'),
    );
    const now = auth.now();
    purgeExpiredSessions(deps.db.db, new Date(now), auth.opts.idleMs).catch((err: unknown) =>
      deps.log.warn({ err: { message: (err as Error).message } }, 'session purge failed'),
    );
    purgeAuditEvents(deps.db.db, new Date(now - deps.config.HATCH_AUDIT_RETENTION_DAYS * 24 * hourMs)).catch((err: unknown) =>
      deps.log.warn({ err: { message: (err as Error).message } }, 'audit purge failed'),
    );
  }, 10 * 60_000);
  purge.unref();
  app.addHook('onClose', async () => {
    clearInterval(purge);
    revocations.stop();
    await relay.stop();
  });

  const secureCookies = deps.config.PUBLIC_URL.startsWith('https://');
  const session = { db: deps.db, apiToken: deps.config.HATCH_API_TOKEN, secureCookies, failures, auth, hasher, revocations, audit };
  const people = {
    ...session,
    publicUrl: deps.config.PUBLIC_URL,
    inviteMs: deps.config.HATCH_INVITE_HOURS * hourMs,
  };
  const smsGuard = { allowedCountries: deps.config.smsAllowedCountries, dailyLimit: deps.config.HATCH_SMS_DAILY_LIMIT };
  const sends = createSendBatcher(
    { db: deps.db, log: deps.log, registry: deps.registry, accept: { smsDailyLimit: smsGuard.dailyLimit } },
    opts.sends,
  );
  // Every /api route but the login lives in this one encapsulated plugin: its onRequest hook
  // authenticates and its rate limiter counts, for exactly the routes registered here, decided by
  // the route the router matched, never by the raw URL (SECURITY.md: `/%61pi/...` and absolute-form
  // targets reached the API routes while a URL-string test skipped authentication).
  let realtime!: RealtimeHub;
  await app.register(
    async (api) => {
      registerAuth(api, auth, failures);
      // Marks every route of this plugin, so the OpenAPI document names its security (openapi.ts).
      api.addHook('onRoute', (route) => {
        route.config = { ...route.config, authenticated: true };
      });
      // Per credential (the principal auth found), per replica.
      await api.register(rateLimit, {
        global: true,
        hook: 'preHandler',
        max: deps.config.HATCH_RATE_LIMIT_PER_MINUTE,
        timeWindow: 60_000,
        keyGenerator: (req) => req.principal ?? req.ip,
        errorResponseBuilder: rateLimitExceeded,
      });
      realtime = await registerRealtime(api, {
        db: deps.db,
        bus: deps.bus,
        log: deps.log,
        registry: deps.registry,
        names,
        config: deps.config,
        revocations,
        credentials: { idleMs: auth.opts.idleMs, now: auth.now, onEnded: (c) => auth.forget({ ...c, user_id: null }) },
      });
      sessionRoutes(api, session);
      tokenRoutes(api, session);
      userRoutes(api, people);
      auditRoutes(api, deps);
      messageRoutes(api, {
        db: deps.db,
        relay,
        sends,
        smsFrom: deps.config.TWILIO_PHONE_NUMBER,
        chatFrom: deps.config.HATCH_SENDER_NAME,
        smsGuard,
        audit,
      });
      emailRoutes(api, { db: deps.db, relay, fromEmail: deps.config.SENDGRID_FROM_EMAIL, audit });
      await openApiRoutes(api);
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
  acceptInviteRoute(app, people);
  // Every /webhooks route, in its own plugin with its own per-address rate limiter.
  await registerWebhooks(app, { db: deps.db, log: deps.log, registry: deps.registry, config: deps.config });
  await webRoutes(app, { root: opts.webRoot ?? deps.config.HATCH_WEB_DIR });
  return app;
}

/** Draining: connections still open this long after the close began are cut (half of main.ts's 10 s bound). */
export const DRAIN_CUTOFF_MS = 5000;

/** Where the SSE route lives: a stream refused while draining gets `retry:` (never a 5xx there). */
const EVENTS_ROUTE = '/api/events';

/**
 * Shutting down (SIGTERM: app.close()), Node stops accepting connections, not requests on the
 * connections already open: one whose request arrives then (a keep-alive connection caught
 * between the close and the reaping of idle ones) gets the contract's 503 with Retry-After, and
 * `Connection: close`, so its retry goes to another replica. Fastify's own return503OnClosing
 * answered a bare `{"error":"Service Unavailable"}` without Retry-After: a 5xx the client could
 * not tell from a failure (the 30-minute soak met one during a rolling restart).
 */
function registerDraining(app: FastifyInstance, log: Logger): void {
  let draining = false;
  let cutOff: NodeJS.Timeout | undefined;
  app.addHook('preClose', (done) => {
    draining = true;
    log.info('draining: requests on open connections now get 503 with Retry-After');
    // A connection whose request never completes (a client that stopped mid-request) would hold
    // the close until the process's shutdown bound (main.ts) and exit 1: cut what is left first.
    cutOff = setTimeout(() => app.server.closeAllConnections(), DRAIN_CUTOFF_MS);
    cutOff.unref();
    done();
  });
  app.addHook('onClose', (_app, done) => {
    clearTimeout(cutOff);
    done();
  });
  app.addHook('onRequest', async (req) => {
    if (draining && req.routeOptions.url !== EVENTS_ROUTE)
      throw retryLater('SERVICE_UNAVAILABLE', 'this gateway is shutting down; retry', 1);
  });
}
