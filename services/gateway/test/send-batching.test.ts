/**
 * Group commit of sends (src/send-batcher.ts): concurrent sends share statements and commits,
 * every 202 is a committed row, an opted-out recipient in a batch is refused alone, a failing
 * message is split off from its batch, and the waiting queue is bounded (503 past it).
 */
import t from 'tap';
import { insertOptOut } from '@hatch/db';
import { testGateway } from './helpers.js';

const env = { TWILIO_PHONE_NUMBER: '+15005550006', TWILIO_AUTH_TOKEN: 'twilio-test-token' };

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

async function count(db: Awaited<ReturnType<typeof testGateway>>['db'], table: 'messages' | 'outbox' | 'status_events'): Promise<number> {
  return Number(
    (
      await db.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );
}

t.test(
  '200 concurrent sends: every 202 is stored, fewer statements than sends, counts exact, the opted-out one refused alone',
  async (t) => {
    const { app, auth, db } = await testGateway(t, env);
    await insertOptOut(db.db, { phone: '+15550009999', reason: 'STOP', source: 'inbound' });
    const sends = Array.from({ length: 200 }, (_, i) => {
      if (i === 77) return { to: '+15550009999', body: 'to the opted-out number' };
      // four hot conversations (two SMS, two chat) plus one-off recipients
      if (i % 5 === 0) return { to: ['+15550000001', '+15550000002', 'Ada', 'Grace'][i % 4] as string, body: `hot ${i}` };
      return i % 2 ? { to: `+1555100${String(i).padStart(4, '0')}`, body: `sms ${i}` } : { to: `contact ${i}`, body: `chat ${i}` };
    });
    const res = await Promise.all(
      sends.map((payload, i) =>
        app.inject({
          method: 'POST',
          url: '/api/send_message',
          headers: { ...auth, ...(i % 10 === 3 ? { 'idempotency-key': `k-${i}` } : {}) },
          payload,
        }),
      ),
    );
    const codes = res.map((r) => r.statusCode);
    t.equal(codes[77], 422, 'the opted-out recipient is refused');
    t.equal(res[77]?.json().code, 'RECIPIENT_OPTED_OUT');
    t.equal(codes.filter((c) => c === 202).length, 199, 'every other send accepted');
    const ids = res.filter((r) => r.statusCode === 202).map((r) => r.json().message_id as string);
    const stored = await db.db.selectFrom('messages').select('id').where('id', 'in', ids).execute();
    t.equal(stored.length, 199, 'each 202 is a stored message');
    t.equal(await count(db, 'messages'), 199, 'nothing stored for the refused one');
    t.equal(await count(db, 'status_events'), 199, 'one timeline row each');
    const convs = await db.db.selectFrom('conversations').select(['participants', 'message_count']).execute();
    const hot = convs.filter((c) => c.message_count > 1);
    t.same(hot.map((c) => c.message_count).sort(), [10, 10, 10, 10], 'each hot conversation counted every message');
    t.equal(
      convs.reduce((n, c) => n + c.message_count, 0),
      199,
    );
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const statements = metric(metrics, 'hatch_send_batch_size_count');
    t.ok(statements >= 1 && statements < 200, `grouped: ${statements} statements for 200 sends`);
    t.equal(metric(metrics, 'hatch_send_batch_size_sum'), 200);
    // idempotent sends in a batch replay their stored answer
    const replay = await app.inject({
      method: 'POST',
      url: '/api/send_message',
      headers: { ...auth, 'idempotency-key': 'k-13' },
      payload: sends[13],
    });
    t.equal(replay.statusCode, 202);
    t.equal(replay.headers['idempotent-replayed'], 'true');
    t.equal(replay.json().message_id, res[13]?.json().message_id, 'same message, not a second one');
    t.equal(await count(db, 'messages'), 199);
  },
);

t.test('a message that makes its batch fail is split off: the others are stored, it alone fails', async (t) => {
  const { app, auth, db } = await testGateway(t, env, { build: { sends: { maxInFlight: 1 } } });
  await db.sql.unsafe(`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.body = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$`);
  await db.sql.unsafe('CREATE TRIGGER refuse_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_poison()');
  const bodies = Array.from({ length: 30 }, (_, i) => (i === 12 ? 'poison' : `fine ${i}`));
  const res = await Promise.all(
    bodies.map((body, i) => app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: `contact ${i}`, body } })),
  );
  t.equal(res[12]?.statusCode, 500, 'the poisoned send fails');
  t.equal(res[12]?.json().code, 'INTERNAL_ERROR');
  t.same(
    res.filter((_, i) => i !== 12).map((r) => r.statusCode),
    Array(29).fill(202),
    'every other send in its batch is accepted',
  );
  t.equal(await count(db, 'messages'), 29);
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.ok(metric(metrics, 'hatch_send_batch_split_total') >= 1, 'a batch was split');
});

t.test('the waiting queue is bounded: past it a send gets 503 + Retry-After and nothing is stored for it', async (t) => {
  const { app, auth, db } = await testGateway(t, env, { build: { sends: { maxInFlight: 1, maxBatch: 1, maxQueued: 3 } } });
  const res = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: `contact ${i}`, body: `b ${i}` } }),
    ),
  );
  const refused = res.filter((r) => r.statusCode === 503);
  const accepted = res.filter((r) => r.statusCode === 202);
  t.equal(refused.length + accepted.length, 40, 'only 202 or 503');
  t.ok(refused.length > 0, `${refused.length} refused while the queue was full`);
  t.equal(refused[0]?.headers['retry-after'], '2');
  t.equal(refused[0]?.json().code, 'SERVICE_UNAVAILABLE');
  t.equal(await count(db, 'messages'), accepted.length, 'exactly the accepted ones are stored');
});
