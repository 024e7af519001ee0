/**
 * Browser-test harness: a real gateway (build() on a fresh database and real NATS, from the
 * gateway's own test helper) listening on a free port and serving the built UI, driven by
 * Debian's Chromium through playwright-core. Screenshots go to web/test-artifacts/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { Teardownable } from '@hatch/testing';
import { testGateway, TEST_TOKEN, type TestGateway } from '../../services/gateway/test/helpers.js';
import { DIST, ensureBuilt, WEB_DIR } from './build.js';

export { DIST, ensureBuilt, TEST_TOKEN, WEB_DIR };
export const ARTIFACTS = path.join(WEB_DIR, 'test-artifacts');
export const CHROMIUM = process.env.HATCH_CHROMIUM ?? '/usr/bin/chromium';
export const SMS_FROM = '+15550001111';

export interface UiServer extends TestGateway {
  base: string;
}

/** A real gateway on 127.0.0.1:<free port> serving web/dist. */
export async function startUiServer(t: Teardownable, env: Record<string, string> = {}): Promise<UiServer> {
  ensureBuilt();
  // http: the session cookie must not be Secure for a plain-http test origin.
  const gw = await testGateway(t, { PUBLIC_URL: 'http://127.0.0.1', TWILIO_PHONE_NUMBER: SMS_FROM, SENDGRID_FROM_EMAIL: 'team@hatch.example.test', ...env });
  await gw.app.listen({ port: 0, host: '127.0.0.1' });
  const addr = gw.app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('gateway did not listen on a TCP port');
  return { ...gw, base: `http://127.0.0.1:${addr.port}` };
}

export async function launchBrowser(t: Teardownable): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  t.teardown(() => browser.close());
  return browser;
}

export interface Watched {
  page: Page;
  /** requests that left 127.0.0.1 (the UI must make none) */
  external: string[];
  /** uncaught page errors and console errors */
  errors: string[];
}

export async function newPage(ctx: BrowserContext): Promise<Watched> {
  const page = await ctx.newPage();
  const external: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.protocol !== 'blob:' && u.hostname !== '127.0.0.1') external.push(r.url());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    // A failed resource load (e.g. the 401 of the session probe before login) is expected.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text());
  });
  return { page, external, errors };
}

/** Signs in through the one-click `?token=` link and waits for the signed-in shell. */
export async function signIn(page: Page, base: string, pathname = '/', token = TEST_TOKEN): Promise<void> {
  await page.goto(`${base}${pathname}?token=${encodeURIComponent(token)}`);
  await page.getByRole('heading', { name: 'Conversations' }).waitFor();
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}
