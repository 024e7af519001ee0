/**
 * The `keepalive` event (contract "Server-Sent Events", issue 17) and what it is for: gateway
 * processes, the realtime-bridge process, real PostgreSQL and NATS.
 * - Over a raw socket: every heartbeat interval a `keepalive` event with no `id:`, announced by
 *   the `connected` event's heartbeat_ms.
 * - A gateway stopped with SIGSTOP keeps its connections open and silent: a client following the
 *   web UI's rule (@hatch/contracts watchForStall: nothing for two intervals) drops it, resumes on
 *   the other gateway with Last-Event-ID, and misses nothing, sees nothing twice.
 */
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { watchForStall, type ConnectedEvent, type StallWatch } from '@hatch/contracts';
import type { Db } from '@hatch/db';
import { createTestDb, testNats, waitFor, type Teardownable, type TestDb, type TestNats } from '@hatch/testing';
import { spawnGateway, startBridge, TEST_TOKEN } from './helpers.js';
import { openSse, type SseClient, type SseEvent } from './sse-client.js';

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` };
const HEARTBEAT_MS = 300;

const gateway = (t: Teardownable, db: TestDb, nats: TestNats) =>
  spawnGateway(t, db, nats, { HATCH_SSE_HEARTBEAT_MS: String(HEARTBEAT_MS) });

async function writeChats(db: Db, conv: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await db.db
      .insertInto('messages')
      .values({
        id: randomUUID(),
        conversation_id: conv,
        from_contact: 'me',
        to_contact: 'you',
        body: `m${i}`,
        channel: 'chat',
        direction: 'outbound',
        status: 'stored',
      })
      .execute();
  }
}

const db = await createTestDb(t);
const nats = testNats(t);
await startBridge(t, db, nats, { HATCH_BRIDGE_LOCK_RETRY_MS: '200', HATCH_BRIDGE_HEARTBEAT_MS: '500' });
const conv = randomUUID();
await db.db
  .insertInto('conversations')
  .values({ id: conv, participants: [`a-${conv}`, `b-${conv}`], channel: 'chat' })
  .execute();

t.test('over a raw socket: a keepalive event every heartbeat interval, with no id, announced by connected.heartbeat_ms', async (t) => {
  const g = await gateway(t, db, nats);
  const sock = net.connect(g.port, '127.0.0.1');
  t.teardown(() => sock.destroy());
  let text = '';
  sock.on('data', (d: Buffer) => (text += d.toString('utf8')));
  sock.write(`GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: ${AUTH.authorization}\r\nAccept: text/event-stream\r\n\r\n`);
  // Each frame is one write, so one chunk of the chunked body: chunk-size lines fall between frames.
  const keepalives = () => [...text.matchAll(/(?:^|\n)(id: [^\n]*\n)?event: keepalive\ndata: ([^\n]*)\n\n/g)];
  await waitFor(() => keepalives().length >= 3, { timeoutMs: 10 * HEARTBEAT_MS + 5000, message: 'three keepalive events' });
  const connected = JSON.parse(/event: connected\ndata: ([^\n]*)\n/.exec(text)?.[1] ?? '{}') as ConnectedEvent;
  t.equal(connected.heartbeat_ms, HEARTBEAT_MS, 'connected names the heartbeat interval');
  for (const [, id, json] of keepalives()) {
    t.equal(id, undefined, 'no id: a keepalive is never a resume point');
    const data = JSON.parse(json ?? '{}') as { type?: string; timestamp?: string };
    t.equal(data.type, 'keepalive');
    t.ok(data.timestamp && !Number.isNaN(Date.parse(data.timestamp)), `timestamp ${data.timestamp}`);
  }
  t.match(text, /\n:[^\n]*\n\n/, 'the `:` comments are still sent as well');
});

/**
 * A Node SSE client following the web UI's rule (watchForStall, @hatch/contracts): on a stalled
 * or ended stream it reconnects to the next gateway with Last-Event-ID.
 */
function resilientClient(t: Teardownable, urls: string[]) {
  const updates: SseEvent[] = [];
  let keepalives = 0;
  let lastId: string | undefined;
  let current: SseClient | undefined;
  let watch: StallWatch | undefined;
  let next = 0;
  let reconnects = 0;
  let stopped = false;
  const connect = async (): Promise<void> => {
    if (stopped) return;
    const url = urls[next++ % urls.length] as string;
    watch?.stop();
    const w = watchForStall(() => {
      reconnects++;
      current?.close();
      void connect();
    });
    watch = w;
    current = await openSse(`${url}/api/events`, { ...AUTH, ...(lastId ? { 'last-event-id': lastId } : {}) }, (e) => {
      w.seen();
      if (e.id) lastId = e.id;
      if (e.event === 'connected') {
        const hb = (JSON.parse(e.data) as ConnectedEvent).heartbeat_ms;
        if (hb) w.setHeartbeat(hb);
      } else if (e.event === 'keepalive') keepalives++;
      else if (e.event === 'message_update') updates.push(e);
    });
  };
  t.teardown(() => {
    stopped = true;
    watch?.stop();
    current?.close();
  });
  return {
    connect,
    ids: () => updates.map((e) => Number(e.id)),
    keepalives: () => keepalives,
    reconnects: () => reconnects,
  };
}

t.test(
  'a SIGSTOPped gateway: the client notices the silence within two intervals, resumes on the other gateway, loses nothing',
  async (t) => {
    const a = await gateway(t, db, nats);
    const b = await gateway(t, db, nats);
    const [startRow] = await db.sql<{ m: string | null }[]>`SELECT max(id)::text AS m FROM change_journal`;
    const start = Number(startRow?.m ?? 0);
    const client = resilientClient(t, [a.url, b.url]);
    await client.connect();
    await writeChats(db, conv, 20);
    await waitFor(() => client.ids().length >= 20, { timeoutMs: 15_000, message: 'the first 20 live from gateway A' });
    // Quiet stream: keepalives alone keep a healthy stream from looking stalled.
    const ka = client.keepalives();
    await waitFor(() => client.keepalives() >= ka + 4, { timeoutMs: 20 * HEARTBEAT_MS + 5000, message: 'keepalives on a quiet stream' });
    t.equal(client.reconnects(), 0, 'no reconnect while the gateway is healthy and quiet');

    process.kill(-a.proc.pid, 'SIGSTOP');
    let stopped = true;
    t.teardown(() => {
      if (stopped) process.kill(-a.proc.pid, 'SIGCONT');
    });
    const stoppedAt = Date.now();
    await writeChats(db, conv, 30);
    await waitFor(() => client.reconnects() >= 1, { timeoutMs: 10_000, message: 'the client noticed the stalled gateway' });
    const noticedMs = Date.now() - stoppedAt;
    const expected = (
      await db.sql<{ id: string }[]>`SELECT id::text AS id FROM change_journal WHERE id > ${start} ORDER BY change_journal.id`
    ).map((r) => Number(r.id));
    await waitFor(() => client.ids().length >= expected.length, { timeoutMs: 20_000, message: 'resumed on gateway B to the end' });
    t.same(client.ids(), expected, 'every event once, in order, across the stall');
    t.ok(noticedMs < 10 * HEARTBEAT_MS + 3000, `noticed ${noticedMs} ms after the stop (heartbeat ${HEARTBEAT_MS} ms)`);
    process.kill(-a.proc.pid, 'SIGCONT');
    stopped = false;
    await writeChats(db, conv, 5);
    await waitFor(() => client.ids().length >= expected.length + 5, { timeoutMs: 15_000, message: 'live on gateway B after A resumed' });
  },
);
