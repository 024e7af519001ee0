import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { MAX_PROVIDER_RETRY_AFTER_MS } from '@hatch/jobs';
import type { Teardownable } from '@hatch/testing';
import { classifyTwilioError, createTwilioPort } from '../src/twilio-client.js';

// Issue 14: a provider's Retry-After parks the job (nak with that delay). A hostile or buggy
// hint must not park it for years: the real twilio SDK against a server that answers 429.

async function twilio429(t: Teardownable, retryAfter: string | undefined) {
  const server = http.createServer((_req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', ...(retryAfter === undefined ? {} : { 'retry-after': retryAfter }) });
    res.end(
      JSON.stringify({ code: 20429, message: 'Too Many Requests', more_info: 'https://www.twilio.com/docs/errors/20429', status: 429 }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = createTwilioPort({
    accountSid: `AC${'0'.repeat(32)}`,
    authToken: 'x'.repeat(32),
    apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    timeoutMs: 2000,
  });
  const err = await port.create({ to: '+14155550100', from: '+15005550006', body: 'hi', statusCallback: 'http://127.0.0.1:1/cb' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  return classifyTwilioError(err);
}

t.test('Twilio 429 with Retry-After: 1000000000 (seconds) parks the job at most the documented maximum', async (t) => {
  const f = await twilio429(t, '1000000000');
  t.match(f, { kind: 'rate_limited', code: '20429' });
  t.equal(f.kind === 'rate_limited' ? f.retryAfterMs : -1, MAX_PROVIDER_RETRY_AFTER_MS, `capped at ${MAX_PROVIDER_RETRY_AFTER_MS} ms`);
});

t.test('an ordinary Retry-After is kept as it is; an HTTP-date one is read; garbage or none leaves the backoff to decide', async (t) => {
  const two = await twilio429(t, '2');
  t.equal(two.kind === 'rate_limited' ? two.retryAfterMs : -1, 2000);
  const dated = await twilio429(t, new Date(Date.now() + 60_000).toUTCString());
  const ms = dated.kind === 'rate_limited' ? (dated.retryAfterMs ?? -1) : -1;
  t.ok(ms > 55_000 && ms <= 60_000, `an HTTP-date a minute ahead → ${ms} ms`);
  const farDate = await twilio429(t, 'Fri, 01 Jan 2500 00:00:00 GMT');
  t.equal(farDate.kind === 'rate_limited' ? farDate.retryAfterMs : -1, MAX_PROVIDER_RETRY_AFTER_MS, 'a date centuries ahead is capped too');
  const garbage = await twilio429(t, 'soon');
  t.match(garbage, { kind: 'rate_limited', retryAfterMs: undefined });
  const none = await twilio429(t, undefined);
  t.match(none, { kind: 'rate_limited', retryAfterMs: undefined });
});

t.test('a retry_after_seconds the error already carries is capped as well (one cap, whatever the source)', async (t) => {
  const f = classifyTwilioError({ status: 429, code: 20429, message: 'Too Many Requests', details: { retry_after_seconds: 1e12 } });
  t.equal(f.kind === 'rate_limited' ? f.retryAfterMs : -1, MAX_PROVIDER_RETRY_AFTER_MS);
  const neg = classifyTwilioError({ status: 429, code: 20429, details: { retry_after_seconds: -5 } });
  t.equal(neg.kind === 'rate_limited' ? neg.retryAfterMs : -1, 0, 'a negative hint is no wait, not a negative delay');
});
