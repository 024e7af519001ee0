import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { MAX_PROVIDER_RETRY_AFTER_MS } from '@hatch/jobs';
import type { Teardownable } from '@hatch/testing';
import { classifySendGridError, createSendGridPort } from '../src/sendgrid-client.js';

// Issue 14: SendGrid's X-RateLimit-Reset (or a Retry-After) parks the job (nak with that delay).
// A hostile or buggy hint must not park it for years: the real @sendgrid/mail SDK against a
// server that answers 429 with the given headers.

async function sendgrid429(t: Teardownable, headers: Record<string, string>) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(429, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify({ errors: [{ message: 'too many requests', field: null }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = createSendGridPort({
    apiKey: 'SG.test-key',
    apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    timeoutMs: 2000,
  });
  const err = await port
    .send({
      emailId: '0190a0a0-0000-7000-8000-000000000001',
      from: 'hatch@example.com',
      to: ['ann@example.com'],
      cc: [],
      bcc: [],
      replyTo: null,
      subject: 's',
      text: 't',
      html: '<p>t</p>',
      attachments: [],
    })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  return classifySendGridError(err);
}

const delay = (f: ReturnType<typeof classifySendGridError>) => (f.kind === 'rate_limited' ? f.retryAfterMs : -1);

t.test('SendGrid 429 with X-RateLimit-Reset 10^9 seconds ahead parks the job at most the documented maximum', async (t) => {
  const f = await sendgrid429(t, { 'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 1e9) });
  t.match(f, { kind: 'rate_limited', code: 'HTTP_429' });
  t.equal(delay(f), MAX_PROVIDER_RETRY_AFTER_MS, `capped at ${MAX_PROVIDER_RETRY_AFTER_MS} ms`);
});

t.test('SendGrid 429 with Retry-After: 1000000000 (and no reset) is capped the same way', async (t) => {
  t.equal(delay(await sendgrid429(t, { 'retry-after': '1000000000' })), MAX_PROVIDER_RETRY_AFTER_MS);
});

t.test('an ordinary reset is kept (at least 1 s); a reset in the past means soon; garbage leaves the backoff to decide', async (t) => {
  const soon = delay(await sendgrid429(t, { 'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 5) })) ?? -1;
  t.ok(soon > 3000 && soon <= 5000, `a reset 5 s ahead → ${soon} ms`);
  t.equal(delay(await sendgrid429(t, { 'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) - 60) })), 1000);
  t.equal(delay(await sendgrid429(t, { 'x-ratelimit-reset': 'tomorrow' })), undefined);
  t.equal(delay(await sendgrid429(t, {})), undefined);
});
