/**
 * One SSE client's queue (src/realtime/client-queue.ts) on its own, over real Writable streams:
 * coalescing, the bound while a socket does not drain, and the bytes it reports to its owner.
 * (The hub around it, the replay overrun and the process budget: realtime-sse.test.ts.)
 */
import { createServer, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { HubClient, type QueueOwner } from '../src/realtime/client-queue.js';

/** An owner that keeps the sums the hub would. */
function owner() {
  const o = {
    bytes: 0,
    writes: 0,
    slow: 0,
    overruns: 0,
    removed: [] as HubClient[],
    budgetChecks: 0,
  };
  const api: QueueOwner = {
    addBytes: (d) => void (o.bytes += d),
    checkBudget: () => void o.budgetChecks++,
    scheduleFlush: (c) => void setImmediate(() => c.flush()),
    countSent: (n) => void (o.writes += n),
    countSlow: () => void o.slow++,
    countReplayOverrun: () => void o.overruns++,
    remove: (c) => void o.removed.push(c),
  };
  return { o, api };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

t.test('frames queued in one tick go out as one socket write, in order; the bytes are given back once the socket took them', async (t) => {
  const { o, api } = owner();
  const chunks: string[] = [];
  const out = new Writable({ write: (chunk: Buffer, _e, cb) => (chunks.push(chunk.toString()), cb()) });
  const c = new HubClient(api, out, undefined, 1000, () => t.fail('not cut'));
  c.goLive();
  const frames = Array.from({ length: 100 }, (_, i) => `id: ${i}\n\n`);
  for (const f of frames) c.enqueue(f);
  t.equal(o.bytes, frames.join('').length, 'held until written');
  await c.drained();
  t.equal(chunks.length, 1, 'one write');
  t.equal(chunks[0], frames.join(''), 'every frame, in order');
  t.equal(o.writes, 1, 'one write counted');
  t.equal(o.bytes, 0, 'all bytes given back');
  c.enqueue('id: next\n\n');
  await c.drained();
  t.equal(chunks.length, 2, 'the next tick writes again');
});

t.test(
  'a socket that does not drain: frames queue up to the bound, then the client is cut, removed, and gives back every byte it held',
  async (t) => {
    const { o, api } = owner();
    const stuck = new Writable({ highWaterMark: 1, write: () => undefined }); // takes one write, never calls back
    let cut = false;
    const c = new HubClient(api, stuck, undefined, 10, () => (cut = true));
    c.goLive();
    c.enqueue('id: 0\n\n');
    await tick(); // written: the socket is now full
    t.equal(c.blocked, true, 'blocked');
    t.equal(o.budgetChecks, 1, 'the owner is told it may be over budget');
    let maxQueued = 0;
    for (let i = 1; i <= 30 && !cut; i++) {
      c.enqueue(`id: ${i}\n\n`);
      maxQueued = Math.max(maxQueued, c.queued);
    }
    t.ok(cut, 'cut off');
    t.equal(maxQueued, 10, 'queued up to the bound, never beyond');
    t.equal(o.slow, 1, 'counted as slow');
    t.same(o.removed, [c], 'removed from its owner');
    t.equal(o.bytes, 0, 'every byte given back, the unflushed write too');
    c.enqueue('id: late\n\n');
    t.equal(c.queued, 0, 'a closed client takes nothing');
  },
);

t.test('a conversation filter and a resume point: only the frames the client should see are delivered', async (t) => {
  const { api } = owner();
  const chunks: string[] = [];
  const out = new Writable({ write: (chunk: Buffer, _e, cb) => (chunks.push(chunk.toString()), cb()) });
  const c = new HubClient(api, out, 'conv-a', 100, () => t.fail('not cut'));
  c.skipUpTo = 2n;
  c.goLive();
  const frame = (id: number, conversationId: string) => ({ id: BigInt(id), text: `id: ${id}\n\n`, bytes: 7, conversationId });
  c.deliver(frame(1, 'conv-a')); // already seen
  c.deliver(frame(3, 'conv-b')); // another conversation
  c.deliver(frame(4, 'conv-a'));
  await c.drained();
  t.same(chunks.join('').match(/\d+/g), ['4']);
});

/** A real HTTP server whose one SSE response (chunked) feeds a HubClient, and a raw TCP client of it. */
async function overTcp(t: Test) {
  const { o, api } = owner();
  let res!: ServerResponse;
  const server = createServer((_req, r) => {
    res = r;
    r.writeHead(200, { 'content-type': 'text/event-stream' }); // the head goes out with the first write, as @fastify/sse's
    gotResponse();
  });
  let gotResponse!: () => void;
  const responded = new Promise<void>((resolve) => (gotResponse = resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sock = connect((server.address() as AddressInfo).port, '127.0.0.1');
  t.teardown(() => {
    sock.destroy();
    server.closeAllConnections();
    server.close();
  });
  sock.write('GET / HTTP/1.1\r\nhost: test\r\n\r\n');
  await responded;
  return { o, api, res, sock };
}

/** Reads the socket until `done(bytes so far)` holds (deadline: the tap test timeout). */
function readUntil(sock: Socket, done: (raw: Buffer) => boolean): Promise<Buffer> {
  const got: Buffer[] = [];
  return new Promise((resolve) => {
    const onData = (b: Buffer) => {
      got.push(b);
      const raw = Buffer.concat(got);
      if (done(raw)) {
        sock.off('data', onData);
        resolve(raw);
      }
    };
    sock.on('data', onData);
  });
}

/** The body of a chunked HTTP/1.1 answer: each chunk's declared length must be its byte length. */
function dechunk(t: Test, raw: Buffer): { chunks: string[]; ended: boolean } {
  let at = raw.indexOf('\r\n\r\n') + 4;
  t.match(raw.subarray(0, at).toString('latin1'), /transfer-encoding: chunked/i, 'chunked');
  const chunks: string[] = [];
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16);
    t.match(raw.subarray(at, eol).toString('latin1'), /^[0-9a-f]+$/, 'a hex chunk size line');
    const body = raw.subarray(eol + 2, eol + 2 + size);
    t.equal(raw.subarray(eol + 2 + size, eol + 4 + size).toString('latin1'), '\r\n', 'the chunk ends exactly at its declared size');
    at = eol + 4 + size;
    if (size === 0) return { chunks, ended: at === raw.length };
    chunks.push(body.toString('utf8'));
  }
}

t.test(
  'over a real socket: frames go out as HTTP chunks whose sizes are their UTF-8 bytes (multi-byte text too), in order with writes through the response, and the response ends the stream',
  async (t) => {
    const { o, api, res, sock } = await overTcp(t);
    const c = new HubClient(api, res, undefined, 1000, () => t.fail('not cut'));
    c.goLive();
    const frames = ['retry: 500\n\n', 'id: 1\nevent: message_update\ndata: {"body":"héllo € 😀 ✓"}\n\n', 'id: 2\ndata: ascii\n\n'];
    c.enqueue(frames[0] as string);
    await c.drained();
    c.enqueue(frames[1] as string); // two frames in one tick: one chunk
    c.enqueue(frames[2] as string);
    await c.drained();
    res.write(': heartbeat\n\n'); // what @fastify/sse writes through the response meanwhile
    c.enqueue('id: 3\ndata: "Ω"\n\n');
    await c.drained();
    t.equal(o.bytes, 0, 'the socket took every byte: none held');
    res.end();
    const { chunks, ended } = dechunk(t, await readUntil(sock, (raw) => raw.subarray(-5).toString('latin1') === '0\r\n\r\n'));
    t.same(
      chunks,
      [frames[0], `${frames[1]}${frames[2]}`, ': heartbeat\n\n', 'id: 3\ndata: "Ω"\n\n'],
      'every frame, in order, one chunk per write',
    );
    t.ok(ended, 'the last chunk is the response end');
    t.equal(o.writes, 3, 'three writes counted');
  },
);

t.test(
  'over a real socket the client does not read: what the kernel would not take stays held, the client blocks, and all of it is given back once the reader reads',
  async (t) => {
    const { o, api, res, sock } = await overTcp(t);
    sock.pause();
    const c = new HubClient(api, res, undefined, 1_000_000, () => t.fail('not cut'));
    c.goLive();
    const frame = `data: ${'€'.repeat(100_000)}\n\n`; // 300,008 bytes
    const bytes = Buffer.byteLength(frame);
    let sent = 0;
    while (!c.blocked && sent < 400) {
      c.enqueue(frame);
      sent++;
      await tick();
    }
    t.ok(c.blocked, `blocked after ${sent} frames`);
    t.ok(o.bytes > 0 && o.bytes === c.bytes, `${o.bytes} bytes held, as the client says`);
    t.ok(o.bytes <= sent * bytes, 'never more than was written');
    const drained = c.drained();
    sock.resume();
    sock.on('data', () => undefined);
    await drained;
    t.equal(c.blocked, false, 'drained');
    t.equal(o.bytes, 0, 'every byte given back once the kernel took it');
    t.equal(c.bytes, 0);
  },
);

t.test(
  'over a real socket: a chunk is sized from its own text, not from the count it came with, and an empty write is no chunk at all (a 0-size chunk would end the response)',
  async (t) => {
    const { o, api, res, sock } = await overTcp(t);
    const c = new HubClient(api, res, undefined, 1000, () => t.fail('not cut'));
    c.goLive();
    c.enqueue('retry: 500\n\n'); // the head goes out with this one, through the response
    await c.drained();
    c.enqueue('', 0);
    await c.drained();
    const frame = 'id: 5\ndata: "é"\n\n';
    c.enqueue(frame, 3); // a wrong byte count
    await c.drained();
    t.equal(o.bytes, 0, 'every byte counted is given back');
    res.end();
    const { chunks, ended } = dechunk(t, await readUntil(sock, (raw) => raw.subarray(-5).toString('latin1') === '0\r\n\r\n'));
    t.same(chunks, ['retry: 500\n\n', frame], 'both frames, each in a chunk of its own size');
    t.ok(ended, 'the only 0-size chunk is the response end');
  },
);
