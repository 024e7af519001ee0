/**
 * Team accounts in the web UI (issue 18) in a real browser against a real gateway: sign-in with
 * email and password, the account menu, invite → accept in a second browser context → the new
 * person's message shows their name in the admin's window live, ending a session from one window
 * signs the other out within seconds, API tokens shown once, the audit page, and an agent who
 * does not see People or Audit. Screenshots land in web/test-artifacts/.
 */
import t from 'tap';
import type { Page } from 'playwright-core';
import { browserFixture, screenshot, startBridge, startUiServer, TEST_TOKEN } from './fixture.js';

t.setTimeout(360_000);

const server = await startUiServer(t);
const { base } = server;
// The realtime bridge carries the message events to the windows' streams.
await startBridge(t, server);
const ui = await browserFixture(t, { base });
const BOOTSTRAP = { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' };

const ADMIN = { name: 'Ada Admin', email: 'ada@example.test', password: 'correct horse battery' };

async function apiCall(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}${path}`, { method, headers: BOOTSTRAP, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** A person made the way an admin would (invite → accept), over the API with the bootstrap token. */
async function person(p: { name: string; email: string; password: string }, role: 'admin' | 'agent'): Promise<string> {
  const invite = (await apiCall('POST', '/api/users', { email: p.email, role })) as { link: string; user: { id: string } };
  const token = invite.link.slice(invite.link.indexOf('#') + 1);
  const res = await fetch(`${base}/api/invites/accept`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token, name: p.name, password: p.password }),
  });
  if (res.status !== 204) throw new Error(`accept: ${res.status} ${await res.text()}`);
  return invite.user.id;
}

const adminId = await person(ADMIN, 'admin');

const shell = (page: Page) => page.getByRole('heading', { name: 'Conversations' }).waitFor();

/** Fills and submits the sign-in page; answers the error it shows, if any. */
async function trySignIn(page: Page, email: string, password: string): Promise<string | undefined> {
  if (!page.url().startsWith(base)) await page.goto(`${base}/`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const error = page.getByTestId('login-error');
  await page.getByRole('heading', { name: 'Conversations' }).or(error).waitFor();
  return (await error.count()) ? ((await error.textContent()) ?? '') : undefined;
}

async function signInWithPassword(page: Page, email: string, password: string): Promise<void> {
  await page.goto(`${base}/`);
  await trySignIn(page, email, password);
  await shell(page);
}

async function openMenu(page: Page): Promise<void> {
  await page.getByTestId('account-menu').click();
  await page.getByRole('menu', { name: 'Account' }).waitFor();
}

t.test('sign-in with email and password; a wrong password is refused by name; the menu shows name and role', async (t) => {
  const { page } = await ui.window(t);
  t.equal(await trySignIn(page, ADMIN.email, 'not the password at all'), 'Wrong email or password');
  await screenshot(page, 'accounts-login-wrong');
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByLabel('Password').press('Enter');
  await shell(page);
  await page.getByTestId('account-name').filter({ hasText: ADMIN.name }).waitFor();
  await openMenu(page);
  t.equal(await page.getByTestId('account-role').textContent(), 'admin');
  t.ok(await page.getByTestId('menu-people').isVisible(), 'an admin sees People');
  t.ok(await page.getByTestId('menu-audit').isVisible(), 'an admin sees Audit');
  await screenshot(page, 'accounts-menu');
  await page.getByTestId('logout').click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  t.equal(await page.getByTestId('login-error').count(), 0, 'signing out yourself is not an error');
  t.equal(await page.getByTestId('login-notice').count(), 0, 'nor a "you were signed out"');
});

t.test('invite → accept in a second browser → the new agent sends → the admin sees their name on the message live', async (t) => {
  const admin = await ui.window(t);
  await signInWithPassword(admin.page, ADMIN.email, ADMIN.password);
  // The admin starts a chat and keeps its thread open.
  await admin.page.getByTestId('new-message').click();
  await admin.page.locator('#composer-to').fill('Dana');
  await admin.page.locator('#composer-body').fill('hello from Ada');
  await admin.page.locator('#composer-body').press('Enter');
  await admin.page.waitForURL(/\/c\/[0-9a-f-]{36}$/);
  const thread = new URL(admin.page.url()).pathname;
  await admin.page.getByTestId('message').filter({ hasText: 'hello from Ada' }).waitFor();

  // People → invite an agent: the one-time link is shown to copy.
  await openMenu(admin.page);
  await admin.page.getByTestId('menu-people').click();
  await admin.page.getByTestId('people-page').waitFor();
  await admin.page.getByLabel('Email').fill('bo@example.test');
  await admin.page.getByRole('button', { name: 'Invite' }).click();
  const link = await admin.page.getByTestId('invite-link-value').inputValue();
  t.match(link, /\/invite#[A-Za-z0-9_-]{20,}$/, 'a one-time link');
  await admin.page.getByTestId('user-row').filter({ hasText: 'bo@example.test' }).getByText('invited').waitFor();
  await screenshot(admin.page, 'accounts-people-invite');

  // A second browser context opens the link (PUBLIC_URL's origin is not this test server's).
  const bo = await ui.window(t);
  await bo.page.goto(`${base}/invite${link.slice(link.indexOf('#'))}`);
  await bo.page.getByTestId('invite').waitFor();
  t.equal(new URL(bo.page.url()).hash, '', 'the token left the address bar');
  await bo.page.getByLabel('Your name').fill('Bo Agent');
  // The server's rule (not the email), in the server's words, by the password field.
  await bo.page.getByLabel('Password').fill('bo@example.test');
  await bo.page.getByRole('button', { name: 'Set password and sign in' }).click();
  t.match(await bo.page.getByTestId('password-error').textContent(), /email/i, "the server's 400 names the password");
  await screenshot(bo.page, 'accounts-invite-error');
  await bo.page.getByLabel('Password').fill('a long enough passphrase');
  await bo.page.getByRole('button', { name: 'Set password and sign in' }).click();
  await shell(bo.page);
  await bo.page.getByTestId('account-name').filter({ hasText: 'Bo Agent' }).waitFor();

  // An agent: no People, no Audit, and the pages themselves refuse.
  await openMenu(bo.page);
  t.equal(await bo.page.getByTestId('menu-people').count(), 0, 'no People for an agent');
  t.equal(await bo.page.getByTestId('menu-audit').count(), 0, 'no Audit for an agent');
  t.ok(await bo.page.getByTestId('menu-sessions').isVisible(), 'Sessions for everyone');
  t.ok(await bo.page.getByTestId('menu-tokens').isVisible(), 'API tokens for everyone');
  await screenshot(bo.page, 'accounts-agent-menu');
  await bo.page.keyboard.press('Escape');
  await bo.page.goto(`${base}/people`);
  await bo.page.getByTestId('people-page').getByText('Only admins').waitFor();
  t.equal(await bo.page.getByTestId('user-row').count(), 0, 'no list of people for an agent');

  // Bo replies in Ada's thread; Ada's open window shows it, with Bo's name when the API says who sent it.
  await admin.page.goto(`${base}${thread}`);
  await admin.page.getByTestId('message').filter({ hasText: 'hello from Ada' }).waitFor();
  await admin.page.getByTestId('live').and(admin.page.locator('[data-state=live]')).waitFor();
  await bo.page.goto(`${base}${thread}`);
  await bo.page.locator('#composer-body').fill('hi, Bo here');
  await bo.page.locator('#composer-body').press('Enter');
  const bubble = admin.page.getByTestId('message').filter({ hasText: 'hi, Bo here' });
  await bubble.waitFor();
  const id = await bubble.getAttribute('data-message-id');
  const stored = (await apiCall('GET', `/api/messages/${id}`)) as { message: { sent_by?: { name: string } | null } };
  t.equal(stored.message.sent_by?.name, 'Bo Agent', 'the API says Bo sent it');
  await bubble.getByTestId('message-sender').filter({ hasText: 'Bo Agent' }).waitFor();
  const mine = admin.page.getByTestId('message').filter({ hasText: 'hello from Ada' });
  t.equal(await mine.getByTestId('message-sender').textContent(), ADMIN.name, "Ada's own message shows her name");
  t.pass("Bo's name is on the message in Ada's window, live");
  await screenshot(admin.page, 'accounts-thread-senders');

  // The admin disables Bo: Bo's open window is at the sign-in page within seconds.
  await openMenu(admin.page);
  await admin.page.getByTestId('menu-people').click();
  const boRow = admin.page.getByTestId('user-row').filter({ hasText: 'bo@example.test' });
  await boRow.getByRole('button', { name: 'Disable' }).click();
  await boRow.getByText('disabled').waitFor();
  await bo.page.getByTestId('login-notice').filter({ hasText: 'signed out' }).waitFor({ timeout: 12_000 });
  // A reset link for Bo is shown once, like the invite.
  await boRow.getByRole('button', { name: 'Enable' }).click();
  await boRow.getByText('active').waitFor();
  await boRow.getByRole('button', { name: 'Reset password' }).click();
  t.match(await admin.page.getByTestId('invite-link').textContent(), /Password reset link for bo@example\.test/);
  t.match(await admin.page.getByTestId('invite-link-value').inputValue(), /\/invite#/);
});

t.test('ending a session from one window signs the other window out within seconds', async (t) => {
  const a = await ui.window(t);
  const b = await ui.window(t);
  await signInWithPassword(a.page, ADMIN.email, ADMIN.password);
  await signInWithPassword(b.page, ADMIN.email, ADMIN.password);
  await b.page.getByTestId('live').and(b.page.locator('[data-state=live]')).waitFor();
  await a.page.goto(`${base}/sessions`);
  const rows = a.page.getByTestId('session-row');
  await rows.first().waitFor();
  t.ok((await rows.count()) >= 2, 'both sessions listed');
  t.equal(await a.page.locator('[data-testid=session-row][data-current=true]').count(), 1, 'one is this device');
  await a.page.locator('[data-testid=session-row][data-current=true]').getByText('This device').waitFor();
  await screenshot(a.page, 'accounts-sessions');
  // b's session is the newest one that is not this device.
  const other = a.page.locator('[data-testid=session-row]:not([data-current])').first();
  const before = await rows.count();
  const started = Date.now();
  await other.getByRole('button', { name: 'End' }).click();
  await a.page.waitForFunction((n) => document.querySelectorAll('[data-testid=session-row]').length === n - 1, before);
  // b did nothing: its event stream was closed, its reconnect was refused, and it is at the sign-in page.
  await b.page.getByTestId('login').waitFor({ timeout: 12_000 });
  t.ok(Date.now() - started < 12_000, `signed out after ${Date.now() - started} ms`);
  t.match(await b.page.getByTestId('login-notice').textContent(), /signed out/);
  await screenshot(b.page, 'accounts-signed-out');
  // a is still signed in.
  await a.page.reload();
  await a.page.getByTestId('sessions-page').waitFor();
});

t.test('an API token is shown once with a copy button, then listed and revocable', async (t) => {
  const { page } = await ui.window(t);
  await signInWithPassword(page, ADMIN.email, ADMIN.password);
  await openMenu(page);
  await page.getByTestId('menu-tokens').click();
  await page.getByTestId('tokens-page').waitFor();
  await page.getByLabel('Name').fill('deploy script');
  await page.getByRole('button', { name: 'Create token' }).click();
  const token = await page.getByTestId('new-token-value').inputValue();
  t.match(token, /^hatch_pat_/);
  t.match(await page.getByTestId('new-token').textContent(), /shown only this once/);
  await page.getByTestId('token-row').filter({ hasText: 'deploy script' }).waitFor();
  await screenshot(page, 'accounts-tokens');
  // It works as Ada, until revoked.
  const who = await fetch(`${base}/api/session`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(((await who.json()) as { name: string }).name, ADMIN.name);
  await page.getByRole('button', { name: 'Done' }).click();
  t.equal(await page.getByTestId('new-token').count(), 0, 'gone once dismissed');
  await page.getByTestId('token-row').filter({ hasText: 'deploy script' }).getByRole('button', { name: 'Revoke' }).click();
  await page.getByTestId('token-row').filter({ hasText: 'deploy script' }).getByText('revoked').waitFor();
  const after = await fetch(`${base}/api/session`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(after.status, 401, 'the revoked token is refused');
});

t.test('People: an admin opens a person, ends their sessions, revokes their tokens and changes their email', async (t) => {
  const CY = { name: 'Cy Agent', email: 'cy@example.test', password: 'cy passphrase 123' };
  await person(CY, 'agent');
  const cy = await ui.window(t);
  await signInWithPassword(cy.page, CY.email, CY.password);
  await cy.page.getByTestId('live').and(cy.page.locator('[data-state=live]')).waitFor();
  // A token of Cy's, made with a second sign-in of Cy's (over the API).
  const signedIn = await fetch(`${base}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: CY.email, password: CY.password }),
  });
  const cookie = signedIn.headers.getSetCookie()[0]?.split(';')[0] ?? '';
  const made = await fetch(`${base}/api/tokens`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'cy script' }),
  });
  const token = ((await made.json()) as { token: string }).token;

  const admin = await ui.window(t);
  await signInWithPassword(admin.page, ADMIN.email, ADMIN.password);
  await admin.page.goto(`${base}/people`);
  const cyRow = admin.page.getByTestId('user-row').filter({ hasText: CY.email });
  await cyRow.getByTestId('manage-user').click();
  const panel = admin.page.getByTestId('person-panel');
  await panel.getByRole('heading', { name: CY.name }).waitFor();
  await panel.getByTestId('token-row').filter({ hasText: 'cy script' }).waitFor();
  // Accepting the invite signed Cy in too: three sessions.
  await admin.page.waitForFunction(() => document.querySelectorAll('[data-testid=person-panel] [data-testid=session-row]').length === 3);
  t.pass("Cy's three sessions and token are listed");
  await screenshot(admin.page, 'accounts-person');

  await panel.getByTestId('token-row').filter({ hasText: 'cy script' }).getByRole('button', { name: 'Revoke' }).click();
  await panel.getByTestId('token-row').filter({ hasText: 'cy script' }).getByText('revoked').waitFor();
  t.equal((await fetch(`${base}/api/session`, { headers: { authorization: `Bearer ${token}` } })).status, 401, 'the token is refused');

  // End every session: Cy's open window is at the sign-in page within seconds.
  const started = Date.now();
  for (let left = 3; left > 0; left--) {
    await panel.getByTestId('session-row').first().getByRole('button', { name: 'End' }).click();
    await admin.page.waitForFunction(
      (n) => document.querySelectorAll('[data-testid=person-panel] [data-testid=session-row]').length === n,
      left - 1,
    );
  }
  await panel.getByText('Not signed in anywhere.').waitFor();
  await cy.page.getByTestId('login').waitFor({ timeout: 12_000 });
  t.ok(Date.now() - started < 12_000, `Cy's window signed out after ${Date.now() - started} ms`);
  t.equal((await fetch(`${base}/api/session`, { headers: { cookie } })).status, 401, 'the other session too');

  // The email: someone else's is refused by the field, a new one is saved and signs in.
  await panel.locator('#person-email').fill(ADMIN.email.toUpperCase());
  await panel.getByRole('button', { name: 'Save email' }).click();
  t.match(await panel.getByTestId('person-email-error').textContent(), /Another person has this email/);
  await panel.locator('#person-email').fill('cy.new@example.test');
  await panel.getByRole('button', { name: 'Save email' }).click();
  await panel.getByText('Saved').waitFor();
  await admin.page.getByTestId('user-row').filter({ hasText: 'cy.new@example.test' }).waitFor();
  await screenshot(admin.page, 'accounts-person-email');
  t.equal(await trySignIn(cy.page, 'cy.new@example.test', CY.password), undefined, 'Cy signs in with the new email');
});

t.test('the audit page lists events, filtered by kind and by person', async (t) => {
  const { page } = await ui.window(t);
  // A failed sign-in to find in the log.
  t.ok(await trySignIn(page, ADMIN.email, 'wrong wrong wrong'), 'refused');
  await signInWithPassword(page, ADMIN.email, ADMIN.password);
  await page.goto(`${base}/audit`);
  await page.getByTestId('audit-row').first().waitFor();
  await page.getByLabel('Kind').selectOption('sign_in_failed');
  await page.waitForFunction(() =>
    [...document.querySelectorAll('[data-testid=audit-row]')].every((r) => r.getAttribute('data-kind') === 'sign_in_failed'),
  );
  await page.getByTestId('audit-row').first().waitFor();
  t.match(await page.getByTestId('audit-row').first().textContent(), /Failed sign-in/);
  await page.getByLabel('Kind').selectOption('');
  await page.getByLabel('Person').selectOption(adminId);
  await page.locator('[data-testid=audit-row][data-kind=sign_in]').first().waitFor();
  await screenshot(page, 'accounts-audit');
});

t.test('a 401 from any API call (the session ended) shows the sign-in page with "signed out"', async (t) => {
  const { ctx, page } = await ui.window(t);
  // This window's event stream never opens, so only the API call below can notice the end.
  await ctx.route('**/api/events*', () => undefined);
  await signInWithPassword(page, ADMIN.email, ADMIN.password);
  const cookie = (await ctx.cookies()).find((c) => c.name === 'hatch_session');
  t.ok(cookie);
  // The session ends on the server, behind the page's back.
  const res = await fetch(`${base}/api/session`, { method: 'DELETE', headers: { cookie: `hatch_session=${cookie?.value}` } });
  t.equal(res.status, 204);
  await page.getByRole('link', { name: 'Emails' }).click();
  await page.getByTestId('login').waitFor();
  t.match(await page.getByTestId('login-notice').textContent(), /signed out/);
});

t.test(
  'sender names render from the API shape sent_by: {id, name} | null ("API" for the bootstrap token; nothing for null or missing)',
  async (t) => {
    // Every shape the contract allows, side by side in one thread (a bootstrap-token send, a row
    // from before accounts, a field missing altogether): the page's message answers are given
    // them in the browser, since one live thread cannot hold them all.
    const { page } = await ui.window(t);
    await signInWithPassword(page, ADMIN.email, ADMIN.password);
    const sentBy: Record<string, { id: string | null; name: string } | null> = {
      'from a person': { id: adminId, name: ADMIN.name },
      'from the setup token': { id: null, name: 'API' },
      'an old row': null,
      'from a teammate': { id: '00000000-0000-4000-8000-00000000b0b0', name: 'Bo Agent' },
    };
    const withSender = (m: { body: string; direction: string; sent_by?: unknown }) => {
      if (m.direction !== 'outbound') return m;
      if (m.body in sentBy) return { ...m, sent_by: sentBy[m.body] };
      if (m.body !== 'no field at all') return m;
      const { sent_by: _dropped, ...rest } = m; // an answer from before the field existed
      return rest;
    };
    type Row = { body: string; direction: string };
    await page.route(/\/api\/(conversations|conversation\/[^/]+\/messages|messages\/[0-9a-f-]{36})(\?|$)/, async (route) => {
      const res = await route.fetch();
      const json = (await res.json()) as { messages?: Row[]; message?: Row; conversations?: Array<{ last_message: Row | null }> };
      if (json.messages) json.messages = json.messages.map(withSender);
      if (json.message) json.message = withSender(json.message);
      if (json.conversations) {
        json.conversations = json.conversations.map((c) => ({ ...c, last_message: c.last_message && withSender(c.last_message) }));
      }
      await route.fulfill({ response: res, json });
    });
    await page.getByTestId('new-message').click();
    await page.locator('#composer-to').fill('Eve');
    await page.locator('#composer-body').fill('from a person');
    await page.locator('#composer-body').press('Enter');
    await page.waitForURL(/\/c\/[0-9a-f-]{36}$/);
    for (const body of ['from the setup token', 'an old row', 'no field at all', 'from a teammate']) {
      await page.locator('#composer-body').fill(body);
      await page.locator('#composer-body').press('Enter');
      await page.getByTestId('message').filter({ hasText: body }).waitFor();
    }
    await page.reload();
    const bubble = (body: string) => page.getByTestId('message').filter({ hasText: body });
    await bubble('no field at all').waitFor();
    t.equal(await bubble('from a person').getByTestId('message-sender').textContent(), ADMIN.name);
    t.equal(await bubble('from the setup token').getByTestId('message-sender').textContent(), 'API');
    t.equal(await bubble('an old row').getByTestId('message-sender').count(), 0, 'null: no name');
    t.equal(await bubble('no field at all').getByTestId('message-sender').count(), 0, 'missing: no name');
    const eve = page.getByTestId('conversation-list').locator('a.conv').filter({ hasText: 'Eve' });
    await eve.filter({ hasText: 'Bo Agent: from a teammate' }).waitFor();
    t.pass("the list's preview names the teammate who sent the last message");
    await screenshot(page, 'accounts-thread-sent-by-shape');
  },
);

t.test('the phone layout: the account menu and a page fit 375 px', async (t) => {
  const { page } = await ui.window(t, { width: 375, height: 740 });
  await signInWithPassword(page, ADMIN.email, ADMIN.password);
  await openMenu(page);
  await screenshot(page, 'accounts-375-menu');
  await page.getByTestId('menu-sessions').click();
  await page.getByTestId('sessions-page').getByTestId('session-row').first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  t.equal(overflow, 0, 'no sideways scrolling');
  await screenshot(page, 'accounts-375-sessions');
});

// Last: it uses up this address's failed sign-ins.
t.test('too many failed sign-ins: the page says how long to wait (429 Retry-After)', async (t) => {
  let status = 0;
  for (let i = 0; i < 25 && status !== 429; i++) {
    const res = await fetch(`${base}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: ADMIN.email, password: `wrong ${i}` }),
    });
    status = res.status;
    await res.arrayBuffer();
  }
  t.equal(status, 429, 'the address is over its limit');
  const { page } = await ui.window(t);
  t.match(await trySignIn(page, ADMIN.email, 'still not it'), /^Too many failed sign-ins from this address: try again in \d+ (s|min)\.$/);
  await screenshot(page, 'accounts-login-429');
});
