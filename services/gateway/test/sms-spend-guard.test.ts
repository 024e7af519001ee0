/**
 * The SMS spend guard (issue 14): HATCH_SMS_ALLOWED_COUNTRIES and HATCH_SMS_DAILY_LIMIT on a
 * real gateway (real PostgreSQL and NATS). A refused send is 422 with its own code and stores
 * nothing: no message, conversation, timeline row, outbox row or job. The daily limit holds for
 * two replicas with their own connection pools sending at once.
 */
import t from 'tap';
import { createLogger } from '@hatch/log';
import { createDb, findSmsSentToday } from '@hatch/db';
import { connectBus } from '@hatch/bus';
import { createMetricsRegistry } from '@hatch/service';
import { waitFor, type Teardownable } from '@hatch/testing';
import { build } from '../src/app.js';
import { parseGatewayConfig } from '../src/config.js';
import { TEST_TOKEN, testGateway, type TestGateway } from './helpers.js';

const SMS_FROM = '+15005550006';

async function stored(gw: TestGateway) {
  const q = async (table: 'messages' | 'conversations' | 'outbox' | 'status_events') =>
    Number(
      (
        await gw.db.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const jobs = (await gw.bus.jsm.streams.info(gw.names.streams.jobs)).state.messages;
  return {
    messages: await q('messages'),
    conversations: await q('conversations'),
    outbox: await q('outbox'),
    events: await q('status_events'),
    jobs,
    smsToday: await findSmsSentToday(gw.db.db),
  };
}

function send(gw: Pick<TestGateway, 'app' | 'auth'>, payload: Record<string, string>) {
  return gw.app.inject({ method: 'POST', url: '/api/send_message', headers: gw.auth, payload });
}

/** A second gateway replica on the same database (its own connection pool) and NATS names. */
async function secondReplica(t: Teardownable, gw: TestGateway, env: Record<string, string>): Promise<Pick<TestGateway, 'app' | 'auth'>> {
  const config = parseGatewayConfig({
    DATABASE_URL: gw.db.url,
    NATS_URL: gw.config.NATS_URL,
    HATCH_API_TOKEN: TEST_TOKEN,
    HATCH_NATS_PREFIX: gw.config.HATCH_NATS_PREFIX,
    LOG_LEVEL: 'silent',
    ...env,
  });
  const log = createLogger({ service: 'gateway', level: 'silent', pretty: false });
  const db = createDb(gw.db.url, { max: 5, applicationName: 'hatch-test-replica' });
  const bus = await connectBus({ url: config.NATS_URL, name: 'gateway-test-replica', log });
  const app = await build({ config, log, db, bus, registry: createMetricsRegistry('gateway') });
  t.teardown(async () => {
    await app.close();
    await bus.close(1000);
    await db.close(2);
  });
  return { app, auth: gw.auth };
}

t.test('an SMS to a country outside HATCH_SMS_ALLOWED_COUNTRIES is 422 SMS_COUNTRY_NOT_ALLOWED and stores nothing', async (t) => {
  t.test('default: the country of TWILIO_PHONE_NUMBER', async (t) => {
    const gw = await testGateway(t, { TWILIO_PHONE_NUMBER: SMS_FROM });
    t.same(gw.config.smsAllowedCountries, ['1']);
    for (const to of ['+447700900123', '+33612345678', '+88212345678', '+99912345678']) {
      const res = await send(gw, { to, body: 'costly' });
      t.equal(res.statusCode, 422, `${to}: 422`);
      t.match(
        res.json(),
        { success: false, code: 'SMS_COUNTRY_NOT_ALLOWED', error: /not allowed/, details: [{ field: 'body.to', message: /\+1/ }] },
        `${to}: its own code, naming body.to`,
      );
    }
    t.same(
      await stored(gw),
      { messages: 0, conversations: 0, outbox: 0, events: 0, jobs: 0, smsToday: 0 },
      'nothing stored, nothing counted',
    );
    const home = await send(gw, { to: '+14155550100', body: 'at home' });
    t.equal(home.statusCode, 202, 'a number in the allowed country is sent');
    const chat = await send(gw, { to: 'Ada', body: 'chat is never refused' });
    t.equal(chat.statusCode, 202);
  });

  t.test('an explicit list; "*" allows every country', async (t) => {
    const gw = await testGateway(t, { TWILIO_PHONE_NUMBER: SMS_FROM, HATCH_SMS_ALLOWED_COUNTRIES: ' +44, 353 ' });
    t.same(gw.config.smsAllowedCountries, ['44', '353']);
    t.equal((await send(gw, { to: '+447700900123', body: 'uk' })).statusCode, 202);
    t.equal((await send(gw, { to: '+353871234567', body: 'ie' })).statusCode, 202);
    const us = await send(gw, { to: '+14155550100', body: 'us' });
    t.equal(us.statusCode, 422, 'the own country too is refused when not listed');
    t.equal(us.json().code, 'SMS_COUNTRY_NOT_ALLOWED');
    t.equal((await stored(gw)).messages, 2);
    const open = await testGateway(t, { TWILIO_PHONE_NUMBER: SMS_FROM, HATCH_SMS_ALLOWED_COUNTRIES: '*' });
    t.equal((await send(open, { to: '+818012345678', body: 'jp' })).statusCode, 202);
  });

  t.test('a code that is not a country calling code stops the gateway naming the setting', async (t) => {
    const problems = (env: Record<string, string>): readonly string[] => {
      try {
        parseGatewayConfig({ HATCH_API_TOKEN: 'x'.repeat(16), ...env });
        return [];
      } catch (err) {
        return (err as { problems?: readonly string[] }).problems ?? [String(err)];
      }
    };
    for (const value of ['1,999', '35', '44;33', 'uk', '1,,44']) {
      t.match(
        problems({ HATCH_SMS_ALLOWED_COUNTRIES: value }),
        [/^HATCH_SMS_ALLOWED_COUNTRIES: .* not (a )?country calling codes?/],
        `${value}: one line naming the setting`,
      );
    }
    t.match(problems({ HATCH_SMS_DAILY_LIMIT: 'lots' }), [/^HATCH_SMS_DAILY_LIMIT: must be an integer/]);
    t.match(problems({ HATCH_SMS_DAILY_LIMIT: '-1' }), [/^HATCH_SMS_DAILY_LIMIT: /]);
    t.equal(parseGatewayConfig({ HATCH_API_TOKEN: 'x'.repeat(16) }).HATCH_SMS_DAILY_LIMIT, 10_000, 'default 10,000 a day');
    t.same(parseGatewayConfig({ HATCH_API_TOKEN: 'x'.repeat(16), TWILIO_PHONE_NUMBER: '+447700900001' }).smsAllowedCountries, ['44']);
    t.same(parseGatewayConfig({ HATCH_API_TOKEN: 'x'.repeat(16) }).smsAllowedCountries, ['1'], "no TWILIO_PHONE_NUMBER: the emulator's +1");
  });
});

t.test(
  'HATCH_SMS_DAILY_LIMIT=3: of 10 SMS sent at once through two replicas exactly 3 are accepted, the rest 422 SMS_DAILY_LIMIT_REACHED, stored nowhere',
  async (t) => {
    const env = { TWILIO_PHONE_NUMBER: SMS_FROM, HATCH_SMS_DAILY_LIMIT: '3' };
    const gw = await testGateway(t, env);
    const other = await secondReplica(t, gw, env);
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => send(i % 2 ? other : gw, { to: `+1415555${String(i).padStart(4, '0')}`, body: `sms ${i}` })),
    );
    const accepted = answers.filter((r) => r.statusCode === 202);
    const refused = answers.filter((r) => r.statusCode !== 202);
    t.equal(accepted.length, 3, 'exactly the limit accepted');
    t.equal(refused.length, 7);
    for (const r of refused)
      t.match(
        { status: r.statusCode, ...r.json() },
        { status: 422, success: false, code: 'SMS_DAILY_LIMIT_REACHED', error: /daily SMS limit \(3 per UTC day/ },
      );
    await waitFor(async () => (await stored(gw)).outbox === 0, { message: 'the accepted jobs relayed' });
    t.same(
      await stored(gw),
      { messages: 3, conversations: 3, outbox: 0, events: 3, jobs: 3, smsToday: 3 },
      'only the accepted three are stored and queued',
    );
    const ids = new Set((await gw.db.db.selectFrom('messages').select('id').execute()).map((m) => m.id));
    t.same(new Set(accepted.map((r) => r.json().message_id as string)), ids, 'the stored messages are the ones answered 202');

    const chat = await send(other, { to: 'Ada', body: 'chat does not count' });
    t.equal(chat.statusCode, 202, 'chat messages are not limited');
    const later = await send(gw, { to: '+14155550199', body: 'one more' });
    t.equal(later.json().code, 'SMS_DAILY_LIMIT_REACHED', 'still refused after the burst');
    t.equal(await findSmsSentToday(gw.db.db), 3);
  },
);

t.test(
  'POST /api/messages/:id/retry sends again, so it passes the spend guard too: a slot of the daily limit, or 422 with nothing changed',
  async (t) => {
    const gw = await testGateway(t, { TWILIO_PHONE_NUMBER: SMS_FROM, HATCH_SMS_DAILY_LIMIT: '2' });
    const first = await send(gw, { to: '+14155550123', body: 'try me' });
    t.equal(first.statusCode, 202);
    const id = first.json().message_id as string;
    await waitFor(async () => (await stored(gw)).outbox === 0, { message: 'the first job relayed' });
    const fail = () => gw.db.db.updateTable('messages').set({ status: 'failed', error_code: '30003' }).where('id', '=', id).execute();
    const retry = () => gw.app.inject({ method: 'POST', url: `/api/messages/${id}/retry`, headers: gw.auth });

    await fail();
    const ok = await retry();
    t.equal(ok.statusCode, 202, 'the second SMS of the day');
    t.equal(await findSmsSentToday(gw.db.db), 2);
    await waitFor(async () => (await stored(gw)).outbox === 0, { message: 'the retry job relayed' });

    await fail();
    const refused = await retry();
    t.equal(refused.statusCode, 422);
    t.equal(refused.json().code, 'SMS_DAILY_LIMIT_REACHED');
    const m = await gw.db.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    t.match(m, { status: 'failed', error_code: '30003' }, 'the message stays failed');
    const s = await stored(gw);
    t.same({ outbox: s.outbox, jobs: s.jobs, smsToday: s.smsToday }, { outbox: 0, jobs: 2, smsToday: 2 }, 'no third job, nothing counted');

    // A retry to a country no longer allowed is refused the same way.
    const narrowed = await testGateway(t, { TWILIO_PHONE_NUMBER: SMS_FROM, HATCH_SMS_ALLOWED_COUNTRIES: '*' });
    const uk = await send(narrowed, { to: '+447700900123', body: 'abroad' });
    const ukId = uk.json().message_id as string;
    await narrowed.db.db.updateTable('messages').set({ status: 'failed' }).where('id', '=', ukId).execute();
    const replica = await secondReplica(t, narrowed, { TWILIO_PHONE_NUMBER: SMS_FROM, HATCH_SMS_ALLOWED_COUNTRIES: '1' });
    const abroad = await replica.app.inject({ method: 'POST', url: `/api/messages/${ukId}/retry`, headers: narrowed.auth });
    t.equal(abroad.statusCode, 422);
    t.equal(abroad.json().code, 'SMS_COUNTRY_NOT_ALLOWED');
    t.equal(
      (await narrowed.db.db.selectFrom('messages').select('status').where('id', '=', ukId).executeTakeFirstOrThrow()).status,
      'failed',
    );
  },
);
