import t from 'tap';
import { admin, emulatorFor, receiverFor, sendgridFor, twilioFor } from './helpers.js';

const TO = '+15551230001';

t.test('message records are capped: the oldest are dropped and their SIDs no longer fetch', async (t) => {
  const emulator = await emulatorFor(t, { maxRecords: 5 });
  const client = twilioFor(emulator);
  const sids: string[] = [];
  for (let i = 0; i < 8; i++) sids.push((await client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body: `m${i}` })).sid);
  const res = await admin(emulator, 'GET', '/_emulator/messages');
  t.same(
    res.json.messages.map((m: { body: string }) => m.body),
    ['m3', 'm4', 'm5', 'm6', 'm7'],
    'oldest first, the first three dropped',
  );
  t.equal(res.json.evicted, 3);
  t.match(
    await client
      .messages(sids[0] as string)
      .fetch()
      .catch((e: unknown) => e),
    { status: 404, code: 20404 },
  );
  t.equal((await client.messages(sids[7] as string).fetch()).body, 'm7');
  t.equal((await client.messages.list({ to: TO, limit: 100 })).length, 5);
});

t.test('email records are capped by bytes too, keeping the newest', async (t) => {
  const emulator = await emulatorFor(t, { maxEmailBytes: 40_000, sendgrid: { webhookUrl: null } });
  const mail = sendgridFor(emulator);
  const content = Buffer.alloc(15_000, 7).toString('base64'); // ~20 kB per request
  for (const n of [1, 2, 3]) {
    await mail.send({
      to: `r${n}@example.com`,
      from: 'hatch@example.com',
      subject: 's',
      text: 't',
      attachments: [{ content, filename: 'big.bin' }],
    });
  }
  const emails = emulator.records.emails();
  t.ok(emails.length < 3, 'older emails were dropped');
  t.same(emails.at(-1)?.recipients, ['r3@example.com'], 'the newest is kept');
});

t.test('records filter by recipient, SID and acceptance; DELETE clears them', async (t) => {
  const rx = await receiverFor(t);
  const emulator = await emulatorFor(t, { twilio: { inboundUrl: rx.url }, sendgrid: { webhookUrl: null } });
  const client = twilioFor(emulator);
  const a = await client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body: 'a' });
  await client.messages.create({ to: '+15551230002', from: emulator.twilio.phoneNumber, body: 'b' });
  await client.messages.create({ to: 'bad', from: emulator.twilio.phoneNumber, body: 'c' }).catch(() => undefined);
  t.equal((await admin(emulator, 'GET', `/_emulator/messages?to=${encodeURIComponent(TO)}`)).json.messages.length, 1);
  t.equal((await admin(emulator, 'GET', `/_emulator/messages?sid=${a.sid}`)).json.messages[0].body, 'a');
  t.equal((await admin(emulator, 'GET', '/_emulator/messages?accepted=false')).json.messages.length, 1);
  t.equal((await admin(emulator, 'GET', '/_emulator/messages?accepted=true')).json.messages.length, 2);

  await sendgridFor(emulator).send({ to: 'x@example.com', from: 'hatch@example.com', subject: 's', text: 't' });
  await admin(emulator, 'POST', '/_emulator/twilio/inbound', { from: TO, body: 'hi' });
  t.equal((await admin(emulator, 'GET', '/_emulator/inbound')).json.inbound.length, 1);

  for (const path of ['/_emulator/messages', '/_emulator/emails', '/_emulator/inbound']) {
    t.equal((await admin(emulator, 'DELETE', path)).status, 204, `DELETE ${path}`);
  }
  t.same((await admin(emulator, 'GET', '/_emulator/messages')).json.messages, []);
  t.same((await admin(emulator, 'GET', '/_emulator/emails')).json.emails, []);
  t.same((await admin(emulator, 'GET', '/_emulator/inbound')).json.inbound, []);
  t.match(
    await client
      .messages(a.sid)
      .fetch()
      .catch((e: unknown) => e),
    { status: 404 },
    'a cleared message is gone from the API too',
  );
});

t.test('GET /healthz answers ok and /_emulator/info shows the public settings', async (t) => {
  const emulator = await emulatorFor(t);
  const unknownTwilio = await admin(emulator, 'GET', `/2010-04-01/Accounts/${emulator.twilio.accountSid}/Calls.json`);
  t.match(unknownTwilio, { status: 404, json: { code: 20404, status: 404 } }, "an unimplemented Twilio API answers in Twilio's shape");
  t.match(await admin(emulator, 'GET', '/v3/templates'), { status: 404, json: { errors: [{ field: null }] } });
  t.same((await admin(emulator, 'GET', '/healthz')).json, { status: 'ok' });
  const info = (await admin(emulator, 'GET', '/_emulator/info')).json;
  t.match(info, {
    twilio: { accountSid: emulator.twilio.accountSid, phoneNumber: emulator.twilio.phoneNumber },
    sendgrid: { publicKeyBase64: emulator.sendgrid.publicKeyBase64 },
  });
  t.notOk(JSON.stringify(info).includes(emulator.twilio.authToken), 'no auth token');
  t.notOk(JSON.stringify(info).includes(emulator.sendgrid.apiKey), 'no API key');
});

t.test('stop() cancels pending callbacks and held answers, and returns promptly', async (t) => {
  const rx = await receiverFor(t);
  const emulator = await emulatorFor(t, { callbackDelayMs: 5_000 });
  const client = twilioFor(emulator, { timeoutMs: 10_000 });
  await client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body: 'x', statusCallback: rx.url });
  emulator.faults.add({ provider: 'twilio', kind: 'hang', hangMs: 60_000 });
  const held = client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body: 'held' }).then(
    () => 'answered',
    () => 'cut',
  );
  await rx.waitFor(() => emulator.records.messages().length === 2, 'the held request reached the emulator');
  const started = Date.now();
  await emulator.stop();
  t.ok(Date.now() - started < 2_000, `stopped in ${Date.now() - started} ms`);
  t.equal(await held, 'cut', 'the held request was cut, not answered');
  t.equal(rx.received.length, 0, 'no callback was sent, and none is pending');
  await emulator.stop(); // idempotent
});
