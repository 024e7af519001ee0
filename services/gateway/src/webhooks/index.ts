/**
 * Every `/webhooks/*` route lives in this one encapsulated plugin, with its own rate limiter per
 * client address (issue 14): `req.ip`, the peer or, behind the proxies HATCH_TRUST_PROXY names,
 * the address they forwarded (IPv6 counted per /64, @fastify/rate-limit's default key). The
 * limiter hooks exactly the routes registered here, so it counts by the route the router
 * matched, never by the raw URL. Past the limit: 429 RATE_LIMITED + Retry-After.
 *
 * The default (HATCH_WEBHOOK_RATE_LIMIT_PER_MINUTE, 60,000: 1,000 a second per address) sits far
 * above a real burst: Twilio posts a status callback per message and status (a busy account,
 * hundreds a second, from a handful of addresses) and SendGrid batches its events (tens of posts
 * a second at most). What one forged request can cost is bounded separately, in each provider's
 * module (body and parameter caps; SendGrid's ECDSA checks through a bounded gate).
 */
import type { FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { Counter, type Registry } from 'prom-client';
import type { Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import type { GatewayConfig } from '../config.js';
import { rateLimitExceeded } from '../errors.js';
import { twilioWebhooks } from './twilio.js';
import { sendgridWebhooks } from './sendgrid.js';

export const WEBHOOK_RATE_WINDOW_MS = 60_000;

export interface WebhookDeps {
  db: Db;
  log: Logger;
  registry: Registry;
  config: Pick<
    GatewayConfig,
    'PUBLIC_URL' | 'TWILIO_AUTH_TOKEN' | 'sendgridPublicKey' | 'SENDGRID_WEBHOOK_ALLOW_UNSIGNED' | 'HATCH_WEBHOOK_RATE_LIMIT_PER_MINUTE'
  >;
}

export async function registerWebhooks(app: FastifyInstance, deps: WebhookDeps): Promise<void> {
  const { config } = deps;
  await app.register(async (webhooks) => {
    // onRequest (the plugin's default hook): a client over its limit is refused before its body is read.
    await webhooks.register(rateLimit, {
      global: true,
      max: config.HATCH_WEBHOOK_RATE_LIMIT_PER_MINUTE,
      timeWindow: WEBHOOK_RATE_WINDOW_MS,
      errorResponseBuilder: rateLimitExceeded,
    });
    const rejected = new Counter({
      name: 'hatch_webhook_rejected_total',
      help: 'webhooks refused for a bad or missing signature',
      labelNames: ['provider'],
      registers: [deps.registry],
    });
    twilioWebhooks(webhooks, {
      db: deps.db,
      log: deps.log,
      registry: deps.registry,
      rejected,
      publicUrl: config.PUBLIC_URL,
      authToken: config.TWILIO_AUTH_TOKEN,
    });
    sendgridWebhooks(webhooks, {
      db: deps.db,
      log: deps.log,
      registry: deps.registry,
      rejected,
      publicKey: config.sendgridPublicKey,
      allowUnsigned: config.SENDGRID_WEBHOOK_ALLOW_UNSIGNED,
    });
  });
}
