/**
 * Browser-test fixture: a real gateway serving the built UI (startUiServer, or a sender's
 * pipeline), Debian's Chromium through playwright-core launched once per file, and windows
 * (a fresh context + page each) either signed out or already signed in. Every page is watched:
 * the file fails in teardown if any page loaded something from outside 127.0.0.1 or logged a
 * script error. Screenshots go to web/test-artifacts/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { spawnService, type ServiceProcess, type Teardownable } from '@hatch/testing';
import { testGateway, TEST_TOKEN, type TestGateway } from '@hatch/gateway/testing';
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
  const gw = await testGateway(t, {
    PUBLIC_URL: 'http://127.0.0.1',
    TWILIO_PHONE_NUMBER: SMS_FROM,
    SENDGRID_FROM_EMAIL: 'team@hatch.example.test',
    ...env,
  });
  await gw.app.listen({ port: 0, host: '127.0.0.1' });
  const addr = gw.app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('gateway did not listen on a TCP port');
  return { ...gw, base: `http://127.0.0.1:${addr.port}` };
}

/** The realtime bridge as its own process on a pipeline's database and NATS, once it leads. */
export async function startBridge(
  t: Teardownable,
  p: { db: { url: string }; nats: { url: string; prefix: string } },
): Promise<ServiceProcess> {
  const bridge = spawnService(t, 'realtime-bridge', {
    DATABASE_URL: p.db.url,
    NATS_URL: p.nats.url,
    HATCH_NATS_PREFIX: p.nats.prefix,
    HEALTH_PORT: '0',
    LOG_LEVEL: 'info',
    HATCH_BRIDGE_POLL_INTERVAL_MS: '200',
    HATCH_BRIDGE_LOCK_RETRY_MS: '200',
  });
  await bridge.waitForLog((l) => l.msg === 'became the active bridge', 30_000);
  return bridge;
}

export interface Watched {
  ctx: BrowserContext;
  page: Page;
  /** requests that left 127.0.0.1 (the UI must make none) */
  external: string[];
  /** uncaught page errors and console errors */
  errors: string[];
}

export interface WindowOptions {
  width?: number;
  height?: number;
}

export interface SignedInOptions extends WindowOptions {
  /** where the signed-in window opens (default `/`) */
  path?: string;
  /** another gateway than the fixture's (the session cookie is valid on any replica) */
  base?: string;
}

export interface BrowserFixture {
  browser: Browser;
  base: string;
  /** a fresh context and page, signed out, on about:blank */
  window(t: Teardownable, opts?: WindowOptions): Promise<Watched>;
  /** a fresh context already holding a session, its page open on `path` with the app shell shown */
  signedIn(t: Teardownable, opts?: SignedInOptions): Promise<Watched>;
}

/** Signs in through the one-click `?token=` link and waits for the signed-in shell. */
export async function signIn(page: Page, base: string, pathname = '/', token = TEST_TOKEN): Promise<void> {
  await page.goto(`${base}${pathname}?token=${encodeURIComponent(token)}`);
  await shell(page);
}

const shell = (page: Page) => page.getByRole('heading', { name: 'Conversations' }).waitFor();

/**
 * Chromium launched once for the file. Windows are contexts of their own, so tests share no
 * cookies, storage or pages; a signed-in window starts from the session cookie that one sign-in
 * at the start of the file produced (a session row on that server, valid until it expires), which
 * spares every test the login round trip without making one test depend on another. A window on
 * another server (its own database: the session is not there) signs in through the link itself.
 */
export async function browserFixture(
  t: Teardownable,
  opts: { base: string; token?: string; timeoutMs?: number; width?: number; height?: number },
): Promise<BrowserFixture> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  t.teardown(() => browser.close());
  const watched: Watched[] = [];
  t.teardown(() => {
    for (const w of watched) {
      if (w.external.length) throw new Error(`external requests: ${w.external.join(', ')}`);
      if (w.errors.length) throw new Error(`page errors: ${w.errors.join(' | ')}`);
    }
  });

  const open = async (tt: Teardownable, o: WindowOptions, storageState?: Awaited<ReturnType<BrowserContext['storageState']>>) => {
    const ctx = await browser.newContext({
      viewport: { width: o.width ?? opts.width ?? 1280, height: o.height ?? opts.height ?? 800 },
      storageState,
    });
    ctx.setDefaultTimeout(opts.timeoutMs ?? 15_000);
    tt.teardown(() => ctx.close());
    const w = watch(ctx, await ctx.newPage());
    watched.push(w);
    return w;
  };

  // The one sign-in of the file, through the same ?token= link the tests use.
  const first = await open(t, {});
  await signIn(first.page, opts.base, '/', opts.token ?? TEST_TOKEN);
  const session = await first.ctx.storageState();
  await first.ctx.close();

  return {
    browser,
    base: opts.base,
    window: (tt, o = {}) => open(tt, o),
    async signedIn(tt, o = {}) {
      if (o.base !== undefined && o.base !== opts.base) {
        const fresh = await open(tt, o);
        await signIn(fresh.page, o.base, o.path ?? '/', opts.token ?? TEST_TOKEN);
        return fresh;
      }
      const w = await open(tt, o, session);
      await w.page.goto(`${o.base ?? opts.base}${o.path ?? '/'}`);
      await shell(w.page);
      return w;
    },
  };
}

function watch(ctx: BrowserContext, page: Page): Watched {
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
  return { ctx, page, external, errors };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}
