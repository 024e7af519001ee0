/**
 * Live in the browser, end to end: the real gateway, the SMS pipeline (sms-sender in process,
 * the provider emulator behind the real Twilio SDK), the realtime bridge (its own process) and
 * two browser windows. What one window does, the other sees without a reload; an SMS badge goes
 * queued → delivered by itself; a failed SMS shows its error and Retry delivers it.
 */
import t from 'tap';
import type { Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '@hatch/log';
import { createMetricsRegistry } from '@hatch/service';
import { freePort, type Teardownable } from '@hatch/testing';
import { build, parseGatewayConfig } from '@hatch/gateway/testing';
import { pipeline, API_TOKEN } from '@hatch/sms-sender/testing';
import { browserFixture, ensureBuilt, screenshot, startBridge } from './fixture.js';

// A browser file runs a dozen page loads: on a loaded 2-core machine that can pass .taprc's 180 s.
t.setTimeout(360_000);

ensureBuilt();
const p = await pipeline(t);
await startBridge(t, p);
await p.startWorker();
const base = p.gatewayUrl;
const ui = await browserFixture(t, { base, token: API_TOKEN, timeoutMs: 20_000 });

async function window(t: Teardownable, url = base): Promise<Page> {
  const w = await ui.signedIn(t, { base: url });
  await w.page.locator('[data-testid=live][data-state=live]').waitFor();
  // A marker that a reload would wipe: updates must arrive without one.
  await w.page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));
  return w.page;
}

const notReloaded = (page: Page) => page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload === true);

t.test(
  'two windows stay in sync: chat and SMS from one appear live in the other, and the SMS badge reaches delivered by itself',
  async (t) => {
    const a = await window(t);
    const b = await window(t);

    await a.getByTestId('new-message').click();
    await a.locator('#composer-to').fill('Grace Hopper');
    await a.locator('#composer-body').fill('hello from window A');
    await a.locator('#composer-body').press('Enter');
    await a.waitForURL(/\/c\/[0-9a-f-]{36}$/);
    const chatConv = new URL(a.url()).pathname.split('/')[2] as string;

    // B: the new conversation appears at the top of its list, live.
    const bList = b.getByTestId('conversation-list');
    await bList.locator(`a[data-conversation-id="${chatConv}"]`).filter({ hasText: 'hello from window A' }).waitFor();
    t.equal(await bList.locator('a.conv').first().getAttribute('data-conversation-id'), chatConv, 'at the top');

    // B opens it; A's next message shows up in B's open thread.
    await bList.locator(`a[data-conversation-id="${chatConv}"]`).click();
    await b.getByTestId('message').filter({ hasText: 'hello from window A' }).waitFor();
    await a.locator('#composer-body').fill('and a second one');
    await a.locator('#composer-body').press('Enter');
    await b.getByTestId('message').filter({ hasText: 'and a second one' }).waitFor();
    t.equal(await b.getByTestId('message').count(), 2);

    // An SMS from B: queued at first, then delivered in both windows without a reload.
    await b.getByTestId('new-message').click();
    await b.locator('#composer-to').fill('+15557000001');
    await b.locator('#composer-body').fill('SMS from window B');
    await b.getByTestId('send').click();
    await b.waitForURL(/\/c\/[0-9a-f-]{36}$/);
    const smsConv = new URL(b.url()).pathname.split('/')[2] as string;
    const bBubble = b.getByTestId('message').filter({ hasText: 'SMS from window B' });
    await bBubble.waitFor();
    await a.getByTestId('conversation-list').locator(`a[data-conversation-id="${smsConv}"]`).click();
    const aBubble = a.getByTestId('message').filter({ hasText: 'SMS from window B' });
    for (const bubble of [bBubble, aBubble]) await bubble.locator('[data-testid=status][data-status=delivered]').waitFor();
    const row = await p.db.db.selectFrom('messages').select(['status']).where('body', '=', 'SMS from window B').executeTakeFirstOrThrow();
    t.equal(row.status, 'delivered', 'the database agrees');
    // The delivery timeline shows every step.
    await aBubble.locator('button.bubble').click();
    const timeline = a.getByTestId('timeline');
    await timeline.locator('li[data-status=delivered]').waitFor();
    for (const s of ['queued', 'sent', 'delivered'])
      t.equal((await timeline.locator(`li[data-status=${s}]`).count()) >= 1, true, `timeline has ${s}`);
    t.ok(await notReloaded(a), 'window A was not reloaded');
    t.ok(await notReloaded(b), 'window B was not reloaded');
    await screenshot(a, 'live-delivered-timeline');
  },
);

t.test('an inbound SMS marks its conversation unread in a window that is elsewhere, and shows in the one that has it open', async (t) => {
  const a = await window(t);
  const b = await window(t);
  await p.emulator.playInbound({ from: '+15557000002', body: 'Hi, is this Hatch?', url: `${base}/webhooks/twilio/sms` });
  const item = a.getByTestId('conversation-list').locator('a.conv').filter({ hasText: 'Hi, is this Hatch?' });
  await item.locator('[data-testid=unread]').waitFor();
  t.equal(await item.locator('.conv-name').textContent(), '+15557000002');
  await screenshot(a, 'list-unread');
  await b.getByTestId('conversation-list').locator('a.conv').filter({ hasText: 'Hi, is this Hatch?' }).click();
  await b.getByTestId('message').filter({ hasText: 'Hi, is this Hatch?' }).waitFor();
  t.equal(await b.getByTestId('message').first().getAttribute('class'), 'bubble-row in', 'inbound on the left');
  t.equal(await b.getByTestId('conversation-list').locator('a.conv.active [data-testid=unread]').count(), 0, 'the open one is not unread');
  await p.emulator.playInbound({ from: '+15557000002', body: 'Hello again', url: `${base}/webhooks/twilio/sms` });
  await b.getByTestId('message').filter({ hasText: 'Hello again' }).waitFor();
  t.equal(await b.getByTestId('message').count(), 2);
});

t.test('a failed SMS shows its error text live, and Retry sends it again to delivered', async (t) => {
  const a = await window(t);
  const to = '+15557000003';
  p.emulator.faults.add({ provider: 'twilio', kind: 'error', code: 21211, match: { to }, count: 1 });
  await a.getByTestId('new-message').click();
  await a.locator('#composer-to').fill(to);
  await a.locator('#composer-body').fill('this one fails first');
  await a.getByTestId('send').click();
  const bubble = a.getByTestId('message').filter({ hasText: 'this one fails first' });
  await bubble.locator('[data-testid=status][data-status=failed]').waitFor();
  t.match(await bubble.getByTestId('message-error').textContent(), /21211/);
  await screenshot(a, 'thread-failed');
  await bubble.getByTestId('retry').click();
  await bubble.locator('[data-testid=status][data-status=delivered]').waitFor();
  t.equal(await bubble.getByTestId('retry').count(), 0, 'no retry button once delivered');
  t.equal(await bubble.getByTestId('message-error').count(), 0, 'the error is gone');
});

t.test('after its gateway restarts, a window reconnects and shows the messages sent meanwhile, without a reload', async (t) => {
  // A gateway of this test's own on a fixed port, so it can be stopped and started again; the
  // pipeline's gateway stays up as the other replica that takes the sends meanwhile.
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = parseGatewayConfig({
    DATABASE_URL: p.db.url,
    NATS_URL: p.nats.url,
    HATCH_API_TOKEN: API_TOKEN,
    HATCH_NATS_PREFIX: p.nats.prefix,
    PUBLIC_URL: url,
    LOG_LEVEL: 'silent',
    HATCH_SSE_RETRY_MS: '300',
  });
  const log = createLogger({ service: 'gateway', level: 'silent', pretty: false });
  const start = async () => {
    const app = await build({ config, log, db: p.db, bus: p.bus, registry: createMetricsRegistry('gateway') });
    await app.listen({ port, host: '127.0.0.1' });
    return app;
  };
  let app: FastifyInstance = await start();
  t.teardown(() => app.close());

  const first = await p.send('Linus', 'before the restart');
  t.equal(first.status, 202);
  const page = await window(t, url);
  await page.goto(`${url}/c/${String(first.body.conversation_id)}`);
  await page.getByTestId('message').filter({ hasText: 'before the restart' }).waitFor();
  await page.locator('[data-testid=live][data-state=live]').waitFor();
  await page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));

  await app.close();
  await page.locator('[data-testid=live][data-state=reconnecting]').waitFor();
  await screenshot(page, 'reconnecting');
  for (const body of ['sent while it was down', 'and one more']) t.equal((await p.send('Linus', body)).status, 202);
  app = await start();

  await page.getByTestId('message').filter({ hasText: 'and one more' }).waitFor();
  await page.locator('[data-testid=live][data-state=live]').waitFor();
  const bodies = await page.getByTestId('message-body').allTextContents();
  t.same(bodies, ['before the restart', 'sent while it was down', 'and one more'], 'every message, in order, once');
  t.ok(await notReloaded(page), 'no reload');
});
