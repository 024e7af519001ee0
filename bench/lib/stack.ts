/**
 * Hatch's services as real child processes (from source, as `pnpm start` runs them) against the
 * bench database and NATS prefix, on free ports of 127.0.0.1, with the provider emulator standing
 * in for Twilio and SendGrid (small callback delay).
 */
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { httpStatus, ROOT, spawnCmd, spawnTs, waitUntil, type Proc } from './procs.js';
import { NATS_URL } from './infra.js';

export const SERVICES = ['gateway', 'sms-sender', 'email-sender', 'realtime-bridge', 'provider-emulator'] as const;
export type ServiceName = (typeof SERVICES)[number];

export const TOKEN = 'bench-token-0123456789abcdef';
export const TWILIO = { sid: 'ACbe0c0000000000000000000000000000', token: 'bench-emulator-twilio-token', phone: '+15005550006' };
const SENDGRID = { key: 'SG.bench-emulator.key', from: 'bench@example.com' };

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface StackPorts {
  gateway: number;
  emulator: number;
  health: Record<'sms-sender' | 'email-sender' | 'realtime-bridge', number>;
}

export async function allocatePorts(): Promise<StackPorts> {
  return {
    gateway: await freePort(),
    emulator: await freePort(),
    health: { 'sms-sender': await freePort(), 'email-sender': await freePort(), 'realtime-bridge': await freePort() },
  };
}

export interface StackEnvOpts {
  dbUrl: string;
  prefix: string;
  ports: StackPorts;
  callbackDelayMs: number;
}

export function serviceEnv(name: ServiceName, o: StackEnvOpts): Record<string, string> {
  const gw = `http://127.0.0.1:${o.ports.gateway}`;
  const emu = `http://127.0.0.1:${o.ports.emulator}`;
  const common = { DATABASE_URL: o.dbUrl, NATS_URL, HATCH_NATS_PREFIX: o.prefix, LOG_LEVEL: 'warn', NODE_ENV: 'production' };
  switch (name) {
    case 'gateway':
      return {
        ...common,
        PORT: String(o.ports.gateway),
        HOST: '127.0.0.1',
        PUBLIC_URL: gw,
        HATCH_API_TOKEN: TOKEN,
        HATCH_RATE_LIMIT_PER_MINUTE: '1000000000',
        // every status callback comes from the one local emulator (P2's goal, 3,000 SMS/s, is 6,000 a second)
        HATCH_WEBHOOK_RATE_LIMIT_PER_MINUTE: '1000000000',
        // the spend guard's default 10,000 SMS a day is a few seconds of the send scenarios
        HATCH_SMS_DAILY_LIMIT: '1000000000',
        HATCH_SSE_MAX_CLIENTS: '100000',
        // every bench SSE client streams with the one bench token (P4 1k clients, P5 up to 50k)
        HATCH_SSE_MAX_CLIENTS_PER_PRINCIPAL: '100000',
        TWILIO_ACCOUNT_SID: TWILIO.sid,
        TWILIO_AUTH_TOKEN: TWILIO.token,
        TWILIO_PHONE_NUMBER: TWILIO.phone,
        SENDGRID_FROM_EMAIL: SENDGRID.from,
      };
    case 'sms-sender':
      return {
        ...common,
        HEALTH_PORT: String(o.ports.health['sms-sender']),
        TWILIO_ACCOUNT_SID: TWILIO.sid,
        TWILIO_AUTH_TOKEN: TWILIO.token,
        TWILIO_PHONE_NUMBER: TWILIO.phone,
        TWILIO_API_URL: emu,
        PUBLIC_URL: gw,
      };
    case 'email-sender':
      return {
        ...common,
        HEALTH_PORT: String(o.ports.health['email-sender']),
        SENDGRID_API_KEY: SENDGRID.key,
        SENDGRID_FROM_EMAIL: SENDGRID.from,
        SENDGRID_API_URL: emu,
      };
    case 'realtime-bridge':
      return { ...common, HEALTH_PORT: String(o.ports.health['realtime-bridge']) };
    case 'provider-emulator':
      return {
        EMULATOR_PORT: String(o.ports.emulator),
        EMULATOR_HOST: '127.0.0.1',
        EMULATOR_TWILIO_ACCOUNT_SID: TWILIO.sid,
        EMULATOR_TWILIO_AUTH_TOKEN: TWILIO.token,
        EMULATOR_TWILIO_PHONE_NUMBER: TWILIO.phone,
        EMULATOR_SENDGRID_API_KEY: SENDGRID.key,
        EMULATOR_SENDGRID_WEBHOOK_URL: `${gw}/webhooks/sendgrid/events`,
        EMULATOR_TWILIO_INBOUND_URL: `${gw}/webhooks/twilio/sms`,
        EMULATOR_CALLBACK_DELAY_MS: String(o.callbackDelayMs),
        EMULATOR_MAX_RECORDS: '20000',
        LOG_LEVEL: 'warn',
      };
  }
}

export function readyUrl(name: ServiceName, ports: StackPorts): string {
  if (name === 'gateway') return `http://127.0.0.1:${ports.gateway}/readyz`;
  if (name === 'provider-emulator') return `http://127.0.0.1:${ports.emulator}/healthz`;
  return `http://127.0.0.1:${ports.health[name]}/readyz`;
}

export interface Started {
  proc: Proc;
  /** spawn → first 200 from its readiness endpoint, ms */
  readyMs: number;
}

/** Spawns one service and waits (bounded) for its readiness endpoint to answer 200. */
/** The built entry (`pnpm build`), when there is one: what `pnpm --filter @hatch/<name> start` runs. */
export function distEntry(name: ServiceName): string | undefined {
  const f = path.join(ROOT, 'services', name, 'dist', 'main.js');
  return fs.existsSync(f) ? f : undefined;
}

/** Source files (the service's and the packages') newer than its build: a stale build shows here. */
export function staleSourceFiles(name: ServiceName): number {
  const entry = distEntry(name);
  if (!entry) return -1;
  const built = fs.statSync(entry).mtimeMs;
  let n = 0;
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const f = path.join(dir, e.name);
      if (e.isDirectory()) walk(f);
      else if (f.endsWith('.ts') && fs.statSync(f).mtimeMs > built) n++;
    }
  };
  walk(path.join(ROOT, 'services', name, 'src'));
  for (const p of fs.readdirSync(path.join(ROOT, 'packages'))) walk(path.join(ROOT, 'packages', p, 'src'));
  return n;
}

export async function startService(
  name: ServiceName,
  o: StackEnvOpts,
  extra: { nofile?: number; nodeArgs?: string[]; fromDist?: boolean } = {},
): Promise<Started> {
  const t0 = performance.now();
  const dist = extra.fromDist ? distEntry(name) : undefined;
  const proc = dist
    ? spawnCmd(name, process.execPath, [...(extra.nodeArgs ?? []), dist], { env: serviceEnv(name, o), nofile: extra.nofile })
    : spawnTs(name, path.join('services', name, 'src', 'main.ts'), [], { env: serviceEnv(name, o), ...extra });
  const url = readyUrl(name, o.ports);
  try {
    await waitUntil(
      async () => {
        if (proc.child.exitCode !== null) throw Object.assign(new Error(`${name} exited:\n${proc.output().slice(-3000)}`), { fatal: true });
        return (await httpStatus(url)) === 200;
      },
      30_000,
      `${name} ready (${url})`,
      10,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${proc.output().slice(-3000)}`);
    });
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
  return { proc, readyMs: performance.now() - t0 };
}
