/**
 * The raw limit of P2: JetStream publish + pull-consume in ONE Node process, as fast as it goes.
 * A file-storage stream of its own (`<PREFIX>_RAW`), a durable pull consumer with explicit acks;
 * the publisher (acked async publishes, at most 1000 in flight) and the consumer run at the same
 * time; rate = messages / (first publish → last ack). 200-byte payloads (about a job's size).
 *
 * Env: NATS_URL, BENCH_PREFIX, BENCH_N. Prints {"bench": {...}} and deletes its stream.
 */
import { connect } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';

const N = Number(process.env.BENCH_N ?? 20000);
const prefix = (process.env.BENCH_PREFIX ?? 'BENCHRAW').toUpperCase();
const stream = `${prefix}_RAW`;
const subject = `${prefix.toLowerCase()}.raw`;
const nc = await connect({ servers: process.env.NATS_URL ?? 'nats://127.0.0.1:4222', name: 'bench-js-raw' });
const jsm = await jetstreamManager(nc);
const js = jetstream(nc);
try {
  await jsm.streams.add({ name: stream, subjects: [subject], max_msgs: N * 2, max_bytes: 256 * 1024 * 1024 });
  await jsm.consumers.add(stream, { durable_name: 'bench-raw', ack_policy: AckPolicy.Explicit, max_ack_pending: 10_000 });
  const payload = new TextEncoder().encode(
    JSON.stringify({ message_id: '00000000-0000-4000-8000-000000000000', attempt: 1, pad: 'x'.repeat(130) }),
  );
  const consumer = await js.consumers.get(stream, 'bench-raw');
  const t0 = performance.now();
  let consumed = 0;
  let consumeEnd = 0;
  const consuming = (async () => {
    const msgs = await consumer.consume({ max_messages: 1000 });
    for await (const m of msgs) {
      m.ack();
      if (++consumed >= N) {
        consumeEnd = performance.now();
        await msgs.close();
        break;
      }
    }
  })();
  const inflight = new Set<Promise<unknown>>();
  for (let i = 0; i < N; i++) {
    const p = js.publish(subject, payload).finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= 1000) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  const pubEnd = performance.now();
  // Bounded wait for the consumer to see every message (not for its iterator to wind down).
  const deadline = performance.now() + 60_000;
  while (consumed < N && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  void consuming.catch(() => undefined);
  const s = (consumeEnd || performance.now()) / 1000 - t0 / 1000;
  process.stdout.write(
    `${JSON.stringify({ bench: { n: N, consumed, seconds: s, rate: consumed / s, publishRate: N / ((pubEnd - t0) / 1000) } })}\n`,
  );
} finally {
  await jsm.streams.delete(stream).catch(() => false);
  await nc.close();
}
