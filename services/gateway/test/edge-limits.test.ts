/**
 * Abuse bounded at the edge (issue 14, SECURITY.md), against real listening gateways over raw
 * sockets: the failed-authentication limit per client address (shared by replicas), the
 * client address behind exactly the configured proxies, slow clients cut by the server's
 * timeouts without cutting event streams, and the request-body bytes read at once bounded.
 */
import t from 'tap';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ConfigError } from '@hatch/config';
import { waitFor } from '@hatch/testing';
import { listening, testGateway, TEST_TOKEN } from './helpers.js';
import { rawRequest } from './raw-http.js';
import { parseGatewayConfig } from '../src/config.js';

const json = { 'content-type': 'application/json' };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

t.test(
  'failed authentications: the 21st in a minute from one address is 429 + Retry-After on every replica; a valid credential keeps working; other addresses are not affected',
  async (t) => {
    const a = await testGateway(t, { HATCH_TRUST_PROXY: '127.0.0.1' });
    const b = await testGateway(t, { HATCH_TRUST_PROXY: '127.0.0.1' }, { replicaOf: a });
    const ports = [await listening(a), await listening(b)];
    const from = (ip: string) => ({ 'x-forwarded-for': ip });
    const attacker = '203.0.113.7';

    // 20 failures spread over both replicas and all three ways to present a credential.
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const port = ports[i % 2] as number;
      const kind = i % 3;
      const res =
        kind === 0
          ? await rawRequest(port, { method: 'GET', target: '/api/conversations', headers: { ...from(attacker), ...bearer(`wrong-${i}`) } })
          : kind === 1
            ? await rawRequest(port, {
                method: 'GET',
                target: '/api/conversations',
                headers: { ...from(attacker), cookie: `hatch_session=v1.9999999999.forged${i}` },
              })
            : await rawRequest(port, {
                method: 'POST',
                target: '/api/session',
                headers: { ...from(attacker), ...json },
                body: JSON.stringify({ token: `wrong-${i}` }),
              });
      statuses.push(res.status);
    }
    t.same(statuses, Array(20).fill(401), 'the first 20 failures are 401');

    for (const port of ports) {
      for (const req of [
        { method: 'GET', target: '/api/conversations', headers: { ...from(attacker), ...bearer('wrong-again') } },
        { method: 'POST', target: '/api/session', headers: { ...from(attacker), ...json }, body: JSON.stringify({ token: 'wrong-again' }) },
      ]) {
        const res = await rawRequest(port, req);
        t.equal(res.status, 429, `${req.method} ${req.target} on replica :${port}: 429`);
        t.match(JSON.parse(res.body), { success: false, code: 'RATE_LIMITED', error: /failed authentications/ }, 'error shape');
        const retryAfter = Number(res.headers['retry-after']);
        t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} s, within the window`);
      }
    }

    const good = await rawRequest(ports[0] as number, {
      method: 'GET',
      target: '/api/conversations',
      headers: { ...from(attacker), ...bearer(TEST_TOKEN) },
    });
    t.equal(good.status, 200, 'the valid token from the same address still works');
    const login = await rawRequest(ports[1] as number, {
      method: 'POST',
      target: '/api/session',
      headers: { ...from(attacker), ...json },
      body: JSON.stringify({ token: TEST_TOKEN }),
    });
    t.equal(login.status, 204, 'and so does signing in with it');

    const other = await rawRequest(ports[0] as number, {
      method: 'GET',
      target: '/api/conversations',
      headers: { ...from('198.51.100.9'), ...bearer('wrong') },
    });
    t.equal(other.status, 401, `another address is still 401 ${other.body}`);
    const anonymous = await rawRequest(ports[0] as number, { method: 'GET', target: '/api/conversations', headers: from('198.51.100.10') });
    t.equal(anonymous.status, 401, 'no credential at all is 401');
  },
);

t.test('a missing credential is not a guess: a page that asks without one never gets 429', async (t) => {
  const g = await testGateway(t);
  const port = await listening(g);
  for (let i = 0; i < 30; i++) {
    const res = await rawRequest(port, { method: 'GET', target: '/api/conversations' });
    if (res.status !== 401) t.fail(`attempt ${i}: ${res.status}`);
  }
  t.pass('30 requests without credentials: all 401');
});

t.test('the client address is the peer unless proxies are configured: a forged X-Forwarded-For does not escape the limit', async (t) => {
  const direct = await testGateway(t);
  const port = await listening(direct);
  const statuses: number[] = [];
  for (let i = 0; i < 21; i++) {
    const res = await rawRequest(port, {
      method: 'GET',
      target: '/api/conversations',
      headers: { 'x-forwarded-for': `192.0.2.${i}`, ...bearer('wrong') },
    });
    statuses.push(res.status);
  }
  t.same(statuses.slice(0, 20), Array(20).fill(401), '20 × 401');
  t.equal(statuses[20], 429, 'the 21st is 429 whatever X-Forwarded-For says');

  // Behind one proxy hop, only the address the proxy appended counts: a client-sent prefix is ignored.
  const proxied = await testGateway(t, { HATCH_TRUST_PROXY: '127.0.0.1' });
  const pport = await listening(proxied);
  const seen: number[] = [];
  for (let i = 0; i < 21; i++) {
    const res = await rawRequest(pport, {
      method: 'GET',
      target: '/api/conversations',
      headers: { 'x-forwarded-for': `192.0.2.${i}, 203.0.113.50`, ...bearer('wrong') },
    });
    seen.push(res.status);
  }
  t.same(seen.slice(0, 20), Array(20).fill(401), '20 × 401');
  t.equal(seen[20], 429, 'the hop the proxy added (203.0.113.50) is the client, not the forged first entry');
  const next = await rawRequest(pport, {
    method: 'GET',
    target: '/api/conversations',
    headers: { 'x-forwarded-for': '203.0.113.50, 203.0.113.51', ...bearer('wrong') },
  });
  t.equal(next.status, 401, 'a client behind another proxy hop is another address');
});

t.test('HATCH_TRUST_PROXY takes proxy addresses and refuses "trust everyone"', async (t) => {
  const env = { DATABASE_URL: 'postgres://x@127.0.0.1/x', HATCH_API_TOKEN: TEST_TOKEN };
  t.equal(parseGatewayConfig(env).trustProxy, false, 'unset: no proxy');
  t.same(parseGatewayConfig({ ...env, HATCH_TRUST_PROXY: '172.28.0.10' }).trustProxy, ['172.28.0.10']);
  t.same(parseGatewayConfig({ ...env, HATCH_TRUST_PROXY: '10.0.0.0/8, 192.168.1.4, loopback' }).trustProxy, [
    '10.0.0.0/8',
    '192.168.1.4',
    'loopback',
  ]);
  for (const bad of ['true', '*', '0', '1', '10', '0.0.0.0/0', '::/0', '10.0.0.1,0.0.0.0/0', 'example.com', '10.0.0.0/33']) {
    t.throws(() => parseGatewayConfig({ ...env, HATCH_TRUST_PROXY: bad }), ConfigError, `${bad} refused`);
  }
});

t.test('a client that sends its headers too slowly is cut; an event stream outlives the request timeout', async (t) => {
  // The headers timeout alone (the request timeout is far off) cuts a client trickling headers.
  const g = await testGateway(t, { HATCH_HTTP_HEADERS_TIMEOUT_MS: '1000', HATCH_HTTP_REQUEST_TIMEOUT_MS: '60000' });
  const port = await listening(g);

  const slow = net.connect(port, '127.0.0.1');
  let answer = '';
  let closed = false;
  slow.on('data', (c: Buffer) => (answer += c.toString()));
  slow.on('close', () => (closed = true));
  slow.on('error', () => {});
  slow.write('GET /api/conversations HTTP/1.1\r\nhost: x\r\n');
  const trickle = setInterval(() => slow.write(`x-slow-${Date.now()}: 1\r\n`), 200);
  t.teardown(() => {
    clearInterval(trickle);
    slow.destroy();
  });
  await waitFor(() => closed, { timeoutMs: 8000, message: 'the slow client is cut' });
  clearInterval(trickle);
  t.match(answer, /^(HTTP\/1\.1 408|)/, 'a 408 or a plain close');

  // An SSE stream goes on well past the request timeout: heartbeats keep coming.
  const short = await testGateway(t, { HATCH_HTTP_REQUEST_TIMEOUT_MS: '1500', HATCH_SSE_HEARTBEAT_MS: '300' });
  const shortPort = await listening(short);
  const stream = net.connect(shortPort, '127.0.0.1');
  let received = '';
  stream.on('data', (c: Buffer) => (received += c.toString()));
  t.teardown(() => stream.destroy());
  stream.write(`GET /api/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TEST_TOKEN}\r\naccept: text/event-stream\r\n\r\n`);
  const started = Date.now();
  await waitFor(() => Date.now() - started > 3000 && received.split(': heartbeat').length > 4, {
    timeoutMs: 10_000,
    message: 'heartbeats past twice the request timeout',
  });
  t.ok(!stream.destroyed, 'the stream is still open');
  t.match(received, /^HTTP\/1\.1 200/, 'the stream was answered 200');
});

/** Opens a POST that declares `length` bytes and sends only the first few: it holds its reservation. */
function heldUpload(port: number, target: string, length: number): net.Socket {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  s.write(
    `POST ${target} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TEST_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n{"to_email":`,
  );
  return s;
}

async function bodyBytesInFlight(app: FastifyInstance): Promise<number> {
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  return Number(/^hatch_http_body_bytes_in_flight(?:\{[^}]*\})? (\d+)$/m.exec(res.body)?.[1] ?? NaN);
}

t.test(
  'request-body bytes read at once are bounded: past the budget a request with a body is 503 + Retry-After; freed when a reader goes',
  async (t) => {
    const g = await testGateway(t, { HATCH_BODY_BYTES_IN_FLIGHT_MAX: String(4 * 1024 * 1024), HATCH_RATE_LIMIT_PER_MINUTE: '100000' });
    const port = await listening(g);
    const big = 3 * 1024 * 1024;
    const first = heldUpload(port, '/api/send_email', big);
    t.teardown(() => first.destroy());
    await waitFor(async () => (await bodyBytesInFlight(g.app)) === big, {
      timeoutMs: 5000,
      message: 'the first upload holds its reservation',
    });

    const refused = await rawRequest(port, {
      method: 'POST',
      target: '/api/send_email',
      headers: { ...bearer(TEST_TOKEN), ...json },
      contentLength: String(2 * 1024 * 1024),
      body: '',
      timeoutMs: 5000,
    });
    t.equal(refused.status, 503, 'a second large body is refused');
    t.equal(refused.headers['retry-after'], '1', 'with Retry-After');
    t.match(JSON.parse(refused.body), { success: false, code: 'SERVICE_UNAVAILABLE' });

    const small = await rawRequest(port, {
      method: 'POST',
      target: '/api/send_message',
      headers: { ...bearer(TEST_TOKEN), ...json },
      body: JSON.stringify({ to: 'Alice', body: 'fits in what is left' }),
    });
    t.equal(small.status, 202, 'a small body still fits');
    const get = await rawRequest(port, { method: 'GET', target: '/api/conversations', headers: bearer(TEST_TOKEN) });
    t.equal(get.status, 200, 'requests without a body reserve nothing');

    first.destroy();
    await waitFor(async () => (await bodyBytesInFlight(g.app)) === 0, {
      timeoutMs: 5000,
      message: 'the reservation is given back when the reader goes',
    });
    const again = heldUpload(port, '/api/send_email', big);
    t.teardown(() => again.destroy());
    await waitFor(async () => (await bodyBytesInFlight(g.app)) === big, { timeoutMs: 5000, message: 'a new large upload is taken' });
    again.destroy();

    // A chunked body declares no size: each chunk is reserved as it arrives.
    const chunkedSmall = await rawRequest(port, {
      method: 'POST',
      target: '/api/send_message',
      headers: { ...bearer(TEST_TOKEN), ...json },
      chunks: ['{"to": "Bob", ', '"body": "chunked"}'],
    });
    t.equal(chunkedSmall.status, 202, 'a small chunked body reserves only what it sends');
    const holder = heldUpload(port, '/api/send_email', big);
    t.teardown(() => holder.destroy());
    await waitFor(async () => (await bodyBytesInFlight(g.app)) === big, {
      timeoutMs: 5000,
      message: 'a large upload holds its reservation',
    });
    const chunkedBig = await rawRequest(port, {
      method: 'POST',
      target: '/api/send_email',
      headers: { ...bearer(TEST_TOKEN), ...json },
      chunks: ['{"to_email": "a@example.com", "subject": "s", "body": "', 'x'.repeat(600 * 1024), 'x'.repeat(600 * 1024), '"}'],
      timeoutMs: 5000,
    });
    t.equal(chunkedBig.status, 503, 'a chunked body that grows past the budget is cut');
    t.equal(chunkedBig.headers['retry-after'], '1', 'with Retry-After');
    holder.destroy();
    await waitFor(async () => (await bodyBytesInFlight(g.app)) === 0, { timeoutMs: 5000, message: 'everything given back' });

    const unauth = await rawRequest(port, {
      method: 'POST',
      target: '/api/send_email',
      headers: json,
      contentLength: String(8 * 1024 * 1024),
      body: '',
      timeoutMs: 5000,
    });
    t.equal(unauth.status, 401, 'an unauthenticated body is refused before it reserves anything');
  },
);
