/**
 * Webhook abuse bounded (issue 14), against real listening gateways over raw sockets: a rate
 * limit per client address on every /webhooks route (by the route that matched, not the URL
 * spelling), body and parameter caps, a flood of bogus signed SendGrid batches that cannot starve
 * the API, and a gateway that warns at start when it accepts unsigned SendGrid events.
 */
import t from 'tap';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import twilio from 'twilio';
import { newRecordId, conversationIdFor } from '@hatch/contracts/node';
import { acceptMessages, insertEmail } from '@hatch/db';
import { createTestDb, freePort, spawnService, testNats, testNatsUrl, waitFor, type Teardownable } from '@hatch/testing';
import { SENDGRID_OVERLOAD_RETRY_AFTER_S, SENDGRID_VERIFY_CONCURRENCY, SENDGRID_VERIFY_QUEUE } from '../src/webhooks/sendgrid.js';
import { listening, testGateway, type TestGateway } from './helpers.js';
import { rawRequest, type RawResponse } from './raw-http.js';

const PUBLIC = 'https://hatch.example.test';
const TWILIO_TOKEN = 'twilio-webhook-abuse-token';
const sgKeys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const SG_PUBLIC_KEY = sgKeys.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const otherKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

function twilioCallback(port: number, target: string, params: Record<string, string>, localAddress?: string): Promise<RawResponse> {
  const path = target.split('?')[0] ?? target;
  const query = target.includes('?') ? target.slice(target.indexOf('?')) : '';
  return rawRequest(port, {
    method: 'POST',
    target,
    localAddress,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': twilio.getExpectedTwilioSignature(TWILIO_TOKEN, `${PUBLIC}${path}${query}`, params),
    },
    body: new URLSearchParams(params).toString(),
  });
}

/** A SendGrid batch as SendGrid posts it, signed with `key` (the configured one unless told). */
function sendgridBatch(port: number, body: string | Buffer, key = sgKeys.privateKey, timeoutMs = 30_000): Promise<RawResponse> {
  const ts = String(Math.floor(Date.now() / 1000));
  return rawRequest(port, {
    method: 'POST',
    target: '/webhooks/sendgrid/events',
    headers: {
      'content-type': 'application/json',
      'x-twilio-email-event-webhook-signature': sign('sha256', Buffer.concat([Buffer.from(ts), Buffer.from(body)]), key).toString('base64'),
      'x-twilio-email-event-webhook-timestamp': ts,
    },
    body,
    timeoutMs,
  });
}

/** An outbound SMS waiting for Twilio's callbacks, stored as the send route stores it. */
async function queuedSms(g: TestGateway): Promise<string> {
  const id = newRecordId();
  const [from, to] = ['+15005550006', '+15551234567'];
  await acceptMessages(g.db.db, [
    {
      message: {
        id,
        conversation_id: conversationIdFor(from, to),
        from_contact: from,
        to_contact: to,
        body: 'hello',
        channel: 'sms',
        direction: 'outbound',
        status: 'queued',
        provider_sid: null,
        segments: 1,
      },
      conversation: { participants: [from, to].sort() as [string, string], channel: 'sms', at: new Date() },
      source: 'api',
      outbox: false,
    },
  ]);
  return id;
}

/** An email SendGrid has accepted (status sent), waiting for its events. */
async function sentEmail(g: TestGateway): Promise<string> {
  const row = await insertEmail(g.db.db, {
    id: newRecordId(),
    from_email: 'hatch@example.com',
    to_email: ['ann@example.com'],
    subject: 's',
    body: 'b',
    status: 'sent',
  });
  return row.id;
}

const messageStatus = async (g: TestGateway, id: string) =>
  (await g.db.db.selectFrom('messages').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;
const emailStatus = async (g: TestGateway, id: string) =>
  (await g.db.db.selectFrom('emails').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;
const statusParams = (sid: string, status: string) => ({
  MessageSid: sid,
  AccountSid: `AC${'1'.repeat(32)}`,
  From: '+15005550006',
  To: '+15551234567',
  MessageStatus: status,
});
const retryAfterS = (r: RawResponse) => Number(r.headers['retry-after']);

function metric(text: string, name: string, provider: string): number {
  const m = new RegExp(`^${name}\\{[^}]*provider="${provider}"[^}]*\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

t.test(
  '/webhooks/* is rate limited per client address by the matched route: past the limit 429 + Retry-After and no change; another address and the API are unaffected',
  async (t) => {
    const g = await testGateway(t, {
      PUBLIC_URL: PUBLIC,
      TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
      TWILIO_PHONE_NUMBER: '+15005550006',
      SENDGRID_WEBHOOK_PUBLIC_KEY: SG_PUBLIC_KEY,
      HATCH_WEBHOOK_RATE_LIMIT_PER_MINUTE: '4',
    });
    const port = await listening(g);
    const id = await queuedSms(g);

    // Four callbacks from 127.0.0.1, spelled three ways the router matches to the same two routes.
    for (const target of ['/webhooks/twilio/status', '/webhooks/twilio/status?x=1', '/%77ebhooks/twilio/status']) {
      t.equal((await twilioCallback(port, target, statusParams('SMunknown', 'sent'))).status, 204, `${target} counts and passes`);
    }
    t.equal((await sendgridBatch(port, '[]')).status, 204, 'the SendGrid route shares the address budget');

    const limited = await twilioCallback(port, `/%77ebhooks/twilio/status?mid=${id}`, statusParams('SM0001', 'delivered'));
    t.equal(limited.status, 429, 'the 5th webhook request in the minute from this address, whatever its spelling');
    t.match(JSON.parse(limited.body), { success: false, code: 'RATE_LIMITED', error: String }, 'contract error body');
    t.ok(retryAfterS(limited) > 0 && retryAfterS(limited) <= 60, `Retry-After in seconds (${limited.headers['retry-after']})`);
    t.equal((await sendgridBatch(port, '[]')).status, 429, 'the SendGrid route too');
    t.equal(await messageStatus(g, id), 'queued', 'the refused callback changed nothing');

    const api = await rawRequest(port, { method: 'GET', target: '/api/conversations', headers: g.auth });
    t.equal(api.status, 200, 'the API from the same address has its own limiter');

    const other = await twilioCallback(port, `/webhooks/twilio/status?mid=${id}`, statusParams('SM0001', 'delivered'), '127.0.0.2');
    t.equal(other.status, 204, 'another client address has its own budget');
    t.equal(await messageStatus(g, id), 'delivered');
  },
);

/**
 * Holds every thread of libuv's pool (where the ECDSA checks run) until `release()`: each thread
 * blocks opening a FIFO for reading until a writer opens it. No timing involved.
 */
async function holdThreadPool(t: Teardownable): Promise<{ release(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-pool-'));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const held = Array.from({ length: threads }, () => fs.promises.open(fifo, 'r'));
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    const writer = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    for (const h of await Promise.all(held)) await h.close();
    fs.closeSync(writer);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  t.teardown(release);
  return { release };
}

t.test(
  'past the bound of SendGrid signature checks in progress a batch is 503 + Retry-After at once, before its body is read; the waiting ones are answered after',
  async (t) => {
    const g = await testGateway(t, { SENDGRID_WEBHOOK_PUBLIC_KEY: SG_PUBLIC_KEY });
    const port = await listening(g);
    const emailId = await sentEmail(g);
    const pendingChecks = async () =>
      metric((await g.app.inject({ method: 'GET', url: '/metrics' })).body, 'hatch_webhook_verifications_pending', 'sendgrid');

    const pool = await holdThreadPool(t);
    const bound = SENDGRID_VERIFY_CONCURRENCY + SENDGRID_VERIFY_QUEUE;
    const waiting = Array.from({ length: bound }, () => sendgridBatch(port, '[]', otherKey));
    await waitFor(async () => (await pendingChecks()) === bound);

    // Its headers only: the Content-Length promises a body that never comes.
    const shed = await rawRequest(port, {
      method: 'POST',
      target: '/webhooks/sendgrid/events',
      headers: {
        'content-type': 'application/json',
        'x-twilio-email-event-webhook-signature': sign(
          'sha256',
          Buffer.from(`${Math.floor(Date.now() / 1000)}[]`),
          sgKeys.privateKey,
        ).toString('base64'),
        'x-twilio-email-event-webhook-timestamp': String(Math.floor(Date.now() / 1000)),
      },
      contentLength: '100000',
      body: '',
      timeoutMs: 10_000,
    });
    t.equal(shed.status, 503, 'refused without reading the body');
    t.equal(shed.headers['retry-after'], String(SENDGRID_OVERLOAD_RETRY_AFTER_S));
    t.match(JSON.parse(shed.body), { success: false, code: 'SERVICE_UNAVAILABLE', error: String });

    await pool.release();
    const answers = await Promise.all(waiting);
    t.same([...new Set(answers.map((a) => a.status))], [403], 'the waiting bogus batches are checked and refused');
    t.equal(await pendingChecks(), 0);
    const ok = await sendgridBatch(
      port,
      JSON.stringify([
        {
          email: 'ann@example.com',
          timestamp: Math.floor(Date.now() / 1000),
          event: 'delivered',
          sg_event_id: randomUUID(),
          email_id: emailId,
        },
      ]),
    );
    t.equal(ok.status, 204, 'a real batch passes again');
    t.equal(await emailStatus(g, emailId), 'delivered');
    const metrics = (await g.app.inject({ method: 'GET', url: '/metrics' })).body;
    t.equal(metric(metrics, 'hatch_webhook_shed_total', 'sendgrid'), 1, 'the shed batch is counted');
  },
);

t.test(
  'webhook bodies are capped: SendGrid past 1 MiB and Twilio past 32 KiB are 413, a Twilio form of more than 200 parameters is 400; nothing changes',
  async (t) => {
    const g = await testGateway(t, {
      PUBLIC_URL: PUBLIC,
      TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
      TWILIO_PHONE_NUMBER: '+15005550006',
      SENDGRID_WEBHOOK_PUBLIC_KEY: SG_PUBLIC_KEY,
    });
    const port = await listening(g);
    const emailId = await sentEmail(g);
    const smsId = await queuedSms(g);

    const event = {
      email: 'ann@example.com',
      timestamp: Math.floor(Date.now() / 1000),
      event: 'delivered',
      sg_event_id: randomUUID(),
      email_id: emailId,
      pad: '',
    };
    const big = JSON.stringify([{ ...event, pad: 'x'.repeat(1024 * 1024) }]);
    const tooBig = await sendgridBatch(port, big);
    t.equal(tooBig.status, 413, 'a correctly signed 1 MiB+ SendGrid batch');
    t.match(JSON.parse(tooBig.body), { success: false, code: 'PAYLOAD_TOO_LARGE' });
    t.equal(await emailStatus(g, emailId), 'sent');

    const bigForm = await twilioCallback(port, `/webhooks/twilio/status?mid=${smsId}`, {
      ...statusParams('SM0002', 'delivered'),
      Pad: 'x'.repeat(33 * 1024),
    });
    t.equal(bigForm.status, 413, 'a correctly signed 33 KiB Twilio callback');
    const manyParams: Record<string, string> = statusParams('SM0002', 'delivered');
    for (let i = 0; i < 200; i++) manyParams[`P${i}`] = '';
    const many = await twilioCallback(port, `/webhooks/twilio/status?mid=${smsId}`, manyParams);
    t.equal(many.status, 400, 'a correctly signed callback of 205 parameters');
    t.match(JSON.parse(many.body), { success: false, code: 'INVALID_REQUEST', error: /200 form parameters/ });
    t.equal(await messageStatus(g, smsId), 'queued');

    // The caps leave real requests alone: a 1,600-character inbound SMS in CJK, ~15 KB encoded.
    const inbound = {
      MessageSid: 'SMcjk0001',
      AccountSid: `AC${'1'.repeat(32)}`,
      From: '+15557000001',
      To: '+15005550006',
      Body: '你'.repeat(1600),
      NumMedia: '0',
    };
    t.equal((await twilioCallback(port, '/webhooks/twilio/sms', inbound)).status, 200, 'a long CJK inbound SMS is accepted');
    // SendGrid posts a batch when it reaches 768 KB: one just past that is accepted.
    const batch = JSON.stringify(Array.from({ length: 300 }, () => ({ ...event, sg_event_id: randomUUID(), pad: 'x'.repeat(2600) })));
    t.ok(batch.length > 768 * 1024, `the batch is ${batch.length} bytes`);
    t.equal((await sendgridBatch(port, batch)).status, 204, 'a SendGrid-sized batch is accepted');
    t.equal(await emailStatus(g, emailId), 'delivered');
  },
);

/**
 * The flood's sender, in its own process so that only the gateway's work shares this test's event
 * loop: `count` POSTs of one batch of `size` bytes, `parallel` at a time, each on its own
 * connection, signed once with KEY_PEM; prints the count of each answer's status as JSON.
 */
const FLOOD_CLIENT = `
import net from 'node:net';
import { sign, createPrivateKey } from 'node:crypto';
const [port, count, parallel, size] = process.argv.slice(1).map(Number);
const body = Buffer.from(JSON.stringify([{ event: 'delivered', email_id: process.env.EMAIL_ID, sg_event_id: 'flood', pad: 'x'.repeat(size) }]));
const ts = String(Math.floor(Date.now() / 1000));
const sig = sign('sha256', Buffer.concat([Buffer.from(ts), body]), createPrivateKey(process.env.KEY_PEM)).toString('base64');
const head = Buffer.from('POST /webhooks/sendgrid/events HTTP/1.1\\r\\nhost: 127.0.0.1\\r\\nconnection: close\\r\\ncontent-type: application/json\\r\\n'
  + 'x-twilio-email-event-webhook-signature: ' + sig + '\\r\\nx-twilio-email-event-webhook-timestamp: ' + ts + '\\r\\ncontent-length: ' + body.length + '\\r\\n\\r\\n');
const statuses = {};
let started = 0;
const one = () => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1');
  let got = '';
  s.on('data', (c) => (got += c.toString('latin1')));
  s.on('error', () => {});
  s.on('close', () => {
    const st = /^HTTP\\/1\\.1 (\\d{3})/.exec(got)?.[1] ?? '0';
    statuses[st] = (statuses[st] ?? 0) + 1;
    resolve();
  });
  s.write(head);
  s.write(body);
});
await Promise.all(Array.from({ length: parallel }, async () => { while (started < count) { started++; await one(); } }));
process.stdout.write(JSON.stringify(statuses));
`;

t.test(
  'a flood of bogus signed SendGrid batches does not starve the API: every API request during it is 200 and nine in ten within 200 ms; every batch is 403 or 503, nothing changes',
  async (t) => {
    const g = await testGateway(t, { SENDGRID_WEBHOOK_PUBLIC_KEY: SG_PUBLIC_KEY });
    const port = await listening(g);
    const emailId = await sentEmail(g);
    // 1,000 batches of 4 KB, 32 at a time: with the SDK's check on the event loop (3.5 ms each)
    // nine in ten API requests waited 0.5-0.7 s here (the slowest 0.7-1.4 s); with the check on
    // the thread pool behind the gate, 20-40 ms (the slowest 0.1-0.25 s).
    const FLOOD = 1000;
    const client = spawn(process.execPath, ['--input-type=module', '-e', FLOOD_CLIENT, String(port), String(FLOOD), '32', '4096'], {
      env: { KEY_PEM: otherKey.export({ type: 'pkcs8', format: 'pem' }).toString(), EMAIL_ID: emailId },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    client.stdout.on('data', (d: Buffer) => (out += d.toString()));
    let flooding = true;
    const exited = new Promise<number | null>((resolve) => client.on('exit', resolve)).finally(() => (flooding = false));
    t.teardown(() => {
      if (flooding) client.kill('SIGKILL');
    });

    // The API, asked one request after another for as long as the flood runs.
    const api: Array<{ status: number; ms: number }> = [];
    while (flooding) {
      const started = performance.now();
      const r = await rawRequest(port, { method: 'GET', target: '/api/conversations', headers: g.auth, timeoutMs: 30_000 });
      api.push({ status: r.status, ms: performance.now() - started });
    }
    t.equal(await exited, 0, 'the flood ran to its end');
    const answers = JSON.parse(out) as Record<string, number>;

    const ms = api.map((a) => a.ms).sort((x, y) => x - y);
    const p90 = ms[Math.floor(ms.length * 0.9)] ?? Infinity;
    const slowest = ms[ms.length - 1] ?? Infinity;
    t.comment(
      `${api.length} API requests during the flood: p90 ${p90.toFixed(0)} ms, slowest ${slowest.toFixed(0)} ms; flood answers ${out}`,
    );
    t.ok(api.length >= 10, `the API was asked throughout the flood (${api.length} requests)`);
    t.same(
      api.filter((a) => a.status !== 200),
      [],
      'every API request during the flood is 200',
    );
    t.ok(p90 < 200, `nine in ten API requests during the flood answered within 200 ms (${p90.toFixed(0)} ms)`);
    t.ok(slowest < 2000, `none waited 2 s (${slowest.toFixed(0)} ms)`);

    t.equal(
      Object.values(answers).reduce((x, y) => x + y, 0),
      FLOOD,
      'every batch answered',
    );
    t.same(
      Object.keys(answers).filter((status) => status !== '403' && status !== '503'),
      [],
      'every bogus batch is refused: 403, or 503 past the verification bound',
    );
    t.equal(await emailStatus(g, emailId), 'sent', 'nothing believed');
    const metrics = (await g.app.inject({ method: 'GET', url: '/metrics' })).body;
    t.equal(metric(metrics, 'hatch_webhook_rejected_total', 'sendgrid'), answers['403'] ?? 0, 'each 403 counted as rejected');
    t.equal(metric(metrics, 'hatch_webhook_shed_total', 'sendgrid'), answers['503'] ?? 0, 'each 503 counted as shed');
  },
);

t.test(
  'SENDGRID_WEBHOOK_ALLOW_UNSIGNED=true: the gateway warns at start; a malformed SENDGRID_WEBHOOK_PUBLIC_KEY stops it with one line naming it',
  async (t) => {
    const db = await createTestDb(t);
    const nats = testNats(t);
    const base = {
      DATABASE_URL: db.url,
      NATS_URL: testNatsUrl(),
      HATCH_NATS_PREFIX: nats.prefix,
      HATCH_API_TOKEN: 'x'.repeat(32),
      LOG_LEVEL: 'info',
    };
    const p = spawnService(t, 'gateway', { ...base, PORT: String(await freePort()), SENDGRID_WEBHOOK_ALLOW_UNSIGNED: 'true' });
    await p.waitForLog((l) => l.msg === 'gateway ready');
    t.ok(
      p
        .logs()
        .some(
          (l) =>
            l.level === 40 &&
            /SENDGRID_WEBHOOK_ALLOW_UNSIGNED=true: SendGrid events are accepted WITHOUT a signature check/.test(String(l.msg)),
        ),
      'a warning at start names the setting',
    );
    p.signal('SIGTERM');
    t.equal(await p.exited, 0);

    const bad = spawnService(t, 'gateway', { ...base, PORT: String(await freePort()), SENDGRID_WEBHOOK_PUBLIC_KEY: 'not-a-key' });
    const outcome = await Promise.race([
      bad.exited.then((code) => `exit ${code}`),
      bad.waitForLog((l) => l.msg === 'gateway ready', 30_000).then(() => 'started'),
    ]);
    t.equal(outcome, 'exit 1', 'it does not start');
    t.same(bad.output().trim().split('\n'), [
      'gateway: config error: SENDGRID_WEBHOOK_PUBLIC_KEY: must be the EC P-256 verification key SendGrid shows (base64 DER) or its PEM',
    ]);
  },
);
