import t from 'tap';
import { spawnPostgres, waitFor } from '@hatch/testing';
import { pipeline } from './harness.js';

// T4 of the reliability plan: PostgreSQL crashes (pg_ctl stop -m immediate) and comes back
// under a steady load of sends. While it is down the gateway answers 503 + Retry-After in the
// contract's error format (never a 500, never a stack trace); every 202 names a message that
// exists afterwards and is sent once; the gateway and the worker recover without a restart.
// The worker's delivery budget here is short (4 tries within ~3 s): a job that used it up while
// the database was down leaves its message queued with no job, and the gateway's stalled-job
// rescue (shortened to 3 s here, 10 min in production) must queue it again.

interface Outcome {
  status: number;
  retryAfter: string | null;
  text: string;
  at: number;
}

t.test(
  'T4: PostgreSQL restarted under load: 503 + Retry-After while down, no accepted message lost, recovery without a restart',
  async (t) => {
    const pg = await spawnPostgres(t);
    const p = await pipeline(t, { postgresUrl: pg.url, callbackDelayMs: 120_000, stalledAfterMs: 3000 });
    await p.startWorker({ concurrency: 8 });

    const outcomes: Outcome[] = [];
    let stop = false;
    t.teardown(() => {
      stop = true; // also when an assertion below throws: the load must not outlive the test
    });
    let n = 0;
    const inflight = new Set<Promise<void>>();
    // ~10 requests per second, each on its own (a slow answer does not slow the load down)
    const load = (async () => {
      while (!stop) {
        const i = n++;
        const req = fetch(`${p.gatewayUrl}/api/send_message`, {
          method: 'POST',
          headers: { ...p.auth, 'content-type': 'application/json' },
          body: JSON.stringify({ to: `+1415557${String(1000 + (i % 9000))}`, body: `load #${i}` }),
          signal: AbortSignal.timeout(20_000),
        })
          .then(async (res) => {
            outcomes.push({ status: res.status, retryAfter: res.headers.get('retry-after'), text: await res.text(), at: Date.now() });
          })
          .catch((err: Error) => {
            outcomes.push({ status: 0, retryAfter: null, text: err.message, at: Date.now() });
          });
        inflight.add(req);
        void req.finally(() => inflight.delete(req));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const count = (status: number, after = 0) => outcomes.filter((o) => o.status === status && o.at >= after).length;

    await waitFor(() => count(202) >= 10, { timeoutMs: 60_000, message: '10 sends accepted before the crash' });
    await pg.stop('immediate');
    const downAt = Date.now();
    await waitFor(() => count(503, downAt) >= 3, { timeoutMs: 30_000, message: 'the gateway answers 503 while PostgreSQL is down' });
    await pg.start();
    const upAt = Date.now();
    await waitFor(() => count(202, upAt) >= 10, { timeoutMs: 60_000, message: 'sends are accepted again without a gateway restart' });
    stop = true;
    await load;
    await Promise.all([...inflight]);

    const statuses = [...new Set(outcomes.map((o) => o.status))].sort();
    for (const o of outcomes.filter((x) => x.status !== 202 && x.status !== 503))
      t.comment(`unexpected answer ${o.status} at +${o.at - downAt} ms: ${o.text.slice(0, 300)}`);
    t.same(statuses, [202, 503], `only 202 and 503 (saw ${statuses.join(', ')})`);
    for (const o of outcomes.filter((x) => x.status === 503)) {
      t.equal(o.retryAfter, '2', '503 carries Retry-After');
      const body = JSON.parse(o.text) as Record<string, unknown>;
      t.match(body, { success: false, code: 'SERVICE_UNAVAILABLE', error: String });
      t.notMatch(o.text, /\bat .+:\d+:\d+|node_modules|postgres/i, 'no stack trace or driver detail');
    }
    t.ok(count(503) >= 3, `${count(503)} answers were 503`);

    const accepted = outcomes.filter((o) => o.status === 202).map((o) => (JSON.parse(o.text) as { message_id: string }).message_id);
    t.equal(new Set(accepted).size, accepted.length, 'one message per 202');
    const sent = async () =>
      Number(
        (await p.db.sql`SELECT count(*)::int AS n FROM messages WHERE id IN ${p.db.sql(accepted)} AND status IN ('sent', 'delivered')`)[0]
          ?.n,
      );
    await waitFor(async () => (await sent()) === accepted.length, {
      timeoutMs: 60_000,
      intervalMs: 250,
      message: `every one of the ${accepted.length} accepted messages sent`,
    });
    const perBody = new Map<string, number>();
    for (const r of p.emulator.records.messages()) perBody.set(r.body ?? '', (perBody.get(r.body ?? '') ?? 0) + 1);
    t.ok(
      [...perBody.values()].every((c) => c === 1),
      'no message was sent twice',
    );
    t.ok(p.emulator.records.messages().length >= accepted.length, 'every accepted message reached Twilio');
    const ready = await fetch(`${p.gatewayUrl}/readyz`);
    t.equal(ready.status, 200, 'the gateway is ready again');
  },
);
