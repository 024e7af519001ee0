/**
 * provider-emulator: local Twilio + SendGrid stand-in. `pnpm start` runs it when no provider
 * credentials are set; the other services only know its base URL.
 */
import { configSecrets, createLogger } from '@hatch/log';
// the subpath: the package's index would bring NATS, PostgreSQL and prom-client into this bundle
import { onShutdown } from '@hatch/service/shutdown';
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

onShutdown(() => emulator.stop(), { log, timeoutMs: SHUTDOWN_TIMEOUT_MS });
