/**
 * scripts/start.mjs (`pnpm start`): .env loading, the provider emulator's stand-in wiring, and the
 * process runner (prefixed lines, SIGTERM to every child, exit codes, no orphans), the latter
 * against tiny node scripts instead of the real services.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createSign, createPublicKey, createVerify, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isE164 } from '@hatch/contracts';
import { REPO_ROOT } from '../src/process.js';
import { processGone } from '../src/watchdog.js';
import { waitFor } from '../src/wait.js';

type Env = Record<string, string | undefined>;
interface Planned {
  name: string;
  cmd: string;
  args: string[];
  env: Env;
}
interface StartModule {
  parseDotenv(text: string): Record<string, string>;
  withDotenv(env: Env, file: string): Env;
  planServices(env: Env, opts?: { only?: string[]; dist?: boolean }): { services: Planned[]; notes: string[] };
}
interface RunServicesModule {
  compactLogLine(line: string, color: boolean): string;
}
interface DevProviders {
  DEV_PROVIDERS: {
    emulatorPort: number;
    twilio: { accountSid: string; authToken: string; phoneNumber: string };
    sendgrid: { apiKey: string; fromEmail: string };
  };
}

const startScript = path.join(REPO_ROOT, 'scripts/start.mjs');
const start = (await import(pathToFileURL(startScript).href)) as StartModule;
const runner = (await import(pathToFileURL(path.join(REPO_ROOT, 'scripts/run-services.mjs')).href)) as RunServicesModule;
const { DEV_PROVIDERS } = (await import(pathToFileURL(path.join(REPO_ROOT, 'scripts/dev-providers.mjs')).href)) as DevProviders;

function tmpDir(t: { teardown(fn: () => unknown): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-start-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const byName = (services: Planned[], name: string): Planned => {
  const s = services.find((x) => x.name === name);
  if (!s) throw new Error(`no ${name} planned`);
  return s;
};

t.test('parseDotenv reads KEY=VALUE lines, comments, export and quotes', async (t) => {
  const parsed = start.parseDotenv(
    [
      '# comment',
      '',
      'A=1',
      'export B = two words ',
      'C="quoted # not a comment"  # a comment',
      "D='single $NOT_EXPANDED'",
      'E=value # trailing comment',
      'F="line\\nbreak"',
      'G=',
      'H=a#b',
      'not a line',
    ].join('\n'),
  );
  t.same(parsed, {
    A: '1',
    B: 'two words',
    C: 'quoted # not a comment',
    D: 'single $NOT_EXPANDED',
    E: 'value',
    F: 'line\nbreak',
    G: '',
    H: 'a#b',
  });
});

t.test('withDotenv never overrides the environment and resolves relative *_FILE paths against the .env directory', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, '.env');
  fs.writeFileSync(file, 'PORT=5002\nLOG_LEVEL=debug\nHATCH_API_TOKEN_FILE=.secrets/hatch_api_token\nOTHER_FILE=/abs/x\n');
  const env = start.withDotenv({ PORT: '7000', KEEP: 'x' }, file);
  t.equal(env.PORT, '7000', 'the environment wins');
  t.equal(env.LOG_LEVEL, 'debug');
  t.equal(env.KEEP, 'x');
  t.equal(env.HATCH_API_TOKEN_FILE, path.join(dir, '.secrets/hatch_api_token'));
  t.equal(env.OTHER_FILE, '/abs/x');
  t.same(start.withDotenv({ A: '1' }, path.join(dir, 'missing.env')), { A: '1' }, 'no file, no change');
});

t.test('planServices without provider credentials runs the emulator and points every service at it', async (t) => {
  const { services, notes } = start.planServices({
    PORT: '5002',
    TWILIO_API_URL: 'https://api.twilio.com', // as .env.example has it: the emulator must still win
    SENDGRID_API_URL: 'https://api.sendgrid.com',
    HATCH_API_TOKEN: 'x'.repeat(32),
  });
  t.same(
    services.map((s) => s.name),
    ['gateway', 'sms-sender', 'email-sender', 'realtime-bridge', 'provider-emulator'],
  );
  t.same(byName(services, 'gateway').args.slice(0, 3), ['--conditions=@hatch/source', '--import', 'tsx']);
  t.equal(byName(services, 'sms-sender').args.at(-1), path.join('services', 'sms-sender', 'src', 'main.ts'));
  for (const s of services) {
    t.equal(s.env.TWILIO_API_URL, 'http://127.0.0.1:5090', `${s.name}: Twilio URL`);
    t.equal(s.env.SENDGRID_API_URL, 'http://127.0.0.1:5090', `${s.name}: SendGrid URL`);
    t.equal(s.env.TWILIO_ACCOUNT_SID, DEV_PROVIDERS.twilio.accountSid);
    t.equal(s.env.TWILIO_AUTH_TOKEN, DEV_PROVIDERS.twilio.authToken);
    t.equal(s.env.SENDGRID_API_KEY, DEV_PROVIDERS.sendgrid.apiKey);
  }
  t.match(DEV_PROVIDERS.twilio.accountSid, /^AC[0-9a-fA-F]{32}$/, "dev SID passes the services' check");
  t.ok(isE164(DEV_PROVIDERS.twilio.phoneNumber), "dev number passes the services' check");
  const emu = byName(services, 'provider-emulator').env;
  t.match(emu, {
    EMULATOR_PORT: '5090',
    EMULATOR_TWILIO_ACCOUNT_SID: DEV_PROVIDERS.twilio.accountSid,
    EMULATOR_TWILIO_AUTH_TOKEN: DEV_PROVIDERS.twilio.authToken,
    EMULATOR_SENDGRID_API_KEY: DEV_PROVIDERS.sendgrid.apiKey,
    EMULATOR_SENDGRID_WEBHOOK_URL: 'http://localhost:5002/webhooks/sendgrid/events',
    EMULATOR_TWILIO_INBOUND_URL: 'http://localhost:5002/webhooks/twilio/sms',
  });
  t.notOk(byName(services, 'gateway').env.EMULATOR_SENDGRID_SIGNING_KEY, 'the private key goes to the emulator only');

  // The gateway's public key verifies what the emulator signs with its private key.
  const pub = byName(services, 'gateway').env.SENDGRID_WEBHOOK_PUBLIC_KEY ?? '';
  const payload = '1700000000[{"event":"delivered"}]';
  const sig = createSign('sha256')
    .update(payload)
    .sign(emu.EMULATOR_SENDGRID_SIGNING_KEY ?? '');
  const key = createPublicKey({ key: Buffer.from(pub, 'base64'), format: 'der', type: 'spki' });
  t.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.ok(createVerify('sha256').update(payload).verify(key, sig), 'signature verifies');
  t.match(notes.join('\n'), /Twilio: provider emulator/);

  const again = start.planServices({});
  t.not(byName(again.services, 'gateway').env.SENDGRID_WEBHOOK_PUBLIC_KEY, pub, 'a fresh key pair per launch');
});

t.test('planServices with a configured emulator signing key (./setup.sh writes one) hands the gateway its public half', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-start-key-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const file = path.join(dir, 'sendgrid_webhook_signing_key');
  fs.writeFileSync(file, pem, { mode: 0o600 });
  const expected = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  for (const [name, env] of [
    ['_FILE', { EMULATOR_SENDGRID_SIGNING_KEY_FILE: file, SENDGRID_WEBHOOK_PUBLIC_KEY: 'stale' }],
    ['one-line PEM', { EMULATOR_SENDGRID_SIGNING_KEY: pem.replace(/\n/g, '\\n') }],
  ] as const) {
    const { services } = start.planServices(env);
    t.equal(
      byName(services, 'gateway').env.SENDGRID_WEBHOOK_PUBLIC_KEY,
      expected,
      `${name}: the gateway verifies with the configured key's public half`,
    );
    const emu = byName(services, 'provider-emulator').env;
    const payload = '1700000000[]';
    const sig = createSign('sha256')
      .update(payload)
      .sign(emu.EMULATOR_SENDGRID_SIGNING_KEY ?? emu.EMULATOR_SENDGRID_SIGNING_KEY_FILE ?? '');
    t.ok(createVerify('sha256').update(payload).verify(publicKey, sig), `${name}: the emulator signs with the configured key`);
  }
});

t.test('planServices with real credentials runs no emulator and leaves provider settings alone', async (t) => {
  const { services } = start.planServices({
    TWILIO_ACCOUNT_SID: 'AC' + 'a'.repeat(32),
    TWILIO_AUTH_TOKEN_FILE: '/run/secrets/twilio',
    SENDGRID_API_KEY_FILE: '/run/secrets/sendgrid',
    TWILIO_API_URL: 'https://api.twilio.com',
  });
  t.same(
    services.map((s) => s.name),
    ['gateway', 'sms-sender', 'email-sender', 'realtime-bridge'],
  );
  const env = byName(services, 'sms-sender').env;
  t.equal(env.TWILIO_API_URL, 'https://api.twilio.com');
  t.equal(env.TWILIO_AUTH_TOKEN, undefined);
  t.equal(env.SENDGRID_API_KEY, undefined);
});

t.test('planServices: one real provider, the emulator for the other; half-given Twilio credentials stay real', async (t) => {
  const { services } = start.planServices({
    TWILIO_ACCOUNT_SID: 'AC' + 'b'.repeat(32),
    EMULATOR_PORT: '6001',
    PUBLIC_URL: 'https://hatch.example.com/',
  });
  t.ok(
    services.some((s) => s.name === 'provider-emulator'),
    'emulator for SendGrid',
  );
  const sms = byName(services, 'sms-sender').env;
  t.equal(sms.TWILIO_ACCOUNT_SID, 'AC' + 'b'.repeat(32), 'the given SID is kept');
  t.equal(sms.TWILIO_AUTH_TOKEN, undefined, 'the missing token is not invented: sms-sender will name it');
  t.equal(byName(services, 'email-sender').env.SENDGRID_API_URL, 'http://127.0.0.1:6001');
  t.equal(byName(services, 'provider-emulator').env.EMULATOR_TWILIO_INBOUND_URL, 'https://hatch.example.com/webhooks/twilio/sms');
});

t.test('planServices: a subset by name; unknown names and a shared HEALTH_PORT are reported', async (t) => {
  const { services, notes } = start.planServices({ HEALTH_PORT: '9999' }, { only: ['gateway', 'provider-emulator'] });
  t.same(
    services.map((s) => s.name),
    ['gateway', 'provider-emulator'],
  );
  t.equal(byName(services, 'gateway').env.HEALTH_PORT, undefined);
  t.match(notes.join('\n'), /HEALTH_PORT=9999 ignored/);
  t.throws(() => start.planServices({}, { only: ['gatway'] }), /unknown service "gatway"/);
});

t.test(
  'planServices({ dist }) runs each service from its bundle (what ./setup.sh starts); HEALTH_PORT=0 cannot collide and is kept',
  async (t) => {
    const { services, notes } = start.planServices({ HEALTH_PORT: '0' }, { dist: true });
    t.same(
      services.map((s) => [s.cmd, ...s.args]),
      services.map((s) => [process.execPath, path.join('services', s.name, 'dist', 'main.js')]),
      'node services/<name>/dist/main.js, no tsx',
    );
    t.equal(services.length, 5, 'every service, the emulator included');
    t.equal(byName(services, 'sms-sender').env.HEALTH_PORT, '0');
    t.notMatch(notes.join('\n'), /HEALTH_PORT/);
    t.match(
      start.planServices({}).services[0]?.args,
      ['--conditions=@hatch/source', '--import', 'tsx'],
      'without dist: from source (pnpm start)',
    );
  },
);

t.test('compactLogLine shows pino JSON compactly and leaves other lines alone', async (t) => {
  const line = JSON.stringify({
    level: 40,
    time: '2025-01-01T10:00:00.000Z',
    service: 'gateway',
    pid: 1,
    hostname: 'h',
    msg: 'slow',
    ms: 12,
  });
  t.match(runner.compactLogLine(line, false), /^\d\d:\d\d:\d\d\.\d{3} WARN  slow ms=12$/);
  t.equal(runner.compactLogLine('plain text', false), 'plain text');
  t.equal(runner.compactLogLine('{not json', false), '{not json');
});

/* ---------------------------------------------------------------------------------------- */

interface Run {
  output(): string;
  exited: Promise<{ code: number | null; ms: number }>;
  signal(sig: NodeJS.Signals): void;
}

function runRunner(t: { teardown(fn: () => unknown): void }, services: Array<{ name: string; script: string }>, env: Env = {}): Run {
  const dir = tmpDir(t);
  const list = services.map((s) => {
    const file = path.join(dir, `${s.name}.js`);
    fs.writeFileSync(file, s.script);
    return { name: s.name, cmd: process.execPath, args: [file] };
  });
  const started = Date.now();
  const child = spawn(process.execPath, [startScript], {
    env: { PATH: process.env.PATH, HATCH_START_SERVICES: JSON.stringify(list), PIDDIR: dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; ms: number }>((resolve) =>
    child.once('exit', (code) => resolve({ code, ms: Date.now() - started })),
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return { output: () => out, exited, signal: (sig) => child.kill(sig) };
}

const child = (name: string, onTerm: string) => `
require('fs').writeFileSync(require('path').join(process.env.PIDDIR, ${JSON.stringify(name)} + '.pid'), String(process.pid));
console.log(JSON.stringify({ level: 30, time: Date.now(), service: ${JSON.stringify(name)}, msg: 'ready' }));
console.error(${JSON.stringify(name)} + ' says hi on stderr');
process.on('SIGTERM', () => { ${onTerm} });
setInterval(() => {}, 1000);
`;

function pidsOf(dir: string, names: string[]): number[] {
  return names.map((n) => Number(fs.readFileSync(path.join(dir, `${n}.pid`), 'utf8')));
}

t.test('the runner prefixes every line, stops every child on SIGTERM and exits 0', async (t) => {
  const run = runRunner(t, [
    { name: 'alpha', script: child('alpha', "console.log('alpha stopping'); setTimeout(() => process.exit(0), 200);") },
    { name: 'beta-longer', script: child('beta-longer', 'process.exit(0);') },
  ]);
  await waitFor(() => /alpha +\| .*"msg":"ready"/.test(run.output()) && /beta-longer \| .*"msg":"ready"/.test(run.output()), {
    timeoutMs: 10_000,
    message: 'both children logged ready',
  });
  const out = run.output();
  t.match(out, /^alpha       \| /m, 'names padded to the longest');
  t.match(out, /^beta-longer \| beta-longer says hi on stderr$/m, 'stderr lines are prefixed too');
  t.notMatch(out, /\x1b\[/, 'no colours when stdout is not a terminal');

  run.signal('SIGTERM');
  const { code, ms } = await run.exited;
  t.equal(code, 0, 'exit 0 when every child stopped cleanly');
  t.ok(ms < 10_000, `within 10 s (${ms} ms)`);
  t.match(run.output(), /alpha +\| alpha stopping/);
  t.match(run.output(), /hatch +\| alpha stopped \(code 0\)/);
});

t.test('after the runner exits no child is left running', async (t) => {
  const dir = tmpDir(t);
  const script = (name: string) => `
require('fs').writeFileSync(${JSON.stringify(dir)} + '/${name}.pid', String(process.pid));
console.log('${name} up');
process.on('SIGTERM', () => setTimeout(() => process.exit(0), 100));
setInterval(() => {}, 1000);
`;
  const run = runRunner(t, [
    { name: 'one', script: script('one') },
    { name: 'two', script: script('two') },
  ]);
  await waitFor(() => run.output().includes('one up') && run.output().includes('two up'), { timeoutMs: 10_000, message: 'children up' });
  const pids = pidsOf(dir, ['one', 'two']);
  t.ok(
    pids.every((p) => !processGone(p)),
    'children running',
  );
  run.signal('SIGINT');
  t.equal((await run.exited).code, 0, 'Ctrl+C (SIGINT) also stops cleanly');
  t.ok(
    pids.every((p) => processGone(p)),
    'children gone',
  );
});

t.test('a child that exits on its own stops the others and the runner exits 1', async (t) => {
  const run = runRunner(t, [
    { name: 'steady', script: child('steady', "console.log('steady stopping'); process.exit(0);") },
    { name: 'crasher', script: "console.log('about to fail'); setTimeout(() => process.exit(3), 300);" },
  ]);
  const { code } = await run.exited;
  t.equal(code, 1);
  t.match(run.output(), /hatch +\| crasher exited unexpectedly \(code 3\); stopping the others/);
  t.match(run.output(), /steady +\| steady stopping/);
});

t.test('a child that ignores SIGTERM is killed after the bound and the runner exits 1', async (t) => {
  const run = runRunner(
    t,
    [
      { name: 'stubborn', script: child('stubborn', "console.log('ignoring SIGTERM');") },
      { name: 'polite', script: child('polite', 'process.exit(0);') },
    ],
    { HATCH_START_SHUTDOWN_MS: '1500' },
  );
  await waitFor(() => /stubborn +\| .*ready/.test(run.output()), { timeoutMs: 10_000, message: 'stubborn up' });
  await waitFor(() => /polite +\| .*ready/.test(run.output()), { timeoutMs: 10_000, message: 'polite up' });
  run.signal('SIGTERM');
  const { code } = await run.exited;
  t.equal(code, 1);
  t.match(run.output(), /still running after 1\.5 s: stubborn; killing/);
  t.match(run.output(), /stubborn stopped \(signal SIGKILL\)/);
});
