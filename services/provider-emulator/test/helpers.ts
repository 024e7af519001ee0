/**
 * Test helpers: an emulator per test file (port 0), a local HTTP receiver standing in for
 * Hatch's webhooks, and the REAL provider SDKs pointed at the emulator.
 *
 * Pointing the SDKs (test code only; the services do the same in their own client modules):
 * - twilio 6: a RequestClient subclass that rewrites the origin of each request
 *   (https://api.twilio.com → the emulator). The SDK builds absolute URLs from its domain and
 *   has no base-URL option; `region`/`edge` would rewrite the host instead (docs/architecture.md#known-traps).
 * - @sendgrid/mail 8: a fresh MailService per test (never the module singleton), setApiKey()
 *   FIRST, then the client's baseUrl: setApiKey() resets the base URL.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import twilio from 'twilio';
import type TwilioRequestClient from 'twilio/lib/base/RequestClient.js';
import { MailService } from '@sendgrid/mail';
import { createLogger } from '@hatch/log';
import { waitFor } from '@hatch/testing';
import { startEmulator, type Emulator, type EmulatorOptions } from '../src/index.js';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function emulatorFor(t: Teardown, opts: EmulatorOptions = {}): Promise<Emulator> {
  const emulator = await startEmulator({
    port: 0,
    callbackDelayMs: 10,
    callbackRetryBaseMs: 20,
    logger: createLogger({ service: 'provider-emulator', level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    ...opts,
  });
  t.teardown(() => emulator.stop());
  return emulator;
}

// ---- the real twilio SDK -----------------------------------------------------------------------

class EmulatorRequestClient extends twilio.RequestClient {
  private readonly base: URL;
  constructor(baseUrl: string, timeoutMs: number) {
    super({ timeout: timeoutMs, keepAlive: true });
    this.base = new URL(baseUrl);
  }
  override request<T>(opts: TwilioRequestClient.RequestOptions<T>) {
    const uri = new URL(opts.uri);
    uri.protocol = this.base.protocol;
    uri.host = this.base.host;
    return super.request<T>({ ...opts, uri: uri.href });
  }
}

export type TwilioClient = ReturnType<typeof twilio>;

export function twilioFor(emulator: Emulator, opts: { timeoutMs?: number; authToken?: string } = {}): TwilioClient {
  return twilio(emulator.twilio.accountSid, opts.authToken ?? emulator.twilio.authToken, {
    httpClient: new EmulatorRequestClient(emulator.url, opts.timeoutMs ?? 5000),
    autoRetry: false,
  });
}

// ---- the real @sendgrid/mail SDK ---------------------------------------------------------------

/** The client inside MailService (its .d.ts does not declare the property). */
interface SendGridClient {
  setDefaultRequest(key: string, value: unknown): unknown;
}

export function sendgridFor(emulator: Emulator, opts: { apiKey?: string; timeoutMs?: number } = {}): MailService {
  const mail = new MailService();
  mail.setApiKey(opts.apiKey ?? emulator.sendgrid.apiKey);
  (mail as unknown as { client: SendGridClient }).client.setDefaultRequest('baseUrl', emulator.url);
  if (opts.timeoutMs) mail.setTimeout(opts.timeoutMs);
  return mail;
}

/** What a ResponseError from @sendgrid/mail carries (the class is not exported at runtime). */
export interface SendGridResponseError extends Error {
  code: number;
  response: { headers: Record<string, string>; body: { errors: Array<{ message: string; field: string | null; help: string | null }> } };
}

// ---- a webhook receiver ------------------------------------------------------------------------

export interface Received {
  method: string;
  /** path + query, as requested */
  path: string;
  /** the absolute URL the sender used (what Twilio signs) */
  url: string;
  headers: http.IncomingHttpHeaders;
  raw: string;
  /** form fields (single values) for form posts */
  form: Record<string, string>;
  /** parsed body for JSON posts */
  json: unknown;
}

export type Responder = (req: Received) => { status: number; body?: string; headers?: Record<string, string> } | 'destroy';

export interface Receiver {
  url: string;
  received: Received[];
  /** changes the answer for the following requests (default 204) */
  respond(fn: Responder): void;
  waitFor(pred: (r: Received[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
}

export async function receiverFor(t: Teardown): Promise<Receiver> {
  const received: Received[] = [];
  let responder: Responder = () => ({ status: 204 });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const type = req.headers['content-type'] ?? '';
      const r: Received = {
        method: req.method ?? '',
        path: req.url ?? '',
        url: `${base}${req.url ?? ''}`,
        headers: req.headers,
        raw,
        form: type.startsWith('application/x-www-form-urlencoded') ? Object.fromEntries(new URLSearchParams(raw)) : {},
        json: type.startsWith('application/json') && raw ? JSON.parse(raw) : undefined,
      };
      received.push(r);
      const answer = responder(r);
      if (answer === 'destroy') {
        req.socket.destroy();
        return;
      }
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    url: base,
    received,
    respond(fn) {
      responder = fn;
    },
    async waitFor(pred, what, timeoutMs = 5000) {
      await waitFor(() => pred(received), { timeoutMs, message: what });
    },
  };
}

/** The error a call that must fail failed with: `any`, since each SDK's error has its own fields (the provider's answer). */
export async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

/** Plain JSON call to the emulator's admin API. */
export async function admin(emulator: Emulator, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${emulator.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

export { waitFor };
