/**
 * provider-emulator: local Twilio + SendGrid stand-in. `pnpm start` runs it when no provider
 * credentials are set; the other services only know its base URL.
 */
import { configSecrets, createLogger } from '@hatch/log';
import { emulatorOptions, loadEmulatorConfig } from './config.js';
import { startEmulator } from './emulator.js';

const SHUTDOWN_TIMEOUT_MS = 5000;

const config = loadEmulatorConfig();
const log = createLogger({ service: 'provider-emulator', level: config.LOG_LEVEL, secrets: configSecrets(config) });
const emulator = await startEmulator({ ...emulatorOptions(config), logger: log }).catch((err: unknown) => {
  // e.g. the port is taken or the signing key is not P-256: one clear line, exit 1
  log.fatal({ err, port: config.EMULATOR_PORT }, 'provider emulator could not start');
  process.exit(1);
});

log.info(
  {
    url: emulator.url,
    port: Number(new URL(emulator.url).port),
    twilioAccountSid: emulator.twilio.accountSid,
    twilioPhoneNumber: emulator.twilio.phoneNumber,
    // Not a secret: set it as the gateway's SENDGRID_WEBHOOK_PUBLIC_KEY to verify our events.
    sendgridWebhookPublicKey: emulator.sendgrid.publicKeyBase64,
    twilioInboundUrl: config.EMULATOR_TWILIO_INBOUND_URL,
    sendgridWebhookUrl: config.EMULATOR_SENDGRID_WEBHOOK_URL,
    callbackDelayMs: config.EMULATOR_CALLBACK_DELAY_MS,
  },
  'provider emulator ready',
);

let shuttingDown = false;
function shutdown(signal: string): void {
  if (shuttingDown) return;
  shuttingDown = true;
  log.info({ signal }, 'shutting down');
  const timer = setTimeout(() => {
    log.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'shutdown took too long; exiting');
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS);
  timer.unref();
  emulator.stop().then(
    () => {
      log.info('stopped');
      process.exit(0);
    },
    (err: unknown) => {
      log.error({ err }, 'error during shutdown');
      process.exit(1);
    },
  );
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
