/**
 * @hatch/provider-emulator: Twilio Messages API + SendGrid v3 mail send stand-ins for
 * development and tests. Production code of the other services never imports this package;
 * they only know a base URL (TWILIO_API_URL / SENDGRID_API_URL).
 */
export { startEmulator, DEFAULTS, type Emulator, type EmulatorOptions } from './emulator.js';
export { buildApp, type App, type AppDeps } from './app.js';
export { EmulatorConfig, emulatorOptions, parseEmulatorConfig, parseFaultsEnv } from './config.js';
export {
  FaultSpec,
  parseFaultSpec,
  FaultError,
  type Fault,
  type FaultKind,
  type DeliveryOutcome,
  type Provider,
  type AppliedFault,
} from './faults.js';
export { twilioSignature, createSendGridSigner, formBody, type SendGridSigner, type FormParams } from './signing.js';
export { messageResource, type MessageRecord, type CallbackRecord, type InboundRecord } from './twilio-resource.js';
export { twilioError, type TwilioErrorBody } from './twilio-errors.js';
export { TWILIO_BODY_MAX, type InboundPlay } from './twilio-validation.js';
export type { InboundResult } from './twilio.js';
export { type EmailRecord, type SendGridEvent, type WebhookBatchRecord } from './sendgrid.js';
export type { SendGridError } from './sendgrid-errors.js';
export { validateMailSend, MAX_RECIPIENTS } from './sendgrid-validation.js';
export type { WebhookResult } from './webhook-client.js';
