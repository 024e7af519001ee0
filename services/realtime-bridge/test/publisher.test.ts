/**
 * publisher.ts: journal rows published pipelined and chained (docs/realtime.md#chained-publishing),
 * on real PostgreSQL (the rows) and a real JetStream events stream.
 */
import t from 'tap';
import { createTestDb, testNats, type Teardownable } from '@hatch/testing';
import { findJournalAfter, type JournalRow } from '@hatch/db';
import { connectBus, ensureStreams } from '@hatch/bus';
import { createMetricsRegistry } from '@hatch/service';
import { createBridgeMetrics } from '../src/metrics.js';
import { createChainedPublisher, isChainBroken, PUBLISH_WINDOW } from '../src/publisher.js';
import { insertChats, log, readStream, seedConversation } from './harness.js';

async function setup(t: Teardownable, rows: number) {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const bus = await connectBus({ url: nats.url, name: 'publisher-test', log });
  t.teardown(() => bus.close(1000));
  await ensureStreams(bus.jsm, nats.names);
  const conv = await seedConversation(db);
  await insertChats(db, conv, rows);
  const journal = await findJournalAfter(db.db, '0', rows);
  const publisher = createChainedPublisher(
    { bus, log, metrics: createBridgeMetrics(createMetricsRegistry('realtime-bridge')) },
    nats.names,
  );
  const settled: number[] = [];
  const pass = { keepGoing: () => true, onSettled: (row: JournalRow) => void settled.push(Number(row.id)) };
  const streamIds = async () => (await readStream(bus, nats.names)).map((e) => Number(e.id));
  return { bus, nats, journal, publisher, settled, pass, streamIds };
}

t.test(
  'more rows than the window: every one stored once, in journal order, each settled in order, each naming its predecessor',
  async (t) => {
    const n = PUBLISH_WINDOW * 2 + 10;
    const s = await setup(t, n);
    t.equal(await s.publisher.publish(0n, s.journal, s.pass), n, 'every row acked');
    const ids = s.journal.map((r) => Number(r.id));
    t.same(s.settled, ids, 'settled in order');
    t.same(await s.streamIds(), ids, 'stored in order');
    t.same(
      (await readStream(s.bus, s.nats.names)).map((e) => e.prev),
      ['0', ...ids.slice(0, -1).map(String)],
      'each names its predecessor as prev (the first, the position it was read from)',
    );
    // after a failover the same rows come again: duplicates, counted as relayed, nothing stored twice
    s.publisher.forgetTip();
    s.settled.length = 0;
    t.equal(await s.publisher.publish(0n, s.journal, s.pass), n);
    t.same(s.settled, ids);
    t.same(await s.streamIds(), ids, 'still each once');
  },
);

t.test(
  'another publisher gets in between: the chained pass fails as chain-broken, nothing is stored past the intruder; unchained again, it goes on',
  async (t) => {
    const s = await setup(t, 6);
    const [first, second] = [s.journal.slice(0, 3), s.journal.slice(3)];
    await s.publisher.publish(0n, first, s.pass);
    // an intruder with a msgID of its own (a second bridge's heartbeat during a takeover)
    await s.bus.js.publish(s.nats.names.subjects.eventFor('heartbeat'), new TextEncoder().encode('{}'), { msgID: 'intruder' });
    const err = await s.publisher.publish(BigInt(first[2]!.id), second, s.pass).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(isChainBroken(err), `chain broken (${(err as Error | undefined)?.message})`);
    t.same(s.settled, [1, 2, 3], 'nothing after the intruder settled');
    t.same(await s.streamIds(), [1, 2, 3], 'nor stored');
    t.equal(await s.publisher.publish(BigInt(first[2]!.id), second, s.pass), 3, 'the next pass starts unchained and relays the rest');
    t.same(await s.streamIds(), [1, 2, 3, 4, 5, 6]);
  },
);

t.test('keepGoing() false: no row is issued', async (t) => {
  const s = await setup(t, 3);
  t.equal(await s.publisher.publish(0n, s.journal, { ...s.pass, keepGoing: () => false }), 0);
  t.same(await s.streamIds(), []);
});
