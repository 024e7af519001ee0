/**
 * Twilio Programmable Messaging stand-in (docs/reliability.md#twilio): the Messages resource of the
 * 2010-04-01 REST API, signed status callbacks, and played inbound SMS.
 *
 * - Create answers synchronously with the Message resource (`queued`, or `accepted` with a
 *   Messaging Service and `num_segments: "0"`, as Twilio does) and then walks the status
 *   sequence in the background, `callbackDelayMs` per step. Per Twilio's docs no callback is
 *   sent for the initial status, so callbacks are sending → sent → delivered (a Messaging
 *   Service message also reports queued); a delivery fault ends in undelivered (after sent) or
 *   failed (after sending) with an ErrorCode. Each callback is signed (X-Twilio-Signature) and
 *   carries an I-Twilio-Idempotency-Token that stays the same across its retries.
 * - Fetch (`GET …/Messages/{Sid}.json`) and list (`GET …/Messages.json`, filtered by To, From
 *   and DateSent, newest first, paged) let a sender reconcile an unknown outcome. Twilio's
 *   resource does not expose the StatusCallback URL (so not Hatch's `?mid=` either); a sender
 *   matches on To/From/Body/time, and tests read the callback URL in `/_emulator/messages`.
 *   DateSent filters use date_sent, or date_created while the message is not sent yet: a
 *   reconciliation that skipped a message still queued would resend it (a duplicate SMS).
 *
 * The routes are here; the request validation is in twilio-validation.ts, the error bodies and
 * codes in twilio-errors.ts, the Message resource and the emulator's records in twilio-resource.ts.
 * What is left past ~350 lines is the create route's one sequence (validate, fault, answer,
 * walk the statuses), clearer read in one piece.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Value } from 'typebox/value';
import { countSmsSegments } from '@hatch/contracts';
import { answerProcessed, appliedFault, faultSelects, processedDespite, type Fault } from './faults.js';
import { twilioSid } from './ids.js';
import { formBody, secretsEqual, twilioSignature } from './signing.js';
import { deliveryErrorMessage, faultError, twilioError, type TwilioErrorBody } from './twilio-errors.js';
import { API_VERSION, messageResource, type MessageRecord, type TwilioState } from './twilio-resource.js';
import { dateFilter, first, formParams, InboundPlay, intParam, validateCreate } from './twilio-validation.js';
import type { ProviderContext } from './provider-context.js';
import type { WebhookResult } from './webhook-client.js';
import { WebhookQueue, type WebhookFormat } from './webhook-queue.js';

export interface TwilioSettings {
  accountSid: string;
  authToken: string;
  /** the emulated account's number: the default `To` of played inbound SMS */
  phoneNumber: string;
  /** where played inbound SMS are POSTed unless the admin call names another URL */
  inboundUrl: string;
}

export interface TwilioContext extends ProviderContext {
  settings: TwilioSettings;
}

/** Twilio's webhooks (status callbacks, inbound SMS): signed form posts. */
function twilioWebhook(authToken: string): WebhookFormat<Record<string, string>> {
  return {
    encode: formBody,
    headers: (url, params) => ({
      'content-type': 'application/x-www-form-urlencoded',
      'user-agent': 'TwilioProxy/1.1',
      'x-twilio-signature': twilioSignature(authToken, url, params),
      // the same token on every retry of this event, so receivers can dedupe (docs/reliability.md#twilio)
      'i-twilio-idempotency-token': randomUUID(),
    }),
  };
}

export interface InboundResult {
  messageSid: string;
  url: string;
  deliveries: WebhookResult[];
}

export interface TwilioHandle {
  /** plays an inbound SMS (the admin route's behaviour, for library users) */
  playInbound(p: InboundPlay): Promise<InboundResult>;
}

export function registerTwilio(app: FastifyInstance, ctx: TwilioContext, state: TwilioState): TwilioHandle {
  const { settings, log } = ctx;
  const prefix = `/${API_VERSION}/Accounts/:AccountSid`;
  const callbacks = new WebhookQueue({
    bg: ctx.bg,
    client: ctx.webhooks,
    policy: ctx.webhook,
    log,
    format: twilioWebhook(settings.authToken),
    task: 'twilio status callbacks',
    refused: 'twilio status callback not accepted',
  });

  function send(reply: FastifyReply, status: number, body: unknown, headers: Record<string, string> = {}) {
    return reply
      .code(status)
      .headers({ 'twilio-request-id': twilioSid('RQ'), ...headers })
      .send(body);
  }

  /** Basic auth with the account SID and auth token; the path must name that account. */
  function authError(req: FastifyRequest<{ Params: { AccountSid: string } }>): TwilioErrorBody | undefined {
    const header = req.headers.authorization;
    let ok = false;
    if (header?.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      ok =
        colon > 0 &&
        secretsEqual(decoded.slice(0, colon), settings.accountSid) &&
        secretsEqual(decoded.slice(colon + 1), settings.authToken);
    }
    if (!ok) return twilioError(20003, 401, 'Authenticate');
    if (req.params.AccountSid !== settings.accountSid) {
      return twilioError(20404, 404, `The requested resource ${req.url.split('?')[0]} was not found`);
    }
    return undefined;
  }

  function sendError(reply: FastifyReply, err: TwilioErrorBody, headers: Record<string, string> = {}) {
    const extra = err.status === 401 ? { 'www-authenticate': 'Basic realm="Twilio API"', ...headers } : headers;
    return send(reply, err.status, err, extra);
  }

  /** Twilio's status walk for an accepted message, callbacks included. */
  function startLifecycle(m: MessageRecord, outcome: { final: 'delivered' | 'undelivered' | 'failed'; errorCode: number | null }) {
    const steps: string[] = m.status === 'accepted' ? ['queued', 'sending'] : ['sending'];
    if (outcome.final === 'failed') steps.push('failed');
    else steps.push('sent', outcome.final);
    // Callbacks of one message go out one at a time, in status order (a retried one holds the
    // next back): receivers must cope with out-of-order callbacks anyway (docs/reliability.md#twilio), but a
    // deterministic order keeps tests readable; forge reordered ones where that is the point.
    const lane = callbacks.lane();
    ctx.bg.run('twilio status sequence', async () => {
      for (const status of steps) {
        await ctx.bg.sleep(ctx.callbackDelayMs);
        const now = new Date().toISOString();
        m.status = status;
        m.dateUpdated = now;
        if (status === 'sent') {
          m.dateSent = now;
          m.price = `-${(0.0079 * (m.numSegments ?? 1)).toFixed(5)}`;
        }
        if (status === 'undelivered' || status === 'failed') {
          m.errorCode = outcome.errorCode ?? (status === 'failed' ? 30008 : 30003);
          m.errorMessage = deliveryErrorMessage(m.errorCode);
        }
        const url = m.statusCallback;
        if (url)
          lane.send(() => ({
            url,
            payload: statusParams(m, status),
            fields: { status },
            records: m.callbacks,
            context: { sid: m.sid, status },
          }));
      }
    });
  }

  /** The status callback's parameters, built when it is sent. */
  function statusParams(m: MessageRecord, status: string): Record<string, string> {
    const params: Record<string, string> = {
      AccountSid: settings.accountSid,
      ApiVersion: API_VERSION,
      From: m.from ?? '',
      MessageSid: m.sid ?? '',
      MessageStatus: status,
      SmsSid: m.sid ?? '',
      SmsStatus: status,
      To: m.to ?? '',
    };
    if (m.messagingServiceSid) params.MessagingServiceSid = m.messagingServiceSid;
    if ((status === 'undelivered' || status === 'failed') && m.errorCode !== null) params.ErrorCode = String(m.errorCode);
    // Twilio adds carrier fields without notice (docs/reliability.md#twilio): receivers must sign-check all params.
    if (status === 'delivered') params.RawDlrDoneDate = new Date().toISOString().replace(/\D/g, '').slice(2, 12);
    return params;
  }

  app.post<{ Params: { AccountSid: string } }>(`${prefix}/Messages.json`, async (req, reply) => {
    const params = formParams(req.body);
    const now = new Date().toISOString();
    const record = (fields: Partial<MessageRecord>): MessageRecord =>
      state.messages.add((seq) => ({
        seq,
        receivedAt: now,
        accepted: false,
        httpStatus: null,
        fault: null,
        params,
        sid: null,
        to: first(params, 'To') ?? null,
        from: first(params, 'From') ?? null,
        messagingServiceSid: first(params, 'MessagingServiceSid') ?? null,
        body: first(params, 'Body') ?? null,
        statusCallback: first(params, 'StatusCallback') ?? null,
        numSegments: null,
        encoding: null,
        status: null,
        errorCode: null,
        errorMessage: null,
        dateCreated: now,
        dateUpdated: now,
        dateSent: null,
        price: null,
        callbacks: [],
        ...fields,
      }));
    const refuse = (err: TwilioErrorBody, fault: Fault | undefined = undefined, headers: Record<string, string> = {}) => {
      record({ httpStatus: err.status, errorCode: err.code, errorMessage: err.message, fault: appliedFault(fault) });
      return sendError(reply, err, headers);
    };

    const denied = authError(req);
    if (denied) return refuse(denied);
    const input = validateCreate(params);
    if ('code' in input) return refuse(input);

    const fault = ctx.faults.take('twilio', [input.to]);
    if (fault?.kind === '429') {
      const retryAfter = fault.retryAfterSeconds ?? 1;
      return refuse(twilioError(20429, 429, fault.message ?? 'Too Many Requests'), fault, { 'retry-after': String(retryAfter) });
    }
    if (fault && !processedDespite(fault)) {
      if (fault.kind === '500') return refuse(twilioError(20500, 500, fault.message ?? 'Internal Server Error'), fault);
      if (fault.kind === '503') {
        return refuse(
          twilioError(20503, 503, fault.message ?? 'Service Unavailable'),
          fault,
          fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {},
        );
      }
      return refuse(faultError(fault), fault);
    }

    // Accepted: the message exists from here on, whatever the client ends up seeing.
    const segments = countSmsSegments(input.body);
    const m = record({
      accepted: true,
      fault: appliedFault(fault),
      sid: twilioSid('SM'),
      to: input.to,
      from: input.from,
      messagingServiceSid: input.messagingServiceSid,
      body: input.body,
      statusCallback: input.statusCallback,
      numSegments: segments.segments,
      encoding: segments.encoding,
      status: input.messagingServiceSid ? 'accepted' : 'queued',
    });
    state.bySid.set(m.sid as string, m);
    const failing = fault?.delivery !== undefined && faultSelects(fault, input.to);
    startLifecycle(m, {
      final: failing ? (fault?.delivery === 'failed' ? 'failed' : 'undelivered') : 'delivered',
      errorCode: failing && fault?.code !== undefined ? fault.code : null,
    });
    log.debug({ sid: m.sid, segments: segments.segments, fault: fault?.kind }, 'twilio message accepted');

    return answerProcessed(fault, req, reply, ctx.bg, {
      error: (f) => {
        m.httpStatus = Number(f.kind);
        const retryAfter: Record<string, string> =
          f.kind === '503' && f.retryAfterSeconds !== undefined ? { 'retry-after': String(f.retryAfterSeconds) } : {};
        return sendError(
          reply,
          twilioError(
            f.kind === '500' ? 20500 : 20503,
            m.httpStatus,
            f.message ?? (f.kind === '500' ? 'Internal Server Error' : 'Service Unavailable'),
          ),
          retryAfter,
        );
      },
      ok: () => {
        m.httpStatus = 201;
        return send(reply, 201, messageResource(m, settings.accountSid, { creating: true }));
      },
    });
  });

  app.get<{ Params: { AccountSid: string; Sid: string } }>(`${prefix}/Messages/:Sid.json`, async (req, reply) => {
    const denied = authError(req);
    if (denied) return sendError(reply, denied);
    const m = state.bySid.get(req.params.Sid);
    if (!m) return sendError(reply, twilioError(20404, 404, `The requested resource ${req.url.split('?')[0]} was not found`));
    return send(reply, 200, messageResource(m, settings.accountSid));
  });

  app.get<{ Params: { AccountSid: string }; Querystring: Record<string, string | undefined> }>(
    `${prefix}/Messages.json`,
    async (req, reply) => {
      const denied = authError(req);
      if (denied) return sendError(reply, denied);
      const q = req.query;
      const dates = dateFilter(q);
      if ('code' in dates) return sendError(reply, dates);
      const pageSize = intParam(q.PageSize, 50, 1, 1000);
      const page = intParam(q.Page, 0, 0, 1_000_000);
      if (pageSize === undefined || page === undefined) return sendError(reply, twilioError(20001, 400, 'Invalid PageSize or Page'));

      const start = page * pageSize;
      const items: Record<string, unknown>[] = [];
      let seen = 0;
      let more = false;
      for (const m of state.messages.newestFirst()) {
        if (!m.accepted || m.sid === null) continue;
        if (q.To && m.to !== q.To) continue;
        if (q.From && m.from !== q.From) continue;
        const t = Date.parse(m.dateSent ?? m.dateCreated);
        if (t < dates.min || t > dates.max) continue;
        if (seen++ < start) continue;
        if (items.length === pageSize) {
          more = true;
          break;
        }
        items.push(messageResource(m, settings.accountSid));
      }

      const path = `/${API_VERSION}/Accounts/${settings.accountSid}/Messages.json`;
      const pageUri = (p: number) => {
        const qs = new URLSearchParams();
        for (const key of ['To', 'From', 'DateSent', 'DateSent<', 'DateSent>']) {
          const v = q[key];
          if (v) qs.set(key, v);
        }
        qs.set('PageSize', String(pageSize));
        qs.set('Page', String(p));
        return `${path}?${qs.toString()}`;
      };
      return send(reply, 200, {
        end: start + Math.max(items.length, 1) - 1,
        first_page_uri: pageUri(0),
        messages: items,
        next_page_uri: more ? pageUri(page + 1) : null,
        page,
        page_size: pageSize,
        previous_page_uri: page > 0 ? pageUri(page - 1) : null,
        start,
        uri: pageUri(page),
      });
    },
  );

  // Admin: play an inbound SMS to Hatch's webhook, optionally twice with the same MessageSid.
  app.post('/_emulator/twilio/inbound', async (req, reply) => {
    if (!Value.Check(InboundPlay, req.body)) {
      const problems = [...Value.Errors(InboundPlay, req.body)].map((e) => `${e.instancePath.slice(1) || 'body'}: ${e.message}`);
      return reply.code(400).send({ error: 'invalid inbound SMS', problems });
    }
    return reply.send(await playInbound(req.body));
  });

  async function playInbound(p: InboundPlay): Promise<InboundResult> {
    const messageSid = p.messageSid ?? twilioSid('SM');
    const url = p.url ?? settings.inboundUrl;
    const to = p.to ?? settings.phoneNumber;
    const params: Record<string, string> = {
      AccountSid: settings.accountSid,
      ApiVersion: API_VERSION,
      Body: p.body,
      From: p.from,
      MessageSid: messageSid,
      NumMedia: '0',
      NumSegments: String(countSmsSegments(p.body).segments),
      SmsMessageSid: messageSid,
      SmsSid: messageSid,
      SmsStatus: 'received',
      To: to,
    };
    // a retry of the same webhook (the duplicate) carries the same token
    const request = callbacks.request(url, params);
    // One attempt each: the admin caller sees exactly what Hatch answered.
    const policy = { ...ctx.webhook, attempts: 1 };
    const deliveries: WebhookResult[] = [await ctx.webhooks.post(request, policy)];
    if (p.duplicate) deliveries.push(await ctx.webhooks.post(request, policy));
    state.inbound.add((seq) => ({ seq, at: new Date().toISOString(), messageSid, url, params, deliveries }));
    log.debug({ messageSid, deliveries: deliveries.map((d) => d.status) }, 'twilio inbound played');
    return { messageSid, url, deliveries };
  }

  return { playInbound };
}
