/**
 * Pipelined, chained publishing through the whole bridge (docs/realtime.md, "Chained publishing"):
 * large bursts, a foreign publisher breaking the chain mid-pipeline, a stream limit failing
 * a publish, and rows already in the stream (a crashed bridge's unpersisted work: passed over).
 * Each: every journal row ends up in the stream exactly once, in journal order.
 */
import t from 'tap';
import { DiscardPolicy } from '@nats-io/jetstream';
import { BusChangeBatch, BusChangeEvent, BusHeartbeat, encode } from '@hatch/contracts';
import { findJournalAfter, journalRowToEvent } from '@hatch/db';
import { createTestDb, testNats, waitFor, type Teardownable } from '@hatch/testing';
import { connectBus, ensureStreams } from '@hatch/bus';
import { assertStrictlyIncreasing, insertChats, journalIds, log, readStream, seedConversation, startTestBridge } from './harness.js';

/** `writers` concurrent writers, each `txs` transactions of `per` rows. */
async function concurrentWriters(
  db: Parameters<typeof insertChats>[0],
  conv: string,
  writers: number,
  txs: number,
  per: number,
): Promise<void> {
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let i = 0; i < txs; i++) await insertChats(db, conv, per);
    }),
  );
}

t.test('a burst of 3,000 journal rows from 8 concurrent writers arrives in journal-id order, each exactly once', async (t) => {
  const db = await createTestDb(t, { max: 10 });
  const nats = testNats(t);
  const conv = await seedConversation(db);
  const b = await startTestBridge(t, db, nats.url, nats.names);
  await waitFor(() => b.bridge.role() === 'active', { message: 'bridge active' });
  await concurrentWriters(db, conv, 8, 15, 25);
  const ids = await journalIds(db);
  t.equal(ids.length, 3000);
  await waitFor(() => b.bridge.position() === String(ids.at(-1)), { timeoutMs: 30_000, message: 'bridge caught up' });
  const got = (await readStream(b.bus, nats.names)).map((e) => Number(e.id));
  t.equal(got.length, 3000);
  t.same(got, ids, 'every row, once, in id order');
  t.equal(await b.metric('hatch_bridge_events_relayed_total'), 3000);
  t.equal(await b.metric('hatch_bridge_publish_errors_total'), 0, 'no pass failed');
});

t.test(
  'a foreign publisher writing into the events stream mid-pipeline breaks the chain; every row still arrives once, in order, and the bridge goes on',
  async (t) => {
    const db = await createTestDb(t, { max: 10 });
    const nats = testNats(t);
    const conv = await seedConversation(db);
    const b = await startTestBridge(t, db, nats.url, nats.names, { heartbeatMs: 60_000 });
    await waitFor(() => b.bridge.role() === 'active', { message: 'bridge active' });
    // The intruder stands in for a second bridge during a takeover: its own connection, msgIDs of
    // its own (heartbeat-shaped, on the heartbeat subject, so stream readers pass over it).
    const intruderBus = await connectBus({ url: nats.url, name: 'intruder', log });
    t.teardown(() => intruderBus.close(1000));
    let intruding = true;
    let intruded = 0;
    const intruder = (async () => {
      while (intruding) {
        const hb: BusHeartbeat = { type: 'heartbeat', position: '0', at: new Date().toISOString() };
        await intruderBus.js.publish(nats.names.subjects.eventFor('heartbeat'), encode(BusHeartbeat, hb), {
          msgID: `intruder-${intruded}`,
        });
        intruded++;
        // paced (not a wait for a condition): about one foreign message per couple of ms
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    t.teardown(async () => {
      intruding = false;
      await intruder;
    });
    await concurrentWriters(db, conv, 6, 10, 50);
    const ids = await journalIds(db);
    t.equal(ids.length, 3000);
    await waitFor(() => b.bridge.position() === String(ids.at(-1)), {
      timeoutMs: 60_000,
      message: 'bridge caught up despite the intruder',
    });
    intruding = false;
    await intruder;
    t.ok(intruded > 10, `the intruder published ${intruded} messages`);
    t.ok((await b.metric('hatch_bridge_publish_errors_total')) >= 1, 'the chain broke at least once (wrong last msg ID)');
    const got = (await readStream(b.bus, nats.names)).map((e) => Number(e.id));
    t.same(got, ids, 'every row, once, in id order');
    t.equal(assertStrictlyIncreasing(got), undefined);
    t.equal(await b.metric('hatch_bridge_events_relayed_total'), 3000, 'relayed counts each row once');
    // and it goes on relaying once the intruder is gone
    await insertChats(db, conv, 10);
    const last = (await journalIds(db)).at(-1);
    await waitFor(() => b.bridge.position() === String(last), { message: 'relays after the intruder left' });
    t.same(
      (await readStream(b.bus, nats.names)).map((e) => Number(e.id)),
      await journalIds(db),
    );
  },
);

t.test(
  'the events stream hits its message limit (DiscardPolicy.New) mid-batch: the bridge stops at the stored prefix, retries, and once there is room relays the rest in order',
  async (t) => {
    const db = await createTestDb(t, { max: 10 });
    const nats = testNats(t);
    const conv = await seedConversation(db);
    const b = await startTestBridge(t, db, nats.url, nats.names, { heartbeatMs: 60_000 });
    await waitFor(() => b.bridge.role() === 'active', { message: 'bridge active' });
    const stream = nats.names.streams.events;
    const cfg = (await b.bus.jsm.streams.info(stream)).config;
    const stored = (await b.bus.jsm.streams.info(stream)).state.messages;
    // room for 3 more messages: with 500-row reads (one message each) the fourth is refused
    await b.bus.jsm.streams.update(stream, { ...cfg, discard: DiscardPolicy.New, max_msgs: stored + 3 });
    await insertChats(db, conv, 3000);
    await waitFor(async () => (await b.metric('hatch_bridge_publish_errors_total')) >= 2, {
      timeoutMs: 20_000,
      message: 'publishes refused by the full stream',
    });
    const full = await b.bus.jsm.streams.info(stream);
    t.equal(full.state.messages, stored + 3, 'the stream is full');
    const before = await readStream(b.bus, nats.names);
    t.equal(b.bridge.position(), before.at(-1)?.id, 'the position is the last row stored: the acked prefix, no further');
    t.same(
      before.map((e) => Number(e.id)),
      (await journalIds(db)).slice(0, before.length),
      'the stored prefix is in order',
    );
    // room again (the operator raises the limit): the bridge's retries get through
    await b.bus.jsm.streams.update(stream, { ...cfg });
    const ids = await journalIds(db);
    await waitFor(() => b.bridge.position() === String(ids.at(-1)), { timeoutMs: 30_000, message: 'caught up once the stream had room' });
    const got = (await readStream(b.bus, nats.names)).map((e) => Number(e.id));
    t.same(got, ids, 'every row, once, in id order');
    t.equal(await b.metric('hatch_bridge_events_relayed_total'), 3000);
  },
);

/** 300 journal rows, and a "crashed bridge": its own connection to the events stream, its position never persisted. */
async function crashedBridge(t: Teardownable) {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const conv = await seedConversation(db);
  await insertChats(db, conv, 300);
  const old = await connectBus({ url: nats.url, name: 'crashed-bridge', log });
  t.teardown(() => old.close(1000));
  await ensureStreams(old.jsm, nats.names);
  return { db, nats, old };
}

t.test(
  'rows a crashed older bridge stored one message each without persisting its position are passed over; the chain continues after them',
  async (t) => {
    const { db, nats, old } = await crashedBridge(t);
    // it published rows 1..200 as single events (msgID = journal id)
    for (const row of await findJournalAfter(db.db, '0', 200)) {
      const env = journalRowToEvent(row);
      await old.js.publish(nats.names.subjects.eventFor('messages'), encode(BusChangeEvent, env), { msgID: env.id });
    }
    const b = await startTestBridge(t, db, nats.url, nats.names, { heartbeatMs: 60_000 });
    await waitFor(() => b.bridge.position() === '300', { timeoutMs: 20_000, message: 'caught up' });
    const got = (await readStream(b.bus, nats.names)).map((e) => Number(e.id));
    t.same(got, await journalIds(db), '1..300 once each, in order');
    t.equal(await b.metric('hatch_bridge_events_relayed_total'), 100, 'only 201..300 published');
    t.equal(await b.metric('hatch_bridge_publish_errors_total'), 0, 'chained on the stored event: no failed pass');
  },
);

t.test(
  'takeover mid-batch: a crashed bridge stored rows 1..150 as one batch without persisting its position; the new one, reading 100 at a time, passes over exactly 1..150',
  async (t) => {
    const { db, nats, old } = await crashedBridge(t);
    const batch: BusChangeBatch = {
      prev: '0',
      events: (await findJournalAfter(db.db, '0', 150)).map((row) => {
        const { id, event } = journalRowToEvent(row);
        return { id, event };
      }),
    };
    await old.js.publish(nats.names.subjects.eventBatch, encode(BusChangeBatch, batch), { msgID: '150' });
    // its batches (1..100, 101..200, ...) end elsewhere than the stored one: the duplicate window cannot match them
    const b = await startTestBridge(t, db, nats.url, nats.names, { heartbeatMs: 60_000, batchSize: 100 });
    await waitFor(() => b.bridge.position() === '300', { timeoutMs: 20_000, message: 'caught up' });
    const got = (await readStream(b.bus, nats.names)).map((e) => Number(e.id));
    t.same(got, await journalIds(db), '1..300 once each, in order');
    t.equal(await b.metric('hatch_bridge_events_relayed_total'), 150, 'only 151..300 published');
    t.equal(await b.metric('hatch_bridge_publish_errors_total'), 0, 'chained on the stored batch: no failed pass');
  },
);
