#!/usr/bin/env node
/**
 * `pnpm start`: every service from source, one child process each
 * (`node --conditions=@hatch/source --import tsx services/<name>/src/main.ts`), with each output
 * line prefixed by the padded service name (coloured on a terminal, where pino JSON lines are
 * also shown compactly).
 *
 *   node scripts/start.mjs                  gateway, sms-sender, email-sender, realtime-bridge
 *                                           (+ provider-emulator when a provider has no credentials)
 *   node scripts/start.mjs gateway sms-sender   only these
 *   node scripts/start.mjs --dist [names]   the same from the bundles `pnpm build` makes
 *                                           (`node services/<name>/dist/main.js`, what containers
 *                                           run): what ./setup.sh starts, lighter than tsx
 *
 * Settings: the environment, then `.env` at the repository root for what the environment does not
 * set (relative `*_FILE` paths in `.env` are resolved against the repository root, so a service
 * finds its secrets whatever its working directory).
 *
 * Providers: when neither TWILIO_ACCOUNT_SID nor TWILIO_AUTH_TOKEN (or their `_FILE`) is set, the
 * provider emulator stands in for Twilio; when SENDGRID_API_KEY is unset, for SendGrid. The runner
 * then hands the services the emulator's URL and development credentials (scripts/dev-providers.mjs)
 * and a P-256 key pair: the emulator signs SendGrid events with the private key, the gateway
 * verifies them with the public one (it refuses unsigned events). The pair is the configured
 * EMULATOR_SENDGRID_SIGNING_KEY(_FILE) (./setup.sh writes one), else a fresh one per launch.
 *
 * Stopping: Ctrl+C / SIGTERM / SIGHUP → SIGTERM to every child; exit 0 once all exited cleanly.
 * A child still running after 10 s is killed (SIGKILL) and the runner exits 1; a second signal
 * kills at once. A child that exits on its own is logged and the others are stopped (exit 1).
 * Children are not detached: a terminal's Ctrl+C or hang-up reaches them too, so none outlives
 * the session.
 *
 * HATCH_START_SHUTDOWN_MS changes the 10 s bound; HATCH_PID_FILE names a file for the runner's pid.
 * For tests: HATCH_START_SERVICES='[{"name":"a","cmd":"node","args":["a.js"]}]' replaces the
 * service list (no provider logic).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEV_PROVIDERS } from './dev-providers.mjs';
import { ROOT, runServices, SHUTDOWN_BOUND_MS } from './run-services.mjs';

export const CORE_SERVICES = ['gateway', 'sms-sender', 'email-sender', 'realtime-bridge'];
export const EMULATOR = 'provider-emulator';

/* ------------------------------------------------------------------------------------------ */
/* .env                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/** KEY=VALUE lines; `#` comments, optional `export `, single or double quotes ("…" knows \n). */
export function parseDotenv(text) {
  const out = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, key, rest] = m;
    const quoted = /^(["'])(.*)\1\s*(?:#.*)?$/.exec(rest);
    if (quoted) {
      out[key] = quoted[1] === '"' ? quoted[2].replace(/\\(n|"|\\)/g, (_, c) => (c === 'n' ? '\n' : c)) : quoted[2];
    } else {
      out[key] = rest.replace(/(^|\s+)#.*$/, '').trim();
    }
  }
  return out;
}

/** `env` plus the file's settings that `env` does not already have. */
export function withDotenv(env, file = path.join(ROOT, '.env')) {
  const out = { ...env };
  if (!fs.existsSync(file)) return out;
  const parsed = parseDotenv(fs.readFileSync(file, 'utf8'));
  for (const [k, v] of Object.entries(parsed)) {
    if (out[k] !== undefined) continue;
    out[k] = k.endsWith('_FILE') && v && !path.isAbsolute(v) ? path.resolve(path.dirname(file), v) : v;
  }
  return out;
}

/* ------------------------------------------------------------------------------------------ */
/* which services, with which environment                                                     */
/* ------------------------------------------------------------------------------------------ */

const isSet = (env, name) => Boolean(env[name] || env[`${name}_FILE`]);

/**
 * The emulator's SendGrid signing key: the configured one (a PEM, one-line "\\n" too), else a new one.
 * Read here, not through @hatch/config's readSetting: this runner is plain Node and runs before
 * any build, and it needs the key itself to hand the gateway the public half.
 */
function emulatorSigningKey(env) {
  const file = env.EMULATOR_SENDGRID_SIGNING_KEY_FILE;
  const pem = env.EMULATOR_SENDGRID_SIGNING_KEY || (file ? fs.readFileSync(file, 'utf8') : '');
  return pem ? createPrivateKey(pem.replace(/\\n/g, '\n')) : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

/**
 * From source through tsx (`pnpm start`, for development), or with `dist` from the bundle
 * scripts/bundle.mjs wrote (each service's package.json `start`): one file, no TypeScript loader,
 * 61-82 MB each instead of 115-166 MB from source (issue 15).
 */
export function serviceCommand(name, { dist = false } = {}) {
  if (dist) return { cmd: process.execPath, args: [path.join('services', name, 'dist', 'main.js')] };
  return {
    cmd: process.execPath,
    args: ['--conditions=@hatch/source', '--import', 'tsx', path.join('services', name, 'src', 'main.ts')],
  };
}

/**
 * The services to run and each one's environment. `only` limits the list (names as in
 * CORE_SERVICES / EMULATOR). Returns `notes`: lines the runner prints about its choices.
 */
export function planServices(baseEnv, { only = [], dist = false } = {}) {
  const env = { ...baseEnv };
  const notes = [];
  const extra = {};
  const port = env.PORT || '5002';
  const publicUrl = (env.PUBLIC_URL || `http://localhost:${port}`).replace(/\/+$/, '');

  if (env.HEALTH_PORT && env.HEALTH_PORT !== '0') {
    // One HEALTH_PORT for three workers would collide; each has its own default (9101-9103).
    // 0 (any free port, each its own) cannot collide: tests use it to stay off the defaults.
    notes.push(`HEALTH_PORT=${env.HEALTH_PORT} ignored: it is per process; workers use their defaults 9101-9103`);
    delete env.HEALTH_PORT;
  }

  // Real credentials only when given; a half-given pair stays "real" so the service names
  // the missing one instead of silently switching to the emulator.
  const twilioEmulated = !isSet(env, 'TWILIO_ACCOUNT_SID') && !isSet(env, 'TWILIO_AUTH_TOKEN');
  const sendgridEmulated = !isSet(env, 'SENDGRID_API_KEY');
  const emulated = twilioEmulated || sendgridEmulated;

  if (emulated) {
    const emuPort = env.EMULATOR_PORT || String(DEV_PROVIDERS.emulatorPort);
    const emuUrl = `http://127.0.0.1:${emuPort}`;
    const privateKey = emulatorSigningKey(env);
    extra[EMULATOR] = {
      EMULATOR_PORT: emuPort,
      EMULATOR_TWILIO_ACCOUNT_SID: DEV_PROVIDERS.twilio.accountSid,
      EMULATOR_TWILIO_AUTH_TOKEN: DEV_PROVIDERS.twilio.authToken,
      EMULATOR_TWILIO_PHONE_NUMBER: env.TWILIO_PHONE_NUMBER || DEV_PROVIDERS.twilio.phoneNumber,
      EMULATOR_SENDGRID_API_KEY: DEV_PROVIDERS.sendgrid.apiKey,
      EMULATOR_SENDGRID_SIGNING_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      // Through PUBLIC_URL, as the real providers would call: the gateway checks Twilio
      // signatures against the URL rebuilt from PUBLIC_URL, so the emulator must sign that URL.
      EMULATOR_SENDGRID_WEBHOOK_URL: `${publicUrl}/webhooks/sendgrid/events`,
      EMULATOR_TWILIO_INBOUND_URL: `${publicUrl}/webhooks/twilio/sms`,
    };
    if (twilioEmulated) {
      Object.assign(env, {
        TWILIO_API_URL: emuUrl,
        TWILIO_ACCOUNT_SID: DEV_PROVIDERS.twilio.accountSid,
        TWILIO_AUTH_TOKEN: DEV_PROVIDERS.twilio.authToken,
        TWILIO_PHONE_NUMBER: env.TWILIO_PHONE_NUMBER || DEV_PROVIDERS.twilio.phoneNumber,
      });
      notes.push(`Twilio: provider emulator at ${emuUrl} (no TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN set)`);
    } else notes.push('Twilio: real (credentials set)');
    if (sendgridEmulated) {
      Object.assign(env, {
        SENDGRID_API_URL: emuUrl,
        SENDGRID_API_KEY: DEV_PROVIDERS.sendgrid.apiKey,
        SENDGRID_FROM_EMAIL: env.SENDGRID_FROM_EMAIL || DEV_PROVIDERS.sendgrid.fromEmail,
      });
      extra.gateway = {
        SENDGRID_WEBHOOK_PUBLIC_KEY: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).toString('base64'),
      };
      notes.push(`SendGrid: provider emulator at ${emuUrl} (no SENDGRID_API_KEY set)`);
    } else notes.push('SendGrid: real (credentials set)');
  }

  const all = [...CORE_SERVICES, ...(emulated ? [EMULATOR] : [])];
  const known = [...CORE_SERVICES, EMULATOR];
  const unknown = only.filter((n) => !known.includes(n));
  if (unknown.length) throw new Error(`unknown service ${unknown.map((n) => `"${n}"`).join(', ')} (known: ${known.join(', ')})`);
  const names = only.length ? all.filter((n) => only.includes(n)) : all;
  const services = names.map((name) => ({ name, ...serviceCommand(name, { dist }), env: { ...env, ...extra[name] } }));
  return { services, notes };
}

/* ------------------------------------------------------------------------------------------ */
/* main                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/** For `./setup.sh stop`: the runner's own pid (setup starts it in the background). */
function writePidFile(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${process.pid}\n`);
  process.on('exit', () => {
    try {
      if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file);
    } catch {
      // already gone
    }
  });
}

async function main() {
  const env = withDotenv(process.env);
  if (env.HATCH_PID_FILE) writePidFile(path.resolve(ROOT, env.HATCH_PID_FILE));
  let services;
  let notes = [];
  if (env.HATCH_START_SERVICES) {
    services = JSON.parse(env.HATCH_START_SERVICES).map((s) => ({ ...s, env: { ...env, ...s.env } }));
  } else {
    const args = process.argv.slice(2);
    const dist = args.includes('--dist');
    ({ services, notes } = planServices(env, { only: args.filter((a) => a !== '--dist'), dist }));
    const missing = services.filter((s) => !fs.existsSync(path.join(ROOT, s.args.at(-1))));
    if (missing.length) {
      throw new Error(
        `missing entry file ${missing.map((s) => s.args.at(-1)).join(', ')} (${dist ? 'run pnpm build first' : 'is the checkout complete?'})`,
      );
    }
  }
  const boundMs = Number(env.HATCH_START_SHUTDOWN_MS) > 0 ? Number(env.HATCH_START_SHUTDOWN_MS) : SHUTDOWN_BOUND_MS;
  return runServices(services, { notes, boundMs });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`pnpm start: ${err.message}\n`);
      process.exit(1);
    },
  );
}
