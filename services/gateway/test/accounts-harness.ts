/**
 * Team-account tests' harness (issue 18): a listening gateway whose log lines are kept (no
 * password or token may appear in one), whose clock the test moves, talked to over real sockets
 * with fetch, and a first admin and agents created the way an admin would (invite → accept).
 */
import { Writable } from 'node:stream';
import { insertUser } from '@hatch/db';
import type { Teardownable } from '@hatch/testing';
import { createLogger } from '@hatch/log';
import { connectBus, ensureStreams } from '@hatch/bus';
import { createMetricsRegistry } from '@hatch/service';
import { build, type BuildOptions } from '../src/app.js';
import { parseGatewayConfig } from '../src/config.js';
import { hashPassword } from '../src/passwords.js';
import { listening, testGateway, TEST_SCRYPT_LOG2N, TEST_TOKEN, type TestGateway } from './helpers.js';

export const BOOTSTRAP = { authorization: `Bearer ${TEST_TOKEN}` };

export interface AccountsGateway {
  g: TestGateway;
  base: string;
  /** every log line the gateway wrote (level trace and up) */
  lines: string[];
  clock: { now: number };
  call(method: string, path: string, opts?: { headers?: Record<string, string>; body?: unknown }): Promise<Answer>;
}

export interface Answer {
  status: number;
  body: Record<string, unknown> & { code?: string };
  text: string;
  headers: Headers;
  cookie: string | undefined;
}

/** A gateway (or another replica of one, sharing its database and NATS names) listening on loopback. */
export async function accountsGateway(
  t: Teardownable,
  opts: { replicaOf?: TestGateway; build?: BuildOptions; env?: Record<string, string | undefined> } = {},
): Promise<AccountsGateway> {
  const lines: string[] = [];
  const clock = { now: Date.now() };
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const buildOpts: BuildOptions = { now: () => clock.now, ...opts.build };
  // testGateway's logger is silent: build our own app on its database and NATS names.
  const base = opts.replicaOf ?? (await testGateway(t));
  const config = parseGatewayConfig({
    DATABASE_URL: base.db.url,
    NATS_URL: base.nats.url,
    HATCH_API_TOKEN: TEST_TOKEN,
    HATCH_NATS_PREFIX: base.nats.prefix,
    PUBLIC_URL: 'http://hatch.example.test',
    LOG_LEVEL: 'trace',
    HATCH_PASSWORD_SCRYPT_LOG2N: TEST_SCRYPT_LOG2N,
    ...opts.env,
  });
  const log = createLogger({ service: 'gateway', level: 'trace', pretty: false, destination: sink });
  const bus = await connectBus({ url: config.NATS_URL, name: 'gateway-accounts-test', log });
  await ensureStreams(bus.jsm, base.nats.names);
  const app = await build({ config, log, db: base.db, bus, registry: createMetricsRegistry('gateway') }, buildOpts);
  t.teardown(async () => {
    await app.close();
    await bus.close(1000);
  });
  const g: TestGateway = { ...base, app, config, bus };
  const url = `http://127.0.0.1:${await listening(g)}`;
  const call: AccountsGateway['call'] = async (method, path, o = {}) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers },
      body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
    });
    const text = await res.text();
    let body: Answer['body'] = {};
    try {
      body = text ? (JSON.parse(text) as Answer['body']) : {};
    } catch {
      // not JSON: the text is there
    }
    const set = res.headers.getSetCookie().find((c) => c.startsWith('hatch_session='));
    return { status: res.status, body, text, headers: res.headers, cookie: set?.split(';')[0] };
  };
  return { g, base: url, lines, clock, call };
}

/** A person with a password, straight into the database (the API path is tested on its own). */
export async function seedUser(
  g: TestGateway,
  u: { email: string; role: 'admin' | 'agent'; password: string; name?: string },
): Promise<{ id: string; email: string; password: string }> {
  const row = await insertUser(g.db.db, {
    email: u.email,
    role: u.role,
    name: u.name ?? u.email,
    password_hash: await hashPassword(u.password, { ln: Number(TEST_SCRYPT_LOG2N), r: 8, p: 1 }),
  });
  return { id: row.id, email: u.email, password: u.password };
}

/** Signs in with email and password; returns the Cookie header value. */
export async function signIn(a: AccountsGateway, email: string, password: string): Promise<string> {
  const r = await a.call('POST', '/api/session', { body: { email, password } });
  if (r.status !== 204 || !r.cookie) throw new Error(`sign-in failed: ${r.status} ${r.text}`);
  return r.cookie;
}
