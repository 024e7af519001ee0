/**
 * The SendGrid side of the email-sender, through the official `@sendgrid/mail` SDK. A MailService
 * of its own (not the module singleton), so tests and processes never share settings.
 * SENDGRID_API_URL points the SDK at another base URL (the provider emulator): setApiKey()
 * resets the base URL, so it is set after it, on the client (docs/architecture.md#known-traps).
 */
import { MailService } from '@sendgrid/mail';
import { SENDGRID_EMAIL_ID_ARG } from '@hatch/contracts';
import { parseRateLimitResetMs, parseRetryAfterMs } from '@hatch/jobs';

export interface MailToSend {
  emailId: string;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  replyTo: string | null;
  subject: string;
  text: string;
  html: string;
  attachments: Array<{ filename: string; type: string; content: string }>;
}

export interface MailSent {
  statusCode: number;
  /** X-Message-Id: event webhook sg_message_id values start with it */
  messageId: string | null;
}

/** What the sender needs of SendGrid; the handler is written against this. */
export interface SendGridPort {
  send(m: MailToSend): Promise<MailSent>;
}

interface SdkClient {
  setDefaultRequest(key: string, value: unknown): void;
}

export function createSendGridPort(o: { apiKey: string; apiUrl: string; timeoutMs: number }): SendGridPort {
  const mail = new MailService();
  mail.setApiKey(o.apiKey);
  // after setApiKey, which resets it
  (mail as unknown as { client: SdkClient }).client.setDefaultRequest('baseUrl', o.apiUrl.replace(/\/+$/, ''));
  mail.setTimeout(o.timeoutMs);
  return {
    async send(m) {
      const [res] = await mail.send({
        from: m.from,
        to: m.to,
        ...(m.cc.length ? { cc: m.cc } : {}),
        ...(m.bcc.length ? { bcc: m.bcc } : {}),
        ...(m.replyTo ? { replyTo: m.replyTo } : {}),
        subject: m.subject,
        // text/plain first, then text/html (SendGrid's required order): both parts always
        content: [
          { type: 'text/plain', value: m.text },
          { type: 'text/html', value: m.html },
        ],
        ...(m.attachments.length ? { attachments: m.attachments.map((a) => ({ ...a, disposition: 'attachment' })) } : {}),
        // our id rides into every event (no PII in custom_args: SendGrid keeps them long-term)
        customArgs: { [SENDGRID_EMAIL_ID_ARG]: m.emailId },
      });
      const id = res.headers['x-message-id'];
      return { statusCode: res.statusCode, messageId: typeof id === 'string' && id.length > 0 ? id : null };
    },
  };
}

export type SendGridFailure =
  | { kind: 'rate_limited'; code: string; retryAfterMs?: number }
  | { kind: 'auth'; code: string; message: string; response: unknown }
  | { kind: 'permanent'; code: string; message: string; response: unknown }
  | { kind: 'unknown'; code: string; message: string }
  | { kind: 'not_sent'; code: string; message: string };

interface SdkError {
  code?: unknown;
  message?: string;
  response?: { headers?: Record<string, unknown>; body?: unknown };
}

function errorsText(body: unknown): string | undefined {
  const errs = (body as { errors?: Array<{ message?: string; field?: string | null }> } | undefined)?.errors;
  if (!Array.isArray(errs) || errs.length === 0) return undefined;
  return errs.map((e) => (e.field ? `${e.field}: ${e.message ?? ''}` : (e.message ?? ''))).join('; ');
}

/**
 * Error classes (docs/reliability.md#sendgrid): 429 → retry after X-RateLimit-Reset; 401/403 → the
 * credentials or the account are the problem (403 also means "temporarily blocked"): failed,
 * loudly, and sending pauses; 5xx, timeouts and resets after the request left us → outcome
 * unknown (SendGrid's mail send has no idempotency key and no lookup: see handle-email-job.ts);
 * every other 4xx (400 with `errors`, 413) → permanent.
 */
export function classifySendGridError(err: unknown, now = Date.now()): SendGridFailure {
  const e = err as SdkError;
  if (typeof e?.code === 'number' && e.response) {
    const status = e.code;
    const code = `HTTP_${status}`;
    const headers = e.response.headers ?? {};
    const message = errorsText(e.response.body) ?? e.message ?? `SendGrid answered ${status}`;
    if (status === 429) {
      // both capped at MAX_PROVIDER_RETRY_AFTER_MS (@hatch/jobs): a hint of years parks nothing for years
      const retryAfterMs = parseRateLimitResetMs(headers['x-ratelimit-reset'], now) ?? parseRetryAfterMs(headers['retry-after'], now);
      return { kind: 'rate_limited', code, retryAfterMs };
    }
    if (status >= 500) return { kind: 'unknown', code, message };
    const response = { status, errors: (e.response.body as { errors?: unknown } | undefined)?.errors ?? null };
    if (status === 401 || status === 403) return { kind: 'auth', code, message, response };
    return { kind: 'permanent', code, message, response };
  }
  const netCode = typeof e?.code === 'string' ? e.code : 'NETWORK';
  // Refused / not resolved: the request never reached SendGrid.
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'].includes(netCode))
    return { kind: 'not_sent', code: netCode, message: e?.message ?? netCode };
  return { kind: 'unknown', code: netCode, message: e?.message ?? 'no answer' };
}
