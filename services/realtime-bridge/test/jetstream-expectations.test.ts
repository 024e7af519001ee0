/**
 * The nats-server behaviour the bridge's pipelined publishing relies on (docs/realtime.md,
 * "Chained publishing"), checked on the running server (2.9.10 here), so
 * that a server upgrade that changes it fails here first.
 */
import t from 'tap';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamPublishOptions } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { testNats, type Teardownable } from '@hatch/testing';
import { isChainBroken } from '../src/publisher.js';

async function setup(t: Teardownable) {
  const nats = testNats(t);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const stream = `${nats.prefix}_EXPECT`;
  const subject = `${nats.prefix.toLowerCase()}.expect.x`;
  await jsm.streams.add({ name: stream, subjects: [`${nats.prefix.toLowerCase()}.expect.>`], duplicate_window: 120_000_000_000 });
  const js = jetstream(nc);
  const pub = (js2: JetStreamClient, opts: Partial<JetStreamPublishOptions>) => js2.publish(subject, new Uint8Array([1]), opts);
  /** msgIDs in stream order (the empty string for a message without one) */
  const order = async (): Promise<string[]> => {
    const info = await jsm.streams.info(stream);
    const out: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq });
      out.push(m?.header?.get('Nats-Msg-Id') ?? '');
    }
    return out;
  };
  return { js, pub: (opts: Partial<JetStreamPublishOptions>) => pub(js, opts), order };
}

t.test('a repeated msgID is answered as a duplicate before any expectation is checked, and does not become the last msgID', async (t) => {
  const { pub } = await setup(t);
  t.equal((await pub({ msgID: 'a' })).seq, 1);
  t.equal((await pub({ msgID: 'b' })).seq, 2);
  const d1 = await pub({ msgID: 'a', expect: { lastSequence: 999 } });
  t.same([d1.seq, d1.duplicate], [1, true], 'wrong expected last sequence: still a duplicate ack with the original seq');
  const d2 = await pub({ msgID: 'a', expect: { lastMsgID: 'nope' } });
  t.same([d2.seq, d2.duplicate], [1, true], 'wrong expected last msgID: still a duplicate ack');
  await t.rejects(pub({ msgID: 'c', expect: { lastMsgID: 'a' } }), { code: 10070 }, 'the duplicate did not make "a" the last msgID');
  t.equal((await pub({ msgID: 'c', expect: { lastMsgID: 'b' } })).seq, 3);
});

t.test('a stored message without a msgID empties the last msgID (heartbeats need one to keep the chain)', async (t) => {
  const { pub } = await setup(t);
  await pub({ msgID: 'a' });
  await pub({});
  const err = await pub({ msgID: 'b', expect: { lastMsgID: 'a' } }).catch((e: unknown) => e);
  t.ok(isChainBroken(err), 'wrong last msg ID');
  await pub({ msgID: 'hb-1' });
  t.equal((await pub({ msgID: 'b', expect: { lastMsgID: 'hb-1' } })).seq, 4);
});

t.test(
  'pipelined publishes chained by expected last SEQUENCE: an intruder lets rows after the failed one be stored (why the bridge does not use it)',
  async (t) => {
    const { pub, order } = await setup(t);
    await pub({ msgID: 'p0' }); // seq 1
    const r = await Promise.allSettled([
      pub({ msgID: 'p1', expect: { lastSequence: 1 } }),
      pub({ msgID: 'intruder' }),
      pub({ msgID: 'p2', expect: { lastSequence: 2 } }),
      pub({ msgID: 'p3', expect: { lastSequence: 3 } }),
    ]);
    t.same(
      r.map((x) => x.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
      'p2 failed, p3 stored after the hole',
    );
    t.same(await order(), ['p0', 'p1', 'intruder', 'p3'], 'p2 can now only land after p3: out of order');
  },
);

t.test(
  'pipelined publishes chained by expected last MSGID: after an intruder every later row fails, none is stored past the hole',
  async (t) => {
    const { pub, order } = await setup(t);
    await pub({ msgID: '1' });
    const r = await Promise.allSettled([
      pub({ msgID: '2', expect: { lastMsgID: '1' } }),
      pub({ msgID: 'intruder' }),
      pub({ msgID: '3', expect: { lastMsgID: '2' } }),
      pub({ msgID: '4', expect: { lastMsgID: '3' } }),
      pub({ msgID: '5', expect: { lastMsgID: '4' } }),
    ]);
    t.same(
      r.map((x) => x.status),
      ['fulfilled', 'fulfilled', 'rejected', 'rejected', 'rejected'],
    );
    t.ok(
      r.slice(2).every((x) => x.status === 'rejected' && isChainBroken(x.reason)),
      'each a wrong-last-msg-ID error',
    );
    t.same(await order(), ['1', '2', 'intruder']);
  },
);
