/**
 * The Compose Email modal and the Emails view in a real browser against a real gateway: the
 * same rules as the server (checkSendEmail) refuse a bad draft by its field without a request;
 * a good one is sent once, confirmed with a 5-4-3-2-1 countdown and the dialog closes itself.
 */
import t from 'tap';
import { API_TOKEN, emailPipeline } from '@hatch/email-sender/testing';
import { browserFixture, ensureBuilt, screenshot, startBridge } from './fixture.js';

// A browser file runs a dozen page loads: on a loaded 2-core machine that can pass .taprc's 180 s.
t.setTimeout(360_000);

// The email pipeline: gateway, email-sender (in process) and the SendGrid emulator behind the
// real SDK, whose signed event webhooks move the status; the realtime bridge makes it live.
ensureBuilt();
const p = await emailPipeline(t);
await startBridge(t, p);
await p.startWorker();
const ui = await browserFixture(t, { base: p.gatewayUrl, token: API_TOKEN, height: 860 });
const db = p.db.db;

t.test(
  'the email modal validates by field, sends once, counts down 5-4-3-2-1 and closes; the Emails view shows its status live',
  async (t) => {
    const { page } = await ui.signedIn(t);
    const posts: (string | undefined)[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/api/send_email')) posts.push(r.headers()['idempotency-key']);
    });
    // A second window on the Emails view, open before the send: the email must appear there live.
    const { page: other } = await ui.signedIn(t, { path: '/emails' });
    await other.locator('[data-testid=live][data-state=live]').waitFor();
    await other.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));
    t.equal(await other.getByTestId('email-row').count(), 0, 'no emails yet');
    await page.getByTestId('compose-email').click();
    const modal = page.getByTestId('email-modal');
    await modal.waitFor();

    // Empty: every required field says what it needs; nothing is sent.
    await page.getByTestId('email-send').click();
    for (const f of ['to_email', 'subject', 'body']) await modal.getByTestId(`email-error-${f}`).waitFor();
    t.equal(
      await page.locator('#email-to_email').evaluate((el) => el === document.activeElement),
      true,
      'focus moves to the first bad field',
    );

    // Invalid and duplicate addresses: the server's own rules, by the field they belong to.
    await page.locator('#email-to_email').fill('ada@example.com, not-an-address');
    await page.locator('#email-subject').fill('Quarterly report');
    await page.locator('#email-body').fill('Hello Ada,\n\nthe report is attached.\n');
    await page.getByTestId('email-send').click();
    t.match(await modal.getByTestId('email-error-to_email').textContent(), /not-an-address/);
    await page.locator('#email-to_email').fill('ada@example.com');
    await page.getByTestId('email-show-copies').click();
    await page.locator('#email-cc').fill('grace@example.com, ADA@example.com');
    await page.locator('#email-reply_to').fill('support@hatch.example.test');
    await page.getByTestId('email-send').click();
    t.match(await modal.getByTestId('email-error-cc').textContent(), /ADA@example\.com.*duplicates/);
    t.equal(await modal.getByTestId('email-error-to_email').count(), 0, 'the fixed field is clear');
    t.equal(posts.length, 0, 'no request for an invalid draft');
    await page.locator('#email-cc').fill('grace@example.com');
    await page
      .locator('input[name=attachments]')
      .setInputFiles({ name: 'report.txt', mimeType: 'text/plain', buffer: Buffer.from('Q3: up and to the right\n') });
    await modal.getByText('report.txt').waitFor();
    await screenshot(page, 'email-modal');

    // Record every countdown value the page shows, from the first render of the confirmation.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { __countdown: string[] }).__countdown = seen;
      new MutationObserver(() => {
        const v = document.querySelector('[data-testid=email-countdown]')?.textContent;
        if (v && seen[seen.length - 1] !== v) seen.push(v);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.getByTestId('email-send').dblclick();
    await modal.getByTestId('email-success').waitFor();
    // Timed from here, not after the screenshot: on a loaded machine a screenshot alone can take
    // seconds of the countdown (a run measured 2435 ms left after it).
    const started = Date.now();
    t.match(await modal.getByTestId('email-success').textContent(), /ada@example\.com/);
    await screenshot(page, 'email-sent-countdown');
    await modal.waitFor({ state: 'detached', timeout: 12_000 });
    const elapsed = Date.now() - started;
    const seen = await page.evaluate(() => (window as unknown as { __countdown: string[] }).__countdown);
    t.same(seen, ['5', '4', '3', '2', '1'], 'counted down 5-4-3-2-1');
    t.ok(elapsed >= 3000, `closed by itself after the countdown (${elapsed} ms after the confirmation showed)`);
    t.ok(posts.length >= 1 && posts.every((k) => k && k === posts[0]), 'every request carried the same Idempotency-Key');

    const rows = await db.selectFrom('emails').selectAll().where('subject', '=', 'Quarterly report').execute();
    t.equal(rows.length, 1, 'one email stored for a double click');
    t.same(rows[0]?.to_email, ['ada@example.com']);
    t.same(rows[0]?.cc, ['grace@example.com']);
    t.equal(rows[0]?.reply_to, 'support@hatch.example.test');
    t.match(rows[0]?.attachments, [{ filename: 'report.txt', type: 'text/plain' }]);

    // The other window: the email appeared in its Emails view and its badge followed the worker and
    // the provider's events to delivered, without a reload.
    const row = other.getByTestId('email-row').filter({ hasText: 'Quarterly report' });
    await row.locator('[data-testid=status][data-status=delivered]').waitFor({ timeout: 30_000 });
    const final = await db.selectFrom('emails').select(['status']).where('subject', '=', 'Quarterly report').executeTakeFirstOrThrow();
    t.equal(final.status, 'delivered', 'the database agrees');
    t.ok(await other.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload === true), 'no reload');
    await row.locator('button.email-row').click();
    await row.locator('.timeline li').first().waitFor();
    await screenshot(other, 'emails-view');
    await page.getByRole('link', { name: 'Emails' }).click();
    await page.getByTestId('email-row').filter({ hasText: 'Quarterly report' }).waitFor();
  },
);

t.test('Escape closes the email modal and keeps nothing sent', async (t) => {
  const { page } = await ui.signedIn(t, { width: 375, height: 740 });
  const before = (await db.selectFrom('emails').select('id').execute()).length;
  await page.getByTestId('compose-email').click();
  await page.locator('#email-to_email').fill('someone@example.com');
  await page.locator('#email-subject').fill('never sent');
  await screenshot(page, 'mobile-email-modal');
  await page.keyboard.press('Escape');
  await page.getByTestId('email-modal').waitFor({ state: 'detached' });
  t.equal((await db.selectFrom('emails').select('id').execute()).length, before, 'nothing sent');
  await page.getByTestId('compose-email').click();
  t.equal(await page.locator('#email-subject').inputValue(), '', 'a new modal starts empty');
});
