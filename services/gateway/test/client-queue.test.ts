/**
 * One SSE client's queue (src/realtime/client-queue.ts) on its own, over real Writable streams:
 * coalescing, the bound while a socket does not drain, and the bytes it reports to its owner.
 * (The hub around it, the replay overrun and the process budget: realtime-sse.test.ts.)
 */
import { Writable } from 'node:stream';
import t from 'tap';
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
