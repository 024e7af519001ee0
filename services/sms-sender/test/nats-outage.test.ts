import t from 'tap';
import { spawnNats, waitFor } from '@hatch/testing';
import { pipeline } from './harness.js';

// T3 of the reliability plan: NATS is down while messages are accepted. Accepting never waits
// on NATS (the message and its outbox row commit together); the relay's sweeper publishes the
// outbox once NATS is back, and the worker sends each message exactly once.

const N = 500;

t.test('T3: with its NATS server stopped every POST is still 202; after the restart all 500 are sent exactly once', async (t) => {
  const nats = await spawnNats(t);
  // Status callbacks are pushed past the end of the test: only the sends matter here.
  const p = await pipeline(t, { natsUrl: nats.url, callbackDelayMs: 120_000 });
  await p.startWorker({ concurrency: 16 });
  const warm = await p.send('+14155557000', 'before the outage');
  await p.waitForStatus(warm.body.message_id as string, ['sent']);
  await nats.stop();
  t.notOk(nats.running, 'nats-server is down');

  const bodies = Array.from({ length: N }, (_, i) => `outage #${i}`);
  const results: Array<{ status: number; id?: string }> = [];
  const started = Date.now();
  for (let i = 0; i < N; i += 25) {
    const chunk = await Promise.all(bodies.slice(i, i + 25).map((b, j) => p.send(`+1415556${String(1000 + i + j)}`, b)));
    results.push(...chunk.map((r) => ({ status: r.status, id: r.body.message_id as string | undefined })));
  }
  const acceptMs = Date.now() - started;
  t.same([...new Set(results.map((r) => r.status))], [202], 'every POST answered 202 while NATS was down');
  t.ok(acceptMs < 60_000, `accepting ${N} did not wait on NATS (${acceptMs} ms)`);
  const ids = results.map((r) => r.id as string);
  t.equal(new Set(ids).size, N);
  const outbox = Number((await p.db.sql`SELECT count(*)::int AS n FROM outbox`)[0]?.n);
  t.ok(outbox > 0, `jobs wait in the outbox (${outbox} rows)`);
  t.equal(p.emulator.records.messages().length, 1, 'nothing was sent during the outage');

  await nats.start();
  const done = async () =>
    Number(
      (await p.db.sql`SELECT count(*)::int AS n FROM messages WHERE id IN ${p.db.sql(ids)} AND status IN ('sent', 'delivered')`)[0]?.n,
    );
  let last = 0;
  await waitFor(async () => (last = await done()) === N, {
    timeoutMs: 90_000,
    intervalMs: 250,
    message: `all ${N} sent after NATS returned (last: ${last})`,
  });
  t.equal(Number((await p.db.sql`SELECT count(*)::int AS n FROM outbox`)[0]?.n), 0, 'the outbox drained');

  const records = p.emulator.records.messages();
  t.equal(records.length, N + 1, 'one create request per message');
  const perBody = new Map<string, number>();
  for (const r of records) perBody.set(r.body ?? '', (perBody.get(r.body ?? '') ?? 0) + 1);
  t.ok(
    bodies.every((b) => perBody.get(b) === 1),
    'each accepted message sent exactly once',
  );
  const attempts = await p.db.sql`SELECT max(attempts)::int AS max FROM messages WHERE id IN ${p.db.sql(ids)}`;
  t.equal(attempts[0]?.max, 1, 'no message needed a second claim');
});
