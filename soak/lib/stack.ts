/**
 * The soak's cluster (issue 17): its own PostgreSQL (spawnPostgres, a free port, never the
 * machine's 5432), a 3-node JetStream cluster (spawnNatsCluster), and every Hatch service
 * replicated (3 gateways, 2 realtime-bridges, 2 sms-senders, 2 email-senders) plus the provider
 * emulator, each a child process from source (spawnService: its own process group, dies with
 * the soak). Each replica can be killed (-9), stopped (SIGSTOP/SIGCONT), terminated (SIGTERM) and
 * started again on the same ports.
 */
import { generateKeyPairSync } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import {
  freePort,
  REPO_ROOT,
  spawnNatsCluster,
  spawnPostgres,
  spawnService,
  urlForDatabase,
  waitFor,
  type ServiceProcess,
  type SpawnedNatsCluster,
  type SpawnedPostgres,
  type Teardownable,
} from '@hatch/testing';

export const TOKEN = 'soak-token-0123456789abcdef';
const TWILIO = { sid: `AC${'50ac'.padEnd(32, '0')}`, token: 'soak-emulator-twilio-token', phone: '+15005550006' };
const SENDGRID = { key: 'SG.soak-emulator.key', from: 'soak@example.com' };
export const NATS_PREFIX = 'SOAK';

export type ServiceName = 'gateway' | 'realtime-bridge' | 'sms-sender' | 'email-sender' | 'provider-emulator';
export const REPLICAS: Record<ServiceName, number> = {
  gateway: 3,
  'realtime-bridge': 2,
  'sms-sender': 2,
  'email-sender': 2,
  'provider-emulator': 1,
};

export interface Replica {
  service: ServiceName;
  name: string;
  /** the port its readiness endpoint listens on (gateway PORT, worker HEALTH_PORT, emulator port) */
  port: number;
  readonly running: boolean;
  readonly pid: number | undefined;
  /** starts it and waits (bounded) for its readiness endpoint to answer 200 */
  start(): Promise<void>;
  signal(sig: NodeJS.Signals): void;
  /** kill -9 and wait for the exit */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit (SIGKILL after `graceMs`) */
  terminate(graceMs?: number): Promise<void>;
  /** the readiness answer's body, undefined when it does not answer 200 */
  readiness(): Promise<Record<string, unknown> | undefined>;
  output(): string;
}

export interface Stack {
  pg: SpawnedPostgres;
  dbUrl: string;
  nats: SpawnedNatsCluster;
  replicas: Replica[];
  gateways: Replica[];
  emulatorUrl: string;
  of(service: ServiceName): Replica[];
  /** starts that ended in an exit (the replica was started again, as its orchestrator would) */
  failedStarts: Array<{ at: number; replica: string; output: string }>;
}

async function readiness(url: string): Promise<Record<string, unknown> | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    return res.status === 200 ? body : undefined;
  } catch {
    return undefined;
  }
}

export async function startStack(t: Teardownable, log: (msg: string) => void): Promise<Stack> {
  const pg = await spawnPostgres(t);
  const dbUrl = urlForDatabase(pg.url, 'hatch');
  log(`postgresql on port ${pg.port}`);
  const migrated = spawnSync(process.execPath, ['--conditions=@hatch/source', '--import', 'tsx', 'packages/db/src/migrate-cli.ts'], {
    cwd: REPO_ROOT,
    env: { ...process.env, DATABASE_URL: dbUrl },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (migrated.status !== 0) throw new Error(`migration failed:\n${migrated.stdout}${migrated.stderr}`);
  const nats = await spawnNatsCluster(t);
  log(`nats cluster ${nats.url}`);

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const signingKey = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

  const ports = new Map<string, number>();
  const names: Array<{ service: ServiceName; name: string }> = [];
  for (const [service, n] of Object.entries(REPLICAS) as Array<[ServiceName, number]>) {
    for (let i = 0; i < n; i++) {
      const name = n === 1 ? service : `${service}-${i + 1}`;
      names.push({ service, name });
      ports.set(name, await freePort());
    }
  }
  const gatewayUrl = (i: number) => `http://127.0.0.1:${ports.get(`gateway-${i + 1}`)}`;
  const emulatorUrl = `http://127.0.0.1:${ports.get('provider-emulator')}`;
  const common = {
    DATABASE_URL: dbUrl,
    NATS_URL: nats.url,
    HATCH_NATS_PREFIX: NATS_PREFIX,
    HATCH_STREAM_REPLICAS: '3',
    LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
  };
  const envFor = (service: ServiceName, name: string, port: number): Record<string, string> => {
    const index = Number(/-(\d+)$/.exec(name)?.[1] ?? '1') - 1;
    switch (service) {
      case 'gateway':
        return {
          ...common,
          PORT: String(port),
          HOST: '127.0.0.1',
          PUBLIC_URL: gatewayUrl(index),
          HATCH_API_TOKEN: TOKEN,
          HATCH_RATE_LIMIT_PER_MINUTE: '1000000',
          HATCH_WEBHOOK_RATE_LIMIT_PER_MINUTE: '1000000',
          HATCH_SMS_DAILY_LIMIT: '1000000',
          // the workers' retries here wait at most 5 s (below) with a 10 s ack wait: a job lost on
          // the way is re-published after a minute, within the drain window
          HATCH_OUTBOX_STALLED_AFTER_MS: '60000',
          // a stalled gateway is noticed by its clients after two silent intervals
          HATCH_SSE_HEARTBEAT_MS: '2000',
          HATCH_SSE_RETRY_MS: '500',
          TWILIO_ACCOUNT_SID: TWILIO.sid,
          TWILIO_AUTH_TOKEN: TWILIO.token,
          TWILIO_PHONE_NUMBER: TWILIO.phone,
          SENDGRID_FROM_EMAIL: SENDGRID.from,
          SENDGRID_WEBHOOK_PUBLIC_KEY: publicKeyPem,
        };
      case 'sms-sender':
        return {
          ...common,
          HEALTH_PORT: String(port),
          TWILIO_ACCOUNT_SID: TWILIO.sid,
          TWILIO_AUTH_TOKEN: TWILIO.token,
          TWILIO_PHONE_NUMBER: TWILIO.phone,
          TWILIO_API_URL: emulatorUrl,
          // status callbacks go to a gateway of its own index (all gateways share the database)
          PUBLIC_URL: gatewayUrl(index),
          TWILIO_TIMEOUT_MS: '3000',
          SMS_ACK_WAIT_MS: '10000',
          SMS_BACKOFF_BASE_MS: '500',
          SMS_BACKOFF_MAX_MS: '5000',
          SMS_MAX_DELIVER: '12',
        };
      case 'email-sender':
        return {
          ...common,
          HEALTH_PORT: String(port),
          SENDGRID_API_KEY: SENDGRID.key,
          SENDGRID_FROM_EMAIL: SENDGRID.from,
          SENDGRID_API_URL: emulatorUrl,
          SENDGRID_TIMEOUT_MS: '3000',
          EMAIL_ACK_WAIT_MS: '10000',
          EMAIL_BACKOFF_BASE_MS: '500',
          EMAIL_BACKOFF_MAX_MS: '5000',
          EMAIL_MAX_DELIVER: '12',
          // the documented unknown-outcome window, short so a soak drains in seconds
          EMAIL_UNKNOWN_OUTCOME_WAIT_MS: '8000',
        };
      case 'realtime-bridge':
        return { ...common, HEALTH_PORT: String(port), HATCH_BRIDGE_POLL_INTERVAL_MS: '200', HATCH_BRIDGE_LOCK_RETRY_MS: '500' };
      case 'provider-emulator':
        return {
          EMULATOR_PORT: String(port),
          EMULATOR_HOST: '127.0.0.1',
          EMULATOR_TWILIO_ACCOUNT_SID: TWILIO.sid,
          EMULATOR_TWILIO_AUTH_TOKEN: TWILIO.token,
          EMULATOR_TWILIO_PHONE_NUMBER: TWILIO.phone,
          EMULATOR_SENDGRID_API_KEY: SENDGRID.key,
          EMULATOR_SENDGRID_SIGNING_KEY: signingKey,
          EMULATOR_SENDGRID_WEBHOOK_URL: `${gatewayUrl(0)}/webhooks/sendgrid/events`,
          EMULATOR_TWILIO_INBOUND_URL: `${gatewayUrl(0)}/webhooks/twilio/sms`,
          EMULATOR_CALLBACK_DELAY_MS: '200',
          EMULATOR_CALLBACK_ATTEMPTS: '10',
          EMULATOR_MAX_RECORDS: '1000000',
          LOG_LEVEL: 'warn',
        };
    }
  };

  const starts: Stack['failedStarts'] = [];
  const replicas: Replica[] = names.map(({ service, name }) => {
    const port = ports.get(name) as number;
    const env = envFor(service, name, port);
    const readyUrl = service === 'provider-emulator' ? `http://127.0.0.1:${port}/healthz` : `http://127.0.0.1:${port}/readyz`;
    let proc: ServiceProcess | undefined;
    let running = false;
    const r: Replica = {
      service,
      name,
      port,
      get running() {
        return running;
      },
      get pid() {
        return running ? proc?.pid : undefined;
      },
      async start() {
        if (running) return;
        // A service that cannot reach a dependency at start exits non-zero; like Kubernetes'
        // restart policy, it is started again (after a second) until the deadline.
        const spawnOnce = () => {
          const p = spawnService(t, service, env);
          proc = p;
          running = true;
          void p.exited.then(() => {
            if (proc === p) running = false;
          });
          return p;
        };
        let p = spawnOnce();
        let exitedAt = 0;
        await waitFor(
          async () => {
            if (!running) {
              if (!exitedAt) exitedAt = Date.now();
              if (Date.now() - exitedAt < 1000) return false;
              exitedAt = 0;
              starts.push({ at: Date.now(), replica: name, output: p.output().slice(-1500) });
              p = spawnOnce();
              return false;
            }
            return (await readiness(readyUrl)) !== undefined;
          },
          { timeoutMs: 120_000, intervalMs: 100, message: `${name} ready (${readyUrl})\n${p.output().slice(-2000)}` },
        );
      },
      signal(sig) {
        if (running && proc) process.kill(proc.pid, sig);
      },
      async kill9() {
        if (!proc) return;
        await proc.kill9();
      },
      async terminate(graceMs = 15_000) {
        if (!proc || !running) return;
        const p = proc;
        p.signal('SIGTERM');
        const timer = setTimeout(() => void p.kill9(), graceMs);
        await p.exited;
        clearTimeout(timer);
      },
      readiness: () => readiness(readyUrl),
      output: () => proc?.output() ?? '',
    };
    return r;
  });
  const of = (service: ServiceName) => replicas.filter((r) => r.service === service);
  // the emulator first (workers call it), then the gateways (they create the streams), then the rest
  for (const r of of('provider-emulator')) await r.start();
  // one gateway creates the streams (3 copies each), then the others find them
  const [first, ...others] = of('gateway');
  await first?.start();
  await Promise.all(others.map((r) => r.start()));
  for (const service of ['realtime-bridge', 'sms-sender', 'email-sender'] as const) await Promise.all(of(service).map((r) => r.start()));
  log(`services ready: ${replicas.map((r) => `${r.name}:${r.port}`).join(' ')}`);
  return { pg, dbUrl, nats, replicas, gateways: of('gateway'), emulatorUrl, of, failedStarts: starts };
}
