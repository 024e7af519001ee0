/**
 * A gateway shutting down (SIGTERM, as a rolling restart sends) stops accepting connections, but
 * a request can still arrive on one already open: it must get the contract's 503 with
 * Retry-After (and Connection: close, so the retry goes to another replica), never Fastify's
 * bare `{"error":"Service Unavailable"}` without Retry-After, which the 30-minute soak met once.
 * An event stream asked for then gets `retry:` and ends (never a 5xx on the SSE route).
 *
 * A real gateway process, raw sockets: each connection has begun its request before the signal
 * (Node reaps idle connections at close, not one whose request has started) and finishes it once
 * the gateway says it is draining.
 */
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { createTestDb, testNats, waitFor } from '@hatch/testing';
import { spawnGateway, TEST_TOKEN } from './helpers.js';

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function parse(raw: string): Answer {
  const [head = '', ...rest] = raw.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, body: rest.join('\r\n\r\n') };
}

/** Bytes the server has not read yet on this connection (the server side's Recv-Q, from ss). */
function unread(serverPort: number, clientPort: number): number {
  const out = execFileSync('ss', ['-tnH', 'state', 'established', `( sport = :${serverPort} and dport = :${clientPort} )`], {
    encoding: 'utf8',
  });
  const line = out.trim().split('\n')[0];
  return line ? Number(line.trim().split(/\s+/)[0]) : NaN;
}

/**
 * A connection whose request has begun (the request line and one header sent) and been read by
 * the gateway: until Node has parsed the start of a request it counts the connection as idle
 * and closes it at once on shutdown (then there is nothing to answer).
 */
async function begun(port: number, requestLine: string) {
  const sock = net.connect(port, '127.0.0.1');
  await once(sock, 'connect');
  let raw = '';
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => (raw += d));
  // A reset after the answer (the server closing with bytes unread) must not throw: what was read counts.
  sock.on('error', () => undefined);
  const closed = once(sock, 'close');
  sock.write(`${requestLine}\r\nhost: 127.0.0.1:${port}\r\n`);
  await waitFor(() => unread(port, sock.localPort ?? 0) === 0, { timeoutMs: 10_000, message: 'the gateway read the start of the request' });
  return {
    /** the rest of the request, as given */
    finish: async (rest: string) => {
      sock.write(rest);
      await closed;
      return { ...parse(raw), raw };
    },
  };
}

t.test(
  "requests that reach a draining gateway on connections opened before SIGTERM: the contract's 503 with Retry-After and Connection: close; an event stream gets retry: and ends; the process exits 0",
  async (t) => {
    const db = await createTestDb(t);
    const nats = testNats(t);
    const gw = await spawnGateway(t, db, nats);
    const api = await begun(gw.port, 'GET /api/conversations HTTP/1.1');
    const send = await begun(gw.port, 'POST /api/send_message HTTP/1.1');
    const events = await begun(gw.port, 'GET /api/events HTTP/1.1');
    // one that never finishes its request: the drain cuts it rather than wait for the shutdown bound
    const stuck = await begun(gw.port, 'POST /api/send_message HTTP/1.1');
    const started = Date.now();

    gw.proc.signal('SIGTERM');
    await gw.proc.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('draining'), 15_000);

    const auth = `authorization: Bearer ${TEST_TOKEN}`;
    for (const [name, answer] of [
      ['GET /api/conversations', await api.finish(`${auth}\r\n\r\n`)],
      // No body: the 503 comes before the body would be read, and closing on unread bytes makes
      // the kernel reset the connection, which can discard the answer before the client reads it.
      ['POST /api/send_message', await send.finish(`${auth}\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n`)],
    ] as const) {
      t.equal(answer.status, 503, `${name}: 503`);
      t.equal(answer.headers['retry-after'], '1', `${name}: with Retry-After`);
      t.equal(answer.headers.connection, 'close', `${name}: the connection closes (the retry goes elsewhere)`);
      const body = JSON.parse(answer.body.replace(/^[0-9a-f]+\r\n|\r\n0\r\n$/g, '')) as Record<string, unknown>;
      t.match(body, { success: false, code: 'SERVICE_UNAVAILABLE' }, `${name}: the contract's error shape`);
    }
    const stream = await events.finish(`${auth}\r\naccept: text/event-stream\r\n\r\n`);
    t.equal(stream.status, 200, 'the event stream: 200 (never a 5xx on the SSE route)');
    t.match(stream.raw, /retry: \d+/, 'with a retry: hint, then it ends');
    const cut = await stuck.finish('');
    t.equal(cut.status, 0, 'the unfinished request: its connection is cut, no answer');
    t.equal(await gw.proc.exited, 0, 'the gateway exits 0');
    t.ok(Date.now() - started < 9000, `within the drain cut-off, before the 10 s shutdown bound (${Date.now() - started} ms)`);
    t.equal((await db.db.selectFrom('messages').select('id').execute()).length, 0, 'nothing was stored');
  },
);
