/**
 * The web UI in a real browser against a real gateway (real PostgreSQL and NATS): serving,
 * login / logout, the composer (counter, Enter, inline errors, double click), chat and SMS in
 * the thread, and the 375 px layout. Screenshots land in web/test-artifacts/.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import Fastify from 'fastify';
import type { Page } from 'playwright-core';
import { countSmsSegments, SMS_BODY_MAX } from '@hatch/contracts';
import { randomUUID } from 'node:crypto';
import { acceptMessages, insertOptOut } from '@hatch/db';
import { webRoutes } from '@hatch/gateway/testing';
import { browserFixture, screenshot, signIn, SMS_FROM, startUiServer, TEST_TOKEN } from './fixture.js';

// A browser file runs a dozen page loads: on a loaded 2-core machine that can pass .taprc's 180 s.
t.setTimeout(360_000);

const server = await startUiServer(t);
const { base } = server;
const ui = await browserFixture(t, { base });
const db = server.db.db;

async function messagesWithBody(body: string) {
  return db.selectFrom('messages').selectAll().where('body', '=', body).execute();
}

async function compose(page: Page, to: string, body: string) {
  await page.getByTestId('new-message').click();
  await page.locator('#composer-to').fill(to);
  await page.locator('#composer-body').fill(body);
}

t.test('the gateway serves the UI: index.html for app routes, immutable hashed assets, JSON 404 for unknown API paths', async (t) => {
  const root = await fetch(`${base}/`);
  t.equal(root.status, 200);
  t.match(root.headers.get('content-type') ?? '', /text\/html/);
  t.equal(root.headers.get('cache-control'), 'no-cache');
  t.match(root.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  const html = await root.text();
  const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  t.ok(asset, 'index.html references a hashed script');
  const deep = await fetch(`${base}/c/00000000-0000-4000-8000-000000000000`);
  t.equal(deep.status, 200);
  t.equal(await deep.text(), html, 'a client-side route gets index.html');
  const js = await fetch(`${base}${asset}`);
  t.equal(js.status, 200);
  t.match(js.headers.get('cache-control') ?? '', /max-age=31536000.*immutable|immutable.*max-age=31536000/);
  const missingAsset = await fetch(`${base}/assets/nope-123.js`);
  t.equal(missingAsset.status, 404);
  const api = await fetch(`${base}/api/does-not-exist`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  t.equal(api.status, 404);
  t.match(await api.json(), { success: false, code: 'NOT_FOUND' });
  const unauth = await fetch(`${base}/api/conversations`);
  t.equal(unauth.status, 401, 'the UI route does not open the API');
});

t.test('a gateway without a UI build says how to build it', async (t) => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-web-'));
  t.teardown(() => fs.rmSync(empty, { recursive: true, force: true }));
  const app = Fastify();
  await webRoutes(app, { root: empty });
  t.teardown(() => app.close());
  const res = await app.inject({ url: '/c/00000000-0000-4000-8000-000000000000' });
  t.equal(res.statusCode, 503);
  t.match(res.body, /web UI is not built/);
  t.match(res.body, /pnpm build/);
});

t.test('login: a wrong token is refused by the field; the right one opens the app; logout returns to the login', async (t) => {
  const { ctx, page } = await ui.window(t);
  await page.goto(`${base}/`);
  await page.getByTestId('login-mode').click();
  await page.getByLabel('API token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  t.match(await page.getByTestId('login-error').textContent(), /not valid/);
  await screenshot(page, 'login');
  await page.getByLabel('API token').fill(TEST_TOKEN);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Conversations' }).waitFor();
  const cookie = (await ctx.cookies()).find((c) => c.name === 'hatch_session');
  t.ok(cookie, 'a session cookie was set');
  t.equal(cookie?.httpOnly, true, 'HttpOnly');
  t.equal(cookie?.sameSite, 'Strict', 'SameSite=Strict');
  t.equal(await page.getByTestId('conversations-empty').isVisible(), true, 'empty state on a fresh database');
  await screenshot(page, 'empty');
  await page.getByTestId('account-menu').click();
  await page.getByTestId('logout').click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  t.notOk(
    (await ctx.cookies()).find((c) => c.name === 'hatch_session'),
    'the cookie is gone',
  );
  await page.reload();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  t.pass('still signed out after a reload');
});

t.test('the one-click ?token= link signs in and leaves no token in the address bar', async (t) => {
  const w = await ui.window(t);
  await signIn(w.page, base, '/emails');
  t.equal(new URL(w.page.url()).search, '', 'token removed from the URL');
  t.equal(new URL(w.page.url()).pathname, '/emails', 'the path is kept');
});

t.test('the #token= link that setup.sh prints signs in and leaves no token in the address bar', async (t) => {
  const { ctx, page } = await ui.window(t);
  await page.goto(`${base}/#token=${encodeURIComponent(TEST_TOKEN)}`);
  await page.getByRole('heading', { name: 'Conversations' }).waitFor();
  t.equal(new URL(page.url()).hash, '', 'token removed from the fragment');
  t.ok(
    (await ctx.cookies()).find((c) => c.name === 'hatch_session'),
    'session cookie set',
  );
});

t.test('the composer counts segments with the server function: GSM-7 160 / 161, UCS-2 with an emoji', async (t) => {
  const { page } = await ui.signedIn(t);
  await page.getByTestId('new-message').click();
  await page.locator('#composer-to').fill('+15557654321');
  t.equal(await page.getByTestId('composer-channel').textContent(), 'SMS');
  const counter = page.getByTestId('counter');
  const cases = ['a'.repeat(160), 'a'.repeat(161), `${'a'.repeat(69)}😀`, 'brackets [] and € take two septets'.repeat(5)];
  for (const body of cases) {
    await page.locator('#composer-body').fill(body);
    const c = countSmsSegments(body);
    const expected = `${c.encoding} · ${c.segments} segment${c.segments === 1 ? '' : 's'} · ${c.remainingInSegment} left`;
    await page.waitForFunction(
      ([sel, text]) => document.querySelector(sel as string)?.textContent === text,
      ['[data-testid=counter]', expected],
    );
    t.equal(await counter.textContent(), expected, `${c.encoding} ${[...body].length} chars → ${c.segments}`);
  }
  t.equal(countSmsSegments('a'.repeat(161)).segments, 2, 'the 161-character case really is two segments');
  await page.locator('#composer-to').fill('Dana');
  t.equal(await page.getByTestId('composer-channel').textContent(), 'Chat', 'a name is a chat');
  t.match(await counter.textContent(), /^Chat · /);
});

t.test('a chat message sent with Enter shows in the thread and at the top of the list; Shift+Enter is a newline', async (t) => {
  const { page } = await ui.signedIn(t);
  await compose(page, 'Ada Lovelace', 'first line');
  await page.locator('#composer-body').press('Shift+Enter');
  await page.locator('#composer-body').pressSequentially('second line');
  t.equal(await page.locator('#composer-body').inputValue(), 'first line\nsecond line', 'Shift+Enter added a newline, sent nothing');
  t.equal((await messagesWithBody('first line\nsecond line')).length, 0);
  await page.locator('#composer-body').press('Enter');
  await page.waitForURL(/\/c\/[0-9a-f-]{36}$/);
  const bubble = page.getByTestId('message').filter({ hasText: 'second line' });
  await bubble.waitFor();
  t.equal(await bubble.getByTestId('status').getAttribute('data-status'), 'stored');
  t.equal(await bubble.getAttribute('class'), 'bubble-row out', 'outbound on the right');
  t.equal(await page.getByTestId('thread-title').textContent(), 'Ada Lovelace');
  const stored = await messagesWithBody('first line\nsecond line');
  t.equal(stored.length, 1);
  t.equal(stored[0]?.channel, 'chat');
  const first = page.getByTestId('conversation-list').locator('a.conv').first();
  await first.filter({ hasText: 'Ada Lovelace' }).waitFor();
  t.match(await first.textContent(), /You: first line/);
  t.equal(await page.locator('#composer-body').inputValue(), '', 'the composer is cleared');
  // Click a message: its delivery timeline.
  await bubble.locator('button.bubble').click();
  await page.getByTestId('timeline').locator('li[data-status=stored]').waitFor();
  await screenshot(page, 'thread-chat');
});

t.test('an SMS sent from the composer shows queued in the thread and is stored with its segments', async (t) => {
  const { page } = await ui.signedIn(t);
  const body = `Your table is ready ${'x'.repeat(150)}`;
  await compose(page, '+15557654321', body);
  await page.getByTestId('send').click();
  await page.waitForURL(/\/c\/[0-9a-f-]{36}$/);
  const bubble = page.getByTestId('message').filter({ hasText: 'Your table is ready' });
  await bubble.waitFor();
  t.equal(await bubble.getByTestId('status').getAttribute('data-status'), 'queued');
  const rows = await messagesWithBody(body);
  t.equal(rows.length, 1);
  t.equal(rows[0]?.channel, 'sms');
  t.equal(rows[0]?.from_contact, SMS_FROM);
  t.equal(rows[0]?.segments, countSmsSegments(body).segments);
  t.equal(rows[0]?.segments, 2);
  t.equal(await page.getByTestId('thread-title').textContent(), '+15557654321');
  // Reply in the thread: the composer knows the recipient.
  await page.locator('#composer-body').fill('second SMS');
  await page.locator('#composer-body').press('Enter');
  await page.getByTestId('message').filter({ hasText: 'second SMS' }).waitFor();
  t.equal((await messagesWithBody('second SMS'))[0]?.to_contact, '+15557654321');
  t.equal(await page.getByTestId('message').count(), 2, 'both in one thread, oldest first');
  t.match(await page.getByTestId('message').first().textContent(), /Your table is ready/);
  await screenshot(page, 'thread-sms');
});

t.test('inline errors by the recipient field: an invalid number (client) and an opted-out number (API 422); nothing is sent', async (t) => {
  const { page } = await ui.signedIn(t);
  await compose(page, '+12', 'not a number');
  await page.getByTestId('send').click();
  t.match(await page.getByTestId('error-to').textContent(), /E\.164/);
  t.equal(await page.locator('#composer-to').getAttribute('aria-invalid'), 'true');
  // A US number typed without +1: the same rule as the API (@hatch/contracts), before sending.
  let requests = 0;
  const countSends = (r: { url(): string }) => {
    if (r.url().endsWith('/api/send_message')) requests++;
  };
  page.on('request', countSends);
  await page.locator('#composer-to').fill('(415) 555-0100');
  await page.locator('#composer-body').fill('no plus');
  await page.getByTestId('send').click();
  t.match(await page.getByTestId('error-to').textContent(), /E\.164.*\+14155550100/, 'the E.164 hint by the field');
  t.equal(requests, 0, 'refused before sending');
  page.off('request', countSends);
  t.equal((await messagesWithBody('no plus')).length, 0);
  // Outside the allowed countries (HATCH_SMS_ALLOWED_COUNTRIES: the fixture's +1): the API's 422 by the field.
  const abroad = page.waitForResponse((r) => r.url().endsWith('/api/send_message'));
  await page.locator('#composer-to').fill('+447700900123');
  await page.locator('#composer-body').fill('to the UK');
  await page.getByTestId('send').click();
  t.equal((await abroad).status(), 422);
  t.match(await page.getByTestId('error-to').textContent(), /country code \+44.*\+1/, 'SMS_COUNTRY_NOT_ALLOWED shown by the recipient');
  t.equal((await messagesWithBody('to the UK')).length, 0);
  await insertOptOut(db, { phone: '+15550009999', reason: 'STOP', source: 'test' });
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/send_message'));
  await page.locator('#composer-to').fill('+15550009999');
  await page.locator('#composer-body').fill('please come back');
  await page.getByTestId('send').click();
  const res = await answer;
  t.equal(res.status(), 422);
  const shown = await page.getByTestId('error-to').textContent();
  t.match(shown, /opted out/, 'the API error body is shown by the field');
  t.equal(await page.locator('#composer-body').inputValue(), 'please come back', 'the draft is kept');
  t.equal((await messagesWithBody('please come back')).length, 0);
  t.equal(new URL(page.url()).pathname, '/new');
  // Too long for one message: refused before sending.
  await page.locator('#composer-to').fill('Ada Lovelace');
  await page.locator('#composer-body').fill('y'.repeat(SMS_BODY_MAX + 1));
  await page.getByTestId('send').click();
  t.match(await page.getByTestId('error-body').textContent(), /At most 1600/);
  await screenshot(page, 'composer-errors');
});

t.test(
  'the daily SMS limit reached (HATCH_SMS_DAILY_LIMIT): the 422 is shown under the composer, the draft kept, chat still sends',
  async (t) => {
    const capped = await startUiServer(t, { HATCH_SMS_DAILY_LIMIT: '0' });
    const { page } = await ui.signedIn(t, { base: capped.base });
    await compose(page, '+15551230000', 'over the limit');
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/send_message'));
    await page.getByTestId('send').click();
    t.equal((await answer).status(), 422);
    t.match(await page.getByTestId('error-form').textContent(), /daily SMS limit/);
    t.equal(await page.locator('#composer-body').inputValue(), 'over the limit', 'the draft is kept');
    t.equal((await capped.db.db.selectFrom('messages').select('id').execute()).length, 0, 'nothing stored');
    await page.locator('#composer-to').fill('Grace Hopper');
    await page.getByTestId('send').click();
    await page.getByTestId('message').filter({ hasText: 'over the limit' }).waitFor();
    t.equal((await capped.db.db.selectFrom('messages').select('channel').execute()).map((m) => m.channel).join(), 'chat');
  },
);

t.test('a double click on Send sends once', async (t) => {
  const { page } = await ui.signedIn(t);
  const keys: (string | undefined)[] = [];
  page.on('request', (r) => {
    if (r.url().endsWith('/api/send_message')) keys.push(r.headers()['idempotency-key']);
  });
  await compose(page, '+15551112222', 'double click me');
  await page.getByTestId('send').dblclick();
  await page.getByTestId('message').filter({ hasText: 'double click me' }).waitFor();
  t.equal((await messagesWithBody('double click me')).length, 1, 'one message stored');
  t.ok(
    keys.length >= 1 && keys.every((k) => k && k === keys[0]),
    `every request carried the same Idempotency-Key (${keys.length} request(s))`,
  );
  t.equal(keys.length, 1, 'the second click did not even reach the API');
});

t.test('375 px: one pane at a time, no horizontal overflow; screenshots of the list and the thread', async (t) => {
  const { page } = await ui.signedIn(t, { width: 375, height: 740 });
  const list = page.getByTestId('conversation-list');
  await list.locator('a.conv').first().waitFor();
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  t.equal(await overflow(), 0, 'list: no horizontal scroll');
  await screenshot(page, 'mobile-list');
  await list.locator('a.conv').filter({ hasText: '+15557654321' }).click();
  await page.getByTestId('message').first().waitFor();
  t.equal(await list.isVisible(), false, 'the list is hidden while a thread is open');
  t.equal(await overflow(), 0, 'thread: no horizontal scroll');
  const send = await page.getByTestId('send').boundingBox();
  t.ok(send && send.x + send.width <= 375, 'the send button is on screen');
  await screenshot(page, 'mobile-thread');
  await page.getByRole('link', { name: 'Back to conversations' }).click();
  await list.waitFor();
  t.pass('back to the list');
});

t.test('the conversations list pages in as it scrolls (cursor pagination), most recent first', async (t) => {
  // 45 older chat conversations, one message each, a minute apart.
  const base0 = Date.now() - 86_400_000;
  await db.transaction().execute(async (tx) => {
    for (let i = 0; i < 45; i++) {
      const id = randomUUID();
      const messageId = randomUUID();
      const at = new Date(base0 - i * 60_000);
      const who = `Contact ${String(i).padStart(2, '0')}`;
      await acceptMessages(tx, [
        {
          message: {
            id: messageId,
            conversation_id: id,
            from_contact: 'me',
            to_contact: who,
            body: `note ${i}`,
            channel: 'chat',
            direction: 'outbound',
            status: 'stored',
          },
          conversation: { participants: ['me', who.toLowerCase()], channel: 'chat', at },
          source: 'api',
          outbox: false,
        },
      ]);
    }
  });
  const total = Number(
    (
      await db
        .selectFrom('conversations')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );
  const { page } = await ui.signedIn(t);
  const items = page.getByTestId('conversation-list').locator('a.conv');
  await items.first().waitFor();
  t.equal(await items.count(), 30, 'the first page');
  await items.nth(29).scrollIntoViewIfNeeded();
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=conversation-list] a.conv').length === n, total);
  t.equal(await items.count(), total, 'every conversation after scrolling');
  const names = await page.locator('[data-testid=conversation-list] .conv-name').allTextContents();
  t.equal(names[names.length - 1], 'Contact 44', 'the oldest is last');
  t.equal(new Set(names).size, names.length, 'no conversation twice');
  t.equal(await page.getByRole('button', { name: 'Load more' }).count(), 0, 'nothing more to load');
});

t.test('keyboard only: Tab reaches the conversations, Enter opens one with the composer focused, Enter sends', async (t) => {
  const { page } = await ui.signedIn(t);
  await page.getByTestId('conversation-list').locator('a.conv').first().waitFor();
  // Tab from the top of the page until a conversation has focus (a bounded number of stops).
  let onConversation = false;
  for (let i = 0; i < 12 && !onConversation; i++) {
    await page.keyboard.press('Tab');
    onConversation = await page.evaluate(() => document.activeElement?.matches('[data-testid=conversation-list] a.conv') ?? false);
  }
  t.ok(onConversation, 'a conversation is reachable with Tab');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/c\/[0-9a-f-]{36}$/);
  await page.getByTestId('message').first().waitFor();
  await page.waitForFunction(() => document.activeElement?.id === 'composer-body');
  await page.keyboard.type('sent from the keyboard');
  await page.keyboard.press('Enter');
  await page.getByTestId('message').filter({ hasText: 'sent from the keyboard' }).waitFor();
  t.equal((await messagesWithBody('sent from the keyboard')).length, 1);
  // The focus stays in the composer across a send: the next message is typed straight away.
  await page.keyboard.type('and straight on');
  await page.keyboard.press('Enter');
  await page.getByTestId('message').filter({ hasText: 'and straight on' }).waitFor();
  t.equal((await messagesWithBody('and straight on')).length, 1);
});
