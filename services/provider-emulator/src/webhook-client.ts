/**
 * Outgoing webhook calls (Twilio status callbacks and inbound SMS, SendGrid event batches), with
 * the providers' retry behaviour: a connection failure, a timeout, a 5xx or a 429 is retried
 * with exponential backoff a few times (Twilio retries callbacks, SendGrid for up to 24 h); any
 * other answer is final, so a receiver that refuses a bad signature with 403 sees it once.
 *
 * node:http with keep-alive agents rather than fetch: every accepted message makes two or
 * three webhook calls, and with fetch (streams, AbortSignal.any per call) they were the
 * emulator's bottleneck: 470 Twilio creates/s with callbacks against 1,460/s with node:http,
 * measured on the same machine.
 */
import http from 'node:http';
import https from 'node:https';
import { backoffDelay } from '@hatch/contracts';
import type { Background } from './background.js';

export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface WebhookResult {
  /** HTTP attempts made (1 when the first one was answered with a final status) */
  attempts: number;
  ok: boolean;
  /** status of the last answer, null when the receiver never answered */
  status: number | null;
  /** network or timeout error of the last attempt */
  error: string | null;
  /** what the receiver answered last (truncated): tests and the inbound admin call show it */
  responseBody: string;
  responseContentType: string | null;
}

export interface WebhookPolicy {
  /** total attempts, first one included */
  attempts: number;
  /** delay before the first retry; doubles each time */
  retryBaseMs: number;
  timeoutMs: number;
}

const MAX_CAPTURED_BODY = 4096;

function retryable(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

interface Answer {
  status: number;
  body: string;
  contentType: string | null;
}

export class WebhookClient {
  private readonly agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: 256 }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: 256 }),
  };

  constructor(private readonly bg: Background) {
    // Stopping destroys every socket, so in-flight calls fail at once instead of holding stop().
    bg.signal.addEventListener('abort', () => this.destroy(), { once: true });
  }

  async post(req: WebhookRequest, policy: WebhookPolicy): Promise<WebhookResult> {
    const result: WebhookResult = { attempts: 0, ok: false, status: null, error: null, responseBody: '', responseContentType: null };
    for (let attempt = 1; attempt <= policy.attempts; attempt++) {
      if (attempt > 1) await this.bg.sleep(backoffDelay({ baseMs: policy.retryBaseMs, maxMs: Number.POSITIVE_INFINITY }, attempt - 2));
      result.attempts = attempt;
      try {
        const answer = await this.once(req, policy.timeoutMs);
        result.status = answer.status;
        result.error = null;
        result.responseBody = answer.body;
        result.responseContentType = answer.contentType;
        result.ok = answer.status >= 200 && answer.status < 300;
        if (result.ok || !retryable(answer.status)) return result;
      } catch (err) {
        if (this.bg.stopping) throw Object.assign(new Error('emulator stopping'), { name: 'AbortError' });
        const e = err as NodeJS.ErrnoException;
        result.status = null;
        result.error = e.code ?? e.message ?? 'network error';
      }
    }
    return result;
  }

  private once(req: WebhookRequest, timeoutMs: number): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      let url: URL;
      try {
        url = new URL(req.url);
      } catch {
        reject(Object.assign(new Error(`invalid URL ${req.url}`), { code: 'EINVALIDURL' }));
        return;
      }
      const isHttps = url.protocol === 'https:';
      const body = Buffer.from(req.body, 'utf8');
      const r = (isHttps ? https : http).request(
        url,
        {
          method: 'POST',
          agent: this.agents[isHttps ? 'https:' : 'http:'],
          headers: { ...req.headers, 'content-length': String(body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            if (size < MAX_CAPTURED_BODY) chunks.push(c);
            size += c.length;
          });
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({
              status: res.statusCode ?? 0,
              body: size > MAX_CAPTURED_BODY ? `${text.slice(0, MAX_CAPTURED_BODY)}…` : text,
              contentType: res.headers['content-type'] ?? null,
            });
          });
          res.on('error', reject);
        },
      );
      // A whole-request deadline (not the socket idle timeout): a receiver that trickles
      // bytes must not hold a callback forever.
      const timer = setTimeout(
        () => r.destroy(Object.assign(new Error(`timeout after ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
        timeoutMs,
      );
      r.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      r.end(body);
    });
  }

  destroy(): void {
    this.agents['http:'].destroy();
    this.agents['https:'].destroy();
  }
}
