import t from 'tap';
import { natsNames } from '@hatch/contracts';
import { waitFor } from '@hatch/testing';
import { pipeline, type Pipeline } from './harness.js';

// T1 and T2 of the reliability plan: the sms-sender runs as a real child process and is killed
// with SIGKILL at the two dangerous moments; a fresh one takes over. The oracle is the
// emulator's record of every create request: exactly one per message, never two.

const N = 12;
const numberFor = (i: number) => `+1415555${String(1000 + i)}`;

async function sendAll(p: Pipeline, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < N; i++) {
    const r = await p.send(numberFor(i), `${tag} #${i}`);
    if (r.status !== 202) throw new Error(`send ${i}: ${r.status} ${JSON.stringify(r.body)}`);
    ids.push(r.body.message_id as string);
  }
  return ids;
}

async function statuses(p: Pipeline, ids: string[]) {
  return p.db.db.selectFrom('messages').select(['id', 'status', 'attempts', 'provider_sid', 'to_contact']).where('id', 'in', ids).execute();
}

function createsPerNumber(p: Pipeline): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of p.emulator.records.messages()) counts.set(m.to ?? '?', (counts.get(m.to ?? '?') ?? 0) + 1);
  return counts;
}

t.test(
  'T1: kill -9 while Twilio holds the accepted requests (before the status write); the restarted worker reconciles, one provider send each',
  async (t) => {
    // Callbacks come late, so the restarted worker finds every message still `sending` under the
    // dead worker's claim and must look it up at Twilio instead of resending it.
    const p = await pipeline(t, { callbackDelayMs: 60_000 });
    p.emulator.faults.add({ provider: 'twilio', kind: 'hang', hangMs: 60_000, count: N });
    const env = { TWILIO_TIMEOUT_MS: '30000', SMS_CONCURRENCY: String(N + 4) };
    const first = p.spawnWorker(env);
    const ids = await sendAll(p, 'T1');
    await waitFor(() => p.emulator.records.messages().filter((m) => m.accepted && m.httpStatus === null).length === N, {
      timeoutMs: 30_000,
      message: `all ${N} requests accepted by Twilio and held unanswered`,
    });
    t.same(
      (await statuses(p, ids)).map((m) => m.status),
      Array(N).fill('sending'),
      'every message is claimed and in flight, none has its status written',
    );
    t.equal(await first.kill9(), 137, 'killed with SIGKILL');

    const second = p.spawnWorker(env);
    await waitFor(async () => (await statuses(p, ids)).every((m) => m.status === 'sent' || m.status === 'delivered'), {
      timeoutMs: 45_000,
      message: 'every message reached sent after the restart',
    });
    const creates = createsPerNumber(p);
    t.equal(p.emulator.records.messages().length, N, `Twilio saw ${N} create requests in all`);
    t.ok(
      [...creates.values()].every((n) => n === 1),
      'exactly one provider send per message',
    );
    for (const m of await statuses(p, ids)) {
      const rec = p.emulator.records.messages().find((r) => r.to === m.to_contact);
      t.equal(m.provider_sid, rec?.sid, `${m.to_contact}: the SID Twilio gave the one request`);
      t.ok(m.attempts >= 2, `${m.to_contact}: taken over by a later attempt (attempts ${m.attempts})`);
    }
    // Reconciled, not resent: by a lookup at Twilio, or (on a slow machine, when the delayed
    // status callback beat the new worker) from the SID that callback recorded.
    const sentBy = await p.db.db
      .selectFrom('status_events')
      .select(['message_id', 'detail'])
      .where('message_id', 'in', ids)
      .where('status', '=', 'sent')
      .where('source', '=', 'worker')
      .execute();
    t.equal(sentBy.length, N, 'the new worker recorded sent once per message');
    t.ok(
      sentBy.every((e) => /^reconciled/.test(e.detail ?? '')),
      `every one by reconciliation: ${[...new Set(sentBy.map((e) => e.detail))].join('; ')}`,
    );
    t.notOk(
      second.logs().some((l) => l.msg === 'reconciled: Twilio has no trace of the message; sending it'),
      'no resend after reconciliation',
    );
  },
);

t.test(
  'T2: kill -9 after the jobs were fetched but before the claim; redelivered after AckWait, one send each, none left queued',
  async (t) => {
    const p = await pipeline(t);
    const ids = await sendAll(p, 'T2');
    // Hold every message row so the worker's claim (a conditional UPDATE) blocks right after it
    // fetched its jobs. PostgreSQL checks that a waiting client is still connected, so the dead
    // worker's blocked claims are aborted instead of completing later.
    await p.db.sql.unsafe(`ALTER DATABASE "${p.db.name}" SET client_connection_check_interval = '100ms'`);
    const lock = await p.db.sql.reserve();
    t.teardown(() => lock.release());
    await lock`BEGIN`;
    await lock`SELECT id FROM messages WHERE id IN ${lock(ids)} FOR UPDATE`;
    const waiting = async () =>
      Number(
        (
          await p.db
            .sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${p.db.name} AND application_name = 'hatch-sms-sender' AND wait_event_type = 'Lock'`
        )[0]?.n,
      );

    // The worker claims its jobs in groups (one statement per group): every job fetched (pending
    // acks) and its claims blocked (a statement waiting on the locked rows).
    const names = natsNames(p.nats.prefix);
    const pending = async () => (await p.bus.jsm.consumers.info(names.streams.jobs, names.consumers.smsSender)).num_ack_pending;
    const first = p.spawnWorker();
    await waitFor(async () => (await waiting()) >= 1 && (await pending()) === N, {
      timeoutMs: 30_000,
      message: `the worker fetched all ${N} jobs and its claims block`,
    });
    t.equal(await first.kill9(), 137, 'killed with SIGKILL');
    await waitFor(async () => (await waiting()) === 0, { timeoutMs: 10_000, message: "the dead worker's claims were aborted" });
    await lock`ROLLBACK`;
    t.same(
      (await statuses(p, ids)).map((m) => [m.status, m.attempts]),
      Array(N).fill(['queued', 0]),
      'nothing was claimed',
    );
    t.equal(p.emulator.records.messages().length, 0, 'nothing reached Twilio');

    p.spawnWorker();
    await waitFor(async () => (await statuses(p, ids)).every((m) => m.status === 'sent' || m.status === 'delivered'), {
      timeoutMs: 45_000,
      message: 'every message was redelivered and sent',
    });
    t.ok(
      [...createsPerNumber(p).values()].every((n) => n === 1) && p.emulator.records.messages().length === N,
      'one provider send per message',
    );
    t.same(
      (await statuses(p, ids)).map((m) => m.attempts),
      Array(N).fill(1),
      'each claimed once, by the new worker',
    );
    const stuck = await p.db.db.selectFrom('messages').select('id').where('status', 'in', ['queued', 'sending']).execute();
    t.same(stuck, [], 'none stuck queued or sending');
  },
);
