/**
 * GET /api/events end to end: real PostgreSQL, real NATS, the realtime-bridge as a real process,
 * two gateway replicas (build() + listen on real ports), SSE clients over HTTP.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { connectBus, ensureStreams } from '@hatch/bus';
import { createMetricsRegistry } from '@hatch/service';
import { createTestDb, spawnNats, testNats, waitFor, type Teardownable } from '@hatch/testing';
import type { Db } from '@hatch/db';
import { newSessionCookie } from '../src/auth.js';
import { RealtimeHub } from '../src/realtime/hub.js';
import { spawnGateway, startBridge } from './helpers.js';
import { openSse, type SseClient } from './sse-client.js';
import { AUTH, conversation, ids, journal, log, maxId, metricOf, replica, updates, write } from './realtime-harness.js';

async function setup(t: Teardownable, opts: { natsUrl?: string; env?: Record<string, string> } = {}) {
  const db = await createTestDb(t);
  const nats = testNats(t, { url: opts.natsUrl });
  const bridge = await startBridge(t, db, nats, { HATCH_BRIDGE_LOCK_RETRY_MS: '200', HATCH_BRIDGE_HEARTBEAT_MS: '500' });
  const a = await replica(t, db, nats.url, nats.prefix, opts.env);
  const b = await replica(t, db, nats.url, nats.prefix, opts.env);
  return { db, nats, bridge, a, b };
}

// One bridge process and two replicas shared by the tests that need no special settings (each
// uses its own conversation and only counts journal ids above where it started).
let sharedSetup: ReturnType<typeof setup> | undefined;
const shared = () => (sharedSetup ??= setup(t));

/** Writes rounds of 200 events until `done` holds; returns how many were written. */
async function writeUntil(db: Db, conv: string, done: () => Promise<boolean>, message: string, timeoutMs = 60_000): Promise<number> {
  let written = 0;
  await waitFor(
    async () => {
      await write(db, conv, 200, 50);
      written += 200;
      return done();
    },
    { timeoutMs, intervalMs: 10, message },
  );
  return written;
}

/** A hub on NATS names of its own, not started: the test drives its clients. */
async function testHub(t: Teardownable, opts: { clientQueueMax: number; queueBudgetBytes?: number }) {
  const nats = testNats(t);
  const bus = await connectBus({ url: nats.url, name: 'hub-test', log });
  t.teardown(() => bus.close(1000));
  await ensureStreams(bus.jsm, nats.names);
  const db = await createTestDb(t);
  const hub = new RealtimeHub({ names: nats.names, bus, db, log, registry: createMetricsRegistry('gateway'), maxClients: 10, ...opts });
  return { hub, bus, names: nats.names };
}

t.test('two clients on two gateway replicas both receive every event, in order, once; headers, heartbeat, auth', async (t) => {
  const { db, a, b } = await shared();
  const conv = await conversation(db);
  const start = await maxId(db);
  const unauth = await a.app.inject({ method: 'GET', url: '/api/events', headers: { accept: 'text/event-stream' } });
  t.equal(unauth.statusCode, 401);
  const c1 = await openSse(`${a.url}/api/events`, AUTH);
  const c2 = await openSse(`${b.url}/api/events`, { cookie: await newSessionCookie(b.app) });
  for (const c of [c1, c2]) {
    t.equal(c.status, 200);
    t.match(c.headers['content-type'], /^text\/event-stream/);
    t.equal(c.headers['cache-control'], 'no-cache');
    t.equal(c.headers['x-accel-buffering'], 'no');
    t.notOk(c.headers['content-encoding'], 'no compression');
    await c.waitFor((x) => x.of('connected').length === 1, 10_000, 'connected event');
    t.match(c.of('connected')[0], { type: 'connected', client_id: /^[0-9a-f-]{36}$/ });
    t.equal(c.retry, 500, 'retry: hint');
  }
  await write(db, conv, 200);
  const expected = (await journal(db)).filter((id) => id > start);
  for (const c of [c1, c2]) await c.waitFor((x) => updates(x).length >= 200, 20_000, 'all 200 events');
  t.same(ids(c1), expected, 'replica A: all, in order, once');
  t.same(ids(c2), expected, 'replica B: all, in order, once');
  t.match(c1.of('message_update')[0], {
    type: 'message_update',
    conversation_id: conv,
    action: 'INSERT',
    status: 'stored',
    message_id: /-/,
    timestamp: /T/,
  });
  await c1.waitFor((x) => x.comments.includes('heartbeat'), 5000, 'heartbeat comment');
  const ready = await a.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.json().checks.events.ok, true, 'readiness includes the events subscription');
  const rt = ready.json().realtime;
  t.ok(
    typeof rt.last_event_lag_ms === 'number' && rt.last_event_lag_ms >= 0,
    `readiness reports the realtime lag (${rt.last_event_lag_ms} ms)`,
  );
  t.equal(rt.position, String(expected[expected.length - 1]), 'and the journal position this gateway has reached');
  const metrics = (await a.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /hatch_sse_clients\{[^}]*\} 1/);
  c1.close();
  c2.close();
});

t.test(
  'T7: resume with Last-Event-ID on the other replica gets exactly the missed events in order, then live; ?lastEventId= too; ?conversation_id filters',
  async (t) => {
    const { db, a, b } = await shared();
    const conv = await conversation(db);
    const other = await conversation(db);
    const c1 = await openSse(`${a.url}/api/events`, AUTH);
    const filtered = await openSse(`${b.url}/api/events?conversation_id=${other}`, AUTH);
    await c1.waitFor((x) => x.of('connected').length === 1);
    await filtered.waitFor((x) => x.of('connected').length === 1);
    await write(db, conv, 100);
    await c1.waitFor((x) => updates(x).length >= 100, 20_000);
    const lastSeen = String(ids(c1).at(-1));
    c1.close();
    await write(db, conv, 50);
    await write(db, other, 5, 1);
    const all = await journal(db);
    const missed = all.filter((id) => id > Number(lastSeen));
    const r1 = await openSse(`${b.url}/api/events`, { ...AUTH, 'last-event-id': lastSeen });
    const r2 = await openSse(`${a.url}/api/events?lastEventId=${lastSeen}`, AUTH);
    for (const r of [r1, r2]) await r.waitFor((x) => updates(x).length >= 55, 20_000, 'replayed the missed events');
    t.same(ids(r1), missed, 'replica B: exactly the missed ones, in order');
    t.same(ids(r2), missed, '?lastEventId=: the same');
    await write(db, conv, 3, 1);
    const after = await journal(db);
    for (const r of [r1, r2]) await r.waitFor((x) => updates(x).length >= 58, 10_000, 'then live');
    t.same(
      ids(r1),
      after.filter((id) => id > Number(lastSeen)),
      'no gap and no duplicate at the seam',
    );
    await filtered.waitFor((x) => updates(x).length >= 5, 10_000);
    t.ok(
      filtered.of<{ conversation_id: string }>('message_update').every((e) => e.conversation_id === other),
      'only its conversation',
    );
    t.equal(updates(filtered).length, 5);
    for (const c of [r1, r2, filtered]) c.close();
  },
);

t.test('unresumable ids get a reset event (200, never an error): garbage, unknown (future), too old', async (t) => {
  const { db, a, b } = await shared();
  const conv = await conversation(db);
  const start = await maxId(db);
  await write(db, conv, 20);
  const first = await openSse(`${a.url}/api/events`, AUTH);
  await write(db, conv, 1);
  const last = await maxId(db);
  // every event so far has reached the gateways: what follows the resets is only what is new
  await first.waitFor((x) => ids(x).includes(last), 15_000);
  first.close();
  const garbage = await openSse(`${a.url}/api/events`, { ...AUTH, 'last-event-id': 'not-an-id' });
  const future = await openSse(`${b.url}/api/events?lastEventId=99999999`, AUTH);
  // retention took rows 1..10
  await db.db
    .deleteFrom('change_journal')
    .where('id', '<=', String(start + 10))
    .execute();
  const old = await openSse(`${b.url}/api/events`, { ...AUTH, 'last-event-id': String(start + 3) });
  for (const [c, reason] of [
    [garbage, 'unknown_id'],
    [future, 'unknown_id'],
    [old, 'too_old'],
  ] as const) {
    t.equal(c.status, 200);
    await c.waitFor((x) => x.of('reset').length === 1, 10_000, `reset ${reason}`);
    t.match(c.of('reset')[0], { type: 'reset', reason });
    t.equal(updates(c).length, 0, 'nothing replayed');
  }
  await write(db, conv, 1);
  await old.waitFor((x) => updates(x).length === 1, 10_000, 'live after the reset');
  for (const c of [garbage, future, old]) c.close();
});

t.test(
  'a resume with an id the journal holds but this replica has not reached (it lags the bridge) ends the stream for a retry, not a reset; once caught up the same id resumes without loss',
  async (t) => {
    const db = await createTestDb(t);
    const nats = testNats(t);
    // No bridge yet: the journal moves on, this replica's position does not (a lagging subscription).
    const a = await replica(t, db, nats.url, nats.prefix);
    const conv = await conversation(db);
    await write(db, conv, 3);
    const held = await maxId(db);
    await write(db, conv, 2);
    const lagging = await openSse(`${a.url}/api/events`, { ...AUTH, 'last-event-id': String(held) });
    t.equal(lagging.status, 200);
    await lagging.waitFor((x) => x.ended(), 15_000, 'the stream ends');
    t.equal(lagging.of('reset').length, 0, 'no reset: the id is one of ours');
    t.equal(updates(lagging).length, 0, 'nothing sent');
    t.equal(await metricOf(a.app, 'hatch_sse_lagging_resumes_total'), 1, 'counted as a lagging resume');
    // An id past the journal is still not ours: reset.
    const forged = await openSse(`${a.url}/api/events`, { ...AUTH, 'last-event-id': String(held + 1000) });
    await forged.waitFor((x) => x.of('reset').length === 1, 15_000, 'reset for an id past the journal');
    forged.close();
    // The bridge catches the replica up; the client's retry with the same id gets exactly what followed it.
    const live = await openSse(`${a.url}/api/events`, AUTH);
    await startBridge(t, db, nats, { HATCH_BRIDGE_LOCK_RETRY_MS: '200', HATCH_BRIDGE_HEARTBEAT_MS: '500' });
    const last = await maxId(db);
    await live.waitFor((x) => ids(x).includes(last), 30_000, 'the replica caught up');
    live.close();
    const retried = await openSse(`${a.url}/api/events`, { ...AUTH, 'last-event-id': String(held) });
    await retried.waitFor((x) => ids(x).includes(last), 15_000, 'the events after the id');
    t.same(
      ids(retried),
      (await journal(db)).filter((id) => id > held),
      'every event after the id, once, in order',
    );
    t.equal(retried.of('reset').length, 0);
    retried.close();
  },
);

t.test('limits: past the connection limit a client gets 200 + retry: and the stream ends; shutdown ends every stream', async (t) => {
  const { db, nats } = await shared();
  const a = await replica(t, db, nats.url, nats.prefix, { HATCH_SSE_MAX_CLIENTS: '1' });
  const c1 = await openSse(`${a.url}/api/events`, AUTH);
  await c1.waitFor((x) => x.of('connected').length === 1);
  const c2 = await openSse(`${a.url}/api/events`, AUTH);
  t.equal(c2.status, 200);
  await c2.waitFor((x) => x.ended(), 5000, 'refused stream ends');
  t.equal(c2.retry, 500);
  await a.app.close();
  await c1.waitFor((x) => x.ended(), 5000, 'preClose ended the stream');
});

t.test('slow client: a client whose socket does not drain is cut off at its queue bound, never beyond', async (t) => {
  const db = await createTestDb(t);
  const { hub, bus, names } = await testHub(t, { clientQueueMax: 10 });
  hub.start();
  t.teardown(() => hub.stop());
  await hub.waitSynced(5000);
  // A socket that accepts one write and never drains (a client that stopped reading).
  const stuck = new Writable({ highWaterMark: 1, write: () => undefined });
  let cut = false;
  let maxQueued = 0;
  const client = hub.register(stuck, undefined, () => (cut = true));
  t.ok(client);
  client?.goLive();
  const conv = randomUUID();
  for (let i = 1; i <= 30 && !cut; i++) {
    const env = {
      id: String(i),
      event: {
        type: 'message_update',
        conversation_id: conv,
        action: 'INSERT',
        message_id: randomUUID(),
        status: 'stored',
        timestamp: new Date().toISOString(),
      },
    };
    await bus.js.publish(names.subjects.eventFor('messages'), new TextEncoder().encode(JSON.stringify(env)));
    await waitFor(() => hub.lastId >= BigInt(i), { timeoutMs: 5000 });
    maxQueued = Math.max(maxQueued, client?.queued ?? 0);
  }
  t.ok(cut, 'cut off');
  t.ok(maxQueued <= 10, `queue never above its bound (max ${maxQueued})`);
  t.equal(hub.clientCount, 0, 'removed from the hub');
  t.equal((await hub.metrics.slow.get()).values[0]?.value, 1, 'counted');
  void db;
});

t.test(
  'replay overrun: live frames held past half the bound are dropped and the replay extended over them; a replaying client that does not drain is cut',
  async (t) => {
    const { hub } = await testHub(t, { clientQueueMax: 10 });
    const frame = (id: number) => ({ id: BigInt(id), text: `id: ${id}\n\n`, bytes: `id: ${id}\n\n`.length });
    const tick = () => new Promise((r) => setImmediate(r));

    // A client that reads: held frames overrun twice (5 held, the 6th drops them), never cut.
    const got: string[] = [];
    const reading = new Writable({ write: (chunk: Buffer, _e, cb) => (got.push(chunk.toString()), cb()) });
    let cut = false;
    const c = hub.register(reading, undefined, () => (cut = true));
    if (!c) throw new Error('registered');
    let maxQueued = 0;
    for (let i = 1; i <= 14; i++) {
      c.deliver(frame(i));
      maxQueued = Math.max(maxQueued, c.queued);
    }
    t.notOk(cut, 'a reading client is not cut while it replays');
    t.equal(c.replayUpTo, 12n, 'the replay must now reach the last dropped frame');
    t.ok(maxQueued <= 5, `held frames never above half the bound (max ${maxQueued})`);
    t.equal((await hub.metrics.replayOverruns.get()).values[0]?.value, 2, 'overruns counted');
    c.skipUpTo = c.replayUpTo; // the route replays up to it, then:
    c.goLive();
    await tick();
    t.same(got.join('').match(/\d+/g), ['13', '14'], 'only the frames after the extended replay follow from the held ones');
    c.close();

    // A client whose socket does not drain while it replays: each overrun is a strike, the third cuts it.
    const stuck = new Writable({ highWaterMark: 1, write: () => undefined });
    let stuckCut = false;
    const s = hub.register(stuck, undefined, () => (stuckCut = true));
    if (!s) throw new Error('registered');
    s.enqueue('id: 0\n\n'); // a replay batch the client never takes
    await tick();
    let cutAt = 0;
    for (let i = 1; i <= 30 && !stuckCut; i++) {
      s.deliver(frame(i));
      if (stuckCut) cutAt = i;
    }
    t.equal(cutAt, 18, 'cut at the third overrun (frames 6, 12, 18)');

    // A client that reads, slowly: every write fills its socket, which drains a tick later. Each
    // overrun finds the socket full, but it took writes since the last one: never cut.
    const slowReader = new Writable({ highWaterMark: 1, write: (_c, _e, cb) => void setImmediate(cb) });
    let slowCut = false;
    const r = hub.register(slowReader, undefined, () => (slowCut = true));
    if (!r) throw new Error('registered');
    let id = 0;
    for (let round = 0; round < 10; round++) {
      r.enqueue(`id: r${round}\n\n`); // a replay batch
      await tick(); // written: the socket is full
      for (let i = 0; i < 6; i++) r.deliver(frame(++id)); // 5 held, the 6th overruns
      await tick(); // drained
    }
    t.notOk(slowCut, 'a slow reader is not cut by overruns while it makes progress');
    t.equal(r.replayUpTo, BigInt(id), 'the replay extends to the last dropped frame');
    r.close();
    t.equal(hub.clientCount, 0, 'all removed from the hub');
    t.equal((await hub.metrics.slow.get()).values[0]?.value, 1, 'the stuck one counted as slow');
  },
);

t.test('a resume whose replay is overrun by a burst on this replica gets every event once, in order, and is not cut', async (t) => {
  const { db, bridge, a } = await setup(t, { env: { HATCH_SSE_CLIENT_QUEUE_MAX: '20' } });
  const conv = await conversation(db);
  const start = await maxId(db);
  const metric = async (name: string) =>
    Number(new RegExp(`^${name}\\S* (\\d+)$`, 'm').exec((await a.app.inject({ method: 'GET', url: '/metrics' })).body)?.[1] ?? 0);
  await write(db, conv, 100, 50);
  const relayed = async () => (await journal(db)).length;
  let n = await relayed();
  await waitFor(async () => (await metric('hatch_sse_events_received_total')) >= n, { message: 'the first 100 reached the replica' });
  // The bridge stops: the next 100 commit but do not reach the replica yet.
  process.kill(-bridge.pid, 'SIGSTOP');
  t.teardown(() => process.kill(-bridge.pid, 'SIGCONT'));
  await write(db, conv, 100, 50);
  n = await relayed();
  // The replica's pool is busy: the replay waits at its first query while the burst arrives.
  const held = await Promise.all(Array.from({ length: 5 }, () => db.sql.reserve()));
  let released = false;
  const release = () => {
    if (!released) for (const r of held) r.release();
    released = true;
  };
  t.teardown(release);
  const c = await openSse(`${a.url}/api/events?conversation_id=${conv}`, { ...AUTH, 'last-event-id': String(start) });
  t.teardown(() => c.close());
  process.kill(-bridge.pid, 'SIGCONT');
  await waitFor(async () => (await metric('hatch_sse_events_received_total')) >= n, { message: 'the burst reached the replica' });
  t.ok((await metric('hatch_sse_replay_overruns_total')) >= 1, 'the held frames overran');
  release();
  await c.waitFor((x) => updates(x).length >= 200, 30_000, 'all 200 events');
  t.same(
    ids(c),
    Array.from({ length: 200 }, (_, i) => start + 1 + i),
    'every event once, in order',
  );
  t.notOk(c.ended(), 'still streaming');
  t.equal(await metric('hatch_sse_slow_client_disconnects_total'), 0, 'not cut');
});

t.test('NATS restart: bridge and gateway resume; the client gets every event once, in order', async (t) => {
  const server = await spawnNats(t);
  const { db, a } = await setup(t, { natsUrl: server.url });
  const conv = await conversation(db);
  const c = await openSse(`${a.url}/api/events`, AUTH);
  await c.waitFor((x) => x.of('connected').length === 1);
  await write(db, conv, 30);
  await c.waitFor((x) => updates(x).length >= 30, 15_000);
  await server.restart();
  await write(db, conv, 30);
  const expected = await journal(db);
  await c.waitFor((x) => updates(x).length >= 60, 30_000, 'events after the restart');
  t.same(ids(c), expected);
  c.close();
});

t.test(
  'T7: kill -9 of the replica a client streams from, mid-stream: it resumes on the other replica without loss or duplicate',
  async (t) => {
    const { db, nats, b } = await shared();
    const conv = await conversation(db);
    const start = await maxId(db);
    const { proc: g, url } = await spawnGateway(t, db, nats);
    const c = await openSse(`${url}/api/events`, AUTH);
    await c.waitFor((x) => x.of('connected').length === 1);
    const writing = write(db, conv, 150, 5);
    await c.waitFor((x) => updates(x).length >= 30, 20_000);
    await g.kill9();
    await c.waitFor((x) => x.ended(), 5000, 'stream cut by the kill');
    const before = ids(c);
    const r = await openSse(`${b.url}/api/events`, { ...AUTH, 'last-event-id': String(before.at(-1)) });
    await writing;
    const expected = (await journal(db)).filter((id) => id > start);
    await r.waitFor((x) => before.length + updates(x).length >= expected.length, 20_000, 'resumed to the end');
    t.same([...before, ...ids(r)], expected, 'every event once, in order, across the kill');
    r.close();
  },
);

t.test(
  'a slow HTTP client is cut: its connection is closed (not left open after the response ends), and it resumes without a gap',
  async (t) => {
    const { db, a } = await setup(t, { env: { HATCH_SSE_CLIENT_QUEUE_MAX: '20' } });
    const conv = await conversation(db);
    const start = await maxId(db);
    const net = await import('node:net');
    const port = Number(new URL(a.url).port);
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    let text = '';
    let closed = false;
    sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
    sock.on('close', () => (closed = true));
    sock.write(
      `GET /api/events?conversation_id=${conv} HTTP/1.1\r\nHost: x\r\nAuthorization: ${AUTH.authorization}\r\nAccept: text/event-stream\r\n\r\n`,
    );
    await waitFor(() => text.includes('event: connected'), { message: 'stream open' });
    sock.pause(); // stops reading: the kernel buffers fill, then the gateway's queue
    const written = await writeUntil(
      db,
      conv,
      async () => (await metricOf(a.app, 'hatch_sse_slow_client_disconnects_total')) >= 1,
      'the gateway cuts the client that does not read',
    );
    sock.resume();
    await waitFor(() => closed, { timeoutMs: 15_000, message: 'the server closed the connection' });
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])).filter((id) => id > start);
    const last = ids[ids.length - 1] ?? start;
    t.ok(last < start + written, `the cut client got part of the stream (up to ${last - start} of ${written})`);
    // resuming from the last id it read gets the rest, nothing missing and nothing twice
    const c = await openSse(`${a.url}/api/events?conversation_id=${conv}`, { ...AUTH, 'last-event-id': String(last) });
    t.teardown(() => c.close());
    await waitFor(() => updates(c).filter((e) => Number(e.id) > last).length >= start + written - last, {
      timeoutMs: 30_000,
      message: 'the rest replayed',
    }).catch(async (err: Error) => {
      const m = (await a.app.inject({ method: 'GET', url: '/metrics' })).body
        .split('\n')
        .filter((l) => /^hatch_sse_(slow|replay|events_received)/.test(l));
      throw new Error(
        `${err.message}; got ${c.events.length} events (${c.events
          .map((e) => e.id)
          .slice(0, 3)
          .join(',')}…${c.events.at(-1)?.id}), ended=${c.ended()}, start=${start}, written=${written}, last=${last}; ${m.join('; ')}`,
      );
    });
    const rest = updates(c).map((e) => Number(e.id));
    t.same(
      rest,
      Array.from({ length: start + written - last }, (_, i) => last + 1 + i),
      'every later event once, in order',
    );
  },
);

t.test(
  'queue budget: past HATCH_SSE_QUEUE_BUDGET_BYTES the clients that stopped reading are cut (and resume by id) while a reading client on the same gateway gets every event; the held bytes fall back to 0',
  async (t) => {
    const budget = 65_536;
    // A per-client bound far above what the budget allows: here only the budget can cut anyone.
    const { db, a } = await setup(t, { env: { HATCH_SSE_QUEUE_BUDGET_BYTES: String(budget), HATCH_SSE_CLIENT_QUEUE_MAX: '100000' } });
    const conv = await conversation(db);
    const start = await maxId(db);
    const reader = await openSse(`${a.url}/api/events`, AUTH);
    const paused = await Promise.all(Array.from({ length: 3 }, () => openSse(`${a.url}/api/events`, AUTH)));
    t.teardown(() => [reader, ...paused].forEach((c) => c.close()));
    for (const c of [reader, ...paused]) await c.waitFor((x) => x.of('connected').length === 1);
    for (const c of paused) c.pause(); // the kernel buffers fill first (a few MB each), then the gateway's
    let maxHeld = 0;
    const written = await writeUntil(
      db,
      conv,
      async () => {
        maxHeld = Math.max(maxHeld, await metricOf(a.app, 'hatch_sse_queue_bytes'));
        return (await metricOf(a.app, 'hatch_sse_budget_disconnects_total')) >= 3;
      },
      'the budget cuts the three clients that do not read',
      90_000,
    );
    // Between rounds of 200 events: at most one round's fan-out (4 clients × 200 frames) past the budget.
    t.ok(maxHeld <= budget + 4 * 200 * 300, `the held bytes stayed at the budget (max seen ${maxHeld})`);
    t.equal(await metricOf(a.app, 'hatch_sse_slow_client_disconnects_total'), 3, 'only they were cut, all by the budget');
    const expected = (await journal(db)).filter((id) => id > start);
    t.equal(expected.length, written);
    await reader.waitFor((x) => updates(x).length >= written, 30_000, 'the reader got every event');
    t.same(ids(reader), expected, 'the reading client: every event once, in order');
    t.notOk(reader.ended(), 'and still streaming');
    for (const c of paused) {
      c.resume();
      await c.waitFor((x) => x.ended(), 15_000, 'the server closed the cut connection');
      t.ok(updates(c).length < written, `a cut client got part of the stream (${updates(c).length} of ${written})`);
    }
    // The last one resumes from what it read: the rest, nothing missing, nothing twice.
    const cut = paused[2] as SseClient;
    const last = String(ids(cut).at(-1) ?? start);
    const resumed = await openSse(`${a.url}/api/events`, { ...AUTH, 'last-event-id': last });
    t.teardown(() => resumed.close());
    await resumed.waitFor((x) => updates(x).length >= expected.filter((id) => id > Number(last)).length, 30_000, 'the rest replayed');
    t.same(
      ids(resumed),
      expected.filter((id) => id > Number(last)),
      'resumed without a gap',
    );
    await waitFor(async () => (await metricOf(a.app, 'hatch_sse_queue_bytes')) === 0, { message: 'held bytes back to 0' });
  },
);

t.test(
  'queue budget policy: the blocked client holding the most bytes goes first, only as many as needed; a client whose socket takes writes is never cut for it',
  async (t) => {
    const { hub } = await testHub(t, { clientQueueMax: 1000, queueBudgetBytes: 1000 });
    const tick = () => new Promise((r) => setImmediate(r));
    // Sockets that take one write and never drain (a client that stopped reading).
    const stuck = () => new Writable({ highWaterMark: 1, write: () => undefined });
    // A socket that takes every write (never refuses) but calls back only when told: the bytes stay held.
    const callbacks: Array<() => void> = [];
    const taking = new Writable({ highWaterMark: 1 << 20, write: (_c, _e, cb) => void callbacks.push(cb) });
    const cut = new Set<string>();
    const reg = (out: Writable, name: string) => {
      const c = hub.register(out, undefined, () => cut.add(name));
      if (!c) throw new Error('registered');
      c.goLive();
      return c;
    };
    const big = reg(stuck(), 'big');
    const small = reg(stuck(), 'small');
    const reader = reg(taking, 'reader');
    big.enqueue('x'.repeat(400));
    small.enqueue('x'.repeat(100));
    reader.enqueue('x'.repeat(700)); // the most bytes of all, and over the budget (1,200)
    await tick(); // written; then the budget pass
    t.same([...cut], ['big'], 'the blocked one holding the most is cut; that was enough');
    t.equal(hub.queueBytes, 800, 'the small blocked one and the reader are left');
    reader.enqueue('x'.repeat(1500)); // over again, and the only blocked client left holds little
    await tick();
    t.same([...cut].sort(), ['big', 'small'], 'the remaining blocked client goes, the reader never');
    t.equal(hub.queueBytes, 2200, 'over the budget, held by the client that takes its writes');
    while (callbacks.length > 0) callbacks.shift()?.(); // each call hands it the next buffered write
    await tick();
    t.equal(hub.queueBytes, 0, 'its writes called back: nothing held');
    t.equal((await hub.metrics.budgetCuts.get()).values[0]?.value, 2, 'budget cuts counted');
    t.equal((await hub.metrics.slow.get()).values[0]?.value, 2, 'as slow clients');
    reader.close();
    t.equal(hub.clientCount, 0);
  },
);

t.test(
  'per-principal cap: past HATCH_SSE_MAX_CLIENTS_PER_PRINCIPAL a new stream is 429 with Retry-After in the error shape, the open ones keep streaming, another principal is unaffected, and closing one admits a new one',
  async (t) => {
    const { db, nats } = await shared();
    const a = await replica(t, db, nats.url, nats.prefix, { HATCH_SSE_MAX_CLIENTS_PER_PRINCIPAL: '2' });
    const conv = await conversation(db);
    const c1 = await openSse(`${a.url}/api/events?conversation_id=${conv}`, AUTH);
    const c2 = await openSse(`${a.url}/api/events?conversation_id=${conv}`, AUTH);
    t.teardown(() => [c1, c2].forEach((c) => c.close()));
    for (const c of [c1, c2]) await c.waitFor((x) => x.of('connected').length === 1);
    const third = await fetch(`${a.url}/api/events`, { headers: { ...AUTH, accept: 'text/event-stream' } });
    // (an admitted stream would never end: its body is dropped, not read)
    const body: unknown = third.status === 429 ? await third.json() : await third.body?.cancel();
    t.equal(third.status, 429, 'the third stream of the principal is refused');
    t.equal(third.headers.get('retry-after'), '1', 'with Retry-After (the retry: hint, 500 ms, in whole seconds)');
    t.match(third.headers.get('content-type'), /^application\/json/);
    t.match(body, { success: false, code: 'RATE_LIMITED', error: /at most 2/ });
    // A UI sign-in is a principal of its own (session:<id>): the token's cap does not touch it.
    const other = await openSse(`${a.url}/api/events?conversation_id=${conv}`, { cookie: await newSessionCookie(a.app) });
    t.teardown(() => other.close());
    t.equal(other.status, 200, 'another principal is admitted');
    await write(db, conv, 3, 1);
    for (const c of [c1, c2, other]) await c.waitFor((x) => updates(x).length === 3, 10_000, 'the open streams keep streaming');
    t.equal(await metricOf(a.app, 'hatch_sse_principals'), 2);
    c1.close();
    await waitFor(async () => (await metricOf(a.app, 'hatch_sse_clients')) === 2, { message: 'the gateway saw the stream close' });
    const c3 = await openSse(`${a.url}/api/events`, AUTH);
    t.teardown(() => c3.close());
    t.equal(c3.status, 200, 'a slot freed: a new stream is admitted');
    await c3.waitFor((x) => x.of('connected').length === 1);
    for (const c of [c2, c3, other]) c.close();
    await waitFor(async () => (await metricOf(a.app, 'hatch_sse_principals')) === 0, { message: 'the entries are removed at zero' });
  },
);
