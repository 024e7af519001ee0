import t from 'tap';
import { testGateway } from './helpers.js';

const env = { TWILIO_PHONE_NUMBER: '+15005550006' };
const send = (app: Awaited<ReturnType<typeof testGateway>>['app'], auth: Record<string, string>, key: string, payload: unknown) =>
  app.inject({
    method: 'POST',
    url: '/api/send_message',
    headers: { ...auth, 'idempotency-key': key },
    payload: payload as Record<string, unknown>,
  });

async function messageCount(db: Awaited<ReturnType<typeof testGateway>>['db']): Promise<number> {
  return Number(
    (
      await db.db
        .selectFrom('messages')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );
}

t.test('same key + same body replays the first answer and sends nothing again (T15)', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const first = await send(app, auth, 'k-1', { to: '+15551234567', body: 'once' });
  t.equal(first.statusCode, 202);
  const again = await send(app, auth, 'k-1', { body: 'once', to: '+15551234567' });
  t.equal(again.statusCode, 202);
  t.same(again.json(), first.json(), 'identical body');
  t.equal(again.headers['idempotent-replayed'], 'true');
  t.equal(await messageCount(db), 1);
  t.equal(
    Number(
      (
        await db.db
          .selectFrom('outbox')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ) <= 1,
    true,
    'no second outbox row',
  );
});

t.test('same key + another body is 422 IDEMPOTENCY_KEY_REUSED', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  await send(app, auth, 'k-2', { to: 'Bob', body: 'one' });
  const other = await send(app, auth, 'k-2', { to: 'Bob', body: 'two' });
  t.equal(other.statusCode, 422);
  t.match(other.json(), { success: false, code: 'IDEMPOTENCY_KEY_REUSED' });
  t.equal(await messageCount(db), 1);
});

t.test('a key whose first request is still running is 409 with Retry-After; concurrent requests make one message', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  await send(app, auth, 'k-probe', { to: 'Bob', body: 'held' });
  const hash = (await db.db.selectFrom('idempotency_keys').select('request_hash').where('key', '=', 'k-probe').executeTakeFirstOrThrow())
    .request_hash;
  await db.db
    .insertInto('idempotency_keys')
    .values({
      scope: 'token:bootstrap',
      key: 'k-3',
      method: 'POST',
      path: '/api/send_message',
      request_hash: hash,
      state: 'in_progress',
      locked_until: new Date(Date.now() + 60_000),
      expires_at: new Date(Date.now() + 86_400_000),
    })
    .execute();
  const held = await send(app, auth, 'k-3', { to: 'Bob', body: 'held' });
  t.equal(held.statusCode, 409, 'still running: 409');
  t.match(held.json(), { code: 'IDEMPOTENCY_IN_PROGRESS' });
  t.equal(held.headers['retry-after'], '1');
  const results = await Promise.all(Array.from({ length: 8 }, () => send(app, auth, 'k-4', { to: 'Bob', body: 'race' })));
  const codes = results.map((r) => r.statusCode);
  t.ok(
    codes.every((c) => c === 202 || c === 409),
    `only 202 or 409: ${codes}`,
  );
  for (const r of results.filter((x) => x.statusCode === 409)) {
    t.match(r.json(), { code: 'IDEMPOTENCY_IN_PROGRESS' });
    t.equal(r.headers['retry-after'], '1');
  }
  const ids = new Set(results.filter((r) => r.statusCode === 202).map((r) => r.json().message_id));
  t.equal(ids.size, 1, 'every 202 names the same message');
  t.equal(await messageCount(db), 2, 'one message for eight concurrent requests (plus the probe)');
});

t.test('a request that failed validation leaves the key free; an expired key is a new request', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const bad = await send(app, auth, 'k-5', { to: '+1 555', body: 'x' });
  t.equal(bad.statusCode, 400);
  t.equal((await send(app, auth, 'k-5', { to: 'Bob', body: 'fixed' })).statusCode, 202, 'the key was not burned by a 400');
  await db.db
    .updateTable('idempotency_keys')
    .set({ expires_at: new Date(Date.now() - 1000) })
    .where('key', '=', 'k-5')
    .execute();
  const after = await send(app, auth, 'k-5', { to: 'Bob', body: 'fixed' });
  t.equal(after.statusCode, 202);
  t.equal(after.headers['idempotent-replayed'], undefined, 'executed anew');
  t.equal(await messageCount(db), 2);
  const badKey = await send(app, auth, 'x'.repeat(256), { to: 'Bob', body: 'x' });
  t.equal(badKey.statusCode, 400);
  t.match(badKey.json(), { details: [{ field: 'headers.idempotency-key' }] });
});

t.test('a key whose request died mid-flight (lock expired) is taken over', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const first = await send(app, auth, 'k-6', { to: 'Bob', body: 'x' });
  const hash = (await db.db.selectFrom('idempotency_keys').select('request_hash').where('key', '=', 'k-6').executeTakeFirstOrThrow())
    .request_hash;
  await db.db
    .insertInto('idempotency_keys')
    .values({
      scope: 'token:bootstrap',
      key: 'k-7',
      method: 'POST',
      path: '/api/send_message',
      request_hash: hash,
      state: 'in_progress',
      locked_until: new Date(Date.now() - 1000),
      expires_at: new Date(Date.now() + 86_400_000),
    })
    .execute();
  const taken = await send(app, auth, 'k-7', { to: 'Bob', body: 'x' });
  t.equal(taken.statusCode, 202);
  t.not(taken.json().message_id, first.json().message_id);
});
