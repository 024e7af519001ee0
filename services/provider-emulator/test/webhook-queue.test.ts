import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import type { Logger } from '@hatch/log';
import { Background } from '../src/background.js';
import { WebhookClient, type WebhookPolicy } from '../src/webhook-client.js';
import { WebhookQueue, type DeliveryRecord, type WebhookFormat } from '../src/webhook-queue.js';
import { receiverFor, waitFor, type Teardown } from './helpers.js';

type Rec = { name: string } & DeliveryRecord;
type Warning = { fields: Record<string, unknown>; msg: string };

const format: WebhookFormat<{ name: string }> = {
  encode: (p) => JSON.stringify(p),
  headers: (url, p, body) => ({ 'content-type': 'application/json', 'x-signed': `${url}|${p.name}|${body.length}` }),
};

function queueFor(t: Teardown, policy: Partial<WebhookPolicy> = {}) {
  const warnings: Warning[] = [];
  const log = { warn: (fields: Record<string, unknown>, msg: string) => warnings.push({ fields, msg }) } as unknown as Logger;
  const bg = new Background(log);
  const client = new WebhookClient(bg);
  t.teardown(() => bg.stop());
  const queue = new WebhookQueue({
    bg,
    client,
    policy: { attempts: 3, retryBaseMs: 20, timeoutMs: 2000, ...policy },
    log,
    format,
    task: 'test deliveries',
    refused: 'test delivery not accepted',
  });
  const records: Rec[] = [];
  const delivery = (url: string, name: string) => () => ({ url, payload: { name }, fields: { name }, records, context: { name } });
  return { bg, queue, records, warnings, delivery };
}

const names = (r: Array<{ json: unknown }>) => r.map((x) => (x.json as { name: string }).name);

t.test('a refused delivery is retried up to the policy attempts with doubling backoff, then recorded and logged', async (t) => {
  const rx = await receiverFor(t);
  const q = queueFor(t, { attempts: 3, retryBaseMs: 40 });
  const times: number[] = [];
  rx.respond(() => {
    times.push(Date.now());
    return { status: 500 };
  });
  q.queue.send(q.delivery(rx.url, 'a'));
  t.match(q.records, [{ name: 'a', url: rx.url, attempts: 0, ok: false }], 'recorded before the first attempt');
  await waitFor(() => q.records[0]?.attempts === 3, { timeoutMs: 5000, message: 'three attempts' });
  t.equal(rx.received.length, 3, 'exactly the policy attempts, no more');
  t.match(q.records[0], { attempts: 3, ok: false, httpStatus: 500, error: null });
  const [t0 = 0, t1 = 0, t2 = 0] = times;
  t.ok(t1 - t0 >= 35 && t2 - t1 >= 75, `backoff doubles (${t1 - t0} ms, ${t2 - t1} ms)`);
  t.same(q.warnings, [{ fields: { name: 'a', httpStatus: 500, error: null, attempts: 3 }, msg: 'test delivery not accepted' }]);
  const first = rx.received[0];
  t.equal(first?.headers['x-signed'], `${rx.url}|a|${first?.raw.length}`, 'the format signs the encoded body');
  t.ok(
    rx.received.every((r) => r.headers['x-signed'] === first?.headers['x-signed']),
    'every retry carries the same request',
  );
});

t.test('a final refusal (4xx) is not retried', async (t) => {
  const rx = await receiverFor(t);
  rx.respond(() => ({ status: 403 }));
  const q = queueFor(t);
  q.queue.send(q.delivery(rx.url, 'a'));
  await waitFor(() => q.records[0]?.attempts === 1 && q.warnings.length === 1, { timeoutMs: 5000, message: 'one attempt' });
  t.match(q.records[0], { attempts: 1, ok: false, httpStatus: 403 });
  t.equal(rx.received.length, 1);
});

t.test('an unanswered attempt ends at the timeout and counts as one attempt', async (t) => {
  // A receiver that reads the request and never answers.
  let requests = 0;
  const server = http.createServer(() => void requests++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const q = queueFor(t, { attempts: 2, retryBaseMs: 10, timeoutMs: 150 });
  const started = Date.now();
  q.queue.send(q.delivery(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'slow'));
  await waitFor(() => q.records[0]?.attempts === 2 && q.warnings.length === 1, { timeoutMs: 5000, message: 'two timed-out attempts' });
  t.equal(requests, 2);
  t.match(q.records[0], { attempts: 2, ok: false, httpStatus: null, error: 'ETIMEDOUT' });
  t.ok(Date.now() - started < 2000, 'bounded by attempts × timeout + backoff');
});

t.test('a lane delivers one at a time in order; a retried delivery holds the next back', async (t) => {
  const rx = await receiverFor(t);
  let refusals = 2;
  rx.respond((r) => ((r.json as { name: string }).name === 'first' && refusals-- > 0 ? { status: 503 } : { status: 204 }));
  const q = queueFor(t);
  const lane = q.queue.lane();
  let secondPrepared = false;
  lane.send(q.delivery(rx.url, 'first'));
  lane.send(() => {
    secondPrepared = true;
    return q.delivery(rx.url, 'second')();
  });
  t.notOk(secondPrepared, 'the next delivery is built only when its turn comes');
  await waitFor(() => q.records.length === 2 && q.records.every((r) => r.ok), { timeoutMs: 5000, message: 'both delivered' });
  t.same(names(rx.received), ['first', 'first', 'first', 'second']);
  t.match(q.records, [
    { name: 'first', attempts: 3, ok: true },
    { name: 'second', attempts: 1, ok: true },
  ]);
  // The lane drains again after it went idle.
  lane.send(q.delivery(rx.url, 'third'));
  await waitFor(() => q.records.length === 3 && q.records[2]?.ok === true, { timeoutMs: 5000, message: 'third delivered' });
  t.same(q.warnings, []);
});

t.test('send() deliveries are independent: a retried one arrives after a later one', async (t) => {
  const rx = await receiverFor(t);
  let refused = false;
  rx.respond((r) => {
    if ((r.json as { name: string }).name === 'first' && !refused) {
      refused = true;
      return { status: 500 };
    }
    return { status: 204 };
  });
  const q = queueFor(t, { retryBaseMs: 200 });
  q.queue.send(q.delivery(rx.url, 'first'));
  q.queue.send(q.delivery(rx.url, 'second'));
  await waitFor(() => q.records.every((r) => r.ok) && q.records.length === 2, { timeoutMs: 5000, message: 'both delivered' });
  t.same(names(rx.received), ['first', 'second', 'first']);
});

t.test('stop() cancels pending retries and lane deliveries: nothing reaches the receiver afterwards', async (t) => {
  const rx = await receiverFor(t);
  rx.respond(() => ({ status: 500 }));
  const q = queueFor(t, { attempts: 5, retryBaseMs: 300 });
  const lane = q.queue.lane();
  lane.send(q.delivery(rx.url, 'a'));
  lane.send(q.delivery(rx.url, 'b'));
  await rx.waitFor((r) => r.length === 1, 'first attempt');
  const started = Date.now();
  await q.bg.stop();
  t.ok(Date.now() - started < 250, 'stop does not wait out the backoff');
  q.queue.send(q.delivery(rx.url, 'after stop'));
  lane.send(q.delivery(rx.url, 'after stop'));
  // Proving that nothing happens needs the time it would have happened in: past the cancelled
  // retry's due time (300 ms after the first attempt).
  await new Promise((r) => setTimeout(r, 400));
  t.same(names(rx.received), ['a']);
  t.equal(q.records.length, 1, 'no delivery started after stop');
});
