/**
 * SendGrid Event Webhook (docs/reliability.md#sendgrid, issue 7): a JSON array of events, signed or
 * refused (issue 14). With SENDGRID_WEBHOOK_PUBLIC_KEY set, the ECDSA P-256 signature over
 * timestamp + the RAW body is verified (so this scope parses JSON itself, from the raw bytes) and
 * a timestamp more than 10 minutes off is refused as a replay: 403, a metric, no change. Without
 * a key every batch is refused the same way (403 FORBIDDEN), unless
 * SENDGRID_WEBHOOK_ALLOW_UNSIGNED=true (development only; warned about at start).
 *
 * Verification is bounded in cost: what can be refused from the headers alone (no key, missing
 * or stale signature headers, a signature that cannot be one) is refused before the body is read;
 * a body is at most SENDGRID_WEBHOOK_BODY_LIMIT; the ECDSA check itself runs on libuv's thread
 * pool through a WorkGate (SENDGRID_VERIFY_CONCURRENCY at once, SENDGRID_VERIFY_QUEUE waiting),
 * and past that bound a batch is answered 503 + Retry-After at once (SendGrid retries non-2xx
 * answers), so a flood of bogus signed requests cannot starve the API.
 *
 * Each event is matched to its email by our id in custom_args (`email_id`), else by the
 * sg_message_id prefix (the send's X-Message-Id); stored once per sg_event_id; statuses only
 * move forward (processed → sent, deferred, delivered, bounce → bounced, dropped); opens,
 * clicks and other engagement events are timeline entries only. Answers 204.
 */
import { verify, type KeyObject } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { EventWebhookHeader } from '@sendgrid/eventwebhook';
import { Counter, Gauge, type Registry } from 'prom-client';
import Type from 'typebox';
import { isUuid, SENDGRID_EMAIL_ID_ARG, type EmailStatus } from '@hatch/contracts';
import { applyEmailStatuses, emailStatusChange, findEmailIdsByProviderMessageIds, type Db, type StatusChange } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { groupedWrites } from '@hatch/service';
import { HttpError, retryLater } from '../errors.js';
import { createWorkGate } from './work-gate.js';

/** SendGrid documents no tolerance; the issue sets 10 minutes against replays. */
export const SENDGRID_TIMESTAMP_TOLERANCE_S = 600;
/**
 * SendGrid posts a batch every 30 s or when it reaches 768 KB, whichever comes first (Event
 * Webhook docs; not re-checked here): 1 MiB leaves room for the event that crosses the line.
 * Past it the request is 413, and a bogus body cannot make us hash more than this.
 */
export const SENDGRID_WEBHOOK_BODY_LIMIT = 1024 * 1024;
/**
 * One ECDSA P-256 verification measured on this machine (Node 20, 4 KB batch): 3.5 ms with the
 * SDK's EventWebhook helper (starkbank-ecdsa, pure JavaScript, on the event loop) against
 * 0.075 ms with node:crypto (OpenSSL), which also runs it on libuv's thread pool, off the
 * event loop; hashing a 1 MiB body adds about 2 ms there. Hence node:crypto, one check at a
 * time (one pool thread of four: file, DNS and zlib work keep the others) and a short queue:
 * about 12,000 checks a second for small batches, far above SendGrid's tens of posts a second.
 */
export const SENDGRID_VERIFY_CONCURRENCY = 1;
export const SENDGRID_VERIFY_QUEUE = 32;
/** Retry-After of the 503 past the verification bound: the queue drains in milliseconds. */
export const SENDGRID_OVERLOAD_RETRY_AFTER_S = 1;
const MAX_EVENTS = 10_000;
/** events of one batch submitted to the grouped status writes at a time (each answered before the next) */
const EVENTS_AT_ONCE = 100;

/**
 * What the OpenAPI document shows of a batch (SendGrid sends more fields). Not validated by a
 * schema: the signature covers the raw bytes, so this route parses and checks them itself.
 */
const EVENTS_DOCS = {
  errors: ['FORBIDDEN', 'RATE_LIMITED', 'SERVICE_UNAVAILABLE'],
  security: 'sendgridSignature',
  body: {
    contentType: 'application/json',
    schema: Type.Array(
      Type.Object(
        {
          event: Type.String({
            description: 'processed, deferred, delivered, bounce, dropped; others (open, click, …) go on the timeline only',
          }),
          email: Type.Optional(Type.String()),
          timestamp: Type.Optional(Type.Integer()),
          sg_event_id: Type.Optional(Type.String({ description: 'each event is applied once' })),
          sg_message_id: Type.Optional(Type.String()),
          [SENDGRID_EMAIL_ID_ARG]: Type.Optional(Type.String({ description: 'our email id (a custom arg of the send)' })),
        },
        { additionalProperties: true },
      ),
      { maxItems: MAX_EVENTS },
    ),
  },
  responses: { 204: { type: 'null', description: 'applied (events for unknown emails are ignored)' } },
} as const;
const SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE().toLowerCase();
const TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP().toLowerCase();
/** base64 of a DER ECDSA P-256 signature (at most 72 bytes: 96 characters), with room to spare */
const SIGNATURE_SHAPE = /^[A-Za-z0-9+/]{16,200}={0,2}$/;

// A Map, not an object literal: an event named "constructor" or "toString" must not find
// Object.prototype's (a signed batch is still untrusted input).
const STATUS_OF = new Map<string, EmailStatus>([
  ['processed', 'sent'],
  ['deferred', 'deferred'],
  ['delivered', 'delivered'],
  ['bounce', 'bounced'],
  ['blocked', 'bounced'],
  ['dropped', 'dropped'],
]);

export interface SendGridWebhookDeps {
  db: Db;
  log: Logger;
  registry: Registry;
  /** hatch_webhook_rejected_total{provider} */
  rejected: Counter<'provider'>;
  /** SENDGRID_WEBHOOK_PUBLIC_KEY, parsed by config.ts */
  publicKey?: KeyObject;
  /** accept unsigned batches when no key is set (development only) */
  allowUnsigned: boolean;
}

type SgEvent = Record<string, unknown>;

/** An event field as stored text: NUL dropped (PostgreSQL text cannot hold it: a 500, found by test/fuzz.test.ts). */
function str(v: unknown): string | null {
  const s = typeof v === 'string' ? v.replaceAll('\u0000', '') : typeof v === 'number' ? String(v) : '';
  return s.length > 0 ? s : null;
}

/** ECDSA-SHA256 on libuv's thread pool; a signature that is not DER is simply not valid. */
function ecdsaVerify(key: KeyObject, data: Buffer, signature: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      verify('sha256', data, key, signature, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}

export function sendgridWebhooks(app: FastifyInstance, deps: SendGridWebhookDeps): void {
  const log = deps.log.child({ component: 'sendgrid-webhooks' });
  // A batch's events and concurrent batches' events: one statement per group (in order).
  const applyStatus = groupedWrites(deps, {
    name: 'email_status',
    write: (changes: StatusChange[]) => applyEmailStatuses(deps.db.db, changes),
    full: () =>
      retryLater('SERVICE_UNAVAILABLE', 'too many SendGrid events waiting to be stored; retry shortly', SENDGRID_OVERLOAD_RETRY_AFTER_S),
  });
  const key = deps.publicKey;
  const gate = createWorkGate({ concurrency: SENDGRID_VERIFY_CONCURRENCY, queue: SENDGRID_VERIFY_QUEUE });
  const shed = new Counter({
    name: 'hatch_webhook_shed_total',
    help: 'webhooks answered 503 because too many signature checks were running or queued',
    labelNames: ['provider'],
    registers: [deps.registry],
  });
  new Gauge({
    name: 'hatch_webhook_verifications_pending',
    help: 'webhook signature checks running or queued',
    labelNames: ['provider'],
    registers: [deps.registry],
    collect() {
      this.set({ provider: 'sendgrid' }, gate.pending);
    },
  });
  if (deps.allowUnsigned && key)
    log.warn(
      'SENDGRID_WEBHOOK_ALLOW_UNSIGNED=true is ignored: SENDGRID_WEBHOOK_PUBLIC_KEY is set, so every SendGrid event batch is verified',
    );
  else if (deps.allowUnsigned)
    log.warn(
      'SENDGRID_WEBHOOK_ALLOW_UNSIGNED=true: SendGrid events are accepted WITHOUT a signature check (development only; set SENDGRID_WEBHOOK_PUBLIC_KEY instead)',
    );
  else if (!key)
    log.warn(
      'SENDGRID_WEBHOOK_PUBLIC_KEY is not set: SendGrid event batches are refused (403) and email statuses will not move past "sent"',
    );

  function refuse(why: string): never {
    deps.rejected.inc({ provider: 'sendgrid' });
    log.warn({ why }, 'sendgrid event webhook refused');
    throw new HttpError('FORBIDDEN', key ? 'invalid SendGrid event webhook signature' : 'unsigned SendGrid events are not accepted');
  }

  function overloaded(): never {
    shed.inc({ provider: 'sendgrid' });
    throw retryLater(
      'SERVICE_UNAVAILABLE',
      'too many SendGrid signature checks in progress; retry shortly',
      SENDGRID_OVERLOAD_RETRY_AFTER_S,
    );
  }

  /** Everything decidable from the headers, before a byte of the body is read. */
  function admit(req: FastifyRequest): void {
    if (!key) {
      if (!deps.allowUnsigned) refuse('no SENDGRID_WEBHOOK_PUBLIC_KEY configured');
      return;
    }
    const signature = req.headers[SIGNATURE_HEADER];
    const timestamp = req.headers[TIMESTAMP_HEADER];
    if (typeof signature !== 'string' || typeof timestamp !== 'string') refuse('missing signature headers');
    if (!/^\d{1,12}$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > SENDGRID_TIMESTAMP_TOLERANCE_S)
      refuse('stale or malformed timestamp');
    if (!SIGNATURE_SHAPE.test(signature)) refuse('malformed signature');
    if (gate.full) overloaded();
  }

  async function verifyBody(req: FastifyRequest, raw: Buffer): Promise<void> {
    if (!key) return;
    // admit() has checked both headers' shape.
    const signature = Buffer.from(req.headers[SIGNATURE_HEADER] as string, 'base64');
    const signed = Buffer.concat([Buffer.from(req.headers[TIMESTAMP_HEADER] as string, 'utf8'), raw]);
    const check = gate.tryRun(() => ecdsaVerify(key, signed, signature));
    if (!check) overloaded();
    if (!(await check)) refuse('bad signature');
  }

  /**
   * Each event's email: our id from its custom argument, else looked up by SendGrid's message id
   * (the part before the first dot), all of a chunk's look-ups in one statement.
   */
  async function resolveEmailIds(chunk: SgEvent[]): Promise<(string | undefined)[]> {
    const keys = chunk.map((ev) => {
      const arg = str(ev[SENDGRID_EMAIL_ID_ARG]);
      if (arg && isUuid(arg)) return { id: arg.toLowerCase() };
      const prefix = str(ev.sg_message_id)?.split('.')[0];
      return prefix ? { prefix } : {};
    });
    const prefixes = keys.flatMap((k) => (k.prefix ? [k.prefix] : []));
    const byPrefix = await findEmailIdsByProviderMessageIds(deps.db.db, prefixes);
    return keys.map((k) => k.id ?? (k.prefix ? byPrefix.get(k.prefix) : undefined));
  }

  /** Submits the event's change at once (before any await), so events submitted in order are written in order. */
  async function apply(ev: SgEvent, emailId: string | undefined): Promise<'applied' | 'duplicate' | 'unmatched'> {
    if (!emailId) return 'unmatched';
    const name = (str(ev.event) ?? 'unknown').slice(0, 40);
    const status = STATUS_OF.get(name);
    const eventId = str(ev.sg_event_id);
    const reason = str(ev.reason) ?? str(ev.response);
    const code = str(ev.status) ?? (name === 'bounce' ? str(ev.type) : null);
    const recipient = str(ev.email);
    const detail = [recipient, name === 'click' ? str(ev.url) : reason].filter(Boolean).join(': ') || null;
    const sgMessageId = str(ev.sg_message_id);
    const r = await applyStatus(
      emailStatusChange(emailId, {
        status: status ?? name,
        timelineOnly: status === undefined,
        source: 'sendgrid_event',
        providerCode: code?.slice(0, 100) ?? null,
        detail: detail?.slice(0, 300) ?? null,
        providerEventId: eventId ? `sendgrid:${eventId}` : null,
        onMove:
          status === 'bounced' || status === 'dropped'
            ? { error_code: (code ?? name).slice(0, 100), error_message: (reason ?? name).slice(0, 500) }
            : undefined,
        always: name === 'processed' && sgMessageId ? { provider_message_id: sgMessageId.split('.')[0] ?? null } : undefined,
      }),
    );
    if (!r.row) return 'unmatched';
    return r.duplicate ? 'duplicate' : 'applied';
  }

  app.register(async (scope) => {
    // The signature covers the raw bytes: this scope keeps them and parses JSON itself.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: SENDGRID_WEBHOOK_BODY_LIMIT }, (_req, body, done) =>
      done(null, body),
    );

    scope.post(
      '/webhooks/sendgrid/events',
      {
        bodyLimit: SENDGRID_WEBHOOK_BODY_LIMIT,
        schema: { tags: ['webhooks'], operationId: 'sendgridEvents', summary: 'SendGrid Event Webhook: a batch of email events' },
        config: { openapi: EVENTS_DOCS },
        // preParsing: after the webhook rate limiter (onRequest), before the body is read.
        preParsing: async (req, _reply, payload) => {
          admit(req);
          return payload;
        },
      },
      async (req, reply) => {
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        await verifyBody(req, raw);
        let events: unknown;
        try {
          events = JSON.parse(raw.toString('utf8'));
        } catch {
          throw new HttpError('INVALID_REQUEST', 'request body is not valid JSON');
        }
        if (
          !Array.isArray(events) ||
          events.length > MAX_EVENTS ||
          !events.every((e) => typeof e === 'object' && e !== null && !Array.isArray(e))
        ) {
          throw new HttpError('INVALID_REQUEST', `expected a JSON array of at most ${MAX_EVENTS} event objects`);
        }
        const counts = { applied: 0, duplicate: 0, unmatched: 0 };
        // In order, EVENTS_AT_ONCE at a time: the grouped writes keep their order (one statement
        // in flight), so events about one email apply in the order SendGrid listed them.
        const list = events as SgEvent[];
        for (let i = 0; i < list.length; i += EVENTS_AT_ONCE) {
          const chunk = list.slice(i, i + EVENTS_AT_ONCE);
          const ids = await resolveEmailIds(chunk);
          for (const outcome of await Promise.all(chunk.map((ev, j) => apply(ev, ids[j])))) counts[outcome]++;
        }
        if (counts.unmatched) log.warn({ unmatched: counts.unmatched }, 'sendgrid events for unknown emails ignored');
        log.debug(counts, 'sendgrid events');
        return reply.code(204).send();
      },
    );
  });
}
